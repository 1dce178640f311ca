//! What hubs and their members keep in the meta tree:
//! - `hub/directory`: the member directory a hub signed (at a hub);
//! - `hub/joined/<hub>`: hubs this member joined, with the directory
//!   version last applied from each;
//! - `route/<peer>`: the hub to reach a peer through;
//! - `relay-usage/<sender>`: messages and bytes a sender has waiting at the hub;
//! - `reqmeta/<request id>` and `reqmeta-count/<member>`: request metadata
//!   members report to the hub, and how many each has on record.

use prost::Message;

use crate::pb;
use crate::{Store, StoreError, Tree, Tx};

const DIRECTORY: &[u8] = b"hub/directory";
const JOINED: &str = "hub/joined/";
const METADATA: &str = "reqmeta/";

/// The member directory this hub signed last, if any.
pub fn directory(st: &dyn Store) -> Result<Option<pb::Envelope>, StoreError> {
    Ok(st.get(Tree::Meta, DIRECTORY)?.and_then(|v| pb::Envelope::decode(v.as_slice()).ok()))
}

/// Keeps the newly signed directory, in `tx`.
pub fn put_directory(tx: &mut Tx, signed: &pb::Envelope) {
    tx.batch.put(Tree::Meta, DIRECTORY.to_vec(), signed.encode_to_vec());
}

/// The hubs this member joined.
pub fn joined(st: &dyn Store) -> Result<Vec<String>, StoreError> {
    Ok(crate::scan_prefix(st, Tree::Meta, JOINED.as_bytes(), None, usize::MAX)?
        .into_iter()
        .map(|(k, _)| String::from_utf8_lossy(k.get(JOINED.len()..).unwrap_or_default()).into_owned())
        .collect())
}

/// The directory version last applied from `hub` (0 if none, or not joined).
pub fn applied_version(st: &dyn Store, hub: &str) -> Result<u64, StoreError> {
    crate::meta_u64(st, format!("{JOINED}{hub}").as_bytes())
}

/// Records, in `tx`, that `hub`'s directory `version` was applied (joining it if new).
pub fn set_applied_version(tx: &mut Tx, hub: &str, version: u64) {
    tx.batch.put(Tree::Meta, format!("{JOINED}{hub}").into_bytes(), version.to_be_bytes().to_vec());
}

/// Joins `hub`, in `tx`, keeping the version already applied if joined before.
pub fn join(st: &dyn Store, tx: &mut Tx, hub: &str) -> Result<(), StoreError> {
    if st.get(Tree::Meta, format!("{JOINED}{hub}").as_bytes())?.is_none() {
        set_applied_version(tx, hub, 0);
    }
    Ok(())
}

fn route_key(peer: &str) -> Vec<u8> {
    format!("route/{peer}").into_bytes()
}

/// The hub to reach `peer` through, if a route is set.
pub fn route(st: &dyn Store, peer: &str) -> Result<Option<String>, StoreError> {
    Ok(st.get(Tree::Meta, &route_key(peer))?.map(|v| String::from_utf8_lossy(&v).into_owned()))
}

/// Sets (or, with `None`, clears) the route to `peer`, in `tx`.
pub fn set_route(tx: &mut Tx, peer: &str, via: Option<&str>) {
    match via {
        Some(hub) => {
            tx.batch.put(Tree::Meta, route_key(peer), hub.as_bytes().to_vec());
        }
        None => {
            tx.batch.delete(Tree::Meta, route_key(peer));
        }
    }
}

/// What one sender has waiting at the hub.
#[derive(Clone, Copy, PartialEq, Eq, Message)]
pub struct Usage {
    #[prost(uint64, tag = "1")]
    pub messages: u64,
    #[prost(uint64, tag = "2")]
    pub bytes: u64,
}

fn usage_key(sender: &str) -> Vec<u8> {
    format!("relay-usage/{sender}").into_bytes()
}

/// What `sender` has waiting (nothing if no entry).
pub fn usage(st: &dyn Store, sender: &str) -> Result<Usage, StoreError> {
    Ok(st.get(Tree::Meta, &usage_key(sender))?.and_then(|v| Usage::decode(v.as_slice()).ok()).unwrap_or_default())
}

/// Keeps `sender`'s usage, in `tx` (dropping the entry when nothing waits).
pub fn put_usage(tx: &mut Tx, sender: &str, u: Usage) {
    if u.messages == 0 {
        tx.batch.delete(Tree::Meta, usage_key(sender));
    } else {
        tx.batch.put(Tree::Meta, usage_key(sender), u.encode_to_vec());
    }
}

fn metadata_key(request_id: &str) -> Vec<u8> {
    format!("{METADATA}{request_id}").into_bytes()
}

fn metadata_count_key(member: &str) -> Vec<u8> {
    format!("reqmeta-count/{member}").into_bytes()
}

/// The metadata reported for `request_id`, if any.
pub fn metadata(st: &dyn Store, request_id: &str) -> Result<Option<pb::RequestMetadata>, StoreError> {
    Ok(st.get(Tree::Meta, &metadata_key(request_id))?.and_then(|v| pb::RequestMetadata::decode(v.as_slice()).ok()))
}

/// Keeps `m` under its request id, in `tx`.
pub fn put_metadata(tx: &mut Tx, m: &pb::RequestMetadata) {
    tx.batch.put(Tree::Meta, metadata_key(&m.request_id), m.encode_to_vec());
}

/// Drops the metadata of `request_id`, in `tx`.
pub fn delete_metadata(tx: &mut Tx, request_id: &str) {
    tx.batch.delete(Tree::Meta, metadata_key(request_id));
}

/// At most `limit` metadata entries, by request id; entries that do not
/// decode come back as `None` with their id (the sweep ends them too).
pub fn all_metadata(st: &dyn Store, limit: usize) -> Result<Vec<(String, Option<pb::RequestMetadata>)>, StoreError> {
    Ok(crate::scan_prefix(st, Tree::Meta, METADATA.as_bytes(), None, limit)?
        .into_iter()
        .map(|(k, v)| {
            let id = String::from_utf8_lossy(k.get(METADATA.len()..).unwrap_or_default()).into_owned();
            (id, pb::RequestMetadata::decode(v.as_slice()).ok())
        })
        .collect())
}

/// Requests on record for `member`.
pub fn metadata_count(st: &dyn Store, member: &str) -> Result<u64, StoreError> {
    crate::meta_u64(st, &metadata_count_key(member))
}

/// Sets `member`'s count, in `tx`.
pub fn set_metadata_count(tx: &mut Tx, member: &str, n: u64) {
    tx.batch.put(Tree::Meta, metadata_count_key(member), n.to_be_bytes().to_vec());
}
