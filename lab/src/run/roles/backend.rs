//! Backends: real servers with their real defaults (Node.js `http`,
//! CherryPy, Tomcat 10) and connlab's tunable backend, all on port `BACKEND_PORT` (8080).

use std::time::Duration;

use crate::run::runtime::{ContainerSpec, Lab, LabError};
use crate::scenario::node::{BackendNode, Server, BACKEND_PORT};

/// The backend's command and environment, set on `spec`.
pub fn command(backend: &BackendNode, spec: &mut ContainerSpec) {
    let dir = "/opt/connlab/backends";
    spec.cmd = match backend.server {
        Server::Node => vec!["node".into(), format!("{dir}/node-server.js")],
        Server::Cherrypy => vec!["python3".into(), format!("{dir}/cherrypy-server.py")],
        Server::Tomcat => vec![format!("{dir}/tomcat-start.sh")],
        Server::ConnlabBackend => {
            let mut cmd = vec![
                "connlab-backend".to_string(),
                "--listen".into(),
                format!("0.0.0.0:{BACKEND_PORT}"),
            ];
            cmd.extend(backend.tunable_args().0);
            cmd
        }
    };
    // Each server's own knob, set by compose/backends/*.
    if let Some(ms) = backend.keepalive_ms {
        let knob = match backend.server {
            Server::Node => Some(("CONNLAB_NODE_KEEPALIVE_MS", ms.to_string())),
            Server::Tomcat => Some(("CONNLAB_TOMCAT_KEEPALIVE_MS", ms.to_string())),
            Server::Cherrypy => Some((
                "CONNLAB_CHERRYPY_SOCKET_TIMEOUT_S",
                format!("{}", ms as f64 / 1000.0),
            )),
            Server::ConnlabBackend => None,
        };
        spec.env.extend(knob.map(|(k, v)| (k.to_string(), v)));
    }
}

/// Starts the backend and waits until it accepts connections (Tomcat's JVM
/// takes a few seconds).
pub async fn start(
    lab: &mut Lab,
    backend: &BackendNode,
    mut spec: ContainerSpec,
) -> Result<(), LabError> {
    command(backend, &mut spec);
    let name = spec.role.clone();
    lab.start(spec).await?;
    lab.wait_until(&name, &ready_probe(), Duration::from_secs(60))
        .await
}

/// A shell snippet that succeeds once the server accepts connections.
pub fn ready_probe() -> String {
    format!("bash -c 'echo > /dev/tcp/127.0.0.1/{BACKEND_PORT}' 2>/dev/null")
}
