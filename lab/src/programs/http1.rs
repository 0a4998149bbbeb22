//! A connection-level HTTP/1.1 client: one request at a time on a socket the
//! caller owns, so tests and the load generator decide exactly when a
//! connection is reused, and every failure is classified the way an SRE
//! reads it (reset, EOF, timeout, connect error with errno).

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// How a request failed, as the client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "errno")]
pub enum ErrorKind {
    /// The peer reset the connection (ECONNRESET / EPIPE).
    Reset,
    /// The connection closed before a whole response arrived.
    Eof,
    /// No response within the read timeout.
    Timeout,
    /// connect() failed with this errno.
    Connect(i32),
    /// Anything else (a malformed response).
    Protocol,
    /// The load generator's run ended (its duration bound) while this
    /// request was still waiting. `Conn` never returns it; the client records
    /// it so a request that would have hung forever is still a row.
    Unfinished,
}

impl ErrorKind {
    fn from_io(err: &io::Error) -> Self {
        match err.kind() {
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => ErrorKind::Reset,
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ErrorKind::Timeout,
            io::ErrorKind::UnexpectedEof => ErrorKind::Eof,
            _ => ErrorKind::Protocol,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Header names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Socket options for [`Conn::connect_with`]; `Default` is a plain connect.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// Bind this local address before connecting, with SO_REUSEADDR (a
    /// pinned source port; a 4-tuple still in use fails with `Connect(99)`).
    pub bind: Option<SocketAddr>,
    /// TCP_USER_TIMEOUT: give up on unacknowledged data after this long.
    pub tcp_user_timeout: Option<Duration>,
    /// SO_KEEPALIVE with these probe timings.
    pub keepalive: Option<socket2::TcpKeepalive>,
}

pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    read_timeout: Cell<Option<Duration>>,
    deadline: Cell<Option<Instant>>,
}

impl Conn {
    pub fn connect(addr: SocketAddr, timeout: Duration) -> Result<Conn, ErrorKind> {
        Conn::connect_with(addr, timeout, &ConnectOptions::default())
    }

    /// Connects with socket options set before `connect()`. A connect that
    /// runs out of time is `Connect(110)` (ETIMEDOUT), like the kernel's own.
    pub fn connect_with(
        addr: SocketAddr,
        timeout: Duration,
        options: &ConnectOptions,
    ) -> Result<Conn, ErrorKind> {
        let connect_error = |e: io::Error| match e.raw_os_error() {
            Some(errno) => ErrorKind::Connect(errno),
            None if e.kind() == io::ErrorKind::TimedOut => ErrorKind::Connect(libc::ETIMEDOUT),
            None => ErrorKind::from_io(&e),
        };
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )
        .map_err(connect_error)?;
        if let Some(bind) = options.bind {
            socket.set_reuse_address(true).map_err(connect_error)?;
            socket.bind(&bind.into()).map_err(connect_error)?;
        }
        if let Some(user_timeout) = options.tcp_user_timeout {
            socket
                .set_tcp_user_timeout(Some(user_timeout))
                .map_err(connect_error)?;
        }
        if let Some(keepalive) = &options.keepalive {
            socket.set_tcp_keepalive(keepalive).map_err(connect_error)?;
        }
        socket
            .connect_timeout(&addr.into(), timeout)
            .map_err(connect_error)?;
        let stream = TcpStream::from(socket);
        let _ = stream.set_nodelay(true);
        Ok(Conn {
            stream,
            buf: Vec::new(),
            read_timeout: Cell::new(None),
            deadline: Cell::new(None),
        })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.stream.local_addr().ok()
    }

    /// `None` waits forever (the half-open scenario's broken client). It
    /// bounds each `read()`, not a whole response; see [`Conn::set_deadline`].
    pub fn set_read_timeout(&self, timeout: Option<Duration>) {
        self.read_timeout.set(timeout);
        let _ = self.stream.set_read_timeout(timeout);
    }

    /// Reads and writes give up with `Timeout` at this instant, however the
    /// bytes trickle in. `None` removes the deadline.
    pub fn set_deadline(&self, deadline: Option<Instant>) {
        self.deadline.set(deadline);
        if deadline.is_none() {
            let _ = self.stream.set_read_timeout(self.read_timeout.get());
            let _ = self.stream.set_write_timeout(None);
        }
    }

    /// Applies the deadline to the socket before a blocking call.
    fn arm_deadline(&self) -> Result<(), ErrorKind> {
        let Some(deadline) = self.deadline.get() else {
            return Ok(());
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ErrorKind::Timeout);
        }
        let read = self.read_timeout.get().map_or(left, |t| t.min(left));
        let _ = self.stream.set_read_timeout(Some(read));
        let _ = self.stream.set_write_timeout(Some(left));
        Ok(())
    }

    /// Sends `GET path` and reads the whole response.
    pub fn get(&mut self, path: &str) -> Result<Response, ErrorKind> {
        let request = format!("GET {path} HTTP/1.1\r\nhost: connlab\r\n\r\n");
        self.send_raw(request.as_bytes())?;
        self.read_response()
    }

    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ErrorKind> {
        self.arm_deadline()?;
        self.stream
            .write_all(bytes)
            .map_err(|e| ErrorKind::from_io(&e))
    }

    pub fn read_response(&mut self) -> Result<Response, ErrorKind> {
        let (status, headers, head_len) = loop {
            if let Some(head) = parse_head(&self.buf)? {
                break head;
            }
            self.fill()?;
        };
        self.buf.drain(..head_len);
        let chunked = headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
        let body = if chunked {
            self.read_chunked()?
        } else {
            let len = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.parse::<usize>().ok())
                .unwrap_or(0);
            self.take(len)?
        };
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// The next `len` bytes of the stream.
    fn take(&mut self, len: usize) -> Result<Vec<u8>, ErrorKind> {
        while self.buf.len() < len {
            self.fill()?;
        }
        Ok(self.buf.drain(..len).collect())
    }

    /// Consumes a CRLF-terminated line; whether it was empty.
    fn take_line(&mut self) -> Result<bool, ErrorKind> {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                self.buf.drain(..end + 2);
                return Ok(end == 0);
            }
            self.fill()?;
        }
    }

    /// A chunked body (Envoy's admin API sends these); trailers are skipped.
    fn read_chunked(&mut self) -> Result<Vec<u8>, ErrorKind> {
        let mut body = Vec::new();
        loop {
            let (consumed, size) = loop {
                match httparse::parse_chunk_size(&self.buf) {
                    Ok(httparse::Status::Complete(parsed)) => break parsed,
                    Ok(httparse::Status::Partial) => self.fill()?,
                    Err(_) => return Err(ErrorKind::Protocol),
                }
            };
            self.buf.drain(..consumed);
            if size == 0 {
                while !self.take_line()? {}
                return Ok(body);
            }
            let size = usize::try_from(size).map_err(|_| ErrorKind::Protocol)?;
            body.extend(self.take(size)?);
            self.take_line()?;
        }
    }

    fn fill(&mut self) -> Result<(), ErrorKind> {
        self.arm_deadline()?;
        let mut chunk = [0u8; 8192];
        match self.stream.read(&mut chunk) {
            Ok(0) => Err(ErrorKind::Eof),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e) => Err(ErrorKind::from_io(&e)),
        }
    }
}

/// A response head: status, headers (names lower-cased) and its length;
/// `None` while incomplete.
#[allow(clippy::type_complexity)]
fn parse_head(buf: &[u8]) -> Result<Option<(u16, Vec<(String, String)>, usize)>, ErrorKind> {
    let mut slots = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut slots);
    match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => {
            let status = response.code.ok_or(ErrorKind::Protocol)?;
            let headers = response
                .headers
                .iter()
                .map(|h| {
                    let value = String::from_utf8_lossy(h.value).trim().to_string();
                    (h.name.to_ascii_lowercase(), value)
                })
                .collect();
            Ok(Some((status, headers, len)))
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(_) => Err(ErrorKind::Protocol),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::programs::backend::{self, Behaviour};

    fn local() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    #[test]
    fn keep_alive_then_close_after_n() {
        let server = backend::spawn(
            local(),
            Behaviour {
                close_after: Some(2),
                ..Default::default()
            },
        )
        .unwrap();
        let mut conn = Conn::connect(server.addr(), Duration::from_secs(2)).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(2)));
        let first = conn.get("/").unwrap();
        assert_eq!(first.header("connection"), Some("keep-alive"));
        let second = conn.get("/").unwrap();
        assert_eq!(second.header("x-backend-nth"), Some("2"));
        assert_eq!(second.header("connection"), Some("close"));
        let after_close = conn.get("/").unwrap_err();
        assert!(
            matches!(after_close, ErrorKind::Eof | ErrorKind::Reset),
            "{after_close:?}"
        );
    }

    #[test]
    fn connect_with_sets_socket_options() {
        let server = backend::spawn(local(), Behaviour::default()).unwrap();
        let port = std::net::TcpListener::bind(local())
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let options = ConnectOptions {
            bind: Some(SocketAddr::new(local().ip(), port)),
            tcp_user_timeout: Some(Duration::from_millis(1500)),
            keepalive: Some(
                socket2::TcpKeepalive::new()
                    .with_time(Duration::from_secs(7))
                    .with_interval(Duration::from_secs(2))
                    .with_retries(3),
            ),
        };
        let mut conn = Conn::connect_with(server.addr(), Duration::from_secs(2), &options).unwrap();
        let socket = socket2::SockRef::from(&conn.stream);
        assert_eq!(conn.local_addr().map(|a| a.port()), Some(port));
        assert!(socket.reuse_address().unwrap());
        assert_eq!(
            socket.tcp_user_timeout().unwrap(),
            Some(Duration::from_millis(1500))
        );
        assert!(socket.keepalive().unwrap());
        assert_eq!(socket.keepalive_time().unwrap(), Duration::from_secs(7));
        assert_eq!(socket.keepalive_interval().unwrap(), Duration::from_secs(2));
        assert_eq!(socket.keepalive_retries().unwrap(), 3);
        conn.set_read_timeout(Some(Duration::from_secs(2)));
        assert_eq!(conn.get("/").unwrap().status, 200);
    }

    #[test]
    fn deadline_bounds_a_whole_response() {
        let b = Behaviour {
            response_delay: Duration::from_millis(1500),
            ..Default::default()
        };
        let server = backend::spawn(local(), b).unwrap();
        let mut conn = Conn::connect(server.addr(), Duration::from_secs(2)).unwrap();
        let started = Instant::now();
        conn.set_deadline(Some(started + Duration::from_millis(200)));
        assert_eq!(conn.get("/").err(), Some(ErrorKind::Timeout));
        assert!(started.elapsed() < Duration::from_millis(1500));
        // A passed deadline fails at once, before any syscall blocks.
        assert_eq!(conn.send_raw(b"x").err(), Some(ErrorKind::Timeout));
    }

    #[test]
    fn closed_port_is_connect_refused() {
        let port = std::net::TcpListener::bind(local())
            .unwrap()
            .local_addr()
            .unwrap();
        assert_eq!(
            Conn::connect(port, Duration::from_secs(1)).err(),
            Some(ErrorKind::Connect(111))
        );
    }

    #[test]
    fn rst_close_is_seen_as_reset() {
        let b = Behaviour {
            close_after: Some(1),
            close_with_rst: true,
            ..Default::default()
        };
        let server = backend::spawn(local(), b).unwrap();
        let mut conn = Conn::connect(server.addr(), Duration::from_secs(2)).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(2)));
        assert_eq!(conn.get("/").unwrap().status, 200);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(conn.get("/").err(), Some(ErrorKind::Reset));
    }

    /// A one-shot server that writes `bytes` to its first connection.
    fn answers(bytes: &'static [u8]) -> SocketAddr {
        let listener = std::net::TcpListener::bind(local()).unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(bytes);
        });
        addr
    }

    #[test]
    fn chunked_bodies_and_trailers() {
        let addr = answers(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
              5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n",
        );
        let mut conn = Conn::connect(addr, Duration::from_secs(2)).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(2)));
        let response = conn.get("/").unwrap();
        assert_eq!(response.body, b"hello world");
        assert_eq!(response.header("transfer-encoding"), Some("chunked"));
    }

    #[test]
    fn a_malformed_head_is_a_protocol_error() {
        let addr = answers(b"HTTP/1.1 abc OK\r\n\r\n");
        let mut conn = Conn::connect(addr, Duration::from_secs(2)).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(2)));
        assert_eq!(conn.get("/").unwrap_err(), ErrorKind::Protocol);
    }
}
