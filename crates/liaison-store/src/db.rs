//! The node's database handle: serialised, durable write transactions on top
//! of a [`Store`], with the ordered change log and the audit chain every
//! write may append to in the same atomic batch.

use std::sync::Arc;

use prost::Message;
use tokio::sync::{broadcast, Mutex};

use super::{Batch, Store, StoreError, Tree};
use crate::clock::Clock;
use crate::pb;
use liaison_core::audit::{self, Chain, Event};

const META_CHANGE_SEQ: &[u8] = b"change_seq";
/// Test-only fault injection (debug builds): the process aborts right after
/// committing a write that audits this action, as a crash at that point would.
/// Kill-and-restart tests use it to prove what one write leaves behind.
pub const CRASH_VAR: &str = "LIAISON_CRASH_AFTER";
/// Meta keys `checkpoint/<seq be>` hold signed audit checkpoints.
pub const CHECKPOINT_PREFIX: &[u8] = b"checkpoint/";

/// Writes collected by one transaction.
pub struct Tx {
    pub batch: Batch,
    next_change: u64,
    audit: Vec<Event>,
    /// The time this transaction runs at (from the node's clock).
    pub now: time::OffsetDateTime,
    /// Search-catalogue edits, applied once the batch is durable.
    catalogue: Vec<super::catalogue::Edit>,
}

impl Tx {
    /// Appends a change-log entry; its `seq` is assigned here.
    pub fn change(&mut self, mut change: pb::Change) -> u64 {
        let seq = self.next_change;
        change.seq = seq;
        self.next_change += 1;
        self.batch.put(Tree::Changes, seq.to_be_bytes().to_vec(), change.encode_to_vec());
        seq
    }

    /// Updates the search catalogue once this write is durable.
    pub fn catalogue(&mut self, key: &str, entry: Option<super::catalogue::Entry>) {
        self.catalogue.push((key.to_string(), entry));
    }

    /// Appends an audit entry in the same atomic write.
    pub fn audit(&mut self, ev: Event) {
        self.audit.push(ev);
    }
}

/// Group commit: batches are numbered as they are applied in memory, and
/// one flush covers every batch applied before it started.
#[derive(Default)]
struct Flusher {
    /// Tickets handed out (the last batch applied in memory).
    applied: std::sync::atomic::AtomicU64,
    /// Every ticket up to this one is on disk.
    flushed: std::sync::atomic::AtomicU64,
    /// One flush at a time; writers queue here and mostly find their
    /// batch already flushed by the one before them.
    flushing: Mutex<()>,
}

impl Flusher {
    async fn through(
        &self,
        ticket: u64,
        store: &Arc<dyn Store>,
        failed: &Arc<std::sync::OnceLock<String>>,
        failure: &Arc<tokio::sync::Notify>,
    ) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering::SeqCst;
        if self.flushed.load(SeqCst) >= ticket {
            return Ok(());
        }
        let _one = self.flushing.lock().await;
        if self.flushed.load(SeqCst) >= ticket {
            return Ok(());
        }
        if let Some(why) = failed.get() {
            return Err(StoreError::Failed(why.clone()));
        }
        let upto = self.applied.load(SeqCst);
        let store = Arc::clone(store);
        let r = tokio::task::spawn_blocking(move || store.flush())
            .await
            .map_err(|e| StoreError::Backend(format!("flush task failed: {e}")))?;
        if let Err(e) = r {
            let _ = failed.set(e.to_string());
            failure.notify_one();
            return Err(e);
        }
        self.flushed.fetch_max(upto, SeqCst);
        Ok(())
    }
}

struct WriteState {
    /// Next change sequence number to hand out.
    next_change: u64,
    chain: Chain,
}

/// Who signs audit checkpoints.
pub struct Signer {
    pub node_id: String,
    pub key: ed25519_dalek::SigningKey,
}

pub struct Db {
    store: Arc<dyn Store>,
    /// Shared with the task that applies a batch, so the commit finishes
    /// (and the head advances) even if the caller's future is dropped.
    write: Arc<Mutex<WriteState>>,
    changes: broadcast::Sender<u64>,
    clock: Arc<dyn Clock>,
    signer: Option<Signer>,
    crash_after: Option<String>,
    disk: Option<super::disk::Disk>,
    /// Where the last checkpoint's entry is recorded outside the store.
    head_file: Option<std::path::PathBuf>,
    /// Set once a batch failed to apply: why. Shared with the apply task.
    failed: Arc<std::sync::OnceLock<String>>,
    /// Notified when `failed` is set (the node stops).
    pub failure: Arc<tokio::sync::Notify>,
    /// What record listings search (see [`super::catalogue`]).
    catalogue: Arc<super::catalogue::Catalogue>,
    /// Calls with a request_id running now (see [`super::retries`]).
    pub retries: super::retries::InFlight,
    flusher: Arc<Flusher>,
}

/// Whether the store can take writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Serving,
    Full { free: u64, reserve: u64 },
    Failed(String),
}

impl Db {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, signer: Option<Signer>) -> Result<Self, StoreError> {
        let next_change = match store.get(Tree::Meta, META_CHANGE_SEQ)? {
            Some(v) => {
                u64::from_be_bytes(v.as_slice().try_into().map_err(|_| StoreError::Corrupt("change_seq".into()))?)
            }
            None => 1,
        };
        let head = store.range_rev(Tree::Audit, std::ops::Bound::Unbounded, std::ops::Bound::Unbounded, 1)?.pop();
        let chain = match head {
            Some((_, v)) => Chain::after(
                &pb::AuditEntry::decode(v.as_slice()).map_err(|e| StoreError::Corrupt(format!("audit head: {e}")))?,
            ),
            None => Chain::default(),
        };
        let (changes, _) = broadcast::channel(1024);
        Ok(Self {
            store,
            write: Arc::new(Mutex::new(WriteState { next_change, chain })),
            changes,
            clock,
            signer,
            crash_after: None,
            disk: None,
            head_file: None,
            failed: Arc::new(std::sync::OnceLock::new()),
            failure: Arc::new(tokio::sync::Notify::new()),
            catalogue: Arc::default(),
            retries: super::retries::InFlight::default(),
            flusher: Arc::default(),
        })
    }

    /// Arms [`CRASH_VAR`]'s fault injection (the caller checks it is a test build).
    pub fn crash_after(&mut self, action: String) {
        self.crash_after = Some(action);
    }

    /// Checks free space before each write.
    pub fn set_disk(&mut self, disk: super::disk::Disk) {
        self.disk = Some(disk);
    }

    /// Records each checkpoint in `path`, after checking that the store
    /// still holds the entry the file names (see [`super::head`]).
    pub fn set_head_file(&mut self, path: std::path::PathBuf) -> Result<(), StoreError> {
        if let Some(h) = super::head::read(&path)? {
            let held = super::audit::entry(self.store.as_ref(), h.seq)?.filter(|e| e.seq == h.seq).map(|e| e.hash);
            super::head::check(&h, held.as_deref())?;
        }
        self.head_file = Some(path);
        Ok(())
    }

    /// Whether writes can go ahead now (what health reports).
    pub fn health(&self) -> Health {
        if let Some(why) = self.failed.get() {
            return Health::Failed(why.clone());
        }
        match self.disk.as_ref().map(|d| d.check()) {
            Some(Err(StoreError::Full { free, reserve })) => Health::Full { free, reserve },
            _ => Health::Serving,
        }
    }

    /// Refuses a write up front: after a failed one, or on a full disk.
    fn may_write(&self) -> Result<(), StoreError> {
        if let Some(why) = self.failed.get() {
            return Err(StoreError::Failed(why.clone()));
        }
        match &self.disk {
            Some(d) => d.check(),
            None => Ok(()),
        }
    }

    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    pub fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    pub fn catalogue(&self) -> &super::catalogue::Catalogue {
        &self.catalogue
    }

    /// Runs `f` with exclusive write access, then applies its batch (with
    /// change-log and audit entries) durably. Reads inside `f` see every
    /// earlier write, so check-then-write is race-free.
    ///
    /// Group commit: the batch is applied in memory under the write lock,
    /// which is then released; the call returns once a flush that started
    /// after its batch was applied has finished. Concurrent writers share
    /// one flush instead of taking turns at one each. A later write can
    /// read an earlier one before it is on disk, but is never acknowledged
    /// before it: flushes are in order, so whatever a caller was told, and
    /// every write before it, survives a crash.
    ///
    /// Cancel-safe: once the batch is handed to the store, applying it and
    /// advancing the chain head and change sequence happen together in a
    /// blocking task that owns the write lock. Dropping this future (a
    /// caller's short deadline) cannot leave a batch on disk with the head
    /// behind it, which would make the next write reuse its sequence numbers.
    pub async fn write<T, E>(&self, f: impl FnOnce(&dyn Store, &mut Tx) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let mut state = Arc::clone(&self.write).lock_owned().await;
        let now = self.clock.now();
        let mut tx = Tx {
            batch: Batch::default(),
            next_change: state.next_change,
            audit: Vec::new(),
            now,
            catalogue: Vec::new(),
        };
        let out = f(self.store.as_ref(), &mut tx)?;
        let mut chain = state.chain.clone();
        let crash = self.crash_after.as_ref().is_some_and(|a| tx.audit.iter().any(|e| e.action == *a));
        let mut checkpointed = None;
        for ev in std::mem::take(&mut tx.audit) {
            let entry = chain.append(ev, now);
            if entry.seq % audit::CHECKPOINT_EVERY == 0 {
                checkpointed = Some(super::head::Head { seq: entry.seq, hash: entry.hash.clone() });
                if let Some(s) = &self.signer {
                    let mut key = CHECKPOINT_PREFIX.to_vec();
                    key.extend_from_slice(&entry.seq.to_be_bytes());
                    tx.batch.put(Tree::Meta, key, audit::checkpoint(&entry, &s.node_id, &s.key).encode_to_vec());
                }
            }
            tx.batch.put(Tree::Audit, entry.seq.to_be_bytes().to_vec(), entry.encode_to_vec());
        }
        if tx.batch.is_empty() {
            return Ok(out);
        }
        self.may_write()?;
        // A call made with a request_id is recorded as applied in the same
        // batch as its effect (see `retries`).
        super::retries::mark_in(&mut tx);
        let next_change = tx.next_change;
        let moved = next_change != state.next_change;
        if moved {
            tx.batch.put(Tree::Meta, META_CHANGE_SEQ.to_vec(), next_change.to_be_bytes().to_vec());
        }
        let store = Arc::clone(&self.store);
        let changes = self.changes.clone();
        let (failed, failure) = (Arc::clone(&self.failed), Arc::clone(&self.failure));
        let head = self.head_file.clone().zip(checkpointed);
        let batch = tx.batch;
        let (catalogue, edits) = (Arc::clone(&self.catalogue), tx.catalogue);
        let flusher = Arc::clone(&self.flusher);
        // Runs to the end even if nobody awaits it any more: the batch is
        // applied and the head advanced together, and then made durable.
        let task = tokio::spawn(async move {
            let (store2, failed2, failure2, flusher2) =
                (Arc::clone(&store), Arc::clone(&failed), Arc::clone(&failure), Arc::clone(&flusher));
            // In memory, under the write lock: the next writer reads this
            // batch, and the chain and change sequence move with it.
            let ticket = tokio::task::spawn_blocking(move || {
                if let Err(e) = store2.apply_unflushed(&batch) {
                    // The store may now hold in memory what is not on disk:
                    // write nothing more, and let the node stop and restart.
                    let _ = failed2.set(e.to_string());
                    failure2.notify_one();
                    return Err(e);
                }
                state.chain = chain;
                if let Err(e) = catalogue.apply(edits) {
                    // Durable, but not searchable until the index is rebuilt at
                    // the next start; the write itself stands.
                    tracing::error!(error = %e, "could not update the search catalogue");
                }
                if moved {
                    state.next_change = next_change;
                }
                // Taken before the lock is released, so tickets follow the
                // order batches were applied in.
                let ticket = flusher2.applied.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                drop(state);
                Ok::<u64, StoreError>(ticket)
            })
            .await
            .map_err(|e| StoreError::Backend(format!("write task failed: {e}")))??;
            // Group commit: one flush makes every batch applied before it
            // durable, so writers that queued meanwhile share it.
            flusher.through(ticket, &store, &failed, &failure).await?;
            if moved {
                let _ = changes.send(next_change - 1);
            }
            if let Some((path, h)) = head {
                // Best effort: a stale head file only makes the start-up
                // check look at an older entry.
                if let Err(e) = super::head::write(&path, &h) {
                    tracing::warn!(error = %e, "could not record the checkpoint in store.head");
                }
            }
            if crash {
                std::process::abort();
            }
            Ok::<(), StoreError>(())
        });
        task.await.map_err(|e| StoreError::Backend(format!("write task failed: {e}")))??;
        Ok(out)
    }

    /// Appends audit entries on their own.
    pub async fn audit(&self, events: Vec<Event>) -> Result<(), StoreError> {
        self.write(|_, tx| {
            for ev in events {
                tx.audit(ev);
            }
            Ok::<(), StoreError>(())
        })
        .await
    }

    /// Signs a checkpoint over the current chain head (e.g. at shutdown).
    pub async fn checkpoint_now(&self) -> Result<(), StoreError> {
        let Some(s) = &self.signer else { return Ok(()) };
        self.may_write()?;
        let state = self.write.lock().await;
        let seq = state.chain.next_seq - 1;
        if seq == 0 {
            return Ok(());
        }
        let Some(entry) = super::audit::entry(self.store.as_ref(), seq)? else {
            return Ok(());
        };
        let mut key = CHECKPOINT_PREFIX.to_vec();
        key.extend_from_slice(&seq.to_be_bytes());
        let mut b = Batch::default();
        b.put(Tree::Meta, key, audit::checkpoint(&entry, &s.node_id, &s.key).encode_to_vec());
        let store = Arc::clone(&self.store);
        let head = self.head_file.clone().map(|p| (p, super::head::Head { seq, hash: entry.hash.clone() }));
        tokio::task::spawn_blocking(move || {
            store.apply(&b)?;
            match head {
                Some((path, h)) => super::head::write(&path, &h),
                None => Ok(()),
            }
        })
        .await
        .map_err(|e| StoreError::Backend(format!("write task failed: {e}")))?
    }

    /// Highest change sequence number written so far (0 if none).
    pub async fn last_change(&self) -> u64 {
        self.write.lock().await.next_change - 1
    }

    /// Notified with the newest change seq after each committed write.
    pub fn subscribe(&self) -> broadcast::Receiver<u64> {
        self.changes.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use std::ops::Bound;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::*;
    use crate::{Entry, SledStore};

    /// Where a [`Held`] store stops its first call.
    #[derive(Clone, Copy, PartialEq)]
    enum At {
        /// Applying a batch (after it started, before it returns).
        Apply,
        /// A flush (a slow fsync).
        Flush,
    }

    /// A store that holds its first apply or its first flush until the test
    /// lets it go, and counts its flushes.
    struct Held {
        inner: SledStore,
        at: At,
        first: AtomicBool,
        flushes: AtomicUsize,
        entered: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
        release: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
        done: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    }

    /// The test's side of a [`Held`] store: the held call has begun; let
    /// it go; it has returned.
    struct Gate {
        entered: tokio::sync::oneshot::Receiver<()>,
        release: std::sync::mpsc::Sender<()>,
        done: tokio::sync::oneshot::Receiver<()>,
    }

    impl Held {
        fn open(dir: &std::path::Path, at: At) -> (Arc<Held>, Gate) {
            let (entered_tx, entered) = tokio::sync::oneshot::channel();
            let (release, release_rx) = std::sync::mpsc::channel();
            let (done_tx, done) = tokio::sync::oneshot::channel();
            let store = Held {
                inner: SledStore::open(dir).unwrap(),
                at,
                first: AtomicBool::new(true),
                flushes: AtomicUsize::new(0),
                entered: std::sync::Mutex::new(Some(entered_tx)),
                release: std::sync::Mutex::new(release_rx),
                done: std::sync::Mutex::new(Some(done_tx)),
            };
            (Arc::new(store), Gate { entered, release, done })
        }

        /// Runs `f`, held first if this is the first call at `at`.
        fn call<T>(&self, at: At, f: impl FnOnce() -> T) -> T {
            if self.at != at || !self.first.swap(false, Ordering::SeqCst) {
                return f();
            }
            let signal = |slot: &std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>| {
                if let Some(tx) = slot.lock().ok().and_then(|mut s| s.take()) {
                    let _ = tx.send(());
                }
            };
            signal(&self.entered);
            let _ = self.release.lock().map(|r| r.recv());
            let out = f();
            signal(&self.done);
            out
        }
    }

    impl Store for Held {
        fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
            self.inner.get(tree, key)
        }
        fn range(&self, t: Tree, s: Bound<Vec<u8>>, e: Bound<Vec<u8>>, n: usize) -> Result<Vec<Entry>, StoreError> {
            self.inner.range(t, s, e, n)
        }
        fn range_rev(&self, t: Tree, s: Bound<Vec<u8>>, e: Bound<Vec<u8>>, n: usize) -> Result<Vec<Entry>, StoreError> {
            self.inner.range_rev(t, s, e, n)
        }
        fn apply(&self, batch: &Batch) -> Result<(), StoreError> {
            self.call(At::Apply, || self.inner.apply(batch))
        }
        fn apply_unflushed(&self, batch: &Batch) -> Result<(), StoreError> {
            self.call(At::Apply, || self.inner.apply_unflushed(batch))
        }
        fn flush(&self) -> Result<(), StoreError> {
            self.flushes.fetch_add(1, Ordering::SeqCst);
            self.call(At::Flush, || self.inner.flush())
        }
        fn len(&self, tree: Tree) -> Result<usize, StoreError> {
            self.inner.len(tree)
        }
        fn size_on_disk(&self) -> Result<u64, StoreError> {
            self.inner.size_on_disk()
        }
        fn index_token(&self, value: &str) -> String {
            self.inner.index_token(value)
        }
    }

    /// Writers that arrive while a flush is running do not wait for one
    /// flush each: they share the next one, and every write is acknowledged
    /// only after a flush that covers it; the chain stays whole.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_share_one_flush() {
        let dir = tempfile::tempdir().unwrap();
        let (store, gate) = Held::open(dir.path(), At::Flush);
        let db = Arc::new(Db::new(store.clone(), Arc::new(crate::clock::SystemClock::default()), None).unwrap());
        let write = |db: Arc<Db>, i: usize| {
            tokio::spawn(async move {
                db.write(|_, tx| {
                    tx.audit(Event::new("user:ana", format!("write.{i}")));
                    tx.change(change());
                    Ok::<_, StoreError>(())
                })
                .await
            })
        };
        let first = write(Arc::clone(&db), 0);
        gate.entered.await.unwrap();
        let rest: Vec<_> = (1..=10).map(|i| write(Arc::clone(&db), i)).collect();
        // All ten are applied in memory (the write lock is free again)
        // while the first flush is still held.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while store.len(Tree::Audit).unwrap() < 11 {
            assert!(std::time::Instant::now() < deadline, "the queued writes were not applied");
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        assert!(rest.iter().all(|h| !h.is_finished()), "nothing is acknowledged before its flush");
        gate.release.send(()).unwrap();
        first.await.unwrap().unwrap();
        for h in rest {
            h.await.unwrap().unwrap();
        }
        assert_eq!(store.flushes.load(Ordering::SeqCst), 2, "ten queued writers shared one flush");
        let audit: Vec<pb::AuditEntry> = store
            .range(Tree::Audit, Bound::Unbounded, Bound::Unbounded, 100)
            .unwrap()
            .into_iter()
            .map(|(_, v)| pb::AuditEntry::decode(v.as_slice()).unwrap())
            .collect();
        assert_eq!(audit::verify(&audit).unwrap(), 11);
        assert_eq!(db.last_change().await, 11);
    }

    /// A store whose disk fails every write (an IO error at flush).
    struct Failing(SledStore);

    impl Store for Failing {
        fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
            self.0.get(tree, key)
        }
        fn range(&self, t: Tree, s: Bound<Vec<u8>>, e: Bound<Vec<u8>>, n: usize) -> Result<Vec<Entry>, StoreError> {
            self.0.range(t, s, e, n)
        }
        fn range_rev(&self, t: Tree, s: Bound<Vec<u8>>, e: Bound<Vec<u8>>, n: usize) -> Result<Vec<Entry>, StoreError> {
            self.0.range_rev(t, s, e, n)
        }
        fn apply(&self, _: &Batch) -> Result<(), StoreError> {
            Err(StoreError::Backend("No space left on device (os error 28)".into()))
        }
        fn len(&self, tree: Tree) -> Result<usize, StoreError> {
            self.0.len(tree)
        }
        fn size_on_disk(&self) -> Result<u64, StoreError> {
            self.0.size_on_disk()
        }
        fn index_token(&self, value: &str) -> String {
            self.0.index_token(value)
        }
    }

    /// After a write fails to apply, the store may hold in memory what is
    /// not on disk: every later write is refused, health says so, and the
    /// node is told to stop.
    #[tokio::test]
    async fn a_failed_write_stops_all_writing_and_signals_the_node() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::new(
            Arc::new(Failing(SledStore::open(dir.path()).unwrap())),
            Arc::new(crate::clock::SystemClock::default()),
            None,
        )
        .unwrap();
        let failure = Arc::clone(&db.failure);
        let signalled = failure.notified();
        let write = || {
            db.write(|_, tx| {
                tx.audit(Event::new("user:ana", "record.create"));
                Ok::<_, StoreError>(())
            })
        };
        assert!(matches!(write().await, Err(StoreError::Backend(_))));
        tokio::time::timeout(std::time::Duration::from_secs(10), signalled).await.expect("the node is told");
        assert!(matches!(db.health(), Health::Failed(_)));
        assert!(matches!(write().await, Err(StoreError::Failed(_))), "nothing more is written");
        assert!(matches!(db.checkpoint_now().await, Ok(()) | Err(StoreError::Failed(_))));
    }

    fn change() -> pb::Change {
        pb::Change { record_key: "th/r1".into(), ..Default::default() }
    }

    /// A caller that gives up while its write is being applied (a peer's
    /// 1 ms deadline) must not make the next write reuse its sequence
    /// numbers: both writes stay, and the chain and change log have no gaps.
    #[tokio::test]
    async fn a_write_whose_caller_gives_up_still_advances_the_head() {
        let dir = tempfile::tempdir().unwrap();
        let (store, gate) = Held::open(dir.path(), At::Apply);
        let db = Db::new(store.clone(), Arc::new(crate::clock::SystemClock::default()), None).unwrap();

        // Boxed so that `drop` really drops the future (a pinned stack
        // future would live on to the end of the scope).
        let mut first = Box::pin(db.write(|_, tx| {
            tx.audit(Event::new("peer:kh", "first"));
            tx.change(change());
            Ok::<_, StoreError>(())
        }));
        tokio::select! {
            _ = &mut first => panic!("the gated write finished before it was released"),
            r = gate.entered => r.unwrap(),
        }
        // The caller goes away mid-write; the store then finishes the batch.
        drop(first);
        gate.release.send(()).unwrap();
        gate.done.await.unwrap();

        db.write(|_, tx| {
            tx.audit(Event::new("peer:kh", "second"));
            tx.change(change());
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap();

        let audit: Vec<pb::AuditEntry> = store
            .range(Tree::Audit, Bound::Unbounded, Bound::Unbounded, 10)
            .unwrap()
            .into_iter()
            .map(|(_, v)| pb::AuditEntry::decode(v.as_slice()).unwrap())
            .collect();
        let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["first", "second"]);
        assert_eq!(audit::verify(&audit).unwrap(), 2);
        let seqs: Vec<u64> = store
            .range(Tree::Changes, Bound::Unbounded, Bound::Unbounded, 10)
            .unwrap()
            .into_iter()
            .map(|(_, v)| pb::Change::decode(v.as_slice()).unwrap().seq)
            .collect();
        assert_eq!(seqs, [1, 2]);
        assert_eq!(db.last_change().await, 2);
    }
}
