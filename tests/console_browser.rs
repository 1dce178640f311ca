//! The web console in a real headless browser (Debian's chromium driven by
//! playwright-core, both installed by `.ci/browser-tools`), against real
//! nodes with real mutual TLS. The scenario and its checks are in
//! `tests/console/browser.cjs`; this test starts and seeds the nodes, runs
//! it, and checks on the node what the browser did (the audit entry of an
//! identity view). `SCREENSHOTS=dir` keeps the screenshots (docs/console).

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;
use liaison::pb;
use liaison::record::examples;

const PASSWORD: &str = "a long console password";

fn passwd(n: &TestNode, user: &str) {
    let mut child = Command::new(BIN)
        .args(["--dir", &n.dir.display().to_string(), "user", "passwd", user])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{PASSWORD}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "passwd {user}: {}", String::from_utf8_lossy(&out.stderr));
}

fn console_of(n: &TestNode) -> String {
    let rt: liaison::config::Runtime =
        toml::from_str(&std::fs::read_to_string(n.dir.join("run.toml")).unwrap()).unwrap();
    format!("http://{}", rt.console.expect("the console serves"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_browser() {
    let tools = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/browser-tools"))
        .output()
        .expect("run .ci/browser-tools");
    assert!(tools.status.success(), "installing the browser tools failed:\n{}", String::from_utf8_lossy(&tools.stderr));

    let root = tempfile::tempdir().unwrap();
    let mut kh = TestNode::init(root.path(), "kh-antht", "KH");
    let mut vn = TestNode::init(root.path(), "vn-c02", "VN");
    // Deadlines are checked every second, so a request is overdue at once.
    configure(&kh, |c| c.intervals.deadline_secs = 1);
    kh.start();
    vn.start();
    pin_all(&[&kh, &vn]);
    let sop =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/agreements/kh-vn-victim-return.toml"))
            .unwrap();
    activate(&[&kh, &vn], &sop, "kh-vn-victim-return");
    let mou = bilateral("kh-vn-mou", "kh-antht", "vn-c02", 365, MOU_GRANTS)
        .replace("ack_within = \"24h\"", "ack_within = \"1s\"")
        .replace("urgent_ack_within = \"8h\"", "urgent_ack_within = \"1s\"");
    activate(&[&kh, &vn], &mou, "kh-vn-mou");

    kh.cli_ok(&["user", "add", "ana", "--role", "officer"]);
    kh.cli_ok(&["user", "add", "aud", "--role", "auditor"]);
    for u in ["ana", "aud", "admin"] {
        passwd(&kh, u);
    }

    // An overdue request from VN.
    let subject = "Recruiter network on the Bavet crossing";
    let id = send_information_request(&vn, "kh-antht", subject);
    wait_for(30, "the request overdue at KH", || {
        kh.cli_json(&["request", "list", "--overdue"])["requests"]
            .as_array()
            .is_some_and(|a| a.iter().any(|r| r["id"] == id.as_str()))
    });
    // An entity at VN that KH's identifier check hits.
    let entity = create(&vn, examples::entity()).await;
    let Some(pb::record::Body::Entity(e)) = &entity.body else { panic!("entity") };
    let hit_value = e.identifiers[0].value.clone();
    // A child's referral, shared and in a case that stops before return planning.
    let rec = create(&kh, child_referral()).await;
    kh.cli_ok(&["record", "share", &rec.id, "--to", "vn-c02", "--purpose", "victim_identification"]);
    wait_for_record(&vn, "kh-antht/vr-child-1");
    let opened = kh.cli_json(&["case", "open", &rec.id, "--with", "vn-c02"]);
    let case = opened["case"]["id"].as_str().unwrap().to_string();
    confirm_identification(&vn, &kh, &case);
    kh.cli_ok(&["case", "advance", &case, "--to", "assistance", "--note", "shelter and counselling"]);
    let Some(pb::record::Body::VictimReferral(v)) = &rec.body else { panic!("referral") };
    let full_name = v.identity.as_ref().unwrap().full_name.clone();

    // A regional hub both belong to (joined last: its membership MOU must not
    // be the agreement the requests above were sent under), with two countries' statistics (one
    // small enough to be suppressed) and one request for its indicators.
    let mut hub = TestNode::init_role(root.path(), "commit-hub", "COMMIT-Mekong", "hub");
    hub.start();
    for m in [&kh, &vn] {
        hub.cli_ok(&["hub", "admit", &m.card_file().display().to_string()]);
    }
    for m in [&kh, &vn] {
        m.cli_ok(&["hub", "join", &hub.card_file().display().to_string()]);
    }
    activate(&[&hub, &kh, &vn], &hub_membership("commit-hub", &["kh-antht", "vn-c02"]), "commit-membership");
    for (n, country, count) in [(&kh, "KH", 41u32), (&vn, "VN", 3)] {
        report_statistics(n, "commit-hub", country, count).await;
    }
    wait_for(30, "both reports at the hub", || {
        let md = hub.cli_ok(&["hub", "report", "--period", "2025"]);
        md.contains("| KH | 41 |") && md.contains("| VN | x |")
    });
    passwd(&hub, "admin");

    // A bulk import larger than one call to the node takes (1,000): 1,200
    // contact points and, last, one the node refuses.
    let import = root.path().join("import.jsonl");
    let mut lines = String::new();
    for i in 0..1201 {
        let mut cp = contact_point(&format!("cp-import-{i:04}"), &format!("Imported desk {i}"));
        if i == 1200 {
            if let Some(pb::record::Body::ContactPoint(c)) = cp.body.as_mut() {
                c.country = "Atlantis".into();
            }
        }
        lines.push_str(&serde_json::to_string(&cp).unwrap());
        lines.push('\n');
    }
    std::fs::write(&import, lines).unwrap();

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/console/browser.cjs");
    let out = Command::new("node")
        .arg(script)
        .env("CONSOLE", console_of(&kh))
        .env("PASSWORD", PASSWORD)
        .env("OVERDUE_SUBJECT", subject)
        .env("HIT_PEER", "vn-c02")
        .env("HIT_VALUE", &hit_value)
        .env("RECORD", format!("/records/kh-antht/{}", rec.id))
        .env("FULL_NAME", &full_name)
        .env("CASE", format!("/cases/{case}"))
        .env("AGREEMENT", "/agreements/kh-vn-mou")
        .env("HUB_CONSOLE", console_of(&hub))
        .env("IMPORT_FILE", &import)
        .output()
        .expect("run node");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    println!("{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "browser checks failed:\n{text}\n{}", String::from_utf8_lossy(&out.stderr));

    // What the browser did is on the node: the identity view with its reason,
    // and the acknowledgement.
    let views = audit_entries(&kh, "protected.view");
    assert!(
        views
            .iter()
            .any(|e| e["actor"] == "user:ana" && e["reason"].as_str().is_some_and(|r| r.contains("family tracing"))),
        "{views:?}"
    );
    assert_eq!(request_state(&kh, &id), "REQUEST_STATE_ACKNOWLEDGED");
    // The import stored what it said, as the officer who uploaded it.
    let listed =
        kh.cli_json(&["record", "list", "--kind", "contact_point", "--text", "imported desk", "--limit", "1000"]);
    let n = listed["records"].as_array().map_or(0, Vec::len);
    assert_eq!(n, 1000, "a full page of imported records");
    assert!(listed["nextPageToken"].as_str().is_some_and(|t| !t.is_empty()), "and more after it");
    // Failed sign-ins are counted on the audit log once their window ends.
    let _ = kh.stop();
    kh.start();
    let refused = audit_entries(&kh, "console.refused.sign_in");
    assert!(!refused.is_empty(), "the wrong password is audited");
    drop(vn);
    drop(hub);
}
