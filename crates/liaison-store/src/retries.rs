//! Answers of calls made with a `request_id` (AIP-155), so a retried call
//! is answered, not applied twice.
//!
//! Layout (tree Meta): `retry/<user>\0<request_id>` → [`Answer`], and
//! `retry-at/<unix secs be><user>\0<request_id>` → empty, the time index
//! that expiry walks from its oldest end (never the whole tree).
//!
//! A call runs inside [`marking`]: every write it makes also records an
//! incomplete answer for its request_id in the same atomic batch. If the
//! node stops between the call's effect and its answer being stored, a
//! retry finds that mark and is told the call was applied, instead of
//! applying it again.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, Weak};

use prost::Message;

use super::{scan_prefix, Store, StoreError, Tree, Tx};

const PREFIX: &str = "retry/";
/// How long an answer is kept for retries (seconds): a day.
pub const KEEP_SECS: i64 = 86_400;
const AT_PREFIX: &[u8] = b"retry-at/";

/// What is kept of a call made with a request_id.
#[derive(Clone, PartialEq, Message)]
pub struct Answer {
    /// SHA-256 of the method and the request: a different request under
    /// the same request_id is refused, not answered with another's result.
    #[prost(bytes = "vec", tag = "1")]
    pub fingerprint: Vec<u8>,
    /// The encoded response; absent while (or if) only the effect landed.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub response: Option<Vec<u8>>,
    /// Unix seconds of the first call.
    #[prost(int64, tag = "3")]
    pub time: i64,
}

/// The key of `user`'s `request_id`.
pub fn key(user: &str, request_id: &str) -> String {
    format!("{PREFIX}{user}\0{request_id}")
}

pub fn get(store: &dyn Store, key: &str) -> Result<Option<Answer>, StoreError> {
    match store.get(Tree::Meta, key.as_bytes())? {
        Some(v) => Answer::decode(v.as_slice()).map(Some).map_err(|e| StoreError::Corrupt(e.to_string())),
        None => Ok(None),
    }
}

/// Stores `answer` under `key` (and its time index) in `tx`.
pub fn put(tx: &mut Tx, key: &str, answer: &Answer) {
    tx.batch.put(Tree::Meta, key.as_bytes().to_vec(), answer.encode_to_vec());
    tx.batch.put(Tree::Meta, at_key(answer.time, key), Vec::new());
}

fn at_key(time: i64, key: &str) -> Vec<u8> {
    let mut k = AT_PREFIX.to_vec();
    k.extend_from_slice(&time.to_be_bytes());
    k.extend_from_slice(key.as_bytes());
    k
}

/// Deletes up to `max` answers first stored before `before` (unix secs),
/// oldest first, reading no further than the first one still kept;
/// returns how many.
pub fn expire(store: &dyn Store, tx: &mut Tx, before: i64, max: usize) -> Result<usize, StoreError> {
    const CHUNK: usize = 256;
    let mut n = 0;
    let mut after: Option<Vec<u8>> = None;
    loop {
        let chunk = scan_prefix(store, Tree::Meta, AT_PREFIX, after.as_deref(), CHUNK)?;
        let last = chunk.len() < CHUNK;
        for (k, _) in chunk {
            let rest = k.get(AT_PREFIX.len()..).unwrap_or_default();
            let (time, key) = rest.split_at(rest.len().min(8));
            let time = <[u8; 8]>::try_from(time).map(i64::from_be_bytes).unwrap_or(i64::MIN);
            if time >= before || n >= max {
                return Ok(n);
            }
            tx.batch.delete(Tree::Meta, key.to_vec());
            tx.batch.delete(Tree::Meta, k.clone());
            n += 1;
            after = Some(k);
        }
        if last {
            return Ok(n);
        }
    }
}

/// The request a call runs for, marked in every write it makes.
#[derive(Debug, Clone)]
pub struct Mark {
    pub key: String,
    pub fingerprint: Vec<u8>,
    pub time: i64,
}

tokio::task_local! {
    static MARK: Mark;
}

/// Runs `fut` with `mark`: each of its writes records the call as applied.
pub async fn marking<F: std::future::Future>(mark: Mark, fut: F) -> F::Output {
    MARK.scope(mark, fut).await
}

/// Adds the running call's mark to a write that changes something.
pub(crate) fn mark_in(tx: &mut Tx) {
    let Ok(mark) = MARK.try_with(Mark::clone) else { return };
    let answer = Answer { fingerprint: mark.fingerprint, response: None, time: mark.time };
    put(tx, &mark.key, &answer);
}

/// One lock per request_id being answered, so a retry that arrives while
/// the first call still runs waits for its answer instead of running too.
#[derive(Debug, Default)]
pub struct InFlight(std::sync::Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>);

impl InFlight {
    /// The lock of `key`, shared by every call holding it now.
    pub fn lock_for(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(l) = map.get(key).and_then(Weak::upgrade) {
            return l;
        }
        // Forget locks nobody holds any more, so the table stays as small
        // as the number of calls in flight.
        map.retain(|_, w| w.strong_count() > 0);
        let l = Arc::new(tokio::sync::Mutex::new(()));
        map.insert(key.to_string(), Arc::downgrade(&l));
        l
    }
}
