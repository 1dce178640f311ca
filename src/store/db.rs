//! The node's database handle: serialised, durable write transactions on top
//! of a [`Store`], with the ordered change log and the audit chain every
//! write may append to in the same atomic batch.

use std::sync::Arc;

use prost::Message;
use tokio::sync::{broadcast, Mutex};

use super::{Batch, Store, StoreError, Tree};
use crate::audit::{self, Chain, Event};
use crate::clock::Clock;
use crate::pb;

const META_CHANGE_SEQ: &[u8] = b"change_seq";
/// Meta keys `checkpoint/<seq be>` hold signed audit checkpoints.
pub const CHECKPOINT_PREFIX: &[u8] = b"checkpoint/";

/// Writes collected by one transaction.
pub struct Tx {
    pub batch: Batch,
    next_change: u64,
    audit: Vec<Event>,
    /// The time this transaction runs at (from the node's clock).
    pub now: time::OffsetDateTime,
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

    /// Appends an audit entry in the same atomic write.
    pub fn audit(&mut self, ev: Event) {
        self.audit.push(ev);
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
    write: Mutex<WriteState>,
    changes: broadcast::Sender<u64>,
    clock: Arc<dyn Clock>,
    signer: Option<Signer>,
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
        Ok(Self { store, write: Mutex::new(WriteState { next_change, chain }), changes, clock, signer })
    }

    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    pub fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    /// Runs `f` with exclusive write access, then applies its batch (with
    /// change-log and audit entries) durably. Reads inside `f` see every
    /// previously acknowledged write, so check-then-write is race-free.
    pub async fn write<T, E>(&self, f: impl FnOnce(&dyn Store, &mut Tx) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let mut state = self.write.lock().await;
        let now = self.clock.now();
        let mut tx = Tx { batch: Batch::default(), next_change: state.next_change, audit: Vec::new(), now };
        let out = f(self.store.as_ref(), &mut tx)?;
        let mut chain = state.chain.clone();
        for ev in std::mem::take(&mut tx.audit) {
            let entry = chain.append(ev, now);
            if entry.seq % audit::CHECKPOINT_EVERY == 0 {
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
        let moved = tx.next_change != state.next_change;
        if moved {
            tx.batch.put(Tree::Meta, META_CHANGE_SEQ.to_vec(), tx.next_change.to_be_bytes().to_vec());
        }
        let store = Arc::clone(&self.store);
        let batch = tx.batch;
        tokio::task::spawn_blocking(move || store.apply(&batch))
            .await
            .map_err(|e| StoreError::Backend(format!("write task failed: {e}")))??;
        state.chain = chain;
        if moved {
            state.next_change = tx.next_change;
            let _ = self.changes.send(tx.next_change - 1);
        }
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
        tokio::task::spawn_blocking(move || store.apply(&b))
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
