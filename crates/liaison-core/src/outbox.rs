//! The outbox's protocol decisions, without IO: what an item becomes after
//! an attempt, which item of a peer's queue goes next, and who holds a copy
//! of a record. The store's `outbox` layout keeps items, the node's
//! `delivery` makes the calls; `liaison-sim` drives these same functions
//! over a lossy network.

use prost::Message;
use time::OffsetDateTime;

use crate::convert::{from_timestamp, timestamp};
use crate::pb;

/// Pending items older than this expire.
pub const EXPIRY: time::Duration = time::Duration::days(7);
/// Longest wait between attempts.
pub const MAX_BACKOFF_SECS: i64 = 60;

/// A peer's answer code: the gRPC status codes, typed here so the core
/// needs no gRPC library. The node converts its transport's code once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Ok,
    Cancelled,
    Unknown,
    InvalidArgument,
    DeadlineExceeded,
    NotFound,
    AlreadyExists,
    PermissionDenied,
    ResourceExhausted,
    FailedPrecondition,
    Aborted,
    OutOfRange,
    Unimplemented,
    Internal,
    Unavailable,
    DataLoss,
    Unauthenticated,
}

impl Code {
    /// The code with gRPC number `n`; numbers gRPC does not define are `Unknown`.
    pub fn from_i32(n: i32) -> Code {
        use Code as C;
        const ALL: [Code; 17] = [
            C::Ok,
            C::Cancelled,
            C::Unknown,
            C::InvalidArgument,
            C::DeadlineExceeded,
            C::NotFound,
            C::AlreadyExists,
            C::PermissionDenied,
            C::ResourceExhausted,
            C::FailedPrecondition,
            C::Aborted,
            C::OutOfRange,
            C::Unimplemented,
            C::Internal,
            C::Unavailable,
            C::DataLoss,
            C::Unauthenticated,
        ];
        usize::try_from(n).ok().and_then(|n| ALL.get(n).copied()).unwrap_or(C::Unknown)
    }
}

/// What a peer's error answer means for the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterError {
    /// It may succeed later (the peer is down, busy, or not ready yet).
    Retry,
    /// Retrying cannot change it: the item fails, with the peer's reason.
    Fail,
}

/// Only answers that can change on their own are retried. `NOT_FOUND` is
/// one: a request step can arrive before its submit.
pub fn after_error(code: Code) -> AfterError {
    use Code as C;
    match code {
        C::Unavailable
        | C::DeadlineExceeded
        | C::ResourceExhausted
        | C::Aborted
        | C::Cancelled
        | C::Unknown
        | C::Internal
        | C::NotFound
        | C::FailedPrecondition => AfterError::Retry,
        C::Ok
        | C::InvalidArgument
        | C::PermissionDenied
        | C::Unauthenticated
        | C::Unimplemented
        | C::OutOfRange
        | C::AlreadyExists
        | C::DataLoss => AfterError::Fail,
    }
}

/// Why an attempt failed, typed: never a formatted message read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Our own side refused it for good while preparing the call (a policy
    /// denial, a record that is gone).
    Refused(String),
    /// The peer answered with an error status.
    Peer { code: Code, message: String },
    /// No answer: unreachable, timed out, or the call broke.
    Unanswered(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Refused(why) | Failure::Unanswered(why) => f.write_str(why),
            Failure::Peer { code, message } => write!(f, "peer answered {code:?}: {message}"),
        }
    }
}

/// What one attempt (or the check before it) came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Older than [`EXPIRY`]: nobody will answer it now.
    Expired,
    /// Our policy holds it back for now (a suspended agreement).
    Held(String),
    /// Our policy refuses it for good (revoked, or the record is gone).
    Refused(String),
    /// Taken: the peer's verified receipt, or a hub or agreement party's answer.
    Delivered { note: String, receipt: Option<pb::Envelope> },
    /// The peer's verified receipt says it refused the item, and why.
    RefusedByPeer { reason: String, receipt: pb::Envelope },
    /// The answer's receipt did not verify: tried again later.
    BadReceipt(String),
    /// The call failed.
    Failed(Failure),
}

/// Wait before the next attempt after `attempts` of them: doubling, capped.
pub fn backoff(attempts: u32) -> time::Duration {
    time::Duration::seconds((1i64 << attempts.min(6)).min(MAX_BACKOFF_SECS))
}

/// True when `item` was created more than [`EXPIRY`] before `now`.
pub fn expired(item: &pb::OutboxItem, now: OffsetDateTime) -> bool {
    item.create_time.as_ref().and_then(from_timestamp).is_some_and(|t| crate::convert::between(t, now) > EXPIRY)
}

/// An item's next state after `outcome` at `now`. Refusals by our own
/// policy are final; peer errors that retrying cannot change fail the item;
/// everything else is retried with back-off. Only a pending item is ever
/// attempted.
pub fn next(mut i: pb::OutboxItem, outcome: Outcome, now: OffsetDateTime) -> pb::OutboxItem {
    use pb::OutboxState as S;
    let retry = |i: &mut pb::OutboxItem| i.next_attempt_time = Some(timestamp(now.saturating_add(backoff(i.attempts))));
    if !matches!(outcome, Outcome::Expired | Outcome::Refused(_)) {
        i.attempts = i.attempts.saturating_add(1);
    }
    match outcome {
        Outcome::Expired => {
            i.state = S::Expired as i32;
            i.last_error = "expired before the peer answered".into();
        }
        Outcome::Held(why) | Outcome::BadReceipt(why) => {
            i.last_error = why;
            retry(&mut i);
        }
        Outcome::Refused(why) => {
            i.state = S::Refused as i32;
            i.last_error = why;
        }
        Outcome::Delivered { note, receipt } => {
            i.state = S::Delivered as i32;
            i.last_error = note;
            i.receipt = receipt.or(i.receipt);
        }
        Outcome::RefusedByPeer { reason, receipt } => {
            i.state = S::Refused as i32;
            i.last_error = reason;
            i.receipt = Some(receipt);
        }
        Outcome::Failed(e) => {
            i.last_error = e.to_string();
            match e {
                Failure::Refused(_) => i.state = S::Refused as i32,
                Failure::Peer { code, .. } if after_error(code) == AfterError::Fail => i.state = S::Failed as i32,
                Failure::Peer { .. } | Failure::Unanswered(_) => retry(&mut i),
            }
        }
    }
    i
}

/// The order a peer's queue is delivered in: by creation time, then id.
pub fn queue_order(i: &pb::OutboxItem) -> (i64, i32, String) {
    let t = i.create_time.unwrap_or_default();
    (t.seconds, t.nanos, i.delivery_id.clone())
}

/// Agreement notices are ordered by their issue time, not by the queue:
/// one that must wait holds up nothing behind it.
pub fn unordered(i: &pb::OutboxItem) -> bool {
    i.action == pb::OutboxAction::AgreementNotice as i32
}

/// Which item of one peer's queue (sorted by [`queue_order`]) to attempt
/// next at `now`, if any: the first pending item, once it is due. A
/// pending item that is not yet due holds back everything queued after it,
/// so a new version of a record never overtakes the step that relies on it,
/// nor a withdrawal the share it withdraws.
pub fn next_due(queue: &[pb::OutboxItem], now: OffsetDateTime) -> Option<usize> {
    for (n, i) in queue.iter().enumerate() {
        if i.state != pb::OutboxState::Pending as i32 {
            continue;
        }
        let due = i.next_attempt_time.as_ref().and_then(from_timestamp).is_none_or(|t| t <= now);
        if due {
            return Some(n);
        }
        if !unordered(i) {
            return None;
        }
    }
    None
}

/// One peer's standing for one record: whether a share of it was delivered,
/// and how many shares of it are still pending. Stored by the node's holder
/// index; a new version or a withdrawal goes to every holder, including a
/// peer whose share is still in flight.
#[derive(Clone, PartialEq, Message)]
pub struct Holder {
    // The same varint on the wire as before; typed for its getter.
    #[prost(enumeration = "pb::Purpose", tag = "1")]
    pub purpose: i32,
    #[prost(bool, tag = "2")]
    pub delivered: bool,
    #[prost(uint32, tag = "3")]
    pub pending: u32,
}

/// What a share item's new state does to its peer's standing: the pure
/// rule behind the holder index.
pub fn next_holder(before: Option<Holder>, purpose: i32, was_pending: bool, state: pb::OutboxState) -> Option<Holder> {
    let mut h = before.unwrap_or(Holder { purpose, delivered: false, pending: 0 });
    if was_pending {
        h.pending = h.pending.saturating_sub(1);
    }
    match state {
        pb::OutboxState::Pending => h.pending = h.pending.saturating_add(1),
        pb::OutboxState::Delivered => {
            h.delivered = true;
            h.purpose = purpose;
        }
        _ => {}
    }
    (h.delivered || h.pending > 0).then_some(h)
}

#[cfg(test)]
mod tests;
