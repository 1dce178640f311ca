//! AgreementService, PolicyService and AuditService handlers.

use crate::api::status::{InTx, OrStatus};
use crate::convert::ProtoEnum;
use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::status::invalid;
use super::{require, Caller};
use crate::agreement::book;
use crate::audit::Event;
use crate::convert::{from_timestamp, purpose_word};
use crate::node::Node;
use crate::pb;
use crate::policy::{self, Decision, Direction, Exchange, VictimFacts};
use crate::scope::Scope;
use crate::store::{self, records};

fn actor(c: &Caller) -> String {
    format!("user:{}", c.name)
}

pub struct AgreementApi {
    node: Arc<Node>,
}

impl AgreementApi {
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }
}

fn id_of(id: &str) -> Result<(), Status> {
    crate::record::validate_id(id).map_err(|e| invalid("id", &e.reason))
}

#[tonic::async_trait]
impl pb::agreement_service_server::AgreementService for AgreementApi {
    async fn draft_agreement(
        &self,
        req: Request<pb::DraftAgreementRequest>,
    ) -> Result<Response<pb::DraftAgreementResponse>, Status> {
        let c = require(&req, Scope::AgreementsManage)?;
        let toml = &req.get_ref().toml;
        if toml.len() > 256 * 1024 {
            return Err(invalid("toml", "at most 256 KiB"));
        }
        let a = book::draft(&self.node, &actor(&c), toml, None).await?;
        Ok(Response::new(pb::DraftAgreementResponse { agreement: Some(a) }))
    }

    async fn sign_agreement(
        &self,
        req: Request<pb::SignAgreementRequest>,
    ) -> Result<Response<pb::SignAgreementResponse>, Status> {
        let c = require(&req, Scope::AgreementsManage)?;
        let r = req.into_inner();
        id_of(&r.id)?;
        let a = book::sign(&self.node, &actor(&c), &r.id, r.version).await?;
        Ok(Response::new(pb::SignAgreementResponse { agreement: Some(a) }))
    }

    async fn propose_agreement(
        &self,
        req: Request<pb::ProposeAgreementRequest>,
    ) -> Result<Response<pb::ProposeAgreementResponse>, Status> {
        let c = require(&req, Scope::AgreementsManage)?;
        let r = req.into_inner();
        id_of(&r.id)?;
        let (a, deliveries) = book::propose(&self.node, &actor(&c), &r.id, r.version, false).await?;
        Ok(Response::new(pb::ProposeAgreementResponse { agreement: Some(a), deliveries }))
    }

    async fn accept_agreement(
        &self,
        req: Request<pb::AcceptAgreementRequest>,
    ) -> Result<Response<pb::AcceptAgreementResponse>, Status> {
        let c = require(&req, Scope::AgreementsManage)?;
        let r = req.into_inner();
        id_of(&r.id)?;
        let (a, deliveries) = book::propose(&self.node, &actor(&c), &r.id, r.version, true).await?;
        Ok(Response::new(pb::AcceptAgreementResponse { agreement: Some(a), deliveries }))
    }

    async fn list_agreements(
        &self,
        req: Request<pb::ListAgreementsRequest>,
    ) -> Result<Response<pb::ListAgreementsResponse>, Status> {
        require(&req, Scope::AgreementsRead)?;
        let r = req.get_ref();
        let paging = super::page::Paging::of(r.page_size, &r.page_token)?;
        // With history an agreement appears once per version: the key orders by both.
        let key = |a: &pb::AgreementRecord| {
            a.agreement.as_ref().map(|a| format!("{}\0{:010}", a.id, a.version)).unwrap_or_default()
        };
        let (agreements, next_page_token) = paging.page(book::list(&self.node, r.include_history)?, key);
        Ok(Response::new(pb::ListAgreementsResponse { agreements, next_page_token }))
    }

    async fn get_agreement(
        &self,
        req: Request<pb::GetAgreementRequest>,
    ) -> Result<Response<pb::GetAgreementResponse>, Status> {
        require(&req, Scope::AgreementsRead)?;
        let r = req.into_inner();
        id_of(&r.id)?;
        Ok(Response::new(pb::GetAgreementResponse { agreement: Some(book::get(&self.node, &r.id, r.version)?) }))
    }

    async fn issue_agreement_notice(
        &self,
        req: Request<pb::IssueAgreementNoticeRequest>,
    ) -> Result<Response<pb::IssueAgreementNoticeResponse>, Status> {
        let c = require(&req, Scope::AgreementsManage)?;
        let r = req.into_inner();
        id_of(&r.id)?;
        let action = r.action();
        let (a, deliveries) = book::notice(&self.node, &actor(&c), &r.id, r.version, action, &r.reason).await?;
        Ok(Response::new(pb::IssueAgreementNoticeResponse { agreement: Some(a), deliveries }))
    }

    async fn amend_agreement(
        &self,
        req: Request<pb::AmendAgreementRequest>,
    ) -> Result<Response<pb::AmendAgreementResponse>, Status> {
        let c = require(&req, Scope::AgreementsManage)?;
        let r = req.into_inner();
        id_of(&r.id)?;
        let a = book::draft(&self.node, &actor(&c), &r.toml, Some(&r.id)).await?;
        Ok(Response::new(pb::AmendAgreementResponse { agreement: Some(a) }))
    }
}

pub struct PolicyApi {
    node: Arc<Node>,
}

impl PolicyApi {
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }
}

fn required_enum<E: ProtoEnum>(field: &str, v: i32) -> Result<E, Status> {
    E::known(field, v).map_err(|_| invalid(field, "required: a known, non-unspecified value"))
}

#[tonic::async_trait]
impl pb::policy_service_server::PolicyService for PolicyApi {
    async fn evaluate_exchange(
        &self,
        req: Request<pb::EvaluateExchangeRequest>,
    ) -> Result<Response<pb::EvaluateExchangeResponse>, Status> {
        let c = require(&req, Scope::AgreementsRead)?;
        let r = req.into_inner();
        if !crate::config::valid_node_id(&r.peer) {
            return Err(invalid("peer", "a node id"));
        }
        let direction = match pb::Direction::of(r.direction) {
            Some(pb::Direction::Outgoing) => Direction::Outgoing,
            Some(pb::Direction::Incoming) => Direction::Incoming,
            _ => return Err(invalid("direction", "outgoing or incoming")),
        };
        let at = match &r.time {
            Some(ts) => from_timestamp(ts).ok_or_else(|| invalid("time", "out of range"))?,
            None => self.node.now(),
        };
        let kind: pb::RecordKind = required_enum("kind", r.kind)?;
        let victim = if r.victim_record_id.is_empty() {
            (kind == pb::RecordKind::VictimReferral).then_some(VictimFacts {
                consent: pb::ConsentStatus::Unspecified,
                guardian_decision: false,
                child: false,
                best_interest: pb::BestInterestOutcome::Unspecified,
                identity_requested: r.identity_requested,
                return_step: r.return_step,
            })
        } else {
            let key = records::resolve_key(self.node.id(), &r.victim_record_id);
            let stored = records::get(self.node.db.store(), &key)
                .or_status()?
                .ok_or_else(|| Status::not_found(format!("record {} not found", r.victim_record_id)))?;
            match stored.record().or_status()?.body {
                Some(pb::record::Body::VictimReferral(v)) => {
                    Some(VictimFacts::of(&v, r.identity_requested, r.return_step))
                }
                _ => return Err(invalid("victim_record_id", "not a victim referral")),
            }
        };
        let ex = Exchange {
            local: self.node.id().to_string(),
            peer: r.peer.clone(),
            direction,
            operation: required_enum("operation", r.operation)?,
            kind,
            purpose: required_enum("purpose", r.purpose)?,
            handling: required_enum("handling", r.handling)?,
            at,
            victim,
            into_kind: None,
            onward: None,
        };
        let agreements = book::for_policy(&self.node)?;
        let decision = policy::decide(&agreements, &ex);
        let (resp, ev) = match decision {
            Decision::Allow { agreement_id, agreement_version, plan, onward, .. } => (
                pb::EvaluateExchangeResponse {
                    allowed: true,
                    agreement_id: agreement_id.clone(),
                    agreement_version,
                    redacted_fields: plan.remove.into_iter().collect(),
                    onward_sharing: onward as i32,
                    denial_code: String::new(),
                    reason: String::new(),
                },
                Event::new(actor(&c), "policy.evaluate").agreement(agreement_id).decision("allow", ""),
            ),
            Decision::Deny(d) => (
                pb::EvaluateExchangeResponse {
                    denial_code: d.code().into(),
                    reason: d.to_string(),
                    ..Default::default()
                },
                Event::new(actor(&c), "policy.evaluate").decision("deny", d.code()),
            ),
        };
        self.node
            .db
            .audit(vec![ev
                .purpose(purpose_word(ex.purpose))
                .reason(format!("peer {} {:?}", ex.peer, ex.direction).to_lowercase())])
            .await
            .or_status()?;
        Ok(Response::new(resp))
    }
}

pub struct AuditApi {
    node: Arc<Node>,
}

impl AuditApi {
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }
}

#[tonic::async_trait]
impl pb::audit_service_server::AuditService for AuditApi {
    async fn list_audit_entries(
        &self,
        req: Request<pb::ListAuditEntriesRequest>,
    ) -> Result<Response<pb::ListAuditEntriesResponse>, Status> {
        require(&req, Scope::Audit)?;
        let r = req.into_inner();
        let (field, size) = if r.page_size != 0 { ("page_size", r.page_size) } else { ("limit", r.limit) };
        let limit = match size {
            0 => 100,
            n if n <= 1000 => n as usize,
            _ => return Err(invalid(field, "at most 1000")),
        };
        let mut after = r.after_seq;
        // A token names the last seq of its page (see `api::page`).
        if let Some(last) = super::page::Paging::of(0, &r.page_token)?.after {
            after = last.parse().map_err(|_| invalid("page_token", "not a token from a previous page"))?;
        }
        let mut out = Vec::new();
        let page = |entries: Vec<pb::AuditEntry>, last: u64, more: bool| {
            let next_page_token = if more { super::page::token(&last.to_string()) } else { String::new() };
            Ok(Response::new(pb::ListAuditEntriesResponse { entries, last_seq: last, next_page_token }))
        };
        // Scan forward until the page is full, skipping entries the prefix filters out.
        loop {
            let chunk = store::audit::entries_after(self.node.db.store(), after, 1000).or_status()?;
            let done = chunk.len() < 1000;
            for e in chunk {
                after = e.seq;
                if e.action.starts_with(&r.action_prefix) {
                    out.push(e);
                    if out.len() == limit {
                        return page(out, after, true);
                    }
                }
            }
            if done {
                return page(out, after, false);
            }
        }
    }

    async fn verify_audit(
        &self,
        req: Request<pb::VerifyAuditRequest>,
    ) -> Result<Response<pb::VerifyAuditResponse>, Status> {
        require(&req, Scope::Audit)?;
        Ok(Response::new(verify_witnessed(&self.node).await?))
    }
}

/// [`verify`], then the chain against what the witnesses countersigned: a
/// chain shorter than, or different at, a witnessed entry was rolled back.
pub(super) async fn verify_witnessed(node: &Arc<Node>) -> Result<pb::VerifyAuditResponse, Status> {
    // The chain is read whole, page by page: off the runtime's threads.
    let mut r = crate::node::off_runtime(node, |n| verify(n).map_err(InTx)).await?;
    if !r.ok {
        return Ok(r);
    }
    r.witnesses = crate::witness::net::consult(node, r.entries).await.or_status()?;
    let outcome = |w: &&pb::WitnessReport, o: pb::WitnessOutcome| w.outcome == o as i32;
    r.witnessed_seq =
        r.witnesses.iter().filter(|w| outcome(w, pb::WitnessOutcome::Consistent)).map(|w| w.seq).max().unwrap_or(0);
    // The newest witnessed entry the chain lacks is the one reported.
    if let Some(w) = r.witnesses.iter().filter(|w| outcome(w, pb::WitnessOutcome::Rollback)).max_by_key(|w| w.seq) {
        r.ok = false;
        r.first_bad_seq = w.seq;
        r.problem = w.detail.clone();
    }
    Ok(r)
}

/// Verifies the whole chain and every signed checkpoint.
pub(super) fn verify(node: &Node) -> Result<pb::VerifyAuditResponse, Status> {
    let st = node.db.store();
    let fail = |seq: u64, problem: String, n: u64, cps: u64| pb::VerifyAuditResponse {
        ok: false,
        entries: n,
        checkpoints: cps,
        first_bad_seq: seq,
        problem,
        ..Default::default()
    };
    // Page through the chain: memory stays bounded however long it is.
    let mut v = crate::audit::Verifier::default();
    let mut after = 0;
    loop {
        let chunk = store::audit::entries_after(st, after, 10_000).or_status()?;
        let Some(last) = chunk.last() else { break };
        after = last.seq;
        for e in &chunk {
            if let Err(e) = v.push(e) {
                return Ok(fail(e.seq, e.reason, v.entries(), 0));
            }
        }
    }
    let n = v.entries();
    let key = node.identity.signing_key.verifying_key();
    let cps = store::audit::checkpoints(st).or_status()?;
    for cp in &cps {
        let at = |seq: u64| store::audit::entry(st, seq).ok().flatten().filter(|e| e.seq == seq);
        if let Err(e) = crate::audit::verify_checkpoint(cp, node.id(), &key, at) {
            return Ok(fail(e.seq, e.reason, n, cps.len() as u64));
        }
    }
    Ok(pb::VerifyAuditResponse {
        ok: true,
        entries: n,
        checkpoints: cps.len() as u64,
        first_bad_seq: 0,
        problem: String::new(),
        ..Default::default()
    })
}
