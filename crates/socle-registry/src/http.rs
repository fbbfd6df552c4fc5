//! The Confluent Schema Registry REST API over [`Core`]: request decoding,
//! content types, and answers shaped as Confluent's (field names, omitted
//! defaults, error bodies).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::core::{Core, SchemaInput, SchemaReference, SubjectVersion, VersionSpec};
use crate::schema::{Compatibility, Mode};
use crate::{Error, Result};

/// Content type of every answer.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Request content types accepted for bodies.
const ACCEPTED: [&str; 4] = [
    "application/vnd.schemaregistry.v1+json",
    "application/vnd.schemaregistry+json",
    "application/json",
    "application/octet-stream",
];

/// Header naming who makes a change (recorded in registration events).
pub const PRINCIPAL_HEADER: &str = "x-socle-user";

/// The principal of a change made without [`PRINCIPAL_HEADER`].
pub const ANONYMOUS: &str = "anonymous";

/// Longest principal accepted, in characters.
const PRINCIPAL_MAX: usize = 256;

/// Who makes the change: the `X-Socle-User` header, else [`ANONYMOUS`].
///
/// # Errors
/// 400 when the header is present but empty, not UTF-8, longer than
/// 256 characters or holds control characters: an event must not carry an
/// unreadable principal.
fn principal(headers: &HeaderMap) -> Result<String> {
    let Some(value) = headers.get(PRINCIPAL_HEADER) else {
        return Ok(ANONYMOUS.to_owned());
    };
    let text = value
        .to_str()
        .map_err(|_| Error::BadRequest("Invalid X-Socle-User header: not ASCII".into()))?
        .trim();
    if text.is_empty() || text.chars().count() > PRINCIPAL_MAX || text.chars().any(char::is_control)
    {
        return Err(Error::BadRequest(format!(
            "Invalid X-Socle-User header: must be 1 to {PRINCIPAL_MAX} printable characters"
        )));
    }
    Ok(text.to_owned())
}

type Shared = State<Arc<Core>>;
type Params = Query<HashMap<String, String>>;

/// A JSON answer with the registry's content type.
pub fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

fn ok(body: Value) -> Response {
    json_response(StatusCode::OK, &body)
}

fn flag(params: &HashMap<String, String>, name: &str) -> bool {
    params
        .get(name)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Decodes a JSON body as Confluent does: malformed JSON is a 400, a JSON
/// value of the wrong shape a 422.
fn decode<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            Error::UnprocessableEntity(format!("Invalid request: {e}"))
        }
        _ => Error::BadRequest(format!("Malformed JSON: {e}")),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaRequest {
    schema: Option<String>,
    schema_type: Option<String>,
    #[serde(default)]
    references: Option<Vec<SchemaReference>>,
    id: Option<i32>,
    version: Option<i32>,
}

impl From<SchemaRequest> for SchemaInput {
    fn from(r: SchemaRequest) -> Self {
        SchemaInput {
            schema: r.schema,
            schema_type: r.schema_type,
            references: r.references.unwrap_or_default(),
            id: r.id,
            version: r.version,
        }
    }
}

fn schema_input(body: &Bytes) -> Result<SchemaInput> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::InvalidSchema("Empty schema".into()));
    }
    Ok(decode::<SchemaRequest>(body)?.into())
}

fn add_type_and_refs(
    out: &mut serde_json::Map<String, Value>,
    schema_type: &str,
    refs: &[SchemaReference],
) {
    if schema_type != "AVRO" {
        out.insert("schemaType".into(), json!(schema_type));
    }
    if !refs.is_empty() {
        out.insert("references".into(), json!(refs));
    }
}

fn version_json(v: &SubjectVersion) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("subject".into(), json!(v.subject));
    out.insert("version".into(), json!(v.version));
    out.insert("id".into(), json!(v.id));
    add_type_and_refs(&mut out, &v.schema_type, &v.references);
    out.insert("schema".into(), json!(v.schema));
    Value::Object(out)
}

/// Builds the API router over `core`.
pub fn router(core: Arc<Core>) -> Router {
    Router::new()
        .route("/", get(|| async { ok(json!({})) }))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/subjects", get(list_subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route(
            "/subjects/{subject}/versions",
            get(list_versions).post(register),
        )
        .route(
            "/subjects/{subject}/versions/{version}",
            get(get_version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(get_version_schema),
        )
        .route(
            "/subjects/{subject}/versions/{version}/referencedby",
            get(referenced_by),
        )
        .route("/schemas", get(list_schemas))
        .route(
            "/schemas/types",
            get(|| async { ok(json!(["JSON", "PROTOBUF", "AVRO"])) }),
        )
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(schema_by_id_raw))
        .route("/schemas/ids/{id}/versions", get(id_versions))
        .route("/schemas/ids/{id}/subjects", get(id_subjects))
        .route(
            "/config",
            get(get_global_config)
                .put(put_global_config)
                .delete(delete_global_config),
        )
        .route(
            "/config/{subject}",
            get(get_subject_config)
                .put(put_subject_config)
                .delete(delete_subject_config),
        )
        .route("/mode", get(get_global_mode).put(put_global_mode))
        .route(
            "/mode/{subject}",
            get(get_subject_mode)
                .put(put_subject_mode)
                .delete(delete_subject_mode),
        )
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(check_all),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(check_version),
        )
        .fallback(|| async { Error::RouteNotFound })
        .method_not_allowed_fallback(|| async { Error::MethodNotAllowed })
        .layer(middleware::from_fn(content_type_and_metrics))
        .with_state(core)
}

async fn content_type_and_metrics(request: Request, next: Next) -> Response {
    let has_body = matches!(*request.method(), Method::POST | Method::PUT);
    if has_body {
        if let Some(ct) = request.headers().get(header::CONTENT_TYPE) {
            let essence = ct
                .to_str()
                .unwrap_or_default()
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            if !essence.is_empty() && !ACCEPTED.contains(&essence.as_str()) {
                return Error::UnsupportedMediaType.into_response();
            }
        }
    }
    let response = next.run(request).await;
    crate::metrics::REQUESTS
        .with_label_values(&[response.status().as_str()])
        .inc();
    response
}

async fn health(State(core): Shared) -> Response {
    match sqlx::query("SELECT 1").execute(&core.pool).await {
        Ok(_) if core.max_backlog.is_some() => {
            // Registration events waiting for Kafka: at the bound, changes are refused.
            match crate::events::backlog(&core.pool).await {
                Ok(waiting) if core.max_backlog.is_some_and(|max| waiting >= max) => json_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &json!({"status": "unavailable", "database": "ok", "events_backlog": waiting}),
                ),
                Ok(waiting) => {
                    ok(json!({"status": "ok", "database": "ok", "events_backlog": waiting}))
                }
                Err(e) => json_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &json!({"status": "unavailable", "database": e.to_string()}),
                ),
            }
        }
        Ok(_) => ok(json!({"status": "ok", "database": "ok"})),
        Err(e) => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"status": "unavailable", "database": e.to_string()}),
        ),
    }
}

async fn metrics() -> Response {
    let mut buffer = String::new();
    let encoder = prometheus::TextEncoder::new();
    match encoder.encode_utf8(&prometheus::gather(), &mut buffer) {
        Ok(()) => ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], buffer).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn list_subjects(State(core): Shared, Query(p): Params) -> Result<Response> {
    let prefix = p.get("subjectPrefix").map_or("", String::as_str);
    Ok(ok(json!(core.subjects(flag(&p, "deleted"), prefix).await?)))
}

async fn list_versions(
    State(core): Shared,
    Path(subject): Path<String>,
    Query(p): Params,
) -> Result<Response> {
    Ok(ok(json!(
        core.versions(&subject, flag(&p, "deleted")).await?
    )))
}

async fn get_version(
    State(core): Shared,
    Path((subject, version)): Path<(String, String)>,
    Query(p): Params,
) -> Result<Response> {
    let spec = VersionSpec::parse(&version)?;
    Ok(ok(version_json(
        &core.version(&subject, spec, flag(&p, "deleted")).await?,
    )))
}

async fn get_version_schema(
    State(core): Shared,
    Path((subject, version)): Path<(String, String)>,
    Query(p): Params,
) -> Result<Response> {
    let spec = VersionSpec::parse(&version)?;
    let found = core.version(&subject, spec, flag(&p, "deleted")).await?;
    Ok(raw_schema(found.schema))
}

fn raw_schema(schema: String) -> Response {
    let mut response = schema.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

async fn referenced_by(
    State(core): Shared,
    Path((subject, version)): Path<(String, String)>,
) -> Result<Response> {
    let found = core
        .version(&subject, VersionSpec::parse(&version)?, false)
        .await?;
    Ok(ok(json!(
        core.referenced_by(&subject, found.version).await?
    )))
}

async fn register(
    State(core): Shared,
    Path(subject): Path<String>,
    Query(p): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let actor = principal(&headers)?;
    let input = schema_input(&body)?;
    let id = core
        .register(&subject, &input, flag(&p, "normalize"), &actor)
        .await?;
    Ok(ok(json!({ "id": id })))
}

async fn lookup(
    State(core): Shared,
    Path(subject): Path<String>,
    Query(p): Params,
    body: Bytes,
) -> Result<Response> {
    let input = schema_input(&body)?;
    let found = core.lookup(&subject, &input, flag(&p, "deleted")).await?;
    Ok(ok(version_json(&found)))
}

async fn delete_subject(
    State(core): Shared,
    Path(subject): Path<String>,
    Query(p): Params,
    headers: HeaderMap,
) -> Result<Response> {
    let actor = principal(&headers)?;
    Ok(ok(json!(
        core.delete_subject(&subject, flag(&p, "permanent"), &actor)
            .await?
    )))
}

async fn delete_version(
    State(core): Shared,
    Path((subject, version)): Path<(String, String)>,
    Query(p): Params,
    headers: HeaderMap,
) -> Result<Response> {
    let actor = principal(&headers)?;
    let spec = VersionSpec::parse(&version)?;
    Ok(ok(json!(
        core.delete_version(&subject, spec, flag(&p, "permanent"), &actor)
            .await?
    )))
}

fn parse_id(id: &str) -> Result<i32> {
    id.parse().map_err(|_| Error::SchemaNotFound(id.to_owned()))
}

async fn schema_by_id(State(core): Shared, Path(id): Path<String>) -> Result<Response> {
    let id = parse_id(&id)?;
    // `?subject=` only selects a schema context in Confluent's registry; in the default
    // context (the only one here) the id is found whatever the subject. Clients rely on it:
    // confluent-kafka's AvroDeserializer (2.16) asks `?subject=<topic>-value` even for data
    // written under another subject name strategy.
    let stored = core.schema_by_id(id).await?;
    let mut out = serde_json::Map::new();
    add_type_and_refs(&mut out, &stored.schema_type, &stored.references);
    out.insert("schema".into(), json!(stored.schema));
    Ok(ok(Value::Object(out)))
}

async fn schema_by_id_raw(State(core): Shared, Path(id): Path<String>) -> Result<Response> {
    let stored = core.schema_by_id(parse_id(&id)?).await?;
    Ok(raw_schema(stored.schema))
}

async fn id_versions(
    State(core): Shared,
    Path(id): Path<String>,
    Query(p): Params,
) -> Result<Response> {
    let rows = core
        .id_versions(parse_id(&id)?, flag(&p, "deleted"))
        .await?;
    let out: Vec<Value> = rows
        .into_iter()
        .map(|(subject, version)| json!({"subject": subject, "version": version}))
        .collect();
    Ok(ok(json!(out)))
}

async fn id_subjects(
    State(core): Shared,
    Path(id): Path<String>,
    Query(p): Params,
) -> Result<Response> {
    let rows = core
        .id_versions(parse_id(&id)?, flag(&p, "deleted"))
        .await?;
    let mut subjects: Vec<String> = rows.into_iter().map(|(s, _)| s).collect();
    subjects.dedup();
    Ok(ok(json!(subjects)))
}

async fn list_schemas(State(core): Shared, Query(p): Params) -> Result<Response> {
    let number = |name: &str, default: i64| -> i64 {
        p.get(name).and_then(|v| v.parse().ok()).unwrap_or(default)
    };
    let prefix = p.get("subjectPrefix").map_or("", String::as_str);
    let rows = core
        .list(
            prefix,
            flag(&p, "deleted"),
            flag(&p, "latestOnly"),
            number("offset", 0),
            number("limit", -1),
        )
        .await?;
    Ok(ok(json!(rows.iter().map(version_json).collect::<Vec<_>>())))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigRequest {
    compatibility: Option<String>,
    compatibility_level: Option<String>,
}

fn parse_level(body: &Bytes) -> Result<Option<Compatibility>> {
    let request: ConfigRequest = decode(body)?;
    match request.compatibility.or(request.compatibility_level) {
        None => Ok(None),
        Some(level) => level
            .parse()
            .map(Some)
            .map_err(|()| Error::InvalidCompatibility),
    }
}

async fn get_global_config(State(core): Shared) -> Result<Response> {
    let level = core.compatibility(None).await?;
    Ok(ok(json!({ "compatibilityLevel": level.as_str() })))
}

async fn put_global_config(
    State(core): Shared,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let actor = principal(&headers)?;
    let level = match parse_level(&body)? {
        Some(level) => {
            core.set_config("", level, &actor).await?;
            level
        }
        None => core.compatibility(None).await?,
    };
    Ok(ok(json!({ "compatibility": level.as_str() })))
}

async fn delete_global_config(State(core): Shared, headers: HeaderMap) -> Result<Response> {
    let actor = principal(&headers)?;
    let old = core.compatibility(None).await?;
    core.delete_config("", &actor).await?;
    Ok(ok(json!({ "compatibilityLevel": old.as_str() })))
}

async fn get_subject_config(
    State(core): Shared,
    Path(subject): Path<String>,
    Query(p): Params,
) -> Result<Response> {
    let level = match core.config(&subject).await? {
        Some(level) => level,
        None if flag(&p, "defaultToGlobal") => core.compatibility(None).await?,
        None => return Err(Error::SubjectConfigNotFound(subject)),
    };
    Ok(ok(json!({ "compatibilityLevel": level.as_str() })))
}

async fn put_subject_config(
    State(core): Shared,
    Path(subject): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let actor = principal(&headers)?;
    let level = match parse_level(&body)? {
        Some(level) => {
            core.set_config(&subject, level, &actor).await?;
            level
        }
        None => core.compatibility(Some(&subject)).await?,
    };
    Ok(ok(json!({ "compatibility": level.as_str() })))
}

async fn delete_subject_config(
    State(core): Shared,
    Path(subject): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    let actor = principal(&headers)?;
    match core.delete_config(&subject, &actor).await? {
        Some(old) => Ok(ok(json!({ "compatibilityLevel": old.as_str() }))),
        None if !core.subject_exists(&subject).await? => Err(Error::SubjectNotFound(subject)),
        None => Err(Error::SubjectConfigNotFound(subject)),
    }
}

#[derive(Deserialize)]
struct ModeRequest {
    mode: Option<String>,
}

fn parse_mode(body: &Bytes) -> Result<Mode> {
    let request: ModeRequest = decode(body)?;
    request
        .mode
        .ok_or(Error::InvalidMode)?
        .parse()
        .map_err(|()| Error::InvalidMode)
}

async fn get_global_mode(State(core): Shared) -> Result<Response> {
    let mode = core.effective_mode("").await?;
    Ok(ok(json!({ "mode": mode.as_str() })))
}

async fn put_global_mode(State(core): Shared, body: Bytes) -> Result<Response> {
    let mode = parse_mode(&body)?;
    core.set_mode("", mode).await?;
    Ok(ok(json!({ "mode": mode.as_str() })))
}

async fn get_subject_mode(
    State(core): Shared,
    Path(subject): Path<String>,
    Query(p): Params,
) -> Result<Response> {
    let mode = match core.mode(&subject).await? {
        Some(mode) => mode,
        None if flag(&p, "defaultToGlobal") => core.effective_mode("").await?,
        None => return Err(Error::SubjectModeNotFound(subject)),
    };
    Ok(ok(json!({ "mode": mode.as_str() })))
}

async fn put_subject_mode(
    State(core): Shared,
    Path(subject): Path<String>,
    body: Bytes,
) -> Result<Response> {
    let mode = parse_mode(&body)?;
    core.set_mode(&subject, mode).await?;
    Ok(ok(json!({ "mode": mode.as_str() })))
}

async fn delete_subject_mode(State(core): Shared, Path(subject): Path<String>) -> Result<Response> {
    match core.delete_mode(&subject).await? {
        Some(old) => Ok(ok(json!({ "mode": old.as_str() }))),
        None => Err(Error::SubjectModeNotFound(subject)),
    }
}

fn compatibility_answer(errors: Vec<String>, verbose: bool) -> Response {
    let mut out = serde_json::Map::new();
    out.insert("is_compatible".into(), json!(errors.is_empty()));
    if verbose {
        out.insert("messages".into(), json!(errors));
    }
    ok(Value::Object(out))
}

async fn check_all(
    State(core): Shared,
    Path(subject): Path<String>,
    Query(p): Params,
    body: Bytes,
) -> Result<Response> {
    let input = schema_input(&body)?;
    let errors = core.check(&subject, None, &input).await?;
    Ok(compatibility_answer(errors, flag(&p, "verbose")))
}

async fn check_version(
    State(core): Shared,
    Path((subject, version)): Path<(String, String)>,
    Query(p): Params,
    body: Bytes,
) -> Result<Response> {
    let spec = VersionSpec::parse(&version)?;
    let input = schema_input(&body)?;
    let errors = core.check(&subject, Some(spec), &input).await?;
    Ok(compatibility_answer(errors, flag(&p, "verbose")))
}
