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
                .map(|u| u.user.unwrap_or_default())
                .map_err(|e| StoreError::Corrupt(e.to_string()))
        })
        .collect()
}

pub fn put(tx: &mut Tx, user: &pb::User, token: &str) {
    let hash = token_hash(token);
    tx.batch.put(Tree::Tokens, hash.clone().into_bytes(), user.name.clone().into_bytes());
    let stored = StoredUser { user: Some(user.clone()), token_hash: hash };
    tx.batch.put(Tree::Users, user.name.clone().into_bytes(), stored.encode_to_vec());
}

pub fn delete(tx: &mut Tx, stored: &StoredUser) {
    if let Some(u) = &stored.user {
        tx.batch.delete(Tree::Users, u.name.clone().into_bytes());
    }
    tx.batch.delete(Tree::Tokens, stored.token_hash.clone().into_bytes());
}
