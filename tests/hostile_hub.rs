//! Hostile peers against a hub and its members: the regional contact
//! directory, the sealed relay and request metadata must each be a policy
//! decision under an active agreement naming the hub; and a received record
//! must never become the importer's own through export and import.

mod common;

use common::{activate, audit_entries, bilateral, configure, contact_point, create, wait_for, Hostile, TestNode};
use liaison::envelope::{self, payload};
use liaison::pb;
use tonic::Code;

const HUB: &str = "commit-hub";

/// The hub's membership agreement (`hub = …`): contact points for coordination
/// both ways, and an SOP with information requests.
fn membership(id: &str, hub_field: bool, members: &[&str]) -> String {
    let parties: Vec<String> =
        std::iter::once(HUB).chain(members.iter().copied()).map(|p| format!("\"{p}\"")).collect();
    format!(
        r#"
id = "{id}"
version = 1
title = "Membership {id}"
legal_basis = "Test"
parties = [{}]
valid_from = "2026-01-01"
valid_until = "2036-01-01"
{}

[retention]
days = 365
purge_on_revoke = false

[sop]
name = "Test SOP"

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
record_kinds = ["contact_point"]
purposes = ["coordination"]
operations = ["query", "sync", "push"]
max_handling = "green"
onward_sharing = "allowed"
"#,
        parties.join(", "),
        if hub_field { format!("hub = \"{HUB}\"") } else { String::new() }
    )
}

/// A hub and national nodes, all running; `members` admitted and joined.
fn region(root: &std::path::Path, nationals: &[(&str, &str)], members: &[&str]) -> (TestNode, Vec<TestNode>) {
    let mut hub = TestNode::init_role(root, HUB, "COMMIT-Mekong", "hub");
    hub.start();
    let mut nodes: Vec<TestNode> = nationals.iter().map(|(id, c)| TestNode::init(root, id, c)).collect();
    for n in &mut nodes {
        n.start();
    }
    let hub_card = hub.card_file();
    for n in nodes.iter().filter(|n| members.contains(&n.id.as_str())) {
        hub.cli_ok(&["hub", "admit", &n.card_file().display().to_string()]);
    }
    for n in nodes.iter().filter(|n| members.contains(&n.id.as_str())) {
        n.cli_ok(&["hub", "join", &hub_card.display().to_string()]);
    }
    (hub, nodes)
}

/// The policy reason a refusal carries (`ErrorInfo.reason`).
fn reason(s: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    s.get_details_error_info().map(|i| i.reason).unwrap_or_default()
}

fn search(text: &str, limit: u32, page_token: &str) -> pb::SearchRegionalContactsRequest {
    pb::SearchRegionalContactsRequest {
        text: text.into(),
        country: String::new(),
        limit,
        page_token: page_token.into(),
    }
}

fn kh_contact(id: &str, name: &str, handling: pb::HandlingCode) -> pb::Record {
    let mut cp = contact_point(id, name);
    cp.handling = handling as i32;
    if let Some(pb::record::Body::ContactPoint(c)) = cp.body.as_mut() {
        c.country = "KH".into();
    }
    cp
}

/// A sealed message as a member would hand it to the hub (the hub cannot read it anyway).
fn relay_request(from: &str, to: &str) -> pb::RelayMessageRequest {
    pb::RelayMessageRequest {
        sealed: Some(pb::SealedMessage {
            sender: from.into(),
            recipient: to.into(),
            encapped_key: vec![7; 32],
            ciphertext: b"opaque".to_vec(),
        }),
        // Past expiry at once: the hub drops it instead of retrying the recipient.
        expire_time: Some(liaison::convert::timestamp(time::OffsetDateTime::now_utc() - time::Duration::hours(1))),
    }
}

fn metadata(id: &str, agreement: &str, request_type: &str, from: &str, to: &str) -> pb::ReportRequestMetadataRequest {
    let now = time::OffsetDateTime::now_utc();
    pb::ReportRequestMetadataRequest {
        metadata: Some(pb::RequestMetadata {
            request_id: id.into(),
            agreement_id: agreement.into(),
            request_type: request_type.into(),
            from_node: from.into(),
            to_node: to.into(),
            urgent: false,
            submit_time: Some(liaison::convert::timestamp(now)),
            ack_due: Some(liaison::convert::timestamp(now + time::Duration::days(1))),
            answer_due: Some(liaison::convert::timestamp(now + time::Duration::days(7))),
            ack_time: None,
            answer_time: None,
            state: "submitted".into(),
        }),
    }
}

/// Every (from, to) pair in the hub's compliance indicators.
fn indicator_pairs(hub: &TestNode) -> Vec<(String, String)> {
    let ind = hub.cli_json(&["hub", "indicators"]);
    let pairs = ind["pairs"].as_array().cloned().unwrap_or_default();
    let members = ind["members"].as_array().cloned().unwrap_or_default();
    pairs
        .iter()
        .chain(&members)
        .map(|p| (p["from"].as_str().unwrap_or("").to_string(), p["to"].as_str().unwrap_or("").to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_regional_directory_is_a_policy_decision_per_entry_and_closes_on_revocation() {
    let root = tempfile::tempdir().unwrap();
    let (hub, nodes) = region(
        root.path(),
        &[("th-atpd", "TH"), ("kh-antht", "KH"), ("la-dcta", "LA"), ("mm-atipd", "MM")],
        &["th-atpd", "kh-antht", "la-dcta"],
    );
    let [th, kh, la, mm] = &nodes[..] else { unreachable!() };
    // MM is pinned by the hub but never admitted; LA is a member no agreement with the hub covers.
    hub.cli_ok(&["peer", "add", &mm.card_file().display().to_string()]);
    activate(&[&hub, th, kh], &membership("commit-membership", true, &["th-atpd", "kh-antht"]), "commit-membership");
    // KH may also send the hub AMBER contact points (for the secretariat only: the
    // membership grant lets the hub hand on GREEN at most).
    let amber_to_hub = bilateral(
        "kh-hub",
        "kh-antht",
        HUB,
        365,
        r#"
[[grants]]
from = "kh-antht"
to = "commit-hub"
record_kinds = ["contact_point"]
purposes = ["coordination"]
operations = ["sync", "push"]
max_handling = "amber"
onward_sharing = "allowed"
"#,
    );
    activate(&[kh, &hub], &amber_to_hub, "kh-hub");

    for (id, name) in [
        ("cp-kh-border", "Poipet border office"),
        ("cp-kh-hotline", "Poipet hotline"),
        ("cp-kh-desk", "Poipet NGO desk"),
    ] {
        create(kh, kh_contact(id, name, pb::HandlingCode::Green)).await;
    }
    create(kh, kh_contact("cp-kh-amber", "Poipet secret liaison", pb::HandlingCode::Amber)).await;
    let s = hub.cli_json(&["sync"]);
    assert!(s["peers"].as_array().unwrap().iter().any(|p| p["peer"] == "kh-antht" && p["received"] == 4), "{s}");

    // A member under the hub agreement: the GREEN entries, each signed by KH; never the AMBER one.
    let found = th.cli_ok(&["contacts", "search", "poipet", "--region"]);
    assert!(found.contains("Poipet border office") && found.contains("Poipet hotline"), "{found}");
    assert!(!found.contains("Poipet secret liaison"), "AMBER is above the hub's grant to members: {found}");
    // TH admitted each entry under its own agreement with the hub, on its own audit log.
    let admitted = audit_entries(th, "policy.decision");
    assert!(
        admitted.iter().any(|e| e["recordId"] == "kh-antht/cp-kh-border" && e["decision"] == "allow"),
        "{admitted:?}"
    );
    let mut as_th = Hostile::new(th, &hub);
    let all = as_th.client.search_regional_contacts(search("poipet", 0, "")).await.unwrap().into_inner();
    assert_eq!(all.records.len(), 3, "{all:?}");
    assert!(all.next_page_token.is_empty());
    let kh_key = envelope::verifying_key(&kh.card().signing_public_key).unwrap();
    for s in &all.records {
        let rec: pb::Record =
            envelope::open(s.record.as_ref().unwrap(), payload::RECORD, "kh-antht", &kh_key).expect("KH's signature");
        assert_eq!(rec.handling, pb::HandlingCode::Green as i32);
        assert_eq!(s.agreement_id, "commit-membership", "released under the hub's agreement with TH");
    }

    // Bounded answers: one entry a page, following the page token, gives each entry once.
    let (mut seen, mut token) = (Vec::new(), String::new());
    for _ in 0..10 {
        let page = as_th.client.search_regional_contacts(search("poipet", 1, &token)).await.unwrap().into_inner();
        assert!(page.records.len() <= 1, "{page:?}");
        seen.extend(page.records.iter().map(|s| s.record.clone().unwrap().body));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert!(token.is_empty(), "paging ends");
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 3, "each entry exactly once across pages");
    let err = as_th.client.search_regional_contacts(search("", 0, "not-hex")).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");

    // Every decision is on the hub's audit log: releases and the refused AMBER entry.
    let releases = audit_entries(&hub, "hub.contact_release");
    assert!(
        releases.iter().any(|e| e["recordId"] == "kh-antht/cp-kh-amber"
            && e["decision"] == "deny"
            && e["reason"].as_str().unwrap_or("").contains("handling_above_grant")),
        "{releases:?}"
    );
    assert!(releases.iter().any(|e| e["recordId"] == "kh-antht/cp-kh-border" && e["decision"] == "allow"));

    // A member with no agreement naming the hub, and a pinned stranger: refused outright, audited.
    let err = Hostile::new(la, &hub).client.search_regional_contacts(search("poipet", 0, "")).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::PermissionDenied, "no_agreement"), "{err:?}");
    assert!(!la.cli(&["contacts", "search", "poipet", "--region"]).status.success());
    let err = Hostile::new(mm, &hub).client.search_regional_contacts(search("", 0, "")).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::PermissionDenied, "not_a_member"), "{err:?}");
    let searches = audit_entries(&hub, "hub.contacts_search");
    assert!(searches.iter().any(|e| e["actor"] == "peer:la-dcta" && e["decision"] == "deny"), "{searches:?}");

    // Revoke the hub agreement: every hub path closes for TH at once.
    th.cli_ok(&["agreement", "revoke", "commit-membership", "--reason", "membership ended"]);
    wait_for(30, "the revocation at the hub", || {
        hub.cli_json(&["agreement", "show", "commit-membership"])["agreement"]["state"] == "AGREEMENT_STATE_REVOKED"
    });
    let err = as_th.client.search_regional_contacts(search("poipet", 0, "")).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::PermissionDenied, "agreement_not_active"), "{err:?}");
    assert!(!th.cli(&["contacts", "search", "poipet", "--region"]).status.success());
    let err = as_th.client.relay_message(relay_request("th-atpd", "kh-antht")).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::PermissionDenied, "agreement_not_active"), "{err:?}");
    let err = as_th
        .client
        .report_request_metadata(metadata(
            "req-after-revoke",
            "commit-membership",
            "information_request",
            "th-atpd",
            "kh-antht",
        ))
        .await
        .unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::PermissionDenied, "agreement_not_active"), "{err:?}");
    assert!(!indicator_pairs(&hub).iter().any(|(f, _)| f == "th-atpd"), "nothing reached the indicators");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_relays_only_under_an_active_agreement_that_names_it() {
    let root = tempfile::tempdir().unwrap();
    let (hub, nodes) = region(
        root.path(),
        &[("th-atpd", "TH"), ("kh-antht", "KH"), ("la-dcta", "LA")],
        &["th-atpd", "kh-antht", "la-dcta"],
    );
    let [th, kh, la] = &nodes[..] else { unreachable!() };
    let mut as_th = Hostile::new(th, &hub);

    // The hub is a party, but the agreement does not name it as the members' hub.
    activate(&[&hub, th, kh], &membership("mekong-tri", false, &["th-atpd", "kh-antht"]), "mekong-tri");
    let err = as_th.client.relay_message(relay_request("th-atpd", "kh-antht")).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::PermissionDenied, "agreement_not_naming_hub"), "{err:?}");
    // To a node that is not a member.
    let err = as_th.client.relay_message(relay_request("th-atpd", "mm-atipd")).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::PermissionDenied, "not_a_member"), "{err:?}");
    // Between members no agreement with the hub covers (LA is a member, in no agreement).
    let err = as_th.client.relay_message(relay_request("th-atpd", "la-dcta")).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::PermissionDenied, "no_hub_agreement"), "{err:?}");
    let err = Hostile::new(la, &hub).client.relay_message(relay_request("la-dcta", "th-atpd")).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::PermissionDenied, "no_hub_agreement"), "{err:?}");
    // Claiming another sender is refused before anything else.
    let err = as_th.client.relay_message(relay_request("kh-antht", "th-atpd")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");

    // Under the hub agreement the relay is taken …
    activate(&[&hub, th, kh], &membership("commit-membership", true, &["th-atpd", "kh-antht"]), "commit-membership");
    let id = as_th.client.relay_message(relay_request("th-atpd", "kh-antht")).await.unwrap().into_inner().relay_id;
    assert!(id.starts_with("relay-"), "{id}");
    // … and refused while it is suspended, taken again once resumed.
    th.cli_ok(&["agreement", "suspend", "commit-membership", "--reason", "review"]);
    wait_for(30, "the suspension at the hub", || {
        hub.cli_json(&["agreement", "show", "commit-membership"])["agreement"]["state"] == "AGREEMENT_STATE_SUSPENDED"
    });
    let err = as_th.client.relay_message(relay_request("th-atpd", "kh-antht")).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::PermissionDenied, "agreement_not_active"), "{err:?}");
    th.cli_ok(&["agreement", "resume", "commit-membership", "--reason", "review closed"]);
    wait_for(30, "the resumption at the hub", || {
        hub.cli_json(&["agreement", "show", "commit-membership"])["agreement"]["state"] == "AGREEMENT_STATE_ACTIVE"
    });
    as_th.client.relay_message(relay_request("th-atpd", "kh-antht")).await.expect("relayed again");

    let refused = audit_entries(&hub, "relay.refused");
    assert_eq!(refused.len(), 5, "every refusal audited: {refused:?}");
    assert!(refused.iter().all(|e| e["decision"] == "deny"));
    let accepted = audit_entries(&hub, "relay.accept");
    assert!(accepted.iter().all(|e| e["agreementId"] == "commit-membership"), "{accepted:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_takes_request_metadata_only_from_members_under_its_agreement() {
    let root = tempfile::tempdir().unwrap();
    let (hub, nodes) =
        region(root.path(), &[("th-atpd", "TH"), ("kh-antht", "KH"), ("la-dcta", "LA")], &["th-atpd", "kh-antht"]);
    let [th, kh, la] = &nodes[..] else { unreachable!() };
    hub.cli_ok(&["peer", "add", &la.card_file().display().to_string()]);
    activate(&[&hub, th, kh], &membership("commit-membership", true, &["th-atpd", "kh-antht"]), "commit-membership");
    activate(&[&hub, th, kh], &membership("mekong-tri", false, &["th-atpd", "kh-antht"]), "mekong-tri");
    let mut as_th = Hostile::new(th, &hub);
    let mut as_kh = Hostile::new(kh, &hub);
    let mut as_la = Hostile::new(la, &hub);

    let refused = |r: Result<tonic::Response<pb::ReportRequestMetadataResponse>, tonic::Status>| {
        let err = r.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
        reason(&err)
    };
    // A pinned stranger naming itself and a member.
    assert_eq!(
        refused(
            as_la
                .client
                .report_request_metadata(metadata(
                    "req-la",
                    "commit-membership",
                    "information_request",
                    "la-dcta",
                    "th-atpd"
                ))
                .await
        ),
        "not_a_member"
    );
    // A member under an agreement the hub does not hold (a bilateral without it) …
    assert_eq!(
        refused(
            as_th
                .client
                .report_request_metadata(metadata("req-bi", "th-kh", "information_request", "th-atpd", "kh-antht"))
                .await
        ),
        "unknown_agreement"
    );
    // … under one the hub is party to but that does not name it as hub …
    assert_eq!(
        refused(
            as_th
                .client
                .report_request_metadata(metadata(
                    "req-tri",
                    "mekong-tri",
                    "information_request",
                    "th-atpd",
                    "kh-antht"
                ))
                .await
        ),
        "agreement_not_naming_hub"
    );
    // … naming a non-party, or a request type the SOP does not define.
    assert_eq!(
        refused(
            as_th
                .client
                .report_request_metadata(metadata(
                    "req-la2",
                    "commit-membership",
                    "information_request",
                    "th-atpd",
                    "la-dcta"
                ))
                .await
        ),
        "not_a_party"
    );
    assert_eq!(
        refused(
            as_th
                .client
                .report_request_metadata(metadata("req-ext", "commit-membership", "extradition", "th-atpd", "kh-antht"))
                .await
        ),
        "request_type_not_defined"
    );
    // Reporting for a request between two other nodes.
    assert_eq!(
        refused(
            as_th
                .client
                .report_request_metadata(metadata(
                    "req-other",
                    "commit-membership",
                    "information_request",
                    "kh-antht",
                    "la-dcta"
                ))
                .await
        ),
        "not_a_request_party"
    );
    let err = as_th
        .client
        .report_request_metadata(metadata("", "commit-membership", "information_request", "th-atpd", "kh-antht"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    // Absurd times would skew the indicators.
    let mut absurd = metadata("req-absurd", "commit-membership", "information_request", "th-atpd", "kh-antht");
    if let Some(m) = absurd.metadata.as_mut() {
        m.ack_time = Some(pbjson_types::Timestamp { seconds: i64::MAX / 2, nanos: 0 });
    }
    let err = as_th.client.report_request_metadata(absurd).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");

    // The legitimate report is taken; the other party cannot re-address it.
    as_th
        .client
        .report_request_metadata(metadata("req-ok", "commit-membership", "information_request", "th-atpd", "kh-antht"))
        .await
        .expect("a member's own request under the hub agreement");
    let err = as_kh
        .client
        .report_request_metadata(metadata("req-ok", "commit-membership", "information_request", "kh-antht", "th-atpd"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");

    let pairs = indicator_pairs(&hub);
    assert!(pairs.contains(&("th-atpd".into(), "kh-antht".into())), "{pairs:?}");
    assert!(
        pairs.iter().all(|(f, t)| f != "la-dcta" && t != "la-dcta" && !(f == "kh-antht" && t == "th-atpd")),
        "nothing refused reached the indicators: {pairs:?}"
    );
    let log = audit_entries(&hub, "hub.request_metadata");
    assert_eq!(log.iter().filter(|e| e["decision"] == "deny").count(), 6, "{log:?}");
    assert_eq!(log.iter().filter(|e| e["decision"] == "allow").count(), 1, "{log:?}");
}

/// The exported lines of `node`, as JSON values.
fn export(node: &TestNode) -> (std::path::PathBuf, Vec<serde_json::Value>) {
    let file = node.dir.parent().unwrap().join(format!("{}-export-{}.jsonl", node.id, common::free_port()));
    node.cli_ok(&["export", "--out", &file.display().to_string()]);
    let text = std::fs::read_to_string(&file).unwrap();
    (file, text.lines().map(|l| serde_json::from_str(l).unwrap()).collect())
}

async fn get(node: &TestNode, id: &str) -> Result<pb::GetRecordResponse, tonic::Status> {
    node.records()
        .await
        .get_record(pb::GetRecordRequest { id: id.into(), reason: "integration test".into(), ..Default::default() })
        .await
        .map(|r| r.into_inner())
}

fn held(node: &TestNode, id: &str) -> bool {
    futures::executor::block_on(get(node, id)).is_ok()
}

/// Contact points pushed from TH, never synced (so nothing but the test moves them).
const TH_PUSHES_CONTACTS: &str = r#"
[[grants]]
from = "th-atpd"
to = "*"
record_kinds = ["contact_point"]
purposes = ["coordination"]
operations = ["push", "query"]
max_handling = "green"
onward_sharing = "forbidden"
"#;

/// The exported received line for `key`.
fn exported(lines: &[serde_json::Value], key: &str) -> pb::ExportedRecord {
    let (originator, id) = key.split_once('/').unwrap();
    let line = lines
        .iter()
        .find(|l| l["record"]["originator"] == originator && l["record"]["id"] == id)
        .unwrap_or_else(|| panic!("{key} not exported: {lines:?}"));
    serde_json::from_value(line.clone()).unwrap()
}

async fn import_received(node: &TestNode, x: pb::ExportedRecord) -> pb::ImportRecordsResponse {
    let req = pb::ImportRecordsRequest { records: vec![], received: vec![x], ..Default::default() };
    node.records().await.import_records(req).await.unwrap().into_inner()
}

/// `liaison import` of `file` on `node`: (stored, already held, problem reasons).
fn import_file(node: &TestNode, file: &std::path::Path) -> (u64, u64, Vec<String>) {
    let run = node.cli(&["--json", "import", &file.display().to_string()]);
    let out: serde_json::Value = serde_json::from_slice(&run.stdout).expect("JSON report");
    let reasons: Vec<String> = out["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| format!("{}: {}", p["field"].as_str().unwrap(), p["reason"].as_str().unwrap()))
        .collect();
    // Any refused line fails the command.
    assert_eq!(run.status.success(), reasons.is_empty(), "{out}");
    (out["stored"].as_u64().unwrap(), out["alreadyHeld"].as_u64().unwrap(), reasons)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exported_received_records_come_back_only_as_received_by_their_holder() {
    let root = tempfile::tempdir().unwrap();
    let mut th = TestNode::init(root.path(), "th-atpd", "TH");
    let mut kh = TestNode::init(root.path(), "kh-antht", "KH");
    let mut la = TestNode::init(root.path(), "la-dcta", "LA");
    for n in [&mut th, &mut kh, &mut la] {
        n.start();
    }
    common::pin_all(&[&th, &kh, &la]);
    activate(&[&th, &kh], &bilateral("th-kh", "th-atpd", "kh-antht", 365, TH_PUSHES_CONTACTS), "th-kh");
    activate(&[&th, &la], &bilateral("th-la", "th-atpd", "la-dcta", 30, TH_PUSHES_CONTACTS), "th-la");

    // A backup of KH, taken before anything was shared with it.
    kh.stop();
    let backup = root.path().join("kh-backup");
    let cp = std::process::Command::new("cp").arg("-a").arg(&kh.dir).arg(&backup).status().unwrap();
    assert!(cp.success());
    kh.start();

    create(&th, contact_point("cp-th-shared", "Bangkok unit head")).await;
    create(&th, contact_point("cp-th-kh-only", "Bangkok night desk")).await;
    th.cli_ok(&["record", "share", "cp-th-shared", "--to", "kh-antht", "--purpose", "coordination"]);
    th.cli_ok(&["record", "share", "cp-th-shared", "--to", "la-dcta", "--purpose", "coordination"]);
    th.cli_ok(&["record", "share", "cp-th-kh-only", "--to", "kh-antht", "--purpose", "coordination"]);
    wait_for(30, "the shares at KH and LA", || {
        held(&kh, "th-atpd/cp-th-shared") && held(&kh, "th-atpd/cp-th-kh-only") && held(&la, "th-atpd/cp-th-shared")
    });
    let shared = get(&kh, "th-atpd/cp-th-shared").await.unwrap();
    let kh_only = get(&kh, "th-atpd/cp-th-kh-only").await.unwrap();
    let at_la = get(&la, "th-atpd/cp-th-shared").await.unwrap();
    create(&kh, kh_contact("cp-kh-own", "Phnom Penh hotline", pb::HandlingCode::Green)).await;

    // The export carries the originator's exact envelope, the provenance and KH's signed holding statement.
    let (file, lines) = export(&kh);
    assert_eq!(lines.len(), 3, "{lines:?}");
    let own: pb::Record =
        serde_json::from_value(lines.iter().find(|l| l["id"] == "cp-kh-own").unwrap().clone()).unwrap();
    assert_eq!(own.originator, "kh-antht");
    let line = exported(&lines, "th-atpd/cp-th-shared");
    let th_key = envelope::verifying_key(&th.card().signing_public_key).unwrap();
    let signed: pb::Record =
        envelope::open(line.envelope.as_ref().unwrap(), payload::RECORD, "th-atpd", &th_key).expect("TH's signature");
    assert_eq!((signed.originator.as_str(), signed.id.as_str()), ("th-atpd", "cp-th-shared"));
    assert_eq!(line.envelope, shared.envelope, "exactly the envelope KH holds");
    assert_eq!(line.provenance, shared.provenance);
    let prov = line.provenance.clone().unwrap();
    assert_eq!((prov.received_from.as_str(), prov.agreement_id.as_str()), ("th-atpd", "th-kh"));
    assert!(prov.retain_until.is_some(), "retention travels with it");
    let kh_key = envelope::verifying_key(&kh.card().signing_public_key).unwrap();
    let holding: pb::Holding =
        envelope::open(line.holding.as_ref().unwrap(), payload::HOLDING, "kh-antht", &kh_key).expect("KH's statement");
    assert_eq!((holding.holder.as_str(), holding.record_key.as_str()), ("kh-antht", "th-atpd/cp-th-shared"));
    assert_eq!(holding.provenance, shared.provenance);

    // Import on the same node while it holds them: nothing changes, nothing becomes KH's own.
    let (stored, already, reasons) = import_file(&kh, &file);
    assert_eq!((stored, already), (0, 2), "{reasons:?}");
    assert!(reasons.len() == 1 && reasons[0].contains("cp-kh-own already exists"), "{reasons:?}");
    assert_eq!(get(&kh, "cp-th-shared").await.unwrap_err().code(), Code::NotFound, "never KH's own");
    let still = get(&kh, "th-atpd/cp-th-shared").await.unwrap();
    assert_eq!((still.envelope, still.provenance), (shared.envelope.clone(), shared.provenance.clone()));

    // A hostile local user strips the wrapper and calls the API directly: refused, naming the record.
    let mut bare = signed.clone();
    bare.redacted_fields.clear();
    let r = kh
        .records()
        .await
        .import_records(pb::ImportRecordsRequest {
            records: vec![bare.clone()],
            received: vec![],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.stored, r.problems[0].field.as_str()), (0, "record.originator"), "{r:?}");
    assert!(r.problems[0].reason.contains("th-atpd/cp-th-shared"), "{r:?}");
    let err = kh
        .records()
        .await
        .create_record(pb::CreateRecordRequest { record: Some(bare.clone()), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(get(&kh, "cp-th-shared").await.unwrap_err().code(), Code::NotFound);

    // Tampered lines are refused before anything else: the originator's bytes, the terms, the holding statement.
    let mut body = line.clone();
    if let Some(e) = body.envelope.as_mut() {
        let last = e.body.len() - 1;
        e.body[last] ^= 1;
    }
    let mut terms = line.clone();
    if let Some(p) = terms.provenance.as_mut() {
        p.onward_sharing = pb::OnwardSharing::Allowed as i32;
        p.retain_until =
            Some(liaison::convert::timestamp(time::OffsetDateTime::now_utc() + time::Duration::days(9999)));
    }
    let mut statement = line.clone();
    if let Some(h) = statement.holding.as_mut() {
        let mut forged = holding.clone();
        forged.provenance.as_mut().unwrap().retain_until = None;
        h.body = prost::Message::encode_to_vec(&forged);
    }
    for (x, field) in [(body, "received.envelope"), (terms, "received.provenance"), (statement, "received.holding")] {
        let r = import_received(&kh, x).await;
        assert_eq!((r.stored, r.already_held), (0, 0), "{r:?}");
        assert!(r.problems[0].received && r.problems[0].field == field, "{field}: {r:?}");
    }

    // Another node: what it holds itself stays under its own terms; nothing else is taken, nothing becomes LA's.
    let (stored, already, reasons) = import_file(&la, &file);
    assert_eq!((stored, already), (0, 1), "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.contains("th-atpd/cp-th-kh-only") && r.contains("held by kh-antht")),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r.contains("kh-antht/cp-kh-own")), "{reasons:?}");
    let la_view = get(&la, "th-atpd/cp-th-shared").await.unwrap();
    assert_eq!((la_view.envelope, la_view.provenance), (at_la.envelope.clone(), at_la.provenance.clone()));
    assert_eq!(at_la.provenance.unwrap().agreement_id, "th-la", "LA's own terms, not KH's");
    for id in ["th-atpd/cp-th-kh-only", "cp-th-kh-only", "cp-kh-own"] {
        assert_eq!(get(&la, id).await.unwrap_err().code(), Code::NotFound, "{id}");
    }
    let denied = audit_entries(&la, "record.import_received");
    assert!(denied.iter().any(|e| e["decision"] == "deny" && e["reason"] == "held_elsewhere"), "{denied:?}");

    // KH restored from the backup: the export brings the received records back as received,
    // with TH's signature and the terms KH held them under.
    kh.stop();
    std::fs::rename(&kh.dir, root.path().join("kh-lost")).unwrap();
    std::fs::rename(&backup, &kh.dir).unwrap();
    kh.start();
    assert!(!held(&kh, "th-atpd/cp-th-shared"), "the backup predates the share");
    let (stored, already, reasons) = import_file(&kh, &file);
    assert_eq!((stored, already), (3, 0), "{reasons:?}");
    for (id, before) in [("th-atpd/cp-th-shared", &shared), ("th-atpd/cp-th-kh-only", &kh_only)] {
        let back = get(&kh, id).await.unwrap();
        assert_eq!(back.envelope, before.envelope, "{id}: TH's signature");
        assert_eq!(back.provenance, before.provenance, "{id}: received time, retention, onward terms");
    }
    assert_eq!(get(&kh, "cp-th-shared").await.unwrap_err().code(), Code::NotFound, "never KH's own");

    // TH withdraws: KH purges it, and the export never brings it back.
    th.cli_ok(&["record", "withdraw", "cp-th-shared", "--expected-version", "1"]);
    wait_for(30, "KH purges the withdrawn record", || {
        futures::executor::block_on(get(&kh, "th-atpd/cp-th-shared")).is_err_and(|e| e.code() == Code::NotFound)
    });
    let (stored, already, reasons) = import_file(&kh, &file);
    assert_eq!((stored, already), (0, 1), "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.starts_with("record.withdrawn") && r.contains("th-atpd/cp-th-shared")),
        "{reasons:?}"
    );
    // Nor does the originator's own old signature, pushed again by a hostile TH.
    let push = pb::PushRecordRequest {
        delivery_id: liaison::exchange::random_id("dlv"),
        shared: Some(pb::SharedRecord {
            record: shared.envelope.clone(),
            agreement_id: "th-kh".into(),
            agreement_version: 1,
            onward_sharing: pb::OnwardSharing::Forbidden as i32,
            retention_days: 0,
        }),
        purpose: pb::Purpose::Coordination as i32,
        consent: None,
    };
    let receipt = Hostile::new(&th, &kh).client.push_record(push).await.unwrap().into_inner().receipt.unwrap();
    let receipt: pb::Receipt = envelope::decode(&receipt).unwrap();
    assert!(!receipt.delivered && receipt.reason.contains("withdrew"), "{receipt:?}");
    for id in ["th-atpd/cp-th-shared", "cp-th-shared"] {
        assert_eq!(get(&kh, id).await.unwrap_err().code(), Code::NotFound, "{id} stays gone");
    }

    // An own record, withdrawn and exported, does not come back live elsewhere (even with its originator removed).
    kh.cli_ok(&["record", "withdraw", "cp-kh-own", "--expected-version", "1"]);
    let (_, lines) = export(&kh);
    let mut withdrawn: pb::Record =
        serde_json::from_value(lines.iter().find(|l| l["id"] == "cp-kh-own").unwrap().clone()).unwrap();
    assert!(withdrawn.withdrawn, "{withdrawn:?}");
    withdrawn.originator.clear();
    let r = la
        .records()
        .await
        .import_records(pb::ImportRecordsRequest { records: vec![withdrawn], received: vec![], ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.stored, r.problems[0].field.as_str()), (0, "record.withdrawn"), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_metadata_at_the_hub_ends() {
    let root = tempfile::tempdir().unwrap();
    let (mut hub, nodes) = region(root.path(), &[("th-atpd", "TH"), ("kh-antht", "KH")], &["th-atpd", "kh-antht"]);
    let [th, kh] = &nodes[..] else { unreachable!() };
    activate(&[&hub, th, kh], &membership("commit-membership", true, &["th-atpd", "kh-antht"]), "commit-membership");
    // TH reports a request submitted more than three years ago, KH a fresh one.
    let mut old = metadata("req-old", "commit-membership", "information_request", "th-atpd", "kh-antht");
    let long_ago = time::OffsetDateTime::now_utc() - liaison::hub::METADATA_KEEP - time::Duration::days(10);
    if let Some(m) = old.metadata.as_mut() {
        m.submit_time = Some(liaison::convert::timestamp(long_ago));
        m.ack_due = Some(liaison::convert::timestamp(long_ago + time::Duration::days(1)));
        m.answer_due = Some(liaison::convert::timestamp(long_ago + time::Duration::days(7)));
    }
    Hostile::new(th, &hub).client.report_request_metadata(old).await.unwrap();
    let fresh = metadata("req-new", "commit-membership", "information_request", "kh-antht", "th-atpd");
    Hostile::new(kh, &hub).client.report_request_metadata(fresh).await.unwrap();

    let pair = |f: &str, t: &str| (f.to_string(), t.to_string());
    assert!(indicator_pairs(&hub).contains(&pair("th-atpd", "kh-antht")), "the old request counted before the sweep");
    // The next sweep removes the old one; the fresh one stays.
    hub.stop();
    configure(&hub, |c| c.intervals.housekeeping_secs = 1);
    hub.start();
    wait_for(30, "the old request to leave the indicators", || {
        let pairs = indicator_pairs(&hub);
        !pairs.contains(&pair("th-atpd", "kh-antht")) && pairs.contains(&pair("kh-antht", "th-atpd"))
    });
}
