//! The HTTP side of `--metrics`: a hyper 1 HTTP/1.1 server on one dedicated thread running a
//! current-thread tokio runtime, built so that no client can hurt the firewall it reports on.
//!
//! Whatever a client sends, the process must keep running (a crash takes the capture and the
//! event log with it; the XDP program stays, but nobody records what it drops) and must not
//! grow without bound. So:
//! - no thread per connection: connections are tasks on the one metrics thread;
//! - at most [`Limits::max_connections`] connections at once. A new connection over the cap
//!   evicts the oldest one that has not yet sent a complete request (idle, or dribbling its
//!   headers), so a flood of idle connections cannot lock a real scraper out; if every slot is
//!   serving a request, the newcomer is closed at once;
//! - request headers are capped in size (431 past it) and must arrive within
//!   [`Limits::header_read_timeout`], also between keep-alive requests;
//! - a request body is never read: a request that announces one gets its answer and the
//!   connection is closed;
//! - a connection lives at most [`Limits::connection_lifetime`], whatever it does (slow
//!   readers that never take their response, long keep-alive), then is closed;
//! - the thread runs at a lower priority ([`NICENESS`]) than the recorder.

use std::{
    collections::VecDeque,
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use anyhow::{Context as _, Result};
use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode,
    body::{Bytes, Incoming},
    header::{self, HeaderValue},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpListener, sync::oneshot, task::AbortHandle};

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// Produces the body of a scrape; `None` answers 500.
pub(super) type Render = Box<dyn Fn() -> Option<String> + Send + Sync>;

/// What a client may cost the process.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections served at once; over it, the oldest idle one is evicted.
    pub max_connections: usize,
    /// Request line and headers, in bytes.
    pub max_header_bytes: usize,
    /// To send a complete request head, from connect or from the previous response.
    pub header_read_timeout: Duration,
    /// Total life of a connection, requests and responses included.
    pub connection_lifetime: Duration,
    /// After the lifetime, time to finish the response in flight before the close.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 64,
            max_header_bytes: 8 * 1024,
            header_read_timeout: Duration::from_secs(3),
            connection_lifetime: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(1),
        }
    }
}

/// The running HTTP server; stops on drop (promptly: open connections are dropped, not
/// waited for).
pub struct MetricsServer {
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    pub addr: SocketAddr,
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        // Sending fails only if the thread has already ended; either way it ends.
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Listens on `addr` (port 0 picks one: see [`MetricsServer::addr`]) and serves `GET
/// /metrics` with the body `render` produces.
pub(super) fn start(addr: SocketAddr, limits: Limits, render: Render) -> Result<MetricsServer> {
    let listener = std::net::TcpListener::bind(addr).map_err(|e| bind_error(addr, e))?;
    let bound = listener
        .local_addr()
        .with_context(|| format!("reading the address the metrics listener got for {addr}"))?;
    listener
        .set_nonblocking(true)
        .context("making the metrics listener non-blocking")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .context("starting the metrics server's runtime")?;
    let listener = {
        let _entered = runtime.enter();
        TcpListener::from_std(listener).context("registering the metrics listener")?
    };
    let (shutdown, stopped) = oneshot::channel::<()>();
    let render = Arc::new(render);
    let thread = std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            lower_priority();
            runtime.block_on(async move {
                tokio::spawn(accept_loop(listener, limits, render));
                // Err: the server was dropped without sending, which means stop too.
                let _ = stopped.await;
            });
            // Dropping the runtime drops every connection task and closes its socket.
            drop(runtime);
        })
        .context("starting the metrics thread")?;
    Ok(MetricsServer {
        shutdown: Some(shutdown),
        thread: Some(thread),
        addr: bound,
    })
}

/// Niceness of the metrics thread: under a connection flood it yields the CPU to the thread
/// that drains the capture and event buffers.
pub const NICENESS: i32 = 10;

/// Lowers this thread's priority to [`NICENESS`] (on Linux, `setpriority` on a thread ID
/// affects that thread only). Lowering needs no privilege; should it fail all the same, the
/// thread runs at normal priority, as it did before.
fn lower_priority() {
    // SAFETY: gettid has no preconditions; setpriority on our own thread ID.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, NICENESS);
    }
}

/// Tells the operator what is wrong with `--metrics ADDR` and what to do.
fn bind_error(addr: SocketAddr, e: std::io::Error) -> anyhow::Error {
    use std::io::ErrorKind;
    let hint = match e.kind() {
        ErrorKind::AddrInUse => {
            "address in use: another process listens there; pick another port with --metrics"
        }
        ErrorKind::AddrNotAvailable => {
            "address not available: no interface in this network namespace has it"
        }
        ErrorKind::PermissionDenied => "permission denied: ports below 1024 need privilege",
        _ => "",
    };
    if hint.is_empty() {
        anyhow::anyhow!("cannot listen for metrics on {addr}: {e}")
    } else {
        anyhow::anyhow!("cannot listen for metrics on {addr}: {hint}")
    }
}

/// A connection being served.
struct Slot {
    task: AbortHandle,
    /// Set once the connection has sent a complete request: until then it may be evicted.
    requested: Arc<AtomicBool>,
}

async fn accept_loop(listener: TcpListener, limits: Limits, render: Arc<Render>) {
    let mut live: VecDeque<Slot> = VecDeque::with_capacity(limits.max_connections);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Out of descriptors or memory, or a connection reset before it was accepted: a
            // pause keeps a lasting error from spinning the core the firewall shares.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        live.retain(|slot| !slot.task.is_finished());
        if live.len() >= limits.max_connections {
            // Oldest first: the one that has held its slot longest without asking anything.
            match live
                .iter()
                .position(|slot| !slot.requested.load(Ordering::Relaxed))
            {
                Some(idle) => {
                    if let Some(slot) = live.remove(idle) {
                        slot.task.abort();
                    }
                }
                None => {
                    drop(stream);
                    continue;
                }
            }
        }
        let requested = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(serve_connection(
            stream,
            limits,
            Arc::clone(&render),
            Arc::clone(&requested),
        ));
        live.push_back(Slot {
            task: task.abort_handle(),
            requested,
        });
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    limits: Limits,
    render: Arc<Render>,
    requested: Arc<AtomicBool>,
) {
    // Responses are one write each: no reason to wait for more.
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |request: Request<Incoming>| {
        requested.store(true, Ordering::Relaxed);
        let response = respond(&request, &render);
        async move { Ok::<_, Infallible>(response) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes)
        // The read buffer holds the head being parsed (plus whatever was pipelined behind it).
        .max_buf_size((2 * limits.max_header_bytes).max(8 * 1024))
        .keep_alive(true);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    // Client errors (bad requests, resets, timeouts) end the connection and nothing else:
    // they are not logged, so a hostile client cannot fill the operator's log either.
    if tokio::time::timeout(limits.connection_lifetime, connection.as_mut())
        .await
        .is_err()
    {
        // Finishes the response being written, if any, then closes; a reader too slow
        // for even that is cut off by the grace timeout.
        connection.as_mut().graceful_shutdown();
        let _ = tokio::time::timeout(limits.shutdown_grace, connection).await;
    }
}

fn respond<B>(request: &Request<B>, render: &Render) -> Response<Full<Bytes>> {
    // The server never reads a body: one announced is left unread and the connection closed
    // after the answer, so the next request cannot be parsed out of its bytes.
    let headers = request.headers();
    let body_announced = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|length| length.as_bytes() != b"0");
    let mut response = if request.method() != Method::GET {
        let mut r = plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "xdpsieve serves GET /metrics\n",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET"));
        r
    } else if body_announced {
        plain(
            StatusCode::BAD_REQUEST,
            "xdpsieve reads no request body: send GET /metrics without one\n",
        )
    } else if request.uri().path() != "/metrics" {
        plain(StatusCode::NOT_FOUND, "xdpsieve serves /metrics\n")
    } else {
        match render() {
            Some(body) => {
                let mut r = Response::new(Full::new(Bytes::from(body)));
                r.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static(OPENMETRICS));
                r
            }
            None => plain(StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n"),
        }
    };
    if body_announced {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(TEXT));
    response
}

#[cfg(test)]
mod tests;
