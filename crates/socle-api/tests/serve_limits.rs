//! The API's accept loop (`socle_api::serve_router`): a connection that sends its headers
//! slowly, or sends nothing, or sits idle, is closed within its timeout; past the connection
//! limit, connections are closed at once; a normal request is served.

use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use socle_api::ServeLimits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn server(limits: ServeLimits) -> (String, tokio_util::sync::CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let app = Router::new().route("/", get(|| async { "ok" })).route(
        "/echo",
        axum::routing::post(|b: axum::body::Bytes| async move { b }),
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(socle_api::serve_router(listener, app, limits, async move {
        token.cancelled().await;
    }));
    (addr, stop)
}

fn limits() -> ServeLimits {
    ServeLimits {
        header_read_timeout: Duration::from_millis(800),
        idle_timeout: Duration::from_millis(1500),
        request_timeout: Duration::from_secs(5),
        max_connections: 8,
        shutdown_grace: Duration::from_secs(1),
    }
}

/// Reads until the server closes the connection (or `max` passes); returns what was read and
/// when the connection was seen closed.
async fn until_closed(stream: &mut TcpStream, max: Duration) -> (Vec<u8>, Option<Instant>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + max;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return (got, Some(Instant::now())),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (got, None),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_cut_off_within_the_timeout() {
    let limits = limits();
    let (addr, stop) = server(limits).await;
    let started = Instant::now();
    // A slowloris: one byte of headers every 100 ms, for longer than the timeout.
    let slow = TcpStream::connect(&addr).await.unwrap();
    let (mut r, mut w) = slow.into_split();
    tokio::spawn(async move {
        for b in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        {
            if w.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    // Another sends nothing at all.
    let mut silent = TcpStream::connect(&addr).await.unwrap();

    let mut buf = [0u8; 256];
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => return Instant::now(),
                Ok(_) => {}
            }
        }
    })
    .await
    .expect("the slow-header connection is closed");
    let waited = closed - started;
    assert!(
        waited >= limits.header_read_timeout - Duration::from_millis(100)
            && waited < limits.header_read_timeout + Duration::from_secs(1),
        "slow headers cut off within the timeout ({waited:?})"
    );
    let (_, closed) = until_closed(&mut silent, Duration::from_secs(5)).await;
    let waited = closed.expect("a silent connection is closed") - started;
    assert!(
        waited < limits.header_read_timeout + Duration::from_secs(1),
        "a connection that sends nothing is closed after the header timeout ({waited:?})"
    );
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_served_and_idle_keep_alive_connections_are_closed() {
    let limits = limits();
    let (addr, stop) = server(limits).await;
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).await.unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("ok"), "{answer}");
    let answered = Instant::now();
    // Kept alive, then nothing: closed once idle.
    let (_, closed) = until_closed(&mut s, Duration::from_secs(5)).await;
    let idle = closed.expect("an idle connection is closed") - answered;
    assert!(
        idle < limits.idle_timeout + Duration::from_secs(1),
        "closed when idle ({idle:?})"
    );
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_connection_limit_connections_are_closed_at_once() {
    let limits = ServeLimits {
        header_read_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(5),
        ..limits()
    };
    let (addr, stop) = server(limits).await;
    let mut held = Vec::new();
    for _ in 0..limits.max_connections {
        held.push(TcpStream::connect(&addr).await.unwrap());
    }
    // Let the server accept them all.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = TcpStream::connect(&addr).await.unwrap();
    let _ = extra.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let (got, closed) = until_closed(&mut extra, Duration::from_secs(2)).await;
    assert!(closed.is_some(), "closed at once past the limit");
    assert!(got.is_empty(), "and not served");
    // One closes: a new connection is served again.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (got, _) = until_closed(&mut s, Duration::from_secs(3)).await;
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_sent_slowly_is_cut_off_by_the_request_timeout() {
    let limits = ServeLimits {
        request_timeout: Duration::from_millis(1000),
        ..limits()
    };
    let (addr, stop) = server(limits).await;
    let started = Instant::now();
    let s = TcpStream::connect(&addr).await.unwrap();
    let (mut r, mut w) = s.into_split();
    w.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        .await
        .unwrap();
    tokio::spawn(async move {
        for _ in 0..100 {
            if w.write_all(b"a").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the connection is closed");
    let waited = started.elapsed();
    let answer = String::from_utf8_lossy(&got);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request.timeout"), "{answer}");
    assert!(waited < Duration::from_millis(2500), "{waited:?}");
    stop.cancel();
}
