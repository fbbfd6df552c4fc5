//! The detector's events: `socle.trail.AlertRaised` and `socle.trail.SanctionChanged`
//! (`schemas/trail/`).

use std::sync::LazyLock;

use serde::{Deserialize, Serialize};
use socle_domain::Envelope;
use socle_kafka::schemas::Contract;

use crate::detector::{Alert, Figures};

fn contract(name: &'static str, raw: &'static str) -> Contract {
    Contract {
        name,
        raw,
        schema: apache_avro::Schema::parse_str(raw)
            .unwrap_or_else(|e| panic!("compiled-in schema {name} does not parse: {e}")),
    }
}

/// `socle.trail.AlertRaised`.
pub static ALERT_RAISED: LazyLock<Contract> = LazyLock::new(|| {
    contract(
        "socle.trail.AlertRaised",
        include_str!("../../../schemas/trail/AlertRaised.avsc"),
    )
});

/// `socle.trail.SanctionChanged`.
pub static SANCTION_CHANGED: LazyLock<Contract> = LazyLock::new(|| {
    contract(
        "socle.trail.SanctionChanged",
        include_str!("../../../schemas/trail/SanctionChanged.avsc"),
    )
});

/// The SIRET socle's own events are produced under when no operator is involved.
pub const SOCLE_ORGANISATION: &str = "00000000000000";

/// An alert on the alerts topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRaised {
    pub envelope: Envelope,
    pub alert_id: String,
    pub subject: String,
    pub user: Option<String>,
    pub organisation: String,
    pub rule: String,
    pub response: Option<String>,
    pub figures: WindowFigures,
    pub event_ids: Vec<String>,
    pub raised_at: i64,
}

/// [`Figures`] as carried in Avro (longs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowFigures {
    pub window_secs: i64,
    pub lookups: i64,
    pub distinct_persons: i64,
    pub outside_caseload: i64,
    pub outside_caseload_share: f64,
    pub large_searches: i64,
    pub refusals: i64,
    pub unusual_hour_reads: i64,
    pub baseline: Option<f64>,
    pub peer_baseline: Option<f64>,
}

impl From<&Figures> for WindowFigures {
    fn from(f: &Figures) -> Self {
        let l = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        WindowFigures {
            window_secs: f.window_secs,
            lookups: l(f.lookups),
            distinct_persons: l(f.distinct_persons),
            outside_caseload: l(f.outside_caseload),
            outside_caseload_share: f.outside_caseload_share,
            large_searches: l(f.large_searches),
            refusals: l(f.refusals),
            unusual_hour_reads: l(f.unusual_hour_reads),
            baseline: f.baseline,
            peer_baseline: f.peer_baseline,
        }
    }
}

impl AlertRaised {
    pub fn from_alert(a: &Alert) -> Self {
        let mut envelope =
            Envelope::new(SOCLE_ORGANISATION, chrono::Utc::now()).with_actor("socle-detect");
        envelope.occurred_at = a.raised_at;
        AlertRaised {
            envelope,
            alert_id: a.alert_id.to_string(),
            subject: a.subject.clone(),
            user: a.user.clone(),
            organisation: a.organisation.clone(),
            rule: a.rule.clone(),
            response: a.response.map(|k| k.as_str().to_owned()),
            figures: (&a.figures).into(),
            event_ids: a.event_ids.clone(),
            raised_at: a.raised_at,
        }
    }
}

/// A sanction imposed or lifted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SanctionChanged {
    pub envelope: Envelope,
    pub sanction_id: String,
    pub user: String,
    pub kind: String,
    /// `imposed` or `lifted`.
    pub change: String,
    pub reason: String,
    pub alert_id: Option<String>,
    pub by: String,
    pub expires_at: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detector::SanctionKind;

    #[test]
    fn events_round_trip_through_their_contracts() {
        let alert = Alert {
            alert_id: uuid::Uuid::now_v7(),
            subject: "u".into(),
            user: Some("u".into()),
            organisation: "o".into(),
            rule: "actor.distinct_persons".into(),
            response: Some(SanctionKind::Suspend),
            figures: Figures {
                window_secs: 300,
                lookups: 101,
                distinct_persons: 101,
                baseline: Some(2.5),
                ..Figures::default()
            },
            event_ids: vec!["e1".into()],
            raised_at: 5,
        };
        let event = AlertRaised::from_alert(&alert);
        let bytes = socle_kafka::codec::to_datum(&event, &ALERT_RAISED).expect("encode");
        let back: AlertRaised =
            socle_kafka::codec::from_datum(&bytes, &ALERT_RAISED).expect("decode");
        assert_eq!(back, event);
        let s = SanctionChanged {
            envelope: Envelope::new("o", chrono::Utc::now()),
            sanction_id: uuid::Uuid::now_v7().to_string(),
            user: "u".into(),
            kind: "suspend".into(),
            change: "imposed".into(),
            reason: "actor.distinct_persons".into(),
            alert_id: Some(alert.alert_id.to_string()),
            by: "socle-detect".into(),
            expires_at: None,
        };
        let bytes = socle_kafka::codec::to_datum(&s, &SANCTION_CHANGED).expect("encode");
        let back: SanctionChanged =
            socle_kafka::codec::from_datum(&bytes, &SANCTION_CHANGED).expect("decode");
        assert_eq!(back, s);
    }
}
