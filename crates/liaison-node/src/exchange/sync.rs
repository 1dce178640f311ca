//! Directory sync: peers pull changes after a cursor. The responder walks
//! its change log from the cursor (so a sync that finds nothing new costs the
//! same however many records it holds), filters by grant at the source, and
//! sends only what the requester may have.

use std::time::Duration;

use super::{exchange_for, exchange_kind, open_page, seal_shared, ExchangeError};
use crate::agreement::book;
use crate::audit::Event;
use crate::convert::timestamp;
use crate::node::Node;
use crate::pb;
use crate::policy::{Decision, Direction};
use crate::store::records;
use crate::store::StoreError;

/// Most changes the responder walks per call.
pub const MAX_WALK: usize = 2000;
/// Records per answer.
pub const MAX_RECORDS: usize = 500;

/// Answers a peer's sync from `cursor`.
pub async fn answer(
    node: &std::sync::Arc<Node>,
    caller: &str,
    req: &pb::SyncRecordsRequest,
) -> Result<pb::SyncRecordsResponse, ExchangeError> {
    let kind = super::kind_of("kind", req.kind)?;
    let purpose = super::purpose_of("purpose", req.purpose)?;
    let actor = format!("peer:{caller}");
    let kind_ex = exchange_kind(node, caller, Direction::Outgoing, pb::Operation::Sync, kind, purpose);
    let (allowed, kind_event) = super::decide_unaudited(node, &actor, &kind_ex, "")?;
    if let Decision::Deny(d) = allowed {
        node.db.audit(vec![kind_event]).await?;
        return Err(ExchangeError::Denied(d));
    }
    let limit = match req.limit {
        0 => MAX_RECORDS,
        n => (n as usize).min(MAX_RECORDS),
    };
    // The walk over the change log and the record reads: off the runtime's threads.
    let start = req.cursor;
    let (live, withdrawn, cursor, more) = crate::node::off_runtime(node, move |node| {
        let changes = crate::store::changes::after(node.db.store(), start, MAX_WALK)?;
        let walked_all = changes.len() < MAX_WALK;
        let own = format!("{}/", node.id());
        let liaison_core::sync::Page { keys, cursor, more } =
            liaison_core::sync::page(&changes, start, &own, kind, limit, walked_all);
        let mut live = Vec::new();
        let mut withdrawn = Vec::new();
        for k in keys {
            // Gone (purged) counts as withdrawn, as a withdrawn record does.
            let Some(stored) = records::get(node.db.store(), &k)? else {
                withdrawn.push(k);
                continue;
            };
            match stored.record()? {
                r if r.withdrawn => withdrawn.push(k),
                r => live.push((k, r, stored.envelope)),
            }
        }
        Ok::<_, StoreError>((live, withdrawn, cursor, more))
    })
    .await?;
    let exchanges: Vec<_> = live
        .iter()
        .map(|(k, r, _)| (exchange_for(node, caller, Direction::Outgoing, pb::Operation::Sync, r, purpose), k.clone()))
        .collect();
    let (decisions, decided) = super::decide_all_unaudited(node, &actor, &exchanges)?;
    let mut events = vec![kind_event];
    events.extend(decided);
    // Sent as stored when nothing is withheld: no signature per record.
    let released: Vec<(&String, pb::SharedRecord)> = live
        .iter()
        .zip(&decisions)
        .filter_map(|((k, r, env), d)| Some((k, seal_shared(node, r, d, env.as_ref())?)))
        .collect();
    // Every decision and the released marks: one write per answer.
    node.db
        .write(|_, tx| {
            for ev in events {
                tx.audit(ev);
            }
            for (k, _) in &released {
                crate::store::released::mark(tx, k, caller);
            }
            Ok::<_, StoreError>(())
        })
        .await?;
    let records = released.into_iter().map(|(_, s)| s).collect();
    Ok(pb::SyncRecordsResponse { records, withdrawn, cursor, more })
}

/// Kinds (and a purpose) for which an active agreement lets `peer` sync to us.
fn syncable(node: &Node, peer: &str) -> Result<Vec<(pb::RecordKind, pb::Purpose)>, ExchangeError> {
    Ok(crate::policy::syncable(&book::for_policy(node)?, node.id(), peer, node.now()))
}

/// Pulls everything new from one peer.
pub async fn pull(node: &Node, actor: &str, peer: &str) -> pb::SyncPeerResult {
    let mut res =
        pb::SyncPeerResult { peer: peer.into(), outcome: pb::PeerOutcome::Answered as i32, ..Default::default() };
    let kinds = match syncable(node, peer) {
        Ok(k) => k,
        Err(e) => {
            res.outcome = pb::PeerOutcome::Denied as i32;
            res.error = e.to_string();
            return res;
        }
    };
    if kinds.is_empty() {
        res.outcome = pb::PeerOutcome::Denied as i32;
        res.error = "no active agreement lets this peer sync to us".into();
        return res;
    }
    for (kind, purpose) in kinds {
        if let Err(e) = pull_kind(node, actor, peer, kind, purpose, &mut res).await {
            res.outcome = super::peer_outcome(&e) as i32;
            res.error = super::refuse_answer(node, peer, "SyncRecords answer", e);
            return res;
        }
    }
    res
}

async fn pull_kind(
    node: &Node,
    actor: &str,
    peer: &str,
    kind: pb::RecordKind,
    purpose: pb::Purpose,
    res: &mut pb::SyncPeerResult,
) -> Result<(), ExchangeError> {
    let c = super::client(node, peer).await?;
    let fetch = |cursor: u64| {
        let mut c = c.clone();
        async move {
            let mut req = tonic::Request::new(pb::SyncRecordsRequest {
                kind: kind as i32,
                purpose: purpose as i32,
                cursor,
                limit: 0,
            });
            req.set_timeout(Duration::from_secs(30));
            c.sync_records(req).await.map(tonic::Response::into_inner).map_err(|s| ExchangeError::from_status(peer, &s))
        }
    };
    let mut cursor = crate::store::cursors::get(node.db.store(), peer, kind)?;
    let mut resp = fetch(cursor).await?;
    // A peer that always has "more" gets a budget of pages per pull; the
    // next pull goes on from the saved cursor.
    for page in 1..=MAX_PAGES_PER_PULL {
        // Pipelined: the next page is asked for (after the cursor this
        // answer names) while this one is verified and stored. Nothing of
        // the next answer is used before this one passed its checks.
        let next = (resp.more && page < MAX_PAGES_PER_PULL).then(|| fetch(resp.cursor));
        let (kept, next) = futures::future::join(keep_page(node, actor, peer, purpose, kind, cursor, &resp), async {
            match next {
                Some(f) => Some(f.await),
                None => None,
            }
        })
        .await;
        let (received, purged) = kept?;
        res.received += received;
        res.purged += purged;
        res.cursor = resp.cursor;
        cursor = resp.cursor;
        match next {
            Some(r) => resp = r?,
            None => break,
        }
    }
    Ok(())
}

/// Verifies one sync answer, decides each record under our own policy, and
/// stores what is let in with every decision's audit event and the new
/// cursor: one write per page.
async fn keep_page(
    node: &Node,
    actor: &str,
    peer: &str,
    purpose: pb::Purpose,
    kind: pb::RecordKind,
    cursor: u64,
    resp: &pb::SyncRecordsResponse,
) -> Result<(u32, u32), ExchangeError> {
    let envs = resp
        .records
        .iter()
        .map(|s| s.record.clone().ok_or_else(|| super::invalid("records.record", "missing")))
        .collect::<Result<Vec<_>, _>>()?;
    let recs = open_page(node, envs).await?;
    liaison_core::sync::check_page(
        peer,
        cursor,
        resp.cursor,
        resp.more,
        recs.iter().map(|(_, r)| r.originator.as_str()),
    )
    .map_err(|e| match e {
        liaison_core::sync::PageError::Foreign { .. } => ExchangeError::Refused(e.to_string()),
        liaison_core::sync::PageError::Stalled => ExchangeError::Peer { peer: peer.into(), reason: e.to_string() },
    })?;
    let received: Vec<_> = recs
        .iter()
        .map(|(_, r)| (exchange_for(node, peer, Direction::Incoming, pb::Operation::Sync, r, purpose), r))
        .collect();
    let (decisions, events) = super::admit_unaudited(node, actor, &received)?;
    let now = node.now();
    let kept = node
        .db
        .write(|st, tx| {
            for ev in events {
                tx.audit(ev);
            }
            let mut received = 0;
            let mut purged = 0;
            let mut in_force = super::receive::InForce::receiving(node);
            for ((env, rec), d) in recs.iter().zip(&decisions) {
                let Decision::Allow { agreement_id, agreement_version, onward, retention_days, .. } = d else {
                    continue;
                };
                let prov = pb::Provenance {
                    received_from: peer.into(),
                    agreement_id: agreement_id.clone(),
                    agreement_version: *agreement_version,
                    purpose: purpose as i32,
                    receive_time: Some(timestamp(now)),
                    retain_until: (*retention_days > 0).then(|| {
                        timestamp(crate::convert::after(now, time::Duration::days(i64::from(*retention_days))))
                    }),
                    onward_sharing: *onward as i32,
                };
                let kept =
                    super::receive::store_received(st, tx, env, rec, prov, &format!("peer:{peer}"), &mut in_force)?;
                if kept == super::receive::Kept::Stored {
                    received += 1;
                }
            }
            for k in liaison_core::sync::own_withdrawals(peer, &resp.withdrawn) {
                if super::receive::purge_withdrawn(
                    st,
                    tx,
                    k,
                    &format!("peer:{peer}"),
                    "withdrawn by its originator (sync)",
                )? {
                    purged += 1;
                }
            }
            crate::store::cursors::put(tx, peer, kind, resp.cursor);
            Ok::<_, StoreError>((received, purged))
        })
        .await?;
    Ok(kept)
}

/// Pages one pull asks one peer for, per kind.
pub const MAX_PAGES_PER_PULL: usize = 1000;

/// Syncs with one or every peer now.
pub async fn now(node: &Node, actor: &str, peer: &str) -> Result<Vec<pb::SyncPeerResult>, ExchangeError> {
    let peers = if peer.is_empty() { super::peer_ids(node)? } else { vec![peer.to_string()] };
    let results = futures::future::join_all(peers.iter().map(|p| pull(node, actor, p))).await;
    let summary =
        results.iter().map(|r| format!("{}:+{}/-{}", r.peer, r.received, r.purged)).collect::<Vec<_>>().join(" ");
    node.db.audit(vec![Event::new(actor, "exchange.sync").reason(summary)]).await?;
    Ok(results)
}
