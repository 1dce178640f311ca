//! HubService handlers.

use crate::api::status::OrStatus;
use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::status::invalid;
use super::{require, Caller};
use crate::hub::{self, directory, indicators, report};
use crate::node::Node;
use crate::pb;
use crate::scope::Scope;

pub struct HubApi {
    node: Arc<Node>,
}

impl HubApi {
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }
}

fn actor(c: &Caller) -> String {
    format!("user:{}", c.name)
}

#[tonic::async_trait]
impl pb::hub_service_server::HubService for HubApi {
    async fn admit_member(
        &self,
        req: Request<pb::AdmitMemberRequest>,
    ) -> Result<Response<pb::AdmitMemberResponse>, Status> {
        let c = require(&req, Scope::HubManage)?;
        let card = req.into_inner().card.ok_or_else(|| invalid("card", "required"))?;
        let v = directory::admit(&self.node, &actor(&c), card).await?;
        Ok(Response::new(pb::AdmitMemberResponse { directory_version: v }))
    }

    async fn list_members(
        &self,
        req: Request<pb::ListMembersRequest>,
    ) -> Result<Response<pb::ListMembersResponse>, Status> {
        require(&req, Scope::HubRead)?;
        let members = directory::members(&self.node)
            .or_status()?
            .into_iter()
            .filter_map(|p| {
                let c = p.card?;
                Some(pb::Member {
                    node_id: c.node_id,
                    display_name: c.display_name,
                    country: c.country,
                    admit_time: p.pin_time,
                })
            })
            .collect();
        let version = directory::current(&self.node)
            .or_status()?
            .and_then(|e| crate::envelope::decode::<pb::MemberDirectory>(&e).ok())
            .map_or(0, |d| d.version);
        let r = req.get_ref();
        let (members, next_page_token) =
            super::page::Paging::of(r.page_size, &r.page_token)?.page(members, |m| m.node_id.clone());
        Ok(Response::new(pb::ListMembersResponse { members, directory_version: version, next_page_token }))
    }

    async fn remove_member(
        &self,
        req: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::RemoveMemberResponse>, Status> {
        let c = require(&req, Scope::HubManage)?;
        let v = directory::remove(&self.node, &actor(&c), &req.get_ref().node_id).await?;
        Ok(Response::new(pb::RemoveMemberResponse { directory_version: v }))
    }

    async fn join_hub(&self, req: Request<pb::JoinHubRequest>) -> Result<Response<pb::JoinHubResponse>, Status> {
        let c = require(&req, Scope::HubManage)?;
        let card = req.into_inner().hub_card.ok_or_else(|| invalid("hub_card", "required"))?;
        let (v, pinned) = directory::join(&self.node, &actor(&c), card).await?;
        Ok(Response::new(pb::JoinHubResponse { directory_version: v, pinned }))
    }

    async fn refresh_directory(
        &self,
        req: Request<pb::RefreshDirectoryRequest>,
    ) -> Result<Response<pb::RefreshDirectoryResponse>, Status> {
        require(&req, Scope::HubExchange)?;
        let (v, pinned, unpinned) = directory::refresh(&self.node).await?;
        Ok(Response::new(pb::RefreshDirectoryResponse { directory_version: v, pinned, unpinned }))
    }

    async fn regional_report(
        &self,
        req: Request<pb::RegionalReportRequest>,
    ) -> Result<Response<pb::RegionalReportResponse>, Status> {
        require(&req, Scope::HubRead)?;
        let r = req.get_ref();
        let agg = hub::upward::regional_report(&self.node, &r.period)?;
        let (content, media) = report::render(&agg, &r.format).map_err(|e| invalid("format", &e.0))?;
        Ok(Response::new(pb::RegionalReportResponse { content, media_type: media.into() }))
    }

    async fn compliance_indicators(
        &self,
        req: Request<pb::ComplianceIndicatorsRequest>,
    ) -> Result<Response<pb::ComplianceIndicatorsResponse>, Status> {
        require(&req, Scope::HubRead)?;
        let (members, pairs) = indicators::compute(&hub::all_metadata(&self.node).or_status()?, self.node.now());
        let reporting = hub::upward::statuses(&self.node, "")?;
        Ok(Response::new(pb::ComplianceIndicatorsResponse { members, pairs, reporting }))
    }

    async fn reporting_statuses(
        &self,
        req: Request<pb::ReportingStatusesRequest>,
    ) -> Result<Response<pb::ReportingStatusesResponse>, Status> {
        require(&req, Scope::HubRead)?;
        let statuses = hub::upward::statuses(&self.node, &req.get_ref().period)?;
        Ok(Response::new(pb::ReportingStatusesResponse { statuses }))
    }

    async fn send_aggregate(
        &self,
        req: Request<pb::SendAggregateRequest>,
    ) -> Result<Response<pb::SendAggregateResponse>, Status> {
        let c = require(&req, Scope::HubExchange)?;
        let r = req.get_ref();
        let record_id = hub::upward::send_aggregate(&self.node, &actor(&c), &r.to, &r.period).await?;
        Ok(Response::new(pb::SendAggregateResponse { record_id }))
    }
}
