//! Tiny purpose-built upstreams for the filter's diagnosis tests, each
//! causing one failure for real on loopback sockets. They serve on a
//! background thread until dropped.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use socket2::{Domain, Socket, Type};

const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: keep-alive\r\n\r\nok\n";

/// A server thread that stops when dropped.
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Server {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

/// Closes `stream` with an RST (SO_LINGER 0).
pub fn reset(stream: TcpStream) {
    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    drop(stream);
}

/// Reads one request head; false when the peer closed first.
fn read_head(stream: &mut TcpStream) -> bool {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return false,
        }
        if head.len() > 16 * 1024 {
            return false;
        }
    }
    true
}

/// Serves with `handle(connection number from 1, stream)` per connection.
fn serve(handle: impl Fn(usize, TcpStream) + Send + Sync + 'static) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("local address");
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let handle = Arc::new(handle);
    let count = AtomicUsize::new(0);
    thread::spawn(move || {
        for stream in listener.incoming() {
            if flag.load(Ordering::SeqCst) {
                return;
            }
            let Ok(stream) = stream else { continue };
            let n = count.fetch_add(1, Ordering::SeqCst) + 1;
            let handle = Arc::clone(&handle);
            thread::spawn(move || handle(n, stream));
        }
    });
    Server { addr, stop }
}

/// Resets the first connection as soon as its request arrives; answers
/// every request on later connections.
pub fn reset_first_connection() -> Server {
    serve(|n, mut stream| {
        if n == 1 {
            read_head(&mut stream);
            return reset(stream);
        }
        while read_head(&mut stream) {
            if stream.write_all(OK).is_err() {
                return;
            }
        }
    })
}

/// Answers the first request on each connection and keeps it alive, then
/// resets the connection when the next request arrives on it: what a
/// backend that closed an idle keep-alive connection does to a request
/// already on the wire.
pub fn reset_reused_connection() -> Server {
    serve(|_, mut stream| {
        if read_head(&mut stream) && stream.write_all(OK).is_ok() && read_head(&mut stream) {
            reset(stream);
        }
    })
}

/// Resets every connection once its request arrives.
pub fn reset_every_request() -> Server {
    serve(|_, mut stream| {
        read_head(&mut stream);
        reset(stream);
    })
}

/// A listening socket that never accepts and whose accept queue is already
/// full, so a new connection's SYN is dropped and connect() times out. The
/// filler connections are kept open with it.
pub struct FullBacklog {
    pub addr: SocketAddr,
    _listener: Socket,
    _fillers: Vec<TcpStream>,
}

pub fn full_backlog() -> FullBacklog {
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    let bind: SocketAddr = "127.0.0.1:0".parse().expect("address");
    listener.bind(&bind.into()).expect("bind");
    listener.listen(0).expect("listen");
    let addr = listener
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .expect("local address");
    // With backlog 0 the kernel queues one connection; fill it (and any
    // slack) until a connect attempt times out.
    let mut fillers = Vec::new();
    for _ in 0..8 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(s) => fillers.push(s),
            Err(_) => break,
        }
    }
    FullBacklog {
        addr,
        _listener: listener,
        _fillers: fillers,
    }
}

/// Reads and discards everything each connection sends until the peer
/// closes; counts the bytes so a test can wait until its data got through.
pub struct Sink {
    pub server: Server,
    pub received: Arc<AtomicUsize>,
}

pub fn sink() -> Sink {
    let received = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&received);
    let server = serve(move |_, mut stream| {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = stream.read(&mut buf) {
            counter.fetch_add(n, Ordering::SeqCst);
        }
    });
    Sink { server, received }
}

/// Answers every request with `503 Service Unavailable` (a backend that is
/// up but failing), keeping the connection alive.
pub fn always_503() -> Server {
    serve(|_, mut stream| {
        let response =
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: keep-alive\r\n\r\n";
        while read_head(&mut stream) {
            if stream.write_all(response).is_err() {
                return;
            }
        }
    })
}

/// Answers the first request on each connection and keeps it alive; on the
/// next request it waits `after` and then resets the connection: a backend
/// that crashed (or was killed) while handling a request, not one that
/// closed an idle connection.
pub fn reset_reused_connection_after(after: Duration) -> Server {
    serve(move |_, mut stream| {
        if read_head(&mut stream) && stream.write_all(OK).is_ok() && read_head(&mut stream) {
            thread::sleep(after);
            reset(stream);
        }
    })
}

/// Answers the first request on each connection and keeps it alive, then
/// answers the next one with bytes that are not HTTP: an upstream protocol
/// error (UPE) on a reused connection.
pub fn garbage_on_reused_connection() -> Server {
    serve(|_, mut stream| {
        if read_head(&mut stream) && stream.write_all(OK).is_ok() && read_head(&mut stream) {
            let _ = stream.write_all(b"HTTP/1.1 2x0 Not\x01Valid\r\n\r\n");
            thread::sleep(Duration::from_millis(200));
        }
    })
}

/// Answers every request with `status` (no body), keeping the connection
/// alive, after `delay`.
pub fn always(status: u16, delay: Duration) -> Server {
    serve(move |_, mut stream| {
        let response = format!(
            "HTTP/1.1 {status} Status\r\ncontent-length: 0\r\nconnection: keep-alive\r\n\r\n"
        );
        while read_head(&mut stream) {
            thread::sleep(delay);
            if stream.write_all(response.as_bytes()).is_err() {
                return;
            }
        }
    })
}

/// Reads one request head and then holds the connection without answering
/// until the peer closes (a backend slower than any client).
pub fn never_answers() -> Server {
    serve(|_, mut stream| {
        read_head(&mut stream);
        let mut buf = [0u8; 256];
        while let Ok(1..) = stream.read(&mut buf) {}
    })
}

/// How a tunnel's backend ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelEnd {
    /// An RST (SO_LINGER 0): the tunnel is cut.
    Reset,
    /// A FIN after its reply: the tunnel ends cleanly.
    Close,
}

/// Answers a tunnel's request head with `answer` (a WebSocket `101` or a
/// CONNECT `200`), reads what the tunnel carries until `after` bytes
/// arrived, echoes `bye`, then ends the connection as `end` says.
pub fn tunnel(answer: &'static [u8], after: usize, end: TunnelEnd) -> Server {
    serve(move |_, mut stream| {
        if !read_head(&mut stream) || stream.write_all(answer).is_err() {
            return;
        }
        let mut seen = 0;
        let mut buf = [0u8; 1024];
        while seen < after {
            match stream.read(&mut buf) {
                Ok(n @ 1..) => seen += n,
                _ => return,
            }
        }
        match end {
            TunnelEnd::Reset => reset(stream),
            TunnelEnd::Close => {
                let _ = stream.write_all(b"bye");
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }
        }
    })
}

pub const WEBSOCKET_101: &[u8] =
    b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n";
pub const CONNECT_200: &[u8] = b"HTTP/1.1 200 OK\r\n\r\n";

/// Answers an upgrade (WebSocket) handshake with `101 Switching Protocols`,
/// reads what the tunnel carries until `reset_after` bytes arrived, then
/// resets the connection: a tunnel that ends in a reset.
pub fn upgrade_then_reset(reset_after: usize) -> Server {
    tunnel(WEBSOCKET_101, reset_after, TunnelEnd::Reset)
}

/// A minimal HTTP/2 (h2c, prior knowledge) server: answers each connection's
/// first stream `200`, and resets every later stream with RST_STREAM
/// (`goaway` false) or a GOAWAY (`goaway` true) that refuses it. Only what
/// Envoy's codec needs: SETTINGS, their ACK, HEADERS read by stream id
/// (no HPACK decoding), `:status 200` encoded as the static-table index 8.
pub fn h2_reset_later_streams(goaway: bool) -> Server {
    serve_h2(move || {
        let mut answered = 0u32;
        move |frame: &H2Frame| match frame.kind {
            // HEADERS: answer the first stream, reset the others.
            1 if answered == 0 => {
                answered += 1;
                // END_STREAM | END_HEADERS, ":status: 200".
                Some(h2_frame(1, 0x5, frame.id, &[0x88]))
            }
            1 if goaway => {
                let mut body = (frame.id.saturating_sub(2)).to_be_bytes().to_vec();
                body.extend_from_slice(&7u32.to_be_bytes()); // REFUSED_STREAM
                Some(h2_frame(7, 0, 0, &body))
            }
            // RST_STREAM INTERNAL_ERROR.
            1 => Some(h2_frame(3, 0, frame.id, &2u32.to_be_bytes())),
            _ => None,
        }
    })
}

/// An h2c (prior knowledge) server answering the `n`th request it sees
/// (over all connections, from 0) with one HEADERS frame that ends the
/// stream: `:status 200` and the headers `answer(n)` gives, as HPACK
/// literals without indexing or Huffman (what Envoy's codec needs).
pub fn h2_headers_only(
    answer: impl Fn(usize) -> Vec<(String, String)> + Send + Sync + 'static,
) -> Server {
    let next = Arc::new(AtomicUsize::new(0));
    let answer = Arc::new(answer);
    serve_h2(move || {
        let (next, answer) = (Arc::clone(&next), Arc::clone(&answer));
        move |frame: &H2Frame| {
            // Only the frame that ends the request (HEADERS or DATA with
            // END_STREAM) is answered.
            if !matches!(frame.kind, 0 | 1) || frame.flags & 1 == 0 {
                return None;
            }
            let mut block = vec![0x88]; // :status 200
            for (name, value) in answer(next.fetch_add(1, Ordering::SeqCst)) {
                block.push(0x00);
                block.push(name.len() as u8);
                block.extend_from_slice(name.as_bytes());
                block.push(value.len() as u8);
                block.extend_from_slice(value.as_bytes());
            }
            // END_STREAM | END_HEADERS.
            Some(h2_frame(1, 0x5, frame.id, &block))
        }
    })
}

/// Serves h2c (prior knowledge): reads the preface, sends empty SETTINGS,
/// acknowledges the client's SETTINGS and PINGs, and writes what the
/// connection's handler (`handler()`, one per connection) returns for
/// every other frame. Only what Envoy's codec needs.
fn serve_h2<H>(handler: impl Fn() -> H + Send + Sync + 'static) -> Server
where
    H: FnMut(&H2Frame) -> Option<Vec<u8>>,
{
    serve(move |_, mut stream| {
        let mut preface = [0u8; 24];
        if stream.read_exact(&mut preface).is_err()
            || stream.write_all(&h2_frame(4, 0, 0, &[])).is_err()
        {
            return;
        }
        let mut handle = handler();
        while let Some(frame) = read_h2_frame(&mut stream) {
            let reply = match frame.kind {
                4 if frame.flags & 1 == 0 => Some(h2_frame(4, 1, 0, &[])),
                6 if frame.flags & 1 == 0 => Some(h2_frame(6, 1, 0, &frame.payload)),
                _ => handle(&frame),
            };
            if let Some(reply) = reply {
                if stream.write_all(&reply).is_err() {
                    return;
                }
            }
        }
    })
}

/// A gRPC server: the `n`th call gets a trailers-only answer with
/// `grpc-status` `statuses[n]` (the last one again past the end).
pub fn grpc_statuses(statuses: &'static [u32]) -> Server {
    h2_headers_only(move |n| {
        vec![
            ("content-type".into(), "application/grpc".into()),
            (
                "grpc-status".into(),
                statuses[n.min(statuses.len() - 1)].to_string(),
            ),
        ]
    })
}

/// Answers `200` with `content-length: 100`, sends 10 bytes of the body,
/// then resets: an ordinary response cut off after it started.
pub fn partial_response_then_reset() -> Server {
    serve(|_, mut stream| {
        if read_head(&mut stream)
            && stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789")
                .is_ok()
        {
            thread::sleep(Duration::from_millis(100));
            reset(stream);
        }
    })
}

struct H2Frame {
    kind: u8,
    flags: u8,
    id: u32,
    payload: Vec<u8>,
}

/// The next frame; `None` when the peer closed.
fn read_h2_frame(stream: &mut TcpStream) -> Option<H2Frame> {
    let mut head = [0u8; 9];
    stream.read_exact(&mut head).ok()?;
    let len = (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).ok()?;
    Some(H2Frame {
        kind: head[3],
        flags: head[4],
        id: u32::from_be_bytes([head[5] & 0x7f, head[6], head[7], head[8]]),
        payload,
    })
}

fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut frame = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    frame.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// Reads each request with its `content-length` body and answers `size`
/// bytes of body, keeping the connection alive (the bench's large-body
/// workload).
pub fn large_response(size: usize) -> Server {
    serve(move |_, stream| {
        let mut reader = std::io::BufReader::new(match stream.try_clone() {
            Ok(s) => s,
            Err(_) => return,
        });
        let mut writer = stream;
        let head =
            format!("HTTP/1.1 200 OK\r\ncontent-length: {size}\r\nconnection: keep-alive\r\n\r\n");
        let body = vec![b'x'; size];
        loop {
            let mut length = 0usize;
            let mut line = String::new();
            loop {
                line.clear();
                match std::io::BufRead::read_line(&mut reader, &mut line) {
                    Ok(1..) => {}
                    _ => return,
                }
                if line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
            }
            if std::io::copy(&mut (&mut reader).take(length as u64), &mut std::io::sink()).is_err()
            {
                return;
            }
            if writer.write_all(head.as_bytes()).is_err() || writer.write_all(&body).is_err() {
                return;
            }
        }
    })
}
