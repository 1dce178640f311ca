//! The search catalogue: for every stored record, the few facts a listing
//! filters on (kind, withdrawn, countries, update time, searchable text),
//! kept in memory so a search reads a small entry per record instead of
//! decrypting and decoding every record (issue 14: 100,000 records).
//!
//! Entries describe what a listing shows, the pseudonymised record, so a
//! search never matches a word only a protected field holds, and the
//! catalogue never holds a victim's identity.
//!
//! Consistency: a write's catalogue edits are applied after its batch is
//! durable, under the write lock; edits are upserts and deletes, so applying
//! one twice is harmless. The catalogue is loaded from the store on first use
//! under its own exclusive lock: a write whose batch landed before the load
//! is read by it, one that lands during it is applied again after it.

use std::collections::BTreeMap;
use std::sync::{PoisonError, RwLock};

use time::OffsetDateTime;

use crate::convert::from_timestamp;
use crate::pb;
use crate::record;

/// What a listing filters a record on.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub kind: Option<pb::RecordKind>,
    pub withdrawn: bool,
    /// Sorted, without duplicates.
    pub countries: Vec<String>,
    pub updated: Option<OffsetDateTime>,
    /// [`record::search_text`] of the shown record.
    pub text: Box<str>,
    /// The local integrator's reference (empty: none).
    pub external_reference: Box<str>,
}

impl Entry {
    /// The entry of `rec` as a listing would show it, with the local
    /// `external_reference` it is stored with.
    pub fn of(rec: &pb::Record, external_reference: &str) -> Entry {
        let shown = if crate::redact::holds_protected(rec) {
            std::borrow::Cow::Owned(crate::redact::pseudonymise(rec))
        } else {
            std::borrow::Cow::Borrowed(rec)
        };
        Entry {
            kind: record::kind(&shown),
            withdrawn: shown.withdrawn,
            countries: record::countries(&shown),
            updated: shown.update_time.as_ref().and_then(from_timestamp),
            text: record::search_text(&shown).into_boxed_str(),
            external_reference: external_reference.into(),
        }
    }
}

/// A change to apply once its write is durable: the entry under a record
/// key, or None when the record is gone.
pub type Edit = (String, Option<Entry>);

/// The catalogue of every record in one store.
#[derive(Debug, Default)]
pub struct Catalogue {
    /// None until loaded.
    entries: RwLock<Option<BTreeMap<String, Entry>>>,
}

impl Catalogue {
    /// Applies a durable write's edits (ignored before the first load,
    /// which will read them from the store).
    pub fn apply(&self, edits: Vec<Edit>) {
        let mut guard = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(map) = guard.as_mut() {
            for (key, entry) in edits {
                match entry {
                    Some(e) => map.insert(key, e),
                    None => map.remove(&key),
                };
            }
        }
    }

    /// Loads the catalogue with `load` unless it is loaded already.
    pub fn ensure<E>(&self, load: impl FnOnce() -> Result<Vec<Edit>, E>) -> Result<(), E> {
        if self.entries.read().unwrap_or_else(PoisonError::into_inner).is_some() {
            return Ok(());
        }
        let mut guard = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if guard.is_none() {
            let mut map = BTreeMap::new();
            for (key, entry) in load()? {
                if let Some(e) = entry {
                    map.insert(key, e);
                }
            }
            *guard = Some(map);
        }
        Ok(())
    }

    /// Keys under `prefix`, in order after `after`, whose entry `keep`
    /// accepts, up to `page_size`; and the key to continue after when the
    /// page is full. Empty before the catalogue is loaded.
    pub fn page(
        &self,
        prefix: &str,
        after: Option<&str>,
        page_size: usize,
        mut keep: impl FnMut(&Entry) -> bool,
    ) -> (Vec<String>, Option<String>) {
        use std::ops::Bound;
        let guard = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        let Some(map) = guard.as_ref() else { return (Vec::new(), None) };
        let start = match after {
            Some(a) if a >= prefix => Bound::Excluded(a.to_string()),
            _ => Bound::Included(prefix.to_string()),
        };
        let mut out = Vec::new();
        for (key, entry) in map.range((start, Bound::Unbounded)) {
            if !key.starts_with(prefix) {
                break;
            }
            if keep(entry) {
                out.push(key.clone());
                if out.len() == page_size {
                    return (out, Some(key.clone()));
                }
            }
        }
        (out, None)
    }

    /// How many records are catalogued (None before the first load).
    pub fn count(&self) -> Option<usize> {
        self.entries.read().unwrap_or_else(PoisonError::into_inner).as_ref().map(BTreeMap::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::examples;

    fn entry(text: &str) -> Option<Entry> {
        let mut r = examples::intelligence_report();
        if let Some(pb::record::Body::IntelligenceReport(i)) = r.body.as_mut() {
            i.summary = text.into();
        }
        Some(Entry::of(&r, ""))
    }

    fn loaded(keys: &[&str]) -> Catalogue {
        let c = Catalogue::default();
        c.ensure(|| Ok::<_, ()>(keys.iter().map(|k| (k.to_string(), entry(k))).collect())).unwrap();
        c
    }

    #[test]
    fn pages_in_key_order_within_the_prefix() {
        let c = loaded(&["a/1", "a/2", "a/3", "b/1"]);
        assert_eq!(c.page("a/", None, 2, |_| true), (vec!["a/1".into(), "a/2".into()], Some("a/2".into())));
        assert_eq!(c.page("a/", Some("a/2"), 2, |_| true), (vec!["a/3".into()], None));
        assert_eq!(c.page("", Some("a/3"), 10, |_| true).0, vec!["b/1".to_string()]);
        // A token from before the prefix starts at the prefix.
        assert_eq!(c.page("b/", Some("a/9"), 10, |_| true).0, vec!["b/1".to_string()]);
        assert_eq!(c.page("a/", None, 10, |e| e.text.contains("a/2")).0, vec!["a/2".to_string()]);
    }

    #[test]
    fn edits_before_the_load_are_left_to_the_load() {
        let c = Catalogue::default();
        c.apply(vec![("a/1".into(), entry("x"))]);
        assert_eq!(c.count(), None);
        assert_eq!(c.page("", None, 10, |_| true).0, Vec::<String>::new());
        c.ensure(|| Ok::<_, ()>(vec![("a/2".into(), entry("y"))])).unwrap();
        // Loaded once: a second loader is not called.
        c.ensure(|| Err("loaded twice")).unwrap();
        c.apply(vec![("a/2".into(), None), ("a/3".into(), entry("z")), ("a/3".into(), entry("z"))]);
        assert_eq!(c.page("", None, 10, |_| true).0, vec!["a/3".to_string()]);
    }

    #[test]
    fn the_entry_of_a_victim_referral_holds_no_identity() {
        let r = examples::victim_referral();
        let Some(pb::record::Body::VictimReferral(v)) = &r.body else { panic!("referral") };
        let name = v.identity.as_ref().map(|i| i.full_name.to_lowercase()).unwrap_or_default();
        let e = Entry::of(&r, "");
        assert!(!name.is_empty() && !e.text.contains(&name), "{:?}", e.text);
        assert_eq!(e.kind, Some(pb::RecordKind::VictimReferral));
    }
}
