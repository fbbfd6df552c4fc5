//! The projector against the real Kafka and PostgreSQL: exactly-once across crashes and
//! restarts, and poison messages recorded without stalling their partition.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use socle_kafka::framing::Frame;
use socle_kafka::schemas::ACCESS_EVENT;
use uuid::Uuid;

async fn stored_total(db: &TestDb, group: &str, topic: &str) -> i64 {
    socle_store::offsets::load(&db.pool, group, topic)
        .await
        .expect("offsets load")
        .iter()
        .map(|(_, o)| o)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crashes_and_restarts_lose_nothing_and_double_nothing() {
    let db = TestDb::new().await;
    let persons = topic("it-persons", 3).await;
    let group = unique("it-group");
    let publisher = publisher(&db, &persons);

    // Expected state: for each person, the last event published for them.
    let mut last_event: HashMap<Uuid, (Uuid, String)> = HashMap::new();
    let mut published = 0i64;
    let mut people: Vec<socle_ingest::Registration> = Vec::new();

    for round in 0..4u32 {
        let projector = start_projector(&db, &persons, &group);
        // New people, and a newer version of some earlier ones (same id, new name).
        for n in 0..60 {
            let r = registration(round * 1000 + n);
            people.push(r.clone());
            let p = publisher.register(r.clone()).await.expect("published");
            last_event.insert(p.person_id, (p.event_id, r.identity.family_name.clone()));
            published += 1;
        }
        for earlier in people.iter_mut().step_by(7).take(10) {
            earlier.identity.family_name = format!("Renamed{round}");
            earlier.occurred_at = chrono::Utc::now();
            let p = publisher
                .register(earlier.clone())
                .await
                .expect("published");
            last_event.insert(
                p.person_id,
                (p.event_id, earlier.identity.family_name.clone()),
            );
            published += 1;
        }
        // Let it get part of the way, then stop it: abruptly on even rounds (a crash, the
        // batch in hand is lost), gracefully on odd ones.
        let target = published - 30;
        eventually(Duration::from_secs(30), "some progress", || async {
            stored_total(&db, &group, &persons).await >= target.min(published / 2)
        })
        .await;
        if round % 2 == 0 {
            projector.handle.abort();
            let _ = projector.handle.await;
        } else {
            projector.shutdown.cancel();
            projector
                .handle
                .await
                .expect("joined")
                .expect("projector stops cleanly");
        }
    }

    let projector = start_projector(&db, &persons, &group);
    eventually(Duration::from_secs(60), "every offset applied", || async {
        stored_total(&db, &group, &persons).await == published
    })
    .await;
    projector.shutdown.cancel();
    projector.handle.await.expect("joined").expect("clean stop");

    // The core state holds every person's latest event, France Travail's model their latest
    // name (all were registered with France Travail).
    let rows: Vec<(Uuid, Uuid, String)> = sqlx::query_as(
        "SELECT c.person_id, c.last_event_id, e.identity_family_name \
         FROM core.persons c JOIN eco_france_travail.persons e USING (person_id)",
    )
    .fetch_all(&db.pool)
    .await
    .expect("rows");
    assert_eq!(
        rows.len(),
        last_event.len(),
        "one row per person, none lost"
    );
    for (person_id, event_id, family_name) in &rows {
        let (expected_event, expected_name) = &last_event[person_id];
        assert_eq!(
            event_id, expected_event,
            "latest event applied for {person_id}"
        );
        assert_eq!(family_name, expected_name);
    }
    let rejected = socle_store::offsets::rejected(&db.pool, &group, &persons)
        .await
        .expect("rejects");
    assert!(rejected.is_empty(), "nothing rejected: {rejected:?}");
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn poison_messages_are_kept_with_their_reason_and_do_not_stall_the_partition() {
    let db = TestDb::new().await;
    // One partition, so the good event really is behind the bad ones.
    let persons = topic("it-persons", 1).await;
    let group = unique("it-group");
    let producer = producer();
    let codec = codec();

    let access_event = socle_domain::AccessEvent {
        envelope: socle_domain::Envelope::new(ORG, chrono::Utc::now()),
        request_id: "r".into(),
        user: USER.into(),
        organisation: ORG.into(),
        ecosystem: None,
        purpose: None,
        auth_strength: "none".into(),
        action: "person.read".into(),
        resource: "/persons/x".into(),
        person_ids: vec![],
        decision: socle_domain::Decision::Deny,
        reason: None,
        policy_version: None,
        agreement_version: None,
    };
    let wrong_type = codec
        .encode(&persons, &ACCESS_EVENT, &access_event)
        .await
        .expect("encodes");
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("frame.unknown_magic", b"{\"not\":\"avro\"}".to_vec()),
        ("frame.too_short", vec![0, 0, 1]),
        (
            "frame.guid_unsupported",
            [vec![1u8], vec![7u8; 16], b"x".to_vec()].concat(),
        ),
        ("schema.unknown_id", Frame::encode(999_999_999, b"\x02")),
        ("event.unexpected_type", wrong_type),
    ];
    for (_, payload) in &bad {
        producer.send(&persons, "k", payload).await.expect("sent");
    }
    let good = registration(7);
    let good_id = good.person_id;
    publisher(&db, &persons)
        .register(good)
        .await
        .expect("published");

    let projector = start_projector(&db, &persons, &group);
    eventually(
        Duration::from_secs(30),
        "the good event behind the bad ones",
        || async { in_model(&db, "france-travail", good_id).await },
    )
    .await;
    projector.shutdown.cancel();
    projector.handle.await.expect("joined").expect("clean stop");

    let rejected = socle_store::offsets::rejected(&db.pool, &group, &persons)
        .await
        .expect("rejects");
    let codes: Vec<&str> = rejected.iter().map(|r| r.code.as_str()).collect();
    let expected: Vec<&str> = bad.iter().map(|(c, _)| *c).collect();
    assert_eq!(
        codes, expected,
        "each bad message kept with its reason, in order"
    );
    for (r, (_, payload)) in rejected.iter().zip(&bad) {
        assert_eq!(
            r.payload.as_deref(),
            Some(payload.as_slice()),
            "original bytes kept"
        );
        assert!(!r.reason.is_empty());
    }
    db.drop_db().await;
}

/// A canonical follow event about `person`, as if a producer had bypassed ingest's checks.
enum FollowEvent {
    Started(Uuid, &'static str, &'static str),
    Ended(Uuid, &'static str),
}

async fn publish_follow(
    codec: &socle_kafka::Codec,
    producer: &socle_kafka::EventProducer,
    topic: &str,
    person: Uuid,
    event: FollowEvent,
) {
    let today = socle_domain::time::to_days(chrono::Utc::now().date_naive());
    let payload = match event {
        FollowEvent::Started(follow_id, organisation, ecosystem) => codec
            .encode(
                topic,
                &socle_ingest::contracts::FOLLOW_STARTED,
                &socle_ingest::canonical::FollowStarted {
                    envelope: socle_domain::Envelope::new(organisation, chrono::Utc::now()),
                    person_id: person,
                    follow_id,
                    organisation: organisation.to_owned(),
                    ecosystem: ecosystem.to_owned(),
                    activity: "accompagnement-global".into(),
                    territory: "75".into(),
                    purpose: "accompagnement".into(),
                    started_on: today,
                    until: None,
                },
            )
            .await
            .expect("encodes"),
        FollowEvent::Ended(follow_id, organisation) => codec
            .encode(
                topic,
                &socle_ingest::contracts::FOLLOW_ENDED,
                &socle_ingest::canonical::FollowEnded {
                    envelope: socle_domain::Envelope::new(organisation, chrono::Utc::now()),
                    person_id: person,
                    follow_id,
                    organisation: organisation.to_owned(),
                    ended_on: today,
                    reason_code: None,
                },
            )
            .await
            .expect("encodes"),
    };
    producer
        .send(topic, &person.to_string(), &payload)
        .await
        .expect("sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn follows_belong_to_their_person_and_organisation() {
    const CE_ORG: &str = "90000100900019";
    const FT_ORG: &str = "90000100500012";
    let db = TestDb::new().await;
    let persons = topic("it-persons", 1).await;
    let group = unique("it-group");
    let producer = producer();
    let codec = codec();
    let publisher = publisher(&db, &persons);
    let p1 = publisher
        .register(registration(11))
        .await
        .expect("published")
        .person_id;
    let p2 = publisher
        .register(registration(12))
        .await
        .expect("published")
        .person_id;
    let (f1, f2, unknown) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    for (person, event) in [
        (p1, FollowEvent::Started(f1, CE_ORG, "cap-emploi")),
        (p2, FollowEvent::Started(f2, FT_ORG, "france-travail")),
        // France Travail ends Cap Emploi's follow...
        (p1, FollowEvent::Ended(f1, FT_ORG)),
        // ...ends its own follow of p2 through p1...
        (p1, FollowEvent::Ended(f2, FT_ORG)),
        // ...takes over Cap Emploi's follow id for p2...
        (p2, FollowEvent::Started(f1, FT_ORG, "france-travail")),
        // ...and ends a follow that does not exist.
        (p1, FollowEvent::Ended(unknown, CE_ORG)),
        // Its own follow, through its own person: applied.
        (p2, FollowEvent::Ended(f2, FT_ORG)),
    ] {
        publish_follow(&codec, &producer, &persons, person, event).await;
    }
    let total = 9;

    let projector = start_projector(&db, &persons, &group);
    eventually(Duration::from_secs(30), "every event projected", || async {
        stored_total(&db, &group, &persons).await == total
    })
    .await;
    projector.shutdown.cancel();
    projector.handle.await.expect("joined").expect("clean stop");

    let rejected = socle_store::offsets::rejected(&db.pool, &group, &persons)
        .await
        .expect("rejects");
    let codes: Vec<(i64, &str)> = rejected
        .iter()
        .map(|r| (r.offset, r.code.as_str()))
        .collect();
    assert_eq!(
        codes,
        [
            (4, "follow.not_owned"),
            (5, "follow.not_owned"),
            (6, "follow.id_conflict"),
            (7, "follow.not_owned"),
        ],
        "each refused follow fact kept with its reason: {rejected:?}"
    );
    assert!(rejected.iter().all(|r| r.payload.is_some()));
    let follows: Vec<(Uuid, Uuid, String, Option<chrono::NaiveDate>)> = sqlx::query_as(
        "SELECT follow_id, person_id, organisation, ended_on FROM core.follows ORDER BY follow_id",
    )
    .fetch_all(&db.pool)
    .await
    .expect("follows");
    assert_eq!(follows.len(), 2, "{follows:?}");
    let f1_row = follows.iter().find(|f| f.0 == f1).expect("f1");
    assert_eq!(
        (f1_row.1, f1_row.2.as_str(), f1_row.3),
        (p1, CE_ORG, None),
        "Cap Emploi's follow kept its person and organisation, and is still open"
    );
    let f2_row = follows.iter().find(|f| f.0 == f2).expect("f2");
    assert_eq!((f2_row.1, f2_row.2.as_str()), (p2, FT_ORG));
    assert!(f2_row.3.is_some(), "its own organisation ended it");
    // In Cap Emploi's model, the follow is still Cap Emploi's link to p1.
    let links: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT person_id, organisation FROM eco_cap_emploi.links WHERE ref_id = $1",
    )
    .bind(f1)
    .fetch_all(&db.pool)
    .await
    .expect("links");
    assert_eq!(links, vec![(p1, CE_ORG.to_owned())]);
    db.drop_db().await;
}
