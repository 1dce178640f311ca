//! The federation port: the gRPC server peers call, and the client used to
//! call them. Both sides authenticate by pinned certificate (see [`crate::tls`]);
//! the caller's node id is always taken from its certificate, never from a message.

use crate::api::status::OrStatus;
use std::future::Future;
use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::node::Node;
use crate::pb;
use crate::pb::federation_service_server::{FederationService, FederationServiceServer};
use crate::refusal;

// The client side lives in `dial`, below every adapter that calls peers.
pub use crate::dial::{dial, DialError, Peers, CALL_TIMEOUT};

/// The services the federation listener serves (health and reflection report these only).
pub const SERVICES: &[&str] = &[pb::federation_service_server::SERVICE_NAME];

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
        Err(crate::api::status::impersonation(caller, claimed))
    }
}

pub struct FederationApi {
    node: Arc<Node>,
}

pub fn server(node: Arc<Node>) -> FederationServiceServer<FederationApi> {
    FederationServiceServer::new(FederationApi { node }).max_decoding_message_size(16 * 1024 * 1024)
}

impl FederationApi {
    /// Runs one call for the authenticated caller. Every refusal it answers
    /// with an error status is counted against the caller (see [`refusal`]);
    /// a call on a certificate that is no longer pinned, against its address.
    async fn serve<Q, A, F, Fut>(&self, method: &'static str, req: Request<Q>, f: F) -> Result<Response<A>, Status>
    where
        F: FnOnce(Arc<Node>, String, Q) -> Fut,
        Fut: Future<Output = Result<A, Status>>,
    {
        let caller = match caller(&self.node, &req) {
            Ok(c) => c,
            Err(s) => {
                let source = refusal::addr(req.remote_addr());
                tracing::warn!(%source, method, "call on a certificate that is no longer pinned");
                self.node.refuse(&source, refusal::Kind::Unpinned, &format!("{method}: {}", s.message()));
                return Err(s);
            }
        };
        // Each peer has its own budget: one busy peer never costs the others.
        if let Err(retry) = self.node.gate.peer(&caller) {
            metrics::counter!("liaison_rate_limited_total", "listener" => "federation").increment(1);
            return Err(crate::api::status::exhausted(&format!("{caller} is over its call rate"), retry));
        }
        let result = f(Arc::clone(&self.node), caller.clone(), req.into_inner()).await;
        if let Err(s) = &result {
            if let Some(kind) = crate::api::status::refusal_kind(s) {
                self.node.refuse(&refusal::peer(&caller), kind, &format!("{method}: {}", s.message()));
            }
        }
        result.map(Response::new)
    }
}

fn required<T>(field: &str, v: Option<T>) -> Result<T, Status> {
    v.ok_or_else(|| crate::api::status::invalid(field, "required"))
}

#[tonic::async_trait]
impl FederationService for FederationApi {
    async fn hello(&self, req: Request<pb::HelloRequest>) -> Result<Response<pb::HelloResponse>, Status> {
        self.serve("Hello", req, |node, caller, r| async move {
            check_claim(&caller, &r.node_id)?;
            Ok(pb::HelloResponse { card: Some(node.card().1) })
        })
        .await
    }

    async fn deliver_agreement(
        &self,
        req: Request<pb::DeliverAgreementRequest>,
    ) -> Result<Response<pb::DeliverAgreementResponse>, Status> {
        self.serve("DeliverAgreement", req, |node, caller, r| async move {
            let env = required("agreement", r.agreement)?;
            let signed_by = crate::agreement::book::receive(&node, &caller, env).await?;
            Ok(pb::DeliverAgreementResponse { signed_by })
        })
        .await
    }

    async fn deliver_agreement_notice(
        &self,
        req: Request<pb::DeliverAgreementNoticeRequest>,
    ) -> Result<Response<pb::DeliverAgreementNoticeResponse>, Status> {
        self.serve("DeliverAgreementNotice", req, |node, caller, r| async move {
            let env = required("notice", r.notice)?;
            crate::agreement::book::receive_notice(&node, &caller, env).await?;
            Ok(pb::DeliverAgreementNoticeResponse {})
        })
        .await
    }

    async fn query_records(
        &self,
        req: Request<pb::QueryRecordsRequest>,
    ) -> Result<Response<pb::QueryRecordsResponse>, Status> {
        self.serve("QueryRecords", req, |node, caller, r| async move {
            Ok(pb::QueryRecordsResponse { records: crate::exchange::query::answer(&node, &caller, &r).await? })
        })
        .await
    }

    async fn match_identifiers(
        &self,
        req: Request<pb::MatchIdentifiersRequest>,
    ) -> Result<Response<pb::MatchIdentifiersResponse>, Status> {
        self.serve("MatchIdentifiers", req, |node, caller, r| async move {
            Ok(pb::MatchIdentifiersResponse { results: crate::exchange::hit::answer(&node, &caller, &r).await? })
        })
        .await
    }

    async fn push_record(
        &self,
        req: Request<pb::PushRecordRequest>,
    ) -> Result<Response<pb::PushRecordResponse>, Status> {
        self.serve("PushRecord", req, |node, caller, r| async move {
            let receipt = crate::exchange::receive::push(&node, &caller, r).await?;
            Ok(pb::PushRecordResponse { receipt: Some(receipt) })
        })
        .await
    }

    async fn retract_record(
        &self,
        req: Request<pb::RetractRecordRequest>,
    ) -> Result<Response<pb::RetractRecordResponse>, Status> {
        self.serve("RetractRecord", req, |node, caller, r| async move {
            let receipt = crate::exchange::receive::retract(&node, &caller, r).await?;
            Ok(pb::RetractRecordResponse { receipt: Some(receipt) })
        })
        .await
    }

    async fn sync_records(
        &self,
        req: Request<pb::SyncRecordsRequest>,
    ) -> Result<Response<pb::SyncRecordsResponse>, Status> {
        self.serve("SyncRecords", req, |node, caller, r| async move {
            Ok(crate::exchange::sync::answer(&node, &caller, &r).await?)
        })
        .await
    }

    async fn request_onward_consent(
        &self,
        req: Request<pb::RequestOnwardConsentRequest>,
    ) -> Result<Response<pb::RequestOnwardConsentResponse>, Status> {
        self.serve("RequestOnwardConsent", req, |node, caller, r| async move {
            crate::exchange::consent::receive_request(&node, &caller, r).await?;
            Ok(pb::RequestOnwardConsentResponse {})
        })
        .await
    }

    async fn deliver_onward_consent(
        &self,
        req: Request<pb::DeliverOnwardConsentRequest>,
    ) -> Result<Response<pb::DeliverOnwardConsentResponse>, Status> {
        self.serve("DeliverOnwardConsent", req, |node, caller, r| async move {
            let env = required("consent", r.consent)?;
            crate::exchange::consent::receive_grant(&node, &caller, env).await?;
            Ok(pb::DeliverOnwardConsentResponse {})
        })
        .await
    }

    async fn deliver_request_event(
        &self,
        req: Request<pb::DeliverRequestEventRequest>,
    ) -> Result<Response<pb::DeliverRequestEventResponse>, Status> {
        self.serve("DeliverRequestEvent", req, |node, caller, r| async move {
            let env = required("event", r.event)?;
            let receipt = crate::sop::desk::receive(&node, &caller, &r.delivery_id, env).await?;
            Ok(pb::DeliverRequestEventResponse { receipt: Some(receipt) })
        })
        .await
    }

    async fn deliver_case_update(
        &self,
        req: Request<pb::DeliverCaseUpdateRequest>,
    ) -> Result<Response<pb::DeliverCaseUpdateResponse>, Status> {
        self.serve("DeliverCaseUpdate", req, |node, caller, r| async move {
            let env = required("case", r.case)?;
            let receipt = crate::sop::cases::receive(&node, &caller, &r.delivery_id, env).await?;
            Ok(pb::DeliverCaseUpdateResponse { receipt: Some(receipt) })
        })
        .await
    }

    async fn get_directory(
        &self,
        req: Request<pb::GetDirectoryRequest>,
    ) -> Result<Response<pb::GetDirectoryResponse>, Status> {
        self.serve("GetDirectory", req, |node, _caller, _r| async move {
            Ok(pb::GetDirectoryResponse { directory: crate::hub::directory::current(&node).or_status()? })
        })
        .await
    }

    async fn push_directory(
        &self,
        req: Request<pb::PushDirectoryRequest>,
    ) -> Result<Response<pb::PushDirectoryResponse>, Status> {
        self.serve("PushDirectory", req, |node, caller, r| async move {
            let env = required("directory", r.directory)?;
            crate::hub::directory::apply(&node, &caller, &env).await?;
            Ok(pb::PushDirectoryResponse {})
        })
        .await
    }

    async fn report_request_metadata(
        &self,
        req: Request<pb::ReportRequestMetadataRequest>,
    ) -> Result<Response<pb::ReportRequestMetadataResponse>, Status> {
        self.serve("ReportRequestMetadata", req, |node, caller, r| async move {
            let m = required("metadata", r.metadata)?;
            crate::hub::store_metadata(&node, &caller, m).await?;
            Ok(pb::ReportRequestMetadataResponse {})
        })
        .await
    }

    async fn search_regional_contacts(
        &self,
        req: Request<pb::SearchRegionalContactsRequest>,
    ) -> Result<Response<pb::SearchRegionalContactsResponse>, Status> {
        self.serve("SearchRegionalContacts", req, |node, caller, r| async move {
            Ok(crate::hub::regional_contacts(&node, &caller, &r).await?)
        })
        .await
    }

    async fn relay_message(
        &self,
        req: Request<pb::RelayMessageRequest>,
    ) -> Result<Response<pb::RelayMessageResponse>, Status> {
        self.serve("RelayMessage", req, |node, caller, r| async move {
            Ok(pb::RelayMessageResponse { relay_id: crate::hub::relay::accept(&node, &caller, r).await? })
        })
        .await
    }

    async fn witness_checkpoint(
        &self,
        req: Request<pb::WitnessCheckpointRequest>,
    ) -> Result<Response<pb::WitnessCheckpointResponse>, Status> {
        self.serve("WitnessCheckpoint", req, |node, caller, r| async move {
            let env = required("checkpoint", r.checkpoint)?;
            let statement = crate::witness::net::receive(&node, &caller, env).await?;
            Ok(pb::WitnessCheckpointResponse { statement: Some(statement) })
        })
        .await
    }

    async fn get_witnessed_checkpoint(
        &self,
        req: Request<pb::GetWitnessedCheckpointRequest>,
    ) -> Result<Response<pb::GetWitnessedCheckpointResponse>, Status> {
        self.serve("GetWitnessedCheckpoint", req, |node, caller, _r| async move {
            Ok(pb::GetWitnessedCheckpointResponse { witnessed: crate::witness::net::answer(&node, &caller)? })
        })
        .await
    }

    async fn deliver_sealed(
        &self,
        req: Request<pb::DeliverSealedRequest>,
    ) -> Result<Response<pb::DeliverSealedResponse>, Status> {
        self.serve("DeliverSealed", req, |node, caller, r| async move {
            let (sender, call) = crate::hub::relay::open(&node, &caller, r).await?;
            deliver_relayed(&node, &sender, call).await?;
            Ok(pb::DeliverSealedResponse {})
        })
        .await
    }
}

/// A relayed call, opened and verified by `hub::relay::open`, handed to the
/// handler the same call would reach directly.
async fn deliver_relayed(
    node: &Node,
    sender: &str,
    call: pb::RelayedCall,
) -> Result<(), crate::exchange::ExchangeError> {
    use crate::exchange::ExchangeError;
    let sender = sender.to_string();
    match call.call {
        Some(pb::relayed_call::Call::PushRecord(p)) => {
            crate::exchange::receive::push(node, &sender, p).await?;
        }
        Some(pb::relayed_call::Call::RequestEvent(e)) => {
            let env = e.event.ok_or_else(|| crate::exchange::invalid("event", "required"))?;
            crate::sop::desk::receive(node, &sender, &e.delivery_id, env)
                .await
                .map_err(|e| ExchangeError::Refused(e.to_string()))?;
        }
        Some(pb::relayed_call::Call::RetractRecord(r)) => {
            crate::exchange::receive::retract(node, &sender, r).await?;
        }
        Some(pb::relayed_call::Call::CaseUpdate(c)) => {
            let env = c.case.ok_or_else(|| crate::exchange::invalid("case", "required"))?;
            crate::sop::cases::receive(node, &sender, &c.delivery_id, env)
                .await
                .map_err(|e| ExchangeError::Refused(e.to_string()))?;
        }
        None => return Err(crate::exchange::invalid("call", "empty")),
    }
    Ok(())
}
