//! Decision replay on the real PostgreSQL: an access is re-evaluated with the grants in force
//! at its instant (habilitations as events) and the cedar policies, beside what was decided.

mod common;

use chrono::{Duration, Utc};
use common::*;
use rdkafka::message::{OwnedMessage, Timestamp};
use socle_domain::{AccessEvent, Decision, Envelope};

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

    // The rules in force then: a decision taken under an older policy version is replayed with
    // that version's archived texts, not with today's files.
    let text = std::fs::read_to_string("../policies/access.cedar").expect("policy file");
    let old_text = text
        .lines()
        .map(|l| {
            if l.trim().starts_with("// version:") {
                "// version: 2025.1-archived".to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let old_engine = socle_policy::Engine::from_texts(&[("access.cedar".into(), old_text)])
        .expect("old policies build");
    old_engine.archive(&db.pool).await.expect("archived");
    // The caseload as it was: this organisation followed `followed` from yesterday.
    let models = socle_projector::Models::new(
        &socle_agreements::Agreements::load_dir(std::path::Path::new("../deploy/agreements"))
            .expect("agreements"),
        socle_projector::Layout::live(),
    );
    let mut tx = db.pool.begin().await.expect("tx");
    models.ensure(&mut tx).await.expect("core state");
    let followed = uuid::Uuid::now_v7();
    sqlx::query(
        "INSERT INTO core.follows (follow_id, person_id, organisation, ecosystem, activity, \
         territory, purpose, started_on) VALUES ($1, $2, $3, 'france-travail', 'a', '75', 'p', $4)",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(followed)
    .bind(ORG)
    .bind((now - Duration::days(1)).date_naive())
    .execute(&mut *tx)
    .await
    .expect("follow");
    tx.commit().await.expect("commit");
    let mut archived = access(user, now, old_engine.version());
    archived.person_ids = vec![followed.to_string()];
    let mut stranger = access(user, now, engine.version());
    stranger.person_ids = vec![uuid::Uuid::now_v7().to_string()];
    let mut batch = Vec::new();
    for (i, e) in [&archived, &stranger].into_iter().enumerate() {
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
            10 + i as i64,
            None,
        ));
    }
    socle_audit::project::apply(&db.pool, &codec(), &topic, &batch)
        .await
        .expect("projected");
    let r = socle_audit::replay::replay(&db.pool, &engine, &mfa, archived.envelope.event_id)
        .await
        .expect("replayed");
    assert_eq!(r.replayed_policy_version, old_engine.version());
    assert!(
        r.policy_version_matches,
        "replayed under the archived version"
    );
    assert_eq!(r.in_caseload_then, Some(true), "followed at the time");
    assert_eq!(r.replayed.as_ref().map(|d| d.allowed), Some(true), "{r:?}");
    let r = socle_audit::replay::replay(&db.pool, &engine, &mfa, stranger.envelope.event_id)
        .await
        .expect("replayed");
    assert_eq!(r.in_caseload_then, Some(false), "not followed at the time");
    assert_eq!(r.replayed.as_ref().map(|d| d.allowed), Some(false), "{r:?}");

    let missing = socle_audit::replay::replay(&db.pool, &engine, &mfa, uuid::Uuid::now_v7()).await;
    assert!(
        matches!(missing, Err(socle_audit::Error::BadRequest(_))),
        "{missing:?}"
    );
    db.drop_db().await;
}
