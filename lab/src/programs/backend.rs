//! The tunable backend: a real HTTP/1.1 server on real sockets whose
//! connection handling can be set to each behaviour the failure catalogue
//! needs (idle close, close after N requests, close by RST, close per
//! request, delayed responses, a server-first banner).
//!
//! It is deliberately std-only and thread-per-connection: what matters here is
//! exactly when and how a socket is closed, not throughput.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// How the backend treats its connections. `Default` is a plain keep-alive
/// server that never closes first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Behaviour {
    /// Close a keep-alive connection that has been idle this long after a
    /// response (what Node.js, CherryPy and Tomcat do with their defaults).
    pub idle_close: Option<Duration>,
    /// Answer the Nth request on a connection with `Connection: close` and
    /// close it (an S3-style server).
    pub close_after: Option<u32>,
    /// After a `Connection: close` response, wait up to this long for the
    /// client to close first before closing (so the *client* holds
    /// TIME_WAIT, as behind a server that leaves the close to its client).
    /// `None`: close at once (the server holds TIME_WAIT).
    pub await_client_close: Option<Duration>,
    /// Close with an RST (SO_LINGER 0) instead of a FIN.
    pub close_with_rst: bool,
    /// HTTP/1.0-style: every response carries `Connection: close` and the
    /// server closes first, so the server side holds TIME_WAIT.
    pub close_per_request: bool,
    /// Wait this long before answering each request.
    pub response_delay: Duration,
    /// Send this line as soon as a connection is accepted (server-first
    /// protocols such as SMTP or MySQL).
    pub banner: Option<String>,
}

/// A backend serving on a background thread; stops when dropped.
pub struct Running {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Running {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Starts serving on `bind` (port 0 picks a free port) in the background.
pub fn spawn(bind: SocketAddr, behaviour: Behaviour) -> io::Result<Running> {
    let listener = TcpListener::bind(bind)?;
    let addr = listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    thread::spawn(move || serve_until(listener, behaviour, &flag));
    Ok(Running { addr, stop })
}

/// Serves forever (the `connlab-backend` binary).
pub fn serve(listener: TcpListener, behaviour: Behaviour) {
    serve_until(listener, behaviour, &AtomicBool::new(false));
}

fn serve_until(listener: TcpListener, behaviour: Behaviour, stop: &AtomicBool) {
    let behaviour = Arc::new(behaviour);
    let connections = Arc::new(AtomicU64::new(0));
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let id = connections.fetch_add(1, Ordering::SeqCst) + 1;
        let behaviour = Arc::clone(&behaviour);
        thread::spawn(move || {
            let _ = handle(stream, id, &behaviour);
        });
    }
}

fn handle(mut stream: TcpStream, conn_id: u64, b: &Behaviour) -> io::Result<()> {
    stream.set_nodelay(true)?;
    if let Some(banner) = &b.banner {
        stream.write_all(banner.as_bytes())?;
        stream.write_all(b"\r\n")?;
    }
    let mut buf = Vec::with_capacity(4096);
    let mut served: u32 = 0;
    loop {
        // Between requests the connection is idle: that is the only time the
        // idle timeout applies, as in the real servers it imitates.
        stream.set_read_timeout(b.idle_close)?;
        let Some(request) = read_request(&mut stream, &mut buf)? else {
            return close(stream, b.close_with_rst);
        };
        served += 1;
        if !b.response_delay.is_zero() {
            thread::sleep(b.response_delay);
        }
        let closing = b.close_per_request
            || b.close_after.is_some_and(|n| served >= n)
            || request.wants_close;
        let body = format!("ok conn={conn_id} nth={served}\n");
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\
             x-backend-conn: {conn_id}\r\nx-backend-nth: {served}\r\nconnection: {}\r\n\r\n{body}",
            body.len(),
            if closing { "close" } else { "keep-alive" },
        );
        stream.write_all(response.as_bytes())?;
        if closing {
            if let Some(wait) = b.await_client_close {
                await_close(&mut stream, wait)?;
            }
            return close(stream, b.close_with_rst);
        }
    }
}

/// Reads (and drops) until the peer closes or `wait` passes.
fn await_close(stream: &mut TcpStream, wait: Duration) -> io::Result<()> {
    stream.set_read_timeout(Some(wait))?;
    let deadline = std::time::Instant::now() + wait;
    let mut sink = [0u8; 4096];
    while std::time::Instant::now() < deadline {
        match stream.read(&mut sink) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(())
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn close(stream: TcpStream, with_rst: bool) -> io::Result<()> {
    if with_rst {
        socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO))?;
        drop(stream);
        return Ok(());
    }
    stream.shutdown(Shutdown::Write)
}

struct Request {
    wants_close: bool,
}

/// Reads one request head (and skips its body). `None` when the peer closed
/// or the idle timeout passed with no request.
fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<Option<Request>> {
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            break end + 4;
        }
        if buf.len() > 64 * 1024 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request head too large",
            ));
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(None),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let body_len = header(&head, "content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let http10 = head
        .lines()
        .next()
        .is_some_and(|line| line.ends_with("http/1.0"));
    let connection = header(&head, "connection");
    let wants_close = connection == Some("close") || (http10 && connection != Some("keep-alive"));
    while buf.len() < head_end + body_len {
        match stream.read(&mut chunk)? {
            0 => return Ok(None),
            n => buf.extend_from_slice(&chunk[..n]),
        }
    }
    buf.drain(..head_end + body_len);
    Ok(Some(Request { wants_close }))
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == name).then(|| value.trim())
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
