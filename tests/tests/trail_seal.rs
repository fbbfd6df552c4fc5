//! The seal on the real services: `socle seal` chains an access topic into PostgreSQL and a
//! seal topic; the trail read back verifies; each kind of tampering (in an export file, and a
//! forged checkpoint on the seal topic itself) is named precisely; a restarted sealer continues
//! the chain exactly once.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::*;
use ed25519_dalek::SigningKey;
use socle_domain::{AccessEvent, Decision, Envelope};
use socle_seal::sealer::SealerConfig;
use socle_seal::{Entry, Finding, Range};
use tokio_util::sync::CancellationToken;

fn access(user: &str, n: usize) -> AccessEvent {
    AccessEvent {
        envelope: Envelope::new(ORG, Utc::now()).with_actor(user),
        request_id: format!("req-{n}"),
        user: user.to_owned(),
        organisation: ORG.to_owned(),
        ecosystem: Some("france-travail".into()),
        purpose: Some("accompagnement".into()),
        auth_strength: "mfa".into(),
        action: "person.read".into(),
        resource: format!("/persons/{n}"),
        person_ids: vec![uuid::Uuid::now_v7().to_string()],
        decision: Decision::Allow,
        reason: None,
        policy_version: Some("test".into()),
        agreement_version: None,
    }
}

async fn append(topic: &str, from: usize, count: usize) {
    let trail = socle_kafka::AccessTrail::new(producer(), codec(), topic);
    for n in from..from + count {
        trail
            .record(&access(&format!("user-{}", n % 7), n))
            .await
            .expect("access event appended");
    }
}

fn start_sealer(
    db: &TestDb,
    topic: &str,
    seal_topic: &str,
    key: &SigningKey,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<socle_seal::Result<()>>,
) {
    let shutdown = CancellationToken::new();
    let config = SealerConfig {
        brokers: brokers(),
        topics: vec![topic.to_owned()],
        seal_topic: seal_topic.to_owned(),
        every_entries: 10,
        every: Duration::from_millis(300),
    };
    let handle = tokio::spawn(socle_seal::sealer::run(
        config,
        db.pool.clone(),
        codec(),
        producer(),
        key.clone(),
        shutdown.clone(),
    ));
    (shutdown, handle)
}

async fn wait_sealed(
    db: &TestDb,
    topic: &str,
    total: i64,
    sealer: tokio::task::JoinHandle<socle_seal::Result<()>>,
) -> tokio::task::JoinHandle<socle_seal::Result<()>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let heads = socle_seal::store::heads(&db.pool, topic)
            .await
            .expect("heads");
        if heads.iter().map(|(_, h)| h.chained).sum::<i64>() == total {
            return sealer;
        }
        if sealer.is_finished() {
            panic!("the sealer stopped: {:?}", sealer.await);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{total} entries not sealed in time"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn read_back(topic: &str, seal_topic: &str) -> (Vec<Entry>, Vec<socle_seal::Checkpoint>) {
    let t = Duration::from_secs(30);
    let entries = socle_seal::read::entries(&brokers(), topic, None, t)
        .await
        .expect("entries");
    let cps = socle_seal::read::checkpoints(&brokers(), &codec(), seal_topic, topic, t)
        .await
        .expect("checkpoints");
    (entries, cps)
}

#[tokio::test]
async fn sealed_trail_verifies_and_every_tampering_is_named() {
    let db = TestDb::new().await;
    socle_seal::migrate(&db.pool)
        .await
        .expect("seal migrations");
    let topic = topic("trail-access", 3).await;
    let seal_topic = topic_named("trail-seal").await;
    let key = SigningKey::from_bytes(&[42u8; 32]);
    let public = key.verifying_key();

    append(&topic, 0, 45).await;
    let (stop, handle) = start_sealer(&db, &topic, &seal_topic, &key);
    let handle = wait_sealed(&db, &topic, 45, handle).await;
    // A second sealer on the same topic is refused: two writers would fork the chain.
    let (_, second) = start_sealer(&db, &topic, &seal_topic, &key);
    let refused = second.await.expect("joined");
    assert!(
        matches!(refused, Err(socle_seal::Error::Busy(_))),
        "{refused:?}"
    );
    stop.cancel();
    handle.await.expect("joined").expect("sealer ran");

    // Restarted, the sealer continues each partition's chain where it stopped, exactly once.
    append(&topic, 45, 20).await;
    let (stop, handle) = start_sealer(&db, &topic, &seal_topic, &key);
    let handle = wait_sealed(&db, &topic, 65, handle).await;
    stop.cancel();
    handle.await.expect("joined").expect("sealer ran");

    let (entries, cps) = read_back(&topic, &seal_topic).await;
    assert_eq!(entries.len(), 65);
    let report = socle_seal::verify(&entries, &cps, &public, Range::default());
    assert!(report.is_clean(), "{:?}", report.findings);
    assert_eq!((report.verified, report.unsealed), (65, 0));
    let stored = socle_seal::store::checkpoints(&db.pool, &topic, false)
        .await
        .expect("stored checkpoints");
    assert_eq!(
        stored.len() as u64,
        report.checkpoints,
        "one checkpoint per interval, none twice"
    );

    // Offline: an export file, manipulated the way an insider with file access would.
    let mut file = Vec::new();
    socle_seal::export::write(&mut file, &entries, &cps).expect("export");
    let (exported, exported_cps) = socle_seal::export::read(file.as_slice()).expect("read back");
    assert_eq!(exported, entries);
    let check = |entries: &[Entry], cps: &[socle_seal::Checkpoint]| {
        socle_seal::verify(entries, cps, &public, Range::default()).findings
    };
    let victim = entries
        .iter()
        .position(|e| e.offset == 5)
        .expect("an entry at offset 5");
    let (vt, vp) = (entries[victim].topic.clone(), entries[victim].partition);

    let mut deleted = exported.clone();
    deleted.remove(victim);
    assert_eq!(
        check(&deleted, &exported_cps),
        vec![Finding::Deleted {
            topic: vt.clone(),
            partition: vp,
            offset: 5
        }]
    );

    let mut altered = exported.clone();
    if let Some(v) = altered[victim].value.as_mut() {
        let last = v.len() - 1;
        v[last] ^= 0x01;
    }
    assert_eq!(
        check(&altered, &exported_cps),
        vec![Finding::Altered {
            topic: vt.clone(),
            partition: vp,
            offset: 5
        }]
    );

    let mut inserted = exported.clone();
    let mut forged = exported[victim].clone();
    forged.value = Some(b"a read that never happened".to_vec());
    inserted.insert(victim + 1, forged);
    assert_eq!(
        check(&inserted, &exported_cps),
        vec![Finding::Inserted {
            topic: vt.clone(),
            partition: vp,
            offset: 5
        }]
    );

    let mut reordered = exported.clone();
    reordered.swap(victim, victim + 1);
    let f = check(&reordered, &exported_cps);
    assert!(
        f.iter().any(|x| matches!(
            x,
            Finding::Reordered {
                sealed_offset: 5,
                ..
            }
        )),
        "{f:?}"
    );
    assert!(!f
        .iter()
        .any(|x| matches!(x, Finding::Deleted { .. } | Finding::Altered { .. })));

    let mut bad_cps = exported_cps.clone();
    bad_cps[0].sealed_at += 1;
    let f = check(&exported, &bad_cps);
    assert!(
        f.iter().any(|x| matches!(x, Finding::BadSignature { .. })),
        "{f:?}"
    );

    // Online: a checkpoint forged with another key and appended to the seal topic itself.
    let impostor = SigningKey::from_bytes(&[13u8; 32]);
    let mut forged_cp = cps[0].clone();
    forged_cp.last_offset += 1_000;
    forged_cp.first_offset += 1_000;
    forged_cp.offsets = forged_cp.offsets.iter().map(|o| o + 1_000).collect();
    let resealed = socle_seal::Checkpoint::seal(
        &forged_cp.topic,
        forged_cp.partition,
        forged_cp.prev_hash.as_slice().try_into().expect("32 bytes"),
        forged_cp.chained - forged_cp.count,
        &forged_cp.entries().expect("entries"),
        forged_cp.sealed_at,
        &impostor,
    )
    .expect("forged checkpoint");
    let payload = codec()
        .encode(&seal_topic, &socle_seal::CHECKPOINT, &resealed)
        .await
        .expect("encode");
    producer()
        .send(&seal_topic, "forged", &payload)
        .await
        .expect("forged checkpoint appended");
    let (entries, cps) = read_back(&topic, &seal_topic).await;
    let f = socle_seal::verify(&entries, &cps, &public, Range::default()).findings;
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(
        matches!(&f[0], Finding::BadSignature { detail, .. } if detail.contains("signed with key")),
        "{f:?}"
    );
    db.drop_db().await;
}

async fn topic_named(prefix: &str) -> String {
    topic(prefix, 1).await
}
