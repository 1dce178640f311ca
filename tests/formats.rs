//! The field's own formats, checked by their own reference tools (installed
//! from PyPI by `tests/tools/formats_venv.sh`): STIX 2.1 bundles pass the
//! OASIS `stix2-validator`, FollowTheMoney entities load in `followthemoney`,
//! MISP events load in `pymisp`; and what one node exports in them another
//! imports back, with bad documents refused by path.

mod common;

use std::path::Path;
use std::process::Command;

use common::{create, TestNode};
use liaison::pb::record::Body;

fn python() -> &'static str {
    common::formats_python()
}

/// Runs `formats_check.py KIND FILE`; panics with the tool's complaint.
fn check(kind: &str, file: &Path) {
    let out = Command::new(python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/formats_check.py"))
        .arg(kind)
        .arg(file)
        .output()
        .expect("run formats_check.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(&format!("formats ok: {kind}")),
        "{kind} check of {} failed:\n{stdout}\n{}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn seed(node: &TestNode) -> String {
    create(node, liaison::record::examples::intelligence_report()).await;
    let mut broker = liaison::record::examples::entity();
    broker.id = "en-broker-sok".into();
    create(node, broker).await;
    let referral = create(node, common::child_referral()).await;
    match referral.body {
        Some(Body::VictimReferral(v)) => v.identity.map(|i| i.full_name).unwrap_or_default(),
        _ => String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_pass_the_reference_tools_and_import_back_elsewhere() {
    let root = tempfile::tempdir().unwrap();
    let mut th = TestNode::init(root.path(), "th-atpd", "TH");
    let mut kh = TestNode::init(root.path(), "kh-antht", "KH");
    th.start();
    kh.start();
    let victim = seed(&th).await;
    assert!(!victim.is_empty(), "the example referral names its victim");

    let dir = root.path();
    let stix = dir.join("bundle.json");
    th.cli_ok(&["export", "--format", "stix", "--out", stix.to_str().unwrap()]);
    check("stix", &stix);
    let ftm = dir.join("entities.jsonl");
    th.cli_ok(&["export", "--format", "ftm", "--out", ftm.to_str().unwrap()]);
    check("ftm", &ftm);
    let misp = dir.join("events.jsonl");
    th.cli_ok(&["export", "--format", "misp", "--out", misp.to_str().unwrap()]);
    let events = std::fs::read_to_string(&misp).unwrap();
    assert_eq!(events.lines().count(), 1, "one event per intelligence report");
    let event = dir.join("event.json");
    std::fs::write(&event, events.lines().next().unwrap()).unwrap();
    check("misp", &event);
    // No export carries a victim referral.
    for f in [&stix, &ftm, &misp] {
        let text = std::fs::read_to_string(f).unwrap();
        assert!(!text.contains(&victim), "{} holds the victim's name", f.display());
        assert!(!text.contains("vr-child-1"), "{} holds the referral", f.display());
    }

    // Another node imports each format as its own records.
    let out = kh.cli_json(&["import", "--format", "stix", stix.to_str().unwrap()]);
    assert_eq!(out["stored"], 2, "a report and an entity: {out}");
    let out = kh.cli_json(&["import", "--format", "ftm", ftm.to_str().unwrap()]);
    assert_eq!(out["stored"], 1, "{out}");
    let out = kh.cli_json(&["import", "--format", "misp", misp.to_str().unwrap()]);
    assert_eq!(out["stored"], 1, "{out}");
    let listed = kh.cli_json(&["record", "list", "--kind", "intelligence_report"]);
    let ids: Vec<&str> = listed["records"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert!(ids.iter().any(|i| i.starts_with("stix-")) && ids.iter().any(|i| i.starts_with("misp-")), "{ids:?}");

    // A bundle whose report lost its name is refused whole, by path.
    let mut bundle: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&stix).unwrap()).unwrap();
    let objects = bundle["objects"].as_array_mut().unwrap();
    let at = objects.iter().position(|o| o["type"] == "report").unwrap();
    objects[at].as_object_mut().unwrap().remove("name");
    let bad = dir.join("bad.json");
    std::fs::write(&bad, bundle.to_string()).unwrap();
    let out = kh.cli(&["--json", "import", "--format", "stix", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["stored"], 0, "{report}");
    assert_eq!(report["problems"][0]["field"], format!("objects[{at}].name"), "{report}");
}
