//! One background worker per peer: a slow or hanging peer holds up only
//! its own queue. The owner scans its queue, starts a worker for each peer
//! that has none running, and waits for new work or the next tick while
//! reaping finished workers. Workers live in a `JoinSet` owned by the
//! caller's task, so stopping that task stops them.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::{Id, JoinSet};

#[derive(Default)]
pub struct Workers {
    set: JoinSet<()>,
    busy: HashMap<Id, String>,
}

impl Workers {
    /// Starts `work` for `peer` unless a worker for it is still running.
    pub fn start(&mut self, peer: &str, work: impl Future<Output = ()> + Send + 'static) {
        if self.busy.values().any(|p| p == peer) {
            return; // its worker is still on it; new items wait for the next scan
        }
        let handle = self.set.spawn(work);
        self.busy.insert(handle.id(), peer.to_string());
    }

    /// Waits for `wake` or `tick`, reaping finished workers meanwhile. A
    /// finished worker does not end the wait: what it left is not due yet.
    pub async fn wait(&mut self, wake: &Notify, tick: Duration) {
        let tick = tokio::time::sleep(tick);
        tokio::pin!(tick);
        loop {
            tokio::select! {
                _ = wake.notified() => return,
                _ = &mut tick => return,
                Some(done) = self.set.join_next_with_id(), if !self.set.is_empty() => {
                    let id = match done {
                        Ok((id, ())) => id,
                        Err(e) => {
                            tracing::error!(error = %e, "worker failed");
                            e.id()
                        }
                    };
                    self.busy.remove(&id);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn one_worker_per_peer_and_a_stuck_one_blocks_only_itself() {
        let mut w = Workers::default();
        let wake = Notify::new();
        let ran = Arc::new(std::sync::atomic::AtomicU32::new(0));
        w.start("kh", std::future::pending());
        let r = Arc::clone(&ran);
        w.start("kh", async move {
            r.fetch_add(100, std::sync::atomic::Ordering::SeqCst);
        });
        for _ in 0..3 {
            let r = Arc::clone(&ran);
            w.start("la", async move {
                r.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            });
            w.wait(&wake, Duration::from_millis(20)).await;
        }
        // KH's second worker never started (its first is stuck); LA's ran each round.
        assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 3);
    }
}
