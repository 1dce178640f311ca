//! `liaison demo`: a scenario's federation on this machine. Every node is a
//! real server (in this process, or separate `liaison run` processes with
//! `--attach`) on 127.0.0.1 with its own keys, store and mutual TLS; the
//! walk-through drives them only through their local gRPC APIs, exactly as
//! an officer's CLI would.

/// Like `println!`, but a closed stdout (`liaison demo | head`) must not
/// panic: the nodes still have to be stopped and the directory removed.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

pub mod narrate;
pub mod scenario;
mod walk;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::cli::client::{connect_url, Authed};
use crate::clock::ShiftedClock;
use crate::config::{Intervals, Layout, LogFormat, NodeConfig, Role, Runtime};
use crate::pb;
use narrate::Narrator;
use scenario::{NodeSpec, Scenario, ScenarioError};

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    #[error("{0}")]
    Setup(String),
    #[error("{what}: {code:?}: {message}")]
    Rpc { what: String, code: tonic::Code, message: String },
    #[error("timed out waiting for {0}")]
    Timeout(String),
    #[error("interrupted; the nodes were stopped")]
    Interrupted,
}

pub fn rpc(what: impl Into<String>) -> impl FnOnce(tonic::Status) -> DemoError {
    let what = what.into();
    move |s| DemoError::Rpc { what, code: s.code(), message: s.message().to_string() }
}

/// What `liaison demo` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    pub scenario: String,
    /// Where the nodes' directories go (default: a fresh temporary directory).
    pub root: Option<PathBuf>,
    /// Stop after the walk-through instead of waiting for Ctrl-C.
    pub exit: bool,
    /// Only write the node directories (fixed ports from `base_port`), for
    /// `deploy/scenario.sh`, which then starts each node as its own process.
    pub prepare: bool,
    /// The nodes are already running (started by `deploy/scenario.sh`): set
    /// up peering, agreements and records, then stop.
    pub attach: bool,
    pub base_port: u16,
}

/// A node of the running federation, as its API sees it.
pub struct Member {
    pub spec: NodeSpec,
    pub dir: PathBuf,
    pub api: String,
    pub federation: String,
    pub channel: Authed,
    /// The web console's address, when it serves.
    pub console: Option<std::net::SocketAddr>,
}

impl Member {
    pub fn records(&self) -> pb::record_service_client::RecordServiceClient<Authed> {
        pb::record_service_client::RecordServiceClient::new(self.channel.clone())
    }
    pub fn peers(&self) -> pb::peer_service_client::PeerServiceClient<Authed> {
        pb::peer_service_client::PeerServiceClient::new(self.channel.clone())
    }
    pub fn node(&self) -> pb::node_service_client::NodeServiceClient<Authed> {
        pb::node_service_client::NodeServiceClient::new(self.channel.clone())
    }
    pub fn agreements(&self) -> pb::agreement_service_client::AgreementServiceClient<Authed> {
        pb::agreement_service_client::AgreementServiceClient::new(self.channel.clone())
    }
    pub fn exchange(&self) -> pb::exchange_service_client::ExchangeServiceClient<Authed> {
        pb::exchange_service_client::ExchangeServiceClient::new(self.channel.clone())
    }
    pub fn requests(&self) -> pb::request_service_client::RequestServiceClient<Authed> {
        pb::request_service_client::RequestServiceClient::new(self.channel.clone())
    }
    pub fn cases(&self) -> pb::victim_case_service_client::VictimCaseServiceClient<Authed> {
        pb::victim_case_service_client::VictimCaseServiceClient::new(self.channel.clone())
    }
    pub fn hub(&self) -> pb::hub_service_client::HubServiceClient<Authed> {
        pb::hub_service_client::HubServiceClient::new(self.channel.clone())
    }
    pub fn audit(&self) -> pb::audit_service_client::AuditServiceClient<Authed> {
        pb::audit_service_client::AuditServiceClient::new(self.channel.clone())
    }
}

pub struct Federation {
    pub scenario: Scenario,
    pub members: Vec<Member>,
    /// The shared clock of in-process nodes (`None` when attached to processes).
    pub clock: Option<ShiftedClock>,
}

impl Federation {
    pub fn member(&self, id: &str) -> Result<&Member, DemoError> {
        self.members.iter().find(|m| m.spec.id == id).ok_or_else(|| DemoError::Setup(format!("no node {id}")))
    }
}

/// Polls `f` until it yields a value or `secs` pass.
pub async fn until<T, F, Fut>(what: &str, secs: u64, mut f: F) -> Result<T, DemoError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(DemoError::Timeout(what.into()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn role(s: &str) -> Role {
    match s {
        "hub" => Role::Hub,
        "partner" => Role::Partner,
        _ => Role::National,
    }
}

fn config(spec: &NodeSpec, listen: u16, api: u16, intervals: Intervals) -> NodeConfig {
    NodeConfig {
        id: spec.id.clone(),
        name: spec.name.clone(),
        organisation: spec.organisation.clone(),
        country: spec.country.clone(),
        region: spec.region.clone(),
        role: role(&spec.role),
        listen: ([127, 0, 0, 1], listen).into(),
        api: ([127, 0, 0, 1], api).into(),
        endpoint: String::new(),
        log_format: LogFormat::Human,
        metrics: None,
        intervals,
        limits: Default::default(),
        storage: Some(crate::config::Storage::key_file(crate::config::STORE_KEY_FILE)),
        // Any free port: the demo prints where each console is.
        console: crate::config::Console { listen: ([127, 0, 0, 1], 0).into(), ..Default::default() },
        taxii: Default::default(),
    }
}

/// Writes every node's directory. Ports are fixed from `base_port` (two per
/// node) for separate processes, or 0 (any free port) for in-process nodes.
fn init_nodes(s: &Scenario, root: &Path, base_port: Option<u16>, intervals: &Intervals) -> Result<(), DemoError> {
    std::fs::create_dir_all(root).map_err(|e| DemoError::Setup(format!("{}: {e}", root.display())))?;
    for (i, spec) in s.nodes.iter().enumerate() {
        let (listen, api) = match base_port {
            Some(b) => {
                let p = u16::try_from(i * 2).ok().and_then(|o| b.checked_add(o)).unwrap_or(0);
                (p, p.saturating_add(1))
            }
            None => (0, 0),
        };
        let layout = Layout::new(root.join(&spec.id));
        crate::node::init(&layout, &config(spec, listen, api, intervals.clone()))
            .map_err(|e| DemoError::Setup(format!("{}: {e}", spec.id)))?;
    }
    Ok(())
}

/// Connects to every node of the scenario under `root` once its API is up.
async fn connect_all(s: &Scenario, root: &Path, wait_secs: u64) -> Result<Vec<Member>, DemoError> {
    let mut out = Vec::new();
    for spec in &s.nodes {
        let dir = root.join(&spec.id);
        let layout = Layout::new(&dir);
        let rt = until(&format!("{} to start", spec.id), wait_secs, || async {
            std::fs::read_to_string(layout.runtime()).ok().and_then(|t| toml::from_str::<Runtime>(&t).ok())
        })
        .await?;
        let token = std::fs::read_to_string(layout.admin_token())
            .map_err(|e| DemoError::Setup(format!("{}: {e}", layout.admin_token().display())))?;
        let api = format!("http://{}", rt.api);
        let channel = connect_url(&api, token.trim()).await.map_err(|e| DemoError::Setup(e.to_string()))?;
        out.push(Member {
            spec: spec.clone(),
            dir,
            api,
            federation: rt.federation.to_string(),
            channel,
            console: rt.console,
        });
    }
    Ok(out)
}

/// Nodes served by this process, stopped together.
struct InProcess {
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl InProcess {
    fn start(s: &Scenario, root: &Path, clock: &ShiftedClock) -> Result<InProcess, DemoError> {
        let (stop, _) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        for spec in &s.nodes {
            let node = crate::node::Node::open(Layout::new(root.join(&spec.id)), Arc::new(clock.clone()))
                .map_err(|e| DemoError::Setup(format!("{}: {e}", spec.id)))?;
            let mut rx = stop.subscribe();
            let id = spec.id.clone();
            tasks.push(tokio::spawn(async move {
                let shutdown = async move {
                    let _ = rx.wait_for(|v| *v).await;
                };
                let console = match liaison_console::sidecar(Arc::clone(&node)).await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::error!(node = %id, error = %e, "console did not start");
                        None
                    }
                };
                if let Err(e) = crate::serve::serve_with(node, console.into_iter().collect(), shutdown).await {
                    tracing::error!(node = %id, error = %e, "node stopped");
                }
            }));
        }
        Ok(InProcess { stop, tasks })
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

fn demo_intervals(in_process: bool) -> Intervals {
    // Short intervals so the walk-through does not wait on timers.
    Intervals {
        sync_secs: if in_process { 5 } else { 15 },
        housekeeping_secs: 30,
        deadline_secs: 1,
        ..Intervals::default()
    }
}

/// Runs the demo. The narration goes to stdout; node logs go to stderr only
/// when `LIAISON_LOG` is set.
pub async fn run(opts: Options) -> Result<(), DemoError> {
    let s = Scenario::load(&opts.scenario)?;
    let mut n = Narrator::default();
    let (root, temporary) = match &opts.root {
        Some(r) => (r.clone(), false),
        None => {
            let nonce =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_micros());
            (std::env::temp_dir().join(format!("liaison-demo-{}-{}-{nonce}", s.name, std::process::id())), true)
        }
    };
    if opts.prepare {
        if root.join(&s.nodes[0].id).exists() {
            return Err(DemoError::Setup(format!("{} already holds this scenario's nodes", root.display())));
        }
        init_nodes(&s, &root, Some(opts.base_port), &demo_intervals(false))?;
        for spec in &s.nodes {
            out!("{}", root.join(&spec.id).display());
        }
        return Ok(());
    }
    if opts.attach {
        let members = connect_all(&s, &root, 60).await?;
        let fed = Federation { scenario: s, members, clock: None };
        n.banner(&fed.scenario.title, &fed.scenario.intro);
        walk::set_up(&fed, &mut n).await?;
        console_users(&fed).await?;
        reach(&fed, &root);
        return Ok(());
    }

    let clock = ShiftedClock::default();
    // A scenario that sets its clock runs at that instant, whenever it runs.
    if let Some(start) = s.start_time().map_err(|e| DemoError::Setup(e.to_string()))? {
        clock.advance(start - time::OffsetDateTime::now_utc());
    }
    let started = init_nodes(&s, &root, None, &demo_intervals(true)).and_then(|()| InProcess::start(&s, &root, &clock));
    let servers = match started {
        Ok(servers) => servers,
        Err(e) => {
            if temporary {
                let _ = std::fs::remove_dir_all(&root);
            }
            return Err(e);
        }
    };
    let walkthrough = async {
        let members = connect_all(&s, &root, 30).await?;
        let fed = Federation { scenario: s.clone(), members, clock: Some(clock.clone()) };
        n.banner(&fed.scenario.title, &fed.scenario.intro);
        n.info(&format!(
            "{} nodes are up on 127.0.0.1, each with fresh keys and its own store under {}",
            fed.members.len(),
            root.display()
        ));
        walk::set_up(&fed, &mut n).await?;
        walk::walk(&fed, &mut n).await?;
        walk::verify_audit(&fed, &mut n).await?;
        n.summary();
        console_users(&fed).await?;
        reach(&fed, &root);
        Ok::<_, DemoError>(())
    };
    // Ctrl-C during the walk-through still stops the nodes and cleans up.
    let result = tokio::select! {
        r = walkthrough => r,
        () = crate::serve::shutdown_signal() => Err(DemoError::Interrupted),
    };
    if result.is_ok() && !opts.exit {
        out!("\nThe federation keeps running. Press Ctrl-C to stop it.");
        crate::serve::shutdown_signal().await;
    }
    servers.stop().await;
    if temporary {
        let _ = std::fs::remove_dir_all(&root);
    }
    result
}

/// The demo's console password: for this throwaway federation only.
pub const DEMO_PASSWORD: &str = "liaison-demo-only";

/// An officer on every node, and console passwords for it and the admin.
async fn console_users(fed: &Federation) -> Result<(), DemoError> {
    for m in &fed.members {
        let mut users = pb::user_service_client::UserServiceClient::new(m.channel.clone());
        let officer =
            pb::CreateUserRequest { name: "officer".into(), role: pb::UserRole::Officer as i32, ..Default::default() };
        match users.create_user(officer).await {
            Ok(_) => {}
            Err(s) if s.code() == tonic::Code::AlreadyExists => {}
            Err(s) => return Err(DemoError::Setup(format!("{}: officer user: {}", m.spec.id, s.message()))),
        }
        for name in ["admin", "officer"] {
            let set = pb::SetPasswordRequest { name: name.into(), password: DEMO_PASSWORD.into() };
            users
                .set_password(set)
                .await
                .map_err(|s| DemoError::Setup(format!("{}: {name} password: {}", m.spec.id, s.message())))?;
        }
    }
    Ok(())
}

/// How to reach each node.
fn reach(fed: &Federation, root: &Path) {
    let mut consoles = comfy_table::Table::new();
    consoles.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
    consoles.set_header(vec!["node", "web console", "sign in as"]);
    for m in &fed.members {
        if let Some(addr) = m.console {
            consoles.add_row(vec![
                m.spec.id.clone(),
                format!("http://{addr}/"),
                format!("officer or admin / {DEMO_PASSWORD}"),
            ]);
        }
    }
    out!("\nOpen the web consoles in a browser (demo passwords, for this federation only):\n{consoles}");
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
    t.set_header(vec!["node", "role", "country", "local API", "federation (mTLS)"]);
    for m in &fed.members {
        t.add_row(vec![
            m.spec.id.clone(),
            m.spec.role.clone(),
            m.spec.country.clone(),
            m.api.trim_start_matches("http://").to_string(),
            m.federation.clone(),
        ]);
    }
    let first = fed.members.first().map(|m| m.spec.id.as_str()).unwrap_or_default();
    // The running binary, so the commands work before `liaison` is installed.
    let exe = std::env::current_exe().map_or_else(|_| "liaison".to_string(), |p| p.display().to_string());
    out!("\nReach the nodes (each directory holds its admin.token):\n{t}");
    out!("  {exe} --dir {} status", root.join(first).display());
    out!("  {exe} --dir {} audit list --limit 20", root.join(first).display());
    out!(
        "  grpcurl -plaintext -H \"authorization: Bearer $(cat {}/admin.token)\" {} list",
        root.join(first).display(),
        fed.members.first().map(|m| m.api.trim_start_matches("http://")).unwrap_or_default()
    );
}
