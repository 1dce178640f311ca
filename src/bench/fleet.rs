//! The nodes a benchmark runs: each a `liaison run` process of this very
//! binary, on 127.0.0.1 with its own keys, encrypted store and mutual TLS,
//! set up only through the local API, as an operator would.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cli::client::{connect_url, Authed};
use crate::config::{Intervals, Layout, LogFormat, NodeConfig, Role, Runtime};
use crate::limits::Limits;
use crate::pb;

/// A bilateral agreement with the grants the figures exercise: contact
/// points for coordination (query, sync, push), intelligence and entities
/// for investigation (query, hit check, push).
fn agreement(id: &str, a: &str, b: &str) -> String {
    format!(
        r#"
id = "{id}"
version = 1
title = "Benchmark MOU {id}"
legal_basis = "Benchmark (illustrative)"
parties = ["{a}", "{b}"]
valid_from = "2026-01-01"
valid_until = "2036-01-01"

[retention]
days = 365
purge_on_revoke = true

[sop]
name = "Benchmark SOP"

[[sop.request_types]]
name = "information_request"
ack_within = "24h"
answer_within = "7d"
urgent_ack_within = "8h"
urgent_answer_within = "3d"
escalation_role = "unit_head"

[[grants]]
from = "*"
to = "*"
record_kinds = ["contact_point"]
purposes = ["coordination"]
operations = ["query", "sync", "push"]
max_handling = "green"
onward_sharing = "allowed"

[[grants]]
from = "*"
to = "*"
record_kinds = ["intelligence_report", "entity"]
purposes = ["investigation"]
operations = ["query", "hit_check", "push"]
max_handling = "amber"
redacted_fields = ["entity.evidence_basis"]
onward_sharing = "with_consent"
"#
    )
}

/// One node process.
pub struct Proc {
    pub id: String,
    pub layout: Layout,
    child: Option<Child>,
    pub pid: u32,
    pub api: Authed,
}

impl Proc {
    pub fn records(&self) -> pb::record_service_client::RecordServiceClient<Authed> {
        pb::record_service_client::RecordServiceClient::new(self.api.clone()).max_decoding_message_size(64 << 20)
    }
    pub fn exchange(&self) -> pb::exchange_service_client::ExchangeServiceClient<Authed> {
        pb::exchange_service_client::ExchangeServiceClient::new(self.api.clone()).max_decoding_message_size(64 << 20)
    }
    pub fn node(&self) -> pb::node_service_client::NodeServiceClient<Authed> {
        pb::node_service_client::NodeServiceClient::new(self.api.clone())
    }
    pub fn peers(&self) -> pb::peer_service_client::PeerServiceClient<Authed> {
        pb::peer_service_client::PeerServiceClient::new(self.api.clone())
    }
    pub fn agreements(&self) -> pb::agreement_service_client::AgreementServiceClient<Authed> {
        pb::agreement_service_client::AgreementServiceClient::new(self.api.clone())
    }

    /// Resident memory (bytes) and CPU time used so far, from /proc.
    pub fn usage(&self) -> Option<(u64, Duration)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let rss_kb: u64 = status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).ok()?;
        // Fields after the command name (which may hold spaces) start at state.
        let rest = stat.rsplit_once(')')?.1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
        // Linux reports CPU time in USER_HZ, 100 per second on every
        // architecture it runs on.
        Some((rss_kb * 1024, Duration::from_millis(ticks * 10)))
    }
}

/// The benchmark's nodes, stopped (and their directory removed) on drop.
pub struct Fleet {
    pub root: PathBuf,
    exe: PathBuf,
    keep: bool,
    pub nodes: Vec<Proc>,
}

/// Limits high enough that the benchmark measures the node, not its
/// rate limiter (which `tests/limits.rs` covers).
fn bench_limits() -> Limits {
    Limits {
        peer_per_sec: 1e6,
        peer_burst: 1_000_000,
        token_per_sec: 1e6,
        token_burst: 1_000_000,
        max_calls_per_connection: 256,
        max_streams_per_connection: 256,
        ..Limits::default()
    }
}

impl Fleet {
    pub fn new(root: PathBuf, keep: bool) -> Result<Fleet, String> {
        std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
        let exe = std::env::current_exe().map_err(|e| format!("this program's path: {e}"))?;
        Ok(Fleet { root, exe, keep, nodes: Vec::new() })
    }

    /// Initialises and starts a node; returns its index.
    pub async fn add(&mut self, id: &str, country: &str) -> Result<usize, String> {
        let layout = Layout::new(self.root.join(id));
        let cfg = NodeConfig {
            id: id.into(),
            name: format!("Benchmark unit {id}"),
            organisation: "Benchmark".into(),
            country: country.into(),
            region: String::new(),
            role: Role::National,
            listen: ([127, 0, 0, 1], 0).into(),
            api: ([127, 0, 0, 1], 0).into(),
            endpoint: String::new(),
            log_format: LogFormat::Human,
            metrics: None,
            // Sync runs when a figure asks for it, not on a timer mid-phase.
            intervals: Intervals { sync_secs: 3600, ..Intervals::default() },
            limits: bench_limits(),
            storage: Some(crate::config::Storage::key_file(crate::config::STORE_KEY_FILE)),
            console: crate::config::Console { enabled: false, ..Default::default() },
            taxii: Default::default(),
        };
        crate::node::init(&layout, &cfg).map_err(|e| format!("{id}: {e}"))?;
        let (child, pid, api) = self.spawn(&layout).await?;
        self.nodes.push(Proc { id: id.into(), layout, child: Some(child), pid, api });
        Ok(self.nodes.len() - 1)
    }

    async fn spawn(&self, layout: &Layout) -> Result<(Child, u32, Authed), String> {
        let _ = std::fs::remove_file(layout.runtime());
        let log = std::fs::File::create(layout.dir.join("bench.log")).map_err(|e| e.to_string())?;
        let child = Command::new(&self.exe)
            .arg("--dir")
            .arg(&layout.dir)
            .arg("run")
            .env("LIAISON_LOG", std::env::var("LIAISON_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{}: {e}", self.exe.display()))?;
        let pid = child.id();
        let rt = wait(&format!("{} to start", layout.dir.display()), Duration::from_secs(120), || {
            std::fs::read_to_string(layout.runtime())
                .ok()
                .and_then(|t| toml::from_str::<Runtime>(&t).ok())
                .filter(|r| r.pid == pid)
        })
        .await?;
        let token = std::fs::read_to_string(layout.admin_token()).map_err(|e| e.to_string())?;
        let api = connect_url(&format!("http://{}", rt.api), token.trim()).await.map_err(|e| e.to_string())?;
        Ok((child, pid, api))
    }

    /// Stops node `i` (SIGTERM, as systemd does) and waits for it to exit.
    pub async fn stop(&mut self, i: usize) -> Result<(), String> {
        let p = self.nodes.get_mut(i).ok_or("no such node")?;
        if let Some(mut child) = p.child.take() {
            terminate(&mut child).await?;
        }
        Ok(())
    }

    /// Starts node `i` again and reconnects to its API.
    pub async fn restart(&mut self, i: usize) -> Result<(), String> {
        let layout = self.nodes.get(i).ok_or("no such node")?.layout.clone();
        let (child, pid, api) = self.spawn(&layout).await?;
        let p = self.nodes.get_mut(i).ok_or("no such node")?;
        (p.child, p.pid, p.api) = (Some(child), pid, api);
        Ok(())
    }

    /// Pins `a` and `b` to each other and activates a bilateral agreement.
    pub async fn pair(&self, a: usize, b: usize) -> Result<(), String> {
        let (x, y) = (&self.nodes[a], &self.nodes[b]);
        for (from, to) in [(x, y), (y, x)] {
            let card = to.node().get_card(pb::GetCardRequest {}).await.map_err(|e| e.to_string())?;
            from.peers()
                .add_peer(pb::AddPeerRequest { card: card.into_inner().envelope })
                .await
                .map_err(|e| format!("{}: pin {}: {}", from.id, to.id, e.message()))?;
        }
        let id = format!("bench-{}-{}", x.id, y.id);
        let toml = agreement(&id, &x.id, &y.id);
        x.agreements()
            .draft_agreement(pb::DraftAgreementRequest { toml })
            .await
            .map_err(|e| e.message().to_string())?;
        x.agreements()
            .propose_agreement(pb::ProposeAgreementRequest { id: id.clone(), version: 0 })
            .await
            .map_err(|e| format!("{}: propose {id}: {}", x.id, e.message()))?;
        // The proposal travels through x's outbox: y accepts once it has it.
        let what = format!("{id} to reach {}", y.id);
        wait_async(&what, Duration::from_secs(60), || async {
            y.agreements().accept_agreement(pb::AcceptAgreementRequest { id: id.clone(), version: 0 }).await.ok()
        })
        .await?;
        for n in [x, y] {
            wait_async(&format!("{id} active at {}", n.id), Duration::from_secs(60), || async {
                let r = n.agreements().get_agreement(pb::GetAgreementRequest { id: id.clone(), version: 0 }).await;
                r.ok().and_then(|r| r.into_inner().agreement).filter(|a| a.state == pb::AgreementState::Active as i32)
            })
            .await?;
        }
        Ok(())
    }

    /// Total size of a node's directory (store, keys, logs).
    pub fn disk(&self, i: usize) -> u64 {
        fn walk(p: &Path) -> u64 {
            std::fs::read_dir(p)
                .map(|d| {
                    d.filter_map(Result::ok)
                        .map(|e| match e.metadata() {
                            Ok(m) if m.is_dir() => walk(&e.path()),
                            Ok(m) => m.len(),
                            Err(_) => 0,
                        })
                        .sum()
                })
                .unwrap_or(0)
        }
        self.nodes.get(i).map_or(0, |p| walk(&p.layout.dir))
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for p in &mut self.nodes {
            if let Some(mut c) = p.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

async fn terminate(child: &mut Child) -> Result<(), String> {
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return Ok(());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err("a node did not stop within 30 s of SIGTERM".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls `f` until it answers, or fails after `limit`.
pub async fn wait<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> Result<T, String> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// [`wait`] for an asynchronous check.
pub async fn wait_async<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
