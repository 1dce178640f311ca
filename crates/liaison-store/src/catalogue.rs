//! The search catalogue: for every stored record, the few facts a listing
//! filters on (kind, withdrawn, countries, update time, searchable text),
//! kept in memory so a search reads a small entry per record instead of
//! decrypting and decoding every record (issue 14: 100,000 records).
//!
//! Entries describe what a listing shows, the pseudonymised record, so a
//! search never matches a word only a protected field holds, and the
//! catalogue never holds a victim's identity.
//!
//! Consistency: a write's catalogue edits are applied once its batch is in
//! the store, under the write lock; edits are upserts and deletes, so
//! applying one twice is harmless. The catalogue is loaded from the store
//! once (in the background when a node starts, so starting never waits for
//! a walk of every record): while it loads, writes go on and their edits are
//! journalled; a write whose batch landed before the walk read it is read
//! by it, and every edit applied during the walk is replayed after it, in
//! order. A listing that comes during the load waits for it.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use time::OffsetDateTime;

use crate::convert::from_timestamp;
use crate::pb;
use crate::record;
use crate::search::TextIndex;
use crate::StoreError;

/// What a listing filters a record on, besides its text.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    pub kind: Option<pb::RecordKind>,
    pub withdrawn: bool,
    /// Sorted, without duplicates.
    pub countries: Vec<String>,
    pub updated: Option<OffsetDateTime>,
    /// The local integrator's reference (empty: none).
    pub external_reference: Box<str>,
}

/// A record's catalogue entry: its facts and its searchable text.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub facts: Facts,
    /// [`record::search_text`] of the shown record (kept in the text index,
    /// not in memory beside the facts).
    pub text: Box<str>,
}

impl Entry {
    /// The entry of `rec` as a listing would show it, with the local
    /// `external_reference` it is stored with.
    pub fn of(rec: &pb::Record, external_reference: &str) -> Entry {
        let shown = if crate::redact::holds_protected(rec) {
            Cow::Owned(crate::redact::pseudonymise(rec))
        } else {
            Cow::Borrowed(rec)
        };
        let mut countries = record::countries(&shown);
        // Kept for every record: no spare capacity.
        countries.shrink_to_fit();
        Entry {
            facts: Facts {
                kind: record::kind(&shown),
                withdrawn: shown.withdrawn,
                countries,
                updated: shown.update_time.as_ref().and_then(from_timestamp),
                external_reference: external_reference.into(),
            },
            text: record::search_text(&shown).into_boxed_str(),
        }
    }
}

/// What a listing asks for.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub kind: Option<pb::RecordKind>,
    pub country: Option<String>,
    /// Lowercased.
    pub text: Option<String>,
    pub updated_since: Option<OffsetDateTime>,
    pub include_withdrawn: bool,
    /// Only records from this originator.
    pub originator: Option<String>,
    /// Only records with exactly this local reference.
    pub external_reference: Option<String>,
}

impl Filter {
    /// Whether a listing shows `r` (judged on the pseudonymised record, as
    /// the catalogue judges it).
    pub fn matches(&self, r: &pb::Record) -> bool {
        let e = Entry::of(r, &r.external_reference);
        self.admits(&e.facts) && self.text.as_deref().is_none_or(|t| record::text_contains(&e.text, t))
    }

    /// Whether a record with these facts passes every part of the filter
    /// but the text.
    pub fn admits(&self, e: &Facts) -> bool {
        if self.kind.is_some() && e.kind != self.kind {
            return false;
        }
        if e.withdrawn && !self.include_withdrawn {
            return false;
        }
        if self.external_reference.as_deref().is_some_and(|x| *x != *e.external_reference) {
            return false;
        }
        if let Some(c) = &self.country {
            if !e.countries.iter().any(|x| x == c) {
                return false;
            }
        }
        if let Some(since) = self.updated_since {
            if e.updated.is_none_or(|u| u < since) {
                return false;
            }
        }
        true
    }
}

/// A change to apply once its write is durable: the entry under a record
/// key, or None when the record is gone.
pub type Edit = (String, Option<Entry>);

type Keys = BTreeSet<Arc<str>>;

/// The catalogue of every record in one store.
#[derive(Debug, Default)]
pub struct Catalogue {
    state: RwLock<State>,
    /// Held by the one load under way; a listing waits on it.
    loading: Mutex<()>,
}

#[derive(Debug, Default)]
enum State {
    #[default]
    Unloaded,
    /// The edits applied since the load began, to replay after it.
    Loading(Vec<Edit>),
    Loaded(Box<Loaded>),
}

/// What a load is handed: each stored record's key and entry in turn.
pub type Sink<'a> = &'a mut dyn FnMut(String, Entry) -> Result<(), StoreError>;

/// The facts of every record and an index of each fact a listing filters
/// on, so a filter reads the records it names rather than every entry.
#[derive(Debug)]
struct Loaded {
    facts: BTreeMap<Arc<str>, Facts>,
    by_kind: HashMap<pb::RecordKind, Keys>,
    by_country: HashMap<String, Keys>,
    by_reference: HashMap<Box<str>, Keys>,
    by_updated: BTreeSet<(OffsetDateTime, Arc<str>)>,
    text: TextIndex,
}

fn index<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Keys>, value: K, key: &Arc<str>) {
    map.entry(value).or_default().insert(Arc::clone(key));
}

fn unindex<K: std::hash::Hash + Eq + std::borrow::Borrow<Q>, Q: std::hash::Hash + Eq + ?Sized>(
    map: &mut HashMap<K, Keys>,
    value: &Q,
    key: &str,
) {
    if let Some(set) = map.get_mut(value) {
        set.remove(key);
        if set.is_empty() {
            map.remove(value);
        }
    }
}

impl Loaded {
    fn new() -> Result<Loaded, StoreError> {
        Ok(Loaded {
            facts: BTreeMap::new(),
            by_kind: HashMap::new(),
            by_country: HashMap::new(),
            by_reference: HashMap::new(),
            by_updated: BTreeSet::new(),
            text: TextIndex::new()?,
        })
    }

    fn apply(&mut self, key: &str, entry: Option<Entry>) -> Result<(), StoreError> {
        let old = self.facts.remove_entry(key);
        let held = old.is_some();
        if let Some((k, old)) = old {
            if let Some(kind) = old.kind {
                unindex(&mut self.by_kind, &kind, key);
            }
            for c in &old.countries {
                unindex(&mut self.by_country, c.as_str(), key);
            }
            unindex(&mut self.by_reference, &*old.external_reference, key);
            if let Some(u) = old.updated {
                self.by_updated.remove(&(u, k));
            }
        }
        let Some(Entry { facts, text }) = entry else {
            return if held { self.text.put(key, None) } else { Ok(()) };
        };
        let k: Arc<str> = Arc::from(key);
        if let Some(kind) = facts.kind {
            index(&mut self.by_kind, kind, &k);
        }
        for c in &facts.countries {
            index(&mut self.by_country, c.clone(), &k);
        }
        if !facts.external_reference.is_empty() {
            index(&mut self.by_reference, facts.external_reference.clone(), &k);
        }
        if let Some(u) = facts.updated {
            self.by_updated.insert((u, Arc::clone(&k)));
        }
        self.facts.insert(k, facts);
        if held {
            self.text.put(key, Some(&text))
        } else {
            self.text.insert(key, &text)
        }
    }

    /// The smallest set of keys that holds every record `filter` admits,
    /// or None when no index narrows it (every record is a candidate).
    fn candidates(&self, filter: &Filter) -> Result<Option<Cow<'_, Keys>>, StoreError> {
        static NONE: Keys = BTreeSet::new();
        let mut best: Option<Cow<'_, Keys>> = None;
        let indexed = [
            filter.kind.map(|k| self.by_kind.get(&k)),
            filter.country.as_deref().map(|c| self.by_country.get(c)),
            filter.external_reference.as_deref().map(|r| self.by_reference.get(r)),
        ];
        // A value no record has narrows to nothing.
        for set in indexed.into_iter().flatten().map(|s| s.unwrap_or(&NONE)) {
            if best.as_ref().is_none_or(|b| set.len() < b.len()) {
                best = Some(Cow::Borrowed(set));
            }
        }
        if let Some(since) = filter.updated_since {
            // Collected only while smaller than the best set so far.
            let limit = best.as_ref().map_or(usize::MAX, |b| b.len());
            let recent = self.by_updated.range((since, Arc::from(""))..).map(|(_, k)| Arc::clone(k));
            let set: Keys = recent.take(limit).collect();
            if set.len() < limit {
                best = Some(Cow::Owned(set));
            }
        }
        if let Some(t) = filter.text.as_deref().filter(|t| !t.is_empty()) {
            // The text is not among the facts `admits` checks: it always
            // narrows the candidates, intersected with the best so far.
            let set: Keys = self
                .text
                .keys(t)?
                .iter()
                .filter_map(|k| self.facts.get_key_value(k.as_str()).map(|(k, _)| Arc::clone(k)))
                .filter(|k| best.as_ref().is_none_or(|b| b.contains(k)))
                .collect();
            best = Some(Cow::Owned(set));
        }
        Ok(best)
    }
}

impl Catalogue {
    /// Applies a write's edits (ignored before a load begins, which will
    /// read them from the store; journalled while one is under way).
    pub fn apply(&self, edits: Vec<Edit>) -> Result<(), StoreError> {
        let mut guard = self.state.write().unwrap_or_else(PoisonError::into_inner);
        match &mut *guard {
            State::Unloaded => {}
            State::Loading(journal) => journal.extend(edits),
            State::Loaded(loaded) => {
                for (key, entry) in edits {
                    if let Err(e) = loaded.apply(&key, entry) {
                        // Unloaded: the next listing rebuilds it from the store.
                        *guard = State::Unloaded;
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    }

    fn is_loaded(&self) -> bool {
        matches!(*self.state.read().unwrap_or_else(PoisonError::into_inner), State::Loaded(_))
    }

    /// Loads the catalogue with `load` unless it is loaded already; waits
    /// for a load under way. `load` hands every stored record's entry to
    /// the sink; writes are not held up while it runs.
    pub fn ensure(&self, load: impl FnOnce(Sink<'_>) -> Result<(), StoreError>) -> Result<(), StoreError> {
        if self.is_loaded() {
            return Ok(());
        }
        let _one = self.loading.lock().unwrap_or_else(PoisonError::into_inner);
        if self.is_loaded() {
            return Ok(());
        }
        // From here every write's edits are journalled, so none can fall
        // between what the walk reads and what is replayed after it.
        *self.state.write().unwrap_or_else(PoisonError::into_inner) = State::Loading(Vec::new());
        let built = Loaded::new().and_then(|mut loaded| {
            load(&mut |key, entry| loaded.apply(&key, Some(entry)))?;
            Ok(loaded)
        });
        let mut guard = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let journal = match std::mem::take(&mut *guard) {
            State::Loading(journal) => journal,
            _ => Vec::new(),
        };
        let mut loaded = built?;
        for (key, entry) in journal {
            loaded.apply(&key, entry)?;
        }
        *guard = State::Loaded(Box::new(loaded));
        Ok(())
    }

    /// Keys under `prefix`, in order after `after`, of the records `filter`
    /// admits (its originator aside: that is the prefix), up to
    /// `page_size`; and the key to continue after when the page is full.
    /// Empty before the catalogue is loaded.
    pub fn page(
        &self,
        prefix: &str,
        after: Option<&str>,
        page_size: usize,
        filter: &Filter,
    ) -> Result<(Vec<String>, Option<String>), StoreError> {
        let guard = self.state.read().unwrap_or_else(PoisonError::into_inner);
        let State::Loaded(loaded) = &*guard else { return Ok((Vec::new(), None)) };
        let start = match after {
            Some(a) if a >= prefix => Bound::Excluded(a),
            _ => Bound::Included(prefix),
        };
        let candidates = loaded.candidates(filter)?;
        let keys: Box<dyn Iterator<Item = &Arc<str>>> = match &candidates {
            Some(set) => Box::new(set.range::<str, _>((start, Bound::Unbounded))),
            None => Box::new(loaded.facts.range::<str, _>((start, Bound::Unbounded)).map(|(k, _)| k)),
        };
        let mut out = Vec::new();
        for key in keys {
            if !key.starts_with(prefix) {
                break;
            }
            if loaded.facts.get(key).is_some_and(|f| filter.admits(f)) {
                out.push(key.to_string());
                if out.len() == page_size {
                    return Ok((out, Some(key.to_string())));
                }
            }
        }
        Ok((out, None))
    }

    /// How many records are catalogued (None before the first load).
    pub fn count(&self) -> Option<usize> {
        match &*self.state.read().unwrap_or_else(PoisonError::into_inner) {
            State::Loaded(l) => Some(l.facts.len()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::examples;
    use proptest::prelude::*;

    fn entry(text: &str) -> Option<Entry> {
        let mut r = examples::intelligence_report();
        if let Some(pb::record::Body::IntelligenceReport(i)) = r.body.as_mut() {
            i.summary = text.into();
        }
        Some(Entry::of(&r, ""))
    }

    /// A load that hands over `edits` (the present ones).
    fn from(edits: Vec<Edit>) -> impl FnOnce(Sink<'_>) -> Result<(), StoreError> {
        move |sink| edits.into_iter().try_for_each(|(k, e)| e.map_or(Ok(()), |e| sink(k, e)))
    }

    fn loaded(keys: &[&str]) -> Catalogue {
        let c = Catalogue::default();
        c.ensure(from(keys.iter().map(|k| (k.to_string(), entry(k))).collect())).unwrap();
        c
    }

    fn all() -> Filter {
        Filter { include_withdrawn: true, ..Filter::default() }
    }

    fn text(t: &str) -> Filter {
        Filter { text: Some(t.into()), ..all() }
    }

    #[test]
    fn pages_in_key_order_within_the_prefix() {
        let c = loaded(&["a/1", "a/2", "a/3", "b/1"]);
        assert_eq!(c.page("a/", None, 2, &all()).unwrap(), (vec!["a/1".into(), "a/2".into()], Some("a/2".into())));
        assert_eq!(c.page("a/", Some("a/2"), 2, &all()).unwrap(), (vec!["a/3".into()], None));
        assert_eq!(c.page("", Some("a/3"), 10, &all()).unwrap().0, vec!["b/1".to_string()]);
        // A token from before the prefix starts at the prefix.
        assert_eq!(c.page("b/", Some("a/9"), 10, &all()).unwrap().0, vec!["b/1".to_string()]);
        assert_eq!(c.page("a/", None, 10, &text("a/2")).unwrap().0, vec!["a/2".to_string()]);
        assert_eq!(c.page("a/", Some("a/1"), 10, &text("a/")).unwrap().0, vec!["a/2".to_string(), "a/3".into()]);
    }

    #[test]
    fn edits_before_the_load_are_left_to_the_load() {
        let c = Catalogue::default();
        c.apply(vec![("a/1".into(), entry("x"))]).unwrap();
        assert_eq!(c.count(), None);
        assert_eq!(c.page("", None, 10, &all()).unwrap().0, Vec::<String>::new());
        c.ensure(from(vec![("a/2".into(), entry("y"))])).unwrap();
        // Loaded once: a second loader is not called.
        c.ensure(|_| Err(StoreError::Backend("loaded twice".into()))).unwrap();
        c.apply(vec![("a/2".into(), None), ("a/3".into(), entry("z")), ("a/3".into(), entry("z"))]).unwrap();
        assert_eq!(c.page("", None, 10, &all()).unwrap().0, vec!["a/3".to_string()]);
        assert!(c.page("", None, 10, &text("y")).unwrap().0.is_empty(), "removed from the text index");
    }

    #[test]
    fn writes_during_the_load_are_replayed_after_it() {
        let c = Catalogue::default();
        c.ensure(|sink| {
            sink("a/1".into(), entry("first").unwrap())?;
            // A write lands while the walk runs: a new record, the removal
            // of one already read, a change to one the walk reads later as
            // it was before.
            c.apply(vec![("a/2".into(), entry("new")), ("a/1".into(), None), ("a/3".into(), entry("changed"))])?;
            sink("a/3".into(), entry("stale").unwrap())
        })
        .unwrap();
        assert_eq!(c.page("", None, 10, &all()).unwrap().0, vec!["a/2".to_string(), "a/3".into()]);
        assert_eq!(c.page("", None, 10, &text("changed")).unwrap().0, vec!["a/3".to_string()]);
        assert!(c.page("", None, 10, &text("stale")).unwrap().0.is_empty());
        assert!(c.page("", None, 10, &text("first")).unwrap().0.is_empty());
    }

    #[test]
    fn a_failed_load_is_tried_again_by_the_next_listing() {
        let c = Catalogue::default();
        let failed = c.ensure(|sink| {
            sink("a/1".into(), entry("x").unwrap())?;
            Err(StoreError::Backend("disk".into()))
        });
        assert!(failed.is_err());
        assert_eq!(c.count(), None);
        // Edits after the failure are left to the next load again.
        c.apply(vec![("a/9".into(), entry("lost"))]).unwrap();
        c.ensure(from(vec![("a/2".into(), entry("y"))])).unwrap();
        assert_eq!(c.page("", None, 10, &all()).unwrap().0, vec!["a/2".to_string()]);
    }

    #[test]
    fn a_listing_during_the_load_waits_for_it() {
        let c = Arc::new(Catalogue::default());
        let (started, go) = (std::sync::mpsc::channel::<()>(), std::sync::mpsc::channel::<()>());
        let loader = {
            let c = Arc::clone(&c);
            std::thread::spawn(move || {
                c.ensure(|sink| {
                    started.0.send(()).map_err(|e| StoreError::Backend(e.to_string()))?;
                    go.1.recv().map_err(|e| StoreError::Backend(e.to_string()))?;
                    sink("a/1".into(), entry("x").unwrap())
                })
            })
        };
        started.1.recv().unwrap();
        let lister = {
            let c = Arc::clone(&c);
            std::thread::spawn(move || {
                c.ensure(|_| Err(StoreError::Backend("a second load".into())))?;
                c.page("", None, 10, &all())
            })
        };
        go.0.send(()).unwrap();
        loader.join().unwrap().unwrap();
        assert_eq!(lister.join().unwrap().unwrap().0, vec!["a/1".to_string()]);
    }

    #[test]
    fn the_entry_of_a_victim_referral_holds_no_identity() {
        let r = examples::victim_referral();
        let Some(pb::record::Body::VictimReferral(v)) = &r.body else { panic!("referral") };
        let name = v.identity.as_ref().map(|i| i.full_name.to_lowercase()).unwrap_or_default();
        let e = Entry::of(&r, "");
        assert!(!name.is_empty() && !e.text.contains(&name), "{:?}", e.text);
        assert_eq!(e.facts.kind, Some(pb::RecordKind::VictimReferral));
        // Nor can the index be asked for it.
        let c = Catalogue::default();
        c.ensure(from(vec![("kh/vr".into(), Some(e))])).unwrap();
        assert!(c.page("", None, 10, &text(&name)).unwrap().0.is_empty());
    }

    const KINDS: [pb::RecordKind; 3] =
        [pb::RecordKind::ContactPoint, pb::RecordKind::IntelligenceReport, pb::RecordKind::Entity];
    const COUNTRIES: [&str; 3] = ["KH", "TH", "LA"];

    fn facts() -> impl Strategy<Value = Entry> {
        (
            prop::option::of(prop::sample::select(KINDS.to_vec())),
            any::<bool>(),
            prop::sample::subsequence(COUNTRIES.to_vec(), 0..=2),
            prop::option::of(0i64..6),
            prop::sample::select(vec!["", "", "case-1", "case-2"]),
            prop::sample::select(vec!["desk\0", "border desk\0", "poipet\0route 42\0", ""]),
        )
            .prop_map(|(kind, withdrawn, mut countries, day, reference, text)| {
                countries.sort_unstable();
                Entry {
                    facts: Facts {
                        kind,
                        withdrawn,
                        countries: countries.into_iter().map(String::from).collect(),
                        updated: day.map(|d| OffsetDateTime::UNIX_EPOCH + time::Duration::days(d)),
                        external_reference: reference.into(),
                    },
                    text: text.into(),
                }
            })
    }

    fn filters() -> impl Strategy<Value = Filter> {
        (
            prop::option::of(prop::sample::select(KINDS.to_vec())),
            prop::option::of(prop::sample::select(COUNTRIES.to_vec())),
            prop::option::of(prop::sample::select(vec!["", "desk", "r", "route 4", "nothing"])),
            prop::option::of(0i64..7),
            any::<bool>(),
            prop::option::of(prop::sample::select(vec!["a/", "b/"])),
            prop::option::of(prop::sample::select(vec!["case-1", "case-3"])),
        )
            .prop_map(|(kind, country, text, since, include_withdrawn, originator, reference)| Filter {
                kind,
                country: country.map(String::from),
                text: text.map(String::from),
                updated_since: since.map(|d| OffsetDateTime::UNIX_EPOCH + time::Duration::days(d)),
                include_withdrawn,
                originator: originator.map(String::from),
                external_reference: reference.map(String::from),
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Whatever the indexes pick, paging through them lists exactly what
        /// checking every entry lists, in key order, across edits.
        #[test]
        fn indexed_pages_list_what_a_scan_lists(
            first in prop::collection::vec(facts(), 0..40),
            edits in prop::collection::vec((0usize..50, prop::option::of(facts())), 0..20),
            filters in prop::collection::vec(filters(), 1..6),
            page_size in 1usize..7,
        ) {
            let key = |i: usize| format!("{}/{i:02}", if i % 3 == 0 { "a" } else { "b" });
            let mut model: BTreeMap<String, Entry> = BTreeMap::new();
            let c = Catalogue::default();
            let load: Vec<Edit> = first.iter().enumerate().map(|(i, e)| (key(i), Some(e.clone()))).collect();
            for (k, e) in &load {
                if let Some(e) = e { model.insert(k.clone(), e.clone()); }
            }
            c.ensure(from(load)).unwrap();
            let changes: Vec<Edit> = edits.into_iter().map(|(i, e)| (key(i), e)).collect();
            for (k, e) in &changes {
                match e { Some(e) => model.insert(k.clone(), e.clone()), None => model.remove(k) };
            }
            c.apply(changes).unwrap();
            for f in filters {
                let prefix = f.originator.clone().unwrap_or_default();
                let want: Vec<String> = model
                    .iter()
                    .filter(|(k, e)| {
                        k.starts_with(&prefix)
                            && f.admits(&e.facts)
                            && f.text.as_deref().is_none_or(|t| record::text_contains(&e.text, t))
                    })
                    .map(|(k, _)| k.clone())
                    .collect();
                let mut got = Vec::new();
                let mut after: Option<String> = None;
                loop {
                    let (keys, next) = c.page(&prefix, after.as_deref(), page_size, &f).unwrap();
                    prop_assert!(keys.len() <= page_size);
                    got.extend(keys);
                    match next { Some(n) => after = Some(n), None => break }
                }
                prop_assert_eq!(got, want, "{:?}", f);
            }
        }
    }
}
