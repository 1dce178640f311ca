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
use std::sync::Mutex;
use std::time::Duration;

use time::OffsetDateTime;

use crate::audit::Event;
use crate::store::Db;

/// Open tallies kept at once before new sources are counted as `other`.
pub const MAX_SOURCES: usize = 1024;
/// Characters of the first refusal's detail kept in the entry.
const MAX_DETAIL: usize = 200;

/// What was refused. Each kind is its own audit action.
///
/// Refusals answered with a signed refusal receipt (pushes, request steps,
/// case updates) and policy denials are audited one by one where they are
/// decided; these are the refusals answered with an error status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A message claimed another node's id than the caller's certificate.
    Impersonation,
    /// A signed statement whose signature (or envelope) does not verify.
    Signature,
    /// Invalid input, including signed records that fail validation.
    Invalid,
    /// Refused for another reason (not a party, not the originator, ...).
    Refused,
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
    /// A console sign-in with a wrong name or password, or a spent link.
    SignIn,
}

impl Kind {
    pub const ALL: [Kind; 10] = [
        Kind::Impersonation,
        Kind::Signature,
        Kind::Invalid,
        Kind::Refused,
        Kind::Consent,
        Kind::Unpinned,
        Kind::Handshake,
        Kind::Token,
        Kind::NoToken,
        Kind::SignIn,
    ];

    pub fn action(self) -> &'static str {
        match self {
            Kind::Impersonation => "federation.refused.impersonation",
            Kind::Signature => "federation.refused.signature",
            Kind::Invalid => "federation.refused.invalid",
            Kind::Refused => "federation.refused.other",
            Kind::Consent => "federation.refused.consent",
            Kind::Unpinned => "federation.refused.unpinned",
            Kind::Handshake => "federation.refused.handshake",
            Kind::Token => "api.refused.token",
            Kind::NoToken => "api.refused.no_token",
            Kind::SignIn => "console.refused.sign_in",
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

/// Refusals counted per source, kind and window (pure: time is an argument).
#[derive(Debug)]
pub struct Tally {
    window_secs: i64,
    max_sources: usize,
    /// Window start → (source, kind) → count.
    open: BTreeMap<i64, BTreeMap<(String, Kind), Count>>,
    /// Tallies open across every window.
    len: usize,
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
        Self { window_secs, max_sources, open: BTreeMap::new(), len: 0 }
    }

    fn window_of(&self, now: OffsetDateTime) -> i64 {
        let t = now.unix_timestamp();
        t - t.rem_euclid(self.window_secs)
    }

    /// Counts one refusal. Once `max_sources` tallies are open, refusals
    /// from sources without one are counted under `other`.
    pub fn note(&mut self, source: &str, kind: Kind, detail: &str, now: OffsetDateTime) {
        let full = self.len >= self.max_sources;
        let window = self.open.entry(self.window_of(now)).or_default();
        let mut key = (source.to_string(), kind);
        if full && !window.contains_key(&key) {
            key.0 = "other".into();
        }
        let c = window.entry(key).or_insert_with(|| {
            self.len = self.len.saturating_add(1);
            Count { count: 0, first: clean(detail) }
        });
        c.count = c.count.saturating_add(1);
    }

    /// Takes the tallies whose window has ended by `now`, oldest first.
    pub fn due(&mut self, now: OffsetDateTime) -> Vec<Summary> {
        let later = self.open.split_off(&self.window_of(now));
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

    fn summaries(&mut self, m: BTreeMap<i64, BTreeMap<(String, Kind), Count>>) -> Vec<Summary> {
        let window_secs = self.window_secs;
        let out: Vec<Summary> = m
            .into_iter()
            .flat_map(|(window_start, tallies)| {
                tallies.into_iter().map(move |((source, kind), c)| Summary {
                    source,
                    kind,
                    window_start,
                    window_secs,
                    count: c.count,
                    detail: c.first,
                })
            })
            .collect();
        self.len = self.len.saturating_sub(out.len());
        out
    }
}

/// The node's tally, shared by every listener.
#[derive(Debug)]
pub struct Refusals {
    tally: Mutex<Tally>,
}

impl Refusals {
    pub fn new(window_secs: u64) -> Self {
        Self { tally: Mutex::new(Tally::new(window_secs)) }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Tally) -> T) -> T {
        // A panic while counting cannot leave a tally half-updated in a way
        // that matters: keep counting.
        let mut t = self.tally.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut t)
    }

    pub fn note(&self, source: &str, kind: Kind, detail: &str, now: OffsetDateTime) {
        // Callers log the refusal as they always did; this is the count.
        tracing::debug!(%source, kind = kind.label(), detail, "refusal counted");
        metrics::counter!("liaison_refusals_total", "kind" => kind.label()).increment(1);
        self.with(|t| t.note(source, kind, detail, now));
    }

    pub fn due(&self, now: OffsetDateTime) -> Vec<Summary> {
        self.with(|t| t.due(now))
    }

    pub fn drain(&self) -> Vec<Summary> {
        self.with(Tally::drain)
    }
}

/// Writes the given summaries as audit entries, in one write.
async fn write(db: &Db, summaries: Vec<Summary>) {
    if summaries.is_empty() {
        return;
    }
    let n = summaries.len();
    if let Err(e) = db.audit(summaries.iter().map(Summary::event).collect()).await {
        tracing::warn!(error = %e, entries = n, "refusal tallies could not be audited");
    }
}

/// Audits the tallies whose window has ended by `now`.
pub async fn flush_due(db: &Db, refusals: &Refusals, now: OffsetDateTime) {
    write(db, refusals.due(now)).await;
}

/// Audits every tally, ended or not (at shutdown).
pub async fn flush_all(db: &Db, refusals: &Refusals) {
    write(db, refusals.drain()).await;
}

/// How often ended windows are flushed: a few times per window.
pub fn flush_every(window_secs: u64) -> Duration {
    Duration::from_millis(window_secs.saturating_mul(250).max(250))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
        if let Some(c) = t.open.values_mut().flat_map(|w| w.values_mut()).next() {
            c.count = u64::MAX;
        }
        t.note("peer:a", Kind::Invalid, "x", at(1));
        assert_eq!(t.drain()[0].count, u64::MAX);
    }

    #[test]
    fn every_kind_has_its_own_action() {
        let mut actions: Vec<&str> = Kind::ALL.iter().map(|k| k.action()).collect();
        actions.sort_unstable();
        actions.dedup();
        assert_eq!(actions.len(), Kind::ALL.len());
        assert!(actions.iter().all(|a| a.contains(".refused.")));
    }

    fn kind() -> impl Strategy<Value = Kind> {
        prop::sample::select(Kind::ALL.to_vec())
    }

    proptest! {
        /// Every refusal is counted exactly once, in the window it happened
        /// in, and nothing is flushed before its window ends.
        #[test]
        fn every_refusal_is_counted_once(
            window in 1u64..120,
            notes in prop::collection::vec((0usize..8, kind(), 0i64..600), 0..300),
            flushes in prop::collection::vec(0i64..700, 0..6),
        ) {
            let mut t = Tally::new(window);
            let mut flushes = flushes;
            flushes.sort_unstable();
            let mut notes = notes;
            notes.sort_by_key(|n| n.2);
            let mut out = Vec::new();
            let mut f = flushes.iter().peekable();
            for (src, k, s) in &notes {
                while let Some(at_) = f.next_if(|x| **x <= *s) {
                    let due = t.due(at(*at_));
                    for d in &due {
                        prop_assert!(d.window_start + d.window_secs <= 1_800_000_000 + at_);
                    }
                    out.extend(due);
                }
                t.note(&format!("peer:p{src}"), *k, "x", at(*s));
            }
            out.extend(t.drain());
            prop_assert_eq!(out.iter().map(|s| s.count).sum::<u64>(), notes.len() as u64);
            prop_assert!(t.is_empty());
            // One summary per source, kind and window.
            let mut keys: Vec<_> = out.iter().map(|s| (s.window_start, s.source.clone(), s.kind)).collect();
            let n = keys.len();
            keys.sort();
            keys.dedup();
            prop_assert_eq!(keys.len(), n);
        }

        /// However many sources, each window holds at most `limit` tallies
        /// plus one `other` per kind.
        #[test]
        fn the_number_of_entries_is_bounded(limit in 1usize..16, sources in 1usize..200, k in kind()) {
            let mut t = Tally::with_limit(60, limit);
            for i in 0..sources {
                t.note(&format!("addr:10.0.0.{i}"), k, "x", at(1));
            }
            let out = t.drain();
            prop_assert!(out.len() <= limit + 1);
            prop_assert_eq!(out.iter().map(|s| s.count).sum::<u64>(), sources as u64);
        }
    }

    #[test]
    fn actions_and_labels() {
        assert_eq!(Kind::Impersonation.action(), "federation.refused.impersonation");
        assert_eq!(Kind::Token.label(), "token");
        assert_eq!(addr(Some("127.0.0.1:4000".parse().unwrap())), "addr:127.0.0.1");
        assert_eq!(addr(None), "addr:unknown");
    }
}
