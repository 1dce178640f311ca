//! Outside clients: the Node.js example (examples/node, `@grpc/grpc-js` and
//! `@grpc/proto-loader` from npm, installed by `.ci/node-tools`) runs an
//! integrator's daily operations against two real nodes with a token the CLI
//! made for the integrator role.

mod common;

use std::process::Command;

use common::clients::{daily_operations, integrator_token};
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

    let (id, hit) = daily_operations(&out, ours, "node client ok");

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
