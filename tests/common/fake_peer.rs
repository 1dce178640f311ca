//! A fake federation peer: a stopped node's address, certificate and
//! signing key, answering whatever the test chooses (hostile or hanging).

use std::sync::{Arc, Mutex};

use liaison::identity::Identity;
use liaison::pb;
use liaison::pb::federation_service_server::{FederationService, FederationServiceServer};
use tonic::{Request, Response, Status};

use super::TestNode;

/// How the fake answers `PushRecord`.
#[derive(Default, Clone)]
pub(crate) enum PushAnswer {
    #[default]
    Unimplemented,
    /// Every push gets this error status.
    Status(tonic::Code, String),
    /// The first push is held open (never answered); later ones are `UNAVAILABLE`.
    HoldFirst,
}

/// What the fake peer answers, and what it saw.
#[derive(Default, Clone)]
pub(crate) struct Answers {
    pub query: Vec<pb::SharedRecord>,
    pub sync: pb::SyncRecordsResponse,
    pub sync_calls: u32,
    /// Sync calls are held open (never answered).
    pub hold_sync: bool,
    pub push: PushAnswer,
    pub push_calls: u32,
    /// The held push call is still open (the caller has not given up).
    pub holding: bool,
}

#[derive(Clone)]
struct FakePeer {
    answers: Arc<Mutex<Answers>>,
}

fn no<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("the fake peer answers only queries, syncs and pushes"))
}

/// Clears `holding` when the held call is dropped (the caller gave up).
struct Holding(Arc<Mutex<Answers>>);

impl Drop for Holding {
    fn drop(&mut self) {
        self.0.lock().unwrap().holding = false;
    }
}

#[tonic::async_trait]
impl FederationService for FakePeer {
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
        let hold = {
            let mut a = self.answers.lock().unwrap();
            a.push_calls += 1;
            match a.push.clone() {
                PushAnswer::Unimplemented => return no(),
                PushAnswer::Status(code, msg) => return Err(Status::new(code, msg)),
                PushAnswer::HoldFirst if a.push_calls == 1 => {
                    a.holding = true;
                    Holding(Arc::clone(&self.answers))
                }
                PushAnswer::HoldFirst => return Err(Status::unavailable("busy")),
            }
        };
        std::future::pending::<()>().await;
        drop(hold);
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
        let hold = {
            let mut a = self.answers.lock().unwrap();
            a.sync_calls += 1;
            if !a.hold_sync {
                return Ok(Response::new(a.sync.clone()));
            }
            a.holding = true;
            Holding(Arc::clone(&self.answers))
        };
        std::future::pending::<()>().await;
        drop(hold);
        no()
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
    async fn witness_checkpoint(
        &self,
        _: Request<pb::WitnessCheckpointRequest>,
    ) -> Result<Response<pb::WitnessCheckpointResponse>, Status> {
        no()
    }
    async fn get_witnessed_checkpoint(
        &self,
        _: Request<pb::GetWitnessedCheckpointRequest>,
    ) -> Result<Response<pb::GetWitnessedCheckpointResponse>, Status> {
        no()
    }
}

/// Serves a fake `kh` (a stopped node) on its federation address with its
/// certificate and key, accepting only `th`'s pinned certificate (real
/// mutual TLS). What it answers is in `answers`.
pub(crate) async fn serve_fake(
    kh: &TestNode,
    th: &TestNode,
    answers: Arc<Mutex<Answers>>,
) -> tokio::task::JoinHandle<()> {
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
    let svc = FederationServiceServer::new(FakePeer { answers });
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await;
    })
}
