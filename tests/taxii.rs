//! The read-only TAXII 2.1 server, as a partner's threat-intelligence
//! platform uses it (`taxii2-client` from PyPI, its objects checked by
//! `stix2-validator`) and as a hostile caller tries it: only a partner
//! account's token opens it, each collection holds what that peer's
//! agreement lets it query (decided, redacted and audited as for
//! `QueryRecords`), and a revoked agreement closes its collection.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use common::create;
use liaison::pb;
use liaison::pb::record::Body;

/// GET `path` over plain HTTP/1.1; the status and the body.
fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect TAXII");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Pages through every collection with taxii2-client; what it read.
fn taxii2_client(py: &str, url: &str, user: &str, token: &str, basic: bool) -> serde_json::Value {
    let out_file = tempfile::NamedTempFile::new().unwrap();
    let out = Command::new(py)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/formats_check.py"))
        .args(["taxii", url, user, token, "2"])
        .arg(out_file.path())
        .env("FORMATS_TAXII_AUTH", if basic { "basic" } else { "bearer" })
        .output()
        .expect("run formats_check.py taxii");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("formats ok: taxii"),
        "taxii2-client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(out_file.path()).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_reads_its_agreement_collection_and_nothing_else() {
    let py = common::formats_python();
    let root = tempfile::tempdir().unwrap();
    let (mut th, kh) = common::th_kh_under_mou(root.path());
    th.stop();
    let addr: SocketAddr = format!("127.0.0.1:{}", common::free_port()).parse().unwrap();
    common::configure(&th, |c| {
        c.taxii.enabled = true;
        c.taxii.listen = addr;
    });
    th.start();

    // What TH holds: a report and an entity the MOU lets KH query (the
    // entity's evidence basis withheld), an entity above the MOU's highest
    // handling code, and a child's referral.
    create(&th, liaison::record::examples::intelligence_report()).await;
    let mut broker = liaison::record::examples::entity();
    broker.id = "en-broker".into();
    if let Some(Body::Entity(e)) = broker.body.as_mut() {
        e.evidence_basis = "informant Qwertyuiop saw the transfer".into();
    }
    create(&th, broker).await;
    let mut red = liaison::record::examples::entity();
    red.id = "en-red-only".into();
    red.handling = pb::HandlingCode::Red as i32;
    create(&th, red).await;
    let referral = create(&th, common::child_referral()).await;
    let Some(Body::VictimReferral(v)) = &referral.body else { panic!("referral") };
    let victim = v.identity.as_ref().unwrap().full_name.clone();

    // Partner accounts name a pinned peer; no other account does.
    let refused = th.cli(&["user", "add", "cti-nobody", "--role", "partner"]);
    assert!(!refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("peer"));
    let refused = th.cli(&["user", "add", "cti-x", "--role", "integrator", "--peer", "kh-antht"]);
    assert!(!refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("peer"));
    let partner = th.cli_json(&["user", "add", "kh-cti", "--role", "partner", "--peer", "kh-antht"]);
    let token = partner["token"].as_str().unwrap().to_string();
    assert_eq!(partner["user"]["scopes"], serde_json::json!(["taxii"]));
    let cms = th.cli_json(&["user", "add", "cms", "--role", "integrator"]);
    let cms_token = cms["token"].as_str().unwrap().to_string();

    // The partner's platform, with the stock client, both ways of authenticating.
    let url = format!("http://{addr}/taxii2/");
    let seen = taxii2_client(py, &url, "kh-cti", &token, false);
    assert_eq!(taxii2_client(py, &url, "kh-cti", &token, true), seen);
    let collections: Vec<&String> = seen.as_object().unwrap().keys().collect();
    assert_eq!(collections, ["th-kh.investigation"], "one per agreement and purpose with STIX kinds");
    let objects = seen["th-kh.investigation"].as_array().unwrap();
    let text = serde_json::to_string(objects).unwrap();
    // The definitions the objects refer to (liaison's identity and
    // extension, TH's identity, the five TLP 2.0 markings), then one object
    // per record KH may receive: the report and the broker.
    let definitions = liaison::formats::stix::definitions("th-atpd").len();
    assert_eq!(objects.len(), definitions + 2, "{text}");
    assert_eq!(objects.iter().filter(|o| o["type"] == "report").count(), 1, "{text}");
    assert!(!text.contains("Qwertyuiop"), "a field the agreement withholds was served");
    assert!(!text.contains(&victim), "a victim's name was served");
    let reds = objects.iter().filter(|o| o["object_marking_refs"].to_string().contains("e828b379")).count();
    // (marking-definition--e828b379-… is TLP:RED)
    assert_eq!(reds, 0, "a record above the agreement's handling code was served");

    // Every page is audited as a release to KH, and KH is told of withdrawals.
    let audited = common::audit_entries(&th, "exchange.taxii.objects");
    assert!(!audited.is_empty() && audited.iter().all(|e| e["actor"] == "peer:kh-antht"), "{audited:?}");

    // Hostile callers.
    let objects_path = "/api1/collections/th-kh.investigation/objects/";
    assert_eq!(get(addr, objects_path, &[]).0, 401, "no token");
    assert_eq!(get(addr, objects_path, &[("Authorization", "Bearer guessed")]).0, 401);
    let basic_wrong_user =
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("someone-else:{token}")));
    assert_eq!(get(addr, objects_path, &[("Authorization", &basic_wrong_user)]).0, 401, "token of another user");
    assert_eq!(get(addr, objects_path, &[("Authorization", &bearer(&cms_token))]).0, 403, "not a partner account");
    let auth = bearer(&token);
    fn with<'a>(auth: &'a str, extra: Option<(&'a str, &'a str)>) -> Vec<(&'a str, &'a str)> {
        let mut h = vec![("Authorization", auth)];
        h.extend(extra);
        h
    }
    assert_eq!(get(addr, objects_path, &with(&auth, Some(("Accept", "text/html")))).0, 406);
    assert_eq!(get(addr, &format!("{objects_path}?next=zz"), &with(&auth, None)).0, 400);
    assert_eq!(get(addr, &format!("{objects_path}?limit=0"), &with(&auth, None)).0, 400);
    assert_eq!(get(addr, "/api1/collections/th-kh.coordination/objects/", &with(&auth, None)).0, 404, "no STIX kinds");
    assert_eq!(get(addr, "/api1/collections/other.investigation/", &with(&auth, None)).0, 404);
    let (status, body) = get(addr, &format!("{objects_path}?limit=1000"), &with(&auth, None));
    assert_eq!(status, 200);
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(page["more"], false);
    assert_eq!(page["objects"].as_array().map(Vec::len), Some(objects.len()), "paged and whole reads agree");

    // Revoked: the collection is gone, and nothing more is served.
    th.cli_ok(&["agreement", "revoke", "th-kh", "--reason", "ended"]);
    let (status, body) = get(addr, "/api1/collections/", &with(&auth, None));
    assert_eq!((status, body.contains("th-kh")), (200, false), "{body}");
    assert_eq!(get(addr, objects_path, &with(&auth, None)).0, 404);
    drop(kh);
}
