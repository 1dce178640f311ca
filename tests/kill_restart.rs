//! Durability: a node killed with SIGKILL mid-write loses nothing it acknowledged.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{configure, TestNode};
use liaison::pb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    let root = tempfile::tempdir().unwrap();
    let mut a = TestNode::init(root.path(), "th-atpd", "TH");
    // Writes as fast as it can: durability, not the rate limits, is under test here.
    configure(&a, |c| (c.limits.token_per_sec, c.limits.token_burst) = (1_000_000.0, 1_000_000));
    for round in 0..3 {
        a.start();
        let acked: Arc<Mutex<Vec<pb::Record>>> = Arc::new(Mutex::new(Vec::new()));
        let mut client = a.records().await;
        let writer = {
            let acked = Arc::clone(&acked);
            tokio::spawn(async move {
                for i in 0.. {
                    let rec = common::contact_point(&format!("cp-r{round}-{i}"), &format!("Officer {round}/{i}"));
                    match client
                        .create_record(pb::CreateRecordRequest { record: Some(rec), ..Default::default() })
                        .await
                    {
                        Ok(r) => acked.lock().unwrap().push(r.into_inner().record.unwrap()),
                        Err(_) => break,
                    }
                }
            })
        };
        // Let some writes through, then pull the plug mid-loop.
        tokio::time::sleep(Duration::from_millis(400 + 150 * round as u64)).await;
        a.kill();
        let _ = writer.await;
        let acked = acked.lock().unwrap().clone();
        assert!(acked.len() > 3, "round {round}: too few writes acknowledged ({})", acked.len());

        a.start();
        let mut client = a.records().await;
        for want in &acked {
            let got = client
                .get_record(pb::GetRecordRequest {
                    id: want.id.clone(),
                    reason: "integration test".into(),
                    ..Default::default()
                })
                .await;
            let got = got.unwrap_or_else(|e| panic!("round {round}: acknowledged {} lost: {e}", want.id)).into_inner();
            assert_eq!(got.record.as_ref(), Some(want), "round {round}: {} changed", want.id);
        }
        a.kill();
    }
}
