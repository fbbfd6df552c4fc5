//! Write commands: the API as one more producer on the caller's operator's ingress topic.
//!
//! A command is not applied here. It goes through the same pipeline as a read (token, grant
//! for the write action, cedar decision, scope), its access event is appended first (fail
//! closed), then it is encoded in the operator's **ingress contract** (`schemas/ingress/`) with
//! a fresh UUIDv7 as the operator's event id and published on that operator's ingress topic
//! with `acks=all`. `socle ingest` then validates, authorizes, seals and publishes it, or
//! dead-letters it, exactly as for a message from the operator's own IS: there is one way in.
//! The answer is `202 Accepted` with the event id (the `submission.event_id`).
//!
//! The ingress topics are process-wide configuration ([`configure`]), and the producer is
//! created on the first command, so that [`crate::AppState`] keeps its shape.

// A problem is built at most once per request, on the way out: boxing it would buy nothing.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use socle_auth::Identity;
use socle_domain::validate;
use socle_domain::{AccessEvent, Decision, Envelope};
use socle_ingest::ingress::{self as ing, Ingress, Submission};
use socle_kafka::EventProducer;
use tracing::{error, warn};
use uuid::Uuid;

use crate::access::{Access, REQUEST_ID_HEADER};
use crate::problem::{bad_request, Problem};
use crate::{metrics, AppState};

/// The action every command is granted and traced as (the resource says which command).
pub const WRITE: &str = "person.write";

/// Largest command body (well under the API's global limit: a command is a few fields).
pub const MAX_COMMAND_BYTES: usize = 8 * 1024;
/// Largest free-text field of a command, in characters.
pub const MAX_TEXT: usize = 200;
/// Most thématiques on one prescription.
pub const MAX_THEMATIQUES: usize = 16;
/// Longest appointment, in minutes (as `socle ingest` checks it).
pub const MAX_APPOINTMENT_MINUTES: i32 = socle_ingest::rules::MAX_APPOINTMENT_MINUTES;
/// How far ahead an appointment may be scheduled, in days (as `socle ingest` checks it).
pub const MAX_APPOINTMENT_DAYS_AHEAD: i64 = 366;

/// The ingress topic of each operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressTopics {
    pub france_travail: String,
    pub cap_emploi: String,
    pub missions_locales: String,
}

impl Default for IngressTopics {
    fn default() -> Self {
        IngressTopics {
            france_travail: "socle.ingress.france-travail".to_owned(),
            cap_emploi: "socle.ingress.cap-emploi".to_owned(),
            missions_locales: "socle.ingress.missions-locales".to_owned(),
        }
    }
}

static TOPICS: OnceLock<IngressTopics> = OnceLock::new();
/// One producer per broker list (a process normally has one; tests start several APIs).
static PRODUCERS: LazyLock<Mutex<HashMap<String, EventProducer>>> = LazyLock::new(Mutex::default);

/// Sets the ingress topics (once, at start; later calls are ignored). Without it, the defaults
/// of `socle ingest` (`socle.ingress.<operator>`).
pub fn configure(topics: IngressTopics) {
    let _ = TOPICS.set(topics);
}

fn topics() -> &'static IngressTopics {
    TOPICS.get_or_init(IngressTopics::default)
}

/// The operator the caller's ecosystem writes as, its topic, and the `ecosystem` a follow
/// names. Partners have no ingress topic: they cannot write (yet).
fn operator(ecosystem: &str) -> Result<(&'static str, &'static str, String), Problem> {
    let t = topics();
    match ecosystem {
        "france-travail" => Ok(("france-travail", "france-travail", t.france_travail.clone())),
        "cap-emploi" => Ok(("cap-emploi", "cap-emploi", t.cap_emploi.clone())),
        "missions-locales" => Ok((
            "mission-locale",
            "missions-locales",
            t.missions_locales.clone(),
        )),
        _ => Err(Problem::new(
            StatusCode::FORBIDDEN,
            "command.no_operator",
            "No write path",
            "only France Travail, Cap Emploi and the Missions Locales write through socle; \
             your ecosystem has no ingress topic",
        )),
    }
}

/// `202 Accepted` body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Accepted {
    /// The operator event id of the submission (`submission.event_id`), a UUIDv7.
    pub event_id: String,
    /// Always `accepted`: published on the ingress topic; `socle ingest` decides the rest.
    pub status: &'static str,
    /// The follow id, for `POST /persons/{id}/follows`; the prescription id for prescriptions;
    /// the appointment id for appointments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// `POST /persons/{id}/contact`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactCommand {
    /// INSEE commune code (5 characters).
    pub commune: String,
    /// Département code (2 or 3 characters).
    pub departement: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub address_line: Option<String>,
    pub address_complement: Option<String>,
    /// 5 digits.
    pub postal_code: Option<String>,
    /// The operator's own id for the person; default: the person id. France Travail: required,
    /// a France Travail identifier.
    pub operator_person_ref: Option<String>,
}

/// `POST /persons/{id}/prescriptions`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrescriptionCommand {
    /// data·inclusion service id.
    pub service_id: String,
    /// data·inclusion structure id.
    pub structure_id: String,
    pub structure_siret: Option<String>,
    /// data·inclusion thématiques (checked against the reference list by `socle ingest`).
    #[serde(default)]
    pub thematiques: Vec<String>,
    /// `YYYY-MM-DD`; default today.
    #[schema(value_type = Option<String>, format = Date)]
    pub prescribed_on: Option<NaiveDate>,
    pub operator_person_ref: Option<String>,
}

/// `POST /persons/{id}/follows`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FollowCommand {
    /// The kind of accompaniment (e.g. `accompagnement-global`).
    pub activity: String,
    /// Département code of the follow.
    pub territory: String,
    /// The purpose (finalité) of the follow.
    pub purpose: String,
    /// `YYYY-MM-DD`; default today.
    #[schema(value_type = Option<String>, format = Date)]
    pub started_on: Option<NaiveDate>,
    #[schema(value_type = Option<String>, format = Date)]
    pub until: Option<NaiveDate>,
    pub operator_person_ref: Option<String>,
}

/// `POST /persons/{id}/follows/{follow_id}/end`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FollowEndCommand {
    /// `YYYY-MM-DD`; default today.
    #[schema(value_type = Option<String>, format = Date)]
    pub ended_on: Option<NaiveDate>,
    pub reason_code: Option<String>,
    pub operator_person_ref: Option<String>,
}

/// How an appointment takes place (`socle.ingress.AppointmentMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AppointmentMode {
    InPerson,
    Phone,
    Video,
    Other,
}

impl AppointmentMode {
    fn symbol(self) -> &'static str {
        match self {
            AppointmentMode::InPerson => "IN_PERSON",
            AppointmentMode::Phone => "PHONE",
            AppointmentMode::Video => "VIDEO",
            AppointmentMode::Other => "OTHER",
        }
    }
}

/// `POST /persons/{id}/appointments`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppointmentCommand {
    /// RFC 3339 date-time, e.g. `2026-12-03T09:30:00+01:00`; not before 1900, at most 366 days
    /// ahead.
    #[schema(value_type = String, format = DateTime)]
    pub scheduled_for: DateTime<FixedOffset>,
    /// 1 to 1440.
    pub duration_minutes: Option<i32>,
    pub mode: AppointmentMode,
    /// Kind of appointment: `diagnostic`, `suivi`, `atelier`, `information-collective`...
    pub kind: String,
    /// User id of the advisor; default: the caller.
    pub advisor: Option<String>,
    /// INSEE commune code of the place (5 characters), for appointments in person.
    pub commune: Option<String>,
    pub operator_person_ref: Option<String>,
}

fn parse<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, Problem> {
    let bytes = body.map_err(|e| bad_request("request.invalid_body", e.body_text()))?;
    if bytes.len() > MAX_COMMAND_BYTES {
        return Err(bad_request(
            "request.body_too_large",
            format!("a command body is at most {MAX_COMMAND_BYTES} bytes"),
        ));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        let msg = e.to_string();
        if msg.contains("unknown field") {
            bad_request("request.unknown_field", msg)
        } else {
            bad_request("request.invalid_json", msg)
        }
    })
}

fn text(field: &str, v: &str) -> Result<(), Problem> {
    if v.trim().is_empty() || v.chars().count() > MAX_TEXT || v.chars().any(char::is_control) {
        return Err(bad_request(
            "command.invalid_field",
            format!("{field} is 1 to {MAX_TEXT} characters, no control characters"),
        ));
    }
    Ok(())
}

fn opt_text(field: &str, v: Option<&String>) -> Result<(), Problem> {
    v.map_or(Ok(()), |v| text(field, v))
}

fn invalid(field: &str, e: &validate::ValidationError) -> Problem {
    bad_request("command.invalid_field", format!("{field}: {e}"))
}

fn day(d: NaiveDate) -> i32 {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    i32::try_from((d - epoch).num_days()).unwrap_or(i32::MAX)
}

fn past(field: &str, d: NaiveDate) -> Result<(), Problem> {
    validate::past_date(d, Utc::now().date_naive()).map_err(|e| invalid(field, &e))
}

fn person_ref(operator: &str, given: Option<String>, person_id: Uuid) -> Result<String, Problem> {
    match (operator, given) {
        ("france-travail", None) => Err(bad_request(
            "command.operator_person_ref_required",
            "France Travail writes name the person by its France Travail identifier: give operator_person_ref",
        )),
        ("france-travail", Some(r)) => validate::FranceTravailId::parse(&r)
            .map(|_| r)
            .map_err(|e| invalid("operator_person_ref", &e)),
        (_, Some(r)) => {
            let ok = !r.is_empty()
                && r.len() <= 64
                && r.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if ok {
                Ok(r)
            } else {
                Err(bad_request(
                    "command.invalid_field",
                    "operator_person_ref is 1 to 64 letters, digits, -, _ or .",
                ))
            }
        }
        (_, None) => Ok(person_id.to_string()),
    }
}

fn submission(identity: &Identity, person_ref: String, person_id: Uuid) -> Submission {
    Submission {
        event_id: Uuid::now_v7(),
        occurred_at: Utc::now().timestamp_micros(),
        producer_organisation: identity.organisation.clone(),
        actor: Some(identity.subject.clone()),
        correlation_id: None,
        operator_person_ref: person_ref,
        person_id: Some(person_id),
    }
}

fn person_path(raw: Result<Path<String>, PathRejection>) -> (Option<Uuid>, String) {
    let raw = raw.map(|Path(p)| p).unwrap_or_default();
    match Uuid::parse_str(&raw) {
        Ok(id) => (Some(id), id.to_string()),
        Err(_) => (None, "{invalid}".to_owned()),
    }
}

fn need_person(id: Option<Uuid>) -> Result<Uuid, Problem> {
    id.ok_or_else(|| {
        bad_request(
            "person.invalid_id",
            "a person id is a UUID, e.g. 0190f3c2-7a1e-7c4e-9a57-2b1d8c9e0f11",
        )
    })
}

/// Authenticates, authorizes the write action, demands a multi-factor session (or an
/// operator's system) and, when `caseload` is set, that the person is followed by the
/// caller's organisation. Returns the identity and the operator it writes as.
async fn admit(
    state: &AppState,
    headers: &HeaderMap,
    access: &mut Access,
    person_id: Uuid,
    caseload: bool,
) -> Result<(Identity, &'static str, &'static str, String), Problem> {
    let identity = access.authenticate(state, headers).await?;
    // Which operator the caller writes as, first: a partner has no write path whatever its grants.
    let (op, eco_name, topic) = operator(&identity.ecosystem)?;
    let eco = state.ecosystems.get(&identity.ecosystem);
    if let Some(eco) = eco {
        access.agreement_version = Some(eco.agreement_version().to_owned());
    }
    let grants = crate::access::in_force(state, &identity, access.action, None).await?;
    let in_caseload = if caseload {
        match (eco, grants.first()) {
            (Some(eco), Some(g)) => socle_store::ecosystem::read_person(
                &state.pool,
                &eco.model,
                &socle_store::ecosystem::Viewer {
                    organisation: identity.organisation.clone(),
                    territories: g.territories.clone(),
                },
                person_id,
            )
            .await
            .map_err(|e| {
                warn!(error = %e, "read model unavailable");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store.unavailable",
                    "Read model unavailable",
                    "the read model cannot be reached; retry later",
                )
            })?
            .is_some(),
            _ => false,
        }
    } else {
        true
    };
    access
        .authorize_with(state, &identity, None, in_caseload, grants)
        .await?;
    if !identity.mfa && !identity.client {
        return Err(Problem::new(
            StatusCode::UNAUTHORIZED,
            "auth.mfa_required",
            "Multi-factor authentication required",
            "writing personal data needs a multi-factor session: authenticate again with a second factor",
        )
        .with_www_authenticate(format!(
            "Bearer realm=\"socle\", error=\"insufficient_user_authentication\", \
             error_description=\"a multi-factor session is required\", acr_values=\"{}\"",
            state.access.step_up_acr
        )));
    }
    if !in_caseload {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "scope.outside_caseload",
            "Outside your caseload",
            "this person is not followed by your organisation (or does not exist)",
        ));
    }
    access.person_ids = vec![person_id.to_string()];
    Ok((identity, op, eco_name, topic))
}

/// A command ready to publish.
struct Ready {
    topic: String,
    message: Ingress,
    id: Option<String>,
}

/// Appends the access event, then publishes, then answers 202 — or the problem (itself
/// traced by [`Access::finish`]).
async fn conclude(
    state: AppState,
    access: Access,
    route: &'static str,
    outcome: Result<Ready, Problem>,
) -> Response {
    let ready = match outcome {
        Ok(r) => r,
        Err(p) => return access.finish(&state, route, Err(p)).await,
    };
    let event = allow_event(&access);
    if state.access.trail_enabled() {
        if let Err(e) = state.trail.record(&event).await {
            metrics::TRAIL_FAILURES.inc();
            error!(request_id = %access.request_id, error = %e, "access trail unavailable; command not published");
            let mut r = Problem::trail_unavailable()
                .with_request_id(&access.request_id)
                .into_response();
            finish_headers(&mut r, &access.request_id, route);
            return r;
        }
        metrics::ACCESS_EVENTS.with_label_values(&["allow"]).inc();
    }
    match publish(&state, &ready).await {
        Ok(()) => {
            let body = Accepted {
                event_id: ready.message.submission().event_id.to_string(),
                status: "accepted",
                id: ready.id,
            };
            let mut r = (StatusCode::ACCEPTED, Json(body)).into_response();
            finish_headers(&mut r, &access.request_id, route);
            r
        }
        // The allow is in the trail; the failure is traced too.
        Err(p) => access.finish(&state, route, Err(p)).await,
    }
}

fn finish_headers(r: &mut Response, request_id: &str, route: &'static str) {
    if let Ok(v) = HeaderValue::from_str(request_id) {
        r.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    metrics::REQUESTS
        .with_label_values(&[route, r.status().as_str()])
        .inc();
}

fn allow_event(access: &Access) -> AccessEvent {
    let (user, organisation, ecosystem, strength) = match &access.identity {
        Some(i) => (
            i.subject.clone(),
            i.organisation.clone(),
            Some(i.ecosystem.clone()),
            i.auth_strength(),
        ),
        // Never reached (an allowed command has a verified caller); as for any access without
        // one: no user, organisation `unknown` (see `access::UNAUTHENTICATED_ORGANISATION`).
        None => (
            String::new(),
            crate::access::UNAUTHENTICATED_ORGANISATION.to_owned(),
            None,
            "none",
        ),
    };
    let mut envelope = Envelope::new(organisation.clone(), Utc::now());
    if !user.is_empty() {
        envelope = envelope.with_actor(user.clone());
    }
    AccessEvent {
        envelope,
        request_id: access.request_id.clone(),
        user,
        organisation,
        ecosystem,
        purpose: access.purpose.clone(),
        auth_strength: strength.to_owned(),
        action: access.action.to_owned(),
        resource: access.resource.clone(),
        person_ids: access.person_ids.clone(),
        decision: Decision::Allow,
        reason: None,
        policy_version: access.policy_version.clone(),
        agreement_version: access.agreement_version.clone(),
    }
}

fn ingress_unavailable(e: &dyn std::fmt::Display) -> Problem {
    warn!(error = %e, "ingress topic unavailable");
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "ingress.unavailable",
        "Ingress unavailable",
        "the command could not be published; nothing was written, retry later",
    )
}

fn producer(brokers: &str) -> Result<EventProducer, String> {
    let mut all = PRODUCERS
        .lock()
        .map_err(|_| "ingress producers lock poisoned".to_owned())?;
    if let Some(p) = all.get(brokers) {
        return Ok(p.clone());
    }
    let p = EventProducer::new(brokers, Duration::from_secs(10)).map_err(|e| e.to_string())?;
    all.insert(brokers.to_owned(), p.clone());
    Ok(p)
}

async fn publish(state: &AppState, ready: &Ready) -> Result<(), Problem> {
    let contract = socle_ingest::decode::contract_of(&ready.message);
    let topic = ready.topic.as_str();
    let payload = match &ready.message {
        Ingress::ContactUpdated(m) => state.codec.encode(topic, contract, m).await,
        Ingress::ServicePrescribed(m) => state.codec.encode(topic, contract, m).await,
        Ingress::FollowStarted(m) => state.codec.encode(topic, contract, m).await,
        Ingress::FollowEnded(m) => state.codec.encode(topic, contract, m).await,
        Ingress::AppointmentScheduled(m) => state.codec.encode(topic, contract, m).await,
        _ => return Err(ingress_unavailable(&"not an API command")),
    }
    .map_err(|e| ingress_unavailable(&e))?;
    let producer = producer(&state.brokers).map_err(|e| ingress_unavailable(&e))?;
    producer
        .send(
            topic,
            &ready.message.submission().operator_person_ref,
            &payload,
        )
        .await
        .map_err(|e| ingress_unavailable(&e))?;
    Ok(())
}

/// `POST /persons/{id}/contact`: new residence and contact details.
#[utoipa::path(post, path = "/persons/{id}/contact", tag = "commands",
    params(("id" = String, Path, description = "Person id (UUID)")),
    request_body = ContactCommand,
    responses(
        (status = 202, description = "Published on the operator's ingress topic", body = Accepted),
        (status = 400, description = "Invalid body", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token, or a multi-factor session is required", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "No habilitation, outside the caseload, or no write path for the ecosystem", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 503, description = "Access trail, store, ingress or identity provider unavailable: nothing published", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn contact(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (id, shown) = person_path(path);
    let mut access = Access::new(&headers, WRITE, format!("/persons/{shown}/contact"));
    let outcome = async {
        let person_id = need_person(id)?;
        let c: ContactCommand = parse(body)?;
        validate::commune_code(&c.commune).map_err(|e| invalid("commune", &e))?;
        validate::departement_code(&c.departement).map_err(|e| invalid("departement", &e))?;
        for (f, v) in [
            ("email", c.email.as_ref()),
            ("phone", c.phone.as_ref()),
            ("address_line", c.address_line.as_ref()),
            ("address_complement", c.address_complement.as_ref()),
            ("postal_code", c.postal_code.as_ref()),
        ] {
            opt_text(f, v)?;
        }
        if let Some(p) = &c.postal_code {
            if p.len() != 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad_request(
                    "command.invalid_field",
                    "postal_code is 5 digits",
                ));
            }
        }
        let (identity, op, _, topic) =
            admit(&state, &headers, &mut access, person_id, true).await?;
        let r = person_ref(op, c.operator_person_ref, person_id)?;
        Ok(Ready {
            topic,
            message: Ingress::ContactUpdated(ing::PersonContactUpdated {
                submission: submission(&identity, r, person_id),
                commune: c.commune,
                departement: c.departement,
                contact: ing::Contact {
                    email: c.email,
                    phone: c.phone,
                    address_line: c.address_line,
                    address_complement: c.address_complement,
                    postal_code: c.postal_code,
                },
            }),
            id: None,
        })
    }
    .await;
    conclude(state, access, "/persons/{id}/contact", outcome).await
}

/// `POST /persons/{id}/prescriptions`: prescribe a data·inclusion service.
#[utoipa::path(post, path = "/persons/{id}/prescriptions", tag = "commands",
    params(("id" = String, Path, description = "Person id (UUID)")),
    request_body = PrescriptionCommand,
    responses(
        (status = 202, description = "Published on the operator's ingress topic; `id` is the prescription id", body = Accepted),
        (status = 400, description = "Invalid body", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token, or a multi-factor session is required", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "No habilitation, outside the caseload, or no write path for the ecosystem", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 503, description = "Access trail, store, ingress or identity provider unavailable: nothing published", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn prescribe(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (id, shown) = person_path(path);
    let mut access = Access::new(&headers, WRITE, format!("/persons/{shown}/prescriptions"));
    let outcome = async {
        let person_id = need_person(id)?;
        let c: PrescriptionCommand = parse(body)?;
        text("service_id", &c.service_id)?;
        text("structure_id", &c.structure_id)?;
        if let Some(s) = &c.structure_siret {
            validate::Siret::parse(s).map_err(|e| invalid("structure_siret", &e))?;
        }
        if c.thematiques.len() > MAX_THEMATIQUES {
            return Err(bad_request(
                "command.invalid_field",
                format!("at most {MAX_THEMATIQUES} thematiques"),
            ));
        }
        for t in &c.thematiques {
            text("thematiques", t)?;
        }
        let on = c.prescribed_on.unwrap_or_else(|| Utc::now().date_naive());
        past("prescribed_on", on)?;
        let (identity, op, _, topic) =
            admit(&state, &headers, &mut access, person_id, true).await?;
        let r = person_ref(op, c.operator_person_ref, person_id)?;
        let prescription_id = Uuid::now_v7();
        Ok(Ready {
            topic,
            message: Ingress::ServicePrescribed(ing::ServicePrescribed {
                submission: submission(&identity, r, person_id),
                prescription_id,
                prescriber_organisation: identity.organisation.clone(),
                service_id: c.service_id,
                structure_id: c.structure_id,
                structure_siret: c.structure_siret,
                thematiques: c.thematiques,
                prescribed_on: day(on),
                advisor: Some(identity.subject.clone()),
            }),
            id: Some(prescription_id.to_string()),
        })
    }
    .await;
    conclude(state, access, "/persons/{id}/prescriptions", outcome).await
}

/// `POST /persons/{id}/follows`: the caller's organisation starts following the person.
#[utoipa::path(post, path = "/persons/{id}/follows", tag = "commands",
    params(("id" = String, Path, description = "Person id (UUID)")),
    request_body = FollowCommand,
    responses(
        (status = 202, description = "Published on the operator's ingress topic; `id` is the follow id", body = Accepted),
        (status = 400, description = "Invalid body", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token, or a multi-factor session is required", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "No habilitation, or no write path for the ecosystem", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 503, description = "Access trail, store, ingress or identity provider unavailable: nothing published", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn follow_start(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (id, shown) = person_path(path);
    let mut access = Access::new(&headers, WRITE, format!("/persons/{shown}/follows"));
    let outcome = async {
        let person_id = need_person(id)?;
        let c: FollowCommand = parse(body)?;
        text("activity", &c.activity)?;
        text("purpose", &c.purpose)?;
        validate::departement_code(&c.territory).map_err(|e| invalid("territory", &e))?;
        let on = c.started_on.unwrap_or_else(|| Utc::now().date_naive());
        past("started_on", on)?;
        validate::period(on, c.until).map_err(|e| invalid("until", &e))?;
        // Not scoped to the caseload: starting a follow is how a person enters it. The grant
        // and the caller's own organisation are what allow it.
        let (identity, op, eco_name, topic) =
            admit(&state, &headers, &mut access, person_id, false).await?;
        let r = person_ref(op, c.operator_person_ref, person_id)?;
        let follow_id = Uuid::now_v7();
        Ok(Ready {
            topic,
            message: Ingress::FollowStarted(ing::FollowStarted {
                submission: submission(&identity, r, person_id),
                follow_id,
                organisation: identity.organisation.clone(),
                ecosystem: eco_name.to_owned(),
                activity: c.activity,
                territory: c.territory,
                purpose: c.purpose,
                started_on: day(on),
                until: c.until.map(day),
            }),
            id: Some(follow_id.to_string()),
        })
    }
    .await;
    conclude(state, access, "/persons/{id}/follows", outcome).await
}

/// A follow is ended only by the organisation that started it, for its own person, in its own
/// ecosystem. Whose it is: the follow ids `socle ingest` accepted (`ingest.follows`, a fraction of
/// a second after the start was published) and the core state; ingest and the projector check
/// the same again.
async fn own_follow(
    state: &AppState,
    follow_id: Uuid,
    person_id: Uuid,
    organisation: &str,
    ecosystem: &str,
) -> Result<(), Problem> {
    let caller = socle_ingest::follows::Owner {
        person_id,
        organisation: organisation
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect(),
        ecosystem: ecosystem.to_owned(),
    };
    let claim = socle_ingest::follows::Claim::End {
        follow_id,
        by: caller.clone(),
    };
    let known = socle_ingest::follows::known(
        &state.pool,
        socle_ingest::follows::CORE_SCHEMA,
        &[Some(claim)],
    )
    .await
    .map_err(|e| {
        warn!(error = %e, "follows unavailable");
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store.unavailable",
            "Follows unavailable",
            "the follows cannot be read; retry later",
        )
    })?;
    if known.get(&follow_id) == Some(&caller) {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::FORBIDDEN,
            "follow.not_owned",
            "Not your follow",
            "this follow is not one of your organisation's follows of this person (or does not exist)",
        ))
    }
}

/// `POST /persons/{id}/follows/{follow_id}/end`: the caller's organisation ends a follow.
#[utoipa::path(post, path = "/persons/{id}/follows/{follow_id}/end", tag = "commands",
    params(("id" = String, Path, description = "Person id (UUID)"),
           ("follow_id" = String, Path, description = "Follow id (UUID)")),
    request_body = FollowEndCommand,
    responses(
        (status = 202, description = "Published on the operator's ingress topic", body = Accepted),
        (status = 400, description = "Invalid body", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token, or a multi-factor session is required", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "No habilitation, outside the caseload, no write path for the ecosystem, or not a follow of the caller's organisation for this person (`follow.not_owned`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 503, description = "Access trail, store, ingress or identity provider unavailable: nothing published", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn follow_end(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (raw, raw_follow) = path.map(|Path(p)| p).unwrap_or_default();
    let id = Uuid::parse_str(&raw).ok();
    let follow = Uuid::parse_str(&raw_follow).ok();
    let shown = |u: Option<Uuid>| u.map_or_else(|| "{invalid}".to_owned(), |u| u.to_string());
    let mut access = Access::new(
        &headers,
        WRITE,
        format!("/persons/{}/follows/{}/end", shown(id), shown(follow)),
    );
    let outcome = async {
        let person_id = need_person(id)?;
        let follow_id =
            follow.ok_or_else(|| bad_request("follow.invalid_id", "a follow id is a UUID"))?;
        let c: FollowEndCommand = parse(body)?;
        opt_text("reason_code", c.reason_code.as_ref())?;
        let on = c.ended_on.unwrap_or_else(|| Utc::now().date_naive());
        past("ended_on", on)?;
        let (identity, op, eco_name, topic) =
            admit(&state, &headers, &mut access, person_id, true).await?;
        own_follow(
            &state,
            follow_id,
            person_id,
            &identity.organisation,
            eco_name,
        )
        .await?;
        let r = person_ref(op, c.operator_person_ref, person_id)?;
        Ok(Ready {
            topic,
            message: Ingress::FollowEnded(ing::FollowEnded {
                submission: submission(&identity, r, person_id),
                follow_id,
                organisation: identity.organisation.clone(),
                ended_on: day(on),
                reason_code: c.reason_code,
            }),
            id: None,
        })
    }
    .await;
    conclude(
        state,
        access,
        "/persons/{id}/follows/{follow_id}/end",
        outcome,
    )
    .await
}

/// `POST /persons/{id}/appointments`: the caller's organisation schedules an appointment with
/// the person.
#[utoipa::path(post, path = "/persons/{id}/appointments", tag = "commands",
    params(("id" = String, Path, description = "Person id (UUID)")),
    request_body = AppointmentCommand,
    responses(
        (status = 202, description = "Published on the operator's ingress topic; `id` is the appointment id", body = Accepted),
        (status = 400, description = "Invalid body", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token, or a multi-factor session is required", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "No habilitation, outside the caseload, or no write path for the ecosystem", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 503, description = "Access trail, store, ingress or identity provider unavailable: nothing published", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn appointment(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (id, shown) = person_path(path);
    let mut access = Access::new(&headers, WRITE, format!("/persons/{shown}/appointments"));
    let outcome = async {
        let person_id = need_person(id)?;
        let c: AppointmentCommand = parse(body)?;
        let at = c.scheduled_for.with_timezone(&Utc);
        scheduled(at, Utc::now())?;
        if let Some(m) = c.duration_minutes {
            if !(1..=MAX_APPOINTMENT_MINUTES).contains(&m) {
                return Err(bad_request(
                    "command.invalid_field",
                    format!("duration_minutes is 1 to {MAX_APPOINTMENT_MINUTES}"),
                ));
            }
        }
        text("kind", &c.kind)?;
        opt_text("advisor", c.advisor.as_ref())?;
        if let Some(commune) = &c.commune {
            validate::commune_code(commune).map_err(|e| invalid("commune", &e))?;
        }
        let (identity, op, _, topic) =
            admit(&state, &headers, &mut access, person_id, true).await?;
        let r = person_ref(op, c.operator_person_ref, person_id)?;
        let appointment_id = Uuid::now_v7();
        Ok(Ready {
            topic,
            message: Ingress::AppointmentScheduled(ing::AppointmentScheduled {
                submission: submission(&identity, r, person_id),
                appointment_id,
                organisation: identity.organisation.clone(),
                scheduled_for: at.timestamp_micros(),
                duration_minutes: c.duration_minutes,
                mode: c.mode.symbol().to_owned(),
                kind: c.kind,
                advisor: Some(c.advisor.unwrap_or_else(|| identity.subject.clone())),
                accompaniment_id: None,
                commune: c.commune,
            }),
            id: Some(appointment_id.to_string()),
        })
    }
    .await;
    conclude(state, access, "/persons/{id}/appointments", outcome).await
}

/// An appointment's time: not before 1900, at most [`MAX_APPOINTMENT_DAYS_AHEAD`] days after
/// `now` (the bounds `socle ingest` applies, so that a command it would refuse gets its 400).
fn scheduled(at: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), Problem> {
    let d = at.date_naive();
    if d.year() < validate::OLDEST_PLAUSIBLE_YEAR {
        return Err(invalid(
            "scheduled_for",
            &validate::ValidationError::DateTooOld(d),
        ));
    }
    if d > now.date_naive() + chrono::Duration::days(MAX_APPOINTMENT_DAYS_AHEAD) {
        return Err(invalid(
            "scheduled_for",
            &validate::ValidationError::DateInFuture(d),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecosystems_map_to_operators() {
        assert_eq!(operator("missions-locales").unwrap().0, "mission-locale");
        assert_eq!(operator("cap-emploi").unwrap().0, "cap-emploi");
        assert_eq!(
            operator("partenaires").unwrap_err().code,
            "command.no_operator"
        );
    }

    #[test]
    fn bodies_are_strict() {
        let p: Result<FollowEndCommand, _> = parse(Ok(Bytes::from_static(
            br#"{"ended_on":"2026-01-01","x":1}"#,
        )));
        assert_eq!(p.unwrap_err().code, "request.unknown_field");
        let big = Bytes::from(vec![b' '; MAX_COMMAND_BYTES + 1]);
        assert_eq!(
            parse::<FollowEndCommand>(Ok(big)).unwrap_err().code,
            "request.body_too_large"
        );
    }

    #[test]
    fn appointment_bodies_are_strict_and_bounded() {
        let ok: AppointmentCommand = parse(Ok(Bytes::from_static(
            br#"{"scheduled_for":"2026-12-03T09:30:00+01:00","mode":"IN_PERSON","kind":"suivi"}"#,
        )))
        .unwrap();
        assert_eq!(ok.mode, AppointmentMode::InPerson);
        assert_eq!(
            ok.scheduled_for.with_timezone(&Utc).to_rfc3339(),
            "2026-12-03T08:30:00+00:00"
        );
        for bad in [
            &br#"{"scheduled_for":"2026-12-03","mode":"PHONE","kind":"suivi"}"#[..],
            br#"{"scheduled_for":"2026-12-03T09:30:00Z","mode":"CARRIER_PIGEON","kind":"suivi"}"#,
            br#"{"scheduled_for":"2026-12-03T09:30:00Z","mode":"PHONE"}"#,
        ] {
            assert_eq!(
                parse::<AppointmentCommand>(Ok(Bytes::from(bad.to_vec())))
                    .unwrap_err()
                    .code,
                "request.invalid_json"
            );
        }
        let extra: Result<AppointmentCommand, _> = parse(Ok(Bytes::from_static(
            br#"{"scheduled_for":"2026-12-03T09:30:00Z","mode":"PHONE","kind":"suivi","room":"B"}"#,
        )));
        assert_eq!(extra.unwrap_err().code, "request.unknown_field");
        let now = Utc::now();
        assert!(scheduled(now + chrono::Duration::days(30), now).is_ok());
        assert!(scheduled(now - chrono::Duration::days(30), now).is_ok());
        assert!(scheduled(now + chrono::Duration::days(400), now).is_err());
        let old = DateTime::parse_from_rfc3339("1899-12-31T10:00:00Z").unwrap();
        assert!(scheduled(old.with_timezone(&Utc), now).is_err());
    }

    #[test]
    fn france_travail_needs_its_identifier() {
        let id = Uuid::now_v7();
        assert!(person_ref("france-travail", None, id).is_err());
        assert_eq!(person_ref("cap-emploi", None, id).unwrap(), id.to_string());
    }
}
