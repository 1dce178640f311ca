//! Local users. Only a SHA-256 hash of each bearer token is stored.

use prost::Message;
use sha2::{Digest, Sha256};

use super::{Store, StoreError, Tree, Tx};
use crate::pb;

#[derive(Clone, PartialEq, Message)]
pub struct StoredUser {
    #[prost(message, optional, tag = "1")]
    pub user: Option<pb::User>,
    #[prost(string, tag = "2")]
    pub token_hash: String,
    /// The console password as an argon2id PHC string; empty: none set.
    #[prost(string, tag = "3")]
    pub password_hash: String,
    /// SHA-256 of the one-time sign-in link's token; empty: none issued.
    #[prost(string, tag = "4")]
    pub link_hash: String,
    /// Unix seconds after which the link no longer works.
    #[prost(int64, tag = "5")]
    pub link_expires: i64,
}

impl StoredUser {
    /// The user as callers see them: whether a console password is set, never its hash.
    pub fn view(self) -> Option<pb::User> {
        let mut user = self.user?;
        user.has_password = !self.password_hash.is_empty();
        Some(user)
    }
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub fn get(store: &dyn Store, name: &str) -> Result<Option<StoredUser>, StoreError> {
    match store.get(Tree::Users, name.as_bytes())? {
        Some(v) => StoredUser::decode(v.as_slice()).map(Some).map_err(|e| StoreError::Corrupt(e.to_string())),
        None => Ok(None),
    }
}

/// The user a bearer token belongs to.
pub fn by_token(store: &dyn Store, token: &str) -> Result<Option<pb::User>, StoreError> {
    let Some(name) = store.get(Tree::Tokens, token_hash(token).as_bytes())? else {
        return Ok(None);
    };
    Ok(get(store, &String::from_utf8_lossy(&name))?.and_then(|u| u.user))
}

pub fn all(store: &dyn Store) -> Result<Vec<pb::User>, StoreError> {
    store
        .range(Tree::Users, std::ops::Bound::Unbounded, std::ops::Bound::Unbounded, usize::MAX)?
        .into_iter()
        .map(|(_, v)| {
            StoredUser::decode(v.as_slice())
                .map(|u| u.view().unwrap_or_default())
                .map_err(|e| StoreError::Corrupt(e.to_string()))
        })
        .collect()
}

pub fn put(tx: &mut Tx, user: &pb::User, token: &str) {
    let hash = token_hash(token);
    tx.batch.put(Tree::Tokens, hash.clone().into_bytes(), user.name.clone().into_bytes());
    let stored = StoredUser { user: Some(user.clone()), token_hash: hash, ..Default::default() };
    tx.batch.put(Tree::Users, user.name.clone().into_bytes(), stored.encode_to_vec());
}

/// Rewrites a user's stored entry (password, link, preferences), keeping
/// their token; the caller read `stored` in the same write.
pub fn replace(tx: &mut Tx, stored: &StoredUser) {
    if let Some(u) = &stored.user {
        tx.batch.put(Tree::Users, u.name.clone().into_bytes(), stored.encode_to_vec());
    }
}

/// The user with the link token `token`, if any (a scan: links are rare and
/// redeemed once).
pub fn by_link(store: &dyn Store, token: &str) -> Result<Option<StoredUser>, StoreError> {
    let hash = token_hash(token);
    for (_, v) in store.range(Tree::Users, std::ops::Bound::Unbounded, std::ops::Bound::Unbounded, usize::MAX)? {
        let u = StoredUser::decode(v.as_slice()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if !u.link_hash.is_empty() && u.link_hash == hash {
            return Ok(Some(u));
        }
    }
    Ok(None)
}

pub fn delete(tx: &mut Tx, stored: &StoredUser) {
    if let Some(u) = &stored.user {
        tx.batch.delete(Tree::Users, u.name.clone().into_bytes());
    }
    tx.batch.delete(Tree::Tokens, stored.token_hash.clone().into_bytes());
}
