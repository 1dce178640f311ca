//! The order a hub forwards relayed messages in. A sender's outbox hands
//! the hub one message at a time for each recipient and counts it taken
//! once the hub accepts it, so the hub must keep that order: a case step or
//! a record's new version forwarded before the one it follows would be
//! refused for good, or overtake a withdrawal, and the parties' copies
//! would diverge. Messages are queued under keys that sort by acceptance;
//! a message waiting for its retry holds back the same sender's later
//! messages to the same recipient, and nobody else's.

use std::collections::BTreeSet;

use time::OffsetDateTime;

/// The sequence number of a message accepted at `now`, after the last one
/// still queued (`last`): the time in nanoseconds, or one more than the
/// last when the clock has not moved on (or went back).
pub fn next_seq(last: Option<u64>, now: OffsetDateTime) -> u64 {
    let nanos = u64::try_from(now.unix_timestamp_nanos()).unwrap_or(0);
    last.map_or(nanos, |l| l.saturating_add(1).max(nanos))
}

const PREFIX: &str = "relay-";

/// The queue key (and relay id) of message `seq`; `nonce` keeps ids
/// unguessable. Zero-padded so the byte order is the numeric order.
pub fn key(seq: u64, nonce: &str) -> String {
    format!("{PREFIX}{seq:020}-{nonce}")
}

/// The sequence number in a key made by [`key`]; `None` for anything else
/// (a message queued before keys were ordered).
pub fn seq_of(key: &[u8]) -> Option<u64> {
    let rest = key.strip_prefix(PREFIX.as_bytes())?;
    let digits = rest.get(..20)?;
    if rest.get(20) != Some(&b'-') || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// One queued message, as far as ordering goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting<'a> {
    pub sender: &'a str,
    pub recipient: &'a str,
    /// When it may be tried again; `None` means now.
    pub next_attempt: Option<OffsetDateTime>,
}

/// Which messages of `queue` (in queue order) to forward at `now`, in that
/// order: each due message none of whose sender's earlier messages to the
/// same recipient is still waiting.
pub fn due(queue: &[Waiting<'_>], now: OffsetDateTime) -> Vec<usize> {
    let mut held: BTreeSet<(&str, &str)> = BTreeSet::new();
    let mut out = Vec::new();
    for (n, w) in queue.iter().enumerate() {
        let pair = (w.sender, w.recipient);
        if held.contains(&pair) {
            continue;
        }
        if w.next_attempt.is_some_and(|t| t > now) {
            held.insert(pair);
        } else {
            out.push(n);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::Duration;

    fn at(s: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::days(20_000) + Duration::seconds(s)
    }

    #[test]
    fn a_waiting_message_holds_back_only_its_senders_later_ones_to_that_recipient() {
        let w = |sender, recipient, wait: Option<i64>| Waiting { sender, recipient, next_attempt: wait.map(at) };
        let queue = [
            w("kh", "vn", Some(10)), // waiting for its retry
            w("kh", "vn", None),     // behind it: held
            w("th", "vn", None),     // another sender: goes
            w("kh", "la", None),     // another recipient: goes
            w("kh", "vn", Some(0)),  // due, but still behind the first
            w("th", "vn", Some(0)),
        ];
        assert_eq!(due(&queue, at(5)), vec![2, 3, 5]);
        assert_eq!(due(&queue, at(10)), vec![0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn keys_parse_back_and_reject_anything_else() {
        assert_eq!(seq_of(key(42, "ab12").as_bytes()), Some(42));
        assert_eq!(seq_of(key(u64::MAX, "x").as_bytes()), Some(u64::MAX));
        for other in ["relay-0a1b2c3d4e5f60718293a4b5", "relay-", "relay-1-x", "other-00000000000000000042-x", ""] {
            assert_eq!(seq_of(other.as_bytes()), None, "{other}");
        }
    }

    proptest! {
        /// Keys sort as their acceptance order, whatever the clock does.
        #[test]
        fn keys_sort_in_acceptance_order(clock in proptest::collection::vec(-1_000_000i64..1_000_000, 1..50)) {
            let mut last = None;
            let mut keys = Vec::new();
            for s in clock {
                let seq = next_seq(last, at(s));
                prop_assert!(last.is_none_or(|l| seq > l));
                last = Some(seq);
                keys.push(key(seq, "n"));
            }
            let mut sorted = keys.clone();
            sorted.sort();
            prop_assert_eq!(sorted, keys);
        }
    }
}
