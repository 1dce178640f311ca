//! Rate limits per caller (`[limits]` in node.toml): one noisy peer or local
//! client is answered RESOURCE_EXHAUSTED with a retry hint, while everyone
//! else keeps being served.

mod common;

use std::time::{Duration, Instant};

use common::*;
use liaison::pb;
use tonic::Code;
use tonic_types::StatusExt;

fn hello() -> pb::HelloRequest {
    pb::HelloRequest { node_id: "kh-antht".into() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_noisy_peer_is_slowed_and_the_others_are_served() {
    let root = tempfile::tempdir().unwrap();
    let mut th = TestNode::init(root.path(), "th-atpd", "TH");
    let mut kh = TestNode::init(root.path(), "kh-antht", "KH");
    let mut la = TestNode::init(root.path(), "la-dcta", "LA");
    configure(&th, |c| (c.limits.peer_per_sec, c.limits.peer_burst) = (0.5, 10));
    for n in [&mut th, &mut kh, &mut la] {
        n.start();
    }
    pin_all(&[&th, &kh, &la]);

    // KH calls as fast as it can.
    let mut h = Hostile::new(&kh, &th);
    let (mut ok, mut limited) = (0, 0);
    for _ in 0..40 {
        match h.client.hello(hello()).await {
            Ok(_) => ok += 1,
            Err(s) => {
                assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");
                let retry = s.get_details_retry_info().and_then(|r| r.retry_delay).expect("a retry hint");
                assert!(retry > Duration::ZERO && retry <= Duration::from_secs(3), "{retry:?}");
                limited += 1;
            }
        }
    }
    assert!(ok <= 12, "{ok} calls went through");
    assert!(limited >= 28, "{limited} calls were limited");

    // LA is not affected.
    let mut la_h = Hostile::new(&la, &th);
    let mut la_hello = hello();
    la_hello.node_id = "la-dcta".into();
    for _ in 0..5 {
        la_h.client.hello(la_hello.clone()).await.expect("LA is served");
    }
    // And KH is served again once its budget refills.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match h.client.hello(hello()).await {
            Ok(_) => break,
            Err(s) => assert_eq!(s.code(), Code::ResourceExhausted),
        }
        assert!(Instant::now() < deadline, "KH never served again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_noisy_token_and_a_token_guesser_are_slowed() {
    let root = tempfile::tempdir().unwrap();
    let mut th = TestNode::init(root.path(), "th-atpd", "TH");
    configure(&th, |c| {
        (c.limits.token_per_sec, c.limits.token_burst) = (1.0, 20);
        c.limits.failed_token_burst = 3;
    });
    th.start();

    let mut c = th.records().await;
    let mut limited = 0;
    for _ in 0..60 {
        if let Err(s) = c.list_records(pb::ListRecordsRequest::default()).await {
            assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");
            assert!(s.get_details_retry_info().is_some());
            limited += 1;
        }
    }
    assert!(limited >= 30, "{limited}");

    // Wrong tokens: a few are told so, then the address is slowed down.
    let mut guess = pb::record_service_client::RecordServiceClient::new(th.authed_with("lsn_guess").await);
    let codes: Vec<Code> = futures::future::join_all((0..10).map(|_| {
        let mut g = guess.clone();
        async move { g.list_records(pb::ListRecordsRequest::default()).await.unwrap_err().code() }
    }))
    .await;
    assert!(codes.iter().filter(|c| **c == Code::Unauthenticated).count() <= 4, "{codes:?}");
    assert!(codes.contains(&Code::ResourceExhausted), "{codes:?}");
    let _ = guess.list_records(pb::ListRecordsRequest::default()).await;
}
