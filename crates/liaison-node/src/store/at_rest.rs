//! Opening a node's store with its key: where the key comes from
//! (`[storage]` in `node.toml`: a key file or an environment variable), the
//! key check, and the one-time encryption of a store written before
//! encryption at rest existed.
//!
//! That encryption never rewrites values in place: sled is log-structured, so
//! old plaintext would linger in its files. It copies the store, sealed, into
//! `store.encrypting/`, renames `store/` to `store.plaintext/` and the copy to
//! `store/`, then deletes `store.plaintext/`. Each step leaves a state the
//! next start finishes ([`recover`]): an unfinished copy is discarded and
//! redone, a finished one is put in place.

use std::fs;
use std::ops::Bound;
use std::path::{Path, PathBuf};

use prost::Message;

use super::sealed::{self, Contents, SealError, SealedStore, StoreKey};
use super::{records, Batch, SledStore, Store, StoreError, Tree};
use crate::config::{self, ConfigError, Layout, Storage};

#[derive(Debug, thiserror::Error)]
pub enum AtRestError {
    #[error(
        "node.toml has no [storage] section, so the store at {store} would stay unencrypted: run `liaison --dir {dir} store new-key` (writes a key file and the [storage] section), then start the node again: it encrypts the existing store on that start"
    )]
    NotConfigured { store: PathBuf, dir: PathBuf },
    #[error(
        "the store at {store} is encrypted, but node.toml has no [storage] section naming its key (key_file or key_env): put the section and the key back (docs/OPERATIONS.md, \"The store key\")"
    )]
    KeyNotConfigured { store: PathBuf },
    #[error(
        "store key file {path}: {source}. The store cannot be read without its key: restore the key file from its backup, or correct [storage] key_file in node.toml"
    )]
    KeyFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "store key: the environment variable {name} (node.toml [storage] key_env) is not set or not valid text; set it to the store key (hex or base64 of 32 bytes)"
    )]
    KeyEnvUnset { name: String },
    #[error("store key from {from}: not 32 bytes in hex (64 characters) or base64")]
    KeyMalformed { from: String },
    #[error(
        "wrong store key: the key from {from} (key id {id}) does not open the store at {store}, which was encrypted with another key. Use the key this store was created with (a restored store needs the key that was in use when it was backed up)"
    )]
    WrongKey { from: String, id: String, store: PathBuf },
    #[error(
        "node.toml already names a store key ([storage]); a new key cannot open the existing store, so none was made"
    )]
    AlreadyConfigured,
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A store key and where it came from ("key file /var/lib/liaison/store.key").
#[derive(Debug)]
pub struct LoadedKey {
    pub key: StoreKey,
    pub from: String,
}

/// Reads the key `[storage]` names.
pub fn load_key(layout: &Layout, storage: &Storage) -> Result<LoadedKey, AtRestError> {
    if let Some(path) = storage.key_path(layout) {
        let text = fs::read_to_string(&path).map_err(|source| AtRestError::KeyFile { path: path.clone(), source })?;
        warn_if_shared(&path);
        let from = format!("key file {}", path.display());
        let key = StoreKey::parse(&text).ok_or_else(|| AtRestError::KeyMalformed { from: from.clone() })?;
        return Ok(LoadedKey { key, from });
    }
    let name = storage.key_env.clone().unwrap_or_default();
    let value = std::env::var(&name).map_err(|_| AtRestError::KeyEnvUnset { name: name.clone() })?;
    let from = format!("environment variable {name}");
    let key = StoreKey::parse(&value).ok_or_else(|| AtRestError::KeyMalformed { from: from.clone() })?;
    Ok(LoadedKey { key, from })
}

/// A key file others can read is a key others may have copied: say so
/// (not refused, because some secret mounts are group-readable by design).
fn warn_if_shared(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = fs::metadata(path) {
            let mode = m.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "store key file is readable by others; chmod 600 it");
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// Opens the node's store with the key `storage` names (see the module docs).
pub fn open(layout: &Layout, storage: Option<&Storage>) -> Result<SealedStore<SledStore>, AtRestError> {
    let path = layout.store();
    let Some(storage) = storage else {
        recover(&path)?;
        let encrypted = path.exists() && sealed::contents(&SledStore::open(&path)?)? == Contents::Sealed;
        return Err(if encrypted {
            AtRestError::KeyNotConfigured { store: path }
        } else {
            AtRestError::NotConfigured { store: path, dir: layout.dir.clone() }
        });
    };
    let loaded = load_key(layout, storage)?;
    open_with_key_cache(&path, &loaded.key, storage.cache_bytes().unwrap_or(crate::store::DEFAULT_CACHE_BYTES)).map_err(
        |e| match e {
            SealError::WrongKey => {
                AtRestError::WrongKey { from: loaded.from, id: loaded.key.id(), store: path.clone() }
            }
            SealError::Store(e) => AtRestError::Store(e),
            // open_with_key encrypts a plaintext store before opening it.
            SealError::Plaintext => AtRestError::Store(StoreError::Backend("store still unencrypted".into())),
        },
    )
}

/// Opens the store at `path` with `key`: creates it (writing the key check),
/// checks the key, or first encrypts a store that holds unencrypted data.
pub fn open_with_key(path: &Path, key: &StoreKey) -> Result<SealedStore<SledStore>, SealError> {
    open_with_key_cache(path, key, crate::store::DEFAULT_CACHE_BYTES)
}

/// [`open_with_key`] with a page cache of `cache_bytes`.
pub fn open_with_key_cache(path: &Path, key: &StoreKey, cache_bytes: u64) -> Result<SealedStore<SledStore>, SealError> {
    recover(path)?;
    let raw = SledStore::open_with_cache(path, cache_bytes)?;
    if sealed::contents(&raw)? == Contents::Plaintext {
        encrypt(raw, path, key)?;
        return SealedStore::new(SledStore::open_with_cache(path, cache_bytes)?, key);
    }
    SealedStore::new(raw, key)
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "store".into());
    name.push(".");
    name.push(suffix);
    path.with_file_name(name)
}

fn io(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Backend(format!("{}: {e}", path.display()))
}

/// Makes renames in `path`'s directory durable (fsync of the directory,
/// which only Unix offers as a file operation).
fn sync_parent(path: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        fs::File::open(parent).and_then(|d| d.sync_all()).map_err(|e| io(parent, e))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Finishes or discards what an interrupted encryption left behind.
pub fn recover(path: &Path) -> Result<(), StoreError> {
    let copy = sibling(path, "encrypting");
    let old = sibling(path, "plaintext");
    if !path.exists() && old.exists() {
        // Stopped between the two renames: the copy was complete (the first
        // rename happens only after it is flushed), so it takes the place.
        let from = if copy.exists() { &copy } else { &old };
        fs::rename(from, path).map_err(|e| io(from, e))?;
        sync_parent(path)?;
    }
    if copy.exists() {
        // An unfinished copy: the original is still in place and is copied again.
        fs::remove_dir_all(&copy).map_err(|e| io(&copy, e))?;
    }
    if old.exists() {
        fs::remove_dir_all(&old).map_err(|e| io(&old, e))?;
        sync_parent(path)?;
    }
    Ok(())
}

const CHUNK: usize = 512;

/// Encrypts the unencrypted store `raw` (open at `path`) into a new store
/// and puts it in place of the old one, which is then deleted.
fn encrypt(raw: SledStore, path: &Path, key: &StoreKey) -> Result<(), SealError> {
    let copy = sibling(path, "encrypting");
    let old = sibling(path, "plaintext");
    tracing::info!(store = %path.display(), "encrypting the store (written before encryption at rest)");
    let target = SealedStore::new(SledStore::open(&copy)?, key)?;
    let mut entries = 0usize;
    for tree in Tree::ALL {
        // The identifier index is keyed by the identifiers themselves: it is
        // rebuilt from the records below, keyed by their hashes.
        if tree != Tree::Identifiers {
            entries += copy_tree(&raw, &target, tree)?;
        }
    }
    entries += index_identifiers(&target)?;
    // Both closed before the renames (sled flushes and unlocks on drop).
    drop(target);
    drop(raw);
    fs::rename(path, &old).map_err(|e| io(path, e))?;
    sync_parent(path)?;
    fs::rename(&copy, path).map_err(|e| io(&copy, e))?;
    sync_parent(path)?;
    fs::remove_dir_all(&old).map_err(|e| io(&old, e))?;
    sync_parent(path)?;
    tracing::info!(store = %path.display(), entries, "store encrypted; the unencrypted copy is deleted");
    Ok(())
}

/// Copies one tree in flushed chunks; returns the number of entries.
fn copy_tree(from: &dyn Store, to: &dyn Store, tree: Tree) -> Result<usize, StoreError> {
    let mut start = Bound::Unbounded;
    let mut n = 0;
    loop {
        let chunk = from.range(tree, start, Bound::Unbounded, CHUNK)?;
        let Some((last, _)) = chunk.last() else { return Ok(n) };
        start = Bound::Excluded(last.clone());
        let mut b = Batch::default();
        for (k, v) in &chunk {
            b.put(tree, k.clone(), v.clone());
        }
        to.apply(&b)?;
        n += chunk.len();
        if chunk.len() < CHUNK {
            return Ok(n);
        }
    }
}

/// Writes the identifier index of every record in `store`, keyed as `store`
/// keys it; returns the number of index entries.
fn index_identifiers(store: &dyn Store) -> Result<usize, StoreError> {
    let mut start = Bound::Unbounded;
    let mut n = 0;
    loop {
        let chunk = store.range(Tree::Records, start, Bound::Unbounded, CHUNK)?;
        let Some((last, _)) = chunk.last() else { return Ok(n) };
        start = Bound::Excluded(last.clone());
        let mut b = Batch::default();
        for (k, v) in &chunk {
            let key = std::str::from_utf8(k).map_err(|_| StoreError::Corrupt("record key is not UTF-8".into()))?;
            let stored = records::StoredRecord::decode(v.as_slice())
                .map_err(|e| StoreError::Corrupt(format!("record {key}: {e}")))?;
            for entry in records::index_entries(store, key, &stored.record()?) {
                b.put(Tree::Identifiers, entry, Vec::new());
                n += 1;
            }
        }
        store.apply(&b)?;
        if chunk.len() < CHUNK {
            return Ok(n);
        }
    }
}

/// Writes a fresh key to `path` (owner-only, never overwriting a file).
pub fn write_key_file(path: &Path) -> Result<StoreKey, AtRestError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty() && !p.exists()) {
        config::create_private_dir(parent)?;
    }
    let key = StoreKey::generate();
    config::write_private(path, format!("{}\n", key.to_hex()).as_bytes())?;
    Ok(key)
}

/// `liaison store new-key`: a key for a node whose `node.toml` names none (a
/// node created before encryption at rest). Writes a fresh key file (for
/// `Storage::key_file`) or returns a fresh key for the caller to print (for
/// `Storage::key_env`), then appends the `[storage]` section to `node.toml`,
/// keeping the rest of the file (and its comments) as it is.
pub fn new_key(layout: &Layout, storage: &Storage) -> Result<StoreKey, AtRestError> {
    let cfg = config::NodeConfig::load(layout)?;
    if cfg.storage.is_some() {
        return Err(AtRestError::AlreadyConfigured);
    }
    // Checks the section before anything is written.
    config::NodeConfig { storage: Some(storage.clone()), ..cfg }.validate()?;
    let key = match storage.key_path(layout) {
        Some(path) => write_key_file(&path)?,
        None => StoreKey::generate(),
    };
    #[derive(serde::Serialize)]
    struct Section<'a> {
        storage: &'a Storage,
    }
    let section = toml::to_string(&Section { storage })
        .map_err(|e| ConfigError::Invalid { field: "storage", reason: e.to_string() })?;
    let path = layout.config();
    let mut text = fs::read_to_string(&path).map_err(|e| ConfigError::io(&path, e))?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push('\n');
    text.push_str(&section);
    config::replace_private(&path, text.as_bytes())?;
    // What was written must load as before, with the key.
    config::NodeConfig::load(layout)?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;
    use crate::store::{records, Db};

    fn contains(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
        let mut hits = Vec::new();
        let mut todo = vec![dir.to_path_buf()];
        while let Some(d) = todo.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    todo.push(p);
                } else if fs::read(&p).unwrap().windows(needle.len()).any(|w| w == needle) {
                    hits.push(p);
                }
            }
        }
        hits
    }

    /// A store as a node wrote it before encryption at rest: unencrypted,
    /// identifiers in the index keys. Returns the records' keys.
    fn plaintext_store(path: &Path) -> (String, String) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let signing = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let db = Db::new(
            Arc::new(SledStore::open(path).unwrap()),
            Arc::new(ManualClock::new(time::OffsetDateTime::now_utc())),
            None,
        )
        .unwrap();
        let signer = records::Signer { node_id: "th-atpd", key: &signing, actor: "user:admin".into() };
        let now = time::OffsetDateTime::now_utc();
        rt.block_on(async {
            let e = records::create(&db, &signer, crate::record::examples::entity(), now).await.unwrap();
            let v = records::create(&db, &signer, crate::record::examples::victim_referral(), now).await.unwrap();
            (records::key("th-atpd", &e.id), records::key("th-atpd", &v.id))
        })
    }

    #[test]
    fn a_plaintext_store_is_encrypted_on_first_open_and_still_serves() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("store");
        let (entity, victim) = plaintext_store(&path);
        assert!(!contains(&path, b"Chann Sreymom").is_empty(), "the test store starts unencrypted");
        assert!(!contains(&path, b"passport:N0123456").is_empty());

        let key = StoreKey::generate();
        let s = open_with_key(&path, &key).unwrap();
        let rec = records::get(&s, &victim).unwrap().unwrap().record().unwrap();
        assert_eq!(rec.id, "vr-2026-0042");
        assert_eq!(records::lookup_identifier(&s, "passport:N0123456").unwrap(), vec![entity.clone()]);
        assert_eq!(records::lookup_identifier(&s, "phone:+85512345678").unwrap(), vec![entity]);
        assert!(records::lookup_identifier(&s, "passport:N0123457").unwrap().is_empty());
        drop(s);

        for needle in [&b"Chann Sreymom"[..], b"N0123456", b"+85512345678", b"Sok Dara"] {
            assert_eq!(contains(root.path(), needle), Vec::<PathBuf>::new(), "{}", String::from_utf8_lossy(needle));
        }
        assert!(!sibling(&path, "plaintext").exists() && !sibling(&path, "encrypting").exists());
        // The next open just checks the key.
        let s = open_with_key(&path, &key).unwrap();
        assert_eq!(s.len(Tree::Records).unwrap(), 2);
        drop(s);
        assert!(matches!(open_with_key(&path, &StoreKey::generate()), Err(SealError::WrongKey)));
    }

    #[test]
    fn an_interrupted_encryption_is_redone_or_finished_on_the_next_open() {
        let key = StoreKey::generate();

        // Stopped during the copy: a partial copy next to the original.
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("store");
        let (_, victim) = plaintext_store(&path);
        let partial = sibling(&path, "encrypting");
        drop(SealedStore::new(SledStore::open(&partial).unwrap(), &key).unwrap());
        let s = open_with_key(&path, &key).unwrap();
        assert!(records::get(&s, &victim).unwrap().is_some());
        assert!(!partial.exists());
        drop(s);

        // Stopped between the two renames: the finished copy is put in place.
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("store");
        let (entity, victim) = plaintext_store(&path);
        drop(open_with_key(&path, &key).unwrap());
        fs::rename(&path, sibling(&path, "encrypting")).unwrap();
        plaintext_store(&sibling(&path, "plaintext"));
        let s = open_with_key(&path, &key).unwrap();
        assert!(records::get(&s, &victim).unwrap().is_some());
        assert_eq!(records::lookup_identifier(&s, "passport:N0123456").unwrap(), vec![entity]);
        drop(s);
        assert_eq!(contains(root.path(), b"Chann Sreymom"), Vec::<PathBuf>::new());

        // Stopped before deleting the unencrypted original.
        plaintext_store(&sibling(&path, "plaintext"));
        drop(open_with_key(&path, &key).unwrap());
        assert_eq!(contains(root.path(), b"Chann Sreymom"), Vec::<PathBuf>::new());
    }

    #[test]
    fn keys_come_from_a_file_or_the_environment_and_problems_are_named() {
        let root = tempfile::tempdir().unwrap();
        let layout = Layout::new(root.path());
        let e = load_key(&layout, &Storage::key_file("store.key")).unwrap_err();
        assert!(matches!(e, AtRestError::KeyFile { .. }), "{e:?}");
        assert!(e.to_string().contains("store.key"), "{e}");
        let key = write_key_file(&root.path().join("keys/store.key")).unwrap();
        let loaded = load_key(&layout, &Storage::key_file("keys/store.key")).unwrap();
        assert_eq!(loaded.key, key);
        assert!(write_key_file(&root.path().join("keys/store.key")).is_err(), "never overwrites a key");
        fs::write(root.path().join("bad.key"), "not a key").unwrap();
        let e = load_key(&layout, &Storage::key_file("bad.key")).unwrap_err();
        assert!(matches!(e, AtRestError::KeyMalformed { .. }), "{e:?}");
        let e = load_key(&layout, &Storage::key_env("LIAISON_TEST_UNSET_STORE_KEY_VARIABLE")).unwrap_err();
        assert!(e.to_string().contains("LIAISON_TEST_UNSET_STORE_KEY_VARIABLE"), "{e}");
    }
}
