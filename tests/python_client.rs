//! An outside client: Python grpcio stubs generated from proto/ talk to a real node.

mod common;

use std::process::Command;

use common::TestNode;

#[test]
fn python_grpcio_client_creates_and_lists_a_contact_point() {
    let setup = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/setup_venv.sh"))
        .output()
        .expect("run setup_venv.sh");
    assert!(setup.status.success(), "venv setup failed:\n{}", String::from_utf8_lossy(&setup.stderr));
    let stdout = String::from_utf8_lossy(&setup.stdout);
    let python = stdout.lines().last().expect("python path").trim().to_string();
    let stubs = std::path::Path::new(&python).parent().unwrap().parent().unwrap().join("stubs");

    let root = tempfile::tempdir().unwrap();
    let mut node = TestNode::init(root.path(), "kh-antht", "KH");
    node.start();
    let out = Command::new(&python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/record_roundtrip.py"))
        .env("LIAISON_API", format!("http://{}", node.api))
        .env("LIAISON_TOKEN", &node.token)
        .env("LIAISON_STUBS", &stubs)
        .output()
        .expect("run python client");
    assert!(
        out.status.success(),
        "python client failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("python round trip ok"));
    // The node really holds what Python wrote.
    let shown = node.cli_json(&["record", "show", "cp-python-1"]);
    assert_eq!(shown["record"]["contactPoint"]["name"], "Python Integrator Desk");
}
