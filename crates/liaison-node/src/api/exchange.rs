//! ExchangeService handlers: thin, the work is in [`crate::exchange`].

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{require, retry, Caller};
use crate::exchange::{self, consent, hit, outbox, query, sync};
use crate::node::Node;
use crate::pb;
use crate::scope::Scope;

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

#[tonic::async_trait]
impl pb::exchange_service_server::ExchangeService for ExchangeApi {
    async fn query(&self, req: Request<pb::QueryRequest>) -> Result<Response<pb::QueryResponse>, Status> {
        let c = require(&req, Scope::Query)?;
        let peers = query::run(&self.node, &actor(&c), req.get_ref()).await?;
        Ok(Response::new(pb::QueryResponse { peers }))
    }

    async fn check_identifiers(
        &self,
        req: Request<pb::CheckIdentifiersRequest>,
    ) -> Result<Response<pb::CheckIdentifiersResponse>, Status> {
        let c = require(&req, Scope::Check)?;
        let peers = hit::run(&self.node, &actor(&c), req.get_ref()).await?;
        Ok(Response::new(pb::CheckIdentifiersResponse { peers }))
    }

    async fn share_record(
        &self,
        req: Request<pb::ShareRecordRequest>,
    ) -> Result<Response<pb::ShareRecordResponse>, Status> {
        let c = require(&req, Scope::Shares)?;
        let node = Arc::clone(&self.node);
        let who = actor(&c);
        let out = retry::once(&self.node, &c, "ShareRecord", req.into_inner(), retry::as_is, |r| async move {
            if r.record_id.is_empty() {
                return Err(super::status::invalid("record_id", "required"));
            }
            let purpose = exchange::purpose_of("purpose", r.purpose)?;
            let (item, shared) = if r.validate_only {
                outbox::preview(&node, &who, &r.record_id, &r.peer, purpose).await?
            } else {
                outbox::share(&node, &who, &r.record_id, &r.peer, purpose).await?
            };
            let redacted = shared
                .record
                .as_ref()
                .and_then(|e| crate::envelope::decode::<pb::Record>(e).ok())
                .map(|r| r.redacted_fields)
                .unwrap_or_default();
            Ok(pb::ShareRecordResponse {
                item: Some(item),
                agreement_id: shared.agreement_id,
                redacted_fields: redacted,
            })
        })
        .await?;
        Ok(Response::new(out))
    }

    async fn list_outbox(
        &self,
        req: Request<pb::ListOutboxRequest>,
    ) -> Result<Response<pb::ListOutboxResponse>, Status> {
        require(&req, Scope::SharesRead)?;
        let r = req.get_ref();
        let paging = super::page::Paging::of(r.page_size, &r.page_token)?;
        let (items, next_page_token) = paging.page(outbox::list(&self.node, r.all)?, |i| i.delivery_id.clone());
        Ok(Response::new(pb::ListOutboxResponse { items, next_page_token }))
    }

    async fn list_receipts(
        &self,
        req: Request<pb::ListReceiptsRequest>,
    ) -> Result<Response<pb::ListReceiptsResponse>, Status> {
        require(&req, Scope::SharesRead)?;
        let r = req.get_ref();
        let paging = super::page::Paging::of(r.page_size, &r.page_token)?;
        let key = crate::store::records::resolve_key(self.node.id(), &r.record_id);
        let (receipts, envelopes) = outbox::receipts(&self.node, &key)?;
        // Each receipt travels with its signed envelope.
        let pairs: Vec<_> = receipts.into_iter().zip(envelopes).collect();
        let (pairs, next_page_token) = paging.page(pairs, |(r, _)| r.delivery_id.clone());
        let (receipts, envelopes) = pairs.into_iter().unzip();
        Ok(Response::new(pb::ListReceiptsResponse { receipts, envelopes, next_page_token }))
    }

    async fn sync_now(&self, req: Request<pb::SyncNowRequest>) -> Result<Response<pb::SyncNowResponse>, Status> {
        let c = require(&req, Scope::Shares)?;
        Ok(Response::new(pb::SyncNowResponse { peers: sync::now(&self.node, &actor(&c), &req.get_ref().peer).await? }))
    }

    async fn request_consent(
        &self,
        req: Request<pb::RequestConsentRequest>,
    ) -> Result<Response<pb::RequestConsentResponse>, Status> {
        let c = require(&req, Scope::Shares)?;
        let node = Arc::clone(&self.node);
        let who = actor(&c);
        let out = retry::once(&self.node, &c, "RequestConsent", req.into_inner(), retry::as_is, |r| async move {
            let purpose = exchange::purpose_of("purpose", r.purpose)?;
            let consent_id = consent::request(&node, &who, &r.record_id, &r.third_party, purpose).await?;
            Ok(pb::RequestConsentResponse { consent_id })
        })
        .await?;
        Ok(Response::new(out))
    }

    async fn list_consent_requests(
        &self,
        req: Request<pb::ListConsentRequestsRequest>,
    ) -> Result<Response<pb::ListConsentRequestsResponse>, Status> {
        require(&req, Scope::SharesRead)?;
        let r = req.get_ref();
        let paging = super::page::Paging::of(r.page_size, &r.page_token)?;
        let (requests, next_page_token) = paging.page(consent::list_requests(&self.node)?, |c| c.consent_id.clone());
        Ok(Response::new(pb::ListConsentRequestsResponse { requests, next_page_token }))
    }

    async fn grant_consent(
        &self,
        req: Request<pb::GrantConsentRequest>,
    ) -> Result<Response<pb::GrantConsentResponse>, Status> {
        let c = require(&req, Scope::Shares)?;
        let r = consent::grant(&self.node, &actor(&c), &req.get_ref().consent_id).await?;
        Ok(Response::new(pb::GrantConsentResponse { request: Some(r) }))
    }

    async fn search_region(
        &self,
        req: Request<pb::SearchRegionRequest>,
    ) -> Result<Response<pb::SearchRegionResponse>, Status> {
        let c = require(&req, Scope::Query)?;
        let r = req.get_ref();
        if r.text.chars().count() > 200 {
            return Err(super::status::invalid("text", "at most 200 characters"));
        }
        let found = crate::hub::search_regional(&self.node, &actor(&c), &r.text, &r.country).await?;
        Ok(Response::new(pb::SearchRegionResponse { records: found.into_iter().map(|(r, _)| r).collect() }))
    }
}
