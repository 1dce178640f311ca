//! An in-memory federation of liaison cores, in the spirit of quinn-proto's
//! test `Pair`: nodes that decide exactly as the real node decides (the
//! core's `policy`, `redact`, `outbox` and `receive`), joined by a network
//! that loses, duplicates, delays and reorders messages, under a clock the
//! test moves. No sockets, no threads, no sleeps: a run is a pure function
//! of its seed, so a property test can try thousands of schedules in
//! seconds and a failing one replays exactly.
//!
//! What is modelled is the delivery protocol: a sender's durable outbox
//! delivers each peer's items one call at a time, in queue order, retrying
//! with back-off until a receipt comes back; the receiver decides again
//! under its own agreements, stores only newer versions of records, purges
//! for good what the originator withdraws, applies
//! request steps in causal order (`sop::request::apply_in_order`, crossed
//! steps resolved by `next_state`), and answers every repeat of a delivery
//! id with the receipt it gave the first time.
//! A hostile peer is one that skips its own side and [`Sim::inject`]s
//! whatever it likes.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};

use liaison_core::convert::timestamp;
use liaison_core::outbox::{self, Failure, Outcome};
use liaison_core::pb;
use liaison_core::policy::{self, Decision, Direction, Exchange};
use liaison_core::receive::{self, Held, Kept};
use liaison_core::sop::request as sop;
use time::{Duration, OffsetDateTime};

/// How long a sender waits for an answer before it gives the call up (the
/// node's attempt budget).
pub const ATTEMPT_TIMEOUT: Duration = Duration::seconds(30);

/// What the network does to messages. Percentages are per message.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Chance a message is lost.
    pub loss_pct: u8,
    /// Chance a message arrives twice.
    pub dup_pct: u8,
    /// Longest delay of a message, in milliseconds (each gets 1..=this);
    /// different delays reorder messages.
    pub max_delay_ms: u32,
}

/// A message between two nodes.
#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    /// A share of a record version, as `PushRecord` carries it.
    Push { call: u64, delivery_id: String, record: Box<pb::Record>, purpose: pb::Purpose },
    /// A withdrawal, as `RetractRecord` carries it: the originator's
    /// withdrawn version.
    Retract { call: u64, delivery_id: String, record: Box<pb::Record> },
    /// A request step, as `DeliverRequestEvent` carries it.
    Step { call: u64, delivery_id: String, event: Box<pb::RequestEvent> },
    /// The answer to a push or a step: the receiver's receipt.
    Receipt { call: u64, receipt: pb::Receipt },
}

#[derive(Debug, Clone)]
struct Flight {
    at: OffsetDateTime,
    seq: u64,
    from: String,
    to: String,
    msg: Msg,
}

/// One call a sender waits on.
#[derive(Debug, Clone)]
struct Call {
    id: u64,
    delivery_id: String,
    deadline: OffsetDateTime,
}

/// One node: its agreements, its outbox and what it holds.
#[derive(Debug, Default)]
pub struct Node {
    pub id: String,
    pub agreements: Vec<(pb::Agreement, pb::AgreementState)>,
    /// Every item ever queued, in queue order; the state is the outbox's.
    pub outbox: Vec<pb::OutboxItem>,
    records: BTreeMap<String, pb::Record>,
    /// What each request-step item carries, by delivery id.
    steps: BTreeMap<String, pb::RequestEvent>,
    /// This node's copy of each request, and the steps that came early.
    pub requests: BTreeMap<String, pb::Request>,
    early: BTreeMap<String, BTreeMap<(String, u64), pb::RequestEvent>>,
    /// The call in flight to each peer (one at a time, as the node's worker).
    calls: BTreeMap<String, Call>,
    /// Received records by key.
    pub held: BTreeMap<String, pb::Record>,
    /// Withdrawals the originators told us about.
    pub withdrawn: BTreeSet<String>,
    /// The receipt given for each (sender, delivery id): the answer to every repeat.
    pub receipts: BTreeMap<(String, String), pb::Receipt>,
    /// Deliveries that changed what this node holds, in the order they did.
    pub applied: Vec<(String, String)>,
}

impl Node {
    fn new(id: &str, agreements: Vec<(pb::Agreement, pb::AgreementState)>) -> Node {
        Node { id: id.into(), agreements, ..Node::default() }
    }

    /// Sets the state of agreement `id` as this node holds it.
    pub fn set_agreement_state(&mut self, id: &str, state: pb::AgreementState) {
        for (a, s) in &mut self.agreements {
            if a.id == id {
                *s = state;
            }
        }
    }

    /// The items queued to `peer`, in queue order.
    pub fn queue_to(&self, peer: &str) -> Vec<&pb::OutboxItem> {
        self.outbox.iter().filter(|i| i.peer == peer).collect()
    }

    /// True when nothing is pending and no call is waiting.
    pub fn settled(&self) -> bool {
        self.calls.is_empty() && self.outbox.iter().all(|i| i.state != pb::OutboxState::Pending as i32)
    }
}

/// A small deterministic generator (SplitMix64), so a run depends on its seed alone.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn pct(&mut self, p: u8) -> bool {
        self.next() % 100 < u64::from(p)
    }

    fn upto(&mut self, n: u32) -> u32 {
        if n == 0 {
            0
        } else {
            u32::try_from(self.next() % u64::from(n)).unwrap_or(0).saturating_add(1)
        }
    }
}

/// The federation: nodes, the wire between them, and the clock.
#[derive(Debug)]
pub struct Sim {
    pub now: OffsetDateTime,
    pub faults: Faults,
    pub nodes: BTreeMap<String, Node>,
    wire: Vec<Flight>,
    rng: Rng,
    seq: u64,
    /// Every message that reached a node, in arrival order (for assertions).
    pub arrivals: Vec<(String, String, Msg)>,
}

impl Sim {
    pub fn new(seed: u64, now: OffsetDateTime, faults: Faults) -> Sim {
        Sim { now, faults, nodes: BTreeMap::new(), wire: Vec::new(), rng: Rng(seed), seq: 0, arrivals: Vec::new() }
    }

    pub fn add_node(&mut self, id: &str, agreements: Vec<(pb::Agreement, pb::AgreementState)>) {
        self.nodes.insert(id.into(), Node::new(id, agreements));
    }

    pub fn node(&self, id: &str) -> &Node {
        &self.nodes[id]
    }

    pub fn node_mut(&mut self, id: &str) -> &mut Node {
        self.nodes.get_mut(id).expect("no such node in the simulation")
    }

    /// `from` shares (a new version of) `record` with `to`: queued in its
    /// outbox, as `exchange::outbox::share` queues it. Returns the delivery id.
    pub fn share(&mut self, from: &str, to: &str, record: pb::Record, purpose: pb::Purpose) -> String {
        let now = self.now;
        self.seq = self.seq.saturating_add(1);
        let n = self.node_mut(from);
        // Zero-padded, so ids sort in the order they were queued (ties in time go by id).
        let delivery_id = format!("dlv-{from}-{:06}", n.outbox.len());
        let key = format!("{}/{}", record.originator, record.id);
        n.outbox.push(pb::OutboxItem {
            delivery_id: delivery_id.clone(),
            peer: to.into(),
            record_key: key.clone(),
            version: record.version,
            purpose: purpose as i32,
            state: pb::OutboxState::Pending as i32,
            action: pb::OutboxAction::Share as i32,
            create_time: Some(timestamp(now)),
            ..Default::default()
        });
        n.records.insert(delivery_id.clone(), record);
        delivery_id
    }

    /// `from` withdraws its record and tells `to` (a holder), queued behind
    /// whatever it queued to `to` before. `withdrawn` is the withdrawn
    /// version. Returns the delivery id.
    pub fn withdraw(&mut self, from: &str, to: &str, withdrawn: pb::Record) -> String {
        let now = self.now;
        let n = self.node_mut(from);
        let delivery_id = format!("dlv-{from}-{:06}", n.outbox.len());
        n.outbox.push(pb::OutboxItem {
            delivery_id: delivery_id.clone(),
            peer: to.into(),
            record_key: format!("{}/{}", withdrawn.originator, withdrawn.id),
            state: pb::OutboxState::Pending as i32,
            action: pb::OutboxAction::Withdraw as i32,
            create_time: Some(timestamp(now)),
            ..Default::default()
        });
        n.records.insert(delivery_id.clone(), pb::Record { withdrawn: true, ..withdrawn });
        delivery_id
    }

    /// Both nodes hold request `id` from `from` to `to`, as after its submit
    /// arrived (the submit's own delivery is a push like any other).
    pub fn open_request(&mut self, id: &str, from: &str, to: &str, terms: &pb::RequestTypeTerms) {
        let header = pb::RequestHeader { from_node: from.into(), to_node: to.into(), ..Default::default() };
        let submit = pb::RequestEvent {
            request_id: id.into(),
            actor: from.into(),
            seq: 1,
            transition: pb::Transition::Submit as i32,
            time: Some(timestamp(self.now)),
            ..Default::default()
        };
        let now = self.now;
        for n in [from, to] {
            if let Ok(r) = sop::open(id, header.clone(), terms, submit.clone(), now) {
                self.node_mut(n).requests.insert(id.into(), r);
            }
        }
    }

    /// `actor` takes `step` on request `id` if its own copy allows it now,
    /// as the desk does: applied at home, queued for the other node.
    /// Returns whether it was taken.
    pub fn take_step(&mut self, actor: &str, id: &str, step: pb::Transition, text: &str) -> bool {
        let now = self.now;
        let n = self.node_mut(actor);
        let Some(req) = n.requests.get(id).cloned() else { return false };
        let h = req.header.clone().unwrap_or_default();
        let other = if h.from_node == actor { h.to_node.clone() } else { h.from_node.clone() };
        let ev = pb::RequestEvent {
            request_id: id.into(),
            actor: actor.into(),
            seq: sop::last_seq(&req, actor).saturating_add(1),
            transition: step as i32,
            time: Some(timestamp(now)),
            text: text.into(),
            peer_seq: sop::last_seq(&req, &other),
            ..Default::default()
        };
        let Ok(sop::Applied::Changed(next)) = sop::apply(&req, &ev) else { return false };
        n.requests.insert(id.into(), *next);
        let delivery_id = format!("dlv-{actor}-{:06}", n.outbox.len());
        n.outbox.push(pb::OutboxItem {
            delivery_id: delivery_id.clone(),
            peer: other,
            record_key: id.into(),
            state: pb::OutboxState::Pending as i32,
            action: pb::OutboxAction::RequestEvent as i32,
            create_time: Some(timestamp(now)),
            ..Default::default()
        });
        n.steps.insert(delivery_id, ev);
        true
    }

    /// A hostile `from` sends `msg` to `to` directly, past its own outbox
    /// and policy.
    pub fn inject(&mut self, from: &str, to: &str, msg: Msg) {
        self.send(from, to, msg);
    }

    fn send(&mut self, from: &str, to: &str, msg: Msg) {
        if self.rng.pct(self.faults.loss_pct) {
            return;
        }
        let copies = if self.rng.pct(self.faults.dup_pct) { 2 } else { 1 };
        for _ in 0..copies {
            let delay = Duration::milliseconds(i64::from(self.rng.upto(self.faults.max_delay_ms)));
            self.seq = self.seq.saturating_add(1);
            self.wire.push(Flight {
                at: self.now + delay,
                seq: self.seq,
                from: from.into(),
                to: to.into(),
                msg: msg.clone(),
            });
        }
    }

    /// Runs until every node is settled and the wire is empty, or until
    /// `limit` of simulated time has passed. Returns true when settled.
    pub fn run(&mut self, limit: Duration) -> bool {
        let end = self.now + limit;
        loop {
            self.start_calls();
            if self.wire.is_empty() && self.nodes.values().all(Node::settled) {
                return true;
            }
            let Some(next) = self.next_event() else { return false };
            if next > end {
                return false;
            }
            self.now = self.now.max(next);
            self.deliver_due();
            self.time_out_calls();
        }
    }

    /// The next moment something can happen: a message lands, a call times
    /// out, or a retry falls due.
    fn next_event(&self) -> Option<OffsetDateTime> {
        let landing = self.wire.iter().map(|f| f.at);
        let deadlines = self.nodes.values().flat_map(|n| n.calls.values().map(|c| c.deadline));
        let retries = self.nodes.values().flat_map(|n| {
            n.outbox
                .iter()
                .filter(|i| i.state == pb::OutboxState::Pending as i32 && !n.calls.contains_key(&i.peer))
                .filter_map(|i| i.next_attempt_time.as_ref().and_then(liaison_core::convert::from_timestamp))
        });
        landing.chain(deadlines).chain(retries).min()
    }

    /// Every node starts the next due item of every peer queue with no call
    /// in flight — the node's `deliver_in_order`, one step at a time.
    fn start_calls(&mut self) {
        let now = self.now;
        let mut sends = Vec::new();
        let ids: Vec<String> = self.nodes.keys().cloned().collect();
        for id in ids {
            let Some(n) = self.nodes.get_mut(&id) else { continue };
            let peers: BTreeSet<String> = n.outbox.iter().map(|i| i.peer.clone()).collect();
            for peer in peers {
                while !n.calls.contains_key(&peer) {
                    let queue: Vec<pb::OutboxItem> = n.outbox.iter().filter(|i| i.peer == peer).cloned().collect();
                    let Some(pick) = outbox::next_due(&queue, now) else { break };
                    let Some(item) = queue.get(pick).cloned() else { break };
                    self.seq = self.seq.saturating_add(1);
                    let call =
                        Call { id: self.seq, delivery_id: item.delivery_id.clone(), deadline: now + ATTEMPT_TIMEOUT };
                    let withdrawal = (item.action == pb::OutboxAction::Withdraw as i32)
                        .then(|| n.records.get(&item.delivery_id).cloned())
                        .flatten();
                    let msg = if let Some(ev) = n.steps.get(&item.delivery_id) {
                        Msg::Step { call: call.id, delivery_id: item.delivery_id.clone(), event: Box::new(ev.clone()) }
                    } else if let Some(record) = withdrawal {
                        // A withdrawal always goes: no grant is needed to tell a holder to purge.
                        Msg::Retract { call: call.id, delivery_id: item.delivery_id.clone(), record: Box::new(record) }
                    } else {
                        match prepare(n, &item, now) {
                            Ok((record, purpose)) => Msg::Push {
                                call: call.id,
                                delivery_id: item.delivery_id.clone(),
                                record: Box::new(record),
                                purpose,
                            },
                            Err(outcome) => {
                                settle(n, &item.delivery_id, outcome, now);
                                continue;
                            }
                        }
                    };
                    n.calls.insert(peer.clone(), call);
                    sends.push((id.clone(), peer.clone(), msg));
                }
            }
        }
        for (from, to, msg) in sends {
            self.send(&from, &to, msg);
        }
    }

    fn deliver_due(&mut self) {
        let now = self.now;
        let mut due: Vec<Flight> = Vec::new();
        self.wire.retain(|f| {
            if f.at <= now {
                due.push(f.clone());
                false
            } else {
                true
            }
        });
        due.sort_by_key(|f| (f.at, f.seq));
        for f in due {
            self.arrivals.push((f.from.clone(), f.to.clone(), f.msg.clone()));
            let Some(n) = self.nodes.get_mut(&f.to) else { continue };
            match f.msg {
                Msg::Push { call, delivery_id, record, purpose } => {
                    let receipt = receive_push(n, &f.from, &delivery_id, &record, purpose, now);
                    self.send(&f.to, &f.from, Msg::Receipt { call, receipt });
                }
                Msg::Retract { call, delivery_id, record } => {
                    let receipt = receive_retract(n, &f.from, &delivery_id, &record, now);
                    self.send(&f.to, &f.from, Msg::Receipt { call, receipt });
                }
                Msg::Step { call, delivery_id, event } => {
                    let receipt = receive_step(n, &f.from, &delivery_id, *event, now);
                    self.send(&f.to, &f.from, Msg::Receipt { call, receipt });
                }
                Msg::Receipt { call, receipt } => {
                    // Only the answer to the call still waiting counts: a late or
                    // repeated answer belongs to a call already given up.
                    if n.calls.get(&f.from).is_some_and(|c| c.id == call && c.delivery_id == receipt.delivery_id) {
                        n.calls.remove(&f.from);
                        let outcome = if receipt.delivered {
                            Outcome::Delivered { note: receipt.reason.clone(), receipt: None }
                        } else {
                            Outcome::RefusedByPeer { reason: receipt.reason.clone(), receipt: pb::Envelope::default() }
                        };
                        settle(n, &receipt.delivery_id, outcome, now);
                    }
                }
            }
        }
    }

    fn time_out_calls(&mut self) {
        let now = self.now;
        for n in self.nodes.values_mut() {
            let late: Vec<(String, Call)> =
                n.calls.iter().filter(|(_, c)| c.deadline <= now).map(|(p, c)| (p.clone(), c.clone())).collect();
            for (peer, c) in late {
                n.calls.remove(&peer);
                settle(n, &c.delivery_id, Outcome::Failed(Failure::Unanswered("no answer in time".into())), now);
            }
        }
    }
}

/// The sender's side of an attempt, as `exchange::outbox::attempt` does it:
/// expired items expire; the policy is asked again (a share it now denies,
/// under a revoked or suspended agreement, is refused); what goes out is
/// redacted by the sender's own decision.
fn prepare(n: &Node, item: &pb::OutboxItem, now: OffsetDateTime) -> Result<(pb::Record, pb::Purpose), Outcome> {
    if outbox::expired(item, now) {
        return Err(Outcome::Expired);
    }
    let Some(record) = n.records.get(&item.delivery_id) else {
        return Err(Outcome::Refused("the record is gone".into()));
    };
    let purpose = item.purpose();
    let ex = Exchange::of_record(&n.id, &item.peer, Direction::Outgoing, pb::Operation::Push, record, purpose, now);
    match policy::decide(&n.agreements, &ex) {
        Decision::Allow { plan, .. } => Ok((liaison_core::redact::redact(record, &plan), purpose)),
        // As the node: a share its own policy denies at send time is refused for good.
        Decision::Deny(d) => Err(Outcome::Failed(Failure::Refused(format!("denied ({}): {d}", d.code())))),
    }
}

fn settle(n: &mut Node, delivery_id: &str, outcome: Outcome, now: OffsetDateTime) {
    if let Some(i) = n.outbox.iter_mut().find(|i| i.delivery_id == delivery_id) {
        *i = outbox::next(i.clone(), outcome, now);
    }
}

/// What a receiver made of a new delivery: what it refers to, whether it
/// was taken, and why not.
struct Verdict {
    reference: String,
    version: u64,
    delivered: bool,
    reason: String,
}

/// Answers each (sender, delivery id) once: a repeat gets the receipt the
/// first one got; a new one is decided by `decide` and its receipt kept.
fn answer_once(
    n: &mut Node,
    sender: &str,
    delivery_id: &str,
    now: OffsetDateTime,
    decide: impl FnOnce(&mut Node, &(String, String)) -> Verdict,
) -> pb::Receipt {
    let dk = (sender.to_string(), delivery_id.to_string());
    if let Some(r) = n.receipts.get(&dk) {
        return r.clone();
    }
    let v = decide(n, &dk);
    let receipt = pb::Receipt {
        delivery_id: delivery_id.into(),
        record_key: v.reference,
        version: v.version,
        delivered: v.delivered,
        reason: v.reason,
        receiver: n.id.clone(),
        time: Some(timestamp(now)),
    };
    n.receipts.insert(dk, receipt.clone());
    receipt
}

/// The receiver's side of `PushRecord`: a new delivery is decided under
/// this node's own agreements and stored only when it is a newer live
/// version of the same kind.
fn receive_push(
    n: &mut Node,
    sender: &str,
    delivery_id: &str,
    record: &pb::Record,
    purpose: pb::Purpose,
    now: OffsetDateTime,
) -> pb::Receipt {
    answer_once(n, sender, delivery_id, now, |n, dk| {
        let key = format!("{}/{}", record.originator, record.id);
        let verdict = |delivered: bool, reason: String| Verdict {
            reference: key.clone(),
            version: record.version,
            delivered,
            reason,
        };
        if record.originator != sender {
            return verdict(false, "onward share without the originator's consent".into());
        }
        let ex = Exchange::of_record(&n.id, sender, Direction::Incoming, pb::Operation::Push, record, purpose, now);
        match policy::decide_received(&n.agreements, &ex, record) {
            Decision::Deny(d) => verdict(false, format!("{}: {d}", d.code())),
            Decision::Allow { .. } => {
                let held = n.held.get(&key).map(Held::of);
                match receive::keep(held, n.withdrawn.contains(&key), record) {
                    Kept::Stored => {
                        n.held.insert(key.clone(), record.clone());
                        n.applied.push(dk.clone());
                        verdict(true, String::new())
                    }
                    Kept::Unchanged => verdict(true, String::new()),
                    Kept::KindChanged { .. } => verdict(false, "a later version cannot change the kind".into()),
                    Kept::Withdrawn => verdict(false, "withdrawn by the originator".into()),
                    // The simulated receiver decides and stores in one step.
                    Kept::AgreementEnded => verdict(false, "the agreement is no longer in force".into()),
                }
            }
        }
    })
}

/// The receiver's side of `DeliverRequestEvent`: a new step of the other
/// party is applied in causal order (an early one waits for the steps it
/// follows), and one this node's copy cannot take is refused.
fn receive_step(
    n: &mut Node,
    sender: &str,
    delivery_id: &str,
    ev: pb::RequestEvent,
    now: OffsetDateTime,
) -> pb::Receipt {
    answer_once(n, sender, delivery_id, now, |n, dk| {
        let verdict = |delivered: bool, reason: String| Verdict {
            reference: ev.request_id.clone(),
            version: ev.seq,
            delivered,
            reason,
        };
        let Some(req) = n.requests.get(&ev.request_id).cloned() else {
            return verdict(false, "no such request".into());
        };
        if ev.actor != sender {
            return verdict(false, "a step made by another node".into());
        }
        let pending = n.early.entry(ev.request_id.clone()).or_default();
        match sop::apply_in_order(&req, pending, ev.clone()) {
            Ok(next) => {
                if next != req {
                    n.applied.push(dk.clone());
                }
                n.requests.insert(ev.request_id.clone(), next);
                verdict(true, String::new())
            }
            Err(e) => verdict(false, e.to_string()),
        }
    })
}

/// The receiver's side of `RetractRecord`: only the originator withdraws;
/// the record is purged and remembered as withdrawn, so no version of it is
/// stored again, whatever arrives later.
fn receive_retract(
    n: &mut Node,
    sender: &str,
    delivery_id: &str,
    record: &pb::Record,
    now: OffsetDateTime,
) -> pb::Receipt {
    answer_once(n, sender, delivery_id, now, |n, dk| {
        let key = format!("{}/{}", record.originator, record.id);
        let verdict = |delivered: bool, reason: &str| Verdict {
            reference: key.clone(),
            version: record.version,
            delivered,
            reason: reason.into(),
        };
        if record.originator != sender || !record.withdrawn {
            return verdict(false, "only the originator withdraws, with the withdrawn version");
        }
        n.withdrawn.insert(key.clone());
        if n.held.remove(&key).is_some() {
            n.applied.push(dk.clone());
            verdict(true, "purged")
        } else {
            verdict(true, "not held")
        }
    })
}
