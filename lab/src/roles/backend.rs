//! Backends: real servers with their real defaults (Node.js `http`,
//! CherryPy, Tomcat 10) and connlab's tunable backend, all on port 8080.

use std::time::Duration;

use serde::Deserialize;

use crate::runtime::{ContainerSpec, Lab, LabError};

pub const ROLE: &str = "backend";
pub const PORT: u16 = 8080;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Server {
    /// Node.js `http` server (keepAliveTimeout 5 s).
    Node,
    /// CherryPy (server.socket_timeout 10 s).
    Cherrypy,
    /// Tomcat 10 (keepAliveTimeout = connectionTimeout 20 s).
    Tomcat,
    /// `connlab-backend`, shaped by `args`.
    Tunable,
}

/// A scenario's `[variants.backend]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backend {
    pub server: Server,
    /// Raise (or lower) the server's keep-alive / socket timeout — the
    /// "fix it in the application" remedy. Absent: the server's default.
    pub keepalive_ms: Option<u64>,
    /// Extra `connlab-backend` flags (tunable only).
    #[serde(default)]
    pub args: Vec<String>,
    /// net.* sysctls of the backend's network namespace, e.g.
    /// `{ "net.ipv4.tcp_timestamps" = "0" }` (set when the container is
    /// created: Docker keeps /proc/sys read-only inside it).
    #[serde(default)]
    pub sysctls: std::collections::HashMap<String, String>,
}

impl Backend {
    fn spec(&self) -> ContainerSpec {
        let dir = "/opt/connlab/backends";
        let cmd: Vec<String> = match self.server {
            Server::Node => vec!["node".into(), format!("{dir}/node-server.js")],
            Server::Cherrypy => vec!["python3".into(), format!("{dir}/cherrypy-server.py")],
            Server::Tomcat => vec![format!("{dir}/tomcat-start.sh")],
            Server::Tunable => {
                let mut cmd = vec![
                    "connlab-backend".to_string(),
                    "--listen".into(),
                    format!("0.0.0.0:{PORT}"),
                ];
                cmd.extend(self.args.iter().cloned());
                cmd
            }
        };
        // Each server's own knob, set by compose/backends/*.
        let env = match (self.server, self.keepalive_ms) {
            (_, None) | (Server::Tunable, _) => vec![],
            (Server::Node, Some(ms)) => vec![("CONNLAB_NODE_KEEPALIVE_MS".into(), ms.to_string())],
            (Server::Tomcat, Some(ms)) => {
                vec![("CONNLAB_TOMCAT_KEEPALIVE_MS".into(), ms.to_string())]
            }
            (Server::Cherrypy, Some(ms)) => {
                vec![(
                    "CONNLAB_CHERRYPY_SOCKET_TIMEOUT_S".into(),
                    format!("{}", ms as f64 / 1000.0),
                )]
            }
        };
        // NET_ADMIN: faults (packet delay, drops) run inside the backend's
        // own network namespace.
        ContainerSpec {
            role: ROLE.into(),
            cmd,
            env,
            net_admin: true,
            sysctls: self.sysctls.clone(),
        }
    }

    /// Starts the backend and waits until it accepts connections (Tomcat's
    /// JVM takes a few seconds).
    pub async fn start(&self, lab: &mut Lab) -> Result<(), LabError> {
        lab.start(self.spec()).await?;
        let probe = format!("bash -c 'echo > /dev/tcp/127.0.0.1/{PORT}' 2>/dev/null");
        lab.wait_until(ROLE, &probe, Duration::from_secs(60)).await
    }
}
