//! RequestService and VictimCaseService handlers.

use crate::api::status::OrStatus;
use crate::convert::ProtoEnum;
use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::status::invalid;
use super::{require, retry, Caller};
use crate::node::Node;
use crate::pb;
use crate::scope::Scope;
use crate::sop::{cases, desk};

pub struct RequestApi {
    node: Arc<Node>,
}

impl RequestApi {
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }
}

fn actor(c: &Caller) -> String {
    format!("user:{}", c.name)
}

#[tonic::async_trait]
impl pb::request_service_server::RequestService for RequestApi {
    async fn send_request(
        &self,
        req: Request<pb::SendRequestRequest>,
    ) -> Result<Response<pb::SendRequestResponse>, Status> {
        let c = require(&req, Scope::Requests)?;
        let node = Arc::clone(&self.node);
        let who = actor(&c);
        let out = retry::once(&self.node, &c, "SendRequest", req.into_inner(), retry::as_is, |r| async move {
            Ok(pb::SendRequestResponse { request: Some(desk::send(&node, &who, &r).await?) })
        })
        .await?;
        Ok(Response::new(out))
    }

    async fn list_requests(
        &self,
        req: Request<pb::ListRequestsRequest>,
    ) -> Result<Response<pb::ListRequestsResponse>, Status> {
        require(&req, Scope::RequestsRead)?;
        let r = req.get_ref();
        let b = pb::RequestBox::of(r.r#box).ok_or_else(|| invalid("box", "inbox or outbox"))?;
        let paging = super::page::Paging::of(r.page_size, &r.page_token)?;
        let (requests, next_page_token) = paging.page(desk::list(&self.node, b, r.overdue_only)?, |r| r.id.clone());
        Ok(Response::new(pb::ListRequestsResponse { requests, next_page_token }))
    }

    async fn get_request(
        &self,
        req: Request<pb::GetRequestRequest>,
    ) -> Result<Response<pb::GetRequestResponse>, Status> {
        require(&req, Scope::RequestsRead)?;
        let id = &req.get_ref().id;
        let s = desk::get(self.node.db.store(), id)
            .or_status()?
            .ok_or_else(|| Status::not_found(format!("request {id} not found")))?;
        Ok(Response::new(pb::GetRequestResponse { request: s.request }))
    }

    async fn transition_request(
        &self,
        req: Request<pb::TransitionRequestRequest>,
    ) -> Result<Response<pb::TransitionRequestResponse>, Status> {
        let c = require(&req, Scope::Requests)?;
        let node = Arc::clone(&self.node);
        let who = actor(&c);
        let out = retry::once(&self.node, &c, "TransitionRequest", req.into_inner(), retry::as_is, |r| async move {
            Ok(pb::TransitionRequestResponse { request: Some(desk::transition(&node, &who, &r).await?) })
        })
        .await?;
        Ok(Response::new(out))
    }
}

pub struct CaseApi {
    node: Arc<Node>,
}

impl CaseApi {
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }
}

#[tonic::async_trait]
impl pb::victim_case_service_server::VictimCaseService for CaseApi {
    async fn open_case(&self, req: Request<pb::OpenCaseRequest>) -> Result<Response<pb::OpenCaseResponse>, Status> {
        let c = require(&req, Scope::Cases)?;
        let node = Arc::clone(&self.node);
        let who = actor(&c);
        let out = retry::once(&self.node, &c, "OpenCase", req.into_inner(), retry::as_is, |r| async move {
            let case = cases::open(&node, &who, &r.referral_record_id, &r.receiving_node, &r.transit_nodes).await?;
            Ok(pb::OpenCaseResponse { case: Some(case) })
        })
        .await?;
        Ok(Response::new(out))
    }

    async fn advance_case(
        &self,
        req: Request<pb::AdvanceCaseRequest>,
    ) -> Result<Response<pb::AdvanceCaseResponse>, Status> {
        let c = require(&req, Scope::Cases)?;
        let node = Arc::clone(&self.node);
        let who = actor(&c);
        let out = retry::once(&self.node, &c, "AdvanceCase", req.into_inner(), retry::as_is, |r| async move {
            let to = pb::CaseStage::of(r.to)
                .filter(|s| *s != pb::CaseStage::Unspecified)
                .ok_or_else(|| invalid("to", "a case stage"))?;
            let case = cases::advance(&node, &who, &r.id, to, &r.note).await?;
            Ok(pb::AdvanceCaseResponse { case: Some(case) })
        })
        .await?;
        Ok(Response::new(out))
    }

    async fn get_case(&self, req: Request<pb::GetCaseRequest>) -> Result<Response<pb::GetCaseResponse>, Status> {
        require(&req, Scope::CasesRead)?;
        let id = &req.get_ref().id;
        let case = cases::get(self.node.db.store(), id)
            .or_status()?
            .ok_or_else(|| Status::not_found(format!("case {id} not found")))?;
        let gates = cases::next_gates(&self.node, &case)?;
        Ok(Response::new(pb::GetCaseResponse { case: Some(case), gates }))
    }

    async fn list_cases(&self, req: Request<pb::ListCasesRequest>) -> Result<Response<pb::ListCasesResponse>, Status> {
        require(&req, Scope::CasesRead)?;
        let r = req.get_ref();
        let paging = super::page::Paging::of(r.page_size, &r.page_token)?;
        let (cases, next_page_token) = paging.page(cases::all(self.node.db.store()).or_status()?, |c| c.id.clone());
        Ok(Response::new(pb::ListCasesResponse { cases, next_page_token }))
    }
}
