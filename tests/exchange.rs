//! Exchange between real nodes over mutual TLS: queries and their denials,
//! redaction, hit/no-hit, fan-out with a down and a slow peer.

mod common;

use std::time::{Duration, Instant};

use common::{activate, bilateral, create, pin_all, TestNode, MOU_GRANTS};
use liaison::pb;
use liaison::record::examples;

fn query(n: &TestNode, peer: &str, kind: &str, purpose: &str) -> serde_json::Value {
    let out = n.cli_json(&["query", "--peer", peer, "--kind", kind, "--purpose", purpose]);
    out["peers"][0].clone()
}

fn outcome(v: &serde_json::Value) -> &str {
    v["outcome"].as_str().unwrap_or("")
}

fn red_intel() -> pb::Record {
    let mut r = examples::intelligence_report();
    r.id = "ir-red".into();
    r.handling = pb::HandlingCode::Red as i32;
    r
}

fn victim(id: &str, consent: pb::ConsentStatus) -> pb::Record {
    let mut r = examples::victim_referral();
    r.id = id.into();
    if let Some(pb::record::Body::VictimReferral(v)) = r.body.as_mut() {
        v.consent.as_mut().unwrap().status = consent as i32;
    }
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_cross_only_what_the_agreement_allows() {
    let root = tempfile::tempdir().unwrap();
    let mut th = TestNode::init(root.path(), "th-atpd", "TH");
    let mut kh = TestNode::init(root.path(), "kh-antht", "KH");
    let mut la = TestNode::init(root.path(), "la-dcta", "LA");
    for n in [&mut th, &mut kh, &mut la] {
        n.start();
    }
    pin_all(&[&th, &kh, &la]);
    activate(&[&th, &kh], &bilateral("th-kh", "th-atpd", "kh-antht", 365, MOU_GRANTS), "th-kh");
    // TH–LA: LA may send to TH only.
    let one_way = MOU_GRANTS.replace("from = \"*\"\nto = \"*\"", "from = \"la-dcta\"\nto = \"th-atpd\"");
    activate(&[&th, &la], &bilateral("th-la", "th-atpd", "la-dcta", 365, &one_way), "th-la");

    create(&th, examples::intelligence_report()).await;
    create(&th, red_intel()).await;
    create(&th, examples::entity()).await;
    create(&th, victim("vr-given", pb::ConsentStatus::Given)).await;
    create(&th, victim("vr-refused", pb::ConsentStatus::Refused)).await;

    // Allowed: the AMBER report crosses, the RED one (above the grant) does not.
    let r = query(&kh, "th-atpd", "intelligence_report", "investigation");
    assert_eq!(outcome(&r), "PEER_OUTCOME_ANSWERED", "{r}");
    let ids: Vec<&str> = r["records"].as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec!["ir-fishing-2026-07"], "handling above the grant never crosses");
    assert_eq!(r["records"][0]["originator"], "th-atpd");

    // Redaction: evidence basis is always removed.
    let r = query(&kh, "th-atpd", "entity", "investigation");
    let ent = &r["records"][0];
    assert!(ent["entity"]["evidenceBasis"].is_null(), "{ent}");
    assert_eq!(ent["redactedFields"], serde_json::json!(["entity.evidence_basis"]));
    assert_eq!(ent["entity"]["names"][0], "Sok Dara");

    // Victim identity: released for identification with consent; stripped without consent.
    let r = query(&kh, "th-atpd", "victim_referral", "victim_identification");
    let recs = r["records"].as_array().unwrap();
    let given = recs.iter().find(|x| x["id"] == "vr-given").unwrap();
    let refused = recs.iter().find(|x| x["id"] == "vr-refused").unwrap();
    assert_eq!(given["victimReferral"]["identity"]["fullName"], "Chann Sreymom");
    assert!(refused["victimReferral"]["identity"].is_null(), "{refused}");
    assert!(!refused.to_string().contains("Chann"), "no trace of the identity");
    assert_eq!(refused["victimReferral"]["pseudonym"], "VR-KH-0042");

    // Denials, checked by the responder and by the requester.
    let r = query(&kh, "th-atpd", "victim_referral", "investigation");
    assert_eq!(outcome(&r), "PEER_OUTCOME_DENIED");
    assert!(r["error"].as_str().unwrap().contains("purpose_not_granted"), "{r}");
    let r = query(&kh, "th-atpd", "statistics_report", "statistics_and_reporting");
    assert!(
        r["error"].as_str().unwrap().contains("kind_not_granted")
            || r["error"].as_str().unwrap().contains("purpose_not_granted"),
        "{r}"
    );
    let r = query(&la, "th-atpd", "intelligence_report", "investigation");
    assert_eq!(outcome(&r), "PEER_OUTCOME_DENIED");
    assert!(r["error"].as_str().unwrap().contains("wrong_direction"), "LA may only send to TH: {r}");
    let r =
        kh.cli_json(&["check", "--identifier", "passport:N0123456", "--peer", "th-atpd", "--purpose", "coordination"]);
    assert!(r["peers"][0]["error"].as_str().unwrap().contains("purpose_not_granted"), "{r}");

    // Suspension and revocation stop queries at once; nothing of a record crosses.
    th.cli_ok(&["agreement", "suspend", "th-kh", "--reason", "audit"]);
    let r = query(&kh, "th-atpd", "intelligence_report", "investigation");
    assert_eq!(outcome(&r), "PEER_OUTCOME_DENIED");
    assert!(r["records"].as_array().is_none_or(|a| a.is_empty()));
    assert!(r["error"].as_str().unwrap().contains("agreement_not_active"), "{r}");
    th.cli_ok(&["agreement", "resume", "th-kh", "--reason", "done"]);
    assert_eq!(outcome(&query(&kh, "th-atpd", "intelligence_report", "investigation")), "PEER_OUTCOME_ANSWERED");

    // Hit/no-hit: only yes/no and a reference cross, identifiers normalised on both sides.
    let r = kh.cli_json(&[
        "check",
        "--identifier",
        "passport:n0123-456",
        "--identifier",
        "phone:00855 12 345 678",
        "--identifier",
        "passport:X9999999",
        "--peer",
        "th-atpd",
        "--purpose",
        "investigation",
    ]);
    let results = r["peers"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 3, "{r}");
    assert_eq!(results[0]["identifier"], "passport:N0123456");
    assert_eq!(results[0]["hit"], true);
    assert!(results[0]["reference"].as_str().unwrap().starts_with("hit-"));
    assert_eq!(results[1]["hit"], true, "phone normalised to +85512345678");
    assert!(results[2]["hit"].is_null() || results[2]["hit"] == false);
    assert!(!r.to_string().contains("Sok Dara"), "no record content crosses in a hit check");

    th.cli_ok(&["agreement", "revoke", "th-kh", "--reason", "ended"]);
    let r = query(&kh, "th-atpd", "intelligence_report", "investigation");
    assert_eq!(outcome(&r), "PEER_OUTCOME_DENIED");
    assert!(r["error"].as_str().unwrap().contains("agreement_not_active"), "{r}");

    // Every query and answer is audited on both sides.
    let theirs = th.cli_json(&["audit", "list", "--action", "exchange.query.answer", "--limit", "1000"]);
    assert!(theirs["entries"].as_array().unwrap().len() >= 4);
    let ours = kh.cli_json(&["audit", "list", "--action", "exchange.query", "--limit", "1000"]);
    assert!(ours["entries"].as_array().unwrap().iter().any(|e| e["action"] == "exchange.query"));
    assert!(th.cli_ok(&["audit", "verify"]).contains("intact"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_agreement_denies_on_the_node_whose_clock_passed_it() {
    let root = tempfile::tempdir().unwrap();
    let (th, mut kh) = common::th_kh_under_mou(root.path());
    create(&th, examples::intelligence_report()).await;
    assert_eq!(outcome(&query(&kh, "th-atpd", "intelligence_report", "investigation")), "PEER_OUTCOME_ANSWERED");
    // Ten years later, on KH's clock, the agreement has expired.
    kh.stop();
    kh.env.push(("LIAISON_CLOCK_OFFSET_SECS".into(), (10 * 366 * 86_400).to_string()));
    kh.start();
    let r = query(&kh, "th-atpd", "intelligence_report", "investigation");
    assert_eq!(outcome(&r), "PEER_OUTCOME_DENIED");
    assert!(r["error"].as_str().unwrap().contains("agreement_not_active"), "{r}");
    assert_eq!(kh.cli_json(&["agreement", "show", "th-kh"])["agreement"]["state"], "AGREEMENT_STATE_EXPIRED");
}

/// A listener that accepts connections and never answers: a peer that is up but hopelessly slow.
fn tarpit(addr: std::net::SocketAddr) -> std::thread::JoinHandle<()> {
    let l = std::net::TcpListener::bind(addr).expect("bind tarpit");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().take(16).flatten() {
            held.push(s);
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_reports_down_and_slow_peers_without_waiting_for_them() {
    let root = tempfile::tempdir().unwrap();
    let mut me = TestNode::init(root.path(), "th-atpd", "TH");
    let mut peers: Vec<TestNode> = [("kh-antht", "KH"), ("la-dcta", "LA"), ("vn-c02", "VN"), ("mm-atipd", "MM")]
        .iter()
        .map(|(id, c)| TestNode::init(root.path(), id, c))
        .collect();
    me.start();
    for p in &mut peers {
        p.start();
    }
    let all: Vec<&TestNode> = std::iter::once(&me).chain(peers.iter()).collect();
    pin_all(&all);
    for p in &peers {
        activate(
            &[&me, p],
            &bilateral(&format!("mou-{}", p.id), "th-atpd", &p.id, 365, MOU_GRANTS),
            &format!("mou-{}", p.id),
        );
        let mut r = examples::intelligence_report();
        r.id = format!("ir-from-{}", p.id);
        create(p, r).await;
    }
    // One peer down, one up but silent.
    peers[2].stop();
    peers[3].stop();
    let _slow = tarpit(peers[3].fed);

    let started = Instant::now();
    let out = me.cli_json(&[
        "query",
        "--all",
        "--kind",
        "intelligence_report",
        "--purpose",
        "investigation",
        "--deadline-ms",
        "2000",
    ]);
    let took = started.elapsed();
    let by_peer = |id: &str| out["peers"].as_array().unwrap().iter().find(|p| p["peer"] == id).unwrap().clone();
    for id in ["kh-antht", "la-dcta"] {
        let p = by_peer(id);
        assert_eq!(p["outcome"], "PEER_OUTCOME_ANSWERED", "{p}");
        assert_eq!(p["records"][0]["id"], format!("ir-from-{id}"));
        let ms: u64 = p["elapsedMs"].as_str().map_or(0, |s| s.parse().unwrap());
        assert!(ms < 2000, "{id} answered within the deadline ({ms} ms)");
    }
    assert_eq!(by_peer("vn-c02")["outcome"], "PEER_OUTCOME_UNREACHABLE");
    assert_eq!(by_peer("mm-atipd")["outcome"], "PEER_OUTCOME_TIMED_OUT");
    // The slow peer costs one deadline, not a stall (generous bound for a loaded machine).
    assert!(took < Duration::from_secs(20), "fan-out took {took:?}");
}
