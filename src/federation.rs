//! The federation port: the gRPC server peers call, and the client used to
//! call them. Both sides authenticate by pinned certificate (see [`crate::tls`]);
//! the caller's node id is always taken from its certificate, never from a message.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

use crate::identity::{fingerprint, Identity};
use crate::node::Node;
use crate::pb;
use crate::pb::federation_service_client::FederationServiceClient;
use crate::pb::federation_service_server::{FederationService, FederationServiceServer};
use crate::tls;

/// Deadline for a single federation call unless the caller sets a shorter one.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("peer {0} is not pinned")]
    UnknownPeer(String),
    #[error("peer {peer}: bad endpoint {endpoint:?}: {reason}")]
    Endpoint { peer: String, endpoint: String, reason: String },
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
}

/// Open channels to peers, keyed by node id and the certificate they pin, so a
/// re-pinned peer never reuses a channel to its old certificate.
#[derive(Default)]
pub struct Peers {
    channels: Mutex<HashMap<String, ([u8; 32], Channel)>>,
}

impl Peers {
    pub fn forget(&self, node_id: &str) {
        if let Ok(mut m) = self.channels.lock() {
            m.remove(node_id);
        }
    }
}

/// A lazily connecting channel to `card`'s federation endpoint over mutual TLS.
pub fn channel(node: &Node, card: &pb::NodeCard) -> Result<Channel, DialError> {
    let fp = fingerprint(&card.tls_certificate);
    if let Ok(m) = node.peers.channels.lock() {
        if let Some((pinned, ch)) = m.get(&card.node_id) {
            if *pinned == fp {
                return Ok(ch.clone());
            }
        }
    }
    let ch = dial(&node.identity, card)?;
    if let Ok(mut m) = node.peers.channels.lock() {
        m.insert(card.node_id.clone(), (fp, ch.clone()));
    }
    Ok(ch)
}

/// A lazily connecting channel to `card`'s federation endpoint over mutual
/// TLS, presenting `identity`'s certificate and accepting only the card's.
pub fn dial(identity: &Identity, card: &pb::NodeCard) -> Result<Channel, DialError> {
    let cfg = tls::client_config(identity.tls_cert.clone(), identity.tls_key.clone_key(), &card.tls_certificate)?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let addr = card.federation_endpoint.clone();
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| DialError::Endpoint { peer: card.node_id.clone(), endpoint: addr.clone(), reason: e.to_string() })?
        .connect_timeout(Duration::from_secs(5))
        .timeout(CALL_TIMEOUT)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true);
    let server_name = rustls::pki_types::ServerName::try_from(format!("{}.liaison", card.node_id)).map_err(|e| {
        DialError::Endpoint { peer: card.node_id.clone(), endpoint: addr.clone(), reason: e.to_string() }
    })?;
    let ch = endpoint.connect_with_connector_lazy(tower::service_fn(move |_uri: http::Uri| {
        let connector = connector.clone();
        let addr = addr.clone();
        let server_name = server_name.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect(&addr).await?;
            tcp.set_nodelay(true)?;
            let stream = connector.connect(server_name, tcp).await?;
            Ok::<_, std::io::Error>(TokioIo::new(stream))
        }
    }));
    Ok(ch)
}

pub fn client(node: &Node, card: &pb::NodeCard) -> Result<FederationServiceClient<Channel>, DialError> {
    Ok(FederationServiceClient::new(channel(node, card)?).max_decoding_message_size(16 * 1024 * 1024))
}

/// The node id of the peer that made this call, from its pinned certificate.
pub fn caller<T>(node: &Node, req: &Request<T>) -> Result<String, Status> {
    let certs = req.peer_certs().ok_or_else(|| Status::unauthenticated("no client certificate"))?;
    let cert = certs.first().ok_or_else(|| Status::unauthenticated("no client certificate"))?;
    let id =
        node.pins.node_for(cert).ok_or_else(|| Status::unauthenticated("client certificate is no longer pinned"))?;
    tracing::Span::current().record("peer", id.as_str());
    Ok(id)
}

/// Refuses a message whose claimed sender is not the authenticated caller.
pub fn check_claim(caller: &str, claimed: &str) -> Result<(), Status> {
    if caller == claimed {
        Ok(())
    } else {
        tracing::warn!(%caller, %claimed, "peer claimed another node's id");
        Err(Status::permission_denied(format!(
            "the presented certificate belongs to {caller}, which cannot act as {claimed}"
        )))
    }
}

pub struct FederationApi {
    node: Arc<Node>,
}

pub fn server(node: Arc<Node>) -> FederationServiceServer<FederationApi> {
    FederationServiceServer::new(FederationApi { node }).max_decoding_message_size(16 * 1024 * 1024)
}

#[tonic::async_trait]
impl FederationService for FederationApi {
    async fn hello(&self, req: Request<pb::HelloRequest>) -> Result<Response<pb::HelloResponse>, Status> {
        let caller = caller(&self.node, &req)?;
        check_claim(&caller, &req.get_ref().node_id)?;
        let (_, env) = self.node.card();
        Ok(Response::new(pb::HelloResponse { card: Some(env) }))
    }

    async fn deliver_agreement(
        &self,
        req: Request<pb::DeliverAgreementRequest>,
    ) -> Result<Response<pb::DeliverAgreementResponse>, Status> {
        let caller = caller(&self.node, &req)?;
        let env = req.into_inner().agreement.ok_or_else(|| crate::api::status::invalid("agreement", "required"))?;
        let signed_by = crate::agreement::book::receive(&self.node, &caller, env).await?;
        Ok(Response::new(pb::DeliverAgreementResponse { signed_by }))
    }

    async fn deliver_agreement_notice(
        &self,
        req: Request<pb::DeliverAgreementNoticeRequest>,
    ) -> Result<Response<pb::DeliverAgreementNoticeResponse>, Status> {
        let caller = caller(&self.node, &req)?;
        let env = req.into_inner().notice.ok_or_else(|| crate::api::status::invalid("notice", "required"))?;
        crate::agreement::book::receive_notice(&self.node, &caller, env).await?;
        Ok(Response::new(pb::DeliverAgreementNoticeResponse {}))
    }

    async fn query_records(
        &self,
        req: Request<pb::QueryRecordsRequest>,
    ) -> Result<Response<pb::QueryRecordsResponse>, Status> {
        let caller = caller(&self.node, &req)?;
        let records = crate::exchange::query::answer(&self.node, &caller, req.get_ref()).await?;
        Ok(Response::new(pb::QueryRecordsResponse { records }))
    }

    async fn match_identifiers(
        &self,
        req: Request<pb::MatchIdentifiersRequest>,
    ) -> Result<Response<pb::MatchIdentifiersResponse>, Status> {
        let caller = caller(&self.node, &req)?;
        let results = crate::exchange::hit::answer(&self.node, &caller, req.get_ref()).await?;
        Ok(Response::new(pb::MatchIdentifiersResponse { results }))
    }

    async fn push_record(
        &self,
        req: Request<pb::PushRecordRequest>,
    ) -> Result<Response<pb::PushRecordResponse>, Status> {
        let caller = caller(&self.node, &req)?;
        let receipt = crate::exchange::receive::push(&self.node, &caller, req.into_inner()).await?;
        Ok(Response::new(pb::PushRecordResponse { receipt: Some(receipt) }))
    }

    async fn retract_record(
        &self,
        req: Request<pb::RetractRecordRequest>,
    ) -> Result<Response<pb::RetractRecordResponse>, Status> {
        let caller = caller(&self.node, &req)?;
        let receipt = crate::exchange::receive::retract(&self.node, &caller, req.into_inner()).await?;
        Ok(Response::new(pb::RetractRecordResponse { receipt: Some(receipt) }))
    }

    async fn sync_records(
        &self,
        req: Request<pb::SyncRecordsRequest>,
    ) -> Result<Response<pb::SyncRecordsResponse>, Status> {
        let caller = caller(&self.node, &req)?;
        Ok(Response::new(crate::exchange::sync::answer(&self.node, &caller, req.get_ref()).await?))
    }

    async fn request_onward_consent(
        &self,
        req: Request<pb::RequestOnwardConsentRequest>,
    ) -> Result<Response<pb::RequestOnwardConsentResponse>, Status> {
        let caller = caller(&self.node, &req)?;
        crate::exchange::consent::receive_request(&self.node, &caller, req.into_inner()).await?;
        Ok(Response::new(pb::RequestOnwardConsentResponse {}))
    }

    async fn deliver_onward_consent(
        &self,
        req: Request<pb::DeliverOnwardConsentRequest>,
    ) -> Result<Response<pb::DeliverOnwardConsentResponse>, Status> {
        let caller = caller(&self.node, &req)?;
        let env = req.into_inner().consent.ok_or_else(|| crate::api::status::invalid("consent", "required"))?;
        crate::exchange::consent::receive_grant(&self.node, &caller, env).await?;
        Ok(Response::new(pb::DeliverOnwardConsentResponse {}))
    }

    async fn deliver_request_event(
        &self,
        req: Request<pb::DeliverRequestEventRequest>,
    ) -> Result<Response<pb::DeliverRequestEventResponse>, Status> {
        let caller = caller(&self.node, &req)?;
        let r = req.into_inner();
        let env = r.event.ok_or_else(|| crate::api::status::invalid("event", "required"))?;
        let receipt = crate::sop::desk::receive(&self.node, &caller, &r.delivery_id, env).await?;
        Ok(Response::new(pb::DeliverRequestEventResponse { receipt: Some(receipt) }))
    }

    async fn deliver_case_update(
        &self,
        req: Request<pb::DeliverCaseUpdateRequest>,
    ) -> Result<Response<pb::DeliverCaseUpdateResponse>, Status> {
        let caller = caller(&self.node, &req)?;
        let r = req.into_inner();
        let env = r.case.ok_or_else(|| crate::api::status::invalid("case", "required"))?;
        let receipt = crate::sop::cases::receive(&self.node, &caller, &r.delivery_id, env).await?;
        Ok(Response::new(pb::DeliverCaseUpdateResponse { receipt: Some(receipt) }))
    }

    async fn get_directory(
        &self,
        req: Request<pb::GetDirectoryRequest>,
    ) -> Result<Response<pb::GetDirectoryResponse>, Status> {
        caller(&self.node, &req)?;
        let directory = crate::hub::directory::current(&self.node)?;
        Ok(Response::new(pb::GetDirectoryResponse { directory }))
    }

    async fn push_directory(
        &self,
        req: Request<pb::PushDirectoryRequest>,
    ) -> Result<Response<pb::PushDirectoryResponse>, Status> {
        let caller = caller(&self.node, &req)?;
        let env = req.into_inner().directory.ok_or_else(|| crate::api::status::invalid("directory", "required"))?;
        crate::hub::directory::apply(&self.node, &caller, &env).await?;
        Ok(Response::new(pb::PushDirectoryResponse {}))
    }

    async fn report_request_metadata(
        &self,
        req: Request<pb::ReportRequestMetadataRequest>,
    ) -> Result<Response<pb::ReportRequestMetadataResponse>, Status> {
        let caller = caller(&self.node, &req)?;
        let m = req.into_inner().metadata.ok_or_else(|| crate::api::status::invalid("metadata", "required"))?;
        crate::hub::store_metadata(&self.node, &caller, m).await?;
        Ok(Response::new(pb::ReportRequestMetadataResponse {}))
    }

    async fn search_regional_contacts(
        &self,
        req: Request<pb::SearchRegionalContactsRequest>,
    ) -> Result<Response<pb::SearchRegionalContactsResponse>, Status> {
        let caller = caller(&self.node, &req)?;
        Ok(Response::new(crate::hub::regional_contacts(&self.node, &caller, req.get_ref()).await?))
    }

    async fn relay_message(
        &self,
        req: Request<pb::RelayMessageRequest>,
    ) -> Result<Response<pb::RelayMessageResponse>, Status> {
        let caller = caller(&self.node, &req)?;
        let relay_id = crate::hub::relay::accept(&self.node, &caller, req.into_inner()).await?;
        Ok(Response::new(pb::RelayMessageResponse { relay_id }))
    }

    async fn deliver_sealed(
        &self,
        req: Request<pb::DeliverSealedRequest>,
    ) -> Result<Response<pb::DeliverSealedResponse>, Status> {
        let caller = caller(&self.node, &req)?;
        crate::hub::relay::receive(&self.node, &caller, req.into_inner()).await?;
        Ok(Response::new(pb::DeliverSealedResponse {}))
    }
}
