//! A closed-loop load generator: a fixed number of callers, each sending
//! its next request as soon as the previous one is answered, for a fixed
//! time. Latencies are kept whole (a few hundred thousand at most) and
//! sorted once, so percentiles are exact.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one load phase measured.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub ok: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub p50: Duration,
    pub p99: Duration,
    /// The first error seen, to say why a phase failed.
    pub first_error: Option<String>,
}

impl Stats {
    pub fn rate(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.ok as f64 / s
        } else {
            0.0
        }
    }
}

/// The `q`-th quantile (0..=1) of sorted latencies.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let last = sorted.len() - 1;
    let i = ((last as f64) * q).round() as usize;
    sorted[i.min(last)]
}

/// Runs `call(i)` from `concurrency` callers for `time`; `i` numbers the
/// calls from 0 across all callers.
pub async fn closed_loop<F, Fut>(concurrency: usize, time: Duration, call: F) -> Stats
where
    F: Fn(u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + time;
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency.max(1) {
        let (call, next) = (call.clone(), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut errors, mut first) = (Vec::new(), 0u64, None);
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                match call(i).await {
                    Ok(()) => lat.push(t.elapsed()),
                    Err(e) => {
                        errors += 1;
                        first.get_or_insert(e);
                    }
                }
            }
            (lat, errors, first)
        }));
    }
    let mut all = Vec::new();
    let mut stats = Stats::default();
    for t in tasks {
        if let Ok((lat, errors, first)) = t.await {
            all.extend(lat);
            stats.errors += errors;
            if stats.first_error.is_none() {
                stats.first_error = first;
            }
        }
    }
    stats.elapsed = started.elapsed();
    all.sort_unstable();
    stats.ok = all.len() as u64;
    stats.p50 = quantile(&all, 0.50);
    stats.p99 = quantile(&all, 0.99);
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_a_known_series() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&v, 0.5), Duration::from_millis(51));
        assert_eq!(quantile(&v, 0.99), Duration::from_millis(99));
        assert_eq!(quantile(&v, 1.0), Duration::from_millis(100));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
    }

    #[tokio::test]
    async fn errors_are_counted_apart_from_answers() {
        let s = closed_loop(4, Duration::from_millis(50), |i| async move {
            tokio::task::yield_now().await;
            if i % 2 == 0 {
                Ok(())
            } else {
                Err(format!("call {i}"))
            }
        })
        .await;
        assert!(s.ok > 0 && s.errors > 0);
        assert!(s.first_error.as_deref().is_some_and(|e| e.starts_with("call ")));
        assert!(s.rate() > 0.0);
    }
}
