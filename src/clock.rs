//! Time as a dependency: the node asks a [`Clock`], so tests can move days forward.

use std::sync::{Arc, Mutex};

use time::{Duration, OffsetDateTime};

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> OffsetDateTime;
}

/// Wall-clock time, optionally shifted by a fixed offset (`LIAISON_CLOCK_OFFSET_SECS`,
/// used by end-to-end tests and the demo to make deadlines pass).
#[derive(Debug, Default, Clone)]
pub struct SystemClock {
    pub offset: Duration,
}

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + self.offset
    }
}

/// Wall-clock time shifted by an offset that can move forward while nodes run
/// (the demo shares one between its in-process nodes to make deadlines pass).
#[derive(Debug, Default, Clone)]
pub struct ShiftedClock(Arc<std::sync::atomic::AtomicI64>);

impl ShiftedClock {
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.whole_seconds(), std::sync::atomic::Ordering::SeqCst);
    }
    pub fn offset(&self) -> Duration {
        Duration::seconds(self.0.load(std::sync::atomic::Ordering::SeqCst))
    }
}

impl Clock for ShiftedClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + self.offset()
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
            *t += by;
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
