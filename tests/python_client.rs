//! Outside clients: Python grpcio stubs generated from proto/ talk to real nodes.

mod common;

use std::process::Command;
use std::sync::OnceLock;

use common::{create, TestNode};

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

fn run_python(script: &str, node: &TestNode, args: &[&str]) -> String {
    let (python, stubs) = python();
    let out = Command::new(python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/").to_string() + script)
        .args(args)
        .env("LIAISON_API", format!("http://{}", node.api))
        .env("LIAISON_TOKEN", &node.token)
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
    let out = run_python("tests/python/record_roundtrip.py", &node, &[]);
    assert!(out.contains("python round trip ok"));
    // The node really holds what Python wrote.
    let shown = node.cli_json(&["record", "show", "cp-python-1"]);
    assert_eq!(shown["record"]["contactPoint"]["name"], "Python Integrator Desk");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_example_imports_queries_a_peer_and_follows_changes() {
    let root = tempfile::tempdir().unwrap();
    let (th, kh) = common::th_kh_under_mou(root.path());
    create(&kh, common::contact_point("cp-kh-duty", "AHTJP duty desk")).await;

    let out = run_python("examples/python/liaison_client.py", &th, &["--peer", "kh-antht", "--text", "duty"]);
    assert!(out.contains("imported 3 of 4"), "{out}");
    assert!(out.contains("problem in record 3: record.contact_point.country"), "{out}");
    assert!(out.contains("query kh-antht: PEER_OUTCOME_ANSWERED 1 record(s)"), "{out}");
    assert!(out.contains("kh-antht/cp-kh-duty: AHTJP duty desk"), "{out}");
    for id in ["cp-py-chiangmai", "cp-py-maesai", "cp-py-tak"] {
        assert!(out.contains(&format!("CHANGE_TYPE_RECORD_CREATED th-atpd/{id}")), "watch saw {id}: {out}");
    }
    assert!(out.contains("python client ok"));
    let listed = th.cli_json(&["record", "list", "--text", "task force"]);
    assert_eq!(
        listed["records"].as_array().map_or(0, |a| a.len()),
        3,
        "the three good records, not the bad one: {listed}"
    );
}
