//! Business rules and authorization of one ingress message: pure, no I/O, so that the same
//! checks serve the Kafka ingress and (later) the API's write commands, and can be unit-tested
//! exhaustively.
//!
//! A message is refused with a [`Rejection`]: a stable dotted `code` (those of
//! [`ValidationError::code`] for identifiers and dates, plus `authz.*`, `field.*`, `ingress.*`
//! defined here), the offending field's path, and a detail for people that never repeats a
//! personal value (the dead-letter topic is read by operators' support staff).

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use socle_domain::reference::Referential;
use socle_domain::time::{from_days, from_micros};
use socle_domain::validate::{self, InclusionList, Nir, Siret, ValidationError};
use uuid::Uuid;

use crate::ingress::{Contact, Health, Identity, Ingress, Submission};

/// Namespace of the person ids socle derives from an operator's own reference (UUIDv5 of
/// `<operator>:<operator_person_ref>`). Never changes: it would re-identify everyone.
pub const PERSON_NAMESPACE: Uuid = Uuid::from_u128(0x5c0d_1e00_7e57_4a11_8f00_0000_0000_0001);

/// Longest appointment, in minutes (a day).
pub const MAX_APPOINTMENT_MINUTES: i32 = 24 * 60;

/// Every code this module returns besides [`validate::CODES`].
pub const CODES: &[&str] = &[
    "ingress.key_mismatch",
    "field.empty",
    "field.format",
    "field.out_of_range",
    "date.out_of_range",
    "authz.operator_mismatch",
    "authz.ecosystem_mismatch",
    "authz.field_not_writable",
];

/// Why a message is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Stable, machine-readable, e.g. `nir.bad_key`, `authz.operator_mismatch`.
    pub code: &'static str,
    /// For people; never holds a personal value.
    pub detail: String,
    /// Path of the offending field, e.g. `identity.nir`.
    pub field: Option<&'static str>,
}

impl Rejection {
    pub fn new(code: &'static str, detail: impl Into<String>, field: Option<&'static str>) -> Self {
        Rejection {
            code,
            detail: detail.into(),
            field,
        }
    }

    /// A rule broken by a field that is not personal: the detail may quote the value.
    fn rule(field: &'static str, e: ValidationError) -> Self {
        Rejection::new(e.code(), e.to_string(), Some(field))
    }

    /// A rule broken by a personal field: the detail names the rule, not the value.
    fn personal(field: &'static str, e: ValidationError) -> Self {
        Rejection::new(
            e.code(),
            format!("personal field {field} breaks rule {}", e.code()),
            Some(field),
        )
    }
}

type Checked<T = ()> = Result<T, Rejection>;

/// What the rules need besides the message.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub referential: &'a Referential,
    /// The operator of the ingress topic the message was read from: the only one it may speak for.
    pub operator: &'a str,
    /// Now, for plausibility of dates (a parameter so that tests and replays are deterministic).
    pub now: DateTime<Utc>,
}

impl Context<'_> {
    fn today(&self) -> NaiveDate {
        self.now.date_naive()
    }
}

/// The ecosystem whose agreement an operator's organisations act under.
pub fn ecosystem_of(operator: &str) -> Option<&'static str> {
    match operator {
        "france-travail" => Some("france-travail"),
        "cap-emploi" => Some("cap-emploi"),
        "mission-locale" => Some("missions-locales"),
        _ => None,
    }
}

/// The person the message is about: the id it names, or the one derived from the operator's
/// own reference (the same on every retry, so a resent registration maps to the same person).
pub fn person_id(operator: &str, submission: &Submission) -> Uuid {
    submission.person_id.unwrap_or_else(|| {
        Uuid::new_v5(
            &PERSON_NAMESPACE,
            format!("{operator}:{}", submission.operator_person_ref).as_bytes(),
        )
    })
}

/// Checks `message`, read with Kafka key `key` from `ctx.operator`'s ingress topic. Returns the
/// person it is about.
///
/// # Errors
/// The first rule the message breaks.
pub fn check(message: &Ingress, key: Option<&[u8]>, ctx: &Context<'_>) -> Checked<Uuid> {
    let submission = message.submission();
    check_submission(submission, key, ctx)?;
    match message {
        Ingress::Registered(e) => {
            same_operator(&e.operator, ctx)?;
            siret("registering_organisation", &e.registering_organisation)?;
            past_day("registered_on", e.registered_on, ctx)?;
            residence(&e.commune, &e.departement, ctx)?;
            identity(&e.identity, ctx)?;
        }
        Ingress::IdentityUpdated(e) => identity(&e.identity, ctx)?,
        Ingress::ContactUpdated(e) => {
            residence(&e.commune, &e.departement, ctx)?;
            contact(&e.contact)?;
        }
        Ingress::SituationUpdated(e) => {
            let effective = plausible_day("effective_on", e.effective_on, ctx)?;
            if e.registration_category.is_some() && ctx.operator != "france-travail" {
                return Err(Rejection::new(
                    "authz.field_not_writable",
                    format!(
                        "only france-travail states the registration category, not {}",
                        ctx.operator
                    ),
                    Some("registration_category"),
                ));
            }
            health(&e.health, effective, ctx)?;
        }
        Ingress::FollowStarted(e) => {
            siret("organisation", &e.organisation)?;
            let own = ecosystem_of(ctx.operator).unwrap_or_default();
            if e.ecosystem != own {
                return Err(Rejection::new(
                    "authz.ecosystem_mismatch",
                    format!(
                        "{} may start follows in ecosystem {own} only, not {:?}",
                        ctx.operator, e.ecosystem
                    ),
                    Some("ecosystem"),
                ));
            }
            not_empty("activity", &e.activity)?;
            not_empty("purpose", &e.purpose)?;
            territory(&e.territory, ctx)?;
            let start = plausible_day("started_on", e.started_on, ctx)?;
            let until = e
                .until
                .map(|d| plausible_day("until", d, ctx))
                .transpose()?;
            validate::period(start, until).map_err(|e| Rejection::rule("until", e))?;
        }
        Ingress::FollowEnded(e) => {
            siret("organisation", &e.organisation)?;
            past_day("ended_on", e.ended_on, ctx)?;
        }
        Ingress::Exited(e) => {
            same_operator(&e.operator, ctx)?;
            siret("organisation", &e.organisation)?;
            past_day("exited_on", e.exited_on, ctx)?;
            if let Some(rome) = &e.rome {
                validate::rome(rome, ctx.referential).map_err(|e| Rejection::rule("rome", e))?;
            }
        }
        Ingress::ServicePrescribed(e) => {
            siret("prescriber_organisation", &e.prescriber_organisation)?;
            if let Some(s) = &e.structure_siret {
                siret("structure_siret", s)?;
            }
            not_empty("service_id", &e.service_id)?;
            not_empty("structure_id", &e.structure_id)?;
            for t in &e.thematiques {
                validate::inclusion_value(InclusionList::Thematique, t, ctx.referential)
                    .map_err(|e| Rejection::rule("thematiques", e))?;
            }
            past_day("prescribed_on", e.prescribed_on, ctx)?;
        }
        Ingress::AppointmentScheduled(e) => {
            siret("organisation", &e.organisation)?;
            not_empty("kind", &e.kind)?;
            if let Some(m) = e.duration_minutes {
                if !(1..=MAX_APPOINTMENT_MINUTES).contains(&m) {
                    return Err(Rejection::new(
                        "field.out_of_range",
                        format!("duration_minutes is 1 to {MAX_APPOINTMENT_MINUTES}, not {m}"),
                        Some("duration_minutes"),
                    ));
                }
            }
            if let Some(c) = &e.commune {
                validate::commune(c.trim(), ctx.referential)
                    .map_err(|e| Rejection::rule("commune", e))?;
            }
            let Some(at) = from_micros(e.scheduled_for) else {
                return Err(out_of_range("scheduled_for"));
            };
            // Like any planned date: not before 1900, at most a year ahead.
            plausible_date("scheduled_for", at.date_naive(), ctx)?;
        }
    }
    Ok(person_id(ctx.operator, submission))
}

fn check_submission(s: &Submission, key: Option<&[u8]>, ctx: &Context<'_>) -> Checked {
    not_empty("submission.operator_person_ref", &s.operator_person_ref)?;
    if key != Some(s.operator_person_ref.as_bytes()) {
        return Err(Rejection::new(
            "ingress.key_mismatch",
            "the Kafka key must be the operator_person_ref, so that a person's messages stay in order",
            Some("submission.operator_person_ref"),
        ));
    }
    if ctx.operator == "france-travail" {
        validate::FranceTravailId::parse(&s.operator_person_ref)
            .map_err(|e| Rejection::rule("submission.operator_person_ref", e))?;
    }
    siret("submission.producer_organisation", &s.producer_organisation)?;
    let Some(at) = from_micros(s.occurred_at) else {
        return Err(out_of_range("submission.occurred_at"));
    };
    // A little clock skew between the operator and socle is tolerated.
    if at > ctx.now + chrono::Duration::minutes(5) {
        return Err(Rejection::rule(
            "submission.occurred_at",
            ValidationError::DateInFuture(at.date_naive()),
        ));
    }
    Ok(())
}

fn same_operator(operator: &str, ctx: &Context<'_>) -> Checked {
    if operator == ctx.operator {
        Ok(())
    } else {
        Err(Rejection::new(
            "authz.operator_mismatch",
            format!(
                "a message on {}'s ingress topic may only speak for {}, not {operator:?}",
                ctx.operator, ctx.operator
            ),
            Some("operator"),
        ))
    }
}

fn not_empty(field: &'static str, value: &str) -> Checked {
    if value.trim().is_empty() {
        Err(Rejection::new(
            "field.empty",
            format!("{field} is required"),
            Some(field),
        ))
    } else {
        Ok(())
    }
}

fn siret(field: &'static str, value: &str) -> Checked {
    Siret::parse(value)
        .map(|_| ())
        .map_err(|e| Rejection::rule(field, e))
}

fn out_of_range(field: &'static str) -> Rejection {
    Rejection::new(
        "date.out_of_range",
        format!("{field} is not a representable date"),
        Some(field),
    )
}

fn day(field: &'static str, days: i32) -> Checked<NaiveDate> {
    from_days(days).ok_or_else(|| out_of_range(field))
}

/// A fact that has happened: not after today, not before 1900.
fn past_day(field: &'static str, days: i32, ctx: &Context<'_>) -> Checked<NaiveDate> {
    let d = day(field, days)?;
    validate::past_date(d, ctx.today()).map_err(|e| Rejection::rule(field, e))?;
    Ok(d)
}

/// A date that may be planned: not before 1900, at most a year ahead.
fn plausible_day(field: &'static str, days: i32, ctx: &Context<'_>) -> Checked<NaiveDate> {
    plausible_date(field, day(field, days)?, ctx)
}

/// As [`plausible_day`], for a date already read.
fn plausible_date(field: &'static str, d: NaiveDate, ctx: &Context<'_>) -> Checked<NaiveDate> {
    if d.year() < validate::OLDEST_PLAUSIBLE_YEAR {
        return Err(Rejection::rule(field, ValidationError::DateTooOld(d)));
    }
    if d > ctx.today() + chrono::Duration::days(366) {
        return Err(Rejection::rule(field, ValidationError::DateInFuture(d)));
    }
    Ok(d)
}

fn residence(commune: &str, departement: &str, ctx: &Context<'_>) -> Checked {
    validate::commune_in_departement(commune, departement, ctx.referential)
        .map(|_| ())
        .map_err(|e| {
            let field = match e {
                ValidationError::DepartementFormat(_) | ValidationError::DepartementUnknown(_) => {
                    "departement"
                }
                _ => "commune",
            };
            Rejection::rule(field, e)
        })
}

fn territory(code: &str, ctx: &Context<'_>) -> Checked {
    let r = ctx.referential;
    let c = code.trim();
    if c.len() == 5 {
        validate::commune(c, r)
            .map(|_| ())
            .map_err(|e| Rejection::rule("territory", e))
    } else if r.region(c).is_some() {
        Ok(())
    } else {
        validate::departement(c, r)
            .map(|_| ())
            .map_err(|e| Rejection::rule("territory", e))
    }
}

fn identity(i: &Identity, ctx: &Context<'_>) -> Checked {
    not_empty("identity.family_name", &i.family_name)?;
    not_empty("identity.given_name", &i.given_name)?;
    let birth = day("identity.birth_date", i.birth_date)?;
    validate::birth_date(birth, ctx.today())
        .map_err(|e| Rejection::personal("identity.birth_date", e))?;
    if let Some(nir) = &i.nir {
        let nir = Nir::parse(nir).map_err(|e| Rejection::personal("identity.nir", e))?;
        nir.check_birth_date(birth)
            .map_err(|e| Rejection::personal("identity.nir", e))?;
    }
    email("identity.email", i.email.as_deref())?;
    phone("identity.phone", i.phone.as_deref())
}

fn contact(c: &Contact) -> Checked {
    email("contact.email", c.email.as_deref())?;
    phone("contact.phone", c.phone.as_deref())?;
    if let Some(p) = &c.postal_code {
        if p.len() != 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad_format("contact.postal_code", "5 digits"));
        }
    }
    Ok(())
}

fn health(h: &Health, effective: NaiveDate, ctx: &Context<'_>) -> Checked {
    let states_health = h.rqth.is_some() || h.rqth_until.is_some() || h.boeth.is_some();
    if states_health && ctx.operator == "mission-locale" {
        return Err(Rejection::new(
            "authz.field_not_writable",
            "health-related fields (RQTH, BOETH) are stated by france-travail or cap-emploi only",
            Some("health"),
        ));
    }
    if let Some(until) = h.rqth_until {
        let until = day("health.rqth_until", until)?;
        validate::period(effective, Some(until))
            .map_err(|e| Rejection::personal("health.rqth_until", e))?;
    }
    Ok(())
}

fn bad_format(field: &'static str, expected: &str) -> Rejection {
    Rejection::new(
        "field.format",
        format!("{field} must be {expected}"),
        Some(field),
    )
}

fn email(field: &'static str, value: Option<&str>) -> Checked {
    let Some(v) = value else { return Ok(()) };
    let ok = v.len() <= 254
        && !v.chars().any(char::is_whitespace)
        && v.split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
    if ok {
        Ok(())
    } else {
        Err(bad_format(field, "an e-mail address"))
    }
}

fn phone(field: &'static str, value: Option<&str>) -> Checked {
    let Some(v) = value else { return Ok(()) };
    let digits = v.chars().filter(char::is_ascii_digit).count();
    let ok = (8..=15).contains(&digits)
        && v.chars()
            .enumerate()
            .all(|(i, c)| c.is_ascii_digit() || c == ' ' || c == '.' || (c == '+' && i == 0));
    if ok {
        Ok(())
    } else {
        Err(bad_format(
            field,
            "a phone number (digits, spaces, dots, leading +)",
        ))
    }
}
