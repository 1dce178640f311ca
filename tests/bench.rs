//! The benchmark suite's short mode, as CI runs it: every figure is
//! measured on real nodes over mutual TLS, beside the echo baseline, and
//! reported with its target. Nothing here asserts a time: the figures of a
//! debug build on a shared CI machine mean nothing; that each one ran,
//! answered correctly and was compared does.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_liaison");

const FIGURES: &[&str] = &[
    "get_record",
    "list_filtered",
    "create_record",
    "query_single",
    "query_fanout",
    "share",
    "sync_full",
    "sync_empty",
    "import",
    "hit_check",
    "idle_rss",
    "idle_cpu",
    "cold_start",
    "cold_status",
];

/// Figures measured as request/response load beside the echo.
const AGAINST_ECHO: &[&str] =
    &["get_record", "list_filtered", "create_record", "query_single", "query_fanout", "hit_check"];

#[test]
fn short_mode_reports_every_figure_against_the_echo() {
    let root = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["--json", "bench", "--short", "--root"])
        .arg(root.path().join("bench"))
        .output()
        .expect("run liaison bench");
    assert!(
        out.status.success(),
        "bench failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json prints one JSON report");
    assert_eq!(report["mode"], "short");
    let echo = &report["echo"];
    assert!(echo["value"].as_f64().unwrap() > 0.0, "the echo answered: {echo}");
    assert_eq!(echo["errors"], 0, "{echo}");

    let figures = report["figures"].as_array().unwrap();
    let ids: Vec<&str> = figures.iter().map(|f| f["id"].as_str().unwrap()).collect();
    assert_eq!(ids, FIGURES, "every figure, in order");
    for f in figures {
        let id = f["id"].as_str().unwrap();
        // Each load phase checks what it gets back (hits where expected,
        // every contact point synced, 50 records an answer): no errors.
        assert_eq!(f["errors"], 0, "{id}: {f}");
        let value = f["value"].as_f64().unwrap();
        assert!(value.is_finite() && value >= 0.0, "{id}: {f}");
        assert!(!f["target"].as_str().unwrap().is_empty(), "{id} names its target");
        if AGAINST_ECHO.contains(&id) {
            assert!(value > 0.0, "{id} made calls: {f}");
            let ratio = f["of_echo"].as_f64().unwrap_or_else(|| panic!("{id} is compared with the echo: {f}"));
            assert!(ratio > 0.0, "{id}: {f}");
            assert!(f["p99_ms"].as_f64().unwrap() >= f["p50_ms"].as_f64().unwrap(), "{id}: {f}");
        }
        if f["target"] != "reference" {
            assert!(f["met"].is_boolean(), "{id} says whether its target is met: {f}");
        }
    }
    // The node directories were kept where asked, with each node's log.
    assert!(root.path().join("bench/hh-hits/bench.log").exists());
}
