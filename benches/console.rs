//! Server-side rendering time of the console's pages on a node holding
//! 100,000 records (issue 14: median under 50 ms), each beside a baseline
//! measured in the same run: the account page, which goes through the same
//! session, CSRF and template stack but reads no records.
//!
//! The node is real (initialised by the `liaison` binary, sled store,
//! signed records); requests go through the console's router in process,
//! so the figures are the server's work without a network in between.
//!
//! `cargo bench --bench console` prints the table; nothing is asserted.
//! `LIAISON_BENCH_RECORDS=n` changes the number of records.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use liaison::api::{self, Caller};
use liaison::config::Layout;
use liaison::node::{default_clock, Node};
use liaison::pb::{self, record_service_server::RecordService, UserRole};
use liaison::record::examples;
use tower::ServiceExt;

const ROUNDS: usize = 40;

fn records(n: usize) -> impl Iterator<Item = pb::Record> {
    (0..n).map(|i| {
        let mut r = match i % 4 {
            0 => examples::entity(),
            1 => examples::contact_point(),
            _ => examples::intelligence_report(),
        };
        r.id = format!("r-{i:06}");
        match r.body.as_mut() {
            Some(pb::record::Body::IntelligenceReport(b)) => {
                b.summary = format!("Report {i}: movements on route {} observed by patrol {}", i % 97, i % 13);
            }
            Some(pb::record::Body::Entity(e)) => {
                e.names = vec![format!("Person {i}")];
                for id in &mut e.identifiers {
                    id.value = if id.r#type == pb::IdentifierType::Phone as i32 {
                        format!("+8551{i:07}")
                    } else {
                        format!("N{i:07}")
                    };
                }
            }
            Some(pb::record::Body::ContactPoint(c)) => c.name = format!("Liaison desk {i}"),
            _ => {}
        }
        r
    })
}

async fn seed(node: &Arc<Node>, n: usize) {
    let api = api::RecordApi::new(Arc::clone(node));
    let admin = Caller::of_user(&pb::User { name: "admin".into(), role: UserRole::Admin as i32, ..Default::default() });
    let mut all = records(n).peekable();
    while all.peek().is_some() {
        let batch: Vec<pb::Record> = all.by_ref().take(1000).collect();
        let msg = pb::ImportRecordsRequest { records: batch, ..Default::default() };
        let r = api.import_records(api::as_caller(msg, admin.clone())).await;
        let problems = r.map(|r| r.into_inner().problems).unwrap_or_default();
        if let Some(p) = problems.first() {
            eprintln!("seed: record {} refused: {} {}", p.index, p.field, p.reason);
        }
    }
}

fn median_and_p95(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    let p95 = v.len().saturating_mul(95) / 100;
    (v[v.len() / 2], v[p95.min(v.len() - 1)])
}

async fn time(router: &axum::Router, cookie: &str, path: &str) -> (Duration, Duration, usize) {
    let mut times = Vec::with_capacity(ROUNDS);
    let mut size = 0;
    for _ in 0..ROUNDS {
        let req = http::Request::get(path).header("cookie", cookie).body(Body::empty()).unwrap_or_default();
        let start = Instant::now();
        let resp = router.clone().oneshot(req).await.unwrap_or_else(|e| match e {});
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap_or_default();
        times.push(start.elapsed());
        if !status.is_success() {
            eprintln!("{path}: {status}");
        }
        size = body.len();
    }
    let (m, p) = median_and_p95(times);
    (m, p, size)
}

fn main() {
    liaison::tls::install_provider();
    let n: usize = std::env::var("LIAISON_BENCH_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let Ok(dir) = tempfile::tempdir() else { return eprintln!("no temporary directory") };
    let node_dir = dir.path().join("kh-antht");
    let init = Command::new(env!("CARGO_BIN_EXE_liaison"))
        .args(["--dir", &node_dir.display().to_string(), "init", "--id", "kh-antht", "--name", "Bench unit"])
        .args(["--organisation", "Bench police", "--country", "KH", "--listen", "127.0.0.1:0"])
        .args(["--api-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--console-listen", "127.0.0.1:0"])
        .output();
    match init {
        Ok(o) if o.status.success() => {}
        Ok(o) => return eprintln!("liaison init failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => return eprintln!("liaison init: {e}"),
    }
    let Ok(rt) = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() else {
        return eprintln!("no runtime");
    };
    rt.block_on(async {
        let clock = match default_clock() {
            Ok(c) => c,
            Err(e) => return eprintln!("clock: {e}"),
        };
        let node = match Node::open(Layout::new(&node_dir), clock) {
            Ok(n) => n,
            Err(e) => return eprintln!("open: {e}"),
        };
        let started = Instant::now();
        seed(&node, n).await;
        println!("seeded {n} records in {:.1} s", started.elapsed().as_secs_f64());

        let app = liaison_console::App::new(Arc::clone(&node));
        let session = app.sessions.start("admin");
        let cookie = format!("liaison_session={session}");
        let router = liaison_console::router(app);
        let mid = format!("/records/kh-antht/r-{:06}", n / 2 + 2);
        let pages = [
            ("baseline: account (no records read)", "/account".to_string()),
            ("home", "/".to_string()),
            ("search form and recent records", "/search".to_string()),
            ("search: text", "/search?text=route+42".to_string()),
            ("search: kind and country", "/search?kind=3&country=TH".to_string()),
            ("search: no match (every entry read)", "/search?text=no+such+words".to_string()),
            ("record", mid.clone()),
            ("record edit form", format!("{mid}/edit")),
            ("requests", "/requests".to_string()),
            ("cases", "/cases".to_string()),
            ("contacts", "/contacts".to_string()),
            ("agreements", "/agreements".to_string()),
            ("administration", "/admin".to_string()),
            ("audit log", "/admin/audit".to_string()),
        ];
        let (base, _, _) = time(&router, &cookie, &pages[0].1).await;
        println!("\n{:<40} {:>10} {:>10} {:>9} {:>10}", "page", "median", "p95", "× base", "bytes");
        for (label, path) in &pages {
            let (m, p, size) = time(&router, &cookie, path).await;
            let ratio = m.as_secs_f64() / base.as_secs_f64().max(1e-9);
            println!(
                "{label:<40} {:>8.2}ms {:>8.2}ms {ratio:>8.1}× {size:>10}",
                m.as_secs_f64() * 1e3,
                p.as_secs_f64() * 1e3
            );
        }
        println!("\n{n} records; {ROUNDS} rounds per page; target: median under 50 ms server-side.");
    });
}
