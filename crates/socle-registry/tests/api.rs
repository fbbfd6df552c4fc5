//! API behaviour beyond the conformance scenarios: the registration hook,
//! health and metrics, references, content types and malformed input (never
//! a 500), each test on its own fresh database.

mod common;

use std::sync::Arc;

use serde_json::{json, Value};
use socle_registry::{RegistrationKind, RegistrationRecord, Registry};

const CT: &str = "application/vnd.schemaregistry.v1+json";

struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    async fn send(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.client.request(method, format!("{}{path}", self.base));
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

    async fn raw(&self, method: &str, path: &str, content_type: &str, body: &str) -> (u16, String) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let response = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("Content-Type", content_type)
            .body(body.to_owned())
            .send()
            .await
            .expect("request");
        (
            response.status().as_u16(),
            response.text().await.expect("body"),
        )
    }
}

async fn start(registry: Registry) -> (Api, tokio::sync::oneshot::Sender<()>) {
    let (base, stop) = common::serve(registry).await;
    (
        Api {
            base,
            client: reqwest::Client::new(),
        },
        stop,
    )
}

const USER_V1: &str = r#"{"type":"record","name":"User","namespace":"socle.test","fields":[{"name":"id","type":"string"}]}"#;
const USER_V2: &str = r#"{"type":"record","name":"User","namespace":"socle.test","fields":[{"name":"id","type":"string"},{"name":"age","type":["null","int"],"default":null}]}"#;

#[tokio::test]
async fn registrations_and_deletions_reach_the_sink() {
    common::with_database(|pool| async move {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<RegistrationRecord>();
        let registry = Registry::new(pool)
            .await
            .expect("registry")
            .with_sink(Arc::new(tx));
        let (api, _stop) = start(registry).await;

        let (status, body) = api
            .send(
                "POST",
                "/subjects/users-value/versions",
                Some(json!({"schema": USER_V1})),
            )
            .await;
        assert_eq!((status, &body["id"]), (200, &json!(1)));
        // Same schema again: same id, no new version, no event.
        let (status, body) = api
            .send(
                "POST",
                "/subjects/users-value/versions",
                Some(json!({"schema": USER_V1})),
            )
            .await;
        assert_eq!((status, &body["id"]), (200, &json!(1)));
        api.send(
            "POST",
            "/subjects/users-value/versions",
            Some(json!({"schema": USER_V2})),
        )
        .await;
        api.send("DELETE", "/subjects/users-value", None).await;
        api.send("DELETE", "/subjects/users-value?permanent=true", None)
            .await;

        let mut seen = Vec::new();
        while let Ok(record) = rx.try_recv() {
            seen.push((record.kind, record.subject, record.version, record.id));
        }
        let s = || "users-value".to_owned();
        assert_eq!(
            seen,
            vec![
                (RegistrationKind::Registered, s(), 1, 1),
                (RegistrationKind::Registered, s(), 2, 2),
                (RegistrationKind::SoftDeleted, s(), 1, 1),
                (RegistrationKind::SoftDeleted, s(), 2, 2),
                (RegistrationKind::HardDeleted, s(), 1, 1),
                (RegistrationKind::HardDeleted, s(), 2, 2),
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn health_metrics_and_listing_endpoints() {
    common::with_database(|pool| async move {
        let registry = Registry::new(pool.clone()).await.expect("registry");
        // A second start on the same database is harmless (idempotent DDL).
        Registry::new(pool).await.expect("second start");
        let (api, _stop) = start(registry).await;

        let (status, body) = api.send("GET", "/health", None).await;
        assert_eq!((status, &body["database"]), (200, &json!("ok")));

        api.send("POST", "/subjects/a-value/versions", Some(json!({"schema": USER_V1})))
            .await;
        let (_, body) = api
            .send("POST", "/subjects/b-value/versions", Some(json!({"schema": USER_V1})))
            .await;
        assert_eq!(body["id"], json!(1), "ids are global, by canonical form");

        let (_, body) = api.send("GET", "/schemas/ids/1/versions", None).await;
        assert_eq!(
            body,
            json!([{"subject": "a-value", "version": 1}, {"subject": "b-value", "version": 1}])
        );
        let (_, body) = api.send("GET", "/subjects?subjectPrefix=a-", None).await;
        assert_eq!(body, json!(["a-value"]));
        let (_, body) = api.send("GET", "/schemas/types", None).await;
        assert_eq!(body, json!(["JSON", "PROTOBUF", "AVRO"]));
        let (status, body) = api.send("GET", "/schemas/ids/1/schema", None).await;
        assert_eq!((status, body["name"].clone()), (200, json!("User")));
        let (_, body) = api.send("GET", "/subjects/a-value/versions/latest", None).await;
        assert_eq!(body["schema"], json!(USER_V1));
        assert!(body.get("schemaType").is_none(), "AVRO is implied, as Confluent does");

        let (status, body) = api
            .send(
                "POST",
                "/compatibility/subjects/a-value/versions/latest?verbose=true",
                Some(json!({"schema": r#"{"type":"record","name":"User","namespace":"socle.test","fields":[{"name":"id","type":"int"}]}"#})),
            )
            .await;
        assert_eq!((status, &body["is_compatible"]), (200, &json!(false)));
        let messages = body["messages"].as_array().expect("messages");
        assert!(messages[0].as_str().unwrap_or_default().contains("TYPE_MISMATCH"));

        let metrics = reqwest::get(format!("{}/metrics", api.base))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        assert!(metrics.contains("socle_registry_requests_total"), "{metrics}");
        assert!(metrics.contains("socle_registry_registrations_total"), "{metrics}");
    })
    .await;
}

#[tokio::test]
async fn references_are_resolved_and_protected() {
    common::with_database(|pool| async move {
        let registry = Registry::new(pool).await.expect("registry");
        let (api, _stop) = start(registry).await;
        let address = r#"{"type":"record","name":"Address","namespace":"socle.test","fields":[{"name":"city","type":"string"}]}"#;
        let person = r#"{"type":"record","name":"Person","namespace":"socle.test","fields":[{"name":"home","type":"socle.test.Address"}]}"#;
        let (status, _) = api
            .send("POST", "/subjects/address/versions", Some(json!({"schema": address})))
            .await;
        assert_eq!(status, 200);
        let refs = json!([{"name": "socle.test.Address", "subject": "address", "version": 1}]);
        // Without the reference the type is unknown.
        let (status, body) = api
            .send("POST", "/subjects/person/versions", Some(json!({"schema": person})))
            .await;
        assert_eq!((status, &body["error_code"]), (422, &json!(42201)));
        let (status, body) = api
            .send(
                "POST",
                "/subjects/person/versions",
                Some(json!({"schema": person, "references": refs})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let id = body["id"].clone();
        let (_, body) = api.send("GET", &format!("/schemas/ids/{id}"), None).await;
        assert_eq!(body["references"], refs);
        let (_, body) = api
            .send("GET", "/subjects/address/versions/1/referencedby", None)
            .await;
        assert_eq!(body, json!([id]));
        let (status, body) = api.send("DELETE", "/subjects/address/versions/1", None).await;
        assert_eq!((status, &body["error_code"]), (422, &json!(42206)));
        // A reference to a missing version is an invalid schema.
        let missing = json!([{"name": "socle.test.Address", "subject": "address", "version": 9}]);
        let (status, body) = api
            .send(
                "POST",
                "/subjects/person2/versions",
                Some(json!({"schema": person, "references": missing})),
            )
            .await;
        assert_eq!((status, &body["error_code"]), (422, &json!(42201)));
    })
    .await;
}

#[tokio::test]
async fn malformed_requests_get_client_errors_never_500() {
    common::with_database(|pool| async move {
        let registry = Registry::new(pool).await.expect("registry");
        let (api, _stop) = start(registry).await;
        let (status, body) = api
            .raw("POST", "/subjects/x/versions", "text/plain", r#"{"schema":"\"string\""}"#)
            .await;
        assert_eq!(status, 415, "{body}");
        assert!(body.contains("\"error_code\":415"), "{body}");
        let (status, body) = api.raw("POST", "/subjects/x/versions", CT, "{not json").await;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("\"error_code\":400"), "{body}");
        let (status, body) = api.raw("POST", "/subjects/x/versions", CT, r#"{"schema": 12}"#).await;
        assert_eq!(status, 422, "{body}");
        let (status, body) = api.raw("GET", "/no/such/route", CT, "").await;
        assert_eq!(status, 404, "{body}");
        assert!(body.contains("\"error_code\":404"), "{body}");

        let junk = [
            "",
            "null",
            "[]",
            "\"x\"",
            r#"{"schema": ""}"#,
            r#"{"schema": "{}"}"#,
            r#"{"schema": "[]"}"#,
            r#"{"schema": "\"nope\""}"#,
            r#"{"schema": "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\"}]}"}"#,
            r#"{"schema": "{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[1]}"}"#,
            r#"{"schema": "{\"type\":\"fixed\",\"name\":\"F\",\"size\":-1}"}"#,
            r#"{"schema": "x", "schemaType": "XML"}"#,
            r#"{"schema": "message {", "schemaType": "PROTOBUF"}"#,
            r#"{"schema": "\"string\"", "references": [{"name": "a", "subject": "none", "version": 1}]}"#,
            r#"{"compatibility": 7}"#,
            r#"{"mode": null}"#,
        ];
        let paths = [
            ("POST", "/subjects/x/versions"),
            ("POST", "/subjects/x"),
            ("POST", "/compatibility/subjects/x/versions/latest"),
            ("POST", "/compatibility/subjects/x/versions"),
            ("PUT", "/config"),
            ("PUT", "/config/x"),
            ("PUT", "/mode"),
        ];
        for (method, path) in paths {
            for body in junk {
                let (status, text) = api.raw(method, path, CT, body).await;
                assert!(
                    (200..500).contains(&status),
                    "{method} {path} {body:?} answered {status}: {text}"
                );
            }
        }
        for path in [
            "/subjects/x/versions/99999999999",
            "/subjects/x/versions/%20",
            "/schemas/ids/abc",
            "/schemas/ids/-1/versions",
            "/config/x?defaultToGlobal=maybe",
            "/schemas?offset=-5&limit=abc",
        ] {
            let (status, text) = api.raw("GET", path, CT, "").await;
            assert!((200..500).contains(&status), "GET {path} answered {status}: {text}");
        }
    })
    .await;
}

/// Compile-time check: the public futures can be spawned (`Send + 'static`
/// for every lifetime), as the CLI and other crates need.
#[allow(dead_code)]
fn public_futures_are_spawnable(
    pool: sqlx::PgPool,
    listener: tokio::net::TcpListener,
    registry: Registry,
) {
    type Spawnable<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'static>>;
    drop::<Spawnable<socle_registry::Result<Registry>>>(Box::pin(Registry::new(pool)));
    drop::<Spawnable<socle_registry::Result<()>>>(Box::pin(
        registry.serve(listener, std::future::pending()),
    ));
}

#[tokio::test]
async fn a_schema_id_is_found_whatever_the_subject_parameter() {
    // As Confluent's registry in its default context; confluent-kafka's AvroDeserializer asks
    // `/schemas/ids/{id}?subject=<topic>-value` for data registered under another subject.
    common::with_database(|pool| async move {
        let registry = Registry::new(pool).await.expect("registry");
        let (api, _stop) = start(registry).await;
        let (_, body) = api
            .send(
                "POST",
                "/subjects/t-socle.test.User/versions",
                Some(json!({"schema": USER_V1})),
            )
            .await;
        let id = body["id"].as_i64().expect("id");
        for query in ["", "?subject=t-value", "?subject=t-socle.test.User"] {
            let (status, body) = api
                .send("GET", &format!("/schemas/ids/{id}{query}"), None)
                .await;
            assert_eq!((status, &body["schema"]), (200, &json!(USER_V1)), "{query}");
        }
        let (status, body) = api
            .send("GET", "/schemas/ids/999?subject=t-value", None)
            .await;
        assert_eq!((status, &body["error_code"]), (404, &json!(40403)));
    })
    .await;
}
