//! Refused calls leave a trace without letting a hostile caller grow the
//! audit log without bound. [`Tally`] (pure) counts refusals per source (a
//! peer id or a remote address), kind and time window; the node flushes one
//! audit entry per source, kind and window, carrying the count.
//!
//! At most [`MAX_SOURCES`] tallies are open at once; refusals from further
//! sources in the same window are counted under the source `other`, so
//! neither memory nor the number of entries per window depends on how many
//! addresses an attacker uses.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::audit::Event;
use crate::node::Node;

/// Open tallies kept at once before new sources are counted as `other`.
pub const MAX_SOURCES: usize = 1024;
/// Characters of the first refusal's detail kept in the entry.
const MAX_DETAIL: usize = 200;

/// What was refused. Each kind is its own audit action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A message claimed another node's id than the caller's certificate.
    Impersonation,
    /// A signed statement whose signature (or envelope) does not verify.
    Signature,
    /// Invalid input, including signed records that fail validation.
    Invalid,
    /// The policy engine or a safeguard refused it.
    Policy,
    /// Refused for another reason (not a party, not the originator, ...).
    Refused,
    /// A request step or case update answered with a refusal receipt.
    Step,
    /// A consent request from a node that was never given the record.
    Consent,
    /// A call on a connection whose certificate is no longer pinned.
    Unpinned,
    /// A TLS handshake on the federation port that failed (e.g. unpinned certificate).
    Handshake,
    /// A local API call with an unknown or revoked bearer token.
    Token,
    /// A local API call without a bearer token.
    NoToken,
}

impl Kind {
    pub fn action(self) -> &'static str {
        match self {
            Kind::Impersonation => "federation.refused.impersonation",
            Kind::Signature => "federation.refused.signature",
            Kind::Invalid => "federation.refused.invalid",
            Kind::Policy => "federation.refused.policy",
            Kind::Refused => "federation.refused.other",
            Kind::Step => "federation.refused.step",
            Kind::Consent => "federation.refused.consent",
            Kind::Unpinned => "federation.refused.unpinned",
            Kind::Handshake => "federation.refused.handshake",
            Kind::Token => "api.refused.token",
            Kind::NoToken => "api.refused.no_token",
        }
    }

    /// Label for the `liaison_refusals_total` metric.
    pub fn label(self) -> &'static str {
        self.action().rsplit('.').next().unwrap_or("other")
    }
}

/// The actor of refusals by a pinned peer.
pub fn peer(id: &str) -> String {
    format!("peer:{id}")
}

/// The actor of refusals from a network address (the port is left out: it
/// changes with every connection).
pub fn addr(remote: Option<std::net::SocketAddr>) -> String {
    remote.map_or_else(|| "addr:unknown".to_string(), |a| format!("addr:{}", a.ip()))
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    window: i64,
    source: String,
    kind: Kind,
}

#[derive(Debug, Clone)]
struct Count {
    count: u64,
    first: String,
}

/// One flushed tally: becomes one audit entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub source: String,
    pub kind: Kind,
    /// Unix seconds the window starts at.
    pub window_start: i64,
    pub window_secs: i64,
    pub count: u64,
    /// The first refusal's detail in this window.
    pub detail: String,
}

impl Summary {
    pub fn event(&self) -> Event {
        let start = OffsetDateTime::from_unix_timestamp(self.window_start)
            .ok()
            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
            .unwrap_or_else(|| self.window_start.to_string());
        Event::new(&self.source, self.kind.action()).decision(
            "deny",
            format!("count={}; window={start} +{}s; first: {}", self.count, self.window_secs, self.detail),
        )
    }
}

/// Refusals counted per source, kind and window.
#[derive(Debug)]
pub struct Tally {
    window_secs: i64,
    max_sources: usize,
    open: BTreeMap<Key, Count>,
}

fn clean(detail: &str) -> String {
    // Details may quote what a hostile caller sent: bounded, no control characters.
    detail.chars().take(MAX_DETAIL).map(|c| if c.is_control() { '?' } else { c }).collect()
}

impl Tally {
    pub fn new(window_secs: u64) -> Self {
        Self::with_limit(window_secs, MAX_SOURCES)
    }

    pub fn with_limit(window_secs: u64, max_sources: usize) -> Self {
        let window_secs = i64::try_from(window_secs).unwrap_or(i64::MAX).max(1);
        Self { window_secs, max_sources, open: BTreeMap::new() }
    }

    fn window_of(&self, now: OffsetDateTime) -> i64 {
        let t = now.unix_timestamp();
        t - t.rem_euclid(self.window_secs)
    }

    /// Counts one refusal.
    pub fn note(&mut self, source: &str, kind: Kind, detail: &str, now: OffsetDateTime) {
        let window = self.window_of(now);
        let mut key = Key { window, source: source.to_string(), kind };
        if !self.open.contains_key(&key) && self.open.len() >= self.max_sources {
            key.source = "other".into();
        }
        let c = self.open.entry(key).or_insert_with(|| Count { count: 0, first: clean(detail) });
        c.count = c.count.saturating_add(1);
    }

    /// Takes the tallies whose window has ended by `now`, oldest first.
    pub fn due(&mut self, now: OffsetDateTime) -> Vec<Summary> {
        let current = self.window_of(now);
        let later = self.open.split_off(&Key { window: current, source: String::new(), kind: Kind::Impersonation });
        let ended = std::mem::replace(&mut self.open, later);
        self.summaries(ended)
    }

    /// Takes every tally, finished or not (at shutdown).
    pub fn drain(&mut self) -> Vec<Summary> {
        let all = std::mem::take(&mut self.open);
        self.summaries(all)
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    fn summaries(&self, m: BTreeMap<Key, Count>) -> Vec<Summary> {
        m.into_iter()
            .map(|(k, c)| Summary {
                source: k.source,
                kind: k.kind,
                window_start: k.window,
                window_secs: self.window_secs,
                count: c.count,
                detail: c.first,
            })
            .collect()
    }
}

/// Writes the given summaries as audit entries, in one write.
async fn write(node: &Node, summaries: Vec<Summary>) {
    if summaries.is_empty() {
        return;
    }
    let n = summaries.len();
    if let Err(e) = node.db.audit(summaries.iter().map(Summary::event).collect()).await {
        tracing::warn!(error = %e, entries = n, "refusal tallies could not be audited");
    }
}

/// Audits the tallies whose window has ended.
pub async fn flush_due(node: &Node) {
    let due = node.refusals_due();
    write(node, due).await;
}

/// Audits every tally, ended or not (at shutdown).
pub async fn flush_all(node: &Node) {
    let all = node.refusals_drain();
    write(node, all).await;
}

/// Flushes ended windows a few times per window.
pub fn spawn(node: Arc<Node>, window_secs: u64) -> tokio::task::JoinHandle<()> {
    let every = Duration::from_millis(window_secs.saturating_mul(250).max(250));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            flush_due(&node).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + secs).unwrap()
    }

    #[test]
    fn repeated_refusals_become_one_entry_per_source_kind_and_window() {
        let mut t = Tally::new(60);
        for i in 0..200 {
            t.note("peer:kh-antht", Kind::Signature, &format!("attempt {i}"), at(i % 50));
        }
        t.note("peer:kh-antht", Kind::Impersonation, "claimed th-atpd", at(10));
        t.note("addr:10.0.0.9", Kind::Token, "unknown token", at(20));
        assert!(t.due(at(59)).is_empty(), "nothing is due before the window ends");
        let out = t.due(at(60));
        assert_eq!(out.len(), 3, "{out:?}");
        let sig = out.iter().find(|s| s.kind == Kind::Signature).unwrap();
        assert_eq!((sig.count, sig.detail.as_str(), sig.window_secs), (200, "attempt 0", 60));
        let ev = sig.event();
        assert_eq!((ev.actor.as_str(), ev.action.as_str()), ("peer:kh-antht", "federation.refused.signature"));
        assert!(ev.reason.starts_with("count=200; window="), "{}", ev.reason);
        assert!(t.is_empty());
        assert!(t.due(at(600)).is_empty(), "flushed once");
    }

    #[test]
    fn windows_are_aligned_and_flushed_separately() {
        let mut t = Tally::new(60);
        let base = 1_800_000_000 - 1_800_000_000_i64.rem_euclid(60);
        let w = |s: i64| OffsetDateTime::from_unix_timestamp(base + s).unwrap();
        t.note("peer:a", Kind::Invalid, "x", w(59));
        t.note("peer:a", Kind::Invalid, "y", w(60));
        t.note("peer:a", Kind::Invalid, "z", w(61));
        let first = t.due(w(60));
        assert_eq!(first.len(), 1);
        assert_eq!((first[0].count, first[0].window_start), (1, base));
        let second = t.due(w(120));
        assert_eq!((second[0].count, second[0].window_start, second[0].detail.as_str()), (2, base + 60, "y"));
    }

    #[test]
    fn many_sources_cannot_grow_memory_or_entries_without_bound() {
        let mut t = Tally::with_limit(60, 4);
        for i in 0..1000 {
            t.note(&format!("addr:10.0.{}.{}", i / 256, i % 256), Kind::Token, "unknown token", at(1));
        }
        let out = t.drain();
        assert_eq!(out.len(), 5, "four sources and `other`");
        assert_eq!(out.iter().map(|s| s.count).sum::<u64>(), 1000);
        assert_eq!(out.iter().find(|s| s.source == "other").map(|s| s.count), Some(996));
    }

    #[test]
    fn details_are_bounded_and_printable() {
        let mut t = Tally::new(60);
        t.note("peer:a", Kind::Impersonation, &format!("claimed {}\n\u{1b}[2J", "x".repeat(10_000)), at(0));
        let s = t.drain().remove(0);
        assert_eq!(s.detail.chars().count(), MAX_DETAIL);
        assert!(!s.detail.chars().any(char::is_control));
    }

    #[test]
    fn the_count_saturates() {
        let mut t = Tally::new(60);
        t.note("peer:a", Kind::Invalid, "x", at(0));
        if let Some(c) = t.open.values_mut().next() {
            c.count = u64::MAX;
        }
        t.note("peer:a", Kind::Invalid, "x", at(1));
        assert_eq!(t.drain()[0].count, u64::MAX);
    }

    #[test]
    fn actions_and_labels() {
        assert_eq!(Kind::Impersonation.action(), "federation.refused.impersonation");
        assert_eq!(Kind::Token.label(), "token");
        assert_eq!(addr(Some("127.0.0.1:4000".parse().unwrap())), "addr:127.0.0.1");
        assert_eq!(addr(None), "addr:unknown");
    }
}
