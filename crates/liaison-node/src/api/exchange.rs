//! ExchangeService handlers: thin, the work is in [`crate::exchange`].

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{require, Caller};
use crate::exchange::{self, consent, hit, outbox, query, sync};
use crate::node::Node;
use crate::pb::{self, UserRole};

pub struct ExchangeApi {
    node: Arc<Node>,
}

impl ExchangeApi {
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }
}

fn actor(c: &Caller) -> String {
    format!("user:{}", c.name)
}

const EXCHANGERS: &[UserRole] = &[UserRole::Officer];

#[tonic::async_trait]
impl pb::exchange_service_server::ExchangeService for ExchangeApi {
    async fn query(&self, req: Request<pb::QueryRequest>) -> Result<Response<pb::QueryResponse>, Status> {
        let c = require(&req, EXCHANGERS)?;
        let peers = query::run(&self.node, &actor(&c), req.get_ref()).await?;
        Ok(Response::new(pb::QueryResponse { peers }))
    }

    async fn check_identifiers(
        &self,
        req: Request<pb::CheckIdentifiersRequest>,
    ) -> Result<Response<pb::CheckIdentifiersResponse>, Status> {
        let c = require(&req, EXCHANGERS)?;
        let peers = hit::run(&self.node, &actor(&c), req.get_ref()).await?;
        Ok(Response::new(pb::CheckIdentifiersResponse { peers }))
    }

    async fn share_record(
        &self,
        req: Request<pb::ShareRecordRequest>,
    ) -> Result<Response<pb::ShareRecordResponse>, Status> {
        let c = require(&req, EXCHANGERS)?;
        let r = req.into_inner();
        if r.record_id.is_empty() {
            return Err(super::status::invalid("record_id", "required"));
        }
        let purpose = exchange::purpose_of("purpose", r.purpose)?;
        let (item, shared) = if r.validate_only {
            outbox::preview(&self.node, &actor(&c), &r.record_id, &r.peer, purpose).await?
        } else {
            outbox::share(&self.node, &actor(&c), &r.record_id, &r.peer, purpose).await?
        };
        let redacted = shared
            .record
            .as_ref()
            .and_then(|e| crate::envelope::decode::<pb::Record>(e).ok())
            .map(|r| r.redacted_fields)
            .unwrap_or_default();
        Ok(Response::new(pb::ShareRecordResponse {
            item: Some(item),
            agreement_id: shared.agreement_id,
            redacted_fields: redacted,
        }))
    }

    async fn list_outbox(
        &self,
        req: Request<pb::ListOutboxRequest>,
    ) -> Result<Response<pb::ListOutboxResponse>, Status> {
        require(&req, &[UserRole::Officer, UserRole::Auditor])?;
        Ok(Response::new(pb::ListOutboxResponse { items: outbox::list(&self.node, req.get_ref().all)? }))
    }

    async fn list_receipts(
        &self,
        req: Request<pb::ListReceiptsRequest>,
    ) -> Result<Response<pb::ListReceiptsResponse>, Status> {
        require(&req, &[UserRole::Officer, UserRole::Auditor])?;
        let key = crate::store::records::resolve_key(self.node.id(), &req.get_ref().record_id);
        let (receipts, envelopes) = outbox::receipts(&self.node, &key)?;
        Ok(Response::new(pb::ListReceiptsResponse { receipts, envelopes }))
    }

    async fn sync_now(&self, req: Request<pb::SyncNowRequest>) -> Result<Response<pb::SyncNowResponse>, Status> {
        let c = require(&req, &[UserRole::Officer, UserRole::Integrator])?;
        Ok(Response::new(pb::SyncNowResponse { peers: sync::now(&self.node, &actor(&c), &req.get_ref().peer).await? }))
    }

    async fn request_consent(
        &self,
        req: Request<pb::RequestConsentRequest>,
    ) -> Result<Response<pb::RequestConsentResponse>, Status> {
        let c = require(&req, EXCHANGERS)?;
        let r = req.into_inner();
        let purpose = exchange::purpose_of("purpose", r.purpose)?;
        let consent_id = consent::request(&self.node, &actor(&c), &r.record_id, &r.third_party, purpose).await?;
        Ok(Response::new(pb::RequestConsentResponse { consent_id }))
    }

    async fn list_consent_requests(
        &self,
        req: Request<pb::ListConsentRequestsRequest>,
    ) -> Result<Response<pb::ListConsentRequestsResponse>, Status> {
        require(&req, &[UserRole::Officer, UserRole::Auditor])?;
        Ok(Response::new(pb::ListConsentRequestsResponse { requests: consent::list_requests(&self.node)? }))
    }

    async fn grant_consent(
        &self,
        req: Request<pb::GrantConsentRequest>,
    ) -> Result<Response<pb::GrantConsentResponse>, Status> {
        let c = require(&req, EXCHANGERS)?;
        let r = consent::grant(&self.node, &actor(&c), &req.get_ref().consent_id).await?;
        Ok(Response::new(pb::GrantConsentResponse { request: Some(r) }))
    }

    async fn search_region(
        &self,
        req: Request<pb::SearchRegionRequest>,
    ) -> Result<Response<pb::SearchRegionResponse>, Status> {
        let c = require(&req, &[UserRole::Officer, UserRole::Integrator])?;
        let r = req.get_ref();
        if r.text.chars().count() > 200 {
            return Err(super::status::invalid("text", "at most 200 characters"));
        }
        let found = crate::hub::search_regional(&self.node, &actor(&c), &r.text, &r.country).await?;
        Ok(Response::new(pb::SearchRegionResponse { records: found.into_iter().map(|(r, _)| r).collect() }))
    }
}
