//! Registration events in the registry itself: who made a change (`X-Socle-User`), the
//! outbox written in the same transaction as the change, compatibility changes, the lease
//! a relay publishes from, and back-pressure when too many events wait (503, 50301).
//! Publishing to Kafka is tested in `tests/tests/registry_events.rs` (crate socle-it).

mod common;

use std::sync::Arc;

use serde_json::{json, Value};
use socle_registry::{RegistrationKind, RegistrationRecord, Registry};

const CT: &str = "application/vnd.schemaregistry.v1+json";
const V1: &str = r#"{"type":"record","name":"User","namespace":"socle.test","fields":[{"name":"id","type":"string"}]}"#;
const V2: &str = r#"{"type":"record","name":"User","namespace":"socle.test","fields":[{"name":"id","type":"string"},{"name":"age","type":["null","int"],"default":null}]}"#;

async fn send(
    base: &str,
    method: &str,
    path: &str,
    user: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = reqwest::Client::new().request(method, format!("{base}{path}"));
    if let Some(user) = user {
        request = request.header("X-Socle-User", user);
    }
    if let Some(body) = body {
        request = request.header("Content-Type", CT).body(body.to_string());
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn outbox(pool: &sqlx::PgPool) -> Vec<RegistrationRecord> {
    let rows: Vec<sqlx::types::Json<RegistrationRecord>> =
        sqlx::query_scalar("SELECT record FROM registry.events ORDER BY seq")
            .fetch_all(pool)
            .await
            .expect("outbox");
    rows.into_iter().map(|r| r.0).collect()
}

#[tokio::test]
async fn every_change_is_in_the_outbox_with_its_principal_and_reaches_the_sink() {
    common::with_database(|pool| async move {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<RegistrationRecord>();
        let registry = Registry::new(pool.clone())
            .await
            .expect("registry")
            .with_events(100)
            .with_sink(Arc::new(tx));
        let (base, _stop) = common::serve(registry).await;
        let s = "t-socle.test.User";
        let path = format!("/subjects/{s}/versions");
        let (status, _) = send(
            &base,
            "PUT",
            &format!("/config/{s}"),
            Some("alice"),
            Some(json!({"compatibility": "BACKWARD_TRANSITIVE"})),
        )
        .await;
        assert_eq!(status, 200);
        // The same level again: no change, no event.
        send(
            &base,
            "PUT",
            &format!("/config/{s}"),
            Some("alice"),
            Some(json!({"compatibility": "BACKWARD_TRANSITIVE"})),
        )
        .await;
        assert_eq!(
            send(
                &base,
                "POST",
                &path,
                Some("alice"),
                Some(json!({"schema": V1}))
            )
            .await
            .0,
            200
        );
        // Re-registering is not a change.
        send(
            &base,
            "POST",
            &path,
            Some("bob"),
            Some(json!({"schema": V1})),
        )
        .await;
        assert_eq!(
            send(&base, "POST", &path, None, Some(json!({"schema": V2})))
                .await
                .0,
            200
        );
        assert_eq!(
            send(
                &base,
                "DELETE",
                &format!("/subjects/{s}/versions/1"),
                Some("carol"),
                None
            )
            .await
            .0,
            200
        );
        assert_eq!(
            send(
                &base,
                "DELETE",
                &format!("/subjects/{s}/versions/1?permanent=true"),
                Some("carol"),
                None
            )
            .await
            .0,
            200
        );
        assert_eq!(
            send(
                &base,
                "PUT",
                "/config",
                Some("dpo"),
                Some(json!({"compatibility": "FULL"}))
            )
            .await
            .0,
            200
        );
        assert_eq!(
            send(&base, "DELETE", &format!("/config/{s}"), Some("dpo"), None)
                .await
                .0,
            200
        );

        let events = outbox(&pool).await;
        let summary: Vec<_> = events
            .iter()
            .map(|e| {
                (
                    e.kind,
                    e.subject.as_str(),
                    e.version,
                    e.actor.as_str(),
                    e.compatibility.as_deref(),
                    e.previous.as_deref(),
                )
            })
            .collect();
        use RegistrationKind::*;
        assert_eq!(
            summary,
            vec![
                (
                    CompatibilityChanged,
                    s,
                    0,
                    "alice",
                    Some("BACKWARD_TRANSITIVE"),
                    None
                ),
                (Registered, s, 1, "alice", None, None),
                (Registered, s, 2, "anonymous", None, None),
                (SoftDeleted, s, 1, "carol", None, None),
                (HardDeleted, s, 1, "carol", None, None),
                (CompatibilityChanged, "", 0, "dpo", Some("FULL"), None),
                // The subject's own level removed: the global one applies.
                (
                    CompatibilityChanged,
                    s,
                    0,
                    "dpo",
                    Some("FULL"),
                    Some("BACKWARD_TRANSITIVE")
                ),
            ]
        );
        assert_eq!(events[1].schema, V1);
        assert!(events[1].id > 0 && events[2].id > events[1].id);
        let ids: std::collections::BTreeSet<_> =
            events.iter().map(|e| e.event_id.clone()).collect();
        assert_eq!(ids.len(), events.len(), "event ids are unique");
        // The sink saw the same events, in the same order.
        let mut sunk = Vec::new();
        while let Ok(r) = rx.try_recv() {
            sunk.push(r);
        }
        assert_eq!(sunk, events);
    })
    .await;
}

#[tokio::test]
async fn a_bad_principal_header_is_a_400_and_changes_nothing() {
    common::with_database(|pool| async move {
        let registry = Registry::new(pool.clone())
            .await
            .expect("registry")
            .with_events(100);
        let (base, _stop) = common::serve(registry).await;
        for bad in ["", "   ", &"x".repeat(257)] {
            let (status, body) = send(
                &base,
                "POST",
                "/subjects/s/versions",
                Some(bad),
                Some(json!({"schema": V1})),
            )
            .await;
            assert_eq!(
                (status, &body["error_code"]),
                (400, &json!(400)),
                "{bad:?}: {body}"
            );
            assert!(body["message"]
                .as_str()
                .unwrap_or_default()
                .contains("X-Socle-User"));
        }
        assert!(outbox(&pool).await.is_empty());
        assert_eq!(
            send(&base, "GET", "/subjects", None, None).await.1,
            json!([])
        );
    })
    .await;
}

#[tokio::test]
async fn a_full_backlog_refuses_changes_until_events_are_published() {
    common::with_database(|pool| async move {
        let registry = Registry::new(pool.clone())
            .await
            .expect("registry")
            .with_events(2);
        let (base, _stop) = common::serve(registry.clone()).await;
        let path = "/subjects/s/versions";
        assert_eq!(
            send(&base, "POST", path, None, Some(json!({"schema": V1})))
                .await
                .0,
            200
        );
        assert_eq!(
            send(&base, "POST", path, None, Some(json!({"schema": V2})))
                .await
                .0,
            200
        );
        // Two events wait: the third change is refused, and not made.
        let (status, body) = send(
            &base,
            "PUT",
            "/config/s",
            None,
            Some(json!({"compatibility": "NONE"})),
        )
        .await;
        assert_eq!(
            (status, &body["error_code"]),
            (503, &json!(50301)),
            "{body}"
        );
        assert!(body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("2 registration events are waiting"));
        assert_eq!(send(&base, "GET", "/config/s", None, None).await.0, 404);
        let (status, health) = send(&base, "GET", "/health", None, None).await;
        assert_eq!((status, &health["events_backlog"]), (503, &json!(2)));
        // Reads and idempotent re-registrations still work.
        assert_eq!(
            send(&base, "POST", path, None, Some(json!({"schema": V1})))
                .await
                .1["id"],
            json!(1)
        );

        // A relay's lease: only one at a time, oldest first; not acknowledged = still pending.
        let lease = registry
            .pending_events(10)
            .await
            .expect("lease")
            .expect("free");
        assert!(registry
            .pending_events(10)
            .await
            .expect("second lease")
            .is_none());
        assert_eq!(
            lease
                .events
                .iter()
                .map(|(_, e)| e.version)
                .collect::<Vec<_>>(),
            vec![1, 2]
        );
        drop(lease);
        assert_eq!(registry.events_backlog().await.expect("backlog"), 2);
        // A dropped lease is released when its connection goes back to the pool, which happens
        // in the background: wait for it (bounded).
        let mut freed = None;
        for _ in 0..100 {
            freed = registry.pending_events(1).await.expect("lease");
            if freed.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let lease = freed.expect("the dropped lease is released within 5 s");
        let (first, _) = lease.events[0];
        lease.published(first).await.expect("published");
        assert_eq!(registry.events_backlog().await.expect("backlog"), 1);
        assert_eq!(
            send(
                &base,
                "PUT",
                "/config/s",
                None,
                Some(json!({"compatibility": "NONE"}))
            )
            .await
            .0,
            200
        );
    })
    .await;
}

#[tokio::test]
async fn in_process_registration_is_a_change_like_any_other() {
    common::with_database(|pool| async move {
        let registry = Registry::new(pool.clone()).await.expect("registry").with_events(100);
        registry.set_compatibility("s", "FULL_TRANSITIVE", "me").await.expect("level");
        let id = registry.register_schema("s", V1, "me").await.expect("register");
        assert_eq!(registry.register_schema("s", V1, "me").await.expect("again"), id);
        assert!(matches!(
            registry.set_compatibility("s", "SIDEWAYS", "me").await,
            Err(socle_registry::Error::InvalidCompatibility)
        ));
        let incompatible = r#"{"type":"record","name":"User","namespace":"socle.test","fields":[{"name":"id","type":"int"}]}"#;
        assert!(matches!(
            registry.register_schema("s", incompatible, "me").await,
            Err(socle_registry::Error::Incompatible { .. })
        ));
        assert_eq!(outbox(&pool).await.len(), 2);
        // A lookup changes nothing and works in read-only mode, where registering does not.
        let (base, _stop) = common::serve(registry.clone()).await;
        assert_eq!(send(&base, "PUT", "/mode", None, Some(json!({"mode": "READONLY"}))).await.0, 200);
        assert_eq!(registry.lookup_schema("s", V1).await.expect("lookup"), Some(id));
        assert_eq!(registry.lookup_schema("s", V2).await.expect("lookup"), None);
        assert_eq!(registry.lookup_schema("other", V1).await.expect("lookup"), None);
        assert!(matches!(
            registry.register_schema("s", V2, "me").await,
            Err(socle_registry::Error::OperationNotPermitted(_))
        ));
        assert_eq!(outbox(&pool).await.len(), 2);
    })
    .await;
}
