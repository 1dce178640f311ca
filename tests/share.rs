//! Shares through the durable outbox, receipts, new versions, withdrawal,
//! onward consent, sync and retention — between real nodes.

mod common;

use common::{activate, bilateral, create, pin_all, wait_for, TestNode, MOU_GRANTS};
use liaison::pb;
use liaison::record::examples;
use tonic::Code;

async fn get(n: &TestNode, id: &str) -> Result<pb::GetRecordResponse, tonic::Status> {
    n.records()
        .await
        .get_record(pb::GetRecordRequest { id: id.into(), reason: "integration test".into(), ..Default::default() })
        .await
        .map(|r| r.into_inner())
}

fn outbox_state(n: &TestNode) -> Vec<String> {
    common::deliveries(n).iter().map(|i| i["state"].as_str().unwrap_or("").to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_to_a_stopped_peer_arrives_once_and_withdrawal_follows() {
    let root = tempfile::tempdir().unwrap();
    let (th, mut kh) = common::th_kh_under_mou(root.path());
    let rec = create(&th, examples::intelligence_report()).await;

    // The receiver is down: the share waits in the outbox and is retried.
    kh.stop();
    let out = th.cli_ok(&["record", "share", &rec.id, "--to", "kh-antht", "--purpose", "investigation"]);
    assert!(out.contains("queued for kh-antht under th-kh"), "{out}");
    wait_for(20, "a failed attempt", || {
        let items = th.cli_json(&["outbox"]);
        items["items"][0]["attempts"].as_u64().unwrap_or(0) >= 1 || items["items"][0]["attempts"].as_str().is_some()
    });
    let pending = th.cli_json(&["outbox"]);
    assert_eq!(pending["items"][0]["state"], "OUTBOX_STATE_PENDING");
    assert!(!pending["items"][0]["lastError"].as_str().unwrap_or("").is_empty(), "outbox says why: {pending}");

    kh.start();
    wait_for(90, "delivery after the peer came back", || outbox_state(&th) == vec!["OUTBOX_STATE_DELIVERED"]);
    let got = get(&kh, "th-atpd/ir-fishing-2026-07").await.unwrap();
    assert_eq!(got.record.as_ref().unwrap().version, 1);
    let prov = got.provenance.unwrap();
    assert_eq!((prov.received_from.as_str(), prov.agreement_id.as_str()), ("th-atpd", "th-kh"));
    assert_eq!(prov.purpose, pb::Purpose::Investigation as i32);
    // Exactly one copy, and a signed receipt kept as evidence.
    let listed = kh.records().await.list_records(pb::ListRecordsRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.records.iter().filter(|r| r.id == rec.id).count(), 1);
    let receipts = th.cli_json(&["record", "receipts", &rec.id]);
    assert_eq!(receipts["receipts"].as_array().unwrap().len(), 1, "{receipts}");
    assert_eq!(receipts["receipts"][0]["delivered"], true);
    assert_eq!(receipts["receipts"][0]["receiver"], "kh-antht");

    // A new version replaces the old one at the receiver.
    let mut v2 = examples::intelligence_report();
    if let Some(pb::record::Body::IntelligenceReport(i)) = v2.body.as_mut() {
        i.summary = "Updated: network moved recruitment to messaging apps.".into();
    }
    th.records()
        .await
        .update_record(pb::UpdateRecordRequest { record: Some(v2), expected_version: 1, ..Default::default() })
        .await
        .unwrap();
    wait_for(30, "version 2 at the receiver", || {
        futures::executor::block_on(async {
            get(&kh, "th-atpd/ir-fishing-2026-07").await.map(|r| r.record.unwrap().version).unwrap_or(0)
        }) == 2
    });

    // Withdrawal propagates; the receiver purges its copy.
    th.cli_ok(&["record", "withdraw", &rec.id, "--expected-version", "2"]);
    wait_for(30, "purge at the receiver", || {
        futures::executor::block_on(async { get(&kh, "th-atpd/ir-fishing-2026-07").await.err().map(|e| e.code()) })
            == Some(Code::NotFound)
    });
    let log = kh.cli_json(&["audit", "list", "--action", "record.", "--limit", "1000"]);
    let actions: Vec<&str> = log["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions.iter().filter(|a| **a == "record.receive").count(), 2, "{actions:?}");
    assert!(actions.contains(&"record.purge"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receiver_checks_policy_itself_and_refuses_with_a_signed_receipt() {
    use liaison::envelope::{self, payload};
    let root = tempfile::tempdir().unwrap();
    let (th, kh) = common::th_kh_under_mou(root.path());
    // The sender's own check refuses at once.
    let out = th.cli(&["record", "share", "nope", "--to", "kh-antht", "--purpose", "investigation"]);
    assert!(!out.status.success());
    let stats = create(&th, examples::statistics_report()).await;
    let out = th.cli(&["record", "share", &stats.id, "--to", "kh-antht", "--purpose", "statistics_and_reporting"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(err.contains("kind_not_granted") || err.contains("purpose_not_granted"), "{err}");

    // A sender that skips its own check (or has an outdated view) meets the receiver's:
    // a RED report is above the grant, so KH refuses, stores nothing, and signs a receipt saying why.
    let th_id = liaison::identity::Identity::load(&liaison::config::Layout::new(&th.dir)).unwrap();
    let kh_card = kh.card();
    let mut fed = pb::federation_service_client::FederationServiceClient::new(
        liaison::federation::dial(&th_id, &kh_card).unwrap(),
    );
    let mut red = examples::intelligence_report();
    red.originator = "th-atpd".into();
    red.version = 1;
    red.handling = pb::HandlingCode::Red as i32;
    let now = liaison::convert::timestamp(time::OffsetDateTime::now_utc());
    (red.create_time, red.update_time) = (Some(now), Some(now));
    let shared = pb::SharedRecord {
        record: Some(envelope::seal(payload::RECORD, &red, "th-atpd", &th_id.signing_key)),
        agreement_id: "th-kh".into(),
        agreement_version: 1,
        onward_sharing: pb::OnwardSharing::Allowed as i32,
        retention_days: 0,
    };
    let push = pb::PushRecordRequest {
        delivery_id: "dlv-test-1".into(),
        shared: Some(shared.clone()),
        purpose: pb::Purpose::Investigation as i32,
        consent: None,
    };
    let receipt_env = fed.push_record(push.clone()).await.unwrap().into_inner().receipt.unwrap();
    let kh_key = envelope::verifying_key(&kh_card.signing_public_key).unwrap();
    let receipt: pb::Receipt = envelope::open(&receipt_env, payload::RECEIPT, "kh-antht", &kh_key).unwrap();
    assert!(!receipt.delivered);
    assert!(receipt.reason.starts_with("handling_above_grant"), "{}", receipt.reason);
    assert_eq!(get(&kh, "th-atpd/ir-fishing-2026-07").await.unwrap_err().code(), Code::NotFound);
    // A retry of the same delivery gets the same receipt.
    let again = fed.push_record(push).await.unwrap().into_inner().receipt.unwrap();
    assert_eq!(again, receipt_env);

    // A record whose signature does not match its bytes is refused outright.
    let mut forged = shared;
    if let Some(env) = forged.record.as_mut() {
        let last = env.body.len() - 1;
        env.body[last] ^= 1;
    }
    let bad = pb::PushRecordRequest {
        delivery_id: "dlv-test-2".into(),
        shared: Some(forged),
        purpose: pb::Purpose::Investigation as i32,
        consent: None,
    };
    assert_eq!(fed.push_record(bad).await.unwrap_err().code(), Code::Unauthenticated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onward_sharing_needs_the_originators_consent() {
    let root = tempfile::tempdir().unwrap();
    let mut th = TestNode::init(root.path(), "th-atpd", "TH");
    let mut kh = TestNode::init(root.path(), "kh-antht", "KH");
    let mut vn = TestNode::init(root.path(), "vn-c02", "VN");
    for n in [&mut th, &mut kh, &mut vn] {
        n.start();
    }
    pin_all(&[&th, &kh, &vn]);
    activate(&[&th, &kh], &bilateral("th-kh", "th-atpd", "kh-antht", 365, MOU_GRANTS), "th-kh");
    activate(&[&kh, &vn], &bilateral("kh-vn", "kh-antht", "vn-c02", 365, MOU_GRANTS), "kh-vn");
    let rec = create(&th, examples::entity()).await;
    th.cli_ok(&["record", "share", &rec.id, "--to", "kh-antht", "--purpose", "investigation"]);
    wait_for(30, "delivery to KH", || outbox_state(&th) == vec!["OUTBOX_STATE_DELIVERED"]);

    // KH may not pass TH's record on without TH's consent.
    let key = format!("th-atpd/{}", rec.id);
    let out = kh.cli(&["record", "share", &key, "--to", "vn-c02", "--purpose", "investigation"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("onward_consent_missing"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    kh.cli_ok(&["consent", "request", &key, "--to", "vn-c02", "--purpose", "investigation"]);
    let reqs = th.cli_json(&["consent", "list"]);
    let consent_id = reqs["requests"][0]["consentId"].as_str().unwrap().to_string();
    assert_eq!(reqs["requests"][0]["holder"], "kh-antht");
    th.cli_ok(&["consent", "grant", &consent_id]);

    kh.cli_ok(&["record", "share", &key, "--to", "vn-c02", "--purpose", "investigation"]);
    wait_for(30, "delivery to VN", || outbox_state(&kh) == vec!["OUTBOX_STATE_DELIVERED"]);
    let got = get(&vn, &key).await.unwrap();
    let r = got.record.unwrap();
    assert_eq!(r.originator, "th-atpd", "VN holds TH's own signed record");
    assert_eq!(got.provenance.unwrap().received_from, "kh-antht");
    assert_eq!(r.redacted_fields, vec!["entity.evidence_basis"]);

    // A record whose grant forbids onward sharing cannot be passed on at all.
    let v = create(&th, examples::victim_referral()).await;
    th.cli_ok(&["record", "share", &v.id, "--to", "kh-antht", "--purpose", "victim_identification"]);
    wait_for(30, "victim referral at KH", || {
        outbox_state(&th).iter().filter(|s| *s == "OUTBOX_STATE_DELIVERED").count() == 2
    });
    let out = kh.cli(&[
        "record",
        "share",
        &format!("th-atpd/{}", v.id),
        "--to",
        "vn-c02",
        "--purpose",
        "victim_identification",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("onward_forbidden"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contact_directories_sync_by_cursor_and_retention_purges() {
    let root = tempfile::tempdir().unwrap();
    let mut th = TestNode::init(root.path(), "th-atpd", "TH");
    let mut kh = TestNode::init(root.path(), "kh-antht", "KH");
    th.start();
    kh.start();
    pin_all(&[&th, &kh]);
    activate(&[&th, &kh], &bilateral("th-kh", "th-atpd", "kh-antht", 30, MOU_GRANTS), "th-kh");
    for i in 0..3 {
        create(&th, common::contact_point(&format!("cp-th-{i}"), &format!("Border desk {i}"))).await;
    }
    create(&th, examples::entity()).await; // not syncable: the grant allows sync for contact points only

    let r = kh.cli_json(&["sync", "--peer", "th-atpd"]);
    assert_eq!(r["peers"][0]["received"], 3, "{r}");
    let found = kh.cli_ok(&["contacts", "search", "border desk"]);
    assert!(found.contains("Border desk 2") && found.contains("th-atpd"), "origin shown: {found}");
    assert!(get(&kh, "th-atpd/en-broker-sok").await.is_err(), "entities are not synced");

    // Nothing new: nothing sent.
    let r = kh.cli_json(&["sync", "--peer", "th-atpd"]);
    assert!(r["peers"][0]["received"].is_null() || r["peers"][0]["received"] == 0, "{r}");

    // Changes since the cursor: one new, one updated, one withdrawn.
    create(&th, common::contact_point("cp-th-new", "Hotline")).await;
    th.records()
        .await
        .update_record(pb::UpdateRecordRequest {
            record: Some(common::contact_point("cp-th-0", "Border desk 0 (night)")),
            expected_version: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    th.records()
        .await
        .withdraw_record(pb::WithdrawRecordRequest { id: "cp-th-1".into(), expected_version: 1, ..Default::default() })
        .await
        .unwrap();
    let r = kh.cli_json(&["sync", "--peer", "th-atpd"]);
    assert_eq!(r["peers"][0]["received"], 2, "{r}");
    assert_eq!(r["peers"][0]["purged"], 1, "{r}");
    let names = kh.cli_ok(&["contacts", "list"]);
    assert!(
        names.contains("Border desk 0 (night)") && names.contains("Hotline") && !names.contains("Border desk 1"),
        "{names}"
    );

    // Retention: 30 days later on KH's clock, received contact points are purged (and audited).
    kh.stop();
    kh.env.push(("LIAISON_CLOCK_OFFSET_SECS".into(), (31 * 86_400).to_string()));
    kh.start();
    wait_for(60, "retention purge", || !kh.cli_ok(&["contacts", "list"]).contains("th-atpd"));
    let log = kh.cli_json(&["audit", "list", "--action", "record.purge", "--limit", "100"]);
    assert!(log["entries"].as_array().unwrap().iter().any(|e| e["reason"] == "retention period ended"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_purges_received_records_at_once() {
    let root = tempfile::tempdir().unwrap();
    let (th, kh) = common::th_kh_under_mou(root.path());
    let rec = create(&th, examples::intelligence_report()).await;
    th.cli_ok(&["record", "share", &rec.id, "--to", "kh-antht", "--purpose", "investigation"]);
    wait_for(30, "delivery", || outbox_state(&th) == vec!["OUTBOX_STATE_DELIVERED"]);
    assert!(get(&kh, "th-atpd/ir-fishing-2026-07").await.is_ok());
    th.cli_ok(&["agreement", "revoke", "th-kh", "--reason", "MOU terminated"]);
    wait_for(30, "purge on revocation", || {
        futures::executor::block_on(async { get(&kh, "th-atpd/ir-fishing-2026-07").await.is_err() })
    });
    let log = kh.cli_json(&["audit", "list", "--action", "record.purge", "--limit", "100"]);
    assert_eq!(log["entries"][0]["reason"], "agreement revoked");
}

/// The race a revocation must win. A receiver decides on a record (policy,
/// audited) and then writes it; a revocation can land between the two. The
/// write asks again whether the agreement is in force, so a record admitted a
/// moment before the revocation is refused if its write comes after it, and
/// the purge (which walks the store without the write lock) cannot miss it.
/// The writes are made in process on KH's stopped node, with the provenance
/// such a decision gives, to place them exactly before and after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_admitted_before_a_revocation_but_written_after_it_is_refused() {
    use liaison::exchange::receive::{store_received, InForce, Kept};
    let root = tempfile::tempdir().unwrap();
    let (th, mut kh) = common::th_kh_under_mou(root.path());
    let write = |node: &std::sync::Arc<liaison::node::Node>, id: &str, restoring: bool| {
        let rec = pb::Record { id: id.into(), ..common::originated("th-atpd", examples::contact_point()) };
        // Not verified at this step (the decision before it was): any key will do.
        let env =
            liaison::envelope::seal(liaison::envelope::payload::RECORD, &rec, "th-atpd", &node.identity.signing_key);
        let prov = pb::Provenance {
            received_from: "th-atpd".into(),
            agreement_id: "th-kh".into(),
            agreement_version: 1,
            purpose: pb::Purpose::Coordination as i32,
            receive_time: Some(common::now_ts()),
            ..Default::default()
        };
        let node = std::sync::Arc::clone(node);
        async move {
            node.db
                .write(|st, tx| {
                    let mut in_force = if restoring { InForce::restoring(&node) } else { InForce::receiving(&node) };
                    store_received(st, tx, &env, &rec, prov, "peer:th-atpd", &mut in_force)
                })
                .await
                .unwrap()
        }
    };
    let open = |kh: &TestNode| {
        liaison::node::Node::open(liaison::config::Layout::new(&kh.dir), liaison::node::default_clock().unwrap())
            .unwrap()
    };

    // Before the revocation: stored.
    kh.stop();
    let node = open(&kh);
    assert_eq!(write(&node, "cp-before", false).await, Kept::Stored);
    drop(node);

    // The revocation purges it: the walk found what was written before.
    kh.start();
    assert!(get(&kh, "th-atpd/cp-before").await.is_ok());
    th.cli_ok(&["agreement", "revoke", "th-kh", "--reason", "MOU terminated"]);
    wait_for(30, "purge on revocation", || {
        futures::executor::block_on(async { get(&kh, "th-atpd/cp-before").await.is_err() })
    });

    // After it, in the write a decision taken before it would make: refused,
    // whether received or taken back from an export, and audited.
    kh.stop();
    let node = open(&kh);
    assert_eq!(write(&node, "cp-after", false).await, Kept::AgreementEnded);
    assert_eq!(write(&node, "cp-restored", true).await, Kept::AgreementEnded);
    for id in ["cp-after", "cp-restored"] {
        let key = format!("th-atpd/{id}");
        assert!(liaison::store::records::get(node.db.store(), &key).unwrap().is_none(), "{key} stored");
    }
    drop(node);
    kh.start();
    let log = kh.cli_json(&["audit", "list", "--action", "record.refused", "--limit", "100"]);
    let refused = log["entries"].as_array().unwrap();
    assert_eq!(refused.len(), 2, "{log}");
    assert!(refused.iter().all(|e| e["reason"].as_str().unwrap().contains("th-kh v1 is no longer in force")), "{log}");
}
