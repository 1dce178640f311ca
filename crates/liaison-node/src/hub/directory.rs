//! The member directory: the hub admits members, signs a versioned list of
//! their cards and pushes it; members pin the hub, then pin (and un-pin)
//! members from every newer directory the pinned hub key signed.

use crate::audit::Event;
use crate::convert::timestamp;
use crate::envelope::{self, payload};
use crate::exchange::{self, ExchangeError};
use crate::identity;
use crate::node::Node;
use crate::pb;
use crate::peer::{self, PeerError};
use crate::store::{self, StoreError};

fn dir_version(node: &Node) -> Result<u64, StoreError> {
    Ok(store::hubs::directory(node.db.store())?
        .and_then(|e| envelope::decode::<pb::MemberDirectory>(&e).ok())
        .map_or(0, |d| d.version))
}

pub fn current(node: &Node) -> Result<Option<pb::Envelope>, StoreError> {
    store::hubs::directory(node.db.store())
}

pub fn members(node: &Node) -> Result<Vec<pb::Peer>, StoreError> {
    Ok(store::peers::all(node.db.store())?.into_iter().filter(|p| p.source == "member").collect())
}

fn require_hub(node: &Node) -> Result<(), ExchangeError> {
    if node.config().role != crate::config::Role::Hub {
        return Err(ExchangeError::Refused("this node is not a hub (role = hub in node.toml)".into()));
    }
    Ok(())
}

/// Signs a new directory version and pushes it to every member.
async fn publish(node: &Node, actor: &str) -> Result<u64, ExchangeError> {
    let ms = members(node)?;
    let version = dir_version(node)? + 1;
    let dir = pb::MemberDirectory {
        hub_id: node.id().into(),
        version,
        issue_time: Some(timestamp(node.now())),
        members: ms.iter().filter_map(|p| p.card_envelope.clone()).collect(),
    };
    let env = envelope::seal(payload::MEMBER_DIRECTORY, &dir, node.id(), &node.identity.signing_key);
    node.db
        .write(|_, tx| {
            store::hubs::put_directory(tx, &env);
            tx.audit(Event::new(actor, "hub.directory").reason(format!("version {version}, {} members", ms.len())));
            Ok::<_, StoreError>(())
        })
        .await?;
    let pushes = ms.iter().filter_map(|p| p.card.as_ref().map(|c| c.node_id.clone())).map(|m| {
        let env = env.clone();
        async move {
            let r = async {
                let mut c = exchange::client(node, &m).await?;
                c.push_directory(pb::PushDirectoryRequest { directory: Some(env) })
                    .await
                    .map_err(|s| ExchangeError::from_status(&m, &s))?;
                Ok::<(), ExchangeError>(())
            }
            .await;
            if let Err(e) = r {
                tracing::warn!(member = %m, error = %e, "directory push failed; the member will pull it");
            }
        }
    });
    futures::future::join_all(pushes).await;
    Ok(version)
}

pub async fn admit(node: &Node, actor: &str, card: pb::Envelope) -> Result<u64, ExchangeError> {
    require_hub(node)?;
    peer::add(node, actor, card, "member").await.map_err(peer_err)?;
    publish(node, actor).await
}

pub async fn remove(node: &Node, actor: &str, id: &str) -> Result<u64, ExchangeError> {
    require_hub(node)?;
    if !members(node)?.iter().any(|p| p.card.as_ref().is_some_and(|c| c.node_id == id)) {
        return Err(ExchangeError::NotFound(format!("member {id}")));
    }
    peer::remove(node, actor, id).await.map_err(peer_err)?;
    publish(node, actor).await
}

fn peer_err(e: PeerError) -> ExchangeError {
    match e {
        PeerError::NotFound(x) => ExchangeError::NotFound(format!("peer {x}")),
        PeerError::Store(s) => ExchangeError::Store(s),
        other => ExchangeError::Refused(other.to_string()),
    }
}

pub fn joined_hubs(node: &Node) -> Result<Vec<String>, StoreError> {
    store::hubs::joined(node.db.store())
}

fn applied_version(node: &Node, hub: &str) -> Result<u64, StoreError> {
    store::hubs::applied_version(node.db.store(), hub)
}

/// A member applies a directory that `hub` signed: pins new members, un-pins
/// removed ones (only those it learned from this hub). Older versions are ignored.
pub async fn apply(
    node: &Node,
    hub: &str,
    env: &pb::Envelope,
) -> Result<(u64, Vec<String>, Vec<String>), ExchangeError> {
    if !joined_hubs(node)?.iter().any(|h| h == hub) {
        return Err(ExchangeError::Refused(format!("this node has not joined hub {hub}")));
    }
    let _one_at_a_time = node.directory_updates.lock().await;
    // Verify against the pinned hub key before reading anything.
    let key = exchange::key_of(node, hub)?;
    let dir: pb::MemberDirectory = envelope::open(env, payload::MEMBER_DIRECTORY, hub, &key)?;
    if dir.hub_id != hub {
        return Err(ExchangeError::Refused("directory names another hub".into()));
    }
    let have = applied_version(node, hub)?;
    if dir.version <= have {
        return Ok((have, vec![], vec![]));
    }
    let source = format!("hub:{hub}");
    let hub_actor = crate::refusal::peer(hub);
    let mut listed = Vec::new();
    let mut pinned = Vec::new();
    for card_env in &dir.members {
        let card = match identity::verify_card(card_env) {
            Ok(c) => c,
            Err(e) => {
                // Signed by the hub, so the hub answers for it.
                let detail = format!("directory version {}: entry refused: {e}", dir.version);
                node.refuse(&hub_actor, crate::refusal::Kind::Invalid, &detail);
                continue;
            }
        };
        if card.node_id == node.id() || card.node_id == hub {
            continue;
        }
        listed.push(card.node_id.clone());
        let existing = store::peers::get(node.db.store(), &card.node_id)?;
        // A peer pinned by hand stays as it is.
        if existing.as_ref().is_some_and(|p| p.source != source) {
            continue;
        }
        if existing.as_ref().and_then(|p| p.card_envelope.as_ref()) == Some(card_env) {
            continue;
        }
        match peer::add(node, &hub_actor, card_env.clone(), &source).await {
            Ok(_) => pinned.push(card.node_id),
            Err(PeerError::Store(e)) => {
                tracing::warn!(member = %card.node_id, error = %e, "directory entry not pinned")
            }
            Err(e) => node.refuse(
                &hub_actor,
                crate::refusal::Kind::Refused,
                &format!("directory version {}: {} not pinned: {e}", dir.version, card.node_id),
            ),
        }
    }
    let mut unpinned = Vec::new();
    for p in store::peers::all(node.db.store())? {
        let Some(id) = p.card.as_ref().map(|c| c.node_id.clone()) else { continue };
        if p.source == source && !listed.contains(&id) {
            peer::remove(node, &hub_actor, &id).await.map_err(peer_err)?;
            unpinned.push(id);
        }
    }
    let v = dir.version;
    node.db
        .write(|_, tx| {
            store::hubs::set_applied_version(tx, hub, v);
            tx.audit(Event::new(format!("peer:{hub}"), "hub.directory_applied").reason(format!(
                "version {v}: +{} -{}",
                pinned.len(),
                unpinned.len()
            )));
            Ok::<_, StoreError>(())
        })
        .await?;
    Ok((v, pinned, unpinned))
}

/// A member pins the hub and pulls its directory.
pub async fn join(node: &Node, actor: &str, hub_card: pb::Envelope) -> Result<(u64, Vec<String>), ExchangeError> {
    // Two hubs may each be a member of the other (a joint body admitted to
    // a regional directory it also hosts the region in): joining keeps the
    // hub a member here, or it could no longer search this node's directory.
    let id = identity::verify_card(&hub_card).map(|c| c.node_id).unwrap_or_default();
    let member = store::peers::get(node.db.store(), &id)?
        .is_some_and(|p| p.source == "member" && p.card_envelope.as_ref() == Some(&hub_card));
    let p = peer::add(node, actor, hub_card, if member { "member" } else { "hub" }).await.map_err(peer_err)?;
    let card = p.card.unwrap_or_default();
    if card.role != pb::NodeRole::Hub as i32 {
        return Err(ExchangeError::Refused(format!("{} is not a hub", card.node_id)));
    }
    node.db
        .write(|st, tx| {
            store::hubs::join(st, tx, &card.node_id)?;
            tx.audit(Event::new(actor, "hub.join").reason(card.node_id.clone()));
            Ok::<_, StoreError>(())
        })
        .await?;
    let (v, pinned, _) = refresh_one(node, &card.node_id).await?;
    Ok((v, pinned))
}

async fn refresh_one(node: &Node, hub: &str) -> Result<(u64, Vec<String>, Vec<String>), ExchangeError> {
    let mut c = exchange::client(node, hub).await?;
    let env = c
        .get_directory(pb::GetDirectoryRequest {})
        .await
        .map_err(|s| ExchangeError::from_status(hub, &s))?
        .into_inner()
        .directory
        .ok_or_else(|| ExchangeError::Refused("the hub has no directory yet".into()))?;
    apply(node, hub, &env).await
}

/// Pulls every joined hub's directory now.
pub async fn refresh(node: &Node) -> Result<(u64, Vec<String>, Vec<String>), ExchangeError> {
    let mut out = (0, vec![], vec![]);
    for hub in joined_hubs(node)? {
        let (v, p, u) = refresh_one(node, &hub).await?;
        out.0 = out.0.max(v);
        out.1.extend(p);
        out.2.extend(u);
    }
    Ok(out)
}
