//! Retention: received records are purged when their retention runs out, and
//! at once when the agreement they came under is revoked (if it says so).
//! Every purge is audited.

use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use super::receive::{purge, RETAIN_PREFIX};
use super::ExchangeError;
use crate::agreement::book;
use crate::node::Node;
use crate::pb;
use crate::store::records::StoredRecord;
use crate::store::{StoreError, Tree};

/// Purges every received record whose retention ended before now.
pub async fn purge_expired(node: &Node) -> Result<usize, ExchangeError> {
    let mut end = RETAIN_PREFIX.to_vec();
    end.extend_from_slice(&crate::convert::micros_key(node.now()));
    let due = node.db.store().range(Tree::Meta, Bound::Included(RETAIN_PREFIX.to_vec()), Bound::Excluded(end), 1000)?;
    if due.is_empty() {
        return Ok(0);
    }
    let keys: Vec<String> = due
        .iter()
        .filter_map(|(k, _)| k.get(RETAIN_PREFIX.len() + 8..).map(|b| String::from_utf8_lossy(b).into_owned()))
        .collect();
    let n = node
        .db
        .write(|st, tx| {
            let mut n = 0;
            for (idx, k) in keys.iter().enumerate() {
                if purge(st, tx, k, "node", "retention period ended")? {
                    n += 1;
                } else {
                    tx.batch.delete(Tree::Meta, due[idx].0.clone());
                }
            }
            Ok::<_, StoreError>(n)
        })
        .await?;
    Ok(n)
}

/// Purges records received under revoked agreements that say so.
pub async fn purge_revoked(node: &Node) -> Result<usize, ExchangeError> {
    let revoked: Vec<String> = book::list(node, true)?
        .into_iter()
        .filter(|r| r.state == pb::AgreementState::Revoked as i32)
        .filter_map(|r| r.agreement)
        .filter(|a| a.retention.as_ref().is_some_and(|x| x.purge_on_revoke))
        .map(|a| a.id)
        .collect();
    if revoked.is_empty() {
        return Ok(0);
    }
    let mut victims = Vec::new();
    for (k, v) in node.db.store().range(Tree::Records, Bound::Unbounded, Bound::Unbounded, usize::MAX)? {
        let s: StoredRecord = prost::Message::decode(v.as_slice()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if s.provenance.as_ref().is_some_and(|p| revoked.contains(&p.agreement_id)) {
            victims.push(String::from_utf8_lossy(&k).into_owned());
        }
    }
    if victims.is_empty() {
        return Ok(0);
    }
    Ok(node
        .db
        .write(|st, tx| {
            let mut n = 0;
            for k in &victims {
                if purge(st, tx, k, "node", "agreement revoked")? {
                    n += 1;
                }
            }
            Ok::<_, StoreError>(n)
        })
        .await?)
}

/// Runs both purges now and then every `every`, and whenever woken (a revocation).
pub fn spawn(node: Arc<Node>, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            for (what, r) in [("retention", purge_expired(&node).await), ("revocation", purge_revoked(&node).await)] {
                match r {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(purged = n, reason = what, "received records purged"),
                    Err(e) => tracing::error!(error = %e, "purge failed"),
                }
            }
            tokio::select! {
                _ = node.housekeeping_wake.notified() => {}
                _ = tokio::time::sleep(every) => {}
            }
        }
    })
}
