//! deploy/scenario.sh starts a scenario as one background process per node,
//! sets it up through the nodes' APIs, and stops every process again.

use std::net::TcpListener;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_liaison");
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/scenario.sh");

/// Four consecutive free ports below the ephemeral range (two nodes, two ports each).
fn free_block() -> u16 {
    let start = 33_000 - (std::process::id() % 500) as u16 * 8;
    (0..400u16)
        .map(|i| start - i * 8)
        .find(|b| (0..4).all(|o| TcpListener::bind(("127.0.0.1", b + o)).is_ok()))
        .expect("four free ports")
}

fn script(args: &[&str], base: u16) -> std::process::Output {
    Command::new("bash")
        .arg(SCRIPT)
        .args(args)
        .env("LIAISON", BIN)
        .env("BASE_PORT", base.to_string())
        .output()
        .expect("run deploy/scenario.sh")
}

fn pid_alive(pid: &str) -> bool {
    Command::new("bash").args(["-c", &format!("kill -0 {pid}")]).status().is_ok_and(|s| s.success())
}

#[test]
fn the_script_starts_a_scenario_as_processes_and_stops_it() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("fed");
    let dir_s = dir.display().to_string();
    let base = free_block();
    let out = script(&["start", "kh-vn", &dir_s], base);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "start failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("kh-vn-victim-return") && stdout.contains("signed by all 2 parties, active"), "{stdout}");

    // Each node is its own process, on the ports the script was given.
    let pids: Vec<String> = ["kh-antht", "vn-c02"]
        .iter()
        .map(|n| std::fs::read_to_string(dir.join(n).join("node.pid")).unwrap().trim().to_string())
        .collect();
    assert_ne!(pids[0], pids[1]);
    assert!(pids.iter().all(|p| pid_alive(p)));
    let cfg = std::fs::read_to_string(dir.join("vn-c02").join("node.toml")).unwrap();
    assert!(cfg.contains(&format!("127.0.0.1:{}", base + 3)), "{cfg}");

    // They are set up: the agreement is active and VN holds the focal point KH can escalate to.
    let show = Command::new(BIN)
        .args(["--dir", &dir.join("kh-antht").display().to_string(), "--json", "agreement", "list"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&show.stdout).contains("AGREEMENT_STATE_ACTIVE"));
    let peers = Command::new(BIN)
        .args(["--dir", &dir.join("vn-c02").display().to_string(), "peer", "ping", "kh-antht"])
        .output()
        .unwrap();
    assert!(peers.status.success(), "mutual TLS between the processes: {}", String::from_utf8_lossy(&peers.stderr));
    let status = script(&["status", &dir_s], base);
    assert!(String::from_utf8_lossy(&status.stdout).contains("== vn-c02"));

    let out = script(&["stop", &dir_s], base);
    assert!(out.status.success(), "stop failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(pids.iter().all(|p| !pid_alive(p)), "every node process stopped");
    assert!(!dir.join("kh-antht").join("run.toml").exists(), "clean shutdown");
}
