//! grpcurl, installed from PyPI by tests/tools/install_grpcurl.sh, works
//! against a node exactly as docs/INTEGRATION.md shows: reflection, health,
//! tokens, JSON in and out, and clear errors.

mod common;

use std::process::{Command, Output};

use common::TestNode;

fn grpcurl() -> String {
    let out = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/install_grpcurl.sh"))
        .output()
        .expect("run install_grpcurl.sh");
    assert!(out.status.success(), "grpcurl install failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().last().expect("grpcurl path").trim().to_string()
}

fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(bin).args(args).output().expect("run grpcurl")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn grpcurl_lists_describes_and_calls_the_local_api() {
    let bin = grpcurl();
    let root = tempfile::tempdir().unwrap();
    let mut node = TestNode::init(root.path(), "th-atpd", "TH");
    node.start();
    let api = node.api.to_string();
    let auth = format!("authorization: Bearer {}", node.token);

    // Reflection: no .proto files needed.
    let list = run(&bin, &["-plaintext", &api, "list"]);
    assert!(list.status.success(), "{}", text(&list));
    for svc in ["liaison.v1.RecordService", "liaison.v1.ExchangeService", "grpc.health.v1.Health"] {
        assert!(text(&list).contains(svc), "{svc} in {}", text(&list));
    }
    let describe = run(&bin, &["-plaintext", &api, "describe", "liaison.v1.RecordService.CreateRecord"]);
    assert!(text(&describe).contains("CreateRecordRequest"), "{}", text(&describe));
    let health = run(&bin, &["-plaintext", &api, "grpc.health.v1.Health/Check"]);
    assert!(text(&health).contains("SERVING"), "{}", text(&health));

    // A call with a token and a JSON body, then a listing.
    let body =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/examples/contact-point.json")).unwrap();
    let req = format!("{{\"record\": {body}}}");
    let created = run(&bin, &["-plaintext", "-H", &auth, "-d", &req, &api, "liaison.v1.RecordService/CreateRecord"]);
    assert!(created.status.success(), "{}", text(&created));
    assert!(text(&created).contains("\"version\": \"1\""), "{}", text(&created));
    let listed = run(
        &bin,
        &[
            "-plaintext",
            "-H",
            &auth,
            "-d",
            r#"{"kind": "RECORD_KIND_CONTACT_POINT"}"#,
            &api,
            "liaison.v1.RecordService/ListRecords",
        ],
    );
    assert!(text(&listed).contains("ATPD duty officer"), "{}", text(&listed));

    // No token: Unauthenticated. Bad input: InvalidArgument naming the field.
    let anon = run(&bin, &["-plaintext", &api, "liaison.v1.RecordService/ListRecords"]);
    assert!(!anon.status.success() && text(&anon).contains("Unauthenticated"), "{}", text(&anon));
    let bad = run(
        &bin,
        &[
            "-plaintext",
            "-H",
            &auth,
            "-d",
            r#"{"record": {"id": "cp-x", "handling": "HANDLING_CODE_GREEN", "contactPoint": {"name": "x"}}}"#,
            &api,
            "liaison.v1.RecordService/CreateRecord",
        ],
    );
    assert!(!bad.status.success() && text(&bad).contains("InvalidArgument"), "{}", text(&bad));
    assert!(text(&bad).contains("record.contact_point"), "{}", text(&bad));

    // The federation port refuses a client without a pinned certificate at the handshake.
    let fed = node.fed.to_string();
    let refused = run(&bin, &["-insecure", "-max-time", "5", &fed, "list"]);
    assert!(!refused.status.success(), "an unpinned client got through: {}", text(&refused));
}
