//! What the benchmark's fixes changed on the wire, tested as a peer sees
//! it: a record the grant withholds nothing from arrives as its
//! originator's stored envelope (not signed again), one with a withheld
//! field arrives redacted and signed anew; a sync longer than one answer
//! is pipelined and still keeps every record, once, with the cursor saved.

mod common;

use common::*;
use liaison::envelope::payload;
use liaison::pb;

async fn stored_envelope(node: &TestNode, id: &str) -> pb::Envelope {
    let mut c = node.records().await;
    c.get_record(pb::GetRecordRequest { id: id.into(), reason: "integration test".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .envelope
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unredacted_answer_carries_the_stored_envelope_and_a_redacted_one_a_new_signature() {
    let root = tempfile::tempdir().unwrap();
    let (th, kh) = th_kh_under_mou(root.path());
    let mut report = liaison::record::examples::intelligence_report();
    report.id = "ir-1".into();
    let mut entity = liaison::record::examples::entity();
    entity.id = "en-1".into();
    let mut c = th.records().await;
    for r in [report, entity] {
        c.create_record(pb::CreateRecordRequest { record: Some(r), ..Default::default() }).await.unwrap();
    }

    // A hostile (or any) peer asks directly on the federation port.
    let mut h = Hostile::new(&kh, &th);
    let ask = |kind: pb::RecordKind| pb::QueryRecordsRequest {
        kind: kind as i32,
        purpose: pb::Purpose::Investigation as i32,
        ..Default::default()
    };
    let got = h.client.query_records(ask(pb::RecordKind::IntelligenceReport)).await.unwrap().into_inner().records;
    assert_eq!(got.len(), 1);
    let sent = got[0].record.clone().unwrap();
    assert_eq!(sent, stored_envelope(&th, "ir-1").await, "the report went as stored: same bytes, same signature");

    // The MOU withholds entity.evidence_basis: a redacted copy, signed now,
    // verifiable with the originator's key, without the field.
    let got = h.client.query_records(ask(pb::RecordKind::Entity)).await.unwrap().into_inner().records;
    assert_eq!(got.len(), 1);
    let sent = got[0].record.clone().unwrap();
    let stored = stored_envelope(&th, "en-1").await;
    assert_ne!(sent.body, stored.body, "a redacted copy is not the stored record");
    let card = th.card();
    let key = liaison::envelope::verifying_key(&card.signing_public_key).unwrap();
    let rec: pb::Record = liaison::envelope::open(&sent, payload::RECORD, "th-atpd", &key).unwrap();
    let Some(pb::record::Body::Entity(e)) = rec.body else { panic!("an entity") };
    assert!(e.evidence_basis.is_empty(), "the withheld field did not cross");
    assert_eq!(rec.redacted_fields, ["entity.evidence_basis"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_of_several_answers_keeps_every_record_once() {
    let root = tempfile::tempdir().unwrap();
    let (th, kh) = th_kh_under_mou(root.path());
    // More than two answers' worth (500 an answer), so pages are pipelined.
    let n = 1_234usize;
    let records: Vec<pb::Record> = (0..n).map(|i| contact_point(&format!("cp-{i:05}"), &format!("Desk {i}"))).collect();
    let mut c = th.records().await;
    for chunk in records.chunks(1000) {
        let r = c
            .import_records(pb::ImportRecordsRequest { records: chunk.to_vec(), ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        assert!(r.problems.is_empty(), "{:?}", r.problems);
    }
    let mut ex = pb::exchange_service_client::ExchangeServiceClient::new(kh.authed().await);
    let sync = || pb::SyncNowRequest { peer: "th-atpd".into() };
    let first = ex.sync_now(sync()).await.unwrap().into_inner().peers;
    assert_eq!(first[0].received as usize, n, "{first:?}");
    assert!(first[0].error.is_empty(), "{first:?}");
    // Everything is held, and a second sync (from the saved cursor) finds nothing new.
    let again = ex.sync_now(sync()).await.unwrap().into_inner().peers;
    assert_eq!(again[0].received, 0, "{again:?}");
    assert_eq!(again[0].cursor, first[0].cursor);
    let mut node = pb::node_service_client::NodeServiceClient::new(kh.authed().await);
    let status = node.get_status(pb::GetStatusRequest {}).await.unwrap().into_inner();
    assert_eq!(status.record_count as usize, n, "every contact point held once, counted without a walk");
}
