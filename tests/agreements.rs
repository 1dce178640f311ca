//! Signed agreements across three running nodes over mutual TLS, their life
//! cycle changing the policy answer at once, and tamper-evident audit logs.

mod common;

use common::{pin_all, TestNode};
use liaison::config::Layout;
use liaison::envelope::{self, payload};
use liaison::identity::Identity;
use liaison::pb;
use tonic::Code;

fn three_party_toml(id: &str, version: u32, from: &str, until: &str) -> String {
    format!(
        r#"
id = "{id}"
version = {version}
title = "Mekong trilateral intelligence MOU"
legal_basis = "COMMIT MOU (2004), art. 9"
parties = ["th-atpd", "kh-antht", "la-dcta"]
valid_from = "{from}"
valid_until = "{until}"

[retention]
days = 365
purge_on_revoke = true

[sop]
name = "COMMIT SOP on information and intelligence sharing"

[[sop.request_types]]
name = "information_request"
ack_within = "24h"
answer_within = "7d"
urgent_ack_within = "8h"
urgent_answer_within = "3d"
escalation_role = "unit_head"

[[grants]]
from = "*"
to = "*"
record_kinds = ["intelligence_report", "entity"]
purposes = ["investigation"]
operations = ["query", "hit_check", "push"]
max_handling = "amber"
redacted_fields = ["entity.evidence_basis"]
onward_sharing = "with_consent"
"#
    )
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// `liaison policy` for an intelligence query; `extra` flags replace the defaults.
fn policy(n: &TestNode, peer: &str, extra: &[&str]) -> serde_json::Value {
    let mut flags: Vec<(&str, &str)> = vec![
        ("--operation", "query"),
        ("--kind", "intelligence_report"),
        ("--purpose", "investigation"),
        ("--handling", "amber"),
    ];
    for pair in extra.chunks(2) {
        flags.retain(|(k, _)| *k != pair[0]);
        flags.push((pair[0], pair[1]));
    }
    let mut args = vec!["policy", "--peer", peer];
    for (k, v) in &flags {
        args.push(k);
        args.push(v);
    }
    n.cli_json(&args)
}

fn state(n: &TestNode, id: &str) -> String {
    n.cli_json(&["agreement", "show", id])["agreement"]["state"].as_str().unwrap().to_string()
}

async fn held(n: &TestNode, id: &str) -> pb::AgreementRecord {
    let mut c = pb::agreement_service_client::AgreementServiceClient::new(n.authed().await);
    c.get_agreement(pb::GetAgreementRequest { id: id.into(), version: 0 })
        .await
        .unwrap()
        .into_inner()
        .agreement
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_parties_sign_and_the_life_cycle_changes_policy_at_once() {
    let root = tempfile::tempdir().unwrap();
    let mut a = TestNode::init(root.path(), "th-atpd", "TH");
    let mut b = TestNode::init(root.path(), "kh-antht", "KH");
    let mut c = TestNode::init(root.path(), "la-dcta", "LA");
    for n in [&mut a, &mut b, &mut c] {
        n.start();
    }
    pin_all(&[&a, &b, &c]);

    let file = write(root.path(), "mou.toml", &three_party_toml("mekong-tri", 1, "2026-01-01", "2030-01-01"));
    a.cli_ok(&["agreement", "draft", &file]);
    assert_eq!(state(&a, "mekong-tri"), "AGREEMENT_STATE_DRAFT");
    assert_eq!(policy(&a, "kh-antht", &[])["denialCode"], "agreement_not_active");

    let proposed = a.cli_json(&["agreement", "propose", "mekong-tri"]);
    assert!(proposed["deliveries"].as_array().unwrap().iter().all(|d| d["delivered"] == true), "{proposed}");
    assert_eq!(state(&b, "mekong-tri"), "AGREEMENT_STATE_PROPOSED");
    let shown = b.cli_ok(&["agreement", "show", "mekong-tri"]);
    assert!(
        shown.contains("Mekong trilateral intelligence MOU") && shown.contains("missing: kh-antht, la-dcta"),
        "{shown}"
    );

    b.cli_ok(&["agreement", "accept", "mekong-tri"]);
    assert_eq!(state(&a, "mekong-tri"), "AGREEMENT_STATE_PROPOSED", "la-dcta has not signed yet");
    // A node cannot accept what nobody proposed to it.
    let err = a.cli(&["agreement", "accept", "nope"]);
    assert!(!err.status.success());
    c.cli_ok(&["agreement", "accept", "mekong-tri"]);

    // Active everywhere, with identical bytes and the same signatures.
    let docs = [held(&a, "mekong-tri").await, held(&b, "mekong-tri").await, held(&c, "mekong-tri").await];
    for d in &docs {
        assert_eq!(d.state, pb::AgreementState::Active as i32, "{:?}", d.signed_by);
        assert_eq!(d.envelope, docs[0].envelope, "every party holds the same signed document");
        assert_eq!(d.signed_by, vec!["kh-antht", "la-dcta", "th-atpd"]);
    }
    let allowed = policy(&a, "kh-antht", &[]);
    assert_eq!(allowed["allowed"], true, "{allowed}");
    assert_eq!(policy(&b, "la-dcta", &["--direction", "incoming"])["allowed"], true);
    let ent = a.cli_json(&[
        "policy",
        "--peer",
        "la-dcta",
        "--operation",
        "hit_check",
        "--kind",
        "entity",
        "--purpose",
        "investigation",
        "--handling",
        "green",
    ]);
    assert_eq!(ent["redactedFields"], serde_json::json!(["entity.evidence_basis"]));
    assert_eq!(policy(&a, "kh-antht", &["--handling", "red"])["denialCode"], "handling_above_grant");
    assert_eq!(policy(&a, "kh-antht", &["--purpose", "prosecution"])["denialCode"], "purpose_not_granted");
    // Expiry, with time injected: after the window the answer is no.
    assert_eq!(policy(&a, "kh-antht", &["--at", "2030-06-01T00:00:00Z"])["denialCode"], "outside_validity");

    // Suspension by one party takes effect at once on every party.
    b.cli_ok(&["agreement", "suspend", "mekong-tri", "--reason", "review of a data incident"]);
    for n in [&a, &b, &c] {
        assert_eq!(state(n, "mekong-tri"), "AGREEMENT_STATE_SUSPENDED", "{}", n.id);
    }
    assert_eq!(policy(&c, "th-atpd", &[])["denialCode"], "agreement_not_active");
    // Only the suspending party lifts its suspension.
    a.cli_ok(&["agreement", "resume", "mekong-tri", "--reason", "not mine to lift"]);
    assert_eq!(state(&c, "mekong-tri"), "AGREEMENT_STATE_SUSPENDED");
    b.cli_ok(&["agreement", "resume", "mekong-tri", "--reason", "incident closed"]);
    assert_eq!(state(&c, "mekong-tri"), "AGREEMENT_STATE_ACTIVE");
    assert_eq!(policy(&c, "th-atpd", &[])["allowed"], true);

    // An amendment is a new version signed again by all; the old one stays in history.
    let v2 = write(root.path(), "mou2.toml", &three_party_toml("mekong-tri", 2, "2026-01-01", "2031-01-01"));
    a.cli_ok(&["agreement", "amend", "mekong-tri", &v2]);
    a.cli_ok(&["agreement", "propose", "mekong-tri"]);
    b.cli_ok(&["agreement", "accept", "mekong-tri"]);
    c.cli_ok(&["agreement", "accept", "mekong-tri"]);
    let hist = a.cli_json(&["agreement", "list", "--history"]);
    let states: Vec<(u64, String)> = hist["agreements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["agreement"]["version"].as_u64().unwrap(), r["state"].as_str().unwrap().to_string()))
        .collect();
    assert!(states.contains(&(1, "AGREEMENT_STATE_SUPERSEDED".into())), "{states:?}");
    assert!(states.contains(&(2, "AGREEMENT_STATE_ACTIVE".into())), "{states:?}");
    assert_eq!(policy(&a, "kh-antht", &["--at", "2030-06-01T00:00:00Z"])["allowed"], true, "v2 runs longer");

    // Revocation: final, at once, everywhere.
    c.cli_ok(&["agreement", "revoke", "mekong-tri", "--reason", "MOU terminated"]);
    for n in [&a, &b, &c] {
        assert_eq!(state(n, "mekong-tri"), "AGREEMENT_STATE_REVOKED");
        assert_eq!(
            policy(n, if n.id == "th-atpd" { "kh-antht" } else { "th-atpd" }, &[])["denialCode"],
            "agreement_not_active"
        );
    }

    // Every agreement change is on the audit log, and the log verifies.
    let log = a.cli_json(&["audit", "list", "--action", "agreement.", "--limit", "1000"]);
    let actions: Vec<&str> = log["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    for want in [
        "agreement.draft",
        "agreement.sign",
        "agreement.propose",
        "agreement.receive",
        "agreement.suspend",
        "agreement.resume",
        "agreement.amend",
        "agreement.revoke",
    ] {
        assert!(actions.contains(&want), "{want} missing from {actions:?}");
    }
    assert!(a.cli_ok(&["audit", "verify"]).contains("intact"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_signatures_and_edited_bodies_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let mut a = TestNode::init(root.path(), "th-atpd", "TH");
    let mut b = TestNode::init(root.path(), "kh-antht", "KH");
    let mut c = TestNode::init(root.path(), "la-dcta", "LA");
    for n in [&mut a, &mut b, &mut c] {
        n.start();
    }
    pin_all(&[&a, &b, &c]);
    let file = write(root.path(), "mou.toml", &three_party_toml("mekong-tri", 1, "2026-01-01", "2030-01-01"));
    a.cli_ok(&["agreement", "draft", &file]);
    a.cli_ok(&["agreement", "sign", "mekong-tri"]);
    let signed = held(&a, "mekong-tri").await.envelope.unwrap();

    // B talks to C directly over mutual TLS, as itself.
    let b_id = Identity::load(&Layout::new(&b.dir)).unwrap();
    let c_card = c.card();
    let mut fed =
        pb::federation_service_client::FederationServiceClient::new(liaison::federation::dial(&b_id, &c_card).unwrap());

    // 1. A body edited after A signed it, relayed without B's own signature: refused.
    let mut doc: pb::Agreement = envelope::decode(&signed).unwrap();
    doc.grants[0].max_handling = pb::HandlingCode::Red as i32;
    let edited = pb::Envelope { body: prost::Message::encode_to_vec(&doc), ..signed.clone() };
    let err = fed.deliver_agreement(pb::DeliverAgreementRequest { agreement: Some(edited.clone()) }).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");

    // 2. The edited body signed by B still carries A's old signature: A's does not verify and is dropped.
    let mut edited_by_b = edited;
    envelope::add_signature(&mut edited_by_b, "kh-antht", &b_id.signing_key);
    let r =
        fed.deliver_agreement(pb::DeliverAgreementRequest { agreement: Some(edited_by_b) }).await.unwrap().into_inner();
    assert_eq!(r.signed_by, vec!["kh-antht"], "A never signed these bytes");

    // 3. B cannot sign for A: a signature labelled th-atpd made with B's key is dropped.
    let mut forged = signed.clone();
    forged.signatures.clear();
    envelope::add_signature(&mut forged, "kh-antht", &b_id.signing_key);
    let sig = ed25519_dalek::Signer::sign(&b_id.signing_key, &envelope::pae(payload::AGREEMENT, &forged.body));
    forged.signatures.push(pb::Signature {
        signer_id: "th-atpd".into(),
        key_id: envelope::key_id(&b_id.signing_key.verifying_key()),
        signature: sig.to_bytes().to_vec(),
    });
    // ...and a tampered copy of A's real signature is dropped too.
    let mut real = signed.signatures.iter().find(|s| s.signer_id == "th-atpd").unwrap().clone();
    real.signature[5] ^= 0x40;
    let mut tampered = signed.clone();
    tampered.signatures = vec![real];
    envelope::add_signature(&mut tampered, "kh-antht", &b_id.signing_key);
    for env in [forged, tampered] {
        // Same body as A's original, so it merges into C's copy (proposal from A not yet delivered).
        let r = fed.deliver_agreement(pb::DeliverAgreementRequest { agreement: Some(env) }).await;
        match r {
            Ok(r) => assert!(!r.into_inner().signed_by.contains(&"th-atpd".to_string())),
            Err(e) => {
                assert_eq!(e.code(), Code::FailedPrecondition, "conflicts with the edited copy C now holds: {e:?}")
            }
        }
    }

    // 4. B cannot issue a notice in A's name.
    let n = pb::AgreementNotice {
        agreement_id: "mekong-tri".into(),
        version: 1,
        action: pb::NoticeAction::Revoke as i32,
        reason: "x".into(),
        issuer: "th-atpd".into(),
        issue_time: None,
    };
    let env = envelope::seal(payload::AGREEMENT_NOTICE, &n, "kh-antht", &b_id.signing_key);
    let err = fed.deliver_agreement_notice(pb::DeliverAgreementNoticeRequest { notice: Some(env) }).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
}

type NodeStore = liaison::store::SealedStore<liaison::store::SledStore>;

/// Opens a stopped node's store directly, with its key (the attacker here
/// holds the key too), waiting for the previous holder's lock to go.
fn open_store(node_dir: &std::path::Path) -> NodeStore {
    let layout = Layout::new(node_dir);
    let cfg = liaison::config::NodeConfig::load(&layout).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        match liaison::store::at_rest::open(&layout, cfg.storage.as_ref()) {
            Ok(s) => return s,
            Err(e) if std::time::Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => panic!("open store: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_finds_the_first_tampered_entry() {
    use liaison::store::{Batch, Store, Tree};
    use prost::Message;

    let root = tempfile::tempdir().unwrap();
    let mut a = TestNode::init(root.path(), "th-atpd", "TH");
    a.start();
    let mut records = a.records().await;
    for i in 0..80 {
        records
            .create_record(pb::CreateRecordRequest {
                record: Some(common::contact_point(&format!("cp-{i}"), "Desk")),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let out = a.cli_ok(&["audit", "verify"]);
    assert!(out.contains("80 entries, 1 signed checkpoints"), "{out}");
    a.stop();

    let node_dir = a.dir.clone();
    let edit = |f: &dyn Fn(&NodeStore)| {
        let s = open_store(&node_dir);
        f(&s);
    };
    let get = |s: &NodeStore, seq: u64| {
        pb::AuditEntry::decode(s.get(Tree::Audit, &seq.to_be_bytes()).unwrap().unwrap().as_slice()).unwrap()
    };
    let put = |s: &NodeStore, key: u64, e: &pb::AuditEntry| {
        let mut b = Batch::default();
        b.put(Tree::Audit, key.to_be_bytes().to_vec(), e.encode_to_vec());
        s.apply(&b).unwrap();
    };
    let verify = |a: &mut TestNode| -> (bool, u64) {
        a.start();
        let out = a.cli(&["--json", "audit", "verify"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        a.stop();
        (out.status.success(), v["firstBadSeq"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0))
    };

    // Changed: entry 30's record id edited in place.
    let original30 = {
        let s = open_store(&node_dir);
        get(&s, 30)
    };
    edit(&|s| {
        let mut e = get(s, 30);
        e.record_id = "th-atpd/cp-forged".into();
        put(s, 30, &e);
    });
    assert_eq!(verify(&mut a), (false, 30));
    edit(&|s| put(s, 30, &original30));

    // Removed: entry 12 deleted.
    let original12 = {
        let s = open_store(&node_dir);
        get(&s, 12)
    };
    edit(&|s| {
        let mut b = Batch::default();
        b.delete(Tree::Audit, 12u64.to_be_bytes().to_vec());
        s.apply(&b).unwrap();
    });
    assert_eq!(verify(&mut a), (false, 12));
    edit(&|s| put(s, 12, &original12));

    // Reordered: entries 40 and 41 swapped.
    edit(&|s| {
        let (e40, e41) = (get(s, 40), get(s, 41));
        put(s, 40, &e41);
        put(s, 41, &e40);
    });
    assert_eq!(verify(&mut a), (false, 40));
    edit(&|s| {
        let (e40, e41) = (get(s, 40), get(s, 41));
        put(s, 40, &e41);
        put(s, 41, &e40);
    });

    // A rewritten tail (re-hashed consistently) still contradicts the signed checkpoint.
    edit(&|s| {
        let mut chain = liaison::audit::Chain::after(&get(s, 49));
        let last = s.len(Tree::Audit).unwrap() as u64;
        for seq in 50..=last {
            let old = get(s, seq);
            let mut ev =
                liaison::audit::Event::new(old.actor.clone(), old.action.clone()).record(old.record_id.clone());
            if seq == 55 {
                ev.record_id = "th-atpd/cp-rewritten".into();
            }
            let t = liaison::convert::from_timestamp(old.time.as_ref().unwrap()).unwrap();
            put(s, seq, &chain.append(ev, t));
        }
    });
    // The node refuses to start: its last checkpointed entry (in store.head,
    // beside the store) is not the one the store now holds.
    let err = a.cli(&["run"]);
    assert!(!err.status.success());
    assert!(String::from_utf8_lossy(&err.stderr).contains("differs from the one last checkpointed"), "{err:?}");
    // Without that file (say, it was lost too), the signed checkpoints inside
    // the store still expose the rewrite.
    std::fs::remove_file(a.dir.join("store.head")).unwrap();
    let (ok, seq) = verify(&mut a);
    assert!(!ok);
    assert_eq!(seq, 64, "the checkpoint over entry 64 no longer matches");
}
