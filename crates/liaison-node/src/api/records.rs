//! RecordService handlers.

use crate::api::status::OrStatus;
use crate::convert::ProtoEnum;
use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::status::invalid;
use super::{require, retry, Caller};
use crate::audit::Event;
use crate::convert::from_timestamp;
use crate::exchange::outbox;
use crate::node::Node;
use crate::pb;
use crate::record;
use crate::scope::Scope;
use crate::store::records::{self, Filter, Signer};
use crate::store::{Store, Tx};

pub struct RecordApi {
    node: Arc<Node>,
}

impl RecordApi {
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }
}

/// The node's signer for a write `caller` asked for.
fn signer<'a>(node: &'a Node, caller: &Caller) -> Signer<'a> {
    Signer { node_id: node.id(), key: &node.identity.signing_key, actor: format!("user:{}", caller.name) }
}

/// A record as a stored answer keeps it: without a victim's identity.
fn masked(r: &pb::Record) -> pb::Record {
    crate::redact::pseudonymise(r)
}

use super::page::MAX_PAGE;
/// A page of records ends before it would exceed this many encoded bytes,
/// so it always fits the 4 MiB message limit with room to spare.
const PAGE_BYTES: usize = 3 << 20;

#[tonic::async_trait]
impl pb::record_service_server::RecordService for RecordApi {
    async fn create_record(
        &self,
        req: Request<pb::CreateRecordRequest>,
    ) -> Result<Response<pb::CreateRecordResponse>, Status> {
        let caller = require(&req, Scope::RecordsWrite)?;
        let (node, c) = (Arc::clone(&self.node), caller.clone());
        let keep = |r: &pb::CreateRecordResponse| pb::CreateRecordResponse { record: r.record.as_ref().map(masked) };
        let out = retry::once(&self.node, &caller, "CreateRecord", req.into_inner(), keep, |r| async move {
            let rec = r.record.ok_or_else(|| invalid("record", "required"))?;
            if !rec.id.is_empty() {
                record::validate_id(&rec.id).or_status()?;
            }
            let rec = records::create(&node.db, &signer(&node, &c), rec, node.now()).await.or_status()?;
            Ok(pb::CreateRecordResponse { record: Some(rec) })
        })
        .await?;
        Ok(Response::new(out))
    }

    async fn update_record(
        &self,
        req: Request<pb::UpdateRecordRequest>,
    ) -> Result<Response<pb::UpdateRecordResponse>, Status> {
        let caller = require(&req, Scope::RecordsWrite)?;
        let (node, c) = (Arc::clone(&self.node), caller.clone());
        let keep = |r: &pb::UpdateRecordResponse| pb::UpdateRecordResponse { record: r.record.as_ref().map(masked) };
        let out = retry::once(&self.node, &caller, "UpdateRecord", req.into_inner(), keep, |r| async move {
            let rec = r.record.ok_or_else(|| invalid("record", "required"))?;
            if rec.id.is_empty() {
                return Err(invalid("record.id", "required"));
            }
            if r.expected_version == 0 {
                return Err(invalid("expected_version", "required: the version you last read"));
            }
            let paths = r.update_mask.map(|m| m.paths).unwrap_or_default();
            // Everyone who holds (or is being sent) a previous version gets the
            // new one, queued in the same write as the update itself.
            let actor = format!("user:{}", c.name);
            let deliver = |st: &dyn Store, tx: &mut Tx, key: &str, stored: &records::StoredRecord| {
                let version = stored.record()?.version;
                outbox::queue_update(st, tx, &actor, key, version).map(|_| ())
            };
            let merge = |cur: &pb::Record| record::mask::apply(cur, &rec, &paths);
            let rec = records::update(
                &node.db,
                &signer(&node, &c),
                &rec.id,
                r.expected_version,
                node.now(),
                &merge,
                &deliver,
            )
            .await
            .or_status()?;
            node.outbox_wake.notify_one();
            Ok(pb::UpdateRecordResponse { record: Some(rec) })
        })
        .await?;
        Ok(Response::new(out))
    }

    async fn get_record(&self, req: Request<pb::GetRecordRequest>) -> Result<Response<pb::GetRecordResponse>, Status> {
        let caller = require(&req, Scope::RecordsRead)?;
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
        let mut rec = stored.local().or_status()?;
        if r.masked {
            rec = crate::redact::pseudonymise(&rec);
        } else if crate::redact::holds_protected(&rec) {
            if !caller.scopes.contains(Scope::RecordsIdentity) {
                return Err(super::status::missing_scope(Scope::RecordsIdentity, caller.role));
            }
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
        require(&req, Scope::RecordsRead)?;
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
        if r.external_reference.chars().count() > 128 {
            return Err(invalid("external_reference", "at most 128 characters"));
        }
        let paging = super::page::Paging::of(r.page_size, &r.page_token)?;
        let filter = Filter {
            kind,
            country: (!r.country.is_empty()).then(|| r.country.clone()),
            text: (!r.text.is_empty()).then(|| r.text.to_lowercase()),
            updated_since,
            include_withdrawn: r.include_withdrawn,
            originator: None,
            external_reference: (!r.external_reference.is_empty()).then(|| r.external_reference.clone()),
        };
        let after = paging.after.clone();
        // A text search reads every record: off the runtime's threads.
        let (rows, mut next) = crate::node::off_runtime(&self.node, move |node| {
            records::list(&node.db, &filter, after.as_deref(), paging.size)
        })
        .await
        .or_status()?;
        // Long records end the page early, so it always fits one message.
        let mut out = Vec::with_capacity(rows.len());
        let mut bytes = 0usize;
        let total = rows.len();
        for (rec, _) in rows {
            let shown = crate::redact::pseudonymise(&rec);
            bytes = bytes.saturating_add(prost::Message::encoded_len(&shown));
            if bytes > PAGE_BYTES && !out.is_empty() {
                break;
            }
            out.push(shown);
        }
        if out.len() < total {
            next = out.last().map(|r| records::key(&r.originator, &r.id));
        }
        Ok(Response::new(pb::ListRecordsResponse {
            records: out,
            next_page_token: next.map(|k| super::page::token(&k)).unwrap_or_default(),
        }))
    }

    async fn withdraw_record(
        &self,
        req: Request<pb::WithdrawRecordRequest>,
    ) -> Result<Response<pb::WithdrawRecordResponse>, Status> {
        let caller = require(&req, Scope::RecordsWrite)?;
        let (node, c) = (Arc::clone(&self.node), caller.clone());
        let keep =
            |r: &pb::WithdrawRecordResponse| pb::WithdrawRecordResponse { record: r.record.as_ref().map(masked) };
        let out = retry::once(&self.node, &caller, "WithdrawRecord", req.into_inner(), keep, |r| async move {
            if r.id.is_empty() {
                return Err(invalid("id", "required"));
            }
            if r.expected_version == 0 {
                return Err(invalid("expected_version", "required: the version you last read"));
            }
            // The withdrawal reaches everyone we shared the record with (they
            // purge it), queued in the same write as the withdrawal itself.
            let deliver =
                |st: &dyn Store, tx: &mut Tx, key: &str, stored: &records::StoredRecord| match &stored.envelope {
                    Some(env) => outbox::queue_withdrawal(st, tx, "node", key, env).map(|_| ()),
                    None => Ok(()),
                };
            let rec = records::withdraw(&node.db, &signer(&node, &c), &r.id, r.expected_version, node.now(), &deliver)
                .await
                .or_status()?;
            node.outbox_wake.notify_one();
            Ok(pb::WithdrawRecordResponse { record: Some(rec) })
        })
        .await?;
        Ok(Response::new(out))
    }

    async fn lookup_identifier(
        &self,
        req: Request<pb::LookupIdentifierRequest>,
    ) -> Result<Response<pb::LookupIdentifierResponse>, Status> {
        require(&req, Scope::RecordsRead)?;
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
        let caller = require(&req, Scope::RecordsWrite)?;
        let (node, c) = (Arc::clone(&self.node), caller.clone());
        let out = retry::once(&self.node, &caller, "ImportRecords", req.into_inner(), retry::as_is, |r| async move {
            let pb::ImportRecordsRequest { records: recs, received, .. } = r;
            if recs.len().saturating_add(received.len()) > MAX_PAGE as usize {
                return Err(invalid("records", "at most 1000 records per call"));
            }
            let imported = records::create_many(&node.db, &signer(&node, &c), recs, node.now()).await.or_status()?;
            let kept = if received.is_empty() {
                crate::exchange::import::Imported::default()
            } else {
                crate::exchange::import::received(&node, &format!("user:{}", c.name), received).await?
            };
            let own = imported.problems.into_iter().map(|(i, e)| pb::ImportProblem {
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
            let stored = u32::try_from(imported.ids.len()).unwrap_or(u32::MAX).saturating_add(kept.stored);
            Ok(pb::ImportRecordsResponse {
                stored,
                problems: own.chain(theirs).collect(),
                already_held: kept.already_held,
                stored_ids: imported.ids.into_iter().chain(kept.keys).collect(),
            })
        })
        .await?;
        Ok(Response::new(out))
    }
}
