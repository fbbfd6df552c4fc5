//! The accept loop: HTTP/1.1 (hyper), with a header-read timeout, an idle timeout
//! and a connection limit ([`crate::ServeLimits`]). `axum::serve` has none of them: a client
//! sending its headers one byte at a time held a connection for as long as it liked.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::response::IntoResponse;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;
use tracing::{debug, warn};

use crate::{metrics, ServeLimits};

/// What the watchdog of one connection knows.
struct Activity {
    started: Instant,
    /// Milliseconds since `started` of the last byte read or written.
    last_io_ms: AtomicU64,
    /// Requests whose response is not complete.
    in_flight: AtomicUsize,
    /// Requests received.
    requests: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_io_ms.store(ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        self.started.elapsed().saturating_sub(Duration::from_millis(
            self.last_io_ms.load(Ordering::Relaxed),
        ))
    }
}

/// The socket, noting each byte exchanged.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Decrements the in-flight count when the request's response has been produced (or dropped).
struct InFlight(Arc<Activity>);

impl InFlight {
    fn new(activity: &Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        activity.requests.fetch_add(1, Ordering::Relaxed);
        InFlight(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

pub(crate) async fn run(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: ServeLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, keep serving.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            metrics::CONNECTIONS_REFUSED.inc();
            debug!(%peer, "connection limit reached; closed");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let stop = stop_rx.clone();
        tokio::spawn(async move {
            metrics::CONNECTIONS_OPEN.inc();
            connection(stream, app, limits, stop).await;
            metrics::CONNECTIONS_OPEN.dec();
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection gives its permit back when it is done (drained, or closed at the grace).
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
    Ok(())
}

async fn connection(
    stream: TcpStream,
    app: Router,
    limits: ServeLimits,
    mut stop: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity {
        started: Instant::now(),
        last_io_ms: AtomicU64::new(0),
        in_flight: AtomicUsize::new(0),
        requests: AtomicU64::new(0),
    });
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
    });
    let seen = activity.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let guard = InFlight::new(&seen);
        let app = app.clone();
        let timeout = limits.request_timeout;
        async move {
            let call = app.oneshot(request.map(axum::body::Body::new));
            let response = match tokio::time::timeout(timeout, call).await {
                Ok(response) => response,
                Err(_) => {
                    metrics::CONNECTIONS_TIMED_OUT.inc();
                    let mut r = crate::Problem::new(
                        axum::http::StatusCode::REQUEST_TIMEOUT,
                        "request.timeout",
                        "Request timeout",
                        "the request was not received and answered in time",
                    )
                    .into_response();
                    r.headers_mut().insert(
                        axum::http::header::CONNECTION,
                        axum::http::HeaderValue::from_static("close"),
                    );
                    Ok(r)
                }
            };
            drop(guard);
            response
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true)
        .serve_connection(io, service);
    tokio::pin!(conn);
    let tick = (limits.header_read_timeout.min(limits.idle_timeout) / 8)
        .clamp(Duration::from_millis(10), Duration::from_secs(1));
    let mut ticks = tokio::time::interval(tick);
    let mut closing: Option<(Instant, Duration)> = None;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            changed = stop.changed(), if closing.is_none() => {
                if changed.is_err() || *stop.borrow() {
                    conn.as_mut().graceful_shutdown();
                    closing = Some((Instant::now(), limits.shutdown_grace));
                }
            }
            _ = ticks.tick() => {
                if let Some((since, grace)) = closing {
                    if since.elapsed() >= grace {
                        return; // dropping the connection closes the socket
                    }
                    continue;
                }
                if activity.in_flight.load(Ordering::Relaxed) > 0 {
                    continue;
                }
                // The first request's headers are due within the header timeout, however
                // slowly bytes trickle in (hyper's own timer does the same for the next ones);
                // and no connection stays open without a byte moving.
                let expired = (activity.requests.load(Ordering::Relaxed) == 0
                    && activity.started.elapsed() >= limits.header_read_timeout)
                    || activity.idle_for() >= limits.idle_timeout;
                if expired {
                    metrics::CONNECTIONS_TIMED_OUT.inc();
                    // Nothing in flight: nothing to drain, close now.
                    return;
                }
            }
        }
    }
}
