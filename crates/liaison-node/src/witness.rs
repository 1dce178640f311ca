//! Witnessed audit checkpoints, the pure rules.
//!
//! The hash chain and the node's signed checkpoints make an edited audit log
//! evident, but an older copy of the store (a restored backup) is a valid,
//! shorter chain with valid checkpoints. So peers witness the node's
//! checkpoints, as transparency-log witnesses do: each keeps the newest
//! checkpoint of each node it saw and countersigns it, and a chain that no
//! longer holds what a witness countersigned has been rolled back.
//!
//! Here: what a witness does with an offered checkpoint given the one it
//! holds ([`judge`]), the statement it countersigns ([`statement`]),
//! opening a witnessed checkpoint ([`open`]) and comparing a chain with it
//! ([`compare`]). [`net`] is the IO side (the federation handlers, the
//! background sender and the peers' answers for `audit verify`).

pub mod net;

use ed25519_dalek::VerifyingKey;

use crate::envelope::{self, payload, EnvelopeError};
use crate::pb;
use crate::store::StoreError;

/// Length of an audit entry hash (BLAKE3).
pub const HASH_LEN: usize = 32;

/// One head of a node's chain: an entry and its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Point {
    pub seq: u64,
    pub hash: Vec<u8>,
}

/// What a witness does with an offered checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Newer than (or the same as) the one held: keep it and countersign.
    Accept,
    /// Older than the one held: refused (a rolled-back node, or a replay).
    Stale { held: u64 },
    /// The held entry with another hash: two chains under one key, refused.
    Equivocation { seq: u64 },
}

/// A witness holding `held` is offered `offered` (already verified as the
/// caller's own signed checkpoint). The held seq never goes down, and an
/// entry once countersigned never changes its hash.
pub fn judge(held: Option<&Point>, offered: &Point) -> Verdict {
    match held {
        Some(h) if offered.seq < h.seq => Verdict::Stale { held: h.seq },
        Some(h) if offered.seq == h.seq && offered.hash != h.hash => Verdict::Equivocation { seq: h.seq },
        _ => Verdict::Accept,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    #[error("signature: {0}")]
    Envelope(#[from] EnvelopeError),
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("the checkpoint names {claimed}, but the caller is {caller}")]
    Impersonation { caller: String, claimed: String },
    #[error("checkpoint at entry {offered} is older than the one witnessed (entry {held})")]
    Stale { held: u64, offered: u64 },
    #[error("equivocation: entry {seq} was witnessed with another hash")]
    Equivocation { seq: u64 },
    #[error("{0} is not a pinned peer")]
    UnknownPeer(String),
    #[error("peer {peer}: {reason}")]
    Unreachable { peer: String, reason: String },
    #[error("witness statement does not match the checkpoint: {0}")]
    Mismatch(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(field: &'static str, reason: impl Into<String>) -> WitnessError {
    WitnessError::Invalid { field, reason: reason.into() }
}

/// The point a checkpoint from `caller` names, if it is well formed and
/// really the caller's own.
pub fn point_of(cp: &pb::AuditCheckpoint, caller: &str) -> Result<Point, WitnessError> {
    if cp.node_id != caller {
        return Err(WitnessError::Impersonation { caller: caller.into(), claimed: cp.node_id.clone() });
    }
    if cp.seq == 0 {
        return Err(invalid("checkpoint.seq", "at least 1"));
    }
    if cp.hash.len() != HASH_LEN {
        return Err(invalid("checkpoint.hash", format!("{HASH_LEN} bytes")));
    }
    Ok(Point { seq: cp.seq, hash: cp.hash.clone() })
}

/// What a witness countersigns: node, entry, hash and its own time.
pub fn statement(witness_id: &str, node_id: &str, p: &Point, now: time::OffsetDateTime) -> pb::WitnessStatement {
    pb::WitnessStatement {
        witness_id: witness_id.into(),
        node_id: node_id.into(),
        seq: p.seq,
        hash: p.hash.clone(),
        witness_time: Some(crate::convert::timestamp(now)),
    }
}

/// A witnessed checkpoint whose two signatures verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witnessed {
    pub point: Point,
    pub witness_time: Option<pbjson_types::Timestamp>,
}

/// Verifies `node_id`'s checkpoint and `witness_id`'s statement over the
/// exact bytes received (each before decoding it), and that the statement
/// is about that checkpoint.
pub fn open(
    wc: &pb::WitnessedCheckpoint,
    node_id: &str,
    node_key: &VerifyingKey,
    witness_id: &str,
    witness_key: &VerifyingKey,
) -> Result<Witnessed, WitnessError> {
    let cp_env = wc.checkpoint.as_ref().ok_or_else(|| invalid("witnessed.checkpoint", "required"))?;
    let st_env = wc.statement.as_ref().ok_or_else(|| invalid("witnessed.statement", "required"))?;
    let cp: pb::AuditCheckpoint = envelope::open(cp_env, payload::AUDIT_CHECKPOINT, node_id, node_key)?;
    let st: pb::WitnessStatement = envelope::open(st_env, payload::WITNESS_STATEMENT, witness_id, witness_key)?;
    let point = point_of(&cp, node_id)?;
    if st.node_id != node_id || st.witness_id != witness_id {
        return Err(WitnessError::Mismatch(format!(
            "names node {} and witness {}, expected {node_id} and {witness_id}",
            st.node_id, st.witness_id
        )));
    }
    if st.seq != point.seq || st.hash != point.hash {
        return Err(WitnessError::Mismatch(format!("entry {} countersigned, checkpoint at {}", st.seq, point.seq)));
    }
    Ok(Witnessed { point, witness_time: st.witness_time })
}

/// How a chain fails a witnessed point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollback {
    /// The chain ends before the witnessed entry.
    Shorter { chain_ends: u64 },
    /// The chain holds another entry under the witnessed seq.
    Differs,
}

/// Compares a verified chain of `chain_len` entries (seq 1..=chain_len),
/// whose entry at `p.seq` is `entry` (if it has one), with a witnessed point.
pub fn compare(p: &Point, chain_len: u64, entry: Option<&pb::AuditEntry>) -> Result<(), Rollback> {
    if p.seq > chain_len {
        return Err(Rollback::Shorter { chain_ends: chain_len });
    }
    match entry {
        Some(e) if e.seq == p.seq && e.hash == p.hash => Ok(()),
        Some(_) => Err(Rollback::Differs),
        None => Err(Rollback::Shorter { chain_ends: chain_len }),
    }
}

/// The problem `audit verify` reports for a rollback.
pub fn describe(witness: &str, p: &Point, r: &Rollback) -> String {
    match r {
        Rollback::Shorter { chain_ends } => format!(
            "rollback: witness {witness} countersigned entry {} of this node's chain, but the chain ends at entry {chain_ends} (an older copy of the store was restored?)",
            p.seq
        ),
        Rollback::Differs => format!(
            "rollback: witness {witness} countersigned entry {} of this node's chain, but the chain holds another entry there (an older copy of the store was restored and written to since?)",
            p.seq
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Chain, Event};
    use ed25519_dalek::SigningKey;
    use proptest::prelude::*;

    fn chain(n: usize, tag: &str) -> Vec<pb::AuditEntry> {
        let mut c = Chain::default();
        let t0 = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        (0..n).map(|i| c.append(Event::new("node", format!("{tag}{i}")), t0)).collect()
    }

    fn pt(seq: u64, h: u8) -> Point {
        Point { seq, hash: vec![h; HASH_LEN] }
    }

    #[test]
    fn a_witness_takes_newer_refuses_older_and_equivocation() {
        assert_eq!(judge(None, &pt(5, 1)), Verdict::Accept);
        assert_eq!(judge(Some(&pt(5, 1)), &pt(6, 2)), Verdict::Accept);
        assert_eq!(judge(Some(&pt(5, 1)), &pt(5, 1)), Verdict::Accept, "a re-sent checkpoint is countersigned again");
        assert_eq!(judge(Some(&pt(5, 1)), &pt(4, 1)), Verdict::Stale { held: 5 });
        assert_eq!(judge(Some(&pt(5, 1)), &pt(5, 2)), Verdict::Equivocation { seq: 5 });
    }

    #[test]
    fn checkpoints_must_be_the_callers_and_well_formed() {
        let cp = pb::AuditCheckpoint { node_id: "th-atpd".into(), seq: 3, hash: vec![0; 32], time: None };
        assert_eq!(point_of(&cp, "th-atpd").unwrap(), pt(3, 0));
        assert!(matches!(point_of(&cp, "kh-antht"), Err(WitnessError::Impersonation { .. })));
        let zero = pb::AuditCheckpoint { seq: 0, ..cp.clone() };
        assert!(matches!(point_of(&zero, "th-atpd"), Err(WitnessError::Invalid { field: "checkpoint.seq", .. })));
        let short = pb::AuditCheckpoint { hash: vec![1; 5], ..cp };
        assert!(matches!(point_of(&short, "th-atpd"), Err(WitnessError::Invalid { field: "checkpoint.hash", .. })));
    }

    #[test]
    fn a_witnessed_checkpoint_opens_only_with_both_signatures_over_the_same_point() {
        let node = SigningKey::from_bytes(&[1; 32]);
        let wit = SigningKey::from_bytes(&[2; 32]);
        let other = SigningKey::from_bytes(&[3; 32]);
        let entries = chain(4, "a");
        let cp = crate::audit::checkpoint(&entries[2], "th-atpd", &node);
        let p = Point { seq: 3, hash: entries[2].hash.clone() };
        let now = time::OffsetDateTime::UNIX_EPOCH;
        let st = |w: &str, n: &str, p: &Point, k: &SigningKey| {
            envelope::seal(payload::WITNESS_STATEMENT, &statement(w, n, p, now), w, k)
        };
        let wc = pb::WitnessedCheckpoint {
            checkpoint: Some(cp.clone()),
            statement: Some(st("kh-antht", "th-atpd", &p, &wit)),
        };
        let open_ =
            |wc: &pb::WitnessedCheckpoint| open(wc, "th-atpd", &node.verifying_key(), "kh-antht", &wit.verifying_key());
        assert_eq!(open_(&wc).unwrap().point, p);
        // The statement signed by another key, about another entry, node or witness.
        for bad in [
            st("kh-antht", "th-atpd", &p, &other),
            st("kh-antht", "th-atpd", &pt(3, 9), &wit),
            st("kh-antht", "la-x", &p, &wit),
        ] {
            let wc = pb::WitnessedCheckpoint { statement: Some(bad), ..wc.clone() };
            assert!(open_(&wc).is_err());
        }
        // The checkpoint signed by someone else than the node.
        let forged = crate::audit::checkpoint(&entries[2], "th-atpd", &other);
        assert!(matches!(
            open_(&pb::WitnessedCheckpoint { checkpoint: Some(forged), ..wc.clone() }),
            Err(WitnessError::Envelope(_))
        ));
        let mut flipped = wc.clone();
        if let Some(c) = flipped.checkpoint.as_mut() {
            c.body[0] ^= 1;
        }
        assert!(open_(&flipped).is_err());
        assert!(open_(&pb::WitnessedCheckpoint { statement: None, ..wc }).is_err());
    }

    #[test]
    fn a_chain_shorter_or_different_than_witnessed_is_a_rollback() {
        let long = chain(10, "a");
        let p = Point { seq: 8, hash: long[7].hash.clone() };
        assert_eq!(compare(&p, 10, Some(&long[7])), Ok(()));
        assert_eq!(compare(&p, 5, None), Err(Rollback::Shorter { chain_ends: 5 }));
        let fork = chain(10, "b");
        assert_eq!(compare(&p, 10, Some(&fork[7])), Err(Rollback::Differs));
        let text = describe("kh-antht", &p, &Rollback::Shorter { chain_ends: 5 });
        assert!(text.contains("rollback") && text.contains("kh-antht") && text.contains("entry 8"), "{text}");
    }

    proptest! {
        /// Whatever a witness is offered, in any order: the seq it holds
        /// never goes down, a seq once held keeps its hash, and it ends up
        /// holding the highest seq offered (of the first hash offered at it).
        #[test]
        fn the_held_point_only_moves_forward(offers in prop::collection::vec((1u64..20, 0u8..3), 1..40)) {
            let mut held: Option<Point> = None;
            let mut first_hash: std::collections::HashMap<u64, u8> = std::collections::HashMap::new();
            for (seq, h) in offers.iter().copied() {
                let offered = pt(seq, h);
                let before = held.clone();
                match judge(held.as_ref(), &offered) {
                    Verdict::Accept => held = Some(offered),
                    Verdict::Stale { held: s } => prop_assert!(seq < s),
                    Verdict::Equivocation { seq: s } => prop_assert_eq!(s, seq),
                }
                if let (Some(b), Some(a)) = (&before, &held) {
                    prop_assert!(a.seq >= b.seq);
                    if a.seq == b.seq { prop_assert_eq!(&a.hash, &b.hash); }
                }
                if held.as_ref().is_some_and(|p| p.seq == seq) {
                    first_hash.entry(seq).or_insert(h);
                }
            }
            let max = offers.iter().map(|(s, _)| *s).max().unwrap_or(0);
            let held = held.unwrap();
            prop_assert_eq!(held.seq, max);
            prop_assert_eq!(held.hash, vec![first_hash[&max]; HASH_LEN]);
        }

        /// A chain cut back to any length below the witnessed entry, or
        /// rewritten from any entry at or below it, fails the comparison;
        /// the same chain grown further passes.
        #[test]
        fn truncation_or_fork_before_the_witnessed_entry_is_caught(n in 2usize..30, w in any::<prop::sample::Index>(), cut in any::<prop::sample::Index>(), extra in 0usize..5) {
            let full = chain(n + extra, "a");
            let seq = w.index(n) as u64 + 1;
            let p = Point { seq, hash: full[(seq - 1) as usize].hash.clone() };
            // Grown further: consistent.
            prop_assert_eq!(compare(&p, (n + extra) as u64, full.get((seq - 1) as usize)), Ok(()));
            // Cut back to fewer entries than witnessed.
            let len = cut.index(seq as usize) as u64;
            prop_assert_eq!(compare(&p, len, None), Err(Rollback::Shorter { chain_ends: len }));
            // Rewritten from entry k <= seq on (restored and written to since).
            let k = cut.index(seq as usize);
            let mut forked = full[..k].to_vec();
            let mut c = forked.last().map(Chain::after).unwrap_or_default();
            for i in k..n + extra {
                forked.push(c.append(Event::new("node", format!("b{i}")), time::OffsetDateTime::UNIX_EPOCH));
            }
            prop_assert!(crate::audit::verify(&forked).is_ok());
            prop_assert_eq!(compare(&p, forked.len() as u64, forked.get((seq - 1) as usize)), Err(Rollback::Differs));
        }
    }
}
