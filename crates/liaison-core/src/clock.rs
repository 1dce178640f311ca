//! Time as a dependency: the node asks a [`Clock`], so tests can move days forward.

use std::sync::{Arc, Mutex};

use time::{Duration, OffsetDateTime};

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> OffsetDateTime;
}

/// Name of the test-only switch that shifts a node's clock.
pub const OFFSET_VAR: &str = "LIAISON_CLOCK_OFFSET_SECS";
/// Largest shift the switch accepts, either way (20 years).
const MAX_OFFSET_SECS: i64 = 20 * 366 * 86_400;

/// The shift asked for by [`OFFSET_VAR`] (`value`). Only builds that honour
/// it (debug builds, which the end-to-end tests run) apply it; a release
/// build refuses to start with it set, so a production node's validity
/// windows, retention and deadlines always follow the real clock.
pub fn offset_from(value: Option<&str>, honoured: bool) -> Result<Duration, String> {
    let Some(v) = value else { return Ok(Duration::ZERO) };
    if !honoured {
        return Err(format!("{OFFSET_VAR} is a test-only switch and this is a release build: unset it"));
    }
    let secs: i64 = v.trim().parse().map_err(|_| format!("{OFFSET_VAR}: {v:?} is not a number of seconds"))?;
    if secs.unsigned_abs() > MAX_OFFSET_SECS.unsigned_abs() {
        return Err(format!("{OFFSET_VAR}: at most {MAX_OFFSET_SECS} seconds either way"));
    }
    Ok(Duration::seconds(secs))
}

/// Wall-clock time, optionally shifted by a fixed offset ([`OFFSET_VAR`] in
/// test builds).
#[derive(Debug, Default, Clone)]
pub struct SystemClock {
    pub offset: Duration,
}

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        crate::convert::after(OffsetDateTime::now_utc(), self.offset)
    }
}

/// Wall-clock time shifted by an offset that can move forward while nodes run
/// (the demo shares one between its in-process nodes to make deadlines pass).
#[derive(Debug, Default, Clone)]
pub struct ShiftedClock(Arc<std::sync::atomic::AtomicI64>);

impl ShiftedClock {
    pub fn advance(&self, by: Duration) {
        let by = by.whole_seconds();
        // Saturate rather than wrap: a scenario may ask for any number of seconds.
        let _ = self.0.fetch_update(std::sync::atomic::Ordering::SeqCst, std::sync::atomic::Ordering::SeqCst, |o| {
            Some(o.saturating_add(by))
        });
    }
    pub fn offset(&self) -> Duration {
        Duration::seconds(self.0.load(std::sync::atomic::Ordering::SeqCst))
    }
}

impl Clock for ShiftedClock {
    fn now(&self) -> OffsetDateTime {
        crate::convert::after(OffsetDateTime::now_utc(), self.offset())
    }
}

/// A clock tests set by hand.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<OffsetDateTime>>);

impl ManualClock {
    pub fn new(at: OffsetDateTime) -> Self {
        Self(Arc::new(Mutex::new(at)))
    }
    pub fn advance(&self, by: Duration) {
        if let Ok(mut t) = self.0.lock() {
            *t = t.saturating_add(by);
        }
    }
    pub fn set(&self, at: OffsetDateTime) {
        if let Ok(mut t) = self.0.lock() {
            *t = at;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        self.0.lock().map(|t| *t).unwrap_or_else(|e| *e.into_inner())
    }
}

/// How far ahead of this node's clock a peer's timestamp may be. Nodes run
/// NTP; more than this is a wrong clock (or a peer trying to make a waiting
/// period pass early), and the step is refused rather than believed.
pub const MAX_SKEW: Duration = Duration::minutes(5);

/// A peer's timestamp this node does not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Skew {
    #[error("the time given is {}s ahead of this node's clock (at most {}s allowed)", .0.whole_seconds(), MAX_SKEW.whole_seconds())]
    Ahead(Duration),
    #[error("the time given is {}s in the past (at most {}s allowed)", .0.whole_seconds(), .1.whole_seconds())]
    TooOld(Duration, Duration),
}

impl Skew {
    /// Stable reason code for receipts and audit entries.
    pub fn code(&self) -> &'static str {
        "clock_skew"
    }
}

/// Checks a timestamp a peer put in a step against this node's `now`: at
/// most [`MAX_SKEW`] ahead, and at most `max_age` (plus the skew) behind —
/// a step may be old only as long as a sender keeps retrying it.
pub fn check_peer_time(t: OffsetDateTime, now: OffsetDateTime, max_age: Duration) -> Result<(), Skew> {
    let ahead = crate::convert::between(now, t);
    if ahead > MAX_SKEW {
        return Err(Skew::Ahead(ahead));
    }
    let limit = max_age.saturating_add(MAX_SKEW);
    let behind = ahead.checked_neg().unwrap_or(Duration::MAX);
    if behind > limit {
        return Err(Skew::TooOld(behind, limit));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn peer_times_are_bounded_both_ways() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let week = Duration::days(7);
        assert_eq!(check_peer_time(now, now, week), Ok(()));
        assert_eq!(check_peer_time(now + Duration::minutes(4), now, week), Ok(()));
        assert_eq!(check_peer_time(now - Duration::days(2), now, week), Ok(()), "a step retried for two days");
        assert!(matches!(check_peer_time(now + Duration::days(1), now, week), Err(Skew::Ahead(_))));
        assert!(matches!(check_peer_time(now - Duration::days(8), now, week), Err(Skew::TooOld(..))));
        // Extreme values never overflow.
        let _ = check_peer_time(OffsetDateTime::UNIX_EPOCH, now, Duration::MAX);
        let _ = check_peer_time(now, OffsetDateTime::UNIX_EPOCH, Duration::MAX);
    }

    use super::*;

    #[test]
    fn the_offset_switch_is_test_only_bounded_and_named_in_errors() {
        assert_eq!(offset_from(None, false), Ok(Duration::ZERO));
        assert_eq!(offset_from(Some("86400"), true), Ok(Duration::days(1)));
        assert_eq!(offset_from(Some("-60"), true), Ok(Duration::minutes(-1)));
        // A release build refuses to start with it set.
        assert!(offset_from(Some("86400"), false).unwrap_err().contains("release build"));
        assert!(offset_from(Some("soon"), true).unwrap_err().contains(OFFSET_VAR));
        assert!(offset_from(Some(&i64::MAX.to_string()), true).is_err());
        assert!(offset_from(Some(&i64::MIN.to_string()), true).is_err());
    }

    #[test]
    fn a_shifted_clock_saturates_instead_of_wrapping() {
        let c = ShiftedClock::default();
        c.advance(Duration::seconds(i64::MAX));
        c.advance(Duration::seconds(i64::MAX));
        assert!(c.now() > OffsetDateTime::now_utc(), "still in the future, no panic");
    }
}
