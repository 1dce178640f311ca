//! Record storage layout: records (own and received) keyed by
//! `originator/id`, each stored as the originator's signed envelope plus
//! provenance; an index of normalised entity identifiers; and a change-log
//! entry for every write.

use prost::Message;
use time::OffsetDateTime;

use super::{scan_prefix, Db, Store, StoreError, Tree, Tx};
pub use crate::catalogue::Filter;
use crate::catalogue::{Entry, Sink};
use crate::convert::timestamp;
use crate::envelope::{self, payload};
use crate::pb;
use crate::record::{self, FieldError};
use liaison_core::audit::Event;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("record {0} not found")]
    NotFound(String),
    #[error("record {0} already exists")]
    AlreadyExists(String),
    #[error("record {key} is at version {actual}, not the expected version {expected}")]
    StaleVersion { key: String, expected: u64, actual: u64 },
    #[error("record {0} was received from another node and is read-only here")]
    ReadOnly(String),
    #[error("record {0} is withdrawn")]
    Withdrawn(String),
    #[error("record.body: cannot change kind from {from} to {to}")]
    KindChange { from: String, to: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What is stored per record.
#[derive(Clone, PartialEq, Message)]
pub struct StoredRecord {
    /// The originator's envelope (payload type RECORD) holding the encoded record.
    #[prost(message, optional, tag = "1")]
    pub envelope: Option<pb::Envelope>,
    #[prost(message, optional, tag = "2")]
    pub provenance: Option<pb::Provenance>,
    /// The local integrator's reference: beside the envelope, never in it,
    /// so it is never signed into what another node receives.
    #[prost(string, tag = "3")]
    pub external_reference: String,
}

impl StoredRecord {
    /// The record inside, as signed. The envelope was verified (or produced)
    /// before storing. This is what may be sent: it never carries the
    /// local `external_reference`.
    pub fn record(&self) -> Result<pb::Record, StoreError> {
        let env = self.envelope.as_ref().ok_or_else(|| StoreError::Corrupt("record without envelope".into()))?;
        envelope::decode(env).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    /// The record as this node's own users see it: with this node's
    /// `external_reference` (whatever a sender put in that field is not shown).
    pub fn local(&self) -> Result<pb::Record, StoreError> {
        let mut rec = self.record()?;
        rec.external_reference.clone_from(&self.external_reference);
        Ok(rec)
    }

    /// One of this node's own records, sealed without its local reference.
    fn own(rec: &pb::Record, signer: &Signer<'_>) -> StoredRecord {
        let signed = pb::Record { external_reference: String::new(), ..rec.clone() };
        StoredRecord {
            envelope: Some(envelope::seal(payload::RECORD, &signed, signer.node_id, signer.key)),
            provenance: None,
            external_reference: rec.external_reference.clone(),
        }
    }
}

pub fn key(originator: &str, id: &str) -> String {
    format!("{originator}/{id}")
}

/// Resolves an API-facing id: "id" means one of ours, "originator/id" any record.
pub fn resolve_key(local: &str, id: &str) -> String {
    if id.contains('/') {
        id.to_string()
    } else {
        key(local, id)
    }
}

pub fn get(store: &dyn Store, key: &str) -> Result<Option<StoredRecord>, StoreError> {
    match store.get(Tree::Records, key.as_bytes())? {
        Some(v) => StoredRecord::decode(v.as_slice()).map(Some).map_err(|e| StoreError::Corrupt(e.to_string())),
        None => Ok(None),
    }
}

/// An identifier-index key: the identifier as the store indexes it (a keyed
/// hash in an encrypted store, never the identifier itself), NUL, record key.
fn identifier_entry(store: &dyn Store, ident: &str, key: &str) -> Vec<u8> {
    let mut k = identifier_prefix(store, ident);
    k.extend_from_slice(key.as_bytes());
    k
}

fn identifier_prefix(store: &dyn Store, ident: &str) -> Vec<u8> {
    let mut k = store.index_token(ident).into_bytes();
    k.push(0);
    k
}

/// The identifier-index keys of `rec` stored under `key` (none once withdrawn:
/// withdrawn records no longer answer identifier look-ups).
pub fn index_entries(store: &dyn Store, key: &str, rec: &pb::Record) -> Vec<Vec<u8>> {
    if rec.withdrawn {
        return Vec::new();
    }
    record::identifier_keys(rec).iter().map(|ident| identifier_entry(store, ident, key)).collect()
}

fn kind_name(r: &pb::Record) -> String {
    record::kind(r).map(|k| k.as_str_name().to_string()).unwrap_or_default()
}

/// Writes `rec` (already complete and validated) under `key`, replacing the
/// identifier entries of `old`, and logs the change.
#[allow(clippy::too_many_arguments)]
pub fn put(
    store: &dyn Store,
    tx: &mut Tx,
    key: &str,
    rec: &pb::Record,
    stored: &StoredRecord,
    old: Option<&pb::Record>,
    change: pb::ChangeType,
    now: OffsetDateTime,
) {
    if let Some(old) = old {
        for ident in record::identifier_keys(old) {
            tx.batch.delete(Tree::Identifiers, identifier_entry(store, &ident, key));
        }
    }
    for entry in index_entries(store, key, rec) {
        tx.batch.put(Tree::Identifiers, entry, Vec::new());
    }
    tx.batch.put(Tree::Records, key.as_bytes().to_vec(), stored.encode_to_vec());
    tx.catalogue(key, Some(Entry::of(rec, &stored.external_reference)));
    tx.change(pb::Change {
        seq: 0,
        time: Some(timestamp(now)),
        r#type: change as i32,
        record_key: key.to_string(),
        kind: record::kind(rec).map_or(0, |k| k as i32),
        version: rec.version,
        agreement_id: stored.provenance.as_ref().map(|p| p.agreement_id.clone()).unwrap_or_default(),
        request_id: String::new(),
    });
}

/// Deletes a record and its index entries (purge of a received record).
pub fn delete(store: &dyn Store, tx: &mut Tx, key: &str, rec: &pb::Record, now: OffsetDateTime) {
    for ident in record::identifier_keys(rec) {
        tx.batch.delete(Tree::Identifiers, identifier_entry(store, &ident, key));
    }
    tx.batch.delete(Tree::Records, key.as_bytes().to_vec());
    tx.catalogue(key, None);
    tx.change(pb::Change {
        seq: 0,
        time: Some(timestamp(now)),
        r#type: pb::ChangeType::RecordPurged as i32,
        record_key: key.to_string(),
        kind: record::kind(rec).map_or(0, |k| k as i32),
        version: rec.version,
        agreement_id: String::new(),
        request_id: String::new(),
    });
}

/// The node's signing context for its own records.
pub struct Signer<'a> {
    pub node_id: &'a str,
    pub key: &'a ed25519_dalek::SigningKey,
    /// Who asked for the write, for the audit log ("user:alice").
    pub actor: String,
}

fn new_id(rec: &pb::Record) -> String {
    let prefix = match record::kind(rec) {
        Some(pb::RecordKind::ContactPoint) => "cp",
        Some(pb::RecordKind::IntelligenceReport) => "ir",
        Some(pb::RecordKind::Entity) => "en",
        Some(pb::RecordKind::VictimReferral) => "vr",
        Some(pb::RecordKind::StatisticsReport) => "sr",
        _ => "rec",
    };
    let n: [u8; 6] = rand::random();
    format!("{prefix}-{}", hex::encode(n))
}

/// Fills the node-owned fields of a new record and validates it.
fn prepare_new(signer: &Signer<'_>, mut rec: pb::Record, now: OffsetDateTime) -> Result<pb::Record, FieldError> {
    // A record another node originated never becomes ours: re-signing it would
    // strip its originator, provenance, retention and onward terms.
    if !rec.originator.is_empty() && rec.originator != signer.node_id {
        return Err(FieldError {
            field: "record.originator".into(),
            reason: format!(
                "record {} was originated by {}: it is never stored as {}'s own (a received record keeps its originator's signature and terms; only {} can share it again)",
                key(&rec.originator, &rec.id),
                rec.originator,
                signer.node_id,
                rec.originator
            ),
        });
    }
    // Importing an exported withdrawn record must not bring it back live.
    if rec.withdrawn {
        return Err(FieldError {
            field: "record.withdrawn".into(),
            reason: format!("record {} is withdrawn and is not stored again", key(signer.node_id, &rec.id)),
        });
    }
    if rec.id.is_empty() {
        rec.id = new_id(&rec);
    }
    rec.originator = signer.node_id.to_string();
    rec.version = 1;
    rec.create_time = Some(timestamp(now));
    rec.update_time = Some(timestamp(now));
    rec.withdrawn = false;
    rec.redacted_fields.clear();
    record::validate(&rec)?;
    Ok(rec)
}

/// Stores a new record, `stored` being its envelope signed beforehand:
/// signing is the costly part, done outside the write lock.
fn put_new(
    store: &dyn Store,
    tx: &mut Tx,
    signer: &Signer<'_>,
    k: &str,
    rec: &pb::Record,
    stored: &StoredRecord,
    now: OffsetDateTime,
) {
    put(store, tx, k, rec, stored, None, pb::ChangeType::RecordCreated, now);
    tx.audit(Event::new(&signer.actor, "record.create").record(k));
}

/// Creates one of this node's own records.
pub async fn create(
    db: &Db,
    signer: &Signer<'_>,
    rec: pb::Record,
    now: OffsetDateTime,
) -> Result<pb::Record, RecordError> {
    let rec = prepare_new(signer, rec, now)?;
    let k = key(signer.node_id, &rec.id);
    let stored = StoredRecord::own(&rec, signer);
    db.write(|store, tx| {
        if store.get(Tree::Records, k.as_bytes())?.is_some() {
            return Err(RecordError::AlreadyExists(rec.id.clone()));
        }
        put_new(store, tx, signer, &k, &rec, &stored, now);
        Ok(rec.clone())
    })
    .await
}

/// What [`create_many`] did.
#[derive(Debug, Default)]
pub struct Created {
    /// The ids stored, in request order.
    pub ids: Vec<String>,
    /// Each refused record's index and why.
    pub problems: Vec<(usize, FieldError)>,
}

/// Creates many records in one durable transaction. Each is checked on its
/// own; the good ones are stored and each bad one is reported by index.
pub async fn create_many(
    db: &Db,
    signer: &Signer<'_>,
    recs: Vec<pb::Record>,
    now: OffsetDateTime,
) -> Result<Created, StoreError> {
    let mut problems = Vec::new();
    let mut ready = Vec::new();
    for (i, r) in recs.into_iter().enumerate() {
        match prepare_new(signer, r, now) {
            Ok(r) => {
                let stored = StoredRecord::own(&r, signer);
                ready.push((i, r, stored));
            }
            Err(e) => problems.push((i, e)),
        }
    }
    db.write(|store, tx| {
        let mut ids = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, rec, stored) in &ready {
            let k = key(signer.node_id, &rec.id);
            if !seen.insert(k.clone()) || store.get(Tree::Records, k.as_bytes())?.is_some() {
                let reason = format!("record {} already exists", rec.id);
                problems.push((*i, FieldError { field: "record.id".into(), reason }));
                continue;
            }
            put_new(store, tx, signer, &k, rec, stored, now);
            ids.push(rec.id.clone());
        }
        problems.sort_by_key(|(i, _)| *i);
        Ok(Created { ids, problems: std::mem::take(&mut problems) })
    })
    .await
}

/// Checks that `key` names one of our records at `expected` version.
fn current_own(store: &dyn Store, local: &str, k: &str, expected: u64) -> Result<pb::Record, RecordError> {
    let stored = get(store, k)?.ok_or_else(|| RecordError::NotFound(k.to_string()))?;
    let cur = stored.local()?;
    if cur.originator != local {
        return Err(RecordError::ReadOnly(k.to_string()));
    }
    if cur.version != expected {
        return Err(RecordError::StaleVersion { key: k.to_string(), expected, actual: cur.version });
    }
    if cur.withdrawn {
        return Err(RecordError::Withdrawn(k.to_string()));
    }
    Ok(cur)
}

/// What else a record change writes in its own transaction (its deliveries):
/// called with the record's key and its new, signed version.
pub type Then<'a> = &'a (dyn Fn(&dyn Store, &mut Tx, &str, &StoredRecord) -> Result<(), StoreError> + Sync);

/// What an update makes of the current record (its handling, local
/// reference and body; everything else is the node's).
pub type Merge<'a> = &'a (dyn Fn(&pb::Record) -> Result<pb::Record, FieldError> + Sync);

/// Updates one of our records, at the expected version, to what `merge`
/// makes of it; `then` adds to the same atomic write.
pub async fn update(
    db: &Db,
    signer: &Signer<'_>,
    id: &str,
    expected: u64,
    now: OffsetDateTime,
    merge: Merge<'_>,
    then: Then<'_>,
) -> Result<pb::Record, RecordError> {
    let k = resolve_key(signer.node_id, id);
    db.write(|store, tx| {
        let cur = current_own(store, signer.node_id, &k, expected)?;
        let rec = merge(&cur)?;
        if record::kind(&cur) != record::kind(&rec) {
            return Err(RecordError::KindChange { from: kind_name(&cur), to: kind_name(&rec) });
        }
        let next = pb::Record {
            id: cur.id.clone(),
            originator: cur.originator.clone(),
            version: cur.version + 1,
            create_time: cur.create_time,
            update_time: Some(timestamp(now)),
            withdrawn: false,
            handling: rec.handling,
            body: rec.body.clone(),
            redacted_fields: Vec::new(),
            external_reference: rec.external_reference.clone(),
        };
        record::validate(&next)?;
        let stored = StoredRecord::own(&next, signer);
        put(store, tx, &k, &next, &stored, Some(&cur), pb::ChangeType::RecordUpdated, now);
        tx.audit(Event::new(&signer.actor, "record.update").record(&k));
        then(store, tx, &k, &stored)?;
        Ok(next)
    })
    .await
}

/// Marks one of our records withdrawn (a new, signed version); `then` adds
/// to the same atomic write.
pub async fn withdraw(
    db: &Db,
    signer: &Signer<'_>,
    id: &str,
    expected: u64,
    now: OffsetDateTime,
    then: Then<'_>,
) -> Result<pb::Record, RecordError> {
    let k = resolve_key(signer.node_id, id);
    db.write(|store, tx| {
        let cur = current_own(store, signer.node_id, &k, expected)?;
        let next =
            pb::Record { version: cur.version + 1, update_time: Some(timestamp(now)), withdrawn: true, ..cur.clone() };
        let stored = StoredRecord::own(&next, signer);
        put(store, tx, &k, &next, &stored, Some(&cur), pb::ChangeType::RecordWithdrawn, now);
        tx.audit(Event::new(&signer.actor, "record.withdraw").record(&k));
        then(store, tx, &k, &stored)?;
        Ok(next)
    })
    .await
}

/// Matching records with their provenance, and the key to continue after.
pub type Page = (Vec<(pb::Record, Option<pb::Provenance>)>, Option<String>);

/// One page of matching records in key order, and the key to continue after.
/// The filter is applied to what a listing shows (the pseudonymised record),
/// so text search never matches a word only a protected field holds. It
/// reads the search catalogue, then only the records on the page.
pub fn list(db: &Db, filter: &Filter, after: Option<&str>, page_size: usize) -> Result<Page, StoreError> {
    let store = db.store();
    db.catalogue().ensure(|sink| catalogue_entries(store, sink))?;
    let prefix = filter.originator.as_ref().map(|o| format!("{o}/")).unwrap_or_default();
    let (keys, next) = db.catalogue().page(&prefix, after, page_size, filter)?;
    let mut rows = Vec::with_capacity(keys.len());
    for key in keys {
        // Gone since the catalogue was read (a purge): not listed.
        if let Some(stored) = get(store, &key)? {
            let rec = stored.local()?;
            rows.push((rec, stored.provenance));
        }
    }
    Ok((rows, next))
}

/// Walks the records under `prefix` that `filter` admits on the
/// pseudonymised view, in key order, through the catalogue's indexes (not
/// every record), after the key `after`, keeping what `pick` returns until
/// `limit` are kept; and the key to continue after when `limit` was
/// reached. `pick` sees the stored record and makes its own decision on the
/// view its caller would receive.
pub fn search<T>(
    db: &Db,
    prefix: &str,
    filter: &Filter,
    after: Option<&str>,
    limit: usize,
    mut pick: impl FnMut(&str, &pb::Record, &StoredRecord) -> Result<Option<T>, StoreError>,
) -> Result<(Vec<T>, Option<String>), StoreError> {
    let store = db.store();
    db.catalogue().ensure(|sink| catalogue_entries(store, sink))?;
    let mut out = Vec::new();
    let mut after = after.map(str::to_string);
    while out.len() < limit {
        let (keys, next) = db.catalogue().page(prefix, after.as_deref(), 256, filter)?;
        for key in keys {
            // Gone since the catalogue was read (a purge): skipped.
            let Some(stored) = get(store, &key)? else { continue };
            if let Some(t) = pick(&key, &stored.record()?, &stored)? {
                out.push(t);
                if out.len() == limit {
                    return Ok((out, Some(key)));
                }
            }
        }
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    Ok((out, None))
}

/// Hands the catalogue entry of every stored record to `sink` (the
/// catalogue's load), one at a time rather than all at once.
pub fn catalogue_entries(store: &dyn Store, sink: Sink<'_>) -> Result<(), StoreError> {
    let mut failed = None;
    scan(store, "", None, usize::MAX, |key, rec, stored| {
        if failed.is_none() {
            failed = sink(key.to_string(), Entry::of(rec, &stored.external_reference)).err();
        }
        None::<()>
    })?;
    failed.map_or(Ok(()), Err)
}

/// Walks records under `prefix` in key order after `after`, keeping what
/// `pick` returns, until `page_size` are kept; returns them and the key to
/// continue after (None at the end). `pick` sees the key and the stored
/// record and decides on the view its caller would receive.
pub fn scan<T>(
    store: &dyn Store,
    prefix: &str,
    after: Option<&str>,
    page_size: usize,
    mut pick: impl FnMut(&str, &pb::Record, &StoredRecord) -> Option<T>,
) -> Result<(Vec<T>, Option<String>), StoreError> {
    let mut out = Vec::new();
    let mut cursor = after.map(|a| a.as_bytes().to_vec());
    // Scan in chunks until the page is full or the tree ends.
    loop {
        let chunk = scan_prefix(store, Tree::Records, prefix.as_bytes(), cursor.as_deref(), 256)?;
        let done = chunk.len() < 256;
        for (k, v) in chunk {
            cursor = Some(k.clone());
            let stored = StoredRecord::decode(v.as_slice()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let rec = stored.record()?;
            if let Some(t) = pick(&String::from_utf8_lossy(&k), &rec, &stored) {
                out.push(t);
                if out.len() == page_size {
                    let next = String::from_utf8_lossy(&k).into_owned();
                    return Ok((out, Some(next)));
                }
            }
        }
        if done {
            return Ok((out, None));
        }
    }
}

/// Record keys holding an identifier (`type:normalised`).
pub fn lookup_identifier(store: &dyn Store, ident: &str) -> Result<Vec<String>, StoreError> {
    let prefix = identifier_prefix(store, ident);
    Ok(scan_prefix(store, Tree::Identifiers, &prefix, None, 10_000)?
        .into_iter()
        .map(|(k, _)| String::from_utf8_lossy(&k[prefix.len()..]).into_owned())
        .collect())
}
