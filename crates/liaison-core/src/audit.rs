//! The audit log as a pure hash chain: each entry's hash covers its fields
//! and the previous entry's hash, so changing, removing, inserting or
//! reordering any entry breaks every hash after it. Periodic checkpoints
//! signed by the node key pin the chain head, so a rewrite of the whole
//! tail is detected too.

use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::convert::{from_timestamp, timestamp};
use crate::envelope::{self, payload};
use crate::pb;

/// A checkpoint is signed after every this many entries.
pub const CHECKPOINT_EVERY: u64 = 64;

/// What a caller records; the chain adds seq, time and hashes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    pub actor: String,
    pub action: String,
    pub record_id: String,
    pub agreement_id: String,
    pub purpose: String,
    pub decision: String,
    pub reason: String,
}

impl Event {
    pub fn new(actor: impl Into<String>, action: impl Into<String>) -> Self {
        Self { actor: actor.into(), action: action.into(), ..Default::default() }
    }
    pub fn record(mut self, id: impl Into<String>) -> Self {
        self.record_id = id.into();
        self
    }
    pub fn agreement(mut self, id: impl Into<String>) -> Self {
        self.agreement_id = id.into();
        self
    }
    pub fn purpose(mut self, p: impl Into<String>) -> Self {
        self.purpose = p.into();
        self
    }
    pub fn decision(mut self, d: impl Into<String>, reason: impl Into<String>) -> Self {
        self.decision = d.into();
        self.reason = reason.into();
        self
    }
    pub fn reason(mut self, r: impl Into<String>) -> Self {
        self.reason = r.into();
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit entry {seq}: {reason}")]
pub struct AuditError {
    pub seq: u64,
    pub reason: String,
}

/// The bytes an entry's hash covers: a fixed tag, then every field
/// length-prefixed, so no two different entries encode alike.
pub fn canonical(e: &pb::AuditEntry) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"LIAISON-AUDIT-v1");
    out.extend_from_slice(&e.seq.to_be_bytes());
    let t = e.time.unwrap_or_default();
    out.extend_from_slice(&t.seconds.to_be_bytes());
    out.extend_from_slice(&t.nanos.to_be_bytes());
    for f in [&e.actor, &e.action, &e.record_id, &e.agreement_id, &e.purpose, &e.decision, &e.reason] {
        out.extend_from_slice(&(f.len() as u64).to_be_bytes());
        out.extend_from_slice(f.as_bytes());
    }
    out.extend_from_slice(&(e.prev_hash.len() as u64).to_be_bytes());
    out.extend_from_slice(&e.prev_hash);
    out
}

pub fn hash(e: &pb::AuditEntry) -> Vec<u8> {
    blake3::hash(&canonical(e)).as_bytes().to_vec()
}

/// The head of the chain: what the next entry builds on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub next_seq: u64,
    pub last_hash: Vec<u8>,
}

impl Default for Chain {
    fn default() -> Self {
        Self { next_seq: 1, last_hash: vec![0; 32] }
    }
}

impl Chain {
    /// Continues after a stored entry.
    pub fn after(last: &pb::AuditEntry) -> Self {
        Self { next_seq: last.seq.saturating_add(1), last_hash: last.hash.clone() }
    }

    pub fn append(&mut self, ev: Event, now: time::OffsetDateTime) -> pb::AuditEntry {
        let mut e = pb::AuditEntry {
            seq: self.next_seq,
            time: Some(timestamp(now)),
            actor: ev.actor,
            action: ev.action,
            record_id: ev.record_id,
            agreement_id: ev.agreement_id,
            purpose: ev.purpose,
            decision: ev.decision,
            reason: ev.reason,
            prev_hash: self.last_hash.clone(),
            hash: Vec::new(),
        };
        e.hash = hash(&e);
        self.next_seq = self.next_seq.saturating_add(1);
        self.last_hash = e.hash.clone();
        e
    }
}

/// Checks entries in stored order. Reports the first entry whose sequence,
/// link or hash is wrong.
pub fn verify<'a>(entries: impl IntoIterator<Item = &'a pb::AuditEntry>) -> Result<u64, AuditError> {
    let mut v = Verifier::default();
    for e in entries {
        v.push(e)?;
    }
    Ok(v.entries())
}

/// [`verify`] one entry at a time, so a long chain is checked in pages
/// without holding it in memory.
#[derive(Debug, Default)]
pub struct Verifier {
    chain: Chain,
    n: u64,
}

impl Verifier {
    /// Entries checked so far.
    pub fn entries(&self) -> u64 {
        self.n
    }

    /// Checks the next entry in stored order.
    pub fn push(&mut self, e: &pb::AuditEntry) -> Result<(), AuditError> {
        let chain = &mut self.chain;
        if e.seq != chain.next_seq {
            // A gap (removed entry), a repeat or a reordering: the entry we
            // expected is the first bad one.
            return Err(AuditError {
                seq: chain.next_seq,
                reason: format!("expected entry {}, found {}", chain.next_seq, e.seq),
            });
        }
        if e.prev_hash != chain.last_hash {
            return Err(AuditError { seq: e.seq, reason: "does not link to the previous entry".into() });
        }
        if hash(e) != e.hash {
            return Err(AuditError {
                seq: e.seq,
                reason: "content does not match its hash (entry was changed)".into(),
            });
        }
        *chain = Chain::after(e);
        self.n = self.n.saturating_add(1);
        Ok(())
    }
}

/// A checkpoint over `entry`, signed by the node.
pub fn checkpoint(entry: &pb::AuditEntry, node_id: &str, key: &SigningKey) -> pb::Envelope {
    let cp =
        pb::AuditCheckpoint { node_id: node_id.into(), seq: entry.seq, hash: entry.hash.clone(), time: entry.time };
    envelope::seal(payload::AUDIT_CHECKPOINT, &cp, node_id, key)
}

/// Verifies a checkpoint's signature, then that it matches the chain entry it names.
pub fn verify_checkpoint(
    env: &pb::Envelope,
    node_id: &str,
    key: &VerifyingKey,
    entry_at: impl Fn(u64) -> Option<pb::AuditEntry>,
) -> Result<u64, AuditError> {
    let cp: pb::AuditCheckpoint = envelope::open(env, payload::AUDIT_CHECKPOINT, node_id, key)
        .map_err(|e| AuditError { seq: 0, reason: format!("checkpoint signature: {e}") })?;
    match entry_at(cp.seq) {
        Some(e) if e.hash == cp.hash => Ok(cp.seq),
        Some(_) => Err(AuditError { seq: cp.seq, reason: "entry differs from the signed checkpoint".into() }),
        None => Err(AuditError { seq: cp.seq, reason: "entry named by a signed checkpoint is missing".into() }),
    }
}

/// Time of an entry, for display.
pub fn entry_time(e: &pb::AuditEntry) -> Option<time::OffsetDateTime> {
    e.time.as_ref().and_then(from_timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chain(n: usize) -> Vec<pb::AuditEntry> {
        let mut c = Chain::default();
        let t0 = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        (0..n)
            .map(|i| {
                c.append(
                    Event::new(format!("user:u{i}"), "record.create").record(format!("r{i}")).decision("allow", ""),
                    t0 + time::Duration::seconds(i as i64),
                )
            })
            .collect()
    }

    #[test]
    fn an_untouched_chain_verifies() {
        assert_eq!(verify(&chain(10)), Ok(10));
        assert_eq!(verify(&[]), Ok(0));
    }

    #[test]
    fn checkpoints_detect_rewrites_and_forgeries() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let entries = chain(5);
        let cp = checkpoint(&entries[3], "th-atpd", &key);
        let at = |s: u64| entries.iter().find(|e| e.seq == s).cloned();
        assert_eq!(verify_checkpoint(&cp, "th-atpd", &key.verifying_key(), at), Ok(4));
        // The whole chain rewritten from entry 2 on still links, but not to the checkpoint.
        let mut rewritten = entries[..1].to_vec();
        let mut c = Chain::after(&rewritten[0]);
        for i in 1..5 {
            rewritten.push(
                c.append(Event::new("user:x", "forged").record(format!("f{i}")), time::OffsetDateTime::UNIX_EPOCH),
            );
        }
        assert!(verify(&rewritten).is_ok());
        let at = |s: u64| rewritten.iter().find(|e| e.seq == s).cloned();
        assert_eq!(verify_checkpoint(&cp, "th-atpd", &key.verifying_key(), at).unwrap_err().seq, 4);
        let mut bad = cp.clone();
        bad.body[0] ^= 1;
        assert!(verify_checkpoint(&bad, "th-atpd", &key.verifying_key(), |_| None).is_err());
    }

    proptest! {
        #[test]
        fn any_changed_field_is_reported_at_its_entry(n in 2usize..20, pos in any::<prop::sample::Index>(), field in 0usize..9, text in "[a-z]{1,8}") {
            let mut entries = chain(n);
            let i = pos.index(n);
            let e = &mut entries[i];
            match field {
                0 => e.actor.push_str(&text),
                1 => e.action.push_str(&text),
                2 => e.record_id.push_str(&text),
                3 => e.agreement_id.push_str(&text),
                4 => e.purpose.push_str(&text),
                5 => e.decision.push_str(&text),
                6 => e.reason.push_str(&text),
                7 => e.time = Some(pbjson_types::Timestamp { seconds: 1, nanos: 0 }),
                _ => e.hash[0] ^= 1,
            }
            let err = verify(&entries).unwrap_err();
            prop_assert_eq!(err.seq, i as u64 + 1);
        }

        #[test]
        fn removal_reorder_and_insertion_are_reported(n in 3usize..20, pos in any::<prop::sample::Index>(), op in 0usize..3) {
            let mut entries = chain(n);
            let i = pos.index(n - 1);
            let expect_seq = (i + 1) as u64;
            match op {
                0 => { entries.remove(i); }
                1 => entries.swap(i, i + 1),
                _ => { let copy = entries[i].clone(); entries.insert(i, copy); }
            }
            let err = verify(&entries).unwrap_err();
            let expected = if op == 2 { expect_seq + 1 } else { expect_seq };
            prop_assert_eq!(err.seq, expected, "op {} at {}: {}", op, i, err.reason);
        }
    }
}
