//! A hostile peer on the answering side: KH's node is stopped and a fake
//! federation server takes its address, its pinned certificate and its
//! signing key. TH's sync and queries then receive whatever the attacker
//! chooses; TH must keep and show only what its own decision allows.

mod common;

use std::sync::{Arc, Mutex};

use common::fake_peer::{serve_fake, Answers};
use common::*;
use liaison::envelope::payload;
use liaison::identity::Identity;
use liaison::pb;
use liaison::pb::record::Body;

/// Contact points flow both ways for coordination, but never their channels.
const NO_CHANNELS: &str = r#"
[[grants]]
from = "*"
to = "*"
record_kinds = ["contact_point"]
purposes = ["coordination"]
operations = ["query", "sync"]
max_handling = "green"
redacted_fields = ["contact_point.channels"]
onward_sharing = "forbidden"
"#;

fn kh_contact(id: &str, with_channels: bool) -> pb::Record {
    let mut r = contact_point(id, "KH duty desk");
    r.originator = "kh-antht".into();
    r.version = 1;
    let now = liaison::convert::timestamp(time::OffsetDateTime::now_utc());
    r.create_time = Some(now);
    r.update_time = Some(now);
    if !with_channels {
        if let Some(Body::ContactPoint(c)) = r.body.as_mut() {
            c.channels.clear();
        }
        r.redacted_fields = vec!["contact_point.channels".into()];
    }
    r
}

fn shared(id: &Identity, rec: &pb::Record) -> pb::SharedRecord {
    pb::SharedRecord {
        record: Some(liaison::envelope::seal(payload::RECORD, rec, "kh-antht", &id.signing_key)),
        agreement_id: "th-kh".into(),
        agreement_version: 1,
        onward_sharing: pb::OnwardSharing::Forbidden as i32,
        retention_days: 0,
    }
}

/// TH, KH and VN running and pinned to each other; TH and KH under the
/// contact-point agreement without channels.
fn th_kh_vn(root: &std::path::Path) -> (TestNode, TestNode, TestNode) {
    let mut th = TestNode::init(root, "th-atpd", "TH");
    let mut kh = TestNode::init(root, "kh-antht", "KH");
    let mut vn = TestNode::init(root, "vn-police", "VN");
    th.start();
    kh.start();
    vn.start();
    pin_all(&[&th, &kh, &vn]);
    activate(&[&th, &kh], &bilateral("th-kh", "th-atpd", "kh-antht", 365, NO_CHANNELS), "th-kh");
    (th, kh, vn)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_and_query_answers_carrying_withheld_fields_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let (th, mut kh, vn) = th_kh_vn(root.path());
    activate(&[&th, &vn], &bilateral("th-vn", "th-atpd", "vn-police", 365, NO_CHANNELS), "th-vn");
    // TH holds a record of VN's, which only VN may withdraw.
    create(&vn, contact_point("cp-vn", "VN duty desk")).await;
    let mut ex = pb::exchange_service_client::ExchangeServiceClient::new(th.authed().await);
    let r = ex.sync_now(pb::SyncNowRequest { peer: "vn-police".into() }).await.unwrap().into_inner();
    assert_eq!(r.peers[0].received, 1, "{:?}", r.peers);
    kh.kill();

    let kh_id = Identity::load(&liaison::config::Layout::new(&kh.dir)).unwrap();
    let bad = shared(&kh_id, &kh_contact("cp-bad", true));
    let good = shared(&kh_id, &kh_contact("cp-good", false));
    let answers = Arc::new(Mutex::new(Answers {
        query: vec![bad.clone(), good.clone()],
        sync: pb::SyncRecordsResponse { records: vec![bad, good], withdrawn: vec![], cursor: 7, more: false },
        ..Default::default()
    }));
    let server = serve_fake(&kh, &th, Arc::clone(&answers)).await;

    // Sync: only the copy without channels is kept.
    let r = ex.sync_now(pb::SyncNowRequest { peer: "kh-antht".into() }).await.unwrap().into_inner();
    assert_eq!(r.peers[0].received, 1, "{:?}", r.peers);
    let mut rc = th.records().await;
    assert!(rc.get_record(pb::GetRecordRequest { id: "kh-antht/cp-bad".into(), ..Default::default() }).await.is_err());
    assert!(rc.get_record(pb::GetRecordRequest { id: "kh-antht/cp-good".into(), ..Default::default() }).await.is_ok());
    let refusals = audit_entries(&th, "policy.decision");
    assert!(
        refusals.iter().any(|e| e.to_string().contains("withheld_field_carried")),
        "the refusal is audited: {refusals:?}"
    );

    // Query: the officer is shown only the copy without channels.
    let q = ex
        .query(pb::QueryRequest {
            peer: "kh-antht".into(),
            kind: pb::RecordKind::ContactPoint as i32,
            purpose: pb::Purpose::Coordination as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let shown: Vec<&str> = q.peers[0].records.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(shown, vec!["cp-good"], "{:?}", q.peers);

    // A peer that keeps saying "more" without moving its cursor is not asked forever.
    {
        let mut a = answers.lock().unwrap();
        a.sync = pb::SyncRecordsResponse { records: vec![], withdrawn: vec![], cursor: 7, more: true };
        a.sync_calls = 0;
    }
    let r = ex.sync_now(pb::SyncNowRequest { peer: "kh-antht".into() }).await.unwrap().into_inner();
    assert!(r.peers[0].error.contains("cursor"), "{:?}", r.peers);
    assert!(answers.lock().unwrap().sync_calls <= 2, "asked {} times", answers.lock().unwrap().sync_calls);

    // A page may withdraw only the answering peer's own records: KH's own
    // goes, VN's (and TH's own) stay whatever KH claims.
    {
        let mut a = answers.lock().unwrap();
        a.sync = pb::SyncRecordsResponse {
            records: vec![],
            withdrawn: vec!["vn-police/cp-vn".into(), "kh-antht/cp-good".into(), "th-atpd/cp-none".into()],
            cursor: 8,
            more: false,
        };
    }
    let r = ex.sync_now(pb::SyncNowRequest { peer: "kh-antht".into() }).await.unwrap().into_inner();
    assert_eq!(r.peers[0].purged, 1, "{:?}", r.peers);
    assert!(rc.get_record(pb::GetRecordRequest { id: "kh-antht/cp-good".into(), ..Default::default() }).await.is_err());
    assert!(rc.get_record(pb::GetRecordRequest { id: "vn-police/cp-vn".into(), ..Default::default() }).await.is_ok());

    // After revocation TH neither asks nor takes anything.
    th.cli_ok(&["agreement", "revoke", "th-kh", "--reason", "ended"]);
    {
        let mut a = answers.lock().unwrap();
        a.sync = pb::SyncRecordsResponse {
            records: vec![shared(&kh_id, &kh_contact("cp-late", false))],
            withdrawn: vec![],
            cursor: 9,
            more: false,
        };
        a.query = vec![shared(&kh_id, &kh_contact("cp-late", false))];
    }
    let r = ex.sync_now(pb::SyncNowRequest { peer: "kh-antht".into() }).await.unwrap().into_inner();
    assert_eq!(r.peers[0].received, 0);
    assert_eq!(r.peers[0].outcome, pb::PeerOutcome::Denied as i32, "{:?}", r.peers);
    let q = ex
        .query(pb::QueryRequest {
            peer: "kh-antht".into(),
            kind: pb::RecordKind::ContactPoint as i32,
            purpose: pb::Purpose::Coordination as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(q.peers[0].records.is_empty(), "{:?}", q.peers);
    assert!(rc.get_record(pb::GetRecordRequest { id: "kh-antht/cp-late".into(), ..Default::default() }).await.is_err());
    server.abort();
}

/// Signatures on a page are verified in one batch: one forged signature
/// among many good ones still refuses the whole page (sync) or answer
/// (query), and so does a page where another node's validly signed record
/// rides along with the answering peer's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_forged_or_foreign_record_among_many_refuses_the_page() {
    let root = tempfile::tempdir().unwrap();
    let (th, mut kh, mut vn) = th_kh_vn(root.path());
    kh.kill();
    vn.kill();
    let kh_id = Identity::load(&liaison::config::Layout::new(&kh.dir)).unwrap();
    let vn_id = Identity::load(&liaison::config::Layout::new(&vn.dir)).unwrap();
    let good: Vec<pb::SharedRecord> =
        (0..40).map(|i| shared(&kh_id, &kh_contact(&format!("cp-{i:02}"), false))).collect();
    let mut forged = good.clone();
    if let Some(env) = forged[27].record.as_mut() {
        // The same signature over a body with one bit changed.
        if let Some(b) = env.body.last_mut() {
            *b ^= 1;
        }
    }
    // A record VN really signed, claimed by KH's page.
    let mut vn_rec = kh_contact("cp-vn", false);
    vn_rec.originator = "vn-police".into();
    let mut foreign = good.clone();
    foreign[5].record = Some(liaison::envelope::seal(payload::RECORD, &vn_rec, "vn-police", &vn_id.signing_key));
    let answers = Arc::new(Mutex::new(Answers::default()));
    let server = serve_fake(&kh, &th, Arc::clone(&answers)).await;
    let mut ex = pb::exchange_service_client::ExchangeServiceClient::new(th.authed().await);
    let mut rc = th.records().await;
    let query = pb::QueryRequest {
        peer: "kh-antht".into(),
        kind: pb::RecordKind::ContactPoint as i32,
        purpose: pb::Purpose::Coordination as i32,
        ..Default::default()
    };
    for (what, page) in [("forged", &forged), ("foreign", &foreign)] {
        {
            let mut a = answers.lock().unwrap();
            a.sync = pb::SyncRecordsResponse { records: page.clone(), withdrawn: vec![], cursor: 3, more: false };
            a.query = page.clone();
        }
        let r = ex.sync_now(pb::SyncNowRequest { peer: "kh-antht".into() }).await.unwrap().into_inner();
        assert_eq!(r.peers[0].received, 0, "{what}: {:?}", r.peers);
        assert!(!r.peers[0].error.is_empty(), "{what}: {:?}", r.peers);
        for id in ["kh-antht/cp-00", "kh-antht/cp-39", "vn-police/cp-vn"] {
            let got = rc.get_record(pb::GetRecordRequest { id: id.into(), ..Default::default() }).await;
            assert!(got.is_err(), "{what}: {id} was stored");
        }
        let q = ex.query(query.clone()).await.unwrap().into_inner();
        assert!(q.peers[0].records.is_empty(), "{what}: {:?}", q.peers);
        assert!(!q.peers[0].error.is_empty(), "{what}: {:?}", q.peers);
    }
    // The honest page of the same 40 goes through whole.
    {
        let mut a = answers.lock().unwrap();
        a.sync = pb::SyncRecordsResponse { records: good.clone(), withdrawn: vec![], cursor: 3, more: false };
        a.query = good.clone();
    }
    let r = ex.sync_now(pb::SyncNowRequest { peer: "kh-antht".into() }).await.unwrap().into_inner();
    assert_eq!(r.peers[0].received, 40, "{:?}", r.peers);
    let q = ex.query(query).await.unwrap().into_inner();
    assert_eq!(q.peers[0].records.len(), 40, "{:?}", q.peers);
    server.abort();
}
