//! RecordService handlers.

use crate::api::status::OrStatus;
use crate::convert::ProtoEnum;
use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::status::invalid;
use super::{require, Caller, RECORD_READERS, RECORD_WRITERS};
use crate::audit::Event;
use crate::convert::from_timestamp;
use crate::exchange::outbox;
use crate::node::Node;
use crate::pb;
use crate::record;
use crate::store::records::{self, Filter, Signer};
use crate::store::{Store, Tx};

pub struct RecordApi {
    node: Arc<Node>,
}

impl RecordApi {
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }
    fn signer(&self, caller: &Caller) -> Signer<'_> {
        Signer { node_id: self.node.id(), key: &self.node.identity.signing_key, actor: format!("user:{}", caller.name) }
    }
}

pub(super) const MAX_PAGE: u32 = 1000;
pub(super) const DEFAULT_PAGE: u32 = 100;

#[tonic::async_trait]
impl pb::record_service_server::RecordService for RecordApi {
    async fn create_record(
        &self,
        req: Request<pb::CreateRecordRequest>,
    ) -> Result<Response<pb::CreateRecordResponse>, Status> {
        let caller = require(&req, RECORD_WRITERS)?;
        let rec = req.into_inner().record.ok_or_else(|| invalid("record", "required"))?;
        if !rec.id.is_empty() {
            record::validate_id(&rec.id).or_status()?;
        }
        let rec = records::create(&self.node.db, &self.signer(&caller), rec, self.node.now()).await.or_status()?;
        Ok(Response::new(pb::CreateRecordResponse { record: Some(rec) }))
    }

    async fn update_record(
        &self,
        req: Request<pb::UpdateRecordRequest>,
    ) -> Result<Response<pb::UpdateRecordResponse>, Status> {
        let caller = require(&req, RECORD_WRITERS)?;
        let r = req.into_inner();
        let rec = r.record.ok_or_else(|| invalid("record", "required"))?;
        if rec.id.is_empty() {
            return Err(invalid("record.id", "required"));
        }
        if r.expected_version == 0 {
            return Err(invalid("expected_version", "required: the version you last read"));
        }
        // Everyone who holds (or is being sent) a previous version gets the
        // new one, queued in the same write as the update itself.
        let actor = format!("user:{}", caller.name);
        let deliver = |st: &dyn Store, tx: &mut Tx, key: &str, stored: &records::StoredRecord| {
            let version = stored.record()?.version;
            outbox::queue_update(st, tx, &actor, key, version).map(|_| ())
        };
        let rec =
            records::update(&self.node.db, &self.signer(&caller), rec, r.expected_version, self.node.now(), &deliver)
                .await
                .or_status()?;
        self.node.outbox_wake.notify_one();
        Ok(Response::new(pb::UpdateRecordResponse { record: Some(rec) }))
    }

    async fn get_record(&self, req: Request<pb::GetRecordRequest>) -> Result<Response<pb::GetRecordResponse>, Status> {
        let caller = require(&req, RECORD_READERS)?;
        let r = req.get_ref();
        if r.id.is_empty() {
            return Err(invalid("id", "required"));
        }
        if r.reason.chars().count() > 500 {
            return Err(invalid("reason", "at most 500 characters"));
        }
        let key = records::resolve_key(self.node.id(), &r.id);
        let stored = records::get(self.node.db.store(), &key)
            .or_status()?
            .ok_or_else(|| Status::not_found(format!("record {} not found", r.id)))?;
        let mut rec = stored.record().or_status()?;
        if r.masked {
            rec = crate::redact::pseudonymise(&rec);
        } else if crate::redact::holds_protected(&rec) {
            // Every view of protected fields has a reason, is on the audit
            // log and listed on the record, before it is shown.
            let reason = r.reason.trim().to_string();
            if reason.is_empty() {
                return Err(invalid("reason", "required to see a victim's identity (or ask for the record masked)"));
            }
            let actor = format!("user:{}", caller.name);
            self.node
                .db
                .write(|_, tx| {
                    crate::store::views::put(tx, &key, &actor, &reason);
                    tx.audit(Event::new(actor.clone(), "protected.view").record(&key).reason(reason.clone()));
                    Ok::<_, crate::store::StoreError>(())
                })
                .await
                .or_status()?;
        }
        let holding = crate::exchange::import::holding(&self.node, &key, &stored);
        let views = crate::store::views::of(self.node.db.store(), &key).or_status()?;
        Ok(Response::new(pb::GetRecordResponse {
            record: Some(rec),
            envelope: if r.masked { None } else { stored.envelope },
            provenance: stored.provenance,
            holding: if r.masked { None } else { holding },
            views,
        }))
    }

    async fn list_records(
        &self,
        req: Request<pb::ListRecordsRequest>,
    ) -> Result<Response<pb::ListRecordsResponse>, Status> {
        require(&req, RECORD_READERS)?;
        let r = req.into_inner();
        let kind = match pb::RecordKind::of(r.kind) {
            Some(pb::RecordKind::Unspecified) => None,
            Some(k) => Some(k),
            None => return Err(invalid("kind", "unknown record kind")),
        };
        if !r.country.is_empty() && !record::is_country(&r.country) {
            return Err(invalid("country", "not an ISO 3166-1 alpha-2 code"));
        }
        if r.text.chars().count() > 200 {
            return Err(invalid("text", "at most 200 characters"));
        }
        let updated_since = match &r.updated_since {
            Some(ts) => Some(from_timestamp(ts).ok_or_else(|| invalid("updated_since", "out of range"))?),
            None => None,
        };
        let page_size = match r.page_size {
            0 => DEFAULT_PAGE,
            n if n <= MAX_PAGE => n,
            _ => return Err(invalid("page_size", "at most 1000")),
        };
        let after = if r.page_token.is_empty() {
            None
        } else {
            let raw =
                hex::decode(&r.page_token).map_err(|_| invalid("page_token", "not a token from a previous page"))?;
            Some(String::from_utf8(raw).map_err(|_| invalid("page_token", "not a token from a previous page"))?)
        };
        let filter = Filter {
            kind,
            country: (!r.country.is_empty()).then(|| r.country.clone()),
            text: (!r.text.is_empty()).then(|| r.text.to_lowercase()),
            updated_since,
            include_withdrawn: r.include_withdrawn,
            originator: None,
        };
        // A text search reads every record: off the runtime's threads.
        let (rows, next) = crate::node::off_runtime(&self.node, move |node| {
            records::list(&node.db, &filter, after.as_deref(), page_size as usize)
        })
        .await
        .or_status()?;
        Ok(Response::new(pb::ListRecordsResponse {
            records: rows.into_iter().map(|(r, _)| crate::redact::pseudonymise(&r)).collect(),
            next_page_token: next.map(hex::encode).unwrap_or_default(),
        }))
    }

    async fn withdraw_record(
        &self,
        req: Request<pb::WithdrawRecordRequest>,
    ) -> Result<Response<pb::WithdrawRecordResponse>, Status> {
        let caller = require(&req, RECORD_WRITERS)?;
        let r = req.into_inner();
        if r.id.is_empty() {
            return Err(invalid("id", "required"));
        }
        if r.expected_version == 0 {
            return Err(invalid("expected_version", "required: the version you last read"));
        }
        // The withdrawal reaches everyone we shared the record with (they
        // purge it), queued in the same write as the withdrawal itself.
        let deliver = |st: &dyn Store, tx: &mut Tx, key: &str, stored: &records::StoredRecord| match &stored.envelope {
            Some(env) => outbox::queue_withdrawal(st, tx, "node", key, env).map(|_| ()),
            None => Ok(()),
        };
        let rec = records::withdraw(
            &self.node.db,
            &self.signer(&caller),
            &r.id,
            r.expected_version,
            self.node.now(),
            &deliver,
        )
        .await
        .or_status()?;
        self.node.outbox_wake.notify_one();
        Ok(Response::new(pb::WithdrawRecordResponse { record: Some(rec) }))
    }

    async fn lookup_identifier(
        &self,
        req: Request<pb::LookupIdentifierRequest>,
    ) -> Result<Response<pb::LookupIdentifierResponse>, Status> {
        require(&req, RECORD_READERS)?;
        let r = req.into_inner();
        let t = pb::IdentifierType::known("type", r.r#type).map_err(|_| invalid("type", "unknown identifier type"))?;
        let normalized = record::normalize_identifier(t, &r.value).map_err(|e| invalid("value", &e.reason))?;
        let key = format!("{}:{normalized}", record::identifier_type_name(t));
        let record_ids = records::lookup_identifier(self.node.db.store(), &key).or_status()?;
        Ok(Response::new(pb::LookupIdentifierResponse { normalized, record_ids }))
    }

    async fn import_records(
        &self,
        req: Request<pb::ImportRecordsRequest>,
    ) -> Result<Response<pb::ImportRecordsResponse>, Status> {
        let caller = require(&req, RECORD_WRITERS)?;
        let pb::ImportRecordsRequest { records: recs, received } = req.into_inner();
        if recs.len().saturating_add(received.len()) > MAX_PAGE as usize {
            return Err(invalid("records", "at most 1000 records per call"));
        }
        let (stored, problems) =
            records::create_many(&self.node.db, &self.signer(&caller), recs, self.node.now()).await.or_status()?;
        let kept = if received.is_empty() {
            crate::exchange::import::Imported::default()
        } else {
            crate::exchange::import::received(&self.node, &format!("user:{}", caller.name), received).await?
        };
        let own = problems.into_iter().map(|(i, e)| pb::ImportProblem {
            index: i as u32,
            field: e.field,
            reason: e.reason,
            received: false,
        });
        let theirs = kept.problems.into_iter().map(|(i, field, reason)| pb::ImportProblem {
            index: i as u32,
            field,
            reason,
            received: true,
        });
        Ok(Response::new(pb::ImportRecordsResponse {
            stored: stored.saturating_add(kept.stored),
            problems: own.chain(theirs).collect(),
            already_held: kept.already_held,
        }))
    }
}
