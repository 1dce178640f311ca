//! The Prometheus endpoint is scraped and shows RPCs by method and status.

mod common;

use common::{pin_all, scrape, TestNode};
use liaison::pb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_endpoint_counts_rpcs_by_method_and_status() {
    let root = tempfile::tempdir().unwrap();
    let mut a = TestNode::init(root.path(), "th-atpd", "TH");
    let mut b = TestNode::init(root.path(), "kh-antht", "KH");
    a.start();
    b.start();
    pin_all(&[&a, &b]);
    a.cli_ok(&["peer", "ping", "kh-antht"]);
    let mut anon = pb::record_service_client::RecordServiceClient::new(a.channel().await);
    let _ = anon.list_records(pb::ListRecordsRequest::default()).await;

    let body = scrape(&a);
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    let line = |needle: &[&str]| {
        body.lines().any(|l| l.starts_with("liaison_rpc_total") && needle.iter().all(|n| l.contains(n)))
    };
    assert!(line(&["listener=\"api\"", "method=\"/liaison.v1.PeerService/PingPeer\"", "code=\"ok\""]), "{body}");
    assert!(line(&["method=\"/liaison.v1.RecordService/ListRecords\"", "code=\"unauthenticated\""]), "{body}");
    let b_body = scrape(&b);
    assert!(
        b_body.lines().any(|l| l.starts_with("liaison_rpc_total")
            && l.contains("listener=\"federation\"")
            && l.contains("Hello")),
        "{b_body}"
    );
    // Gauges from the store appear within a few seconds.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let body = scrape(&a);
        if body.contains("liaison_store_bytes") && body.contains("liaison_audit_length") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "gauges missing:\n{body}");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
}

/// Waits until a scrape of `n` has a sample line starting with `name` (labels
/// included) whose value satisfies `ok`.
fn wait_metric(n: &TestNode, name: &str, ok: impl Fn(f64) -> bool) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let body = scrape(n);
        let hit = body
            .lines()
            .filter(|l| l.starts_with(name))
            .any(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()).is_some_and(&ok));
        if hit {
            return body;
        }
        assert!(std::time::Instant::now() < deadline, "no {name} as expected in:\n{body}");
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_endpoint_shows_denials_outbox_overdue_requests_and_relay_queue() {
    use common::create;
    let root = tempfile::tempdir().unwrap();
    let (mut a, mut b) = common::th_kh_under_mou(root.path());
    common::send_information_request(&a, "kh-antht", "Crew list");

    // KH goes down; TH shares a report with it, which waits in the outbox.
    b.stop();
    let rec = create(&a, liaison::record::examples::intelligence_report()).await;
    a.cli_ok(&["record", "share", &rec.id, "--to", "kh-antht", "--purpose", "investigation"]);
    // Two days later on TH's clock: the 24 h acknowledgement deadline has passed.
    a.stop();
    a.env.push(("LIAISON_CLOCK_OFFSET_SECS".into(), (2 * 86_400).to_string()));
    a.start();
    // A share for a purpose the agreement does not grant is denied by the policy.
    let denied = a.cli(&["record", "share", &rec.id, "--to", "kh-antht", "--purpose", "prosecution"]);
    assert!(!denied.status.success());

    wait_metric(&a, "liaison_outbox_depth", |v| v == 1.0);
    wait_metric(&a, "liaison_outbox_retries_total", |v| v >= 1.0);
    wait_metric(&a, "liaison_requests_overdue ", |v| v == 1.0);
    wait_metric(&a, "liaison_requests_overdue_total{deadline=\"acknowledge\"}", |v| v == 1.0);
    wait_metric(&a, "liaison_policy_denials_total{reason=\"purpose_not_granted\"}", |v| v >= 1.0);
    wait_metric(&a, "liaison_relay_queue", |v| v == 0.0);
    wait_metric(&a, "liaison_store_entries{tree=\"outbox\"}", |v| v >= 1.0);
}
