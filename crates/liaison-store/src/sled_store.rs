//! sled adapter. sled is unmaintained beta, which is why it sits behind [`Store`].

use std::collections::HashMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

use super::{Batch, Entry, Store, StoreError, Tree};

pub struct SledStore {
    db: sled::Db,
    trees: HashMap<Tree, sled::Tree>,
    /// Entries per tree, kept in the `counts` tree in the same transaction
    /// as every write (sled's own `len` walks the whole tree), and mirrored
    /// here so that reading one costs nothing.
    counts_tree: sled::Tree,
    counts: HashMap<Tree, AtomicU64>,
}

/// sled's page cache when the node's configuration does not set one: a
/// bound on memory whatever the store holds (sled's default is 1 GiB).
pub const DEFAULT_CACHE_BYTES: u64 = 64 * 1024 * 1024;

fn count_of(v: Option<&[u8]>) -> u64 {
    v.and_then(|v| <[u8; 8]>::try_from(v).ok()).map_or(0, u64::from_be_bytes)
}

/// sled reports a held lock as `ErrorKind::Other` with the OS error in the
/// message, so the kind alone does not identify it.
fn is_lock_contention(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock || e.to_string().contains("could not acquire lock")
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// What a damaged store file says to the operator.
fn damaged(path: &Path, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!(
        "the store at {} is damaged ({detail}); restore the store and its store.head from one backup \
         (docs/OPERATIONS.md, \"Backup and restore\")",
        path.display()
    ))
}

impl SledStore {
    /// Opens (or creates) the store. Damaged files are refused with a clear
    /// message, whether sled reports them or panics on them.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// [`SledStore::open`] with a page cache of `cache_bytes`.
    pub fn open_with_cache(path: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        std::panic::catch_unwind(|| Self::open_inner(path, cache_bytes)).unwrap_or_else(|p| {
            let detail = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "the store library failed reading it".into());
            Err(damaged(path, detail))
        })
    }

    fn open_inner(path: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        // A process that just exited may hold the lock for a moment longer
        // (a restart under systemd, or a test): wait briefly for it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let db = loop {
            match sled::Config::new().path(path).cache_capacity(cache_bytes).open() {
                Ok(db) => break db,
                Err(sled::Error::Io(e)) if is_lock_contention(&e) && std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(e @ sled::Error::Corruption { .. }) => return Err(damaged(path, e)),
                Err(e) => return Err(backend(e)),
            }
        };
        let mut trees = HashMap::new();
        for t in Tree::ALL {
            let tree = db.open_tree(t.name()).map_err(|e| match e {
                sled::Error::Corruption { .. } => damaged(path, e),
                e => backend(e),
            })?;
            trees.insert(t, tree);
        }
        let counts_tree = db.open_tree("counts").map_err(backend)?;
        let mut counts = HashMap::new();
        for (t, tree) in &trees {
            let n = match counts_tree.get(t.name()).map_err(backend)? {
                Some(v) => count_of(Some(&v)),
                // A store written before counts were kept: counted once.
                None => {
                    let n = tree.len() as u64;
                    counts_tree.insert(t.name(), &n.to_be_bytes()).map_err(backend)?;
                    n
                }
            };
            counts.insert(*t, AtomicU64::new(n));
        }
        Ok(Self { db, trees, counts_tree, counts })
    }

    /// Applies `batch` atomically in memory (and to sled's log), without
    /// waiting for the disk: see [`Store::flush`].
    fn apply_in_memory(&self, batch: &Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        // Group by tree so one multi-tree transaction covers the whole batch.
        let mut order: Vec<Tree> = Vec::new();
        for (t, _, _) in &batch.ops {
            if !order.contains(t) {
                order.push(*t);
            }
        }
        let mut trees: Vec<sled::Tree> = order.iter().map(|t| self.tree(*t).cloned()).collect::<Result<_, _>>()?;
        trees.push(self.counts_tree.clone());
        let counts_at = order.len();
        let result: Result<Vec<(Tree, u64)>, TransactionError<()>> = trees.as_slice().transaction(|txs| {
            // Recomputed on each attempt: a conflicting transaction retries the closure.
            let mut delta: Vec<i64> = vec![0; order.len()];
            for (t, k, v) in &batch.ops {
                let i = order.iter().position(|o| o == t).ok_or(ConflictableTransactionError::Abort(()))?;
                let tx = txs.get(i).ok_or(ConflictableTransactionError::Abort(()))?;
                let change = match v {
                    Some(v) => i64::from(tx.insert(k.as_slice(), v.as_slice())?.is_none()),
                    None => -i64::from(tx.remove(k.as_slice())?.is_some()),
                };
                if let Some(d) = delta.get_mut(i) {
                    *d += change;
                }
            }
            let counts = txs.get(counts_at).ok_or(ConflictableTransactionError::Abort(()))?;
            let mut now = Vec::new();
            for (t, d) in order.iter().zip(&delta) {
                if *d != 0 {
                    let n = count_of(counts.get(t.name())?.as_deref()).saturating_add_signed(*d);
                    counts.insert(t.name(), &n.to_be_bytes())?;
                    now.push((*t, n));
                }
            }
            Ok(now)
        });
        let now = result.map_err(|e| StoreError::Backend(format!("{e:?}")))?;
        for (t, n) in now {
            if let Some(c) = self.counts.get(&t) {
                c.store(n, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    fn tree(&self, t: Tree) -> Result<&sled::Tree, StoreError> {
        self.trees.get(&t).ok_or_else(|| StoreError::Backend(format!("tree {} not open", t.name())))
    }

    fn collect(
        iter: impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        iter.take(limit).map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(backend)).collect()
    }
}

impl Store for SledStore {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree(tree)?.get(key).map_err(backend)?.map(|v| v.to_vec()))
    }

    fn range(
        &self,
        tree: Tree,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        Self::collect(self.tree(tree)?.range::<Vec<u8>, _>((start, end)), limit)
    }

    fn range_rev(
        &self,
        tree: Tree,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        Self::collect(self.tree(tree)?.range::<Vec<u8>, _>((start, end)).rev(), limit)
    }

    fn apply(&self, batch: &Batch) -> Result<(), StoreError> {
        self.apply_in_memory(batch)?;
        // Durable before acknowledged.
        self.flush()
    }

    fn apply_unflushed(&self, batch: &Batch) -> Result<(), StoreError> {
        self.apply_in_memory(batch)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map_err(backend).map(drop)
    }

    fn len(&self, tree: Tree) -> Result<usize, StoreError> {
        let n = self.counts.get(&tree).ok_or_else(|| StoreError::Backend(format!("tree {} not open", tree.name())))?;
        Ok(usize::try_from(n.load(Ordering::Relaxed)).unwrap_or(usize::MAX))
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.db.size_on_disk().map_err(backend)
    }

    /// Unencrypted: the value itself (a node always runs a [`super::SealedStore`] over this).
    fn index_token(&self, value: &str) -> String {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What sled itself counts, by walking the tree.
    fn walked(s: &SledStore, t: Tree) -> usize {
        s.tree(t).unwrap().iter().count()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// The kept counts follow inserts, overwrites and deletes (within
        /// one batch too), and survive a reopen, without walking a tree.
        #[test]
        fn counts_follow_every_write_and_survive_a_reopen(
            batches in prop::collection::vec(
                prop::collection::vec((0u8..2, 0u8..12, any::<bool>()), 0..10),
                1..8,
            )
        ) {
            let dir = tempfile::tempdir().unwrap();
            let trees = [Tree::Records, Tree::Audit];
            {
                let s = SledStore::open(dir.path()).unwrap();
                for ops in &batches {
                    let mut b = Batch::default();
                    for (t, k, put) in ops {
                        let tree = trees[usize::from(*t)];
                        if *put {
                            b.put(tree, vec![*k], vec![1]);
                        } else {
                            b.delete(tree, vec![*k]);
                        }
                    }
                    s.apply(&b).unwrap();
                    for t in trees {
                        prop_assert_eq!(s.len(t).unwrap(), walked(&s, t));
                    }
                }
            }
            let s = SledStore::open(dir.path()).unwrap();
            for t in trees {
                prop_assert_eq!(s.len(t).unwrap(), walked(&s, t));
            }
        }
    }

    /// A store written before counts were kept is counted once, at open.
    #[test]
    fn a_store_without_counts_is_counted_once() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SledStore::open(dir.path()).unwrap();
            let mut b = Batch::default();
            for k in 0..5u8 {
                b.put(Tree::Records, vec![k], vec![k]);
            }
            s.apply(&b).unwrap();
            s.counts_tree.clear().unwrap();
            s.flush().unwrap();
        }
        let s = SledStore::open(dir.path()).unwrap();
        assert_eq!(s.len(Tree::Records).unwrap(), 5);
        assert_eq!(count_of(s.counts_tree.get("records").unwrap().as_deref()), 5, "kept from now on");
    }
}
