//! The node's database handle: serialised, durable write transactions on top
//! of a [`Store`], with the ordered change log every write appends to.

use std::sync::Arc;

use prost::Message;
use tokio::sync::{broadcast, Mutex};

use super::{Batch, Store, StoreError, Tree};
use crate::pb;

const META_CHANGE_SEQ: &[u8] = b"change_seq";

/// Writes collected by one transaction.
pub struct Tx {
    pub batch: Batch,
    next_change: u64,
}

impl Tx {
    /// Appends a change-log entry; its `seq` is assigned here.
    pub fn change(&mut self, mut change: pb::Change) -> u64 {
        let seq = self.next_change;
        change.seq = seq;
        self.next_change += 1;
        self.batch.put(
            Tree::Changes,
            seq.to_be_bytes().to_vec(),
            change.encode_to_vec(),
        );
        seq
    }
}

struct WriteState {
    /// Next change sequence number to hand out.
    next_change: u64,
}

pub struct Db {
    store: Arc<dyn Store>,
    write: Mutex<WriteState>,
    changes: broadcast::Sender<u64>,
}

impl Db {
    pub fn new(store: Arc<dyn Store>) -> Result<Self, StoreError> {
        let next_change = match store.get(Tree::Meta, META_CHANGE_SEQ)? {
            Some(v) => u64::from_be_bytes(
                v.as_slice()
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("change_seq".into()))?,
            ),
            None => 1,
        };
        let (changes, _) = broadcast::channel(1024);
        Ok(Self {
            store,
            write: Mutex::new(WriteState { next_change }),
            changes,
        })
    }

    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// Runs `f` with exclusive write access, then applies its batch durably.
    /// Reads inside `f` see every previously acknowledged write, so
    /// check-then-write (version checks, uniqueness) is race-free.
    pub async fn write<T, E>(
        &self,
        f: impl FnOnce(&dyn Store, &mut Tx) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let mut state = self.write.lock().await;
        let mut tx = Tx {
            batch: Batch::default(),
            next_change: state.next_change,
        };
        let out = f(self.store.as_ref(), &mut tx)?;
        if tx.batch.is_empty() {
            return Ok(out);
        }
        let moved = tx.next_change != state.next_change;
        if moved {
            tx.batch.put(
                Tree::Meta,
                META_CHANGE_SEQ.to_vec(),
                tx.next_change.to_be_bytes().to_vec(),
            );
        }
        let store = Arc::clone(&self.store);
        let batch = tx.batch;
        tokio::task::spawn_blocking(move || store.apply(&batch))
            .await
            .map_err(|e| StoreError::Backend(format!("write task failed: {e}")))??;
        if moved {
            state.next_change = tx.next_change;
            let _ = self.changes.send(tx.next_change - 1);
        }
        Ok(out)
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
