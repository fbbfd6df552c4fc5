//! Test support: a fresh PostgreSQL database per test, and a registry served
//! on a random local port. PostgreSQL is found through `SOCLE__DATABASE__URL`
//! (default `postgres://socle:socle@localhost:5432/socle`); its role needs CREATEDB.

#![allow(dead_code)]

use std::future::Future;
use std::str::FromStr;

use socle_registry::Registry;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

/// The server URL of the database the tests create their databases in.
pub fn admin_url() -> String {
    std::env::var("SOCLE__DATABASE__URL")
        .unwrap_or_else(|_| "postgres://socle:socle@localhost:5432/socle".to_owned())
}

async fn admin() -> sqlx::PgConnection {
    let url = admin_url();
    PgConnectOptions::from_str(&url)
        .unwrap_or_else(|e| panic!("SOCLE__DATABASE__URL is not a PostgreSQL URL: {e}"))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("cannot connect to PostgreSQL at SOCLE__DATABASE__URL: {e}"))
}

/// Runs `body` with a pool on a database created for it, then drops the
/// database, even when `body` panics (the panic is then resumed).
pub async fn with_database<F, Fut>(body: F)
where
    F: FnOnce(PgPool) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let name = format!("socle_registry_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = admin().await;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
    let options = PgConnectOptions::from_str(&admin_url())
        .expect("checked above")
        .database(&name);
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to test database {name}: {e}"));
    let outcome = tokio::spawn(body(pool.clone())).await;
    pool.close().await;
    if let Err(e) = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await
    {
        eprintln!("could not drop test database {name}: {e}");
    }
    let _ = conn.close().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Serves `registry` on 127.0.0.1 at a random port; returns its base URL and
/// a sender that stops the server when dropped.
pub async fn serve(registry: Registry) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a local port");
    let addr = listener.local_addr().expect("local address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.await;
        };
        if let Err(e) = registry.serve(listener, shutdown).await {
            eprintln!("registry server failed: {e}");
        }
    });
    (format!("http://{addr}"), stop)
}
