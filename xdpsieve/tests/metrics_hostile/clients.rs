//! The hostile clients of `metrics_hostile`, and the well-behaved scraper that must keep
//! working among them. All run on a thread that has entered the firewall's namespace.

use std::{
    io::{ErrorKind, Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use super::{METRICS, limits};

pub(crate) fn connect() -> std::io::Result<TcpStream> {
    let addr: SocketAddr = METRICS.parse().expect("address");
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    Ok(stream)
}

/// Reads until the server closes (EOF or reset) or `limit` passes; the bool says it closed.
pub(crate) fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return (got, true),
        }
    }
    (got, false)
}

/// Sends `request` (the server may cut it short) and returns what came back before the close.
pub(crate) fn exchange(request: &[u8]) -> String {
    let mut stream = connect().expect("connecting to the metrics port");
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    // A server that answers early and closes makes the rest of the write fail: expected.
    let _ = stream.write_all(request);
    let (got, closed) = read_until_closed(&mut stream, Duration::from_secs(8));
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(closed, "the server kept the connection open after: {text}");
    text
}

/// One scrape; the status code and the body.
pub(crate) fn scrape() -> std::io::Result<(u16, String)> {
    let mut stream = connect()?;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: fw\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let code = response
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {response:?}")))?;
    Ok((code, response))
}

/// Scrapes until one answers, for at most `limit`; how long it took and the response.
pub(crate) fn scrape_within(limit: Duration) -> (Duration, String) {
    let start = Instant::now();
    loop {
        match scrape() {
            Ok((200, body)) => return (start.elapsed(), body),
            other => assert!(
                start.elapsed() < limit,
                "no scrape answered within {limit:?}: last {other:?}"
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The status line of a response, for messages.
pub(crate) fn status_line(response: &str) -> &str {
    response.lines().next().unwrap_or("")
}

/// What a request that may be answered with a 4xx or just closed expects.
const CLOSED_OR_4XX: &str = "closed, or a 4xx";

pub(crate) fn one_shot_hostile_requests() {
    let cases: [(&str, Vec<u8>, &str); 7] = [
        (
            "Content-Length past u64's limit",
            b"GET /metrics HTTP/1.1\r\nHost: fw\r\nContent-Length: 18446744073709551615\r\n\r\n"
                .to_vec(),
            // hyper's parser refuses it (as 431: its "too large" error) before we see it.
            "HTTP/1.1 4",
        ),
        (
            "huge Content-Length, no body",
            b"GET /metrics HTTP/1.1\r\nHost: fw\r\nContent-Length: 18446744073709551613\r\n\r\n"
                .to_vec(),
            "HTTP/1.1 400",
        ),
        (
            "POST announcing a terabyte",
            b"POST /metrics HTTP/1.1\r\nHost: fw\r\nContent-Length: 1000000000000\r\n\r\nabc"
                .to_vec(),
            "HTTP/1.1 405",
        ),
        (
            "chunked body that never ends",
            [
                b"GET /metrics HTTP/1.1\r\nHost: fw\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
                b"ffffffff\r\n".repeat(1000),
            ]
            .concat(),
            "HTTP/1.1 400",
        ),
        (
            "1 MiB header",
            [
                b"GET /metrics HTTP/1.1\r\nHost: fw\r\nX-Big: ".to_vec(),
                vec![b'a'; 1 << 20],
                b"\r\n\r\n".to_vec(),
            ]
            .concat(),
            "HTTP/1.1 431",
        ),
        (
            "10,000 small headers",
            [
                b"GET /metrics HTTP/1.1\r\nHost: fw\r\n".to_vec(),
                b"X: y\r\n".repeat(10_000),
                b"\r\n".to_vec(),
            ]
            .concat(),
            "HTTP/1.1 431",
        ),
        (
            "an HTTP/2 preface",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
            // An HTTP/1-only hyper may close without an answer.
            CLOSED_OR_4XX,
        ),
    ];
    for (what, request, expected) in cases {
        let response = exchange(&request);
        let refused = if expected == CLOSED_OR_4XX {
            response.is_empty() || response.starts_with("HTTP/1.1 4")
        } else {
            response.starts_with(expected)
        };
        assert!(
            refused,
            "{what}: expected {expected:?}, got {:?}",
            status_line(&response)
        );
    }
    // Garbage: binary noise from a fixed-seed generator, then the same with CRLFs in it.
    let mut state: u32 = 0x2545_f491;
    let mut noise = vec![0u8; 64 * 1024];
    for byte in noise.iter_mut() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        *byte = state as u8;
    }
    let mut lines = noise.clone();
    for i in (0..lines.len()).step_by(37) {
        lines[i] = b'\n';
    }
    for (what, request) in [("noise", noise), ("noise with line breaks", lines)] {
        let response = exchange(&request);
        assert!(
            response.is_empty() || response.starts_with("HTTP/1.1 4"),
            "{what}: got {:?}",
            status_line(&response)
        );
    }
}

/// Sends a request head one byte every 300 ms: the server must close it at its header read
/// timeout, not wait for the client.
pub(crate) fn header_dribbler_is_cut_off() {
    let mut stream = connect().expect("connecting");
    stream.set_nonblocking(true).expect("nonblocking");
    let start = Instant::now();
    let head = b"GET /metrics HTTP/1.1\r\nHost: fw\r\nX-Slow: ".to_vec();
    let timeout = limits().header_read_timeout;
    let limit = timeout + Duration::from_secs(4);
    let mut buf = [0u8; 1024];
    let mut closed = false;
    for byte in head.iter().chain(std::iter::repeat(&b'z')) {
        if start.elapsed() > limit {
            break;
        }
        if stream.write(&[*byte]).is_err() {
            closed = true;
            break;
        }
        match stream.read(&mut buf) {
            Ok(_) => {
                closed = true;
                break;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let took = start.elapsed();
    assert!(
        closed,
        "a header dribbler was still connected after {took:?}"
    );
    assert!(took >= timeout - Duration::from_millis(500), "{took:?}");
}

/// Pipelines thousands of scrapes and never reads the answers: the server blocks writing to
/// it, then must drop it at the end of the connection's lifetime.
pub(crate) fn start_slow_reader() -> TcpStream {
    let mut stream = connect().expect("connecting");
    stream
        .set_write_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let request = b"GET /metrics HTTP/1.1\r\nHost: fw\r\n\r\n".repeat(20_000);
    // The server stops reading once its writes block: a short write is the expected end.
    let _ = stream.write_all(&request);
    stream
}

pub(crate) fn slow_reader_was_dropped(mut stream: TcpStream) {
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let (got, closed) = read_until_closed(&mut stream, Duration::from_secs(10));
    assert!(
        closed,
        "the server still served a reader that never read, {} bytes buffered",
        got.len()
    );
    let answered = got.windows(15).filter(|w| w == b"HTTP/1.1 200 OK").count();
    assert!(
        answered < 20_000,
        "all 20,000 pipelined scrapes were answered"
    );
}

/// Opens up to `count` connections that send nothing, within 30 s.
pub(crate) fn open_idle(count: usize) -> Vec<TcpStream> {
    let start = Instant::now();
    let mut idle = Vec::with_capacity(count);
    for _ in 0..count {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "opening connections is too slow"
        );
        if let Ok(stream) = connect() {
            idle.push(stream);
        }
    }
    assert!(
        idle.len() >= count * 9 / 10,
        "only {} of {count} connections opened",
        idle.len()
    );
    idle
}
