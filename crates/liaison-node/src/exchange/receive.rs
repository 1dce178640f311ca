//! The receiving side of a share or a withdrawal: verify, decide again
//! independently, store as *received* with provenance, answer with a signed
//! receipt. Deliveries are idempotent by (sender, delivery id).

use time::Duration;

use super::{exchange_for, open_record, ExchangeError};
use crate::audit::Event;
use crate::convert::timestamp;
use crate::envelope::{self, payload};
use crate::node::Node;
use crate::pb;
use crate::policy::{Decision, Direction};
use crate::store::records::{self, StoredRecord};
use crate::store::{self, Store, StoreError, Tx};
use liaison_core::receive::Held;
pub use liaison_core::receive::Kept;

/// Whether the agreement a record was admitted under still allows storing
/// it, asked inside the write that stores it: a revocation, suspension or
/// end applied before that write is seen, though the policy decision was
/// taken before it. Agreements are read once per write.
pub struct InForce<'a> {
    node: &'a Node,
    restoring: bool,
    agreements: Option<Vec<(pb::Agreement, pb::AgreementState)>>,
}

impl<'a> InForce<'a> {
    /// For a record received now (push, sync): its agreement version, or a
    /// newer one that replaced it, must be in force
    /// (`policy::admitted_in_force`).
    pub fn receiving(node: &'a Node) -> InForce<'a> {
        InForce { node, restoring: false, agreements: None }
    }

    /// For a held record taken back (`liaison import`): as its decision,
    /// only a revocation that purges ends it (`policy::import`).
    pub fn restoring(node: &'a Node) -> InForce<'a> {
        InForce { node, restoring: true, agreements: None }
    }

    fn check(&mut self, id: &str, version: u32) -> Result<bool, StoreError> {
        use crate::agreement::book::BookError;
        let agreements = match &mut self.agreements {
            Some(a) => a,
            slot => slot.insert(crate::agreement::book::for_policy(self.node).map_err(|e| match e {
                BookError::Store(e) => e,
                e => StoreError::Corrupt(format!("agreements: {e}")),
            })?),
        };
        if self.restoring {
            return Ok(!crate::policy::import::purged_on_revoke(agreements, id));
        }
        Ok(crate::policy::admitted_in_force(agreements, id, version, self.node.now()))
    }
}

/// Counts a new receipt against the sender's cap (a repeat of a delivery
/// already answered is not counted twice).
fn keep_receipt(
    st: &dyn Store,
    tx: &mut Tx,
    sender: &str,
    delivery_id: &str,
) -> Result<Result<(), super::quota::Full>, StoreError> {
    if store::receipts::contains(st, sender, delivery_id)? {
        return Ok(Ok(()));
    }
    super::quota::take(st, tx, super::quota::Kind::Receipt, sender, 1)
}

/// The originator withdrew `key`: remember it and purge the record if held.
pub fn purge_withdrawn(st: &dyn Store, tx: &mut Tx, key: &str, actor: &str, why: &str) -> Result<bool, StoreError> {
    store::withdrawals::mark(tx, key);
    purge(st, tx, key, actor, why)
}

/// A receipt signed by this node.
pub fn receipt(node: &Node, delivery_id: &str, key: &str, version: u64, delivered: bool, reason: &str) -> pb::Envelope {
    let r = pb::Receipt {
        delivery_id: delivery_id.into(),
        record_key: key.into(),
        version,
        delivered,
        reason: reason.into(),
        receiver: node.id().into(),
        time: Some(timestamp(node.now())),
    };
    envelope::seal(payload::RECEIPT, &r, node.id(), &node.identity.signing_key)
}

/// Stores a received record (newer versions replace older ones; an older or
/// equal version changes nothing; a change of kind, a withdrawn version and
/// any version of a record known to be withdrawn are refused).
pub fn store_received(
    st: &dyn Store,
    tx: &mut Tx,
    env: &pb::Envelope,
    rec: &pb::Record,
    prov: pb::Provenance,
    actor: &str,
    in_force: &mut InForce<'_>,
) -> Result<Kept, StoreError> {
    let key = records::key(&rec.originator, &rec.id);
    let old = records::get(st, &key)?;
    let old_rec = old.as_ref().map(|s| s.record()).transpose()?;
    let kept = liaison_core::receive::keep_under(
        in_force.check(&prov.agreement_id, prov.agreement_version)?,
        old_rec.as_ref().map(Held::of),
        store::withdrawals::known(st, &key)?,
        rec,
    );
    match kept {
        Kept::Stored => {}
        Kept::Unchanged => return Ok(kept),
        Kept::AgreementEnded => {
            tx.audit(Event::new(actor, "record.refused").record(&key).agreement(prov.agreement_id.clone()).reason(
                format!(
                    "version {}: agreement {} v{} is no longer in force",
                    rec.version, prov.agreement_id, prov.agreement_version
                ),
            ));
            return Ok(kept);
        }
        Kept::Withdrawn => {
            tx.audit(
                Event::new(actor, "record.refused")
                    .record(&key)
                    .reason(format!("version {}: withdrawn by {}", rec.version, rec.originator)),
            );
            return Ok(kept);
        }
        Kept::KindChanged { .. } => {
            tx.audit(
                Event::new(actor, "record.refused")
                    .record(&key)
                    .reason(format!("version {} changes the kind of the record held", rec.version)),
            );
            return Ok(kept);
        }
    }
    if let Some(p) = old.as_ref().and_then(|s| s.provenance.as_ref()) {
        if let Some(until) = p.retain_until.as_ref().and_then(crate::convert::from_timestamp) {
            store::retention::delete(tx, until, &key);
        }
    }
    if let Some(until) = prov.retain_until.as_ref().and_then(crate::convert::from_timestamp) {
        store::retention::put(tx, until, &key);
    }
    let agreement = prov.agreement_id.clone();
    let stored =
        StoredRecord { envelope: Some(env.clone()), provenance: Some(prov), external_reference: String::new() };
    let now = tx.now;
    records::put(st, tx, &key, rec, &stored, old_rec.as_ref(), pb::ChangeType::RecordReceived, now);
    tx.audit(
        Event::new(actor, "record.receive")
            .record(&key)
            .agreement(agreement)
            .reason(format!("version {}", rec.version)),
    );
    Ok(Kept::Stored)
}

/// Purges a received record and its index entries.
pub fn purge(st: &dyn Store, tx: &mut Tx, key: &str, actor: &str, why: &str) -> Result<bool, StoreError> {
    let Some(stored) = records::get(st, key)? else { return Ok(false) };
    let Some(prov) = stored.provenance.as_ref() else { return Ok(false) };
    if let Some(until) = prov.retain_until.as_ref().and_then(crate::convert::from_timestamp) {
        store::retention::delete(tx, until, key);
    }
    let rec = stored.record()?;
    let now = tx.now;
    records::delete(st, tx, key, &rec, now);
    store::views::forget(st, tx, key)?;
    tx.audit(Event::new(actor, "record.purge").record(key).agreement(prov.agreement_id.clone()).reason(why));
    Ok(true)
}

/// Handles `PushRecord`.
pub async fn push(node: &Node, caller: &str, req: pb::PushRecordRequest) -> Result<pb::Envelope, ExchangeError> {
    if req.delivery_id.is_empty() || req.delivery_id.len() > 64 {
        return Err(super::invalid("delivery_id", "1-64 characters"));
    }
    if let Some(r) = store::receipts::get(node.db.store(), caller, &req.delivery_id)? {
        // A retried delivery: answer with the same receipt, store nothing twice.
        return Ok(r);
    }
    let purpose = super::purpose_of("purpose", req.purpose)?;
    let shared = req.shared.ok_or_else(|| super::invalid("shared", "required"))?;
    let env = shared.record.ok_or_else(|| super::invalid("shared.record", "required"))?;
    let rec = open_record(node, &env)?;
    let key = records::key(&rec.originator, &rec.id);
    let actor = format!("peer:{caller}");
    let mut ex = exchange_for(node, caller, Direction::Incoming, pb::Operation::Push, &rec, purpose);
    if rec.originator == node.id() {
        return Err(ExchangeError::Refused("this node is the record's originator".into()));
    }
    if rec.originator != caller {
        // An onward share: the originator's signed consent must come with it.
        let consent = req.consent.as_ref().ok_or_else(|| {
            ExchangeError::Refused(format!("onward share of {key} without {}'s consent", rec.originator))
        })?;
        let c: pb::OnwardConsent =
            envelope::open(consent, payload::CONSENT, &rec.originator, &super::key_of(node, &rec.originator)?)?;
        if c.record_key != key || c.holder != caller || c.third_party != node.id() || c.purpose != purpose as i32 {
            return Err(ExchangeError::Refused("the consent does not cover this share".into()));
        }
        ex.onward = Some(crate::policy::OnwardFacts {
            rule: pb::OnwardSharing::WithConsent,
            originator: rec.originator.clone(),
            originator_consent: true,
        });
    }
    let decision = super::admit_all(node, &actor, &[(ex, &rec)]).await?.remove(0);
    let Decision::Allow { agreement_id, agreement_version, onward, retention_days, .. } = decision else {
        let reason = match &decision {
            Decision::Deny(d) => format!("{}: {d}", d.code()),
            Decision::Allow { .. } => String::new(),
        };
        let r = receipt(node, &req.delivery_id, &key, rec.version, false, &reason);
        node.db
            .write(|st, tx| {
                keep_receipt(st, tx, caller, &req.delivery_id)??;
                store::receipts::put(tx, caller, &req.delivery_id, &r);
                tx.audit(Event::new(&actor, "exchange.push.refused").record(&key).reason(&reason));
                Ok::<_, ExchangeError>(())
            })
            .await?;
        return Ok(r);
    };
    let now = node.now();
    let prov = pb::Provenance {
        received_from: caller.into(),
        agreement_id,
        agreement_version,
        purpose: purpose as i32,
        receive_time: Some(timestamp(now)),
        retain_until: (retention_days > 0)
            .then(|| timestamp(crate::convert::after(now, Duration::days(i64::from(retention_days))))),
        onward_sharing: onward as i32,
    };
    let r = node
        .db
        .write(|st, tx| {
            let r = match store_received(st, tx, &env, &rec, prov, &actor, &mut InForce::receiving(node))? {
                Kept::KindChanged { held } => {
                    let reason =
                        format!("record.body: a later version cannot change the kind from {}", held.as_str_name());
                    receipt(node, &req.delivery_id, &key, rec.version, false, &reason)
                }
                Kept::Withdrawn => receipt(
                    node,
                    &req.delivery_id,
                    &key,
                    rec.version,
                    false,
                    "record.withdrawn: the originator withdrew this record",
                ),
                Kept::AgreementEnded => receipt(
                    node,
                    &req.delivery_id,
                    &key,
                    rec.version,
                    false,
                    "agreement_ended: the agreement ended before the record could be stored",
                ),
                Kept::Stored | Kept::Unchanged => receipt(node, &req.delivery_id, &key, rec.version, true, ""),
            };
            // The receipt is the answer to every retry of this delivery.
            keep_receipt(st, tx, caller, &req.delivery_id)??;
            store::receipts::put(tx, caller, &req.delivery_id, &r);
            Ok::<_, ExchangeError>(r)
        })
        .await?;
    Ok(r)
}

/// Handles `RetractRecord`: the originator withdrew a record.
pub async fn retract(node: &Node, caller: &str, req: pb::RetractRecordRequest) -> Result<pb::Envelope, ExchangeError> {
    let env = req.record.ok_or_else(|| super::invalid("record", "required"))?;
    let rec = open_record(node, &env)?;
    if !rec.withdrawn {
        return Err(super::invalid("record.withdrawn", "a retraction carries the withdrawn record"));
    }
    let key = records::key(&rec.originator, &rec.id);
    let actor = format!("peer:{caller}");
    let purged = node
        .db
        .write(|st, tx| {
            let why = format!("withdrawn by {} (version {})", rec.originator, rec.version);
            let purged = purge_withdrawn(st, tx, &key, &actor, &why)?;
            if purged {
                // Whoever we shared it with onwards must purge it too: queued
                // in the purge's own write, so a crash cannot drop it.
                super::outbox::queue_withdrawal(st, tx, "node", &key, &env)?;
            }
            Ok::<_, ExchangeError>(purged)
        })
        .await?;
    if purged {
        node.outbox_wake.notify_one();
    }
    Ok(receipt(node, &req.delivery_id, &key, rec.version, true, if purged { "purged" } else { "not held" }))
}
