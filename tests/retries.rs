//! Safe retries (AIP-155), tried as an integrator whose calls time out: a
//! create-like call with a request_id is applied once, however often and
//! however concurrently it is sent, even when the client gave up before
//! the answer and even when the node stopped between the effect and the
//! answer.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::TestNode;
use liaison::pb;
use tonic::{Code, Request};

/// A contact point without an id: the node generates one, so only the
/// request_id can tell a retry from a second record.
fn unnamed(name: &str) -> pb::Record {
    pb::Record { id: String::new(), ..common::contact_point("x", name) }
}

async fn count(node: &TestNode) -> usize {
    let mut c = node.records().await;
    let mut n = 0;
    let mut token = String::new();
    loop {
        let page = c
            .list_records(pb::ListRecordsRequest { page_size: 1000, page_token: token, ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        n += page.records.len();
        if page.next_page_token.is_empty() {
            return n;
        }
        token = page.next_page_token;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_retried_with_its_request_id_is_answered_not_applied_again() {
    let root = tempfile::tempdir().unwrap();
    let mut node = TestNode::init(root.path(), "th-atpd", "TH");
    node.start();
    let mut c = node.records().await;
    let req = |name: &str, id: &str| pb::CreateRecordRequest { record: Some(unnamed(name)), request_id: id.into() };

    let first =
        c.create_record(req("Mae Sot desk", "5b0f6a9e-1c1d-4c1e-9d57-0a8f0e1c2b3d")).await.unwrap().into_inner();
    let again =
        c.create_record(req("Mae Sot desk", "5b0f6a9e-1c1d-4c1e-9d57-0a8f0e1c2b3d")).await.unwrap().into_inner();
    assert_eq!(first.record.as_ref().unwrap().id, again.record.as_ref().unwrap().id);
    assert_eq!(count(&node).await, 1);

    // The same request_id for a different request is refused, naming it.
    let err = c.create_record(req("Another desk", "5b0f6a9e-1c1d-4c1e-9d57-0a8f0e1c2b3d")).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(common::bad_field(&err).as_deref(), Some("request_id"));
    let err = c.create_record(req("Mae Sot desk", "not a uuid!")).await.unwrap_err();
    assert_eq!(common::bad_field(&err).as_deref(), Some("request_id"));

    // request_ids are per user: another integration's same id is its own call.
    let other = node.cli_json(&["user", "add", "other-system", "--role", "integrator"]);
    let mut o =
        pb::record_service_client::RecordServiceClient::new(node.authed_with(other["token"].as_str().unwrap()).await);
    o.create_record(req("Mae Sot desk", "5b0f6a9e-1c1d-4c1e-9d57-0a8f0e1c2b3d")).await.unwrap();
    assert_eq!(count(&node).await, 2);
    // Without a request_id nothing is deduplicated (the client asked for two).
    c.create_record(req("Plain", "")).await.unwrap();
    c.create_record(req("Plain", "")).await.unwrap();
    assert_eq!(count(&node).await, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_retried_after_the_clients_deadline_stores_every_record_once() {
    let root = tempfile::tempdir().unwrap();
    let mut node = TestNode::init(root.path(), "th-atpd", "TH");
    node.start();
    let mut c = node.records().await;
    let batch: Vec<pb::Record> = (0..1000).map(|i| unnamed(&format!("Desk {i}"))).collect();
    let msg = pb::ImportRecordsRequest {
        records: batch,
        request_id: "0d8a4f0e-7b61-4b8e-a3b1-2c2f3e4d5a6b".into(),
        ..Default::default()
    };
    // The client gives up almost at once; the node may or may not have begun.
    let mut hasty = Request::new(msg.clone());
    hasty.set_timeout(Duration::from_millis(1));
    let err = c.import_records(hasty).await.expect_err("a 1 ms deadline is missed");
    assert!(matches!(err.code(), Code::DeadlineExceeded | Code::Cancelled), "{err:?}");
    // Two retries at once, then a third: one answer, one set of records.
    let (a, b) = tokio::join!(async { node.records().await.import_records(msg.clone()).await }, async {
        node.records().await.import_records(msg.clone()).await
    },);
    let (a, b) = (a.unwrap().into_inner(), b.unwrap().into_inner());
    let c3 = c.import_records(msg.clone()).await.unwrap().into_inner();
    assert_eq!(a.stored, 1000, "{:?}", a.problems);
    assert_eq!((a.stored_ids.clone(), a.stored), (b.stored_ids.clone(), b.stored));
    assert_eq!(a.stored_ids, c3.stored_ids);
    let ids: BTreeSet<_> = a.stored_ids.iter().collect();
    assert_eq!(ids.len(), 1000);
    assert_eq!(count(&node).await, 1000, "every record stored once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_a_crash_between_the_effect_and_the_answer_is_not_applied_again() {
    let root = tempfile::tempdir().unwrap();
    let mut node = TestNode::init(root.path(), "th-atpd", "TH");
    node.start();
    node.arm_crash("record.create");
    let msg = pb::CreateRecordRequest {
        record: Some(unnamed("Chiang Rai desk")),
        request_id: "9f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0".into(),
    };
    // The node stops right after the record is durable, before the answer is.
    let first = node.records().await.create_record(msg.clone()).await;
    assert!(first.is_err(), "the node crashed mid-call: {first:?}");
    node.restart_after_crash();
    let err = node.records().await.create_record(msg).await.expect_err("not applied twice");
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    assert!(err.message().contains("already applied"), "{err:?}");
    assert_eq!(count(&node).await, 1);
}
