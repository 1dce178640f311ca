//! Witnessing, the IO side: the two federation handlers (a peer offers its
//! checkpoint; a peer asks what we witnessed for it), the background sender
//! (one worker per peer, see [`crate::workers`]) and the peers' answers that
//! `audit verify` checks the chain against. The rules are in [`super`].
//!
//! Meta keys: `witness-held/<node>` (as a witness: the newest checkpoint of
//! each peer, with our statement; one per pinned peer) and
//! `witness-got/<witness>` (as a node: the newest countersignature each
//! witness gave us).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ed25519_dalek::VerifyingKey;

use super::{compare, describe, judge, open, point_of, statement, Point, Rollback, Verdict, WitnessError, Witnessed};
use crate::audit::Event;
use crate::envelope::{self, payload};
use crate::node::Node;
use crate::pb;
use crate::store::{self, StoreError};

/// Each peer gets this long to answer; an unreachable one is reported, not fatal.
pub const ASK_TIMEOUT: Duration = Duration::from_secs(3);
/// How often the sender looks for a newer checkpoint (one local read).
const TICK: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

fn pinned_key(node: &Node, id: &str) -> Result<VerifyingKey, WitnessError> {
    let peer = store::peers::get(node.db.store(), id)?.ok_or_else(|| WitnessError::UnknownPeer(id.into()))?;
    let card = peer.card.ok_or_else(|| StoreError::Corrupt("peer without card".into()))?;
    Ok(envelope::verifying_key(&card.signing_public_key)?)
}

/// The point a stored witnessed checkpoint names. Both signatures were
/// verified before it was stored, and the store authenticates its values.
fn stored_point(wc: &pb::WitnessedCheckpoint) -> Result<Point, StoreError> {
    let cp: pb::AuditCheckpoint = wc
        .checkpoint
        .as_ref()
        .map(envelope::decode)
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("witnessed checkpoint: {e}")))?
        .ok_or_else(|| StoreError::Corrupt("witnessed checkpoint without checkpoint".into()))?;
    Ok(Point { seq: cp.seq, hash: cp.hash })
}

fn short(h: &[u8]) -> String {
    hex::encode(h.get(..8).unwrap_or(h))
}

/// Witness side of `WitnessCheckpoint`: verify the caller's signature over
/// the exact bytes, judge against what we hold, keep and countersign. The
/// check and the write are one `Db::write`, so two offers cannot race.
pub async fn receive(node: &Node, caller: &str, env: pb::Envelope) -> Result<pb::Envelope, WitnessError> {
    let key = pinned_key(node, caller)?;
    envelope::verify_signer(&env, payload::AUDIT_CHECKPOINT, caller, &key)?;
    let cp: pb::AuditCheckpoint = envelope::decode(&env)?;
    let offered = point_of(&cp, caller)?;
    let me = node.id().to_string();
    let signing = &node.identity.signing_key;
    let actor = format!("peer:{caller}");
    node.db
        .write(|st, tx| {
            let held = store::witnessed::held(st, caller)?.map(|wc| stored_point(&wc)).transpose()?;
            match judge(held.as_ref(), &offered) {
                Verdict::Accept => {
                    let s = statement(&me, caller, &offered, tx.now);
                    let signed = envelope::seal(payload::WITNESS_STATEMENT, &s, &me, signing);
                    let wc = pb::WitnessedCheckpoint { checkpoint: Some(env), statement: Some(signed.clone()) };
                    store::witnessed::put_held(tx, caller, &wc);
                    tx.audit(Event::new(actor, "witness.countersign").reason(format!("entry {}", offered.seq)));
                    Ok::<_, WitnessError>(Ok(signed))
                }
                Verdict::Stale { held } => Ok(Err(WitnessError::Stale { held, offered: offered.seq })),
                Verdict::Equivocation { seq } => {
                    // Two chains under one key: evidence worth its own entry.
                    let held_hash = held.as_ref().map(|h| short(&h.hash)).unwrap_or_default();
                    tx.audit(
                        Event::new(actor, "witness.equivocation").decision("deny", "equivocation").reason(format!(
                            "entry {seq}: witnessed hash {held_hash}, offered {}",
                            short(&offered.hash)
                        )),
                    );
                    Ok(Err(WitnessError::Equivocation { seq }))
                }
            }
        })
        .await?
}

/// Witness side of `GetWitnessedCheckpoint`: what we hold for the caller.
pub fn answer(node: &Node, caller: &str) -> Result<Option<pb::WitnessedCheckpoint>, WitnessError> {
    Ok(store::witnessed::held(node.db.store(), caller)?)
}

/// Opens a witnessed checkpoint from `witness` and compares our chain with it.
fn check(
    node: &Node,
    witness: &str,
    wc: &pb::WitnessedCheckpoint,
    len: u64,
) -> Result<(Witnessed, Result<(), Rollback>), WitnessError> {
    let own = node.identity.signing_key.verifying_key();
    let w = open(wc, node.id(), &own, witness, &pinned_key(node, witness)?)?;
    let entry = if w.point.seq <= len { store::audit::entry(node.db.store(), w.point.seq)? } else { None };
    let verdict = compare(&w.point, len, entry.as_ref());
    Ok((w, verdict))
}

fn unreachable(peer: &str, reason: impl ToString) -> WitnessError {
    WitnessError::Unreachable { peer: peer.into(), reason: reason.to_string() }
}

type Client = pb::federation_service_client::FederationServiceClient<tonic::transport::Channel>;

async fn client(node: &Node, peer: &str) -> Result<Client, WitnessError> {
    crate::exchange::client(node, peer).await.map_err(|e| unreachable(peer, e))
}

/// Asks `peer` what it witnessed for us, within [`ASK_TIMEOUT`].
async fn ask(c: &mut Client, peer: &str) -> Result<Option<pb::WitnessedCheckpoint>, WitnessError> {
    let call = c.get_witnessed_checkpoint(pb::GetWitnessedCheckpointRequest {});
    match tokio::time::timeout(ASK_TIMEOUT, call).await {
        Ok(Ok(r)) => Ok(r.into_inner().witnessed),
        Ok(Err(s)) => Err(unreachable(peer, format!("{:?}: {}", s.code(), s.message()))),
        Err(_) => Err(unreachable(peer, format!("no answer within {} s", ASK_TIMEOUT.as_secs()))),
    }
}

/// Keeps `witness`'s countersignature if it is newer than the one kept.
async fn keep(node: &Node, witness: &str, wc: pb::WitnessedCheckpoint, seq: u64) -> Result<(), WitnessError> {
    node.db
        .write(|st, tx| {
            let kept = store::witnessed::got(st, witness)?.map(|k| stored_point(&k)).transpose()?;
            if kept.is_none_or(|k| k.seq < seq) {
                store::witnessed::put_got(tx, witness, &wc);
            }
            Ok::<_, WitnessError>(())
        })
        .await
}

/// What one round with a peer found.
#[derive(Debug)]
enum Round {
    /// The peer now holds (at least) our newest checkpoint, or nothing was due.
    Current,
    /// The peer holds a point our chain does not: we were rolled back.
    Rollback(Point, Rollback),
}

/// One round with `peer`: ask what it holds for us; if our chain does not
/// hold that, stop (sending a newer checkpoint would make the witness
/// forget the evidence); else offer our newest checkpoint if it is newer.
async fn round(node: &Node, peer: &str, newest: Option<(u64, pb::Envelope)>) -> Result<Round, WitnessError> {
    let mut c = client(node, peer).await?;
    let mut held_seq = 0;
    if let Some(wc) = ask(&mut c, peer).await? {
        let len = store::audit::chain_len(node.db.store())?;
        match check(node, peer, &wc, len) {
            Ok((w, Err(rb))) => return Ok(Round::Rollback(w.point, rb)),
            Ok((w, Ok(()))) => {
                held_seq = w.point.seq;
                keep(node, peer, wc, held_seq).await?;
            }
            // A witness whose answer does not verify cannot hold anything
            // against us; our checkpoint is offered anyway.
            Err(e) => tracing::warn!(witness = %peer, error = %e, "witnessed checkpoint does not verify"),
        }
    }
    let Some((seq, env)) = newest.filter(|(seq, _)| *seq > held_seq) else { return Ok(Round::Current) };
    let call = c.witness_checkpoint(pb::WitnessCheckpointRequest { checkpoint: Some(env.clone()) });
    let statement = match tokio::time::timeout(ASK_TIMEOUT, call).await {
        Ok(Ok(r)) => r.into_inner().statement.ok_or_else(|| WitnessError::Mismatch("no statement".into()))?,
        Ok(Err(s)) => return Err(unreachable(peer, format!("{:?}: {}", s.code(), s.message()))),
        Err(_) => return Err(unreachable(peer, format!("no answer within {} s", ASK_TIMEOUT.as_secs()))),
    };
    let wc = pb::WitnessedCheckpoint { checkpoint: Some(env), statement: Some(statement) };
    let own = node.identity.signing_key.verifying_key();
    let w = open(&wc, node.id(), &own, peer, &pinned_key(node, peer)?)?;
    keep(node, peer, wc, w.point.seq).await?;
    tracing::debug!(witness = %peer, seq, "checkpoint witnessed");
    Ok(Round::Current)
}

/// Per-peer progress of the sender (in memory; one entry per pinned peer).
#[derive(Debug, Clone, Default)]
struct PeerState {
    /// Our newest checkpoint seq when the last round with this peer ended well.
    done: Option<u64>,
    failures: u32,
    retry_at: Option<Instant>,
    /// The witnessed seq whose rollback was last audited (once per start).
    reported: Option<u64>,
}

type States = Arc<Mutex<HashMap<String, PeerState>>>;

/// The background sender: one worker per pinned peer, started when our
/// newest checkpoint is newer than what that peer last confirmed (and once
/// per peer after each start, which also finds a rollback early).
pub fn spawn(node: Arc<Node>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut workers = crate::workers::Workers::default();
        let states: States = Arc::default();
        // Nothing wakes it early: a checkpoint is noticed at the next tick.
        let wake = tokio::sync::Notify::new();
        loop {
            if let Err(e) = schedule(&node, &mut workers, &states) {
                tracing::error!(error = %e, "witness scan failed");
            }
            workers.wait(&wake, TICK).await;
        }
    })
}

fn schedule(node: &Arc<Node>, workers: &mut crate::workers::Workers, states: &States) -> Result<(), StoreError> {
    let newest = store::audit::newest_checkpoint(node.db.store())?;
    let seq = newest.as_ref().map_or(0, |(s, _)| *s);
    let peers: Vec<String> =
        store::peers::all(node.db.store())?.into_iter().filter_map(|p| p.card.map(|c| c.node_id)).collect();
    let now = Instant::now();
    let Ok(mut map) = states.lock() else { return Ok(()) };
    map.retain(|id, _| peers.contains(id));
    for id in peers {
        let s = map.entry(id.clone()).or_default();
        if s.done == Some(seq) || s.retry_at.is_some_and(|t| t > now) {
            continue;
        }
        let (n, st, newest) = (Arc::clone(node), Arc::clone(states), newest.clone());
        let peer = id.clone();
        workers.start(&id, async move {
            let out = round(&n, &peer, newest).await;
            settle(&n, &st, &peer, seq, out).await;
        });
    }
    Ok(())
}

async fn settle(node: &Node, states: &States, peer: &str, seq: u64, out: Result<Round, WitnessError>) {
    let mut audit = None;
    if let Ok(mut map) = states.lock() {
        let s = map.entry(peer.to_string()).or_default();
        match out {
            Ok(Round::Current) => *s = PeerState { done: Some(seq), reported: s.reported, ..Default::default() },
            Ok(Round::Rollback(p, rb)) => {
                let problem = describe(peer, &p, &rb);
                tracing::error!(witness = %peer, witnessed = p.seq, "{problem}");
                if s.reported != Some(p.seq) {
                    audit = Some(Event::new("node", "audit.rollback").decision("deny", "rollback").reason(problem));
                }
                *s = PeerState { done: Some(seq), reported: Some(p.seq), ..Default::default() };
            }
            Err(e) => {
                s.failures = s.failures.saturating_add(1);
                let wait = Duration::from_secs(1u64 << s.failures.min(6)).min(MAX_BACKOFF);
                s.retry_at = Some(Instant::now() + wait);
                tracing::debug!(witness = %peer, error = %e, retry_secs = wait.as_secs(), "checkpoint not witnessed");
            }
        }
    }
    if let Some(ev) = audit {
        if let Err(e) = node.db.audit(vec![ev]).await {
            tracing::error!(error = %e, "auditing a rollback failed");
        }
    }
}

/// At shutdown, after the final checkpoint: one round with every peer,
/// all within `within`, so the last head is witnessed too.
pub async fn witness_now(node: &Node, within: Duration) {
    let newest = match store::audit::newest_checkpoint(node.db.store()) {
        Ok(n) => n,
        Err(e) => return tracing::warn!(error = %e, "final witness round: no checkpoint"),
    };
    let peers: Vec<String> = match store::peers::all(node.db.store()) {
        Ok(p) => p.into_iter().filter_map(|p| p.card.map(|c| c.node_id)).collect(),
        Err(e) => return tracing::warn!(error = %e, "final witness round: no peers"),
    };
    let rounds = futures::future::join_all(peers.iter().map(|p| {
        let newest = newest.clone();
        async move { (p, round(node, p, newest).await) }
    }));
    match tokio::time::timeout(within, rounds).await {
        Ok(results) => {
            for (peer, r) in results {
                match r {
                    Ok(Round::Current) => {}
                    Ok(Round::Rollback(p, rb)) => tracing::error!(witness = %peer, "{}", describe(peer, &p, &rb)),
                    Err(e) => tracing::info!(witness = %peer, error = %e, "final checkpoint not witnessed"),
                }
            }
        }
        Err(_) => tracing::info!("final witness round did not finish in time"),
    }
}

fn report(witness: &str, stored: bool) -> pb::WitnessReport {
    pb::WitnessReport { witness: witness.into(), stored, ..Default::default() }
}

fn judged(
    mut r: pb::WitnessReport,
    found: Result<(Witnessed, Result<(), Rollback>), WitnessError>,
) -> pb::WitnessReport {
    match found {
        Ok((w, verdict)) => {
            r.seq = w.point.seq;
            r.witness_time = w.witness_time;
            match verdict {
                Ok(()) => r.outcome = pb::WitnessOutcome::Consistent as i32,
                Err(rb) => {
                    r.outcome = pb::WitnessOutcome::Rollback as i32;
                    r.detail = describe(&r.witness, &w.point, &rb);
                    if r.stored {
                        r.detail.push_str(" [countersignature kept in this store]");
                    }
                }
            }
        }
        Err(e) => {
            r.outcome = pb::WitnessOutcome::Invalid as i32;
            r.detail = e.to_string();
        }
    }
    r
}

async fn consult_one(node: &Node, peer: &str, len: u64) -> pb::WitnessReport {
    let mut r = report(peer, false);
    let asked = match client(node, peer).await {
        Ok(mut c) => ask(&mut c, peer).await,
        Err(e) => Err(e),
    };
    match asked {
        Ok(Some(wc)) => judged(r, check(node, peer, &wc, len)),
        Ok(None) => {
            r.outcome = pb::WitnessOutcome::None as i32;
            r
        }
        Err(e) => {
            r.outcome = pb::WitnessOutcome::Unreachable as i32;
            r.detail = e.to_string();
            r
        }
    }
}

/// For `audit verify` over a chain of `len` verified entries: every pinned
/// peer's answer now (in parallel, each within [`ASK_TIMEOUT`]) and every
/// countersignature kept here, each compared with the chain.
pub async fn consult(node: &Node, len: u64) -> Result<Vec<pb::WitnessReport>, StoreError> {
    let st = node.db.store();
    let peers: Vec<String> = store::peers::all(st)?.into_iter().filter_map(|p| p.card.map(|c| c.node_id)).collect();
    let mut out = futures::future::join_all(peers.iter().map(|p| consult_one(node, p, len))).await;
    for (witness, wc) in store::witnessed::all_got(st)? {
        // A witness no longer pinned cannot be checked (its key is gone).
        if !peers.contains(&witness) {
            continue;
        }
        out.push(judged(report(&witness, true), check(node, &witness, &wc, len)));
    }
    out.sort_by(|a, b| (&a.witness, a.stored).cmp(&(&b.witness, b.stored)));
    Ok(out)
}
