//! The request desk: sending, receiving and advancing formal requests
//! between nodes, their deadlines and escalations. IO adapter around
//! [`super::request`]; the policy engine decides whether a request may be
//! made at all (`policy::decide_request`), on both nodes.

use crate::convert::ProtoEnum;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use prost::Message;

use super::request::{self as sm, SopError};
use crate::agreement::book;
use crate::audit::Event;
use crate::convert::{purpose_word, timestamp};
use crate::envelope::{self, payload};
use crate::exchange::{self, outbox, ExchangeError};
use crate::node::Node;
use crate::pb::{self, RequestState as S, Transition as T};
use crate::policy;
use crate::store::records::{self, Filter};
use crate::store::{Store, StoreError, Tree, Tx};

#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    #[error(transparent)]
    Sop(#[from] SopError),
    #[error("denied ({code}): {0}", code = .0.code())]
    Denied(policy::Denial),
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("request {0} not found")]
    NotFound(String),
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(field: &'static str, reason: impl Into<String>) -> DeskError {
    DeskError::Invalid { field, reason: reason.into() }
}

/// A request as stored, with steps that arrived ahead of their turn.
#[derive(Clone, PartialEq, Message)]
pub struct Stored {
    #[prost(message, optional, tag = "1")]
    pub request: Option<pb::Request>,
    #[prost(message, repeated, tag = "2")]
    pub pending: Vec<pb::RequestEvent>,
}

pub fn get(st: &dyn Store, id: &str) -> Result<Option<Stored>, StoreError> {
    st.get(Tree::Requests, id.as_bytes())?
        .map(|v| Stored::decode(v.as_slice()).map_err(|e| StoreError::Corrupt(format!("request: {e}"))))
        .transpose()
}

fn put(tx: &mut Tx, s: &Stored) {
    let id = s.request.as_ref().map(|r| r.id.clone()).unwrap_or_default();
    tx.change(pb::Change {
        seq: 0,
        time: Some(timestamp(tx.now)),
        r#type: pb::ChangeType::RequestChanged as i32,
        request_id: id.clone(),
        ..Default::default()
    });
    tx.batch.put(Tree::Requests, id.into_bytes(), s.encode_to_vec());
}

pub fn all(st: &dyn Store) -> Result<Vec<pb::Request>, StoreError> {
    // Requests are keyed by their id ("req-…"); victim cases live beside them under "case/".
    let end = crate::store::prefix_end(b"req-").map_or(Bound::Unbounded, Bound::Excluded);
    st.range(Tree::Requests, Bound::Included(b"req-".to_vec()), end, usize::MAX)?
        .into_iter()
        .map(|(_, v)| {
            Stored::decode(v.as_slice())
                .map(|s| s.request.unwrap_or_default())
                .map_err(|e| StoreError::Corrupt(e.to_string()))
        })
        .collect()
}

fn step_word(t: T) -> String {
    crate::convert::word(t.as_str_name(), "TRANSITION_")
}

fn header(r: &pb::Request) -> pb::RequestHeader {
    r.header.clone().unwrap_or_default()
}

/// Signs a step and queues it for the other node in the caller's
/// transaction, with the terms the outbox decides again when it sends.
fn send_event(
    node: &Node,
    st: &dyn Store,
    tx: &mut Tx,
    actor: &str,
    to: &str,
    h: &pb::RequestHeader,
    ev: &pb::RequestEvent,
) -> Result<(), StoreError> {
    let env = envelope::seal(payload::REQUEST_EVENT, ev, node.id(), &node.identity.signing_key);
    let terms = outbox::StepTerms {
        agreement_id: h.agreement_id.clone(),
        request_type: h.request_type.clone(),
        purpose: h.purpose,
    };
    outbox::queue_payload(st, tx, actor, pb::OutboxAction::RequestEvent, to, &ev.request_id, env, terms)
}

/// A later step needs the request's agreement to allow it now.
fn check_step(node: &Node, peer: &str, h: &pb::RequestHeader) -> Result<(), DeskError> {
    let agreements = book::for_policy(node).map_err(ExchangeError::from)?;
    policy::decide_request_step(&agreements, node.id(), peer, h, node.now()).map_err(DeskError::Denied)
}

/// Sends a new request under the SOP of an agreement with `to`.
pub async fn send(node: &Node, actor: &str, r: &pb::SendRequestRequest) -> Result<pb::Request, DeskError> {
    crate::peer::get(node, &r.to).map_err(|_| invalid("to", format!("{} is not a pinned peer", r.to)))?;
    let purpose =
        exchange::purpose_of("purpose", r.purpose).map_err(|_| invalid("purpose", "a purpose is required"))?;
    if r.subject.trim().is_empty() || r.subject.chars().count() > 300 {
        return Err(invalid("subject", "1-300 characters"));
    }
    if r.body.chars().count() > 10_000 {
        return Err(invalid("body", "at most 10000 characters"));
    }
    if r.refs.len() > 50 || r.refs.iter().any(|x| x.is_empty() || x.len() > 200) {
        return Err(invalid("refs", "at most 50 references of 1-200 characters"));
    }
    let agreements = book::for_policy(node).map_err(ExchangeError::from)?;
    let only = (!r.agreement_id.is_empty()).then_some(r.agreement_id.as_str());
    let (agreement, terms) =
        policy::decide_request(&agreements, node.id(), &r.to, &r.request_type, purpose, Some(&r.to), node.now(), only)
            .map_err(DeskError::Denied)?;
    let id = exchange::random_id("req");
    let h = pb::RequestHeader {
        agreement_id: agreement.id.clone(),
        agreement_version: agreement.version,
        request_type: r.request_type.clone(),
        from_node: node.id().into(),
        to_node: r.to.clone(),
        purpose: purpose as i32,
        priority: if r.urgent { pb::Priority::Urgent } else { pb::Priority::Normal } as i32,
        subject: r.subject.clone(),
        body: r.body.clone(),
        refs: r.refs.clone(),
    };
    let ev = pb::RequestEvent {
        request_id: id.clone(),
        actor: node.id().into(),
        seq: 1,
        transition: T::Submit as i32,
        time: Some(timestamp(node.now())),
        text: String::new(),
        attached_record_ids: vec![],
        header: Some(h.clone()),
        peer_seq: 0,
    };
    let req = sm::open(&id, h.clone(), &terms, ev.clone(), node.now())?;
    // The request and its submit's delivery are one write: a crash cannot
    // leave a request shown as sent that never goes.
    node.db
        .write(|st, tx| {
            put(tx, &Stored { request: Some(req.clone()), pending: vec![] });
            tx.audit(
                Event::new(actor, "request.submit")
                    .agreement(&agreement.id)
                    .purpose(purpose_word(purpose))
                    .reason(format!("{} {} to {}", id, r.request_type, r.to)),
            );
            send_event(node, st, tx, actor, &r.to, &h, &ev)
        })
        .await?;
    node.outbox_wake.notify_one();
    crate::hub::report_request(node, &req).await;
    Ok(req)
}

/// Acknowledge, answer, decline (receiving node) or withdraw (sending node).
pub async fn transition(node: &Node, actor: &str, r: &pb::TransitionRequestRequest) -> Result<pb::Request, DeskError> {
    let step = T::of(r.transition)
        .filter(|t| !matches!(t, T::Unspecified | T::Submit))
        .ok_or_else(|| invalid("transition", "acknowledge, answer, decline or withdraw"))?;
    let attached: Vec<String> = r.attach_record_ids.iter().map(|id| records::resolve_key(node.id(), id)).collect();
    // The peer refuses a step above the bounds: check them before anything
    // is shared or stored, attachments included.
    sm::check_bounds(&pb::RequestEvent {
        text: r.text.clone(),
        attached_record_ids: attached.clone(),
        ..Default::default()
    })?;
    // Check the step against the current state before anything is sent.
    let snapshot =
        get(node.db.store(), &r.id)?.and_then(|s| s.request).ok_or_else(|| DeskError::NotFound(r.id.clone()))?;
    let sh = header(&snapshot);
    let counterpart = if sh.from_node == node.id() { sh.to_node.clone() } else { sh.from_node.clone() };
    let probe = pb::RequestEvent {
        request_id: snapshot.id.clone(),
        actor: node.id().into(),
        seq: sm::last_seq(&snapshot, node.id()) + 1,
        transition: step as i32,
        text: r.text.clone(),
        // What this node has seen: a step it makes now never "crossed" one it holds.
        peer_seq: sm::last_seq(&snapshot, &counterpart),
        ..Default::default()
    };
    sm::next_state(&snapshot, &probe)?;
    check_step(node, &counterpart, &sh)?;
    // Attachments travel as shares, under the same policy as any share; a
    // refused attachment stops the answer.
    if step == T::Answer {
        let purpose = sh.purpose();
        for id in &r.attach_record_ids {
            outbox::share(node, actor, id, &counterpart, purpose).await?;
        }
    }
    // Read, step and store under the write lock: two officers acting at once
    // get consecutive sequence numbers, never the same one.
    let next =
        node.db
            .write(|st, tx| {
                let stored = get(st, &r.id)?.ok_or_else(|| DeskError::NotFound(r.id.clone()))?;
                let req = stored.request.clone().unwrap_or_default();
                let h = header(&req);
                let other = if h.from_node == node.id() { h.to_node.clone() } else { h.from_node.clone() };
                let ev = pb::RequestEvent {
                    request_id: req.id.clone(),
                    actor: node.id().into(),
                    seq: sm::last_seq(&req, node.id()) + 1,
                    transition: step as i32,
                    time: Some(timestamp(tx.now)),
                    text: r.text.clone(),
                    attached_record_ids: attached.clone(),
                    header: None,
                    peer_seq: sm::last_seq(&req, &other),
                };
                let next = match sm::apply(&req, &ev)? {
                    sm::Applied::Changed(n) => *n,
                    sm::Applied::Duplicate => req.clone(),
                };
                put(tx, &Stored { request: Some(next.clone()), pending: stored.pending.clone() });
                tx.audit(
                    Event::new(actor, format!("request.{}", step_word(step)))
                        .agreement(&h.agreement_id)
                        .reason(format!("{} {}", req.id, r.text.chars().take(200).collect::<String>())),
                );
                // The step and its delivery are one write: a step stored but
                // never sent would leave every later step buffered at the peer.
                send_event(node, st, tx, actor, &other, &sh, &ev)?;
                Ok::<_, DeskError>(next)
            })
            .await?;
    node.outbox_wake.notify_one();
    crate::hub::report_request(node, &next).await;
    Ok(next)
}

/// Answers a step this node does not take with a refusal receipt, audited as
/// `request.refused`: one entry per refused step, as the sender keeps one
/// signed receipt per step (and each step is signed by its sender).
async fn refuse_step(
    node: &Node,
    caller: &str,
    delivery_id: &str,
    ev: &pb::RequestEvent,
    agreement: &str,
    reason: String,
) -> Result<pb::Envelope, DeskError> {
    let shown: String = reason.chars().take(300).collect();
    node.db
        .audit(vec![Event::new(format!("peer:{caller}"), "request.refused").agreement(agreement).decision(
            "deny",
            format!("{} seq {}: {shown}", ev.request_id.chars().take(64).collect::<String>(), ev.seq),
        )])
        .await?;
    Ok(crate::exchange::receive::receipt(node, delivery_id, &ev.request_id, ev.seq, false, &reason))
}

/// A step from the other node arrives (`DeliverRequestEvent`). Always answered
/// with a signed receipt, saying whether it was taken and why not.
pub async fn receive(
    node: &Node,
    caller: &str,
    delivery_id: &str,
    env: pb::Envelope,
) -> Result<pb::Envelope, DeskError> {
    let key = exchange::key_of(node, caller)?;
    let ev: pb::RequestEvent =
        envelope::open(&env, payload::REQUEST_EVENT, caller, &key).map_err(ExchangeError::from)?;
    sm::check_bounds(&ev)?;
    if ev.actor != caller {
        let why = format!("a step by {} cannot come from {caller}", ev.actor);
        return refuse_step(node, caller, delivery_id, &ev, "", why).await;
    }
    if !sm::valid_request_id(&ev.request_id) {
        // Cases share the tree under "case/": an id must never reach into them.
        return Err(invalid("event.request_id", "\"req-\" and up to 60 letters, digits or '-'"));
    }
    // A step's time must be plausible on this node's clock (a sender retries
    // a step for at most the outbox's expiry).
    if let Some(t) = ev.time.as_ref().and_then(crate::convert::from_timestamp) {
        if let Err(e) = crate::clock::check_peer_time(t, node.now(), crate::exchange::outbox::EXPIRY) {
            let why = format!("{}: step {} {e}", e.code(), ev.seq);
            return refuse_step(node, caller, delivery_id, &ev, "", why).await;
        }
    }
    let actor = format!("peer:{caller}");
    if get(node.db.store(), &ev.request_id)?.is_none() {
        if ev.transition != T::Submit as i32 {
            // Its submit has not arrived yet: the sender's outbox will retry.
            return Err(DeskError::NotFound(ev.request_id.clone()));
        }
        let h = ev.header.clone().ok_or_else(|| invalid("event.header", "a submit carries the request"))?;
        let agreement = h.agreement_id.chars().take(64).collect::<String>();
        if h.from_node != caller || h.to_node != node.id() {
            let why = "the request is not from the caller to this node".to_string();
            return refuse_step(node, caller, delivery_id, &ev, &agreement, why).await;
        }
        if h.subject.trim().is_empty() || h.subject.chars().count() > 300 || h.body.chars().count() > 10_000 {
            let why = "subject or body out of bounds".to_string();
            return refuse_step(node, caller, delivery_id, &ev, &agreement, why).await;
        }
        // This node checks the SOP terms itself.
        let agreements = book::for_policy(node).map_err(ExchangeError::from)?;
        let purpose = h.purpose();
        let decided = policy::decide_request(
            &agreements,
            node.id(),
            caller,
            &h.request_type,
            purpose,
            Some(&h.to_node),
            node.now(),
            Some(&h.agreement_id),
        );
        let (_, terms) = match decided {
            Ok(x) => x,
            Err(d) => {
                let why = format!("{}: {d}", d.code());
                return refuse_step(node, caller, delivery_id, &ev, &agreement, why).await;
            }
        };
        // Deadlines run from this node's clock at arrival.
        let req = match sm::open(&ev.request_id, h.clone(), &terms, ev.clone(), node.now()) {
            Ok(r) => r,
            Err(e) => return refuse_step(node, caller, delivery_id, &ev, &agreement, e.to_string()).await,
        };
        node.db
            .write(|st, tx| {
                // A repeated submit (a retry) finds the request already there.
                if get(st, &req.id)?.is_some() {
                    return Ok::<_, StoreError>(());
                }
                put(tx, &Stored { request: Some(req.clone()), pending: vec![] });
                tx.audit(
                    Event::new(&actor, "request.submit")
                        .agreement(&h.agreement_id)
                        .purpose(purpose_word(purpose))
                        .reason(format!("{} {}", req.id, h.request_type)),
                );
                Ok::<_, StoreError>(())
            })
            .await?;
        return Ok(crate::exchange::receive::receipt(node, delivery_id, &ev.request_id, ev.seq, true, ""));
    }
    // Later steps need the request's agreement to allow them now, here as on
    // the sender: nothing moves under a suspended or revoked agreement.
    if let Some(h) = get(node.db.store(), &ev.request_id)?.and_then(|s| s.request).map(|r| header(&r)) {
        if h.from_node != caller && h.to_node != caller {
            let why = "the request is not between the caller and this node".to_string();
            return refuse_step(node, caller, delivery_id, &ev, &h.agreement_id, why).await;
        }
        match check_step(node, caller, &h) {
            Ok(()) => {}
            Err(DeskError::Denied(d)) => {
                let why = format!("{}: {d}", d.code());
                return refuse_step(node, caller, delivery_id, &ev, &h.agreement_id, why).await;
            }
            Err(e) => return Err(e),
        }
    }
    // Later steps are applied to the state read under the write lock, so
    // concurrent deliveries never lose one.
    let step = ev.transition();
    let outcome = node
        .db
        .write(|st, tx| {
            let s = get(st, &ev.request_id)?.ok_or_else(|| DeskError::NotFound(ev.request_id.clone()))?;
            let req = s.request.unwrap_or_default();
            let mut pending: BTreeMap<_, _> = s.pending.into_iter().map(|e| ((e.actor.clone(), e.seq), e)).collect();
            match sm::apply_in_order(&req, &mut pending, ev.clone()) {
                Ok(next) => {
                    let changed = next != req;
                    put(tx, &Stored { request: Some(next.clone()), pending: pending.into_values().collect() });
                    if changed {
                        tx.audit(
                            Event::new(&actor, format!("request.{}", step_word(step)))
                                .agreement(header(&next).agreement_id)
                                .reason(next.id.clone()),
                        );
                    }
                    Ok::<_, DeskError>(Ok((next, changed)))
                }
                // Bounds are answered as errors (the sender's outbox retries a
                // backlog later); a step that can never apply gets a refusal receipt.
                Err(e @ (SopError::Backlog(_) | SopError::TooLarge { .. })) => Err(DeskError::Sop(e)),
                Err(e) => Ok(Err(e.to_string())),
            }
        })
        .await?;
    match outcome {
        Ok((next, changed)) => {
            if changed {
                crate::hub::report_request(node, &next).await;
            }
            Ok(crate::exchange::receive::receipt(node, delivery_id, &ev.request_id, ev.seq, true, ""))
        }
        Err(reason) => refuse_step(node, caller, delivery_id, &ev, "", reason).await,
    }
}

/// A contact point of `role`, preferring ones from `of` (the node that is late).
fn contact_for(db: &crate::store::Db, role: i32, of: &str) -> Result<Option<(String, String)>, StoreError> {
    let filter = Filter { kind: Some(pb::RecordKind::ContactPoint), ..Default::default() };
    let (rows, _) = records::list(db, &filter, None, 1000)?;
    let matching: Vec<&pb::Record> = rows
        .iter()
        .map(|(r, _)| r)
        .filter(|r| matches!(&r.body, Some(pb::record::Body::ContactPoint(c)) if c.role == role))
        .collect();
    let pick = matching.iter().find(|r| r.originator == of).or_else(|| matching.first());
    Ok(pick.map(|r| {
        let name = match &r.body {
            Some(pb::record::Body::ContactPoint(c)) => c.name.clone(),
            _ => String::new(),
        };
        (records::key(&r.originator, &r.id), name)
    }))
}

/// Marks requests whose deadline passed as overdue and escalates each deadline once.
pub async fn check_deadlines(node: &Node) -> Result<usize, DeskError> {
    let agreements = book::for_policy(node).map_err(ExchangeError::from)?;
    let now = node.now();
    let mut escalated = Vec::new();
    let mut open_overdue = 0u32;
    for req in all(node.db.store())? {
        let open = matches!(S::of(req.state), Some(S::Submitted | S::Acknowledged));
        if open && req.overdue {
            open_overdue += 1;
        }
        let h = header(&req);
        let terms = agreements
            .iter()
            .find(|(a, _)| a.id == h.agreement_id && a.version == h.agreement_version)
            .and_then(|(a, _)| a.sop.as_ref())
            .and_then(|s| s.request_types.iter().find(|t| t.name == h.request_type).cloned());
        let Some(terms) = terms else { continue };
        if let Some(mut esc) = sm::newly_overdue(&req, &terms, now) {
            if let Some((id, name)) = contact_for(&node.db, esc.role, &h.to_node)? {
                esc.contact_record_id = id;
                esc.contact_name = name;
            }
            if open && !req.overdue {
                open_overdue += 1;
            }
            escalated.push(sm::mark_overdue(&req, esc));
        }
    }
    metrics::gauge!("liaison_requests_overdue").set(f64::from(open_overdue));
    let n = escalated.len();
    if n == 0 {
        return Ok(0);
    }
    node.db
        .write(|st, tx| {
            for r in &escalated {
                let pending = get(st, &r.id)?.map(|s| s.pending).unwrap_or_default();
                put(tx, &Stored { request: Some(r.clone()), pending });
                let esc = r.escalations.last().cloned().unwrap_or_default();
                let role = pb::ContactRole::word_of(esc.role);
                tx.audit(Event::new("node", "request.overdue").agreement(header(r).agreement_id).reason(format!(
                    "{}: {} deadline passed; escalated to {role} {}",
                    r.id, esc.deadline, esc.contact_name
                )));
                metrics::counter!("liaison_requests_overdue_total", "deadline" => esc.deadline.clone()).increment(1);
            }
            Ok::<_, StoreError>(())
        })
        .await?;
    Ok(n)
}

pub fn list(node: &Node, box_: pb::RequestBox, overdue_only: bool) -> Result<Vec<pb::Request>, DeskError> {
    Ok(all(node.db.store())?
        .into_iter()
        .filter(|r| {
            let h = header(r);
            match box_ {
                pb::RequestBox::Inbox => h.to_node == node.id(),
                pb::RequestBox::Outbox => h.from_node == node.id(),
                pb::RequestBox::Unspecified => true,
            }
        })
        .filter(|r| !overdue_only || (r.overdue && matches!(S::of(r.state), Some(S::Submitted | S::Acknowledged))))
        .collect())
}

/// Runs the deadline check every `every`.
pub fn spawn(node: Arc<Node>, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match check_deadlines(&node).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(escalated = n, "requests overdue"),
                Err(e) => tracing::error!(error = %e, "deadline check failed"),
            }
            tokio::time::sleep(every).await;
        }
    })
}
