//! Rate limits per caller, so one noisy peer or local client costs only
//! itself. [`Buckets`] is a pure token bucket per key (a peer id, a token
//! hash, a remote address) with the time passed in; the listeners call it
//! and answer `RESOURCE_EXHAUSTED` with a retry hint when it says no.
//!
//! The number of keys is bounded too ([`MAX_KEYS`]): when full, the bucket
//! that has been full (idle) longest is forgotten — a forgotten bucket
//! comes back full, which is what an idle caller would have anyway — and if
//! none is idle, new keys share one overflow bucket.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Distinct callers tracked per kind of limit.
pub const MAX_KEYS: usize = 4096;
const OVERFLOW: &str = "\u{0}overflow";

/// `[limits]` in `node.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Federation calls per second each peer may make, sustained.
    #[serde(default = "default_rate")]
    pub peer_per_sec: f64,
    /// Federation calls a peer may make in a burst.
    #[serde(default = "default_burst")]
    pub peer_burst: u32,
    /// Local API calls per second per token, sustained.
    #[serde(default = "default_rate")]
    pub token_per_sec: f64,
    /// Local API calls per token in a burst.
    #[serde(default = "default_burst")]
    pub token_burst: u32,
    /// Failed token checks per remote address in a burst (refilled at one a second).
    #[serde(default = "default_failed_tokens")]
    pub failed_token_burst: u32,
    /// TLS handshakes in progress at once on the federation listener.
    #[serde(default = "default_handshakes")]
    pub max_handshakes: usize,
    /// Calls in progress at once on one connection (either listener).
    #[serde(default = "default_per_connection")]
    pub max_calls_per_connection: usize,
    /// HTTP/2 streams open at once on one connection (either listener).
    #[serde(default = "default_streams")]
    pub max_streams_per_connection: u32,
    /// Megabytes kept free on the store's disk: below this, writes are
    /// refused (`RESOURCE_EXHAUSTED`) and health says `NOT_SERVING` until
    /// space returns. 0 turns the check off.
    #[serde(default = "default_min_free_disk_mb")]
    pub min_free_disk_mb: u64,
}

fn default_min_free_disk_mb() -> u64 {
    100
}

fn default_rate() -> f64 {
    100.0
}
fn default_burst() -> u32 {
    500
}
fn default_failed_tokens() -> u32 {
    20
}
fn default_handshakes() -> usize {
    64
}
fn default_per_connection() -> usize {
    32
}
fn default_streams() -> u32 {
    100
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            peer_per_sec: default_rate(),
            peer_burst: default_burst(),
            token_per_sec: default_rate(),
            token_burst: default_burst(),
            failed_token_burst: default_failed_tokens(),
            max_handshakes: default_handshakes(),
            max_calls_per_connection: default_per_connection(),
            max_streams_per_connection: default_streams(),
            min_free_disk_mb: default_min_free_disk_mb(),
        }
    }
}

impl Limits {
    /// The field that is out of range, if any.
    pub fn check(&self) -> Result<(), (&'static str, &'static str)> {
        let rate = |r: f64| r.is_finite() && r > 0.0 && r <= 1_000_000.0;
        if !rate(self.peer_per_sec) {
            return Err(("limits.peer_per_sec", "a positive number of calls per second"));
        }
        if !rate(self.token_per_sec) {
            return Err(("limits.token_per_sec", "a positive number of calls per second"));
        }
        for (f, v) in [
            ("limits.peer_burst", self.peer_burst as usize),
            ("limits.token_burst", self.token_burst as usize),
            ("limits.failed_token_burst", self.failed_token_burst as usize),
            ("limits.max_handshakes", self.max_handshakes),
            ("limits.max_calls_per_connection", self.max_calls_per_connection),
            ("limits.max_streams_per_connection", self.max_streams_per_connection as usize),
        ] {
            if v == 0 || v > 1_000_000 {
                return Err((f, "between 1 and 1000000"));
            }
        }
        if self.min_free_disk_mb > 1_000_000 {
            return Err(("limits.min_free_disk_mb", "at most 1000000 (0 turns the check off)"));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    /// Time of the last refill, in seconds since the buckets' epoch.
    at: f64,
}

/// Token buckets per key; time is given as a duration since any fixed start.
#[derive(Debug)]
pub struct Buckets {
    rate: f64,
    burst: f64,
    max_keys: usize,
    map: HashMap<String, Bucket>,
}

impl Buckets {
    pub fn new(rate: f64, burst: u32) -> Buckets {
        Buckets::with_capacity(rate, burst, MAX_KEYS)
    }

    pub fn with_capacity(rate: f64, burst: u32, max_keys: usize) -> Buckets {
        Buckets { rate: rate.max(f64::MIN_POSITIVE), burst: f64::from(burst.max(1)), max_keys, map: HashMap::new() }
    }

    /// Takes one call for `key` at time `now`; otherwise how long until one is free.
    pub fn take(&mut self, key: &str, now: Duration) -> Result<(), Duration> {
        let now = now.as_secs_f64();
        let key = if self.map.contains_key(key) || self.make_room(now) { key } else { OVERFLOW };
        let (rate, burst) = (self.rate, self.burst);
        let b = self.map.entry(key.to_string()).or_insert(Bucket { tokens: burst, at: now });
        // A clock that goes back refills nothing (and takes nothing away).
        let elapsed = (now - b.at).max(0.0);
        b.tokens = (b.tokens + elapsed * rate).min(burst);
        b.at = b.at.max(now);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(((1.0 - b.tokens) / rate).min(3600.0)))
        }
    }

    /// Room for a new key: forget the longest-idle bucket that is full again.
    fn make_room(&mut self, now: f64) -> bool {
        if self.map.len() < self.max_keys {
            return true;
        }
        let (rate, burst) = (self.rate, self.burst);
        let idle = self
            .map
            .iter()
            .filter(|(k, b)| k.as_str() != OVERFLOW && b.tokens + (now - b.at).max(0.0) * rate >= burst)
            .min_by(|a, b| a.1.at.total_cmp(&b.1.at))
            .map(|(k, _)| k.clone());
        match idle {
            Some(k) => {
                self.map.remove(&k);
                true
            }
            None => false,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// The node's buckets, against its monotonic clock.
#[derive(Debug)]
pub struct Gate {
    start: std::time::Instant,
    peers: std::sync::Mutex<Buckets>,
    tokens: std::sync::Mutex<Buckets>,
    failed_tokens: std::sync::Mutex<Buckets>,
    sign_in_sources: std::sync::Mutex<Buckets>,
    sign_in_accounts: std::sync::Mutex<Buckets>,
}

/// Console sign-in attempts from one address: a burst of 10, then one every
/// 10 s. Every attempt counts (a password check costs tens of milliseconds
/// of CPU), so guessing is slow and cannot take the node's CPU.
pub const SIGN_IN_SOURCE: (f64, u32) = (0.1, 10);
/// Sign-in attempts at one account from anywhere: a burst of 20, then one
/// every 30 s, so guessing one password from many addresses is slow too.
pub const SIGN_IN_ACCOUNT: (f64, u32) = (1.0 / 30.0, 20);

impl Gate {
    pub fn new(l: &Limits) -> Gate {
        Gate {
            start: std::time::Instant::now(),
            peers: std::sync::Mutex::new(Buckets::new(l.peer_per_sec, l.peer_burst)),
            tokens: std::sync::Mutex::new(Buckets::new(l.token_per_sec, l.token_burst)),
            failed_tokens: std::sync::Mutex::new(Buckets::new(1.0, l.failed_token_burst)),
            sign_in_sources: std::sync::Mutex::new(Buckets::new(SIGN_IN_SOURCE.0, SIGN_IN_SOURCE.1)),
            sign_in_accounts: std::sync::Mutex::new(Buckets::new(SIGN_IN_ACCOUNT.0, SIGN_IN_ACCOUNT.1)),
        }
    }

    fn take(&self, b: &std::sync::Mutex<Buckets>, key: &str) -> Result<(), Duration> {
        let now = self.start.elapsed();
        // A poisoned lock only means another call panicked mid-update; the
        // buckets are still usable.
        let mut g = b.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        g.take(key, now)
    }

    /// One federation call by `peer`.
    pub fn peer(&self, peer: &str) -> Result<(), Duration> {
        self.take(&self.peers, peer)
    }

    /// One local API call with the token whose hash is `token`.
    pub fn token(&self, token: &str) -> Result<(), Duration> {
        self.take(&self.tokens, token)
    }

    /// One failed token check from `source`.
    pub fn failed_token(&self, source: &str) -> Result<(), Duration> {
        self.take(&self.failed_tokens, source)
    }

    /// One console sign-in attempt from `source` at `account`.
    pub fn sign_in(&self, source: &str, account: &str) -> Result<(), Duration> {
        self.take(&self.sign_in_sources, source)?;
        self.take(&self.sign_in_accounts, account)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(x: f64) -> Duration {
        Duration::from_secs_f64(x)
    }

    #[test]
    fn a_burst_then_the_rate() {
        let mut b = Buckets::new(2.0, 5);
        for _ in 0..5 {
            assert!(b.take("kh", s(0.0)).is_ok());
        }
        let wait = b.take("kh", s(0.0)).unwrap_err();
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-9, "{wait:?}");
        // Another caller is not affected.
        assert!(b.take("vn", s(0.0)).is_ok());
        assert!(b.take("kh", s(0.5)).is_ok());
        assert!(b.take("kh", s(0.5)).is_err());
    }

    #[test]
    fn keys_are_bounded_and_idle_ones_are_forgotten_first() {
        let mut b = Buckets::with_capacity(1.0, 2, 3);
        for k in ["a", "b", "c"] {
            b.take(k, s(0.0)).unwrap();
        }
        // Nobody is idle yet: a fourth caller shares the overflow bucket.
        assert!(b.take("d", s(0.0)).is_ok());
        assert!(b.take("e", s(0.0)).is_ok());
        assert!(b.take("f", s(0.0)).is_err(), "overflow callers share one bucket");
        assert!(b.len() <= 4);
        // Later "a" has refilled: it is forgotten to make room for "g".
        assert!(b.take("g", s(10.0)).is_ok());
        assert!(b.len() <= 4);
    }

    proptest! {
        /// Over any window, one key never gets more than burst + rate × window.
        #[test]
        fn never_more_than_burst_plus_rate(steps in proptest::collection::vec(0.0f64..0.5, 1..300), rate in 0.5f64..20.0, burst in 1u32..50) {
            let mut b = Buckets::new(rate, burst);
            let mut t = 0.0;
            let mut granted = 0u32;
            for dt in &steps {
                t += dt;
                if b.take("kh", s(t)).is_ok() {
                    granted += 1;
                }
            }
            prop_assert!(f64::from(granted) <= f64::from(burst) + rate * t + 1e-6);
        }

        #[test]
        fn any_number_of_keys_stays_bounded(keys in proptest::collection::vec(0u32..100_000, 1..500)) {
            let mut b = Buckets::with_capacity(1.0, 1, 64);
            for (i, k) in keys.iter().enumerate() {
                let _ = b.take(&k.to_string(), s(i as f64 * 0.01));
                prop_assert!(b.len() <= 65);
            }
        }
    }
}
