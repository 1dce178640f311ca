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
