//! `liaison bench`: the end-to-end benchmark suite (docs/BENCHMARKS.md).
//! Real nodes (separate `liaison run` processes of this binary) on
//! 127.0.0.1 with mutual TLS and encrypted stores, loaded with synthetic
//! records, each figure run at a fixed concurrency beside a bare tonic
//! echo over the same mutual TLS measured in the same run. It reports and
//! compares; it asserts nothing about time.

pub mod data;
pub mod echo;
pub mod fleet;
pub mod load;

use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::pb;
use fleet::{wait_async, Fleet, Proc};
use load::{closed_loop, Stats};

/// What `liaison bench` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// Small data and one-second phases: a smoke test of every figure (CI).
    pub short: bool,
    pub json: bool,
    /// Where the nodes go (default: a fresh temporary directory, removed).
    pub root: Option<PathBuf>,
    /// Only the figures whose id contains this.
    pub only: Option<String>,
}

/// The sizes of one run.
#[derive(Debug, Clone, Copy)]
struct Scale {
    /// How long each load phase runs.
    phase: Duration,
    /// Callers at once in each load phase.
    concurrency: usize,
    /// Peers a fan-out query goes to.
    peers: usize,
    /// Intelligence records held by each answering peer.
    records: u64,
    /// Entities (two identifiers each) at the hit-check node, loaded by `liaison import`.
    entities: u64,
    /// Contact points a full sync carries.
    contacts: u64,
    /// How long an idle node is watched.
    idle: Duration,
}

impl Scale {
    fn of(short: bool) -> Scale {
        if short {
            Scale {
                phase: Duration::from_millis(800),
                // Few callers: a debug build on a shared CI machine must
                // not hit the queries' deadlines.
                concurrency: 4,
                peers: 2,
                records: 400,
                entities: 2_000,
                contacts: 1_000,
                idle: Duration::from_secs(2),
            }
        } else {
            Scale {
                phase: Duration::from_secs(10),
                concurrency: 16,
                peers: 8,
                records: 10_000,
                entities: 500_000,
                contacts: 100_000,
                idle: Duration::from_secs(15),
            }
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Figure {
    pub id: &'static str,
    pub what: String,
    pub value: f64,
    pub unit: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
    /// Throughput as a fraction of the echo's, for request/response figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub of_echo: Option<f64>,
    pub target: &'static str,
    /// Whether the target is met; None where the target is a reference only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub met: Option<bool>,
    pub errors: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub note: String,
}

impl Figure {
    fn new(id: &'static str, what: impl Into<String>, value: f64, unit: &'static str, target: &'static str) -> Figure {
        Figure {
            id,
            what: what.into(),
            value,
            unit,
            p50_ms: None,
            p99_ms: None,
            of_echo: None,
            target,
            met: None,
            errors: 0,
            note: String::new(),
        }
    }

    fn from_stats(id: &'static str, what: impl Into<String>, s: &Stats, echo: &Stats, target: &'static str) -> Figure {
        let mut f = Figure::new(id, what, s.rate(), "req/s", target);
        f.p50_ms = Some(ms(s.p50));
        f.p99_ms = Some(ms(s.p99));
        f.of_echo = (echo.rate() > 0.0).then(|| s.rate() / echo.rate());
        f.errors = s.errors;
        if let Some(e) = &s.first_error {
            f.note = format!("first error: {e}");
        }
        f
    }

    fn met(mut self, met: bool) -> Figure {
        self.met = Some(met && self.errors == 0);
        self
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The whole report, as `--json` prints it.
#[derive(Debug, serde::Serialize)]
pub struct Report {
    pub mode: &'static str,
    pub machine: String,
    pub build: &'static str,
    pub concurrency: usize,
    pub echo: Figure,
    pub figures: Vec<Figure>,
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    format!("{cpus} CPUs {model}").trim().to_string()
}

fn status_error(what: &str) -> impl Fn(tonic::Status) -> String + '_ {
    move |s| format!("{what}: {:?}: {}", s.code(), s.message())
}

/// Imports `records` into `p` through the API, 1000 a call.
async fn seed(p: &Proc, records: impl Iterator<Item = pb::Record>) -> Result<(), String> {
    let mut all = records.peekable();
    let mut client = p.records();
    while all.peek().is_some() {
        let batch: Vec<pb::Record> = all.by_ref().take(1000).collect();
        let r = client
            .import_records(pb::ImportRecordsRequest { records: batch, ..Default::default() })
            .await
            .map_err(status_error("seed"))?
            .into_inner();
        if let Some(p) = r.problems.first() {
            return Err(format!("seed: record {} refused: {}: {}", p.index, p.field, p.reason));
        }
    }
    Ok(())
}

/// Runs the suite and prints the report.
pub async fn run(opts: Options) -> Result<(), String> {
    let scale = Scale::of(opts.short);
    let want = |id: &str| opts.only.as_deref().is_none_or(|o| id.contains(o));
    let (root, keep) = match &opts.root {
        Some(r) => (r.clone(), true),
        None => (std::env::temp_dir().join(format!("liaison-bench-{}", std::process::id())), false),
    };
    let say = |s: &str| {
        if !opts.json {
            let _ = writeln!(std::io::stderr(), "· {s}");
        }
    };
    let mut fleet = Fleet::new(root, keep)?;
    say("starting nodes");
    let asker = fleet.add("aa-asker", "TH").await?;
    let mut peers = Vec::new();
    for k in 0..scale.peers {
        peers.push(fleet.add(&format!("pp-{k:02}"), "KH").await?);
    }
    let hits = fleet.add("hh-hits", "VN").await?;
    say("pinning peers and activating agreements");
    for &p in peers.iter().chain([&hits]) {
        fleet.pair(asker, p).await?;
    }
    let first = peers[0];
    say(&format!("loading {} intelligence records at each of {} peers", scale.records, peers.len()));
    let mut loads = Vec::new();
    for &p in &peers {
        loads.push(seed(&fleet.nodes[p], (0..scale.records).map(data::intelligence)));
    }
    for r in futures::future::join_all(loads).await {
        r?;
    }

    // The baseline: a bare tonic echo with the first peer's certificate,
    // called with the asker's, each side pinning the other.
    let server_layout = fleet.nodes[first].layout.clone();
    let client_layout = fleet.nodes[asker].layout.clone();
    let (echo_proc, echo_addr) = echo_process(&server_layout, &client_layout)?;
    let _echo_guard = KillOnDrop(echo_proc);
    let client_id = crate::identity::Identity::load(&client_layout).map_err(|e| e.to_string())?;
    let server_id = crate::identity::Identity::load(&server_layout).map_err(|e| e.to_string())?;
    let echo_client = echo::client(&client_id, &server_id, echo_addr)?;
    say("echo");
    let payload = vec![0x5a; 1024];
    let echo = closed_loop(scale.concurrency, scale.phase, move |_| {
        let (mut c, p) = (echo_client.clone(), payload.clone());
        async move { c.echo(p).await.map(drop).map_err(|s| s.message().to_string()) }
    })
    .await;
    let echo_fig = Figure::from_stats("echo", "bare tonic echo, 1 KiB, mutual TLS", &echo, &echo, "baseline");
    let echo_p99_under_5ms = echo.p99 < Duration::from_millis(5);

    let mut figures = Vec::new();
    let c = scale.concurrency;
    let n = scale.records;

    if want("get_record") {
        say("GetRecord");
        let client = fleet.nodes[first].records();
        let s = closed_loop(c, scale.phase, move |i| {
            let mut c = client.clone();
            async move {
                let id = data::intelligence(i % n).id;
                c.get_record(pb::GetRecordRequest { id, ..Default::default() })
                    .await
                    .map(drop)
                    .map_err(|s| s.message().to_string())
            }
        })
        .await;
        let f = Figure::from_stats("get_record", "GetRecord (local API)", &s, &echo, "≥ 50 % of echo");
        let ok = f.of_echo.is_some_and(|r| r >= 0.5);
        figures.push(f.met(ok));
    }

    if want("list_filtered") {
        say("ListRecords with a filter");
        let client = fleet.nodes[first].records();
        let buckets = (n / 2).clamp(1, 500);
        let s = closed_loop(c, scale.phase, move |i| {
            let mut c = client.clone();
            async move {
                let text = data::batch_tag(i % buckets);
                let r = c
                    .list_records(pb::ListRecordsRequest {
                        kind: pb::RecordKind::IntelligenceReport as i32,
                        text,
                        ..Default::default()
                    })
                    .await
                    .map_err(|s| s.message().to_string())?;
                if r.into_inner().records.is_empty() {
                    return Err("the filter found nothing".into());
                }
                Ok(())
            }
        })
        .await;
        let what = format!("ListRecords, kind and text filter ({} of {n})", (n / 2).div_ceil(buckets));
        let f = Figure::from_stats("list_filtered", what, &s, &echo, "≥ 50 % of echo");
        let ok = f.of_echo.is_some_and(|r| r >= 0.5);
        figures.push(f.met(ok));
    }

    if want("create_record") {
        say("CreateRecord");
        let client = fleet.nodes[asker].records();
        let s = closed_loop(c, scale.phase, move |i| {
            let mut c = client.clone();
            async move {
                let mut record = data::contact_point(i);
                record.id = format!("new-{i:07}");
                c.create_record(pb::CreateRecordRequest { record: Some(record), ..Default::default() })
                    .await
                    .map(drop)
                    .map_err(|s| s.message().to_string())
            }
        })
        .await;
        figures.push(Figure::from_stats("create_record", format!("CreateRecord at c={c}"), &s, &echo, "reference"));
    }

    let query = |peer: String,
                 exchange: pb::exchange_service_client::ExchangeServiceClient<crate::cli::client::Authed>,
                 expect: usize| {
        move |_| {
            let (mut c, peer) = (exchange.clone(), peer.clone());
            async move {
                let r = c
                    .query(pb::QueryRequest {
                        peer,
                        kind: pb::RecordKind::IntelligenceReport as i32,
                        purpose: pb::Purpose::Investigation as i32,
                        limit: 50,
                        ..Default::default()
                    })
                    .await
                    .map_err(|s| s.message().to_string())?
                    .into_inner();
                let answered = r
                    .peers
                    .iter()
                    .filter(|p| p.outcome == pb::PeerOutcome::Answered as i32 && p.records.len() == 50.min(expect))
                    .count();
                if answered != r.peers.len() || r.peers.is_empty() {
                    let why =
                        r.peers.iter().find(|p| p.outcome != pb::PeerOutcome::Answered as i32).map(|p| p.error.clone());
                    return Err(why.unwrap_or_else(|| "a peer answered with fewer records".into()));
                }
                Ok(())
            }
        }
    };
    let reports = usize::try_from(n / 2).unwrap_or(usize::MAX);
    if want("query") {
        say("Query, one peer");
        let f = query(fleet.nodes[first].id.clone(), fleet.nodes[asker].exchange(), reports);
        let s = closed_loop(c, scale.phase, f).await;
        let single_p99 = s.p99;
        let fig = Figure::from_stats(
            "query_single",
            format!("Query one peer ({n} records there, 50 an answer)"),
            &s,
            &echo,
            "≥ 50 % of echo; p99 ≤ 5 ms",
        );
        let ok = fig.of_echo.is_some_and(|r| r >= 0.5) && (!echo_p99_under_5ms || s.p99 <= Duration::from_millis(5));
        figures.push(fig.met(ok));

        say("Query, fan-out");
        // The asker's agreements also reach the hit-check node, which holds
        // no reports: it answers with none, so the fan-out goes to the peers.
        let f = query(String::new(), fleet.nodes[asker].exchange(), 0);
        let fan = closed_loop(c, scale.phase, move |i| {
            let f = f.clone();
            async move {
                match f(i).await {
                    Err(e) if e == "a peer answered with fewer records" => Ok(()),
                    r => r,
                }
            }
        })
        .await;
        let fig = Figure::from_stats(
            "query_fanout",
            format!("Query fan-out over {} peers", scale.peers + 1),
            &fan,
            &echo,
            "p99 ≤ 3 × single",
        );
        let ok = fan.p99 <= single_p99 * 3;
        figures.push(fig.met(ok));
    }

    if want("share") {
        say("share through the outbox");
        let client = fleet.nodes[first].exchange();
        let to = fleet.nodes[asker].id.clone();
        let started = Instant::now();
        let s = closed_loop(c, scale.phase, move |i| {
            let (mut c, peer) = (client.clone(), to.clone());
            async move {
                c.share_record(pb::ShareRecordRequest {
                    record_id: data::intelligence(i % n).id,
                    peer,
                    purpose: pb::Purpose::Investigation as i32,
                    ..Default::default()
                })
                .await
                .map(drop)
                .map_err(|s| s.message().to_string())
            }
        })
        .await;
        let outbox = fleet.nodes[first].exchange();
        wait_async("the outbox to drain", Duration::from_secs(600), || {
            let mut c = outbox.clone();
            async move {
                let r = c.list_outbox(pb::ListOutboxRequest { page_size: 1, ..Default::default() }).await.ok()?;
                r.into_inner().items.is_empty().then_some(())
            }
        })
        .await?;
        let secs = started.elapsed().as_secs_f64();
        let mut f =
            Figure::new("share", "share, queued and delivered (direct)", s.ok as f64 / secs, "shares/s", "reference");
        f.errors = s.errors;
        f.note = s.first_error.map(|e| format!("first error: {e}")).unwrap_or_default();
        figures.push(f);
    }

    if want("sync") {
        let m = scale.contacts;
        say(&format!("sync of {m} contact points"));
        seed(&fleet.nodes[first], (0..m).map(data::contact_point)).await?;
        let mut ex = fleet.nodes[asker].exchange();
        let peer = fleet.nodes[first].id.clone();
        let t = Instant::now();
        let r =
            ex.sync_now(pb::SyncNowRequest { peer: peer.clone() }).await.map_err(status_error("sync"))?.into_inner();
        let full = t.elapsed();
        let received: u64 = r.peers.iter().map(|p| u64::from(p.received)).sum();
        let mut f = Figure::new("sync_full", format!("sync of {m} contact points"), full.as_secs_f64(), "s", "≤ 10 s");
        if received != m {
            f.errors = 1;
            f.note = format!("received {received} of {m}: {:?}", r.peers.first().map(|p| &p.error));
        }
        let ok = full <= Duration::from_secs(10);
        figures.push(f.met(ok));
        let t = Instant::now();
        ex.sync_now(pb::SyncNowRequest { peer }).await.map_err(status_error("empty sync"))?;
        let empty = t.elapsed();
        figures.push(
            Figure::new("sync_empty", "empty sync", ms(empty), "ms", "≤ 1000 ms").met(empty <= Duration::from_secs(1)),
        );
    }

    let e = scale.entities;
    if want("import") || want("hit") || want("idle") || want("cold") {
        say(&format!("liaison import of {e} entities"));
        let file = fleet.root.join("entities.jsonl");
        {
            let mut w = std::io::BufWriter::new(std::fs::File::create(&file).map_err(|e| e.to_string())?);
            for i in 0..e {
                let line = serde_json::to_string(&data::entity(i)).map_err(|e| e.to_string())?;
                writeln!(w, "{line}").map_err(|e| e.to_string())?;
            }
            w.flush().map_err(|e| e.to_string())?;
        }
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let t = Instant::now();
        let out = tokio::process::Command::new(exe)
            .arg("--dir")
            .arg(&fleet.nodes[hits].layout.dir)
            .arg("--json")
            .arg("import")
            .arg(&file)
            .output()
            .await
            .map_err(|e| e.to_string())?;
        let took = t.elapsed();
        let _ = std::fs::remove_file(&file);
        let mut f = Figure::new(
            "import",
            format!("liaison import of {e} entities"),
            e as f64 / took.as_secs_f64(),
            "records/s",
            "≥ 20000 records/s",
        );
        if !out.status.success() {
            f.errors = 1;
            f.note = String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("").to_string();
        }
        let ok = f.value >= 20_000.0;
        figures.push(f.met(ok));
    }

    if want("hit") {
        say("hit/no-hit checks");
        let client = fleet.nodes[asker].exchange();
        let peer = fleet.nodes[hits].id.clone();
        let s = closed_loop(c, scale.phase, move |i| {
            let (mut c, peer) = (client.clone(), peer.clone());
            // Every other call asks for a passport nobody holds.
            let k = (i.wrapping_mul(2_654_435_761)) % (2 * e);
            async move {
                let r = c
                    .check_identifiers(pb::CheckIdentifiersRequest {
                        peer,
                        identifiers: vec![pb::IdentifierQuery {
                            r#type: pb::IdentifierType::Passport as i32,
                            value: data::passport(k),
                        }],
                        purpose: pb::Purpose::Investigation as i32,
                        ..Default::default()
                    })
                    .await
                    .map_err(|s| s.message().to_string())?
                    .into_inner();
                let hit = r.peers.first().and_then(|p| p.results.first()).map(|h| h.hit);
                if hit != Some(k < e) {
                    return Err(format!("passport {k}: expected hit={}, got {hit:?}", k < e));
                }
                Ok(())
            }
        })
        .await;
        let f = Figure::from_stats(
            "hit_check",
            format!("hit/no-hit check, {} identifiers at the peer", 2 * e),
            &s,
            &echo,
            "p99 ≤ 5 ms",
        );
        let ok = s.p99 <= Duration::from_millis(5);
        figures.push(f.met(ok));
    }

    if want("idle") {
        say("idle node");
        let p = &fleet.nodes[hits];
        // Settle first: the import's last writes and index commits.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (_, cpu0) = p.usage().ok_or("no /proc figures for the node")?;
        let t = Instant::now();
        tokio::time::sleep(scale.idle).await;
        let (rss, cpu1) = p.usage().ok_or("no /proc figures for the node")?;
        let cpu = cpu1.saturating_sub(cpu0).as_secs_f64() / t.elapsed().as_secs_f64() * 100.0;
        let mb = rss as f64 / 1e6;
        let mut f =
            Figure::new("idle_rss", format!("idle node holding {e} entities: resident memory"), mb, "MB", "≤ 300 MB");
        f.note = format!("node directory {:.0} MB", fleet.disk(hits) as f64 / 1e6);
        figures.push(f.met(mb <= 300.0));
        figures.push(Figure::new("idle_cpu", "idle node: CPU", cpu, "%", "≈ 0 % (≤ 1 %)").met(cpu <= 1.0));
    }

    if want("cold") {
        say("cold start");
        fleet.stop(hits).await?;
        let t = Instant::now();
        fleet.restart(hits).await?;
        let up = t.elapsed();
        let mut node = fleet.nodes[hits].node();
        let status = wait_async("status after a restart", Duration::from_secs(120), || {
            let mut node = node.clone();
            async move { node.get_status(pb::GetStatusRequest {}).await.ok() }
        })
        .await?
        .into_inner();
        let answered = t.elapsed();
        node.get_status(pb::GetStatusRequest {}).await.map_err(status_error("status"))?;
        figures.push(
            Figure::new("cold_start", format!("cold start with {e} entities: API up"), ms(up), "ms", "≤ 1000 ms")
                .met(up <= Duration::from_secs(1)),
        );
        let mut f = Figure::new("cold_status", "cold start: first status answered", ms(answered), "ms", "≤ 1000 ms");
        f.note = format!("{} records", status.record_count);
        figures.push(f.met(answered <= Duration::from_secs(1)));
    }

    let report = Report {
        mode: if opts.short { "short" } else { "full" },
        machine: machine(),
        build: if cfg!(debug_assertions) { "debug" } else { "release" },
        concurrency: scale.concurrency,
        echo: echo_fig,
        figures,
    };
    if opts.json {
        println!("{}", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?);
    } else {
        print_table(&report);
    }
    Ok(())
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `liaison bench --serve-echo` and reads the address it prints.
fn echo_process(
    server: &crate::config::Layout,
    client: &crate::config::Layout,
) -> Result<(std::process::Child, std::net::SocketAddr), String> {
    use std::io::BufRead as _;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = std::process::Command::new(exe)
        .args(["bench", "--serve-echo"])
        .arg(&server.dir)
        .arg("--echo-client")
        .arg(&client.dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let out = child.stdout.take().ok_or("echo: no stdout")?;
    let mut line = String::new();
    std::io::BufReader::new(out).read_line(&mut line).map_err(|e| e.to_string())?;
    let addr = line.trim().parse().map_err(|_| format!("echo server said {line:?}"))?;
    Ok((child, addr))
}

fn print_table(r: &Report) {
    let mut t = comfy_table::Table::new();
    t.set_header(["figure", "value", "p50 ms", "p99 ms", "of echo", "target", "met"]);
    let opt = |v: Option<f64>, p: usize| v.map(|v| format!("{v:.p$}")).unwrap_or_default();
    for f in std::iter::once(&r.echo).chain(&r.figures) {
        let met = match f.met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "",
        };
        let mut value = format!("{:.1} {}", f.value, f.unit);
        if f.errors > 0 {
            value.push_str(&format!(" ({} errors)", f.errors));
        }
        t.add_row([
            f.what.clone(),
            value,
            opt(f.p50_ms, 2),
            opt(f.p99_ms, 2),
            opt(f.of_echo.map(|x| x * 100.0), 1).to_string() + if f.of_echo.is_some() { " %" } else { "" },
            f.target.to_string(),
            met.to_string(),
        ]);
    }
    println!(
        "liaison bench ({} mode, {} build) on {}; {} callers per phase",
        r.mode, r.build, r.machine, r.concurrency
    );
    println!("{t}");
    for f in std::iter::once(&r.echo).chain(&r.figures) {
        if !f.note.is_empty() {
            println!("{}: {}", f.id, f.note);
        }
    }
}

/// `liaison bench --serve-echo`: the echo process.
pub async fn serve_echo(server: PathBuf, client: PathBuf) -> Result<(), String> {
    echo::serve(&crate::config::Layout::new(server), &crate::config::Layout::new(client)).await
}
