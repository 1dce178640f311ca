//! The `liaison` command line: node set-up and run, and a client for every
//! local API call, with human tables by default and `--json` for scripts.

pub mod client;
mod exchange;
mod govern;
mod hub;
mod output;
mod pages;
mod sop;
mod transfer;
pub use output::summary as output_summary;
pub use transfer::CSV_HEADER;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{Layout, LogFormat, NodeConfig, Role};

#[derive(Parser, Debug)]
#[command(name = "liaison", version, about = "Federated information exchange for counter-trafficking authorities")]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Node data directory (API address and admin token are read from it).
    #[arg(long, global = true, env = "LIAISON_DIR")]
    pub dir: Option<PathBuf>,
    /// Local API URL, e.g. http://127.0.0.1:7701 (instead of --dir).
    #[arg(long, global = true, env = "LIAISON_API")]
    pub api: Option<String>,
    /// Bearer token for --api.
    #[arg(long, global = true, env = "LIAISON_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Small data and short phases: checks every figure runs (CI), figures not meaningful.
    #[arg(long)]
    pub short: bool,
    /// Directory for the nodes, kept afterwards (default: a temporary one, removed).
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Only the figures whose id contains this (e.g. `query`, `hit`, `sync`).
    #[arg(long)]
    pub only: Option<String>,
    /// Internal: serve the echo baseline with this node directory's certificate.
    #[arg(long, hide = true, requires = "echo_client")]
    pub serve_echo: Option<PathBuf>,
    /// Internal: the node directory whose certificate the echo accepts.
    #[arg(long, hide = true)]
    pub echo_client: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// A built-in scenario (commit-mekong, saarc, ecowas-eccas, asean, kh-vn) or a scenario .toml file.
    #[arg(long, default_value = crate::demo::scenario::DEFAULT)]
    pub scenario: String,
    /// Stop after the walk-through instead of waiting for Ctrl-C.
    #[arg(long)]
    pub exit: bool,
    /// Directory for the nodes (default: a fresh temporary directory, removed at the end).
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Only create the node directories under --root (used by deploy/scenario.sh).
    #[arg(long, conflicts_with = "attach")]
    pub prepare: bool,
    /// Set up peering, agreements and records on nodes already running from --root, then stop.
    #[arg(long)]
    pub attach: bool,
    /// First port for --prepare (two per node: federation, then API).
    #[arg(long, default_value_t = 7700)]
    pub base_port: u16,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a new node: config, signing key, TLS key and certificate, admin token.
    Init(InitArgs),
    /// Run a scenario's federation on this machine and walk through it.
    Demo(DemoArgs),
    /// Benchmark real nodes over mutual TLS against a bare tonic echo (docs/BENCHMARKS.md).
    Bench(BenchArgs),
    /// Run the node (creates ./liaison-data with defaults when there is no node yet).
    Run(RunArgs),
    /// This node's signed card.
    #[command(subcommand)]
    Card(CardCmd),
    /// This node's TLS certificate.
    #[command(subcommand)]
    Tls(TlsCmd),
    /// The store key (encryption at rest).
    #[command(subcommand)]
    Store(StoreCmd),
    /// Pinned peers.
    #[command(subcommand)]
    Peer(PeerCmd),
    /// Local users and their tokens.
    #[command(subcommand)]
    User(UserCmd),
    /// This node's records.
    #[command(subcommand)]
    Record(RecordCmd),
    /// Contact points (own and received).
    #[command(subcommand)]
    Contacts(ContactsCmd),
    /// Look up a normalised entity identifier, e.g. passport:AB123456.
    Identifier { identifier: String },
    /// Node status.
    Status,
    /// Import records: JSON lines (any kind) or CSV (contact points, see `import --help`).
    Import {
        /// `.jsonl`/`.json` for JSON lines, `.csv` for contact points with the header
        /// id,name,role,agency,country,languages,phone,email,availability,last_verified,handling
        file: PathBuf,
        /// Read FILE in an exchange format instead: `stix` (a STIX 2.1 bundle),
        /// `ftm` (FollowTheMoney entities, JSON lines or an array), `misp`
        /// (MISP events, one per line or an array).
        #[arg(long, value_parser = ["stix", "ftm", "misp"])]
        format: Option<String>,
    },
    /// Export records as JSON lines, or in an exchange format.
    Export {
        #[arg(long)]
        kind: Option<String>,
        #[arg(long)]
        out: Option<PathBuf>,
        /// `stix` (one STIX 2.1 bundle of intelligence reports and entities),
        /// `ftm` (FollowTheMoney entities of entity records, JSON lines),
        /// `misp` (one MISP event per intelligence report, JSON lines).
        #[arg(long, value_parser = ["stix", "ftm", "misp"])]
        format: Option<String>,
    },
    /// Ask one peer or every peer for records.
    Query(exchange::QueryArgs),
    /// Hit/no-hit check of identifiers against peers.
    Check(exchange::CheckArgs),
    /// Formal requests under an agreement's SOP.
    #[command(subcommand)]
    Request(sop::RequestCmd),
    /// Requests other nodes sent to this node.
    Inbox {
        #[arg(long)]
        overdue: bool,
    },
    /// Hubs: membership, directory, regional report, compliance indicators.
    #[command(subcommand)]
    Hub(hub::HubCmd),
    /// Victim identification and return cases.
    #[command(subcommand)]
    Case(sop::CaseCmd),
    /// Requests this node sent, and shares and withdrawals waiting for delivery.
    Outbox {
        /// Include delivered, refused and expired items.
        #[arg(long)]
        all: bool,
    },
    /// Pull changes now from peers whose grants allow sync.
    Sync {
        #[arg(long)]
        peer: Option<String>,
    },
    /// Consent to share received records onwards.
    #[command(subcommand)]
    Consent(exchange::ConsentCmd),
    /// Sharing agreements.
    #[command(subcommand)]
    Agreement(govern::AgreementCmd),
    /// The audit log.
    #[command(subcommand)]
    Audit(govern::AuditCmd),
    /// Ask the policy engine whether an exchange is allowed, and with what redactions.
    Policy(govern::PolicyCheck),
    /// Print the change feed as JSON lines, from after `--since` (a change seq).
    Watch {
        #[arg(long, default_value_t = 0)]
        since: u64,
        /// Keep following new changes.
        #[arg(long)]
        follow: bool,
    },
}

#[derive(Args, Debug)]
pub struct InitArgs {
    #[arg(long)]
    pub id: String,
    #[arg(long)]
    pub name: String,
    #[arg(long, default_value = "")]
    pub organisation: String,
    /// ISO 3166-1 alpha-2 country code.
    #[arg(long, default_value = "")]
    pub country: String,
    /// Region, for regional (hub) nodes.
    #[arg(long, default_value = "")]
    pub region: String,
    #[arg(long, value_enum, default_value = "national")]
    pub role: Role,
    /// Federation (mutual TLS) listen address.
    #[arg(long, default_value = "127.0.0.1:7700")]
    pub listen: std::net::SocketAddr,
    /// Local API listen address (default 127.0.0.1:7701; `--api HOST:PORT` works too).
    #[arg(long)]
    pub api_listen: Option<std::net::SocketAddr>,
    /// Endpoint published in the card (defaults to the federation address).
    #[arg(long, default_value = "")]
    pub endpoint: String,
    /// Prometheus metrics listen address (off unless given).
    #[arg(long)]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Web console listen address (default 127.0.0.1:7702).
    #[arg(long)]
    pub console_listen: Option<std::net::SocketAddr>,
    #[command(flatten)]
    pub store_key: StoreKeyArgs,
}

/// Where the store key is kept (`[storage]` in node.toml).
#[derive(Args, Debug, Clone, Default)]
pub struct StoreKeyArgs {
    /// Store key file, created (owner-only) unless it exists; relative to the
    /// node directory. Keep a copy apart from backups of the data directory.
    #[arg(long, value_name = "PATH")]
    pub store_key_file: Option<PathBuf>,
    /// Take the store key from this environment variable (hex or base64 of
    /// 32 bytes) instead of a file; it must be set for init and every start.
    #[arg(long, value_name = "NAME", conflicts_with = "store_key_file")]
    pub store_key_env: Option<String>,
}

impl StoreKeyArgs {
    fn storage(&self) -> crate::config::Storage {
        use crate::config::{Storage, STORE_KEY_FILE};
        match (&self.store_key_env, &self.store_key_file) {
            (Some(v), _) => Storage::key_env(v.clone()),
            (None, Some(f)) => Storage::key_file(f.clone()),
            (None, None) => Storage::key_file(STORE_KEY_FILE),
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum StoreCmd {
    /// Give a node created before encryption at rest its store key: writes a
    /// key file (or prints a key for --store-key-env) and adds [storage] to
    /// node.toml. The node encrypts its store on the next start.
    NewKey(StoreKeyArgs),
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
}

#[derive(Subcommand, Debug)]
pub enum TlsCmd {
    /// Replace the TLS key and certificate of a stopped node (the signing key stays).
    Rotate,
}

#[derive(Subcommand, Debug)]
pub enum CardCmd {
    /// Print this node's signed card (JSON) for peers to import.
    Export {
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum PeerCmd {
    /// Verify and pin a peer's card.
    Add {
        card: PathBuf,
    },
    List,
    Remove {
        id: String,
    },
    /// Reach a peer through a hub's sealed relay (`--via ""` for direct).
    Route {
        id: String,
        #[arg(long)]
        via: String,
    },
    /// Federation Hello over mutual TLS.
    Ping {
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Create a user; prints the token once.
    Add {
        name: String,
        #[arg(long, value_parser = ["admin", "officer", "integrator", "auditor", "partner"])]
        role: String,
        /// Narrow the token to these scopes (each within the role), e.g.
        /// `--scope records.read,feed`; default: the role's whole bundle.
        #[arg(long = "scope", value_delimiter = ',')]
        scopes: Vec<String>,
        /// For `--role partner`: the peer (node id) whose system reads this
        /// node's TAXII collections with the token.
        #[arg(long, default_value = "")]
        peer: String,
    },
    List,
    Remove {
        name: String,
    },
    /// Set a user's console password, read from standard input (one line).
    Passwd {
        name: String,
    },
    /// Make a one-time link with which the user sets their own console
    /// password (valid 72 hours; prints it once).
    Link {
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum RecordCmd {
    /// Add a record from a JSON file (proto3 JSON of liaison.v1.Record; - for stdin).
    Add {
        #[arg(long)]
        file: PathBuf,
    },
    /// Replace a record's body and handling, at the version you last read.
    Update {
        id: String,
        #[arg(long)]
        file: PathBuf,
        #[arg(long)]
        expected_version: u64,
    },
    /// Show a record. A victim's identity is shown only with --reason
    /// (audited and listed on the record); --masked shows the record without it.
    Show {
        id: String,
        /// Why you need the victim's identity (kept on the audit log).
        #[arg(long, conflicts_with = "masked")]
        reason: Option<String>,
        /// Leave the victim's identity out (nothing is audited).
        #[arg(long)]
        masked: bool,
    },
    List(ListArgs),
    Withdraw {
        id: String,
        #[arg(long)]
        expected_version: u64,
    },
    /// Share a record with a peer (durable outbox, retried until delivered).
    Share {
        id: String,
        #[arg(long)]
        to: String,
        #[arg(long)]
        purpose: String,
    },
    /// Signed receipts from the peers a record was delivered to.
    Receipts {
        id: String,
    },
}

#[derive(Args, Debug, Default)]
pub struct ListArgs {
    /// contact_point, intelligence_report, entity, victim_referral, statistics_report
    #[arg(long)]
    pub kind: Option<String>,
    #[arg(long)]
    pub country: Option<String>,
    #[arg(long)]
    pub text: Option<String>,
    /// RFC 3339 time, e.g. 2026-01-01T00:00:00Z
    #[arg(long)]
    pub since: Option<String>,
    #[arg(long)]
    pub include_withdrawn: bool,
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    #[arg(long)]
    pub page_token: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum ContactsCmd {
    List {
        #[arg(long)]
        country: Option<String>,
    },
    Search {
        text: String,
        #[arg(long)]
        country: Option<String>,
        /// Search the regional directory of the hubs this node joined.
        #[arg(long)]
        region: bool,
    },
}

/// A CLI failure: printed as one line, exit code 1.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Msg(String),
    #[error("{0}")]
    Status(String),
}

impl From<tonic::Status> for CliError {
    fn from(s: tonic::Status) -> Self {
        use tonic_types::StatusExt;
        let mut msg = format!("{}: {}", code_name(s.code()), s.message());
        if let Some(bad) = s.get_details_bad_request() {
            for v in bad.field_violations {
                if !msg.contains(&v.field) {
                    msg.push_str(&format!(" [{}: {}]", v.field, v.description));
                }
            }
        }
        CliError::Status(msg)
    }
}

fn code_name(c: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match c {
        Ok => "ok",
        Cancelled => "cancelled",
        Unknown => "unknown error",
        InvalidArgument => "invalid argument",
        DeadlineExceeded => "deadline exceeded",
        NotFound => "not found",
        AlreadyExists => "already exists",
        PermissionDenied => "permission denied",
        ResourceExhausted => "resource exhausted",
        FailedPrecondition => "failed precondition",
        Aborted => "aborted",
        OutOfRange => "out of range",
        Unimplemented => "unimplemented",
        Internal => "internal error",
        Unavailable => "unavailable",
        DataLoss => "data loss",
        Unauthenticated => "unauthenticated",
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(dispatch(cli));
    // A read still running on the blocking pool (the search catalogue's
    // load at start) holds nothing that needs finishing: do not wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LIAISON_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,h2=warn,tower=warn,hyper=warn,sled=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
        LogFormat::Human => builder.try_init(),
    };
}

pub const DEFAULT_DIR: &str = "liaison-data";

/// `init --api HOST:PORT` shares its spelling with the global `--api URL`
/// (where a client finds a node), so for init a bare address means the listener.
fn init_api_listen(
    api_listen: Option<std::net::SocketAddr>,
    api: Option<&str>,
) -> Result<std::net::SocketAddr, CliError> {
    match (api_listen, api) {
        (Some(a), _) => Ok(a),
        // A URL is where a client finds a node (often LIAISON_API in the environment), not a listener.
        (None, Some(s)) if s.contains("://") => Ok(std::net::SocketAddr::from(([127, 0, 0, 1], 7701))),
        (None, Some(s)) => s.parse().map_err(|_| {
            CliError::Msg(format!("--api: {s:?} is not a HOST:PORT address to listen on (e.g. 127.0.0.1:7701)"))
        }),
        (None, None) => Ok(std::net::SocketAddr::from(([127, 0, 0, 1], 7701))),
    }
}

async fn dispatch(cli: Cli) -> Result<(), CliError> {
    let g = cli.global.clone();
    match cli.command {
        Command::Init(a) => {
            let dir = g.dir.clone().ok_or_else(|| CliError::Msg("--dir is required for init".into()))?;
            let cfg = NodeConfig {
                id: a.id,
                name: a.name,
                organisation: a.organisation,
                country: a.country,
                region: a.region,
                role: a.role,
                listen: a.listen,
                api: init_api_listen(a.api_listen, g.api.as_deref())?,
                endpoint: a.endpoint,
                log_format: LogFormat::Human,
                metrics: a.metrics_listen,
                intervals: Default::default(),
                limits: Default::default(),
                storage: Some(a.store_key.storage()),
                console: crate::config::Console {
                    listen: a.console_listen.unwrap_or_else(|| crate::config::Console::default().listen),
                    ..Default::default()
                },
                taxii: Default::default(),
            };
            let layout = Layout::new(&dir);
            let token = crate::node::init(&layout, &cfg).map_err(|e| CliError::Msg(e.to_string()))?;
            output::init_done(&g, &layout, &cfg, &token);
            Ok(())
        }
        Command::Run(a) => run(&g, a).await,
        Command::Demo(a) => demo(a).await,
        Command::Bench(a) => bench(&g, a).await,
        Command::Tls(TlsCmd::Rotate) => {
            let layout = Layout::new(g.dir.clone().unwrap_or_else(|| DEFAULT_DIR.into()));
            if layout.runtime().exists() {
                return Err(CliError::Msg(format!(
                    "{} exists: stop the node first (remove the file if the node is not running)",
                    layout.runtime().display()
                )));
            }
            let fp = crate::identity::Identity::rotate_tls(&layout).map_err(|e| CliError::Msg(e.to_string()))?;
            println!("new TLS certificate {}", hex::encode(fp));
            println!("start the node, then send `liaison card export` to every peer: `peer add` of the new card");
            println!("replaces the pin, and the old certificate is refused from then on");
            Ok(())
        }
        Command::Store(StoreCmd::NewKey(a)) => {
            let layout = Layout::new(g.dir.clone().unwrap_or_else(|| DEFAULT_DIR.into()));
            let storage = a.storage();
            let key = crate::store::at_rest::new_key(&layout, &storage).map_err(|e| CliError::Msg(e.to_string()))?;
            match (&storage.key_env, storage.key_path(&layout)) {
                (Some(var), _) => {
                    println!("{}", key.to_hex());
                    eprintln!("node.toml now takes the store key from {var}: set {var} to the key above for every");
                    eprintln!("start of the node, and keep a copy of it apart from the data directory.");
                }
                (None, Some(path)) => {
                    println!("wrote store key {} (key id {})", path.display(), key.id());
                    println!("keep a copy of it apart from backups of the data directory: without it the store");
                    println!("cannot be read.");
                }
                (None, None) => {}
            }
            println!("the next start encrypts the existing store (it needs as much free space again while it runs)");
            Ok(())
        }
        other => client::dispatch(&g, other).await,
    }
}

async fn bench(g: &Global, a: BenchArgs) -> Result<(), CliError> {
    if let (Some(server), Some(client)) = (a.serve_echo, a.echo_client) {
        return crate::bench::serve_echo(server, client).await.map_err(|e| CliError::Msg(format!("echo: {e}")));
    }
    let opts = crate::bench::Options { short: a.short, json: g.json, root: a.root, only: a.only };
    crate::bench::run(opts).await.map_err(|e| CliError::Msg(format!("bench: {e}")))
}

async fn demo(a: DemoArgs) -> Result<(), CliError> {
    if std::env::var_os("LIAISON_LOG").is_some() {
        init_tracing(LogFormat::Human);
    }
    let opts = crate::demo::Options {
        scenario: a.scenario,
        root: a.root,
        exit: a.exit,
        prepare: a.prepare,
        attach: a.attach,
        base_port: a.base_port,
    };
    if (opts.prepare || opts.attach) && opts.root.is_none() {
        return Err(CliError::Msg("--root DIR is required with --prepare and --attach".into()));
    }
    crate::demo::run(opts).await.map_err(|e| CliError::Msg(format!("demo: {e}")))
}

async fn run(g: &Global, a: RunArgs) -> Result<(), CliError> {
    let layout = match &g.dir {
        Some(d) => Layout::new(d),
        None => {
            let layout = Layout::new(DEFAULT_DIR);
            if !layout.exists() {
                let cfg = NodeConfig {
                    id: "local-node".into(),
                    name: "Local liaison node".into(),
                    organisation: String::new(),
                    country: String::new(),
                    region: "local".into(),
                    role: Role::National,
                    listen: ([127, 0, 0, 1], 7700).into(),
                    api: ([127, 0, 0, 1], 7701).into(),
                    endpoint: String::new(),
                    log_format: LogFormat::Human,
                    metrics: None,
                    intervals: Default::default(),
                    limits: Default::default(),
                    storage: Some(crate::config::Storage::key_file(crate::config::STORE_KEY_FILE)),
                    console: Default::default(),
                    taxii: Default::default(),
                };
                let token = crate::node::init(&layout, &cfg).map_err(|e| CliError::Msg(e.to_string()))?;
                output::init_done(g, &layout, &cfg, &token);
            }
            layout
        }
    };
    // Logging first, so what opening the store reports (its encryption, a
    // shared key file) is seen; the format comes from node.toml when it loads.
    let format = NodeConfig::load(&layout).map(|c| c.log_format).unwrap_or_default();
    init_tracing(a.log_format.unwrap_or(format));
    let node = crate::node::Node::open(layout, crate::node::default_clock().map_err(CliError::Msg)?)
        .map_err(|e| CliError::Msg(e.to_string()))?;
    let console =
        liaison_console::sidecar(std::sync::Arc::clone(&node)).await.map_err(|e| CliError::Msg(e.to_string()))?;
    let taxii = liaison_taxii::sidecar(std::sync::Arc::clone(&node)).await.map_err(|e| CliError::Msg(e.to_string()))?;
    crate::serve::serve_with(node, console.into_iter().chain(taxii).collect(), crate::serve::shutdown_signal())
        .await
        .map_err(|e| CliError::Msg(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_takes_the_api_listener_from_either_spelling() {
        let a: std::net::SocketAddr = "127.0.0.1:9001".parse().unwrap();
        assert_eq!(init_api_listen(Some(a), Some("127.0.0.1:9")).unwrap(), a, "--api-listen wins");
        assert_eq!(init_api_listen(None, Some("127.0.0.1:9002")).unwrap().port(), 9002);
        assert_eq!(init_api_listen(None, None).unwrap().port(), 7701);
        assert_eq!(
            init_api_listen(None, Some("http://127.0.0.1:1")).unwrap().port(),
            7701,
            "a client URL is not a listener"
        );
        let e = init_api_listen(None, Some("localhost")).unwrap_err().to_string();
        assert!(e.contains("--api"), "{e}");
    }
}
