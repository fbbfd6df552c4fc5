//! The JWKS cache against a local JWKS server that counts its fetches: one refresh at a time
//! (single flight), a maximum key age, and health checks that read the cache.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::{Json, Router};
use socle_auth::dev::{now, DevIdp, TokenRequest};
use socle_auth::{Error, KeyCacheStatus, Verifier, VerifierConfig};

const ISSUER: &str = "http://idp.test";

/// A JWKS server publishing `idp`'s key (or failing with 503 while `down`), counting requests.
struct JwksServer {
    url: String,
    fetches: Arc<AtomicUsize>,
    down: Arc<std::sync::atomic::AtomicBool>,
}

async fn jwks_server(idp: &DevIdp, delay: Duration) -> JwksServer {
    let fetches = Arc::new(AtomicUsize::new(0));
    let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let jwks = idp.jwks();
    let (f, d) = (fetches.clone(), down.clone());
    let router = Router::new().route(
        "/jwks.json",
        get(move || {
            let (jwks, f, d) = (jwks.clone(), f.clone(), d.clone());
            async move {
                f.fetch_add(1, Ordering::SeqCst);
                // Slow enough that concurrent verifications overlap the refresh in flight.
                tokio::time::sleep(delay).await;
                if d.load(Ordering::SeqCst) {
                    Err(axum::http::StatusCode::SERVICE_UNAVAILABLE)
                } else {
                    Ok(Json(jwks))
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    JwksServer { url, fetches, down }
}

fn verifier(url: &str, min_interval: Duration, max_age: Duration) -> Verifier {
    Verifier::new(
        VerifierConfig {
            issuer: ISSUER.into(),
            audience: "socle-api".into(),
            jwks_url: url.to_owned(),
            mfa_acr_values: vec![],
            refresh_min_interval: min_interval,
            max_key_age: max_age,
            leeway: Duration::from_secs(0),
        },
        reqwest::Client::new(),
    )
    .unwrap()
}

fn token(idp: &DevIdp) -> String {
    idp.mint(&TokenRequest {
        user: "conseiller.1".into(),
        organisation: "13000548100010".into(),
        ecosystem: "cap-emploi".into(),
        audience: "socle-api".into(),
        mfa: true,
        client: false,
        issued_at: now(),
        ttl: 300,
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_unknown_kids_cause_exactly_one_fetch() {
    let idp = DevIdp::generate(ISSUER).unwrap();
    let server = jwks_server(&idp, Duration::from_millis(200)).await;
    let v = verifier(
        &server.url,
        Duration::from_secs(30),
        Duration::from_secs(900),
    );
    // Tokens signed by another key (a key id the IdP does not publish), all at once, on a cold
    // cache: one refresh, every other verification waits for it.
    let forger = DevIdp::generate(ISSUER).unwrap();
    assert_ne!(forger.kid(), idp.kid());
    let forged = token(&forger);
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let (v, t) = (v.clone(), forged.clone());
            tokio::spawn(async move { v.verify(&t).await })
        })
        .collect();
    for t in tasks {
        assert!(matches!(t.await.unwrap(), Err(Error::UnknownKey)));
    }
    assert_eq!(server.fetches.load(Ordering::SeqCst), 1, "one JWKS fetch");
    // Valid tokens are then verified from the cache, concurrently, without any fetch.
    let good = token(&idp);
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let (v, t) = (v.clone(), good.clone());
            tokio::spawn(async move { v.verify(&t).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().subject, "conseiller.1");
    }
    // Another burst of unknown key ids within the interval: still no fetch.
    for _ in 0..50 {
        assert!(matches!(v.verify(&forged).await, Err(Error::UnknownKey)));
    }
    assert_eq!(server.fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_verifications_on_a_cold_cache_share_one_fetch() {
    let idp = DevIdp::generate(ISSUER).unwrap();
    let server = jwks_server(&idp, Duration::from_millis(200)).await;
    let v = verifier(
        &server.url,
        Duration::from_secs(30),
        Duration::from_secs(900),
    );
    let good = token(&idp);
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let (v, t) = (v.clone(), good.clone());
            tokio::spawn(async move { v.verify(&t).await })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap().is_ok());
    }
    assert_eq!(server.fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn keys_older_than_the_maximum_age_are_fetched_again() {
    let idp = DevIdp::generate(ISSUER).unwrap();
    let server = jwks_server(&idp, Duration::ZERO).await;
    let v = verifier(
        &server.url,
        Duration::from_millis(50),
        Duration::from_millis(300),
    );
    let good = token(&idp);
    v.verify(&good).await.unwrap();
    v.verify(&good).await.unwrap();
    assert_eq!(server.fetches.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    v.verify(&good).await.unwrap();
    assert_eq!(
        server.fetches.load(Ordering::SeqCst),
        2,
        "refetched past the age"
    );
    // Past the age with the IdP down: the old keys are no longer trusted.
    server.down.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(matches!(
        v.verify(&good).await,
        Err(Error::JwksUnavailable(_))
    ));
    // And retried at most once per interval meanwhile.
    let before = server.fetches.load(Ordering::SeqCst);
    for _ in 0..20 {
        assert!(v.verify(&good).await.is_err());
    }
    assert_eq!(server.fetches.load(Ordering::SeqCst), before);
}

#[tokio::test]
async fn health_reads_the_cache_and_reports_a_failed_refresh() {
    let idp = DevIdp::generate(ISSUER).unwrap();
    let server = jwks_server(&idp, Duration::ZERO).await;
    let v = verifier(
        &server.url,
        Duration::from_millis(200),
        Duration::from_secs(900),
    );
    assert_eq!(v.cached_status().await, KeyCacheStatus::Stale);
    // The first health check fetches (nothing cached); the next ones do not.
    assert_eq!(v.ensure_keys().await.unwrap(), 1);
    for _ in 0..100 {
        assert_eq!(v.ensure_keys().await.unwrap(), 1);
        assert!(matches!(
            v.cached_status().await,
            KeyCacheStatus::Fresh { keys: 1, .. }
        ));
    }
    assert_eq!(server.fetches.load(Ordering::SeqCst), 1);

    // An IdP down on a cold cache: failing, and not fetched again on every call.
    let down = jwks_server(&idp, Duration::ZERO).await;
    down.down.store(true, Ordering::SeqCst);
    let v = verifier(&down.url, Duration::from_secs(30), Duration::from_secs(900));
    assert!(v.ensure_keys().await.is_err());
    for _ in 0..50 {
        assert!(v.ensure_keys().await.is_err());
    }
    assert!(matches!(
        v.cached_status().await,
        KeyCacheStatus::Failing(_)
    ));
    assert_eq!(down.fetches.load(Ordering::SeqCst), 1);
}
