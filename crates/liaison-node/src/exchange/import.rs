//! Received records through export and import. `liaison export` writes a
//! received record as the originator's exact signed envelope with this
//! node's signed [`pb::Holding`] statement (which version, under which
//! terms); importing it verifies both and asks [`policy::import::decide`]
//! whether the record is taken back, and then stores it exactly as
//! received (`receive::store_received`), never as the importer's own.

use sha2::{Digest, Sha256};

use super::receive::{self, Kept};
use super::{open_record, ExchangeError};
use crate::audit::Event;
use crate::convert::{from_timestamp, timestamp};
use crate::envelope::{self, payload};
use crate::node::Node;
use crate::pb;
use crate::policy::import::{self as rules, ImportFacts};
use crate::store::records::{self, StoredRecord};
use crate::store::StoreError;

/// This node's signed statement that it holds a received record under its
/// provenance; `None` for its own records.
pub fn holding(node: &Node, key: &str, stored: &StoredRecord) -> Option<pb::Envelope> {
    let prov = stored.provenance.clone()?;
    let env = stored.envelope.as_ref()?;
    let version = stored.record().ok()?.version;
    let h = pb::Holding {
        holder: node.id().into(),
        record_key: key.into(),
        version,
        body_sha256: Sha256::digest(&env.body).to_vec(),
        provenance: Some(prov),
        time: Some(timestamp(node.now())),
    };
    Some(envelope::seal(payload::HOLDING, &h, node.id(), &node.identity.signing_key))
}

/// One refused line: the index into `received`, the field and the reason.
pub type Problem = (usize, String, String);

/// What an import of received records did.
#[derive(Debug, Default)]
pub struct Imported {
    pub stored: u32,
    pub already_held: u32,
    pub problems: Vec<Problem>,
    /// The keys (originator/id) of the records stored, in request order.
    pub keys: Vec<String>,
}

/// A verified line, ready for the policy decision.
struct Checked {
    env: pb::Envelope,
    rec: pb::Record,
    key: String,
    holder: String,
    /// The terms, from this node's own verified holding statement (None when
    /// another node signed it: those terms are not this node's).
    prov: Option<pb::Provenance>,
}

fn problem(field: &str, reason: impl Into<String>) -> (String, String) {
    (field.to_string(), reason.into())
}

/// Verifies one line: the originator's signature over the exact bytes (as
/// for any received record), and, when this node signed the holding
/// statement, that it names exactly this envelope and the provenance shown.
fn check(node: &Node, x: &pb::ExportedRecord) -> Result<Checked, (String, String)> {
    let env = x.envelope.clone().ok_or_else(|| problem("received.envelope", "required"))?;
    let rec = open_record(node, &env).map_err(|e| match e {
        ExchangeError::Invalid { field, reason } => (format!("received.envelope.{field}"), reason),
        other => problem("received.envelope", other.to_string()),
    })?;
    let key = records::key(&rec.originator, &rec.id);
    let hold = x.holding.as_ref().ok_or_else(|| {
        problem("received.holding", format!("{key}: required (the holder's signed statement from `liaison export`)"))
    })?;
    let holder = hold.signatures.first().map(|s| s.signer_id.clone()).unwrap_or_default();
    if holder != node.id() {
        return Ok(Checked { env, rec, key, holder, prov: None });
    }
    let h: pb::Holding = envelope::open(hold, payload::HOLDING, node.id(), &node.identity.signing_key.verifying_key())
        .map_err(|e| problem("received.holding", format!("{key}: {e}")))?;
    let digest = Sha256::digest(&env.body);
    if h.holder != node.id() || h.record_key != key || h.version != rec.version || h.body_sha256 != digest.as_slice() {
        return Err(problem(
            "received.holding",
            format!("{key}: the holding statement is for another record or version"),
        ));
    }
    let prov = h.provenance.ok_or_else(|| problem("received.holding.provenance", format!("{key}: required")))?;
    if x.provenance.as_ref().is_some_and(|p| *p != prov) {
        return Err(problem("received.provenance", format!("{key}: differs from the signed holding statement")));
    }
    Ok(Checked { env, rec, key, holder, prov: Some(prov) })
}

fn denial_field(d: &rules::ImportDenial) -> &'static str {
    use rules::ImportDenial as D;
    match d {
        D::OwnRecord => "received.envelope",
        D::HeldElsewhere { .. } => "received.holding",
        D::Withdrawn { .. } => "record.withdrawn",
        D::NoReceiveTime => "received.provenance.receive_time",
        D::RetentionEnded { .. } => "received.provenance.retain_until",
        D::UnknownAgreement { .. } | D::AgreementRevoked { .. } => "received.provenance.agreement_id",
    }
}

/// Imports exported received records: each verified, decided and, where
/// allowed, kept as received under the terms it was held with. A record
/// this node already holds at the same or a newer version is left as it is.
/// Every decision is audited (`record.import_received`).
pub async fn received(node: &Node, actor: &str, lines: Vec<pb::ExportedRecord>) -> Result<Imported, ExchangeError> {
    let agreements = crate::agreement::book::for_policy(node)?;
    let now = node.now();
    let mut out = Imported::default();
    let mut events = Vec::new();
    let mut ready = Vec::new();
    for (i, x) in lines.iter().enumerate() {
        let c = match check(node, x) {
            Ok(c) => c,
            Err((field, reason)) => {
                events.push(Event::new(actor, "record.import_received").decision("deny", format!("{field}: {reason}")));
                out.problems.push((i, field, reason));
                continue;
            }
        };
        let ev = Event::new(actor, "record.import_received").record(&c.key);
        // Held here already (whoever exported it): nothing changes.
        let held = records::get(node.db.store(), &c.key)?.map(|s| s.record()).transpose()?;
        if held.is_some_and(|h| h.version >= c.rec.version) {
            events.push(ev.decision("allow", "already held: unchanged"));
            out.already_held += 1;
            continue;
        }
        let prov = c.prov.clone().unwrap_or_default();
        let facts = ImportFacts {
            local: node.id().into(),
            holder: c.holder.clone(),
            originator: c.rec.originator.clone(),
            withdrawn: c.rec.withdrawn,
            withdrawal_known: crate::store::withdrawals::known(node.db.store(), &c.key)?,
            agreement_id: prov.agreement_id.clone(),
            agreement_version: prov.agreement_version,
            receive_time: prov.receive_time.as_ref().and_then(from_timestamp),
            retain_until: prov.retain_until.as_ref().and_then(from_timestamp),
            at: now,
        };
        match rules::decide(&agreements, &facts) {
            Ok(()) => {
                let terms = format!(
                    "as received from {} under {} v{}",
                    prov.received_from, prov.agreement_id, prov.agreement_version
                );
                events.push(ev.agreement(&prov.agreement_id).decision("allow", terms));
                ready.push((i, c, prov));
            }
            Err(d) => {
                metrics::counter!("liaison_policy_denials_total", "reason" => d.code()).increment(1);
                events.push(ev.decision("deny", d.code()));
                out.problems.push((i, denial_field(&d).into(), format!("{}: {d}", c.key)));
            }
        }
    }
    node.db.audit(events).await?;
    let (keys, already, refused) = node
        .db
        .write(|st, tx| {
            let (mut keys, mut already, mut refused) = (Vec::new(), 0u32, Vec::new());
            let mut in_force = receive::InForce::restoring(node);
            for (i, c, prov) in &ready {
                match receive::store_received(st, tx, &c.env, &c.rec, prov.clone(), actor, &mut in_force)? {
                    Kept::Stored => keys.push(c.key.clone()),
                    Kept::Unchanged => already += 1,
                    Kept::KindChanged { held } => refused.push((
                        *i,
                        "received.envelope.record.body".to_string(),
                        format!("{}: a later version cannot change the kind from {}", c.key, held.as_str_name()),
                    )),
                    Kept::Withdrawn => refused.push((
                        *i,
                        "record.withdrawn".to_string(),
                        format!("{}: withdrawn by {}", c.key, c.rec.originator),
                    )),
                    Kept::AgreementEnded => refused.push((
                        *i,
                        "received.provenance.agreement_id".to_string(),
                        format!("{}: agreement {} is no longer in force", c.key, prov.agreement_id),
                    )),
                }
            }
            Ok::<_, StoreError>((keys, already, refused))
        })
        .await?;
    out.stored = u32::try_from(keys.len()).unwrap_or(u32::MAX);
    out.keys = keys;
    out.already_held = out.already_held.saturating_add(already);
    out.problems.extend(refused);
    out.problems.sort_by_key(|(i, ..)| *i);
    Ok(out)
}
