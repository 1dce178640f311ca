//! The request state machine: submitted → acknowledged → answered |
//! declined (reason required); withdrawn by the sender before an answer.
//! Steps from each node apply in that node's sequence order; repeats are
//! ignored, so both nodes reach the same state however steps arrive.

use crate::convert::ProtoEnum;
use std::collections::BTreeMap;

use time::OffsetDateTime;

use crate::convert::{from_timestamp, timestamp};
use crate::pb::{self, RequestState as S, Transition as T};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SopError {
    #[error("request_type: {0:?} is not defined by the agreement's SOP (defined: {1})")]
    UnknownType(String, String),
    #[error("purpose: {purpose} is not allowed for {request_type} requests")]
    PurposeNotAllowed { request_type: String, purpose: String },
    #[error("a request cannot go from {from} by {step}")]
    InvalidTransition { from: String, step: String },
    #[error("only the {who} may {step} a request")]
    WrongActor { who: &'static str, step: String },
    #[error("{0}: required")]
    Missing(&'static str),
    #[error("step {got} from {actor} arrived before step {expected}")]
    OutOfOrder { actor: String, expected: u64, got: u64 },
    #[error("this step belongs to request {0}")]
    WrongRequest(String),
    #[error("{field}: {reason}")]
    TooLarge { field: &'static str, reason: String },
    /// More early steps than a request can ever have: the sender may retry
    /// once the steps before them have arrived.
    #[error("{0}")]
    Backlog(String),
}

/// Longest text of one step (an answer, a reason).
pub const MAX_TEXT: usize = 10_000;
/// Records one answer may attach.
pub const MAX_ATTACHED: usize = 64;
/// A request has at most two steps per node (submit and withdraw;
/// acknowledge and answer or decline), so a step this far ahead of the
/// actor's last one can never become next.
pub const MAX_AHEAD: u64 = 4;
/// Early steps buffered per request.
pub const MAX_PENDING: usize = 4;

/// Size bounds on one step, whoever made it.
pub fn check_bounds(ev: &pb::RequestEvent) -> Result<(), SopError> {
    if ev.text.chars().count() > MAX_TEXT {
        return Err(SopError::TooLarge { field: "text", reason: format!("at most {MAX_TEXT} characters") });
    }
    if ev.attached_record_ids.len() > MAX_ATTACHED || ev.attached_record_ids.iter().any(|a| a.len() > 200) {
        return Err(SopError::TooLarge {
            field: "attached_record_ids",
            reason: format!("at most {MAX_ATTACHED} ids of at most 200 bytes"),
        });
    }
    Ok(())
}

/// Deadlines from the SOP terms for a request type and priority.
pub fn deadlines(
    terms: &pb::RequestTypeTerms,
    urgent: bool,
    submitted: OffsetDateTime,
) -> (OffsetDateTime, OffsetDateTime) {
    let (ack, answer) = if urgent {
        (terms.urgent_ack_within_seconds, terms.urgent_answer_within_seconds)
    } else {
        (terms.ack_within_seconds, terms.answer_within_seconds)
    };
    (crate::convert::after_secs(submitted, ack), crate::convert::after_secs(submitted, answer))
}

/// The terms for `request_type`, if the agreement's SOP defines it for `purpose`.
pub fn terms_for<'a>(
    terms: &'a BTreeMap<String, pb::RequestTypeTerms>,
    request_type: &str,
    purpose: pb::Purpose,
) -> Result<&'a pb::RequestTypeTerms, SopError> {
    let t = terms.get(request_type).ok_or_else(|| {
        SopError::UnknownType(request_type.to_string(), terms.keys().cloned().collect::<Vec<_>>().join(", "))
    })?;
    if !t.purposes.is_empty() && !t.purposes.contains(&(purpose as i32)) {
        return Err(SopError::PurposeNotAllowed {
            request_type: request_type.into(),
            purpose: crate::convert::purpose_word(purpose),
        });
    }
    Ok(t)
}

/// A new request from its submit step. Deadlines run from `start`: the
/// sender's clock when it submits, the receiver's own clock when the submit
/// arrives — never from a time a peer wrote, so a peer's wrong clock cannot
/// make a request arrive already overdue.
pub fn open(
    id: &str,
    header: pb::RequestHeader,
    terms: &pb::RequestTypeTerms,
    submit: pb::RequestEvent,
    start: OffsetDateTime,
) -> Result<pb::Request, SopError> {
    if submit.transition != T::Submit as i32 || submit.seq != 1 || submit.actor != header.from_node {
        return Err(SopError::InvalidTransition {
            from: "nothing".into(),
            step: "anything but the sender's first submit".into(),
        });
    }
    submit.time.as_ref().and_then(from_timestamp).ok_or(SopError::Missing("time"))?;
    let (ack, answer) = deadlines(terms, header.priority == pb::Priority::Urgent as i32, start);
    Ok(pb::Request {
        id: id.into(),
        header: Some(header),
        state: S::Submitted as i32,
        timeline: vec![submit],
        ack_due: Some(timestamp(ack)),
        answer_due: Some(timestamp(answer)),
        overdue: false,
        escalations: Vec::new(),
    })
}

fn state_name(s: i32) -> String {
    S::word_of(s)
}

fn step_name(t: i32) -> String {
    T::word_of(t)
}

/// Whether `ev` was made without having seen the other node's `step` in
/// the timeline (the two crossed on the wire).
fn crossed(req: &pb::Request, ev: &pb::RequestEvent, step: T) -> bool {
    req.timeline.iter().any(|e| e.actor != ev.actor && e.transition == step as i32 && ev.peer_seq < e.seq)
}

/// The next state after `ev`, or why not.
///
/// Steps that crossed on the wire resolve the same way on both nodes, so
/// they never end in different states: an answer or decline made before the
/// responder saw the requester's withdrawal stands (the information already
/// went out), and an acknowledgement that crossed a withdrawal is recorded
/// without undoing it. Each node keeps both steps in its timeline.
pub fn next_state(req: &pb::Request, ev: &pb::RequestEvent) -> Result<S, SopError> {
    let h = req.header.clone().unwrap_or_default();
    let from = req.state();
    let step = ev.transition();
    let receiver = ev.actor == h.to_node;
    let sender = ev.actor == h.from_node;
    let invalid = || SopError::InvalidTransition { from: state_name(req.state), step: step_name(ev.transition) };
    match step {
        T::Acknowledge | T::Answer | T::Decline if !receiver => {
            Err(SopError::WrongActor { who: "receiving node", step: step_name(ev.transition) })
        }
        T::Withdraw if !sender => Err(SopError::WrongActor { who: "sending node", step: step_name(ev.transition) }),
        T::Decline if ev.text.trim().is_empty() => Err(SopError::Missing("reason")),
        T::Acknowledge if from == S::Submitted => Ok(S::Acknowledged),
        T::Answer | T::Decline if matches!(from, S::Submitted | S::Acknowledged) => {
            Ok(if step == T::Answer { S::Answered } else { S::Declined })
        }
        T::Withdraw if matches!(from, S::Submitted | S::Acknowledged) => Ok(S::Withdrawn),
        // Crossed steps (see above).
        T::Answer | T::Decline if from == S::Withdrawn && crossed(req, ev, T::Withdraw) => {
            Ok(if step == T::Answer { S::Answered } else { S::Declined })
        }
        T::Acknowledge if from == S::Withdrawn && crossed(req, ev, T::Withdraw) => Ok(S::Withdrawn),
        T::Withdraw
            if matches!(from, S::Answered | S::Declined)
                && (crossed(req, ev, T::Answer) || crossed(req, ev, T::Decline)) =>
        {
            Ok(from)
        }
        _ => Err(invalid()),
    }
}

/// The highest step applied so far from `actor`.
pub fn last_seq(req: &pb::Request, actor: &str) -> u64 {
    req.timeline.iter().filter(|e| e.actor == actor).map(|e| e.seq).max().unwrap_or(0)
}

#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    Changed(Box<pb::Request>),
    /// Already applied: nothing to do (idempotent).
    Duplicate,
}

/// Applies one step, strictly in the actor's sequence. A step above the
/// size bounds never enters a timeline, whoever made it.
pub fn apply(req: &pb::Request, ev: &pb::RequestEvent) -> Result<Applied, SopError> {
    check_bounds(ev)?;
    if ev.request_id != req.id {
        return Err(SopError::WrongRequest(ev.request_id.clone()));
    }
    let last = last_seq(req, &ev.actor);
    if ev.seq <= last {
        return Ok(Applied::Duplicate);
    }
    let expected = last.saturating_add(1);
    if ev.seq != expected {
        return Err(SopError::OutOfOrder { actor: ev.actor.clone(), expected, got: ev.seq });
    }
    let h = req.header.clone().unwrap_or_default();
    let other = if ev.actor == h.from_node { &h.to_node } else { &h.from_node };
    let seen = last_seq(req, other);
    if seen < ev.peer_seq {
        // It follows a step of the other node we have not applied yet.
        return Err(SopError::OutOfOrder { actor: other.clone(), expected: seen.saturating_add(1), got: ev.peer_seq });
    }
    let state = next_state(req, ev)?;
    let mut out = req.clone();
    out.state = state as i32;
    // A step that ends the wait for a deadline clears "overdue" for the future;
    // escalations already made stay on the record.
    if matches!(state, S::Answered | S::Declined | S::Withdrawn) {
        out.overdue = false;
    }
    out.timeline.push(ev.clone());
    Ok(Applied::Changed(Box::new(out)))
}

/// Applies `ev` and then every buffered step that has become next in line.
/// Steps that arrive early wait in `pending` (bounded); an invalid incoming
/// step is an error, an invalid buffered one is dropped.
pub fn apply_in_order(
    req: &pb::Request,
    pending: &mut BTreeMap<(String, u64), pb::RequestEvent>,
    ev: pb::RequestEvent,
) -> Result<pb::Request, SopError> {
    check_bounds(&ev)?;
    // What a peer can make us keep is bounded: no step that can never become
    // next, and no more early steps than a request can have.
    if ev.seq > last_seq(req, &ev.actor).saturating_add(MAX_AHEAD) {
        return Err(SopError::InvalidTransition { from: state_name(req.state), step: format!("step {}", ev.seq) });
    }
    let key = (ev.actor.clone(), ev.seq);
    if !pending.contains_key(&key) && pending.len() >= MAX_PENDING {
        return Err(SopError::Backlog(format!("{MAX_PENDING} steps of this request are already waiting")));
    }
    let mut cur = req.clone();
    pending.insert(key.clone(), ev);
    loop {
        let mut progressed = false;
        let keys: Vec<(String, u64)> = pending.keys().cloned().collect();
        for k in keys {
            let Some(e) = pending.get(&k).cloned() else { continue };
            match apply(&cur, &e) {
                Ok(Applied::Changed(next)) => {
                    cur = *next;
                    pending.remove(&k);
                    progressed = true;
                }
                Ok(Applied::Duplicate) => {
                    pending.remove(&k);
                }
                Err(SopError::OutOfOrder { .. }) => {}
                // The incoming step is refused; an earlier buffered one that
                // turns out invalid is dropped without refusing this one.
                Err(err) if k == key => {
                    pending.remove(&k);
                    return Err(err);
                }
                Err(_) => {
                    pending.remove(&k);
                }
            }
        }
        if !progressed {
            return Ok(cur);
        }
    }
}

/// Request ids are "req-" and up to 60 letters, digits or '-' (as `random_id` makes them).
pub fn valid_request_id(id: &str) -> bool {
    id.len() <= 64
        && id
            .strip_prefix("req-")
            .is_some_and(|r| !r.is_empty() && r.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
}

/// A deadline that has passed and not yet been escalated.
pub fn newly_overdue(req: &pb::Request, terms: &pb::RequestTypeTerms, now: OffsetDateTime) -> Option<pb::Escalation> {
    let state = S::of(req.state)?;
    let passed =
        |due: &Option<pbjson_types::Timestamp>| due.as_ref().and_then(from_timestamp).is_some_and(|d| now >= d);
    let already = |which: &str| req.escalations.iter().any(|e| e.deadline == which);
    let which = if state == S::Submitted && passed(&req.ack_due) && !already("acknowledge") {
        "acknowledge"
    } else if matches!(state, S::Submitted | S::Acknowledged) && passed(&req.answer_due) && !already("answer") {
        "answer"
    } else {
        return None;
    };
    Some(pb::Escalation {
        deadline: which.into(),
        role: terms.escalation_role,
        contact_record_id: String::new(),
        contact_name: String::new(),
        time: Some(timestamp(now)),
    })
}

/// Records an escalation and marks the request overdue.
pub fn mark_overdue(req: &pb::Request, esc: pb::Escalation) -> pb::Request {
    let mut out = req.clone();
    out.overdue = true;
    out.escalations.push(esc);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t0() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    fn terms() -> pb::RequestTypeTerms {
        pb::RequestTypeTerms {
            name: "information_request".into(),
            ack_within_seconds: 86_400,
            answer_within_seconds: 7 * 86_400,
            urgent_ack_within_seconds: 8 * 3600,
            urgent_answer_within_seconds: 3 * 86_400,
            escalation_role: pb::ContactRole::UnitHead as i32,
            purposes: vec![pb::Purpose::Investigation as i32],
            source: String::new(),
            ..Default::default()
        }
    }

    fn header(urgent: bool) -> pb::RequestHeader {
        pb::RequestHeader {
            agreement_id: "th-kh".into(),
            agreement_version: 1,
            request_type: "information_request".into(),
            from_node: "th-atpd".into(),
            to_node: "kh-antht".into(),
            purpose: pb::Purpose::Investigation as i32,
            priority: if urgent { pb::Priority::Urgent } else { pb::Priority::Normal } as i32,
            subject: "Broker".into(),
            body: String::new(),
            refs: vec![],
        }
    }

    fn ev(actor: &str, seq: u64, t: T, text: &str) -> pb::RequestEvent {
        pb::RequestEvent {
            request_id: "r1".into(),
            actor: actor.into(),
            seq,
            transition: t as i32,
            time: Some(timestamp(t0())),
            text: text.into(),
            attached_record_ids: vec![],
            header: None,
            peer_seq: 0,
        }
    }

    fn opened(urgent: bool) -> pb::Request {
        open("r1", header(urgent), &terms(), ev("th-atpd", 1, T::Submit, ""), t0()).unwrap()
    }

    fn step(r: &pb::Request, e: pb::RequestEvent) -> Result<pb::Request, SopError> {
        match apply(r, &e)? {
            Applied::Changed(x) => Ok(*x),
            Applied::Duplicate => Ok(r.clone()),
        }
    }

    #[test]
    fn deadlines_follow_terms_and_priority() {
        let r = opened(false);
        assert_eq!(from_timestamp(r.ack_due.as_ref().unwrap()), Some(t0() + time::Duration::days(1)));
        assert_eq!(from_timestamp(r.answer_due.as_ref().unwrap()), Some(t0() + time::Duration::days(7)));
        let u = opened(true);
        assert_eq!(from_timestamp(u.ack_due.as_ref().unwrap()), Some(t0() + time::Duration::hours(8)));
        assert_eq!(from_timestamp(u.answer_due.as_ref().unwrap()), Some(t0() + time::Duration::days(3)));
    }

    #[test]
    fn unknown_types_and_purposes_are_refused() {
        let mut m = BTreeMap::new();
        m.insert("information_request".to_string(), terms());
        assert!(matches!(terms_for(&m, "victim_return", pb::Purpose::Investigation), Err(SopError::UnknownType(..))));
        assert!(matches!(
            terms_for(&m, "information_request", pb::Purpose::Prosecution),
            Err(SopError::PurposeNotAllowed { .. })
        ));
        assert!(terms_for(&m, "information_request", pb::Purpose::Investigation).is_ok());
    }

    #[test]
    fn the_life_cycle_and_its_rules() {
        let r = opened(false);
        // Who may do what.
        assert!(matches!(step(&r, ev("th-atpd", 2, T::Acknowledge, "")), Err(SopError::WrongActor { .. })));
        assert!(matches!(step(&r, ev("kh-antht", 1, T::Withdraw, "")), Err(SopError::WrongActor { .. })));
        assert_eq!(step(&r, ev("kh-antht", 1, T::Decline, " ")), Err(SopError::Missing("reason")));
        let acked = step(&r, ev("kh-antht", 1, T::Acknowledge, "")).unwrap();
        assert_eq!(acked.state, S::Acknowledged as i32);
        assert!(matches!(step(&acked, ev("kh-antht", 2, T::Acknowledge, "")), Err(SopError::InvalidTransition { .. })));
        let answered = step(&acked, ev("kh-antht", 2, T::Answer, "Two matches")).unwrap();
        assert_eq!(answered.state, S::Answered as i32);
        // No withdrawal after an answer (one made having seen it); nothing
        // after a final state.
        let mut late = ev("th-atpd", 2, T::Withdraw, "");
        late.peer_seq = 2;
        assert!(matches!(step(&answered, late), Err(SopError::InvalidTransition { .. })));
        assert!(matches!(step(&answered, ev("kh-antht", 3, T::Decline, "x")), Err(SopError::InvalidTransition { .. })));
        // Withdrawal before an answer, and nothing after it.
        let w = step(&r, ev("th-atpd", 2, T::Withdraw, "")).unwrap();
        assert_eq!(w.state, S::Withdrawn as i32);
        let late = pb::RequestEvent { peer_seq: 2, ..ev("kh-antht", 1, T::Answer, "late") };
        assert!(matches!(step(&w, late), Err(SopError::InvalidTransition { .. })));
        // Declined straight from submitted.
        assert_eq!(
            step(&r, ev("kh-antht", 1, T::Decline, "outside our competence")).unwrap().state,
            S::Declined as i32
        );
    }

    #[test]
    fn repeats_are_ignored_and_gaps_wait() {
        let r = opened(false);
        let acked = step(&r, ev("kh-antht", 1, T::Acknowledge, "")).unwrap();
        assert_eq!(apply(&acked, &ev("kh-antht", 1, T::Acknowledge, "")), Ok(Applied::Duplicate));
        assert!(matches!(
            apply(&r, &ev("kh-antht", 2, T::Answer, "a")),
            Err(SopError::OutOfOrder { expected: 1, got: 2, .. })
        ));
        let mut pending = BTreeMap::new();
        let r2 = apply_in_order(&r, &mut pending, ev("kh-antht", 2, T::Answer, "a")).unwrap();
        assert_eq!(r2.state, S::Submitted as i32, "waits for step 1");
        let r3 = apply_in_order(&r2, &mut pending, ev("kh-antht", 1, T::Acknowledge, "")).unwrap();
        assert_eq!(r3.state, S::Answered as i32);
        assert!(pending.is_empty());
    }

    /// Fuzzing finding (request_steps): `apply` took a step above the size
    /// bounds (65 attached ids, or 10,001 characters) into the timeline;
    /// only `apply_in_order` checked them, and a node's own steps go
    /// through `apply`.
    #[test]
    fn apply_refuses_a_step_above_the_bounds() {
        let r = opened(false);
        let many = pb::RequestEvent {
            attached_record_ids: vec!["th-atpd/en-1".into(); MAX_ATTACHED + 1],
            ..ev("kh-antht", 1, T::Answer, "a")
        };
        assert!(matches!(apply(&r, &many), Err(SopError::TooLarge { field: "attached_record_ids", .. })));
        let long = ev("kh-antht", 1, T::Answer, &"x".repeat(MAX_TEXT + 1));
        assert!(matches!(apply(&r, &long), Err(SopError::TooLarge { field: "text", .. })));
        assert!(step(&r, ev("kh-antht", 1, T::Answer, &"x".repeat(MAX_TEXT))).is_ok());
    }

    #[test]
    fn request_ids_cannot_reach_other_keys() {
        assert!(valid_request_id("req-0070fb69626ce0654ec70f89"));
        for bad in ["", "req-", "case/abc", "req-../x", "req-a/b", "xreq-1", &format!("req-{}", "a".repeat(61))] {
            assert!(!valid_request_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn overdue_escalates_once_per_deadline() {
        let r = opened(false);
        assert_eq!(newly_overdue(&r, &terms(), t0() + time::Duration::hours(23)), None);
        let esc = newly_overdue(&r, &terms(), t0() + time::Duration::hours(25)).unwrap();
        assert_eq!((esc.deadline.as_str(), esc.role), ("acknowledge", pb::ContactRole::UnitHead as i32));
        let r = mark_overdue(&r, esc);
        assert!(r.overdue);
        assert_eq!(newly_overdue(&r, &terms(), t0() + time::Duration::days(2)), None, "escalates once");
        let late = newly_overdue(&r, &terms(), t0() + time::Duration::days(8)).unwrap();
        assert_eq!(late.deadline, "answer");
        let r = mark_overdue(&r, late);
        assert_eq!(newly_overdue(&r, &terms(), t0() + time::Duration::days(30)), None);
        // An answered request is never overdue.
        let done = step(&opened(false), ev("kh-antht", 1, T::Answer, "x")).unwrap();
        assert_eq!(newly_overdue(&done, &terms(), t0() + time::Duration::days(30)), None);
    }

    fn valid_runs() -> impl Strategy<Value = Vec<pb::RequestEvent>> {
        prop_oneof![
            Just(vec![ev("kh-antht", 1, T::Acknowledge, ""), ev("kh-antht", 2, T::Answer, "a")]),
            Just(vec![ev("kh-antht", 1, T::Acknowledge, ""), ev("kh-antht", 2, T::Decline, "no")]),
            Just(vec![ev("kh-antht", 1, T::Decline, "no")]),
            Just(vec![ev("th-atpd", 2, T::Withdraw, "")]),
            Just(vec![
                ev("kh-antht", 1, T::Acknowledge, ""),
                pb::RequestEvent { peer_seq: 1, ..ev("th-atpd", 2, T::Withdraw, "") }
            ]),
        ]
    }

    /// Two nodes' copies of one request, each applying its own step at once
    /// and the other's when it arrives: steps that cross on the wire end in
    /// the same state on both sides, whatever the delivery order, and each
    /// side keeps both steps.
    #[test]
    fn crossed_steps_converge_on_both_nodes() {
        let responses = [T::Acknowledge, T::Answer, T::Decline];
        for acked_first in [false, true] {
            for response in responses {
                if acked_first && response == T::Acknowledge {
                    continue;
                }
                let mut th = opened(false);
                let mut kh = th.clone();
                if acked_first {
                    let ack = ev("kh-antht", 1, T::Acknowledge, "");
                    kh = step(&kh, ack.clone()).unwrap();
                    th = step(&th, ack).unwrap();
                }
                // Each makes its step having seen only what it holds.
                let mut withdraw = ev("th-atpd", 2, T::Withdraw, "");
                withdraw.peer_seq = last_seq(&th, "kh-antht");
                let mut reply = ev("kh-antht", last_seq(&kh, "kh-antht") + 1, response, "no record of him");
                reply.peer_seq = last_seq(&kh, "th-atpd");
                let th_own = step(&th, withdraw.clone()).unwrap();
                let kh_own = step(&kh, reply.clone()).unwrap();
                let th_end = step(&th_own, reply.clone()).unwrap_or_else(|e| panic!("TH refused {response:?}: {e}"));
                let kh_end = step(&kh_own, withdraw.clone()).unwrap_or_else(|e| panic!("KH refused withdraw: {e}"));
                assert_eq!(
                    th_end.state, kh_end.state,
                    "{response:?} crossing a withdrawal (acked first: {acked_first})"
                );
                let expected = if response == T::Acknowledge { S::Withdrawn } else { next_state(&kh, &reply).unwrap() };
                assert_eq!(S::try_from(th_end.state).unwrap(), expected);
                assert_eq!(th_end.timeline.len(), kh_end.timeline.len(), "both keep both steps");
            }
        }
    }

    /// A step made after seeing the other side's final step did not cross
    /// it: it is refused as before.
    #[test]
    fn a_step_made_after_seeing_a_withdrawal_is_still_refused() {
        let r = opened(false);
        let mut withdraw = ev("th-atpd", 2, T::Withdraw, "");
        withdraw.peer_seq = 0;
        let withdrawn = step(&r, withdraw).unwrap();
        let mut late = ev("kh-antht", 1, T::Answer, "too late");
        late.peer_seq = 2;
        assert!(matches!(step(&withdrawn, late), Err(SopError::InvalidTransition { .. })));
        let answered = {
            let mut a = ev("kh-antht", 1, T::Answer, "here");
            a.peer_seq = 1;
            step(&r, a).unwrap()
        };
        let mut seen = ev("th-atpd", 2, T::Withdraw, "");
        seen.peer_seq = 1;
        assert!(step(&answered, seen).is_err(), "a withdrawal after the answer was seen");
    }

    proptest! {
        #[test]
        fn any_arrival_order_with_repeats_reaches_the_same_state(run in valid_runs(), perm in Just(()).prop_perturb(|_, mut rng| {
            let mut order: Vec<usize> = (0..6).collect();
            for i in (1..order.len()).rev() { order.swap(i, (rng.next_u32() as usize) % (i + 1)); }
            order
        }), dups in proptest::collection::vec(0usize..3, 0..4)) {
            let base = opened(false);
            let mut in_order = base.clone();
            for e in &run {
                in_order = step(&in_order, e.clone()).unwrap();
            }
            let mut arrivals: Vec<pb::RequestEvent> = run.clone();
            for d in dups {
                arrivals.push(run[d % run.len()].clone());
            }
            let order: Vec<usize> = perm.into_iter().filter(|i| *i < arrivals.len()).collect();
            let mut pending = BTreeMap::new();
            let mut cur = base;
            for i in order.iter().chain((0..arrivals.len()).filter(|i| !order.contains(i)).collect::<Vec<_>>().iter()) {
                cur = apply_in_order(&cur, &mut pending, arrivals[*i].clone()).unwrap();
            }
            prop_assert_eq!(cur, in_order);
        }

        /// Whatever a peer sends, in any order, the buffer never holds more
        /// than a request can use, and nothing oversized is kept.
        #[test]
        fn the_early_step_buffer_is_bounded(seqs in proptest::collection::vec((0u64..1000, any::<bool>()), 0..50), text_len in 0usize..12_000) {
            let base = opened(false);
            let mut pending = BTreeMap::new();
            let mut cur = base;
            for (seq, kh) in seqs {
                let mut e = ev(if kh { "kh-antht" } else { "th-atpd" }, seq, T::Acknowledge, "");
                e.text = "x".repeat(text_len);
                if let Ok(next) = apply_in_order(&cur, &mut pending, e) {
                    cur = next;
                }
                prop_assert!(pending.len() <= MAX_PENDING);
                prop_assert!(pending.values().all(|e| e.text.len() <= MAX_TEXT));
            }
        }

        /// Terms from a received agreement and any clock reading: due dates
        /// saturate instead of overflowing, and the deadline checker never panics.
        #[test]
        fn extreme_terms_and_clocks_never_panic(
            ack in any::<u64>(),
            answer in any::<u64>(),
            urgent in any::<bool>(),
            submitted in 0i64..253_402_300_799,
            now in 0i64..253_402_300_799,
        ) {
            let mut t = terms();
            (t.ack_within_seconds, t.answer_within_seconds) = (ack, answer);
            (t.urgent_ack_within_seconds, t.urgent_answer_within_seconds) = (ack, answer);
            let at = OffsetDateTime::from_unix_timestamp(submitted).unwrap();
            let (a, b) = deadlines(&t, urgent, at);
            prop_assert!(a >= at && b >= at);
            let mut submit = ev("th-atpd", 1, T::Submit, "");
            submit.time = Some(timestamp(at));
            if let Ok(r) = open("r1", header(urgent), &t, submit, at) {
                let _ = newly_overdue(&r, &t, OffsetDateTime::from_unix_timestamp(now).unwrap());
            }
        }
    }
}
