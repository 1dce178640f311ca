//! A hub and three members: directory-based peering, forged directories,
//! removal, the regional contact directory, the regional report and
//! SOP-compliance indicators.

mod common;

use common::{activate, create, hub_membership, report_statistics, wait_for, TestNode};
use liaison::envelope::{self, payload};
use liaison::pb;

fn peer_sources(n: &TestNode) -> Vec<(String, String)> {
    n.cli_json(&["peer", "list"])["peers"].as_array().map_or(vec![], |a| {
        a.iter()
            .map(|p| (p["card"]["nodeId"].as_str().unwrap().to_string(), p["source"].as_str().unwrap().to_string()))
            .collect()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_learn_each_other_from_the_hub_and_the_hub_reports() {
    let root = tempfile::tempdir().unwrap();
    let mut hub = TestNode::init_role(root.path(), "commit-hub", "COMMIT-Mekong", "hub");
    let mut th = TestNode::init(root.path(), "th-atpd", "TH");
    let mut kh = TestNode::init(root.path(), "kh-antht", "KH");
    let mut la = TestNode::init(root.path(), "la-dcta", "LA");
    for n in [&mut hub, &mut th, &mut kh, &mut la] {
        n.start();
    }
    let hub_card = hub.card_file();
    for m in [&th, &kh, &la] {
        hub.cli_ok(&["hub", "admit", &m.card_file().display().to_string()]);
    }
    for m in [&th, &kh, &la] {
        let out = m.cli_ok(&["hub", "join", &hub_card.display().to_string()]);
        assert!(out.contains("joined"), "{out}");
    }
    // Members never exchanged cards, yet they are pinned through the signed directory.
    let srcs = peer_sources(&th);
    assert!(srcs.contains(&("kh-antht".into(), "hub:commit-hub".into())), "{srcs:?}");
    assert!(srcs.contains(&("la-dcta".into(), "hub:commit-hub".into())));
    assert!(th.cli_ok(&["peer", "ping", "kh-antht"]).contains("answered over mutual TLS"));

    activate(
        &[&hub, &th, &kh, &la],
        &hub_membership("commit-hub", &["th-atpd", "kh-antht", "la-dcta"]),
        "commit-membership",
    );
    create(&th, liaison::record::examples::intelligence_report()).await;
    let q = kh.cli_json(&["query", "--peer", "th-atpd", "--kind", "intelligence_report", "--purpose", "investigation"]);
    assert_eq!(q["peers"][0]["outcome"], "PEER_OUTCOME_ANSWERED", "{q}");

    // A directory not signed by the pinned hub key is refused.
    let la_id = liaison::identity::Identity::load(&liaison::config::Layout::new(&la.dir)).unwrap();
    let hub_id = liaison::identity::Identity::load(&liaison::config::Layout::new(&hub.dir)).unwrap();
    let th_card = th.card();
    let forged = pb::MemberDirectory { hub_id: "commit-hub".into(), version: 99, issue_time: None, members: vec![] };
    let by_la = envelope::seal(payload::MEMBER_DIRECTORY, &forged, "la-dcta", &la_id.signing_key);
    let mut from_la = pb::federation_service_client::FederationServiceClient::new(
        liaison::federation::dial(&la_id, &th_card).unwrap(),
    );
    assert!(
        from_la.push_directory(pb::PushDirectoryRequest { directory: Some(by_la) }).await.is_err(),
        "LA is not the hub"
    );
    let mut tampered = envelope::seal(payload::MEMBER_DIRECTORY, &forged, "commit-hub", &hub_id.signing_key);
    tampered.body[3] ^= 0x20;
    let mut from_hub = pb::federation_service_client::FederationServiceClient::new(
        liaison::federation::dial(&hub_id, &th_card).unwrap(),
    );
    let err = from_hub.push_directory(pb::PushDirectoryRequest { directory: Some(tampered) }).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
    assert!(peer_sources(&th).iter().any(|(id, _)| id == "la-dcta"), "nothing changed");

    // Regional contact directory: members' contact points flow to the hub; members search it.
    let mut cp = common::contact_point("cp-kh-border", "Poipet border liaison office");
    if let Some(pb::record::Body::ContactPoint(c)) = cp.body.as_mut() {
        c.country = "KH".into();
        c.role = pb::ContactRole::BorderOffice as i32;
    }
    create(&kh, cp).await;
    let s = hub.cli_json(&["sync"]);
    assert!(s["peers"].as_array().unwrap().iter().any(|p| p["peer"] == "kh-antht" && p["received"] == 1), "{s}");
    let found = th.cli_ok(&["contacts", "search", "poipet", "--region"]);
    assert!(
        found.contains("Poipet border liaison office") && found.contains("kh-antht") && found.contains("2026-10-01"),
        "origin and last verification shown: {found}"
    );

    // Statistics reports pushed to the hub make the regional report.
    for (n, country, count) in [(&th, "TH", 41u32), (&kh, "KH", 3)] {
        report_statistics(n, "commit-hub", country, count).await;
    }
    wait_for(30, "both reports at the hub", || {
        let md = hub.cli_ok(&["hub", "report", "--period", "2025"]);
        md.contains("| TH | 41 |") && md.contains("| KH | x |")
    });
    let html = hub.cli_ok(&["hub", "report", "--period", "2025", "--format", "html"]);
    assert!(html.contains("<svg"));

    // SOP-compliance indicators from request metadata (never content).
    let id = common::send_information_request(&th, "kh-antht", "A secret subject line");
    wait_for(30, "request at KH", || kh.cli_json(&["inbox"])["requests"].as_array().is_some_and(|a| !a.is_empty()));
    kh.cli_ok(&["request", "ack", &id]);
    kh.cli_ok(&["request", "answer", &id, "--text", "nothing found"]);
    wait_for(30, "indicators at the hub", || {
        let ind = hub.cli_json(&["hub", "indicators"]);
        ind["pairs"].as_array().is_some_and(|p| {
            p.iter().any(|x| x["from"] == "th-atpd" && x["to"] == "kh-antht" && x["answeredOnTime"] == 1.0)
        })
    });
    let ind = hub.cli_json(&["hub", "indicators"]);
    assert_eq!(ind["members"][0]["to"], "kh-antht");
    assert!(!hub.cli_ok(&["audit", "export"]).contains("A secret subject line"), "the hub never sees request content");

    // Removal: the hub publishes a new directory, members un-pin LA, LA is refused.
    hub.cli_ok(&["hub", "remove", "la-dcta"]);
    wait_for(30, "LA un-pinned at TH", || !peer_sources(&th).iter().any(|(id, _)| id == "la-dcta"));
    let out = la.cli(&["peer", "ping", "th-atpd"]);
    assert!(!out.status.success(), "a removed member is refused");
}

/// A hub with TH and KH as members under its membership agreement, TH
/// routing what it sends KH through the hub.
fn th_and_kh_through_a_hub(root: &std::path::Path) -> (TestNode, TestNode, TestNode) {
    let mut hub = TestNode::init_role(root, "commit-hub", "COMMIT-Mekong", "hub");
    let mut th = TestNode::init(root, "th-atpd", "TH");
    let mut kh = TestNode::init(root, "kh-antht", "KH");
    for n in [&mut hub, &mut th, &mut kh] {
        n.start();
    }
    let hub_card = hub.card_file();
    for m in [&th, &kh] {
        hub.cli_ok(&["hub", "admit", &m.card_file().display().to_string()]);
    }
    for m in [&th, &kh] {
        m.cli_ok(&["hub", "join", &hub_card.display().to_string()]);
    }
    activate(&[&hub, &th, &kh], &hub_membership("commit-hub", &["th-atpd", "kh-antht"]), "commit-membership");
    th.cli_ok(&["peer", "route", "kh-antht", "--via", "commit-hub"]);
    (hub, th, kh)
}

/// The relay ids in `hub`'s audit entries of `action`, in log order.
fn relay_ids(hub: &TestNode, action: &str) -> Vec<String> {
    common::audit_entries(hub, action)
        .iter()
        .filter_map(|e| e["reason"].as_str()?.split(':').next().map(str::to_string))
        .collect()
}

/// A sender's outbox counts a relayed message taken once the hub accepts
/// it, so the hub must forward in the order it accepted: a record's new
/// version, a case step or a withdrawal forwarded ahead of what it follows
/// is refused or overtaken, and the copies diverge. With KH down while TH
/// sends, twenty shares queue at the hub; when KH is back they are
/// forwarded in exactly the order they were accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_forwards_a_senders_messages_in_the_order_it_accepted_them() {
    let root = tempfile::tempdir().unwrap();
    let (hub, th, mut kh) = th_and_kh_through_a_hub(root.path());
    kh.stop();
    const N: usize = 20;
    for i in 0..N {
        let mut r = liaison::record::examples::intelligence_report();
        r.id = format!("ir-order-{i:02}");
        create(&th, r).await;
        th.cli_ok(&["record", "share", &format!("ir-order-{i:02}"), "--to", "kh-antht", "--purpose", "investigation"]);
    }
    wait_for(60, "every share accepted by the hub", || relay_ids(&hub, "relay.accept").len() >= N);
    kh.start();
    wait_for(90, "every share forwarded to KH", || relay_ids(&hub, "relay.forwarded").len() >= N);
    let accepted = relay_ids(&hub, "relay.accept");
    assert_eq!(relay_ids(&hub, "relay.forwarded"), accepted, "forwarded out of the order accepted");
    let mut sorted = accepted.clone();
    sorted.sort();
    assert!(sorted == accepted || sorted.iter().rev().eq(accepted.iter()), "relay ids do not sort by acceptance");
    let listed = kh.records().await.list_records(pb::ListRecordsRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.records.iter().filter(|r| r.id.starts_with("ir-order-")).count(), N);
}

fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_share_arrives_once_and_the_hub_never_sees_it() {
    let root = tempfile::tempdir().unwrap();
    let (mut hub, th, kh) = th_and_kh_through_a_hub(root.path());

    const CANARY: &str = "SECRET-7f3a-CANARY";
    let mut r = liaison::record::examples::intelligence_report();
    r.id = "ir-relayed".into();
    if let Some(pb::record::Body::IntelligenceReport(i)) = r.body.as_mut() {
        i.summary = format!("Broker ledger found: {CANARY}");
    }
    create(&th, r).await;
    th.cli_ok(&["record", "share", "ir-relayed", "--to", "kh-antht", "--purpose", "investigation"]);

    wait_for(60, "the relayed record at KH", || {
        futures::executor::block_on(async {
            kh.records()
                .await
                .get_record(pb::GetRecordRequest { id: "th-atpd/ir-relayed".into(), ..Default::default() })
                .await
                .is_ok()
        })
    });
    let got = kh
        .records()
        .await
        .get_record(pb::GetRecordRequest { id: "th-atpd/ir-relayed".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let rec = got.record.unwrap();
    match rec.body {
        Some(pb::record::Body::IntelligenceReport(i)) => assert!(i.summary.contains(CANARY), "arrives intact"),
        other => panic!("{other:?}"),
    }
    assert_eq!(got.provenance.unwrap().received_from, "th-atpd", "handled as TH's own call");
    let listed = kh.records().await.list_records(pb::ListRecordsRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.records.iter().filter(|r| r.id == "ir-relayed").count(), 1, "exactly once");
    let out = common::deliveries(&th);
    assert!(out[0]["lastError"].as_str().unwrap().contains("relayed via commit-hub"), "{out:?}");

    // The withdrawal takes the same sealed path and KH purges its copy.
    th.cli_ok(&["record", "withdraw", "ir-relayed", "--expected-version", "1"]);
    wait_for(60, "the relayed withdrawal purges KH's copy", || {
        futures::executor::block_on(async {
            kh.records()
                .await
                .get_record(pb::GetRecordRequest { id: "th-atpd/ir-relayed".into(), ..Default::default() })
                .await
                .err()
                .map(|e| e.code())
        }) == Some(tonic::Code::NotFound)
    });

    // The hub saw sender, recipient, size and time — and nothing of the content.
    let log = hub.cli_json(&["audit", "list", "--action", "relay.", "--limit", "100"]);
    let actions: Vec<&str> = log["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(actions.contains(&"relay.accept") && actions.contains(&"relay.forwarded"), "{actions:?}");
    hub.stop();
    let mut files = Vec::new();
    walk(&hub.dir, &mut files);
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !bytes.windows(CANARY.len()).any(|w| w == CANARY.as_bytes()),
            "plaintext found in the hub's {}",
            f.display()
        );
        assert!(!bytes.windows(10).any(|w| w == b"ir-relayed"), "record id found in the hub's {}", f.display());
    }
}
