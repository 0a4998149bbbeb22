//! `--backend CLUSTER=node|cherrypy|tomcat|close|MS`: what the dump cannot
//! say, the backend's idle keep-alive timeout. The named servers' timeouts
//! are the filter's table (their defaults, measured in the lab:
//! compose/lab-image/README.md).

use super::dump::Dump;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// `Node.js`, `CherryPy`, `Tomcat`, or `stated` for a number.
    pub server: String,
    /// Closes connections idle this long; `None` with `close_per_request`.
    pub keepalive_ms: Option<u64>,
    /// Closes after every response (HTTP/1.0 style, `Connection: close`).
    pub close_per_request: bool,
}

impl Backend {
    pub fn describe(&self) -> String {
        match (self.close_per_request, self.keepalive_ms) {
            (true, _) => "the backend closes after every response".into(),
            (false, Some(ms)) if self.server == "stated" => format!(
                "the backend's keep-alive timeout {} (--backend)",
                super::value::human_ms(ms)
            ),
            (false, Some(ms)) => format!(
                "{}'s default keep-alive timeout {}",
                self.server,
                super::value::human_ms(ms)
            ),
            (false, None) => "the backend".into(),
        }
    }

    /// The lab's backend kind for a replay (`server = ...`).
    pub fn lab_server(&self) -> Option<&'static str> {
        match self.server.as_str() {
            "Node.js" => Some("node"),
            "CherryPy" => Some("cherrypy"),
            "Tomcat" => Some("tomcat"),
            _ => None,
        }
    }
}

/// Per cluster name (or `*` for every cluster).
#[derive(Debug, Clone, Default)]
pub struct Backends(pub Vec<(String, Backend)>);

impl Backends {
    pub fn parse(args: &[String]) -> Result<Backends, String> {
        let mut out = Vec::new();
        for arg in args {
            let Some((cluster, kind)) = arg.rsplit_once('=') else {
                return Err(format!(
                    "--backend {arg}: expected CLUSTER=node|cherrypy|tomcat|close|MS"
                ));
            };
            out.push((
                cluster.to_string(),
                backend(kind).map_err(|e| format!("--backend {arg}: {e}"))?,
            ));
        }
        Ok(Backends(out))
    }

    pub fn of(&self, cluster: &str) -> Option<&Backend> {
        self.0
            .iter()
            .find(|(c, _)| c == cluster)
            .or_else(|| self.0.iter().find(|(c, _)| c == "*"))
            .map(|(_, b)| b)
    }

    /// A note for each `--backend` that names no cluster of the dump (a
    /// typo would otherwise silently change nothing).
    pub fn unused(&self, dump: &Dump) -> Vec<String> {
        self.0
            .iter()
            .filter(|(c, _)| c != "*" && !dump.clusters.iter().any(|d| &d.name == c))
            .map(|(c, _)| format!("--backend {c}: no cluster of that name in the dump"))
            .collect()
    }
}

fn backend(kind: &str) -> Result<Backend, String> {
    let named = connlab_filter::config::Config::default()
        .server_idle_timeouts
        .into_iter()
        .find(|s| {
            s.name
                .to_ascii_lowercase()
                .trim_end_matches(".js")
                .eq(&kind.to_ascii_lowercase())
        });
    if let Some(s) = named {
        return Ok(Backend {
            server: s.name,
            keepalive_ms: Some(s.idle_ms),
            close_per_request: false,
        });
    }
    if kind == "close" {
        return Ok(Backend {
            server: "close".into(),
            keepalive_ms: None,
            close_per_request: true,
        });
    }
    match kind.parse::<u64>() {
        Ok(ms) if ms > 0 => Ok(Backend {
            server: "stated".into(),
            keepalive_ms: Some(ms),
            close_per_request: false,
        }),
        _ => Err(format!(
            "`{kind}` is not node, cherrypy, tomcat, close or a keep-alive timeout in ms"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_servers_and_numbers() {
        let b = Backends::parse(&["backend=node".into(), "*=360000".into()]).unwrap();
        assert_eq!(b.of("backend").unwrap().keepalive_ms, Some(5000));
        assert_eq!(b.of("backend").unwrap().server, "Node.js");
        assert_eq!(b.of("other").unwrap().keepalive_ms, Some(360_000));
        let t = Backends::parse(&["outbound|80||a=tomcat".into()]).unwrap();
        assert_eq!(t.of("outbound|80||a").unwrap().keepalive_ms, Some(20_000));
        assert!(
            Backends::parse(&["x=cherrypy".into()])
                .unwrap()
                .of("x")
                .unwrap()
                .keepalive_ms
                == Some(10_000)
        );
        assert!(
            Backends::parse(&["x=close".into()])
                .unwrap()
                .of("x")
                .unwrap()
                .close_per_request
        );
        assert!(Backends::parse(&["x=nginx".into()])
            .unwrap_err()
            .contains("`nginx`"));
        assert!(Backends::parse(&["x".into()])
            .unwrap_err()
            .contains("CLUSTER="));
        assert!(Backends::parse(&["x=0".into()]).is_err());
    }
}
