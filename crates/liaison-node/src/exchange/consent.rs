//! Onward-sharing consent: a holder asks a record's originator; the
//! originator's officer grants it; the signed consent travels with the share.

use super::ExchangeError;
use crate::audit::Event;
use crate::convert::timestamp;
use crate::envelope::{self, payload};
use crate::node::Node;
use crate::pb;
use crate::store::records;
use crate::store::StoreError;

use crate::store::consents;

/// The originator's signed consent for sharing `record_key` with `third`, if held.
pub fn held(
    node: &Node,
    record_key: &str,
    third: &str,
    purpose: pb::Purpose,
) -> Result<Option<pb::Envelope>, ExchangeError> {
    Ok(consents::held(node.db.store(), record_key, third, purpose)?)
}

/// Holder side: ask the originator of a received record.
pub async fn request(
    node: &Node,
    actor: &str,
    record_id: &str,
    third: &str,
    purpose: pb::Purpose,
) -> Result<String, ExchangeError> {
    let key = records::resolve_key(node.id(), record_id);
    let stored =
        records::get(node.db.store(), &key)?.ok_or_else(|| ExchangeError::NotFound(format!("record {key}")))?;
    if stored.provenance.is_none() {
        return Err(super::invalid("record_id", "consent is asked for records received from another node"));
    }
    let rec = stored.record()?;
    crate::peer::get(node, third).map_err(|_| ExchangeError::NotFound(format!("peer {third}")))?;
    let id = super::random_id("consent");
    let mut c = super::client(node, &rec.originator).await?;
    let req = pb::RequestOnwardConsentRequest {
        consent_id: id.clone(),
        record_key: key.clone(),
        third_party: third.into(),
        purpose: purpose as i32,
    };
    c.request_onward_consent(req).await.map_err(|s| ExchangeError::from_status(&rec.originator, &s))?;
    node.db
        .audit(vec![Event::new(actor, "consent.request").record(&key).reason(format!("to share with {third}"))])
        .await?;
    Ok(id)
}

/// Originator side: a holder asks. Only a node this node gave the record to
/// is a holder: anyone else gets the answer a record that does not exist
/// gets (the message does not even name the key), so asking cannot tell
/// whether a record exists; the attempt is counted as a refusal.
pub async fn receive_request(
    node: &Node,
    caller: &str,
    req: pb::RequestOnwardConsentRequest,
) -> Result<(), ExchangeError> {
    // Everything that does not depend on the record is checked first, so
    // the answer to a malformed request cannot depend on it either.
    if req.consent_id.is_empty() || req.consent_id.len() > 64 {
        return Err(super::invalid("consent_id", "1-64 characters"));
    }
    let purpose = super::purpose_of("purpose", req.purpose)?;
    if !crate::config::valid_node_id(&req.third_party) {
        return Err(super::invalid("third_party", "a node id"));
    }
    let own = format!("{}/", node.id());
    let st = node.db.store();
    let holder = req.record_key.starts_with(&own) && crate::store::released::contains(st, &req.record_key, caller)?;
    if !holder || records::get(st, &req.record_key)?.is_none() {
        let key: String = req.record_key.chars().take(120).collect();
        node.refuse(
            &crate::refusal::peer(caller),
            crate::refusal::Kind::Consent,
            &format!("RequestOnwardConsent: {key:?} was never given to {caller}"),
        );
        return Err(ExchangeError::NotFound("record".into()));
    }
    // A holder asks only while an agreement between us is in force.
    let agreements = crate::agreement::book::for_policy(node)?;
    crate::policy::decide_consent(&agreements, node.id(), caller, node.now()).map_err(ExchangeError::Denied)?;
    let r = pb::ConsentRequest {
        consent_id: req.consent_id.clone(),
        record_key: req.record_key.clone(),
        holder: caller.into(),
        third_party: req.third_party.clone(),
        purpose: purpose as i32,
        time: Some(timestamp(node.now())),
        granted: false,
    };
    node.db
        .write(|st, tx| {
            match consents::request(st, &r.consent_id) {
                // Another holder's request under the same id is not replaced.
                Ok(Some(held)) if held.holder != caller => {
                    return Err(super::invalid("consent_id", "already in use"));
                }
                // The same holder asking again (or a damaged entry): replaced.
                Ok(Some(_)) | Err(StoreError::Corrupt(_)) => {}
                // A new request counts against the caller's cap.
                Ok(None) => super::quota::take(st, tx, super::quota::Kind::ConsentRequest, caller, 1)??,
                Err(e) => return Err(e.into()),
            }
            consents::put_request(tx, &r);
            tx.audit(
                Event::new(format!("peer:{caller}"), "consent.requested")
                    .record(&r.record_key)
                    .reason(format!("to share with {}", r.third_party)),
            );
            Ok::<_, ExchangeError>(())
        })
        .await?;
    Ok(())
}

pub fn list_requests(node: &Node) -> Result<Vec<pb::ConsentRequest>, ExchangeError> {
    Ok(consents::requests(node.db.store())?)
}

/// Originator side: grant, sign and deliver to the holder.
pub async fn grant(node: &Node, actor: &str, consent_id: &str) -> Result<pb::ConsentRequest, ExchangeError> {
    let mut r = match consents::request(node.db.store(), consent_id) {
        Ok(Some(r)) => r,
        Ok(None) | Err(StoreError::Corrupt(_)) => {
            return Err(ExchangeError::NotFound(format!("consent request {consent_id}")));
        }
        Err(e) => return Err(e.into()),
    };
    let agreements = crate::agreement::book::for_policy(node)?;
    crate::policy::decide_consent(&agreements, node.id(), &r.holder, node.now()).map_err(ExchangeError::Denied)?;
    let c = pb::OnwardConsent {
        consent_id: r.consent_id.clone(),
        record_key: r.record_key.clone(),
        holder: r.holder.clone(),
        third_party: r.third_party.clone(),
        purpose: r.purpose,
        originator: node.id().into(),
        time: Some(timestamp(node.now())),
    };
    let env = envelope::seal(payload::CONSENT, &c, node.id(), &node.identity.signing_key);
    let mut client = super::client(node, &r.holder).await?;
    client
        .deliver_onward_consent(pb::DeliverOnwardConsentRequest { consent: Some(env) })
        .await
        .map_err(|s| ExchangeError::from_status(&r.holder, &s))?;
    r.granted = true;
    node.db
        .write(|_, tx| {
            consents::put_request(tx, &r);
            // The third party may now hold the record, so it may ask about it too.
            crate::store::released::mark(tx, &r.record_key, &r.third_party);
            tx.audit(
                Event::new(actor, "consent.grant")
                    .record(&r.record_key)
                    .reason(format!("{} may share with {}", r.holder, r.third_party)),
            );
            Ok::<_, StoreError>(())
        })
        .await?;
    Ok(r)
}

/// Holder side: the originator's signed consent arrives.
pub async fn receive_grant(node: &Node, caller: &str, env: pb::Envelope) -> Result<(), ExchangeError> {
    let c: pb::OnwardConsent = envelope::open(&env, payload::CONSENT, caller, &super::key_of(node, caller)?)?;
    if c.originator != caller || !c.record_key.starts_with(&format!("{caller}/")) || c.holder != node.id() {
        return Err(ExchangeError::Refused("consent is not from this record's originator to this node".into()));
    }
    let purpose = super::purpose_of("purpose", c.purpose)?;
    node.db
        .write(|_, tx| {
            consents::put_held(tx, &c.record_key, &c.third_party, purpose, &env);
            tx.audit(
                Event::new(format!("peer:{caller}"), "consent.received")
                    .record(&c.record_key)
                    .reason(format!("may share with {}", c.third_party)),
            );
            Ok::<_, StoreError>(())
        })
        .await?;
    Ok(())
}
