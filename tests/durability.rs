//! Nothing acknowledged is lost and nothing diverges: cancelled calls,
//! crashes between a change and its delivery, and deliveries overtaken by
//! newer versions, against real nodes over real mutual TLS.

mod common;

use std::time::Duration;

use common::*;
use futures::StreamExt;
use liaison::pb;

const MOU_ID: &str = "th-kh";

fn push_request(h: &Hostile, id: &str) -> pb::PushRecordRequest {
    let mut rec = contact_point(id, "Storm");
    rec.originator = h.identity.id().into();
    rec.version = 1;
    let now = liaison::convert::timestamp(time::OffsetDateTime::now_utc());
    rec.create_time = Some(now);
    rec.update_time = Some(now);
    pb::PushRecordRequest {
        delivery_id: liaison::exchange::random_id("dlv"),
        shared: Some(h.shared(&rec, MOU_ID)),
        purpose: pb::Purpose::Coordination as i32,
        consent: None,
    }
}

/// A fresh connection: the server answers a burst of cancelled streams on
/// one connection with GOAWAY (h2 rapid-reset protection), so each call of
/// the storm gets its own.
fn fresh(
    h: &Hostile,
    target: &TestNode,
) -> pb::federation_service_client::FederationServiceClient<tonic::transport::Channel> {
    pb::federation_service_client::FederationServiceClient::new(
        liaison::federation::dial(&h.identity, &target.card()).unwrap(),
    )
}

/// Every change the node has logged, in order, from the change feed.
async fn change_feed(node: &TestNode) -> Vec<pb::Change> {
    let mut feed = pb::change_service_client::ChangeServiceClient::new(node.authed().await);
    let mut stream =
        feed.watch_changes(pb::WatchChangesRequest { since_seq: 0, no_follow: true }).await.unwrap().into_inner();
    let mut out = Vec::new();
    while let Some(item) = stream.message().await.unwrap() {
        out.push(item.change.unwrap());
    }
    out
}

/// A peer's calls with a 1 ms deadline are dropped by the server while their
/// writes are being applied. Each such write still lands whole: the audit
/// chain verifies, the change feed has no gap, and no write took another's
/// sequence number (every record received has its own change and audit entry).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_one_millisecond_calls_leaves_the_chain_and_the_feed_whole() {
    let root = tempfile::tempdir().unwrap();
    let (th, kh) = th_kh_under_mou(root.path());
    let h = Hostile::new(&kh, &th);
    const N: usize = 80;
    let pushes: Vec<pb::PushRecordRequest> = (0..N).map(|i| push_request(&h, &format!("cp-storm-{i}"))).collect();

    futures::stream::iter(pushes.clone())
        .for_each_concurrent(16, |req| {
            let mut c = fresh(&h, &th);
            async move {
                let mut r = tonic::Request::new(req);
                r.set_timeout(Duration::from_millis(1));
                let _ = c.push_record(r).await;
            }
        })
        .await;
    futures::stream::iter(0..N)
        .for_each_concurrent(16, |_| {
            let mut c = fresh(&h, &th);
            async move {
                let mut r = tonic::Request::new(pb::QueryRecordsRequest {
                    kind: pb::RecordKind::ContactPoint as i32,
                    purpose: pb::Purpose::Coordination as i32,
                    ..Default::default()
                });
                r.set_timeout(Duration::from_millis(1));
                let _ = c.query_records(r).await;
            }
        })
        .await;

    // The same deliveries again, with time to answer: each is taken (once).
    let mut c = fresh(&h, &th);
    for req in pushes {
        let r = c.push_record(req).await.expect("a retried delivery is answered").into_inner();
        let receipt = liaison::envelope::decode::<pb::Receipt>(&r.receipt.unwrap()).unwrap();
        assert!(receipt.delivered, "{receipt:?}");
    }

    let feed = change_feed(&th).await;
    let seqs: Vec<u64> = feed.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "the change feed has a gap");
    let received = feed.iter().filter(|c| c.r#type == pb::ChangeType::RecordReceived as i32).count();
    assert_eq!(received, N, "a received record lost its change to another write");
    assert_eq!(audit_entries(&th, "record.receive").len(), N, "a receive lost its audit entry");
    let verify = th.cli_ok(&["audit", "verify"]);
    assert!(verify.contains("intact"), "{verify}");
}
