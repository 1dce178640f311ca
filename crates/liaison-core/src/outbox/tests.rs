use super::*;
use proptest::prelude::*;

#[test]
fn only_answers_that_can_change_are_retried() {
    for c in [Code::Unavailable, Code::DeadlineExceeded, Code::ResourceExhausted, Code::NotFound] {
        assert_eq!(after_error(c), AfterError::Retry, "{c:?}");
    }
    for c in [Code::InvalidArgument, Code::PermissionDenied, Code::Unauthenticated, Code::Unimplemented] {
        assert_eq!(after_error(c), AfterError::Fail, "{c:?}");
    }
}

#[test]
fn codes_keep_their_grpc_numbers() {
    assert_eq!(Code::from_i32(0), Code::Ok);
    assert_eq!(Code::from_i32(7), Code::PermissionDenied);
    assert_eq!(Code::from_i32(14), Code::Unavailable);
    assert_eq!(Code::from_i32(16), Code::Unauthenticated);
    assert_eq!(Code::from_i32(17), Code::Unknown);
    assert_eq!(Code::from_i32(-1), Code::Unknown);
}

/// The holder index follows each share: a peer being sent a record is a
/// holder until every share to it ended without one being delivered.
#[test]
fn holders_follow_each_share() {
    use pb::OutboxState as S;
    let p = pb::Purpose::Coordination as i32;
    // Queued: a holder while in flight (an update must reach it).
    let h = next_holder(None, p, false, S::Pending);
    assert_eq!(h, Some(Holder { purpose: p, delivered: false, pending: 1 }));
    // A retry keeps it pending; refusal of the only share ends it.
    assert_eq!(next_holder(h.clone(), p, true, S::Pending), h);
    assert_eq!(next_holder(h.clone(), p, true, S::Refused), None);
    // Delivered: a holder for good, whatever later shares do.
    let d = next_holder(h.clone(), p, true, S::Delivered);
    assert_eq!(d, Some(Holder { purpose: p, delivered: true, pending: 0 }));
    let again = next_holder(d.clone(), p, false, S::Pending);
    assert_eq!(next_holder(again, p, true, S::Failed), d);
    // v1 and v2 both pending; v1 failing leaves v2 counting.
    let two = next_holder(h, p, false, S::Pending);
    assert_eq!(next_holder(two, p, true, S::Expired), Some(Holder { purpose: p, delivered: false, pending: 1 }));
}

proptest! {
    /// Replaying any sequence of share outcomes: a peer is a holder
    /// exactly when a share was delivered or one is still pending.
    #[test]
    fn holder_index_matches_the_items(events in proptest::collection::vec((0usize..4, 0u8..5), 0..40)) {
        use pb::OutboxState as S;
        let p = pb::Purpose::Coordination as i32;
        let mut items: Vec<S> = Vec::new();
        let mut h: Option<Holder> = None;
        for (which, outcome) in events {
            let Some(state) = items.get_mut(which) else {
                items.push(S::Pending);
                h = next_holder(h, p, false, S::Pending);
                continue;
            };
            if *state != S::Pending {
                continue;
            }
            let to = [S::Pending, S::Delivered, S::Refused, S::Failed, S::Expired][usize::from(outcome)];
            *state = to;
            h = next_holder(h, p, true, to);
        }
        let pending = items.iter().filter(|s| **s == S::Pending).count();
        let delivered = items.contains(&S::Delivered);
        prop_assert_eq!(h.is_some(), delivered || pending > 0);
        if let Some(h) = h {
            prop_assert_eq!(h.pending as usize, pending);
            prop_assert_eq!(h.delivered, delivered);
        }
    }
}

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

fn pending_item(id: &str) -> pb::OutboxItem {
    pb::OutboxItem {
        delivery_id: id.into(),
        state: pb::OutboxState::Pending as i32,
        create_time: Some(timestamp(t0())),
        ..Default::default()
    }
}

/// The outbox's decision for each outcome, without IO.
#[test]
fn each_outcome_moves_an_item_where_it_should() {
    use pb::OutboxState as S;
    let now = t0() + time::Duration::minutes(1);
    let state = |o: Outcome| S::try_from(next(pending_item("d"), o, now).state).unwrap();
    assert_eq!(state(Outcome::Expired), S::Expired);
    assert_eq!(state(Outcome::Held("suspended".into())), S::Pending);
    assert_eq!(state(Outcome::Refused("revoked".into())), S::Refused);
    assert_eq!(state(Outcome::Delivered { note: String::new(), receipt: None }), S::Delivered);
    let env = pb::Envelope::default();
    assert_eq!(state(Outcome::RefusedByPeer { reason: "no".into(), receipt: env }), S::Refused);
    assert_eq!(state(Outcome::BadReceipt("bad".into())), S::Pending);
    let peer = |code| Failure::Peer { code, message: String::new() };
    assert_eq!(state(Outcome::Failed(peer(Code::Unavailable))), S::Pending);
    assert_eq!(state(Outcome::Failed(peer(Code::PermissionDenied))), S::Failed);
    assert_eq!(state(Outcome::Failed(Failure::Unanswered("timed out".into()))), S::Pending);
    assert_eq!(state(Outcome::Failed(Failure::Refused("withdrawn".into()))), S::Refused);
    // Our own policy's answers are not attempts at the peer.
    assert_eq!(next(pending_item("d"), Outcome::Refused("x".into()), now).attempts, 0);
    assert_eq!(next(pending_item("d"), Outcome::Held("x".into()), now).attempts, 1);
}

proptest! {
    /// Whatever the outcomes, an item still pending is due again within
    /// the back-off bound (never in the past, never later than a minute),
    /// and its attempt count never goes down.
    #[test]
    fn a_pending_item_is_always_due_again_soon(
        codes in proptest::collection::vec(0i32..17, 1..40),
        attempts in 0u32..u32::MAX,
    ) {
        let now = t0();
        let mut i = pending_item("d");
        i.attempts = attempts;
        for c in codes {
            let before = i.attempts;
            i = next(i, Outcome::Failed(Failure::Peer { code: Code::from_i32(c), message: String::new() }), now);
            prop_assert!(i.attempts >= before);
            if i.state != pb::OutboxState::Pending as i32 {
                break;
            }
            let due = i.next_attempt_time.as_ref().and_then(from_timestamp).unwrap();
            prop_assert!(due > now && due <= now + time::Duration::seconds(MAX_BACKOFF_SECS));
        }
    }
}

#[test]
fn a_waiting_item_holds_back_the_queue_behind_it() {
    let now = t0();
    let mut waiting = pending_item("a");
    waiting.next_attempt_time = Some(timestamp(now + time::Duration::seconds(5)));
    let due = pending_item("b");
    assert_eq!(next_due(&[waiting.clone(), due.clone()], now), None);
    assert_eq!(next_due(&[waiting, due.clone()], now + time::Duration::seconds(5)), Some(0));
    // Finished items are passed over.
    let mut done = pending_item("z");
    done.state = pb::OutboxState::Delivered as i32;
    assert_eq!(next_due(&[done, due], now), Some(1));
}

#[test]
fn a_waiting_notice_holds_back_nothing() {
    let now = t0();
    let mut notice = pending_item("a");
    notice.action = pb::OutboxAction::AgreementNotice as i32;
    notice.next_attempt_time = Some(timestamp(now + time::Duration::seconds(5)));
    assert_eq!(next_due(&[notice, pending_item("b")], now), Some(1));
}

#[test]
fn expiry_counts_from_creation() {
    let i = pending_item("a");
    assert!(!expired(&i, t0() + EXPIRY));
    assert!(expired(&i, t0() + EXPIRY + time::Duration::seconds(1)));
}
