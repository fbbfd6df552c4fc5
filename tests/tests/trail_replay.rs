//! Decision replay on the real PostgreSQL: an access is re-evaluated with the grants in force
//! at its instant (habilitations as events) and the cedar policies, beside what was decided.

#[path = "trail_support.rs"]
mod support;

use chrono::{Duration, Utc};
use rdkafka::message::{OwnedMessage, Timestamp};
use socle_domain::{AccessEvent, Decision, Envelope};
use support::*;

fn access(user: &str, at: chrono::DateTime<Utc>, policy_version: &str) -> AccessEvent {
    let mut envelope = Envelope::new(ORG, at).with_actor(user);
    envelope.recorded_at = envelope.occurred_at;
    AccessEvent {
        envelope,
        request_id: uuid::Uuid::now_v7().to_string(),
        user: user.to_owned(),
        organisation: ORG.to_owned(),
        ecosystem: Some("france-travail".into()),
        purpose: Some("accompagnement".into()),
        auth_strength: "mfa".into(),
        action: "person.read".into(),
        resource: "/persons/x".into(),
        person_ids: vec!["x".into()],
        decision: Decision::Allow,
        reason: None,
        policy_version: Some(policy_version.to_owned()),
        agreement_version: None,
    }
}

#[tokio::test]
async fn a_past_access_is_replayed_with_the_grants_in_force_then() {
    let db = TestDb::new().await;
    socle_audit::migrate(&db.pool)
        .await
        .expect("audit migrations");
    socle_policy::migrate(&db.pool)
        .await
        .expect("habilitations migrations");
    let engine = socle_policy::Engine::load(std::path::Path::new("../policies")).expect("policies");
    let topic = topic("replay-access", 1).await;
    let now = Utc::now();
    let user = "conseiller.replay";
    let grant = socle_policy::grants::new_grant(
        user,
        ORG,
        "france-travail",
        &["person.read"],
        "accompagnement",
        now - Duration::hours(1),
        now + Duration::hours(1),
        "admin.test",
    );
    let mut tx = db.pool.begin().await.expect("tx");
    socle_policy::grants::apply_granted(&mut tx, &grant)
        .await
        .expect("grant");
    tx.commit().await.expect("commit");

    // One read while the grant was in force, one before it was given.
    let during = access(user, now, engine.version());
    let before = access(user, now - Duration::hours(2), "policy-of-long-ago");
    let mut batch = Vec::new();
    for (i, e) in [&during, &before].into_iter().enumerate() {
        let payload = codec()
            .encode(&topic, &socle_kafka::schemas::ACCESS_EVENT, e)
            .await
            .expect("encode");
        batch.push(OwnedMessage::new(
            Some(payload),
            Some(user.as_bytes().to_vec()),
            topic.clone(),
            Timestamp::NotAvailable,
            0,
            i as i64,
            None,
        ));
    }
    socle_audit::project::apply(&db.pool, &codec(), &topic, &batch)
        .await
        .expect("projected");

    let mfa = vec!["person.read".to_owned()];
    let r = socle_audit::replay::replay(&db.pool, &engine, &mfa, during.envelope.event_id)
        .await
        .expect("replayed");
    assert_eq!(r.decided, "ALLOW");
    assert_eq!(r.grants_in_force, vec![grant.grant_id]);
    assert!(r.policy_version_matches);
    assert!(r.if_in_caseload.allowed, "{r:?}");

    let r = socle_audit::replay::replay(&db.pool, &engine, &mfa, before.envelope.event_id)
        .await
        .expect("replayed");
    assert_eq!(
        r.decided, "ALLOW",
        "what was decided then is shown as recorded"
    );
    assert!(
        r.grants_in_force.is_empty(),
        "no grant was in force two hours ago"
    );
    assert!(
        !r.if_in_caseload.allowed && !r.if_not_in_caseload.allowed,
        "{r:?}"
    );
    assert!(!r.policy_version_matches);

    let missing = socle_audit::replay::replay(&db.pool, &engine, &mfa, uuid::Uuid::now_v7()).await;
    assert!(
        matches!(missing, Err(socle_audit::Error::BadRequest(_))),
        "{missing:?}"
    );
    db.drop_db().await;
}
