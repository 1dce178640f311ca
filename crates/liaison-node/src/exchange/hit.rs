//! Hit/no-hit checks: identifiers are normalised the same way on both sides;
//! the answer is "hit" with an opaque reference, or "no hit". No record
//! content crosses.

use crate::convert::ProtoEnum;
use std::time::Duration;

use super::{decide, decide_all, exchange_for, exchange_kind, ExchangeError, DEFAULT_DEADLINE};
use crate::audit::Event;
use crate::node::Node;
use crate::pb;
use crate::policy::{Decision, Direction};
use crate::record::{identifier_type_name, normalize_identifier, parse_identifier_type};
use crate::store::records;

/// Most identifiers in one check.
pub const MAX_IDENTIFIERS: usize = 100;

pub use crate::store::hit_refs::HitRef;

pub fn lookup_reference(node: &Node, reference: &str) -> Result<Option<HitRef>, ExchangeError> {
    Ok(crate::store::hit_refs::get(node.db.store(), reference)?)
}

/// "type:value" in normalised form, or why not.
pub fn normalise(t: pb::IdentifierType, value: &str) -> Result<String, ExchangeError> {
    let n = normalize_identifier(t, value).map_err(|e| super::invalid("identifiers.value", e.reason))?;
    Ok(format!("{}:{n}", identifier_type_name(t)))
}

fn renormalise(ident: &str) -> Result<String, ExchangeError> {
    let (t, v) =
        ident.split_once(':').ok_or_else(|| super::invalid("identifiers", format!("{ident:?} is not type:value")))?;
    let t = parse_identifier_type(t)
        .ok_or_else(|| super::invalid("identifiers", format!("unknown identifier type {t:?}")))?;
    normalise(t, v)
}

/// Answers a peer's check: per identifier, a hit only where a grant allows a
/// hit check on at least one of our records holding it.
pub async fn answer(
    node: &Node,
    caller: &str,
    req: &pb::MatchIdentifiersRequest,
) -> Result<Vec<pb::HitResult>, ExchangeError> {
    let purpose = super::purpose_of("purpose", req.purpose)?;
    if req.identifiers.is_empty() || req.identifiers.len() > MAX_IDENTIFIERS {
        return Err(super::invalid("identifiers", format!("1 to {MAX_IDENTIFIERS} identifiers")));
    }
    let actor = format!("peer:{caller}");
    let ex = exchange_kind(node, caller, Direction::Outgoing, pb::Operation::HitCheck, pb::RecordKind::Entity, purpose);
    if let Decision::Deny(d) = decide(node, &actor, ex, "").await? {
        return Err(ExchangeError::Denied(d));
    }
    let own = format!("{}/", node.id());
    // Look every identifier up first, decide all records at once, then write
    // every reference and audit entry in one transaction: the number of
    // writes (and fsyncs) does not grow with the number of identifiers.
    let mut asked = Vec::new();
    let mut exchanges = Vec::new();
    for ident in &req.identifiers {
        let ident = renormalise(ident)?;
        let keys: Vec<String> =
            records::lookup_identifier(node.db.store(), &ident)?.into_iter().filter(|k| k.starts_with(&own)).collect();
        let mut n = 0;
        for k in &keys {
            if let Some(s) = records::get(node.db.store(), k)? {
                let r = s.record()?;
                exchanges.push((
                    exchange_for(node, caller, Direction::Outgoing, pb::Operation::HitCheck, &r, purpose),
                    k.clone(),
                ));
                n += 1;
            }
        }
        asked.push((ident, n));
    }
    let decisions = decide_all(node, &actor, &exchanges).await?;
    let mut allowed = exchanges.iter().zip(&decisions).map(|((_, k), d)| (k.clone(), d.is_allowed()));
    let now = crate::convert::timestamp(node.now());
    let mut results = Vec::new();
    let mut refs = Vec::new();
    let mut events = Vec::new();
    for (ident, n) in asked {
        let keys: Vec<String> = allowed.by_ref().take(n).filter(|(_, ok)| *ok).map(|(k, _)| k).collect();
        let reference = if keys.is_empty() { String::new() } else { super::random_id("hit") };
        if !keys.is_empty() {
            let r = HitRef { requester: caller.into(), identifier: ident.clone(), record_keys: keys, time: Some(now) };
            refs.push((reference.clone(), r));
        }
        events.push(
            Event::new(&actor, "exchange.hit_check.answer")
                .decision(if reference.is_empty() { "no_hit" } else { "hit" }, &reference),
        );
        results.push(pb::HitResult { identifier: ident, hit: !reference.is_empty(), reference });
    }
    node.db
        .write(|st, tx| {
            super::quota::take(st, tx, super::quota::Kind::HitRef, caller, refs.len() as u64)??;
            for (reference, r) in &refs {
                crate::store::hit_refs::put(tx, reference, r);
            }
            for e in events {
                tx.audit(e);
            }
            Ok::<_, ExchangeError>(())
        })
        .await?;
    Ok(results)
}

async fn ask(
    node: &Node,
    actor: &str,
    peer: String,
    req: pb::MatchIdentifiersRequest,
    deadline: Duration,
) -> pb::CheckPeerResult {
    let mut out = pb::CheckPeerResult { peer: peer.clone(), ..Default::default() };
    let purpose = req.purpose();
    let ex = exchange_kind(node, &peer, Direction::Incoming, pb::Operation::HitCheck, pb::RecordKind::Entity, purpose);
    match decide(node, actor, ex, "").await {
        Ok(Decision::Deny(d)) => {
            out.outcome = pb::PeerOutcome::Denied as i32;
            out.error = format!("denied here ({}): {d}", d.code());
            return out;
        }
        Err(e) => {
            out.outcome = pb::PeerOutcome::Unreachable as i32;
            out.error = e.to_string();
            return out;
        }
        Ok(_) => {}
    }
    let call = async {
        let mut c = super::client(node, &peer).await?;
        let mut r = tonic::Request::new(req.clone());
        r.set_timeout(deadline);
        c.match_identifiers(r).await.map_err(|s| ExchangeError::from_status(&peer, &s))
    };
    match tokio::time::timeout(deadline, call).await {
        Err(_) => {
            out.outcome = pb::PeerOutcome::TimedOut as i32;
            out.error = format!("no answer within {} ms", deadline.as_millis());
        }
        Ok(Err(e)) => {
            out.outcome = super::peer_outcome(&e) as i32;
            out.error = e.to_string();
        }
        Ok(Ok(resp)) => {
            out.outcome = pb::PeerOutcome::Answered as i32;
            // Keep only answers to what we asked, and never more than a yes/no and a reference.
            out.results = resp
                .into_inner()
                .results
                .into_iter()
                .filter(|r| req.identifiers.contains(&r.identifier))
                .map(|r| pb::HitResult {
                    reference: if r.hit { r.reference.chars().take(64).collect() } else { String::new() },
                    ..r
                })
                .collect();
        }
    }
    out
}

/// Checks identifiers against one or every peer, in parallel.
pub async fn run(
    node: &Node,
    actor: &str,
    req: &pb::CheckIdentifiersRequest,
) -> Result<Vec<pb::CheckPeerResult>, ExchangeError> {
    let purpose = super::purpose_of("purpose", req.purpose)?;
    if req.identifiers.is_empty() || req.identifiers.len() > MAX_IDENTIFIERS {
        return Err(super::invalid("identifiers", format!("1 to {MAX_IDENTIFIERS} identifiers")));
    }
    let mut idents = Vec::new();
    for (i, q) in req.identifiers.iter().enumerate() {
        let field = format!("identifiers[{i}].type");
        let t = pb::IdentifierType::known(&field, q.r#type)
            .map_err(|_| super::invalid(&field, "unknown identifier type"))?;
        idents.push(normalise(t, &q.value).map_err(|e| match e {
            ExchangeError::Invalid { reason, .. } => super::invalid(&format!("identifiers[{i}].value"), reason),
            other => other,
        })?);
    }
    let peers = if req.peer.is_empty() {
        super::peer_ids(node)?
    } else {
        crate::peer::get(node, &req.peer).map_err(|_| ExchangeError::NotFound(format!("peer {}", req.peer)))?;
        vec![req.peer.clone()]
    };
    let deadline = match req.deadline_ms {
        0 => DEFAULT_DEADLINE,
        ms => Duration::from_millis(ms.min(60_000) as u64),
    };
    let fed = pb::MatchIdentifiersRequest { identifiers: idents.clone(), purpose: purpose as i32 };
    let results =
        futures::future::join_all(peers.into_iter().map(|p| ask(node, actor, p, fed.clone(), deadline))).await;
    let hits: usize = results.iter().map(|r| r.results.iter().filter(|h| h.hit).count()).sum();
    node.db
        .audit(vec![Event::new(actor, "exchange.hit_check")
            .purpose(crate::convert::purpose_word(purpose))
            .reason(format!("{} identifier(s), {} peer(s), {hits} hit(s)", idents.len(), results.len()))])
        .await?;
    Ok(results)
}
