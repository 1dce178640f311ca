//! RequestService and VictimCaseService handlers.

use crate::api::status::OrStatus;
use crate::convert::ProtoEnum;
use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::status::invalid;
use super::{require, Caller};
use crate::node::Node;
use crate::pb::{self, UserRole};
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
        let c = require(&req, &[UserRole::Officer])?;
        let r = desk::send(&self.node, &actor(&c), req.get_ref()).await?;
        Ok(Response::new(pb::SendRequestResponse { request: Some(r) }))
    }

    async fn list_requests(
        &self,
        req: Request<pb::ListRequestsRequest>,
    ) -> Result<Response<pb::ListRequestsResponse>, Status> {
        require(&req, &[UserRole::Officer, UserRole::Auditor, UserRole::Integrator])?;
        let r = req.get_ref();
        let b = pb::RequestBox::of(r.r#box).ok_or_else(|| invalid("box", "inbox or outbox"))?;
        Ok(Response::new(pb::ListRequestsResponse { requests: desk::list(&self.node, b, r.overdue_only)? }))
    }

    async fn get_request(
        &self,
        req: Request<pb::GetRequestRequest>,
    ) -> Result<Response<pb::GetRequestResponse>, Status> {
        require(&req, &[UserRole::Officer, UserRole::Auditor, UserRole::Integrator])?;
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
        let c = require(&req, &[UserRole::Officer])?;
        let r = desk::transition(&self.node, &actor(&c), req.get_ref()).await?;
        Ok(Response::new(pb::TransitionRequestResponse { request: Some(r) }))
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
        let c = require(&req, &[UserRole::Officer])?;
        let r = req.get_ref();
        let case =
            cases::open(&self.node, &actor(&c), &r.referral_record_id, &r.receiving_node, &r.transit_nodes).await?;
        Ok(Response::new(pb::OpenCaseResponse { case: Some(case) }))
    }

    async fn advance_case(
        &self,
        req: Request<pb::AdvanceCaseRequest>,
    ) -> Result<Response<pb::AdvanceCaseResponse>, Status> {
        let c = require(&req, &[UserRole::Officer])?;
        let r = req.get_ref();
        let to = pb::CaseStage::of(r.to)
            .filter(|s| *s != pb::CaseStage::Unspecified)
            .ok_or_else(|| invalid("to", "a case stage"))?;
        let case = cases::advance(&self.node, &actor(&c), &r.id, to, &r.note).await?;
        Ok(Response::new(pb::AdvanceCaseResponse { case: Some(case) }))
    }

    async fn get_case(&self, req: Request<pb::GetCaseRequest>) -> Result<Response<pb::GetCaseResponse>, Status> {
        require(&req, &[UserRole::Officer, UserRole::Auditor])?;
        let id = &req.get_ref().id;
        let case = cases::get(self.node.db.store(), id)
            .or_status()?
            .ok_or_else(|| Status::not_found(format!("case {id} not found")))?;
        let gates = cases::next_gates(&self.node, &case)?;
        Ok(Response::new(pb::GetCaseResponse { case: Some(case), gates }))
    }

    async fn list_cases(&self, req: Request<pb::ListCasesRequest>) -> Result<Response<pb::ListCasesResponse>, Status> {
        require(&req, &[UserRole::Officer, UserRole::Auditor])?;
        Ok(Response::new(pb::ListCasesResponse { cases: cases::all(self.node.db.store()).or_status()? }))
    }
}
