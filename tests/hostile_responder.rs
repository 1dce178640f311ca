//! A hostile peer on the answering side: KH's node is stopped and a fake
//! federation server takes its address, its pinned certificate and its
//! signing key. TH's sync and queries then receive whatever the attacker
//! chooses; TH must keep and show only what its own decision allows.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use liaison::envelope::payload;
use liaison::identity::Identity;
use liaison::pb;
use liaison::pb::federation_service_server::{FederationService, FederationServiceServer};
use liaison::pb::record::Body;
use tonic::{Request, Response, Status};

/// What the fake KH answers.
#[derive(Default, Clone)]
struct Answers {
    query: Vec<pb::SharedRecord>,
    sync: pb::SyncRecordsResponse,
    sync_calls: u32,
}

#[derive(Clone)]
struct FakeKh {
    answers: Arc<Mutex<Answers>>,
}

fn no<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("the fake peer answers only queries and syncs"))
}

#[tonic::async_trait]
impl FederationService for FakeKh {
    async fn hello(&self, _: Request<pb::HelloRequest>) -> Result<Response<pb::HelloResponse>, Status> {
        no()
    }
    async fn deliver_agreement(
        &self,
        _: Request<pb::DeliverAgreementRequest>,
    ) -> Result<Response<pb::DeliverAgreementResponse>, Status> {
        no()
    }
    async fn deliver_agreement_notice(
        &self,
        _: Request<pb::DeliverAgreementNoticeRequest>,
    ) -> Result<Response<pb::DeliverAgreementNoticeResponse>, Status> {
        no()
    }
    async fn query_records(
        &self,
        _: Request<pb::QueryRecordsRequest>,
    ) -> Result<Response<pb::QueryRecordsResponse>, Status> {
        Ok(Response::new(pb::QueryRecordsResponse { records: self.answers.lock().unwrap().query.clone() }))
    }
    async fn match_identifiers(
        &self,
        _: Request<pb::MatchIdentifiersRequest>,
    ) -> Result<Response<pb::MatchIdentifiersResponse>, Status> {
        no()
    }
    async fn push_record(&self, _: Request<pb::PushRecordRequest>) -> Result<Response<pb::PushRecordResponse>, Status> {
        no()
    }
    async fn retract_record(
        &self,
        _: Request<pb::RetractRecordRequest>,
    ) -> Result<Response<pb::RetractRecordResponse>, Status> {
        no()
    }
    async fn sync_records(
        &self,
        _: Request<pb::SyncRecordsRequest>,
    ) -> Result<Response<pb::SyncRecordsResponse>, Status> {
        let mut a = self.answers.lock().unwrap();
        a.sync_calls += 1;
        Ok(Response::new(a.sync.clone()))
    }
    async fn request_onward_consent(
        &self,
        _: Request<pb::RequestOnwardConsentRequest>,
    ) -> Result<Response<pb::RequestOnwardConsentResponse>, Status> {
        no()
    }
    async fn deliver_onward_consent(
        &self,
        _: Request<pb::DeliverOnwardConsentRequest>,
    ) -> Result<Response<pb::DeliverOnwardConsentResponse>, Status> {
        no()
    }
    async fn deliver_request_event(
        &self,
        _: Request<pb::DeliverRequestEventRequest>,
    ) -> Result<Response<pb::DeliverRequestEventResponse>, Status> {
        no()
    }
    async fn deliver_case_update(
        &self,
        _: Request<pb::DeliverCaseUpdateRequest>,
    ) -> Result<Response<pb::DeliverCaseUpdateResponse>, Status> {
        no()
    }
    async fn get_directory(
        &self,
        _: Request<pb::GetDirectoryRequest>,
    ) -> Result<Response<pb::GetDirectoryResponse>, Status> {
        no()
    }
    async fn push_directory(
        &self,
        _: Request<pb::PushDirectoryRequest>,
    ) -> Result<Response<pb::PushDirectoryResponse>, Status> {
        no()
    }
    async fn report_request_metadata(
        &self,
        _: Request<pb::ReportRequestMetadataRequest>,
    ) -> Result<Response<pb::ReportRequestMetadataResponse>, Status> {
        no()
    }
    async fn search_regional_contacts(
        &self,
        _: Request<pb::SearchRegionalContactsRequest>,
    ) -> Result<Response<pb::SearchRegionalContactsResponse>, Status> {
        no()
    }
    async fn relay_message(
        &self,
        _: Request<pb::RelayMessageRequest>,
    ) -> Result<Response<pb::RelayMessageResponse>, Status> {
        no()
    }
    async fn deliver_sealed(
        &self,
        _: Request<pb::DeliverSealedRequest>,
    ) -> Result<Response<pb::DeliverSealedResponse>, Status> {
        no()
    }
}

/// Serves the fake KH on KH's federation address with KH's certificate,
/// accepting only TH's pinned certificate (real mutual TLS).
async fn serve_fake(kh: &TestNode, th: &TestNode, answers: Arc<Mutex<Answers>>) -> tokio::task::JoinHandle<()> {
    let id = Identity::load(&liaison::config::Layout::new(&kh.dir)).unwrap();
    let th_card = th.card();
    let pins = liaison::tls::PinSet::default();
    pins.insert(&th_card.tls_certificate, &th_card.node_id);
    let cfg = liaison::tls::server_config(id.tls_cert.clone(), id.tls_key.clone_key(), pins).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    // KH's port was just released by the killed process: retry the bind briefly.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let listener = loop {
        match tokio::net::TcpListener::bind(kh.fed).await {
            Ok(l) => break l,
            Err(e) => {
                assert!(std::time::Instant::now() < deadline, "bind {}: {e}", kh.fed);
                tokio::task::yield_now().await;
            }
        }
    };
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                if let Ok(s) = acceptor.accept(tcp).await {
                    let _ = tx.send(Ok::<_, std::io::Error>(s)).await;
                }
            });
        }
    });
    let svc = FederationServiceServer::new(FakeKh { answers });
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await;
    })
}

/// Contact points flow both ways for coordination, but never their channels.
const NO_CHANNELS: &str = r#"
[[grants]]
from = "*"
to = "*"
record_kinds = ["contact_point"]
purposes = ["coordination"]
operations = ["query", "sync"]
max_handling = "green"
redacted_fields = ["contact_point.channels"]
onward_sharing = "forbidden"
"#;

fn kh_contact(id: &str, with_channels: bool) -> pb::Record {
    let mut r = contact_point(id, "KH duty desk");
    r.originator = "kh-antht".into();
    r.version = 1;
    let now = liaison::convert::timestamp(time::OffsetDateTime::now_utc());
    r.create_time = Some(now);
    r.update_time = Some(now);
    if !with_channels {
        if let Some(Body::ContactPoint(c)) = r.body.as_mut() {
            c.channels.clear();
        }
        r.redacted_fields = vec!["contact_point.channels".into()];
    }
    r
}

fn shared(id: &Identity, rec: &pb::Record) -> pb::SharedRecord {
    pb::SharedRecord {
        record: Some(liaison::envelope::seal(payload::RECORD, rec, "kh-antht", &id.signing_key)),
        agreement_id: "th-kh".into(),
        agreement_version: 1,
        onward_sharing: pb::OnwardSharing::Forbidden as i32,
        retention_days: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_and_query_answers_carrying_withheld_fields_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let mut th = TestNode::init(root.path(), "th-atpd", "TH");
    let mut kh = TestNode::init(root.path(), "kh-antht", "KH");
    th.start();
    kh.start();
    pin_all(&[&th, &kh]);
    activate(&[&th, &kh], &bilateral("th-kh", "th-atpd", "kh-antht", 365, NO_CHANNELS), "th-kh");
    kh.kill();

    let kh_id = Identity::load(&liaison::config::Layout::new(&kh.dir)).unwrap();
    let bad = shared(&kh_id, &kh_contact("cp-bad", true));
    let good = shared(&kh_id, &kh_contact("cp-good", false));
    let answers = Arc::new(Mutex::new(Answers {
        query: vec![bad.clone(), good.clone()],
        sync: pb::SyncRecordsResponse { records: vec![bad, good], withdrawn: vec![], cursor: 7, more: false },
        sync_calls: 0,
    }));
    let server = serve_fake(&kh, &th, Arc::clone(&answers)).await;

    // Sync: only the copy without channels is kept.
    let mut ex = pb::exchange_service_client::ExchangeServiceClient::new(th.authed().await);
    let r = ex.sync_now(pb::SyncNowRequest { peer: "kh-antht".into() }).await.unwrap().into_inner();
    assert_eq!(r.peers[0].received, 1, "{:?}", r.peers);
    let mut rc = th.records().await;
    assert!(rc.get_record(pb::GetRecordRequest { id: "kh-antht/cp-bad".into() }).await.is_err());
    assert!(rc.get_record(pb::GetRecordRequest { id: "kh-antht/cp-good".into() }).await.is_ok());
    let refusals = audit_entries(&th, "policy.decision");
    assert!(
        refusals.iter().any(|e| e.to_string().contains("withheld_field_carried")),
        "the refusal is audited: {refusals:?}"
    );

    // Query: the officer is shown only the copy without channels.
    let q = ex
        .query(pb::QueryRequest {
            peer: "kh-antht".into(),
            kind: pb::RecordKind::ContactPoint as i32,
            purpose: pb::Purpose::Coordination as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let shown: Vec<&str> = q.peers[0].records.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(shown, vec!["cp-good"], "{:?}", q.peers);

    // A peer that keeps saying "more" without moving its cursor is not asked forever.
    {
        let mut a = answers.lock().unwrap();
        a.sync = pb::SyncRecordsResponse { records: vec![], withdrawn: vec![], cursor: 7, more: true };
        a.sync_calls = 0;
    }
    let r = ex.sync_now(pb::SyncNowRequest { peer: "kh-antht".into() }).await.unwrap().into_inner();
    assert!(r.peers[0].error.contains("cursor"), "{:?}", r.peers);
    assert!(answers.lock().unwrap().sync_calls <= 2, "asked {} times", answers.lock().unwrap().sync_calls);

    // After revocation TH neither asks nor takes anything.
    th.cli_ok(&["agreement", "revoke", "th-kh", "--reason", "ended"]);
    {
        let mut a = answers.lock().unwrap();
        a.sync = pb::SyncRecordsResponse {
            records: vec![shared(&kh_id, &kh_contact("cp-late", false))],
            withdrawn: vec![],
            cursor: 9,
            more: false,
        };
        a.query = vec![shared(&kh_id, &kh_contact("cp-late", false))];
    }
    let r = ex.sync_now(pb::SyncNowRequest { peer: "kh-antht".into() }).await.unwrap().into_inner();
    assert_eq!(r.peers[0].received, 0);
    assert_eq!(r.peers[0].outcome, pb::PeerOutcome::Denied as i32, "{:?}", r.peers);
    let q = ex
        .query(pb::QueryRequest {
            peer: "kh-antht".into(),
            kind: pb::RecordKind::ContactPoint as i32,
            purpose: pb::Purpose::Coordination as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(q.peers[0].records.is_empty(), "{:?}", q.peers);
    assert!(rc.get_record(pb::GetRecordRequest { id: "kh-antht/cp-late".into() }).await.is_err());
    server.abort();
}
