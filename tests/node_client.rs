//! Outside clients: the Node.js example (examples/node, `@grpc/grpc-js` and
//! `@grpc/proto-loader` from npm, installed by `.ci/node-tools`) runs an
//! integrator's daily operations against two real nodes with a token the CLI
//! made for the integrator role.

mod common;

use std::process::Command;

use common::{create, wait_for, TestNode};
use liaison::record::examples;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// `.ci/node-tools`: node, npm and the pinned packages (does nothing when present).
fn node_tools() {
    let out = Command::new("sh").arg(format!("{ROOT}/.ci/node-tools")).output().expect("run .ci/node-tools");
    assert!(
        out.status.success(),
        ".ci/node-tools failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A user with the integrator role, made through the CLI; its token.
fn integrator_token(node: &TestNode, name: &str) -> String {
    let created = node.cli_json(&["user", "add", name, "--role", "integrator"]);
    assert_eq!(created["user"]["role"], "USER_ROLE_INTEGRATOR", "{created}");
    let token = created["token"].as_str().expect("the token, printed once").to_string();
    assert_ne!(token, node.token, "not the admin token");
    token
}

fn run_node(node: &TestNode, token: &str, args: &[&str]) -> String {
    let out = Command::new("node")
        .arg(format!("{ROOT}/examples/node/liaison_client.js"))
        .args(args)
        .env("LIAISON_API", format!("http://{}", node.api))
        .env("LIAISON_TOKEN", token)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "examples/node/liaison_client.js failed:\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The text after `prefix` on the first output line that starts with it.
fn line_after<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.trim_start().strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_example_imports_retries_queries_checks_requests_and_follows_changes_as_an_integrator() {
    node_tools();
    let root = tempfile::tempdir().unwrap();
    // The MOU lets contact points be queried for coordination, entities be
    // hit-checked for investigation, and defines the information_request type.
    let (th, kh) = common::th_kh_under_mou(root.path());
    create(&kh, common::contact_point("cp-kh-duty", "AHTJP duty desk")).await;
    create(&kh, examples::entity()).await; // passport N0123456
    let token = integrator_token(&th, "case-system-js");

    let out = run_node(
        &th,
        &token,
        &[
            "--peer",
            "kh-antht",
            "--text",
            "duty",
            "--identifier",
            "passport:n0123-456",
            "--identifier",
            "passport:X9999999",
            "--purpose",
            "investigation",
            "--request-type",
            "information_request",
            "--subject",
            "Recruiter holding passport N0123456",
        ],
    );
    let ours = ["cp-js-udonthani", "cp-js-nongkhai", "cp-js-mukdahan"];

    // Import, and the retry with the same request_id answered from the first call.
    assert!(out.contains("imported 3 of 4"), "{out}");
    assert!(out.contains("problem in record 3: record.contact_point.country"), "{out}");
    let ids: Vec<&str> = line_after(&out, "retry answered the same: stored 3, ids ").split(", ").collect();
    assert_eq!(ids.len(), 3, "{out}");
    for (got, want) in ids.iter().zip(ours) {
        assert!(got.ends_with(want), "stored_ids in request order: {ids:?}");
    }

    // Query, hit/no-hit (normalised on both sides), request citing the hit.
    assert!(out.contains("query kh-antht: PEER_OUTCOME_ANSWERED 1 record(s)"), "{out}");
    assert!(out.contains("kh-antht/cp-kh-duty: AHTJP duty desk"), "{out}");
    assert!(out.contains("check kh-antht: PEER_OUTCOME_ANSWERED"), "{out}");
    let hit = line_after(&out, "passport:N0123456: hit, reference ").trim().to_string();
    assert!(hit.starts_with("hit-"), "{out}");
    assert!(out.contains("passport:X9999999: no hit"), "{out}");
    assert!(!out.contains("Sok Dara"), "no record content crosses in a hit check: {out}");
    let sent = line_after(&out, "request ");
    let (id, rest) = sent.split_once(": ").unwrap_or_else(|| panic!("request line: {sent}"));
    assert_eq!(rest, "REQUEST_STATE_SUBMITTED (information_request to kh-antht)", "{out}");

    // The feed showed each record created; the client finished.
    for rid in ours {
        assert!(out.contains(&format!("CHANGE_TYPE_RECORD_CREATED th-atpd/{rid}")), "watch saw {rid}: {out}");
    }
    assert!(out.contains("node client ok"), "{out}");

    // The asking node holds the three good records once each: the retry stored nothing.
    let listed = th.cli_json(&["record", "list", "--kind", "contact_point", "--text", "task force"]);
    let held: Vec<String> = listed["records"]
        .as_array()
        .map_or(vec![], |a| a.iter().map(|r| r["id"].as_str().unwrap_or_default().to_string()).collect());
    assert_eq!(held.len(), 3, "three records, not six and not the bad one: {listed}");
    for rid in ours {
        assert!(held.iter().any(|h| h.ends_with(rid)), "{rid} held: {held:?}");
        let shown = th.cli_json(&["record", "show", rid]);
        assert_eq!(shown["record"]["version"], "1", "{rid} written once: {shown}");
    }
    let feed = th.cli_ok(&["watch"]);
    let created = feed
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|c| c["change"]["type"] == "CHANGE_TYPE_RECORD_CREATED")
        .filter(|c| c["change"]["recordKey"].as_str().is_some_and(|k| k.contains("/cp-js-")))
        .count();
    assert_eq!(created, 3, "one creation per record in the change feed:\n{feed}");

    // TH sent the request once; it reached KH with the hit reference it cites.
    let sent_by_th = th.cli_json(&["request", "list"]);
    let th_ids: Vec<&str> =
        sent_by_th["requests"].as_array().map_or(vec![], |a| a.iter().filter_map(|r| r["id"].as_str()).collect());
    assert_eq!(th_ids, vec![id], "{sent_by_th}");
    wait_for(30, "the request in KH's inbox", || {
        kh.cli_json(&["inbox"])["requests"].as_array().is_some_and(|a| a.iter().any(|r| r["id"].as_str() == Some(id)))
    });
    let at_kh = kh.cli_json(&["request", "show", id]);
    assert_eq!(at_kh["state"], "REQUEST_STATE_SUBMITTED", "{at_kh}");
    assert_eq!(at_kh["header"]["fromNode"], "th-atpd", "{at_kh}");
    assert_eq!(at_kh["header"]["requestType"], "information_request", "{at_kh}");
    assert_eq!(at_kh["header"]["purpose"], "PURPOSE_INVESTIGATION", "{at_kh}");
    assert_eq!(at_kh["header"]["subject"], "Recruiter holding passport N0123456", "{at_kh}");
    assert_eq!(at_kh["header"]["refs"], serde_json::json!([hit]), "{at_kh}");
}
