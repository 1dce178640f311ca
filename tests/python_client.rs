//! Outside clients: Python grpcio stubs generated from proto/ talk to real
//! nodes, with tokens the CLI made for the integrator role.

mod common;

use std::process::Command;
use std::sync::OnceLock;

use common::clients::{daily_operations, integrator_token};
use common::{create, wait_for, TestNode};
use liaison::record::examples;

/// The venv's python, set up once for every test here (examples/python/setup.sh).
fn python() -> &'static (String, String) {
    static PY: OnceLock<(String, String)> = OnceLock::new();
    PY.get_or_init(|| {
        let setup = Command::new("bash")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/python/setup.sh"))
            .output()
            .expect("run examples/python/setup.sh");
        assert!(setup.status.success(), "venv setup failed:\n{}", String::from_utf8_lossy(&setup.stderr));
        let stdout = String::from_utf8_lossy(&setup.stdout);
        let python = stdout.lines().last().expect("python path").trim().to_string();
        let stubs = std::path::Path::new(&python).parent().unwrap().parent().unwrap().join("stubs");
        (python, stubs.display().to_string())
    })
}

fn run_python(script: &str, node: &TestNode, token: &str, args: &[&str]) -> String {
    let (python, stubs) = python();
    let out = Command::new(python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/").to_string() + script)
        .args(args)
        .env("LIAISON_API", format!("http://{}", node.api))
        .env("LIAISON_TOKEN", token)
        .env("LIAISON_STUBS", stubs)
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{script} failed:\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn python_grpcio_client_creates_and_lists_a_contact_point() {
    let root = tempfile::tempdir().unwrap();
    let mut node = TestNode::init(root.path(), "kh-antht", "KH");
    node.start();
    let token = integrator_token(&node, "python-integrator");
    let out = run_python("tests/python/record_roundtrip.py", &node, &token, &[]);
    assert!(out.contains("python round trip ok"));
    // The node really holds what Python wrote.
    let shown = node.cli_json(&["record", "show", "cp-python-1"]);
    assert_eq!(shown["record"]["contactPoint"]["name"], "Python Integrator Desk");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_example_imports_retries_queries_checks_requests_and_follows_changes_as_an_integrator() {
    let root = tempfile::tempdir().unwrap();
    // The MOU lets contact points be queried for coordination, entities be
    // hit-checked for investigation, and defines the information_request type.
    let (th, kh) = common::th_kh_under_mou(root.path());
    create(&kh, common::contact_point("cp-kh-duty", "AHTJP duty desk")).await;
    create(&kh, examples::entity()).await; // passport N0123456
    let token = integrator_token(&th, "case-system-py");

    let out = run_python(
        "examples/python/liaison_client.py",
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
            "--subject",
            "Recruiter holding passport N0123456",
        ],
    );
    let ours = ["cp-py-chiangmai", "cp-py-maesai", "cp-py-tak"];

    let (id, hit) = daily_operations(&out, ours, "python client ok");

    // The three good records, once each: not the bad one, and the retry stored nothing.
    let listed = th.cli_json(&["record", "list", "--text", "task force"]);
    assert_eq!(
        listed["records"].as_array().map_or(0, |a| a.len()),
        3,
        "the three good records, not the bad one and not twice: {listed}"
    );
    for rid in ours {
        assert_eq!(th.cli_json(&["record", "show", rid])["record"]["version"], "1", "{rid} written once");
    }

    // The request reached KH, citing the hit.
    wait_for(30, "the request in KH's inbox", || {
        kh.cli_json(&["inbox"])["requests"].as_array().is_some_and(|a| a.iter().any(|r| r["id"].as_str() == Some(id)))
    });
    let at_kh = kh.cli_json(&["request", "show", id]);
    assert_eq!(at_kh["header"]["fromNode"], "th-atpd", "{at_kh}");
    assert_eq!(at_kh["header"]["requestType"], "information_request", "{at_kh}");
    assert_eq!(at_kh["header"]["purpose"], "PURPOSE_INVESTIGATION", "{at_kh}");
    assert_eq!(at_kh["header"]["refs"], serde_json::json!([hit]), "{at_kh}");
}
