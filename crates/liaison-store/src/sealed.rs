//! Encryption at rest: [`SealedStore`] wraps any [`Store`] and encrypts every
//! value it writes with XChaCha20-Poly1305 under a key kept outside the store
//! directory, so a copy of `store/` alone reveals no record, victim identity
//! or request text.
//!
//! Each value is stored as `0x01 ‖ nonce (24 random bytes) ‖ ciphertext ‖ tag`,
//! with the tree name and the entry's key as associated data: a value moved to
//! another key or tree no longer authenticates. Keys stay readable (they are
//! ids, sequence numbers and times), except where a key must hold a searchable
//! value: the identifier index asks [`Store::index_token`], which here is a
//! keyed hash, so an exact-match look-up still works without the identifier
//! itself on disk.
//!
//! The meta entry [`KEY_CHECK`] holds a known text sealed like any other
//! value; opening with another key fails on it before anything else is read.

use std::ops::Bound;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};

use super::{Batch, Entry, Store, StoreError, Tree};

/// Contexts for the keys derived from the store key (BLAKE3 `derive_key`):
/// one key per use, so the index hash never shares a key with the cipher.
const VALUE_CONTEXT: &str = "liaison 2026-11 store values v1";
const INDEX_CONTEXT: &str = "liaison 2026-11 store identifier index v1";
const ID_CONTEXT: &str = "liaison 2026-11 store key id v1";

const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const AAD_PREFIX: &[u8] = b"liaison store value v1\0";

/// Meta key of the key-check value. Written first in a new store; its
/// presence is also what marks a store as encrypted.
pub const KEY_CHECK: &[u8] = b"store/key-check";
const KEY_CHECK_TEXT: &[u8] = b"liaison store key check v1";

/// The 32-byte store key. Its `Debug` form shows only the key id.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreKey([u8; 32]);

impl std::fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoreKey({})", self.id())
    }
}

impl StoreKey {
    /// A fresh random key (from the operating system's generator via `rand`).
    pub fn generate() -> Self {
        Self(rand::random())
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// 32 bytes as hex (64 characters) or base64 (standard or URL-safe,
    /// padded or not); surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Option<Self> {
        use base64::Engine;
        let t = text.trim();
        let bytes = if t.len() == 64 {
            hex::decode(t).ok()?
        } else {
            let engines = [
                &base64::engine::general_purpose::STANDARD,
                &base64::engine::general_purpose::STANDARD_NO_PAD,
                &base64::engine::general_purpose::URL_SAFE,
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            ];
            engines.iter().find_map(|e| e.decode(t).ok())?
        };
        bytes.try_into().ok().map(Self)
    }

    /// The form written to key files.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// A short public name for the key (a hash of it), for messages and logs:
    /// it tells two keys apart without revealing either.
    pub fn id(&self) -> String {
        hex::encode(&blake3::derive_key(ID_CONTEXT, &self.0)[..6])
    }
}

/// Why a store does not open with a key.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("the key does not open this store: its key check does not authenticate")]
    WrongKey,
    #[error("the store holds unencrypted data (written before encryption at rest)")]
    Plaintext,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a store holds, as far as can be told without its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contents {
    /// Nothing at all: a new store.
    Empty,
    /// A key check: written by a [`SealedStore`].
    Sealed,
    /// Data but no key check: written before encryption at rest.
    Plaintext,
}

/// Looks at a raw store (no key needed).
pub fn contents(raw: &dyn Store) -> Result<Contents, StoreError> {
    if raw.get(Tree::Meta, KEY_CHECK)?.is_some() {
        return Ok(Contents::Sealed);
    }
    for t in Tree::ALL {
        if !raw.range(t, Bound::Unbounded, Bound::Unbounded, 1)?.is_empty() {
            return Ok(Contents::Plaintext);
        }
    }
    Ok(Contents::Empty)
}

/// A [`Store`] whose values are encrypted and authenticated, over any inner store.
pub struct SealedStore<S> {
    inner: S,
    cipher: XChaCha20Poly1305,
    index_key: [u8; 32],
}

impl<S: Store> SealedStore<S> {
    /// Opens `inner` with `key`: checks the key against the store's key
    /// check, or writes the key check into an empty store. A store with data
    /// but no key check is refused ([`SealError::Plaintext`]): encrypting it
    /// is `at_rest::open`'s job, which rewrites it into a new directory.
    pub fn new(inner: S, key: &StoreKey) -> Result<Self, SealError> {
        let s = Self {
            cipher: XChaCha20Poly1305::new(&Key::from(blake3::derive_key(VALUE_CONTEXT, &key.0))),
            index_key: blake3::derive_key(INDEX_CONTEXT, &key.0),
            inner,
        };
        match contents(&s.inner)? {
            Contents::Sealed => match s.get(Tree::Meta, KEY_CHECK) {
                Ok(Some(v)) if v == KEY_CHECK_TEXT => Ok(s),
                _ => Err(SealError::WrongKey),
            },
            Contents::Empty => {
                let mut b = Batch::default();
                b.put(Tree::Meta, KEY_CHECK.to_vec(), KEY_CHECK_TEXT.to_vec());
                s.apply(&b)?;
                Ok(s)
            }
            Contents::Plaintext => Err(SealError::Plaintext),
        }
    }

    /// The raw store underneath (ciphertext values, blinded index keys).
    pub fn inner(&self) -> &S {
        &self.inner
    }

    pub fn into_inner(self) -> S {
        self.inner
    }

    /// `batch` with every value sealed.
    fn sealed(&self, batch: &Batch) -> Result<Batch, StoreError> {
        let mut sealed = Batch { ops: Vec::with_capacity(batch.ops.len()) };
        for (t, k, v) in &batch.ops {
            let v = v.as_ref().map(|v| self.seal(*t, k, v)).transpose()?;
            sealed.ops.push((*t, k.clone(), v));
        }
        Ok(sealed)
    }

    fn seal(&self, tree: Tree, key: &[u8], value: &[u8]) -> Result<Vec<u8>, StoreError> {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let aad = aad(tree, key);
        let ct = self
            .cipher
            .encrypt(&XNonce::from(nonce), Payload { msg: value, aad: &aad })
            .map_err(|_| StoreError::Backend(format!("cannot encrypt {}", show(tree, key))))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        out.push(FORMAT_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    fn open(&self, tree: Tree, key: &[u8], stored: &[u8]) -> Result<Vec<u8>, StoreError> {
        if stored.len() < 1 + NONCE_LEN + TAG_LEN || stored[0] != FORMAT_V1 {
            return Err(StoreError::Corrupt(format!("{}: not an encrypted value", show(tree, key))));
        }
        let (nonce, ct) = stored[1..].split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] =
            nonce.try_into().map_err(|_| StoreError::Corrupt(format!("{}: short nonce", show(tree, key))))?;
        let aad = aad(tree, key);
        self.cipher.decrypt(&XNonce::from(nonce), Payload { msg: ct, aad: &aad }).map_err(|_| {
            StoreError::Corrupt(format!(
                "{}: the value does not authenticate (changed on disk, moved from another entry, or written under another store key)",
                show(tree, key)
            ))
        })
    }

    fn open_all(&self, tree: Tree, entries: Vec<Entry>) -> Result<Vec<Entry>, StoreError> {
        entries
            .into_iter()
            .map(|(k, v)| {
                let v = self.open(tree, &k, &v)?;
                Ok((k, v))
            })
            .collect()
    }
}

/// The associated data: tree name and key, so a value authenticates only
/// where it was written. Tree names hold no NUL, so the split is unambiguous.
fn aad(tree: Tree, key: &[u8]) -> Vec<u8> {
    let name = tree.name().as_bytes();
    let mut a = Vec::with_capacity(AAD_PREFIX.len() + name.len() + 1 + key.len());
    a.extend_from_slice(AAD_PREFIX);
    a.extend_from_slice(name);
    a.push(0);
    a.extend_from_slice(key);
    a
}

/// `tree/key` for messages: the key as text when it is printable, else hex.
fn show(tree: Tree, key: &[u8]) -> String {
    let printable = key.iter().all(|b| b.is_ascii_graphic() || *b == b' ');
    if printable {
        format!("{} entry {}", tree.name(), String::from_utf8_lossy(key))
    } else {
        format!("{} entry 0x{}", tree.name(), hex::encode(key))
    }
}

impl<S: Store> Store for SealedStore<S> {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(tree, key)?.map(|v| self.open(tree, key, &v)).transpose()
    }

    fn range(
        &self,
        tree: Tree,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let raw = self.inner.range(tree, start, end, limit)?;
        self.open_all(tree, raw)
    }

    fn range_rev(
        &self,
        tree: Tree,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let raw = self.inner.range_rev(tree, start, end, limit)?;
        self.open_all(tree, raw)
    }

    /// Seals every value, then hands the whole batch to the inner store in
    /// one atomic, flushed apply (durable before acknowledged, as before).
    fn apply(&self, batch: &Batch) -> Result<(), StoreError> {
        self.inner.apply(&self.sealed(batch)?)
    }

    fn apply_unflushed(&self, batch: &Batch) -> Result<(), StoreError> {
        self.inner.apply_unflushed(&self.sealed(batch)?)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush()
    }

    fn len(&self, tree: Tree) -> Result<usize, StoreError> {
        self.inner.len(tree)
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.inner.size_on_disk()
    }

    fn index_token(&self, value: &str) -> String {
        blake3::keyed_hash(&self.index_key, value.as_bytes()).to_hex().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{scan_prefix, SledStore};

    fn open(dir: &std::path::Path, key: &StoreKey) -> SealedStore<SledStore> {
        SealedStore::new(SledStore::open(dir).unwrap(), key).unwrap()
    }

    fn put(s: &dyn Store, tree: Tree, k: &[u8], v: &[u8]) {
        let mut b = Batch::default();
        b.put(tree, k.to_vec(), v.to_vec());
        s.apply(&b).unwrap();
    }

    #[test]
    fn values_round_trip_and_the_disk_holds_only_ciphertext() {
        let dir = tempfile::tempdir().unwrap();
        let key = StoreKey::generate();
        let s = open(dir.path(), &key);
        put(&s, Tree::Records, b"th-atpd/vr-1", b"Somchai Jaidee, passport AA1234567");
        put(&s, Tree::Records, b"th-atpd/vr-2", b"");
        assert_eq!(s.get(Tree::Records, b"th-atpd/vr-1").unwrap().unwrap(), b"Somchai Jaidee, passport AA1234567");
        assert_eq!(s.get(Tree::Records, b"th-atpd/vr-2").unwrap().unwrap(), b"");
        assert_eq!(s.get(Tree::Records, b"missing").unwrap(), None);
        let raw = s.inner().get(Tree::Records, b"th-atpd/vr-1").unwrap().unwrap();
        assert!(!raw.windows(7).any(|w| w == b"Somchai"), "plaintext in the raw value");
        // Same value, same key: a fresh nonce each time, so no equal ciphertexts.
        put(&s, Tree::Records, b"th-atpd/vr-3", b"Somchai Jaidee, passport AA1234567");
        assert_ne!(raw, s.inner().get(Tree::Records, b"th-atpd/vr-3").unwrap().unwrap());
        let all = scan_prefix(&s, Tree::Records, b"th-atpd/", None, 10).unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].1, b"Somchai Jaidee, passport AA1234567");
        let rev = s.range_rev(Tree::Records, Bound::Unbounded, Bound::Unbounded, 1).unwrap();
        assert_eq!(rev[0].0, b"th-atpd/vr-3");
        // Reopened with the same key: still readable.
        drop(s);
        let s = open(dir.path(), &key);
        assert_eq!(s.get(Tree::Records, b"th-atpd/vr-1").unwrap().unwrap(), b"Somchai Jaidee, passport AA1234567");
    }

    #[test]
    fn a_tampered_value_is_corrupt_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path(), &StoreKey::generate());
        put(&s, Tree::Audit, &7u64.to_be_bytes(), b"audit entry");
        let raw = s.inner().get(Tree::Audit, &7u64.to_be_bytes()).unwrap().unwrap();
        for i in [0, 1, 20, raw.len() / 2, raw.len() - 1] {
            let mut bad = raw.clone();
            bad[i] ^= 0x01;
            put(s.inner(), Tree::Audit, &7u64.to_be_bytes(), &bad);
            let e = s.get(Tree::Audit, &7u64.to_be_bytes()).unwrap_err();
            assert!(matches!(e, StoreError::Corrupt(_)), "byte {i}: {e:?}");
            assert!(e.to_string().contains("audit entry 0x0000000000000007"), "{e}");
        }
        for bad in [vec![], vec![FORMAT_V1], raw[..30].to_vec()] {
            put(s.inner(), Tree::Audit, &7u64.to_be_bytes(), &bad);
            let e = s.range(Tree::Audit, Bound::Unbounded, Bound::Unbounded, 10).unwrap_err();
            assert!(matches!(e, StoreError::Corrupt(_)), "{e:?}");
        }
    }

    #[test]
    fn a_value_moved_to_another_key_or_tree_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path(), &StoreKey::generate());
        put(&s, Tree::Records, b"th-atpd/en-1", b"withdrawn: false");
        put(&s, Tree::Records, b"th-atpd/en-2", b"withdrawn: true");
        let raw2 = s.inner().get(Tree::Records, b"th-atpd/en-2").unwrap().unwrap();
        // Swapping the withdrawn version over the live one is caught.
        put(s.inner(), Tree::Records, b"th-atpd/en-1", &raw2);
        let e = s.get(Tree::Records, b"th-atpd/en-1").unwrap_err();
        assert!(matches!(e, StoreError::Corrupt(ref m) if m.contains("records entry th-atpd/en-1")), "{e:?}");
        // So is the same key in another tree.
        put(s.inner(), Tree::Outbox, b"th-atpd/en-2", &raw2);
        assert!(matches!(s.get(Tree::Outbox, b"th-atpd/en-2"), Err(StoreError::Corrupt(_))));
        assert_eq!(s.get(Tree::Records, b"th-atpd/en-2").unwrap().unwrap(), b"withdrawn: true");
    }

    #[test]
    fn another_key_is_refused_before_anything_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let key = StoreKey::generate();
        let s = open(dir.path(), &key);
        put(&s, Tree::Records, b"a", b"b");
        drop(s);
        let other = StoreKey::generate();
        assert_ne!(key.id(), other.id());
        match SealedStore::new(SledStore::open(dir.path()).unwrap(), &other) {
            Err(SealError::WrongKey) => {}
            Err(e) => panic!("expected WrongKey, got {e:?}"),
            Ok(_) => panic!("opened with the wrong key"),
        }
        // The right key still opens it: the failed attempt changed nothing.
        let s = open(dir.path(), &key);
        assert_eq!(s.get(Tree::Records, b"a").unwrap().unwrap(), b"b");
    }

    #[test]
    fn a_plaintext_store_is_not_opened_as_if_encrypted() {
        let dir = tempfile::tempdir().unwrap();
        let raw = SledStore::open(dir.path()).unwrap();
        assert_eq!(contents(&raw).unwrap(), Contents::Empty);
        put(&raw, Tree::Users, b"admin", b"plain");
        assert_eq!(contents(&raw).unwrap(), Contents::Plaintext);
        assert!(matches!(SealedStore::new(raw, &StoreKey::generate()), Err(SealError::Plaintext)));
    }

    #[test]
    fn index_tokens_match_exactly_and_depend_on_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = StoreKey::generate();
        let s = open(dir.path(), &key);
        let t = s.index_token("passport:aa1234567");
        assert_eq!(t, s.index_token("passport:aa1234567"));
        assert_ne!(t, s.index_token("passport:aa1234568"));
        assert!(!t.contains("aa1234567"));
        let dir2 = tempfile::tempdir().unwrap();
        assert_ne!(t, open(dir2.path(), &StoreKey::generate()).index_token("passport:aa1234567"));
    }

    #[test]
    fn keys_parse_from_hex_and_base64_and_never_print() {
        use base64::Engine;
        let k = StoreKey::generate();
        assert_eq!(StoreKey::parse(&format!("  {}\n", k.to_hex())), Some(k.clone()));
        let b64 = base64::engine::general_purpose::STANDARD.encode(k.0);
        assert_eq!(StoreKey::parse(&b64), Some(k.clone()));
        assert_eq!(StoreKey::parse(b64.trim_end_matches('=')), Some(k.clone()));
        assert_eq!(StoreKey::parse(&base64::engine::general_purpose::URL_SAFE.encode(k.0)), Some(k.clone()));
        for bad in [
            "",
            "abc",
            &k.to_hex()[..62],
            &"zz".repeat(32),
            &base64::engine::general_purpose::STANDARD.encode([1u8; 31]),
        ] {
            assert_eq!(StoreKey::parse(bad), None, "{bad:?}");
        }
        assert!(!format!("{k:?}").contains(&k.to_hex()));
        assert_eq!(format!("{k:?}"), format!("StoreKey({})", k.id()));
    }
}
