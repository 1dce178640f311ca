//! Scoped queries: the responder decides per record; the requester asks
//! one or every peer in parallel, each under its own deadline.

use crate::convert::ProtoEnum;
use std::time::{Duration, Instant};

use super::{exchange_for, exchange_kind, open_page, seal_shared, ExchangeError, DEFAULT_DEADLINE};
use crate::audit::Event;
use crate::node::Node;
use crate::pb;
use crate::policy::{Decision, Direction};
use crate::store::records::{self, Filter};

/// Most records one query answer carries.
pub const MAX_RESULTS: usize = 200;

/// Answers a peer's query with what the agreements allow it to see.
pub async fn answer(
    node: &std::sync::Arc<Node>,
    caller: &str,
    req: &pb::QueryRecordsRequest,
) -> Result<Vec<pb::SharedRecord>, ExchangeError> {
    let kind = super::kind_of("kind", req.kind)?;
    let purpose = super::purpose_of("purpose", req.purpose)?;
    if req.text.chars().count() > 200 {
        return Err(super::invalid("text", "at most 200 characters"));
    }
    if !req.country.is_empty() && !crate::record::is_country(&req.country) {
        return Err(super::invalid("country", "not an ISO 3166-1 alpha-2 code"));
    }
    let limit = match req.limit {
        0 => 50,
        n => (n as usize).min(MAX_RESULTS),
    };
    let actor = format!("peer:{caller}");
    // Refuse outright when no grant covers this kind at all (the requester learns why).
    let kind_ex = exchange_kind(node, caller, Direction::Outgoing, pb::Operation::Query, kind, purpose);
    let (allowed, kind_event) = super::decide_unaudited(node, &actor, &kind_ex, "")?;
    if let Decision::Deny(d) = allowed {
        node.db.audit(vec![kind_event]).await?;
        return Err(ExchangeError::Denied(d));
    }
    let filter = Filter {
        kind: Some(kind),
        country: (!req.country.is_empty()).then(|| req.country.clone()),
        text: (!req.text.is_empty()).then(|| req.text.to_lowercase()),
        ..Filter::default()
    };
    let wanted = Wanted { kinds: vec![kind], purpose, filter, agreement: None };
    let (hits, _) = release(node, caller, wanted, None, limit).await?;
    let summary = Event::new(&actor, "exchange.query.answer")
        .purpose(crate::convert::purpose_word(purpose))
        .reason(format!("{} records sent", hits.len()));
    // One write: the kind's decision, each record's, and the summary.
    record_release(node, &actor, caller, &hits, vec![kind_event, summary]).await?;
    Ok(hits.into_iter().map(|h| h.shared).collect())
}

/// What a peer asks to receive of this node's own records.
pub struct Wanted {
    pub kinds: Vec<pb::RecordKind>,
    pub purpose: pb::Purpose,
    /// Applied to the pseudonymised record (through the catalogue's
    /// indexes) and again to the copy the peer would receive.
    pub filter: Filter,
    /// Only what this agreement allows (a TAXII collection); None: any.
    pub agreement: Option<String>,
}

/// One own record a peer may receive, decided and sealed.
pub struct Released {
    pub exchange: crate::policy::Exchange,
    pub decision: Decision,
    pub shared: pb::SharedRecord,
    /// The copy the peer receives (redacted by the decision).
    pub view: pb::Record,
    pub key: String,
}

/// Up to `limit` own records after the key `after` that `caller` may
/// receive, each decided (only under `wanted.agreement` when named) and
/// redacted, the filters applied to the redacted copy so a word held only
/// in a withheld field never makes a record match; and the key to continue
/// after. Nothing is audited: see [`record_release`].
pub async fn release(
    node: &std::sync::Arc<Node>,
    caller: &str,
    wanted: Wanted,
    after: Option<String>,
    limit: usize,
) -> Result<(Vec<Released>, Option<String>), ExchangeError> {
    let mut agreements = crate::agreement::book::for_policy(node)?;
    if let Some(id) = &wanted.agreement {
        agreements.retain(|(a, _)| a.id == *id);
    }
    let who = caller.to_string();
    let filter =
        Filter { kind: if wanted.kinds.len() == 1 { wanted.kinds.first().copied() } else { None }, ..wanted.filter };
    Ok(crate::node::off_runtime(node, move |node| {
        records::search(&node.db, &format!("{}/", node.id()), &filter, after.as_deref(), limit, |key, r, stored| {
            if !crate::record::kind(r).is_some_and(|k| wanted.kinds.contains(&k)) {
                return Ok(None);
            }
            let ex = exchange_for(node, &who, Direction::Outgoing, pb::Operation::Query, r, wanted.purpose);
            let d = crate::policy::decide(&agreements, &ex);
            let Decision::Allow { plan, .. } = &d else { return Ok(None) };
            let view = crate::redact::redact(r, plan);
            if !filter.matches(&view) {
                return Ok(None);
            }
            let Some(shared) = seal_shared(node, r, &d, stored.envelope.as_ref()) else { return Ok(None) };
            Ok(Some(Released { exchange: ex, decision: d, shared, view, key: key.to_string() }))
        })
    })
    .await?)
}

/// Audits each released record's decision and then `more` (a summary),
/// and marks the records released to `caller` (so a withdrawal reaches
/// it), in one write.
pub async fn record_release(
    node: &Node,
    actor: &str,
    caller: &str,
    hits: &[Released],
    more: Vec<Event>,
) -> Result<(), ExchangeError> {
    let mut events: Vec<Event> =
        hits.iter().map(|h| super::decision_event(actor, &h.exchange, &h.decision, &h.key)).collect();
    events.extend(more);
    node.db
        .write(|_, tx| {
            for ev in events {
                tx.audit(ev);
            }
            for h in hits {
                crate::store::released::mark(tx, &h.key, caller);
            }
            Ok::<_, crate::store::StoreError>(())
        })
        .await?;
    Ok(())
}

/// Verifies one peer's answer and keeps what our own policy lets in; the
/// decisions' audit events go to `events`, written once for the whole call.
async fn accept(
    node: &Node,
    actor: &str,
    peer: &str,
    purpose: pb::Purpose,
    shared: Vec<pb::SharedRecord>,
    events: &mut Vec<Event>,
) -> Result<Vec<pb::Record>, ExchangeError> {
    let envs = shared
        .into_iter()
        .map(|s| s.record.ok_or_else(|| super::invalid("records.record", "missing")))
        .collect::<Result<Vec<_>, _>>()?;
    let recs: Vec<pb::Record> = open_page(node, envs).await?.into_iter().map(|(_, r)| r).collect();
    if let Some(r) = recs.iter().find(|r| r.originator != peer) {
        return Err(ExchangeError::Refused(format!("{peer} answered with a record originated by {}", r.originator)));
    }
    // Shown to the officer only what our own decision lets in, and never a
    // copy carrying a field that decision withholds.
    let received: Vec<_> = recs
        .iter()
        .map(|r| (exchange_for(node, peer, Direction::Incoming, pb::Operation::Query, r, purpose), r))
        .collect();
    let (decisions, audit) = super::admit_unaudited(node, actor, &received)?;
    events.extend(audit);
    Ok(recs.iter().zip(decisions).filter(|(_, d)| d.is_allowed()).map(|(r, _)| r.clone()).collect())
}

/// Asks one peer; returns what to show and the audit events of every
/// decision taken (written by [`run`], once, before anything is shown).
async fn ask(
    node: &Node,
    actor: &str,
    peer: String,
    req: pb::QueryRecordsRequest,
    deadline: Duration,
) -> (pb::QueryPeerResult, Vec<Event>) {
    let mut events = Vec::new();
    let result = ask_one(node, actor, peer, req, deadline, &mut events).await;
    (result, events)
}

async fn ask_one(
    node: &Node,
    actor: &str,
    peer: String,
    req: pb::QueryRecordsRequest,
    deadline: Duration,
    events: &mut Vec<Event>,
) -> pb::QueryPeerResult {
    let started = Instant::now();
    let purpose = req.purpose();
    let kind = req.kind();
    let mut result = pb::QueryPeerResult { peer: peer.clone(), ..Default::default() };
    // We check too: a query is an incoming exchange for us.
    let ex = exchange_kind(node, &peer, Direction::Incoming, pb::Operation::Query, kind, purpose);
    let decided = super::decide_unaudited(node, actor, &ex, "").map(|(d, ev)| {
        events.push(ev);
        d
    });
    match decided {
        Ok(Decision::Deny(d)) => {
            result.outcome = pb::PeerOutcome::Denied as i32;
            result.error = format!("denied here ({}): {d}", d.code());
            return result;
        }
        Err(e) => {
            result.outcome = pb::PeerOutcome::Unreachable as i32;
            result.error = e.to_string();
            return result;
        }
        Ok(_) => {}
    }
    let call = async {
        let mut c = super::client(node, &peer).await?;
        let mut r = tonic::Request::new(req.clone());
        r.set_timeout(deadline);
        c.query_records(r).await.map_err(|s| ExchangeError::from_status(&peer, &s))
    };
    match tokio::time::timeout(deadline, call).await {
        Err(_) => {
            result.outcome = pb::PeerOutcome::TimedOut as i32;
            result.error = format!("no answer within {} ms", deadline.as_millis());
        }
        Ok(Err(e)) => {
            result.outcome = super::peer_outcome(&e) as i32;
            result.error = e.to_string();
        }
        Ok(Ok(resp)) => match accept(node, actor, &peer, purpose, resp.into_inner().records, events).await {
            Ok(recs) => {
                result.outcome = pb::PeerOutcome::Answered as i32;
                result.records = recs;
            }
            Err(e) => {
                result.outcome = pb::PeerOutcome::Unreachable as i32;
                result.error =
                    format!("answer refused: {}", super::refuse_answer(node, &peer, "QueryRecords answer", e));
            }
        },
    }
    result.elapsed_ms = started.elapsed().as_millis() as u64;
    result
}

/// Asks one peer or every pinned peer, in parallel; a slow or down peer never blocks the others.
pub async fn run(node: &Node, actor: &str, req: &pb::QueryRequest) -> Result<Vec<pb::QueryPeerResult>, ExchangeError> {
    super::kind_of("kind", req.kind)?;
    let purpose = super::purpose_of("purpose", req.purpose)?;
    let peers = if req.peer.is_empty() {
        super::peer_ids(node)?
    } else {
        crate::peer::get(node, &req.peer).map_err(|_| ExchangeError::NotFound(format!("peer {}", req.peer)))?;
        vec![req.peer.clone()]
    };
    let deadline = match req.deadline_ms {
        0 => DEFAULT_DEADLINE,
        ms if ms <= 60_000 => Duration::from_millis(ms as u64),
        _ => return Err(super::invalid("deadline_ms", "at most 60000")),
    };
    let fed = pb::QueryRecordsRequest {
        kind: req.kind,
        text: req.text.clone(),
        country: req.country.clone(),
        purpose: req.purpose,
        limit: req.limit,
    };
    let asked = futures::future::join_all(peers.into_iter().map(|p| ask(node, actor, p, fed.clone(), deadline))).await;
    let mut events = Vec::new();
    let mut results = Vec::with_capacity(asked.len());
    for (r, evs) in asked {
        events.extend(evs);
        results.push(r);
    }
    let summary = results
        .iter()
        .map(|r| {
            format!(
                "{}:{}",
                r.peer,
                pb::PeerOutcome::of(r.outcome)
                    .map(|o| o.as_str_name().trim_start_matches("PEER_OUTCOME_").to_lowercase())
                    .unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join(" ");
    // Every decision of every peer's answer and the summary: one write,
    // before any record is shown.
    events.push(Event::new(actor, "exchange.query").purpose(crate::convert::purpose_word(purpose)).reason(summary));
    node.db.audit(events).await?;
    Ok(results)
}

/// Kinds a TAXII collection serves (those with a STIX form).
pub const STIX_KINDS: [pb::RecordKind; 2] = [pb::RecordKind::IntelligenceReport, pb::RecordKind::Entity];

/// One agreement and purpose under which `caller` may query STIX-shaped
/// records here: a TAXII collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collection {
    pub agreement_id: String,
    pub agreement_title: String,
    pub purpose: pb::Purpose,
}

impl Collection {
    /// `<agreement>.<purpose>`, e.g. `th-kh.investigation`.
    pub fn id(&self) -> String {
        format!("{}.{}", self.agreement_id, crate::convert::purpose_word(self.purpose))
    }
}

/// The collections `caller` may read now: each agreement and purpose under
/// which a query for some STIX kind would be allowed (the policy engine
/// decides, as for `QueryRecords`).
pub fn collections(node: &Node, caller: &str) -> Result<Vec<Collection>, ExchangeError> {
    let agreements = crate::agreement::book::for_policy(node)?;
    let mut out = Vec::new();
    for entry in &agreements {
        // Decided under this agreement alone: one collection per agreement.
        let (one, a) = (std::slice::from_ref(entry), &entry.0);
        for purpose in (1..=i32::MAX).map_while(pb::Purpose::of) {
            let allowed = STIX_KINDS.iter().any(|k| {
                let ex = super::exchange_kind(node, caller, Direction::Outgoing, pb::Operation::Query, *k, purpose);
                crate::policy::decide(one, &ex).is_allowed()
            });
            if allowed {
                out.push(Collection { agreement_id: a.id.clone(), agreement_title: a.title.clone(), purpose });
            }
        }
    }
    Ok(out)
}
