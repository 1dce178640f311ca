//! Witnessed audit checkpoints (issue 12, item 7): a node's peers
//! countersign its signed checkpoints and keep the newest, so a restored
//! older copy of its store no longer passes `audit verify`; a peer cannot
//! make a witness take a forged, older or conflicting checkpoint.

mod common;

use common::*;
use liaison::envelope::{self, payload};
use liaison::pb;
use tonic::Code;
use tonic_types::StatusExt;

/// `audit verify --json` (it exits with a failure when the log does not verify).
fn verify(n: &TestNode) -> serde_json::Value {
    let out = n.cli(&["--json", "audit", "verify"]);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("verify output: {}", String::from_utf8_lossy(&out.stderr)))
}

fn num(v: &serde_json::Value) -> u64 {
    v.as_str().and_then(|s| s.parse().ok()).or_else(|| v.as_u64()).unwrap_or(0)
}

/// What `witness` holds for `node` (asked with the node's own certificate).
async fn held(node: &TestNode, witness: &TestNode) -> Option<(u64, Vec<u8>)> {
    let mut h = Hostile::new(node, witness);
    let r = h.client.get_witnessed_checkpoint(pb::GetWitnessedCheckpointRequest {}).await.unwrap().into_inner();
    let wc = r.witnessed?;
    let cp: pb::AuditCheckpoint = envelope::decode(&wc.checkpoint.unwrap()).unwrap();
    Some((cp.seq, cp.hash))
}

async fn write_some(n: &TestNode, tag: &str, count: usize) {
    for i in 0..count {
        create(n, contact_point(&format!("cp-{tag}-{i}"), &format!("Officer {tag} {i}"))).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restored_older_store_is_reported_as_a_rollback_naming_the_witness() {
    let root = tempfile::tempdir().unwrap();
    let mut th = TestNode::init(root.path(), "th-atpd", "TH");
    let mut kh = TestNode::init(root.path(), "kh-antht", "KH");
    th.start();
    kh.start();
    pin_all(&[&th, &kh]);
    write_some(&th, "a", 3).await;

    // A clean stop signs a checkpoint over the head; KH witnesses it.
    th.stop();
    let (first, _) = held(&th, &kh).await.expect("KH witnessed TH's final checkpoint");
    let backup = root.path().join("backup/store");
    copy_dir(&th.dir.join("store"), &backup);
    std::fs::copy(th.dir.join("store.head"), root.path().join("backup/store.head")).unwrap();

    th.start();
    write_some(&th, "b", 5).await;
    th.stop();
    let (second, _) = held(&th, &kh).await.unwrap();
    assert!(second > first, "a newer checkpoint was witnessed ({second} after {first})");

    // Not rolled back: intact, and witnessed up to the newest entry KH holds.
    th.start();
    let v = verify(&th);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(num(&v["witnessedSeq"]), second, "{v}");
    let ws = v["witnesses"].as_array().unwrap();
    assert!(ws.iter().any(|w| w["witness"] == "kh-antht" && w["outcome"] == "WITNESS_OUTCOME_CONSISTENT"), "{v}");
    // A witness that does not answer is reported, not fatal.
    kh.stop();
    let v = verify(&th);
    assert_eq!(v["ok"], true, "{v}");
    let asked = |v: &serde_json::Value| {
        v["witnesses"].as_array().unwrap().iter().find(|w| w["witness"] == "kh-antht" && w["stored"] != true).cloned()
    };
    assert_eq!(asked(&v).unwrap()["outcome"], "WITNESS_OUTCOME_UNREACHABLE", "{v}");
    kh.start();
    th.stop();
    // That session's own entries were witnessed at its stop.
    let (second, second_hash) = held(&th, &kh).await.unwrap();

    // The older copy restored whole, store and store.head together (with the
    // same store key, as a backup is): consistent on this node, so only the
    // witnesses can tell.
    std::fs::remove_dir_all(th.dir.join("store")).unwrap();
    copy_dir(&backup, &th.dir.join("store"));
    std::fs::copy(root.path().join("backup/store.head"), th.dir.join("store.head")).unwrap();
    th.start();
    let v = verify(&th);
    assert_ne!(v["ok"], true, "{v}");
    assert_eq!(num(&v["firstBadSeq"]), second, "{v}");
    let problem = v["problem"].as_str().unwrap();
    assert!(problem.contains("rollback") && problem.contains("kh-antht"), "{problem}");
    assert!(problem.contains(&format!("entry {second}")), "{problem}");
    // The plain CLI says so too, and fails.
    let out = th.cli(&["audit", "verify"]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("rollback") && text.contains("kh-antht"), "{text}");
    // The node found it on its own at start and audited it.
    wait_for(30, "the rollback audited by TH", || !audit_entries(&th, "audit.rollback").is_empty());

    // Written past the witnessed entry since: still a rollback (the chain
    // differs there), and the node never offered KH a checkpoint that would
    // make it forget the evidence.
    write_some(&th, "c", (second - first) as usize + 4).await;
    th.stop();
    assert_eq!(held(&th, &kh).await, Some((second, second_hash)), "KH still holds the witnessed checkpoint");
    th.start();
    let v = verify(&th);
    assert_ne!(v["ok"], true, "{v}");
    let problem = v["problem"].as_str().unwrap();
    assert!(problem.contains("rollback") && problem.contains("another entry"), "{problem}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_witness_refuses_forged_older_and_equivocating_checkpoints_and_keeps_what_it_holds() {
    let root = tempfile::tempdir().unwrap();
    let mut th = TestNode::init(root.path(), "th-atpd", "TH");
    let mut kh = TestNode::init(root.path(), "kh-antht", "KH");
    configure(&kh, |c| c.intervals.refusal_window_secs = 1);
    th.start();
    kh.start();
    pin_all(&[&th, &kh]);
    // TH's clean stop has KH witness its real final checkpoint.
    th.stop();
    let real = held(&th, &kh).await.expect("TH's final checkpoint witnessed");

    let mut h = Hostile::new(&th, &kh);
    let cp = |node: &str, seq: u64, fill: u8| pb::AuditCheckpoint {
        node_id: node.into(),
        seq,
        hash: vec![fill; 32],
        time: Some(liaison::convert::timestamp(time::OffsetDateTime::now_utc())),
    };
    let offer = |env: pb::Envelope| pb::WitnessCheckpointRequest { checkpoint: Some(env) };

    // Signed by another key under TH's name: refused before it is read.
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let forged = envelope::seal(payload::AUDIT_CHECKPOINT, &cp("th-atpd", 1000, 7), "th-atpd", &stranger);
    let s = h.client.witness_checkpoint(offer(forged)).await.unwrap_err();
    assert_eq!(s.code(), Code::Unauthenticated, "{s:?}");
    // TH's key, but another node's checkpoint.
    let other = h.seal(payload::AUDIT_CHECKPOINT, &cp("la-mlsw", 1000, 7));
    let s = h.client.witness_checkpoint(offer(other)).await.unwrap_err();
    assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
    assert_eq!(held(&th, &kh).await, Some(real.clone()), "nothing stored");

    // A valid newer one is kept and countersigned by KH.
    let good = h.seal(payload::AUDIT_CHECKPOINT, &cp("th-atpd", 1000, 7));
    let r = h.client.witness_checkpoint(offer(good.clone())).await.unwrap().into_inner();
    let kh_key = envelope::verifying_key(&kh.card().signing_public_key).unwrap();
    let st: pb::WitnessStatement =
        envelope::open(&r.statement.unwrap(), payload::WITNESS_STATEMENT, "kh-antht", &kh_key).unwrap();
    assert_eq!((st.node_id.as_str(), st.seq, st.hash.clone()), ("th-atpd", 1000, vec![7; 32]));

    // Older: refused, naming the entry held.
    let older = h.seal(payload::AUDIT_CHECKPOINT, &cp("th-atpd", 999, 7));
    let s = h.client.witness_checkpoint(offer(older)).await.unwrap_err();
    assert_eq!(s.code(), Code::FailedPrecondition, "{s:?}");
    let v = s.get_details_precondition_failure().unwrap().violations[0].clone();
    assert_eq!((v.r#type.as_str(), v.subject.as_str()), ("CHECKPOINT_STALE", "seq:1000"));
    // The same entry with another hash: equivocation, refused and audited.
    let twin = h.seal(payload::AUDIT_CHECKPOINT, &cp("th-atpd", 1000, 8));
    let s = h.client.witness_checkpoint(offer(twin)).await.unwrap_err();
    assert_eq!(s.code(), Code::FailedPrecondition, "{s:?}");
    let v = s.get_details_precondition_failure().unwrap().violations[0].clone();
    assert_eq!((v.r#type.as_str(), v.subject.as_str()), ("CHECKPOINT_EQUIVOCATION", "seq:1000"));
    // The same checkpoint again is fine (a retry).
    h.client.witness_checkpoint(offer(good)).await.unwrap();

    assert_eq!(held(&th, &kh).await, Some((1000, vec![7; 32])), "KH keeps the first hash at the newest entry");
    let eq = audit_entries(&kh, "witness.equivocation");
    assert_eq!(eq.len(), 1, "{eq:?}");
    assert_eq!(eq[0]["actor"], "peer:th-atpd");
    assert!(!audit_entries(&kh, "witness.countersign").is_empty());
    wait_for(30, "the forged signature audited", || !audit_entries(&kh, "federation.refused.signature").is_empty());
    wait_for(30, "the impersonation audited", || !audit_entries(&kh, "federation.refused.impersonation").is_empty());

    // Signed with TH's own key, yet not in TH's chain: TH's verify reports it.
    th.start();
    let v = verify(&th);
    assert_ne!(v["ok"], true, "{v}");
    assert_eq!(num(&v["firstBadSeq"]), 1000, "{v}");
    assert!(v["problem"].as_str().unwrap().contains("kh-antht"), "{v}");
}
