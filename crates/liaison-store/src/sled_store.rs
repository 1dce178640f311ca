//! sled adapter. sled is unmaintained beta, which is why it sits behind [`Store`].

use std::collections::HashMap;
use std::ops::Bound;
use std::path::Path;

use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

use super::{Batch, Entry, Store, StoreError, Tree};

pub struct SledStore {
    db: sled::Db,
    trees: HashMap<Tree, sled::Tree>,
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
        std::panic::catch_unwind(|| Self::open_inner(path)).unwrap_or_else(|p| {
            let detail = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "the store library failed reading it".into());
            Err(damaged(path, detail))
        })
    }

    fn open_inner(path: &Path) -> Result<Self, StoreError> {
        // A process that just exited may hold the lock for a moment longer
        // (a restart under systemd, or a test): wait briefly for it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let db = loop {
            match sled::Config::new().path(path).open() {
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
        Ok(Self { db, trees })
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
        let trees: Vec<sled::Tree> = order.iter().map(|t| self.tree(*t).cloned()).collect::<Result<_, _>>()?;
        let result: Result<(), TransactionError<()>> = trees.as_slice().transaction(|txs| {
            for (t, k, v) in &batch.ops {
                let i = order.iter().position(|o| o == t).ok_or(ConflictableTransactionError::Abort(()))?;
                match v {
                    Some(v) => {
                        txs[i].insert(k.as_slice(), v.as_slice())?;
                    }
                    None => {
                        txs[i].remove(k.as_slice())?;
                    }
                }
            }
            Ok(())
        });
        result.map_err(|e| StoreError::Backend(format!("{e:?}")))?;
        // Durable before acknowledged.
        self.db.flush().map_err(backend)?;
        Ok(())
    }

    fn len(&self, tree: Tree) -> Result<usize, StoreError> {
        Ok(self.tree(tree)?.len())
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.db.size_on_disk().map_err(backend)
    }

    /// Unencrypted: the value itself (a node always runs a [`super::SealedStore`] over this).
    fn index_token(&self, value: &str) -> String {
        value.to_string()
    }
}
