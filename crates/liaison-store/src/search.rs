//! Full-text search over the search catalogue, with tantivy (in memory).
//!
//! What is indexed is [`crate::record::search_text`] of the record a listing
//! shows (pseudonymised), so no victim's identity is ever in the index.
//!
//! A search means what it meant before there was an index: the lowercased
//! needle occurs in one searchable field, anywhere, in any script. Thai,
//! Khmer, Lao and Burmese are written without spaces between words, so
//! splitting into words would make most of their text unsearchable. Each
//! field is indexed as one token per character position (the up to three
//! characters starting there), and a needle becomes a phrase of its
//! consecutive three-character windows, or a prefix of one token when it is
//! shorter: exactly the records holding the needle, found in the index.
//!
//! The index lives in memory and is rebuilt from the store when the node
//! starts, so it can never disagree with what is durable there. Changes are
//! committed when the next search needs them, not on every write.

use std::collections::BTreeSet;
use std::sync::{Mutex, PoisonError};

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::StrColumn;
use tantivy::query::{PhrasePrefixQuery, PhraseQuery, Query, TermQuery};
use tantivy::schema::{Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, FAST, STRING};
use tantivy::tokenizer::{Token, TokenStream, Tokenizer};
use tantivy::{DocId, Index, IndexReader, IndexWriter, ReloadPolicy, Score, SegmentReader, TantivyDocument, Term};

use crate::StoreError;

/// Characters per indexed window.
const GRAM: usize = 3;

/// Separates fields in the searched text (as in the core's `search_text`).
const FIELD_BREAK: char = '\0';

/// Smallest indexing budget tantivy accepts for one thread.
const WRITER_BUDGET: usize = 15_000_000;

/// The tokens of `text`: at every character position of every field, the
/// up to [`GRAM`] characters from there to the end of the field. Positions
/// count characters across the whole text, and no token spans a field
/// break, so no phrase can match across two fields.
pub fn grams(text: &str) -> Vec<Token> {
    let mut stream = GramStream::new(text);
    let mut out = Vec::with_capacity(stream.chars.len());
    while stream.advance() {
        out.push(stream.token.clone());
    }
    out
}

/// [`grams`] one token at a time, reusing one token's buffer: the indexing
/// side of the index (tantivy's tokenizer for the text field).
pub struct GramStream<'a> {
    text: &'a str,
    chars: Vec<(usize, char)>,
    /// The next character position to start a token at.
    next: usize,
    token: Token,
}

impl<'a> GramStream<'a> {
    fn new(text: &'a str) -> GramStream<'a> {
        GramStream { text, chars: text.char_indices().collect(), next: 0, token: Token::default() }
    }
}

impl TokenStream for GramStream<'_> {
    fn advance(&mut self) -> bool {
        while let Some(&(from, c)) = self.chars.get(self.next) {
            let pos = self.next;
            self.next += 1;
            if c == FIELD_BREAK {
                continue;
            }
            let window =
                self.chars.get(pos..).unwrap_or_default().iter().take(GRAM).take_while(|(_, c)| *c != FIELD_BREAK);
            let to = window.last().map_or(from, |&(at, c)| at + c.len_utf8());
            self.token.text.clear();
            self.token.text.push_str(self.text.get(from..to).unwrap_or_default());
            (self.token.offset_from, self.token.offset_to, self.token.position) = (from, to, pos);
            self.token.position_length = 1;
            return true;
        }
        false
    }

    fn token(&self) -> &Token {
        &self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.token
    }
}

/// [`grams`] as tantivy's tokenizer for the text field. A document then
/// carries its text as a plain string: handed over pre-tokenised, tantivy
/// serialised the tokens to JSON and parsed them again on its indexing
/// thread, half of that thread's work in an import (perf, issue 17).
#[derive(Clone)]
struct Grams;

/// The name [`Grams`] is registered under.
const TOKENIZER: &str = "liaison_grams";

impl Tokenizer for Grams {
    type TokenStream<'a> = GramStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> GramStream<'a> {
        GramStream::new(text)
    }
}

/// The in-memory full-text index of one store's catalogue.
pub struct TextIndex {
    key: Field,
    text: Field,
    writer: Mutex<Pending>,
    reader: IndexReader,
}

struct Pending {
    writer: IndexWriter,
    /// Changes not yet visible to searches.
    dirty: bool,
    /// Changes since the last commit. tantivy keeps every pending delete
    /// (about 700 bytes each) until a commit, so commits come at least
    /// every [`COMMIT_EVERY`] changes, not only when a search needs them.
    uncommitted: usize,
}

/// Most changes held before a commit.
const COMMIT_EVERY: usize = 10_000;

impl std::fmt::Debug for TextIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextIndex").finish_non_exhaustive()
    }
}

fn failed(e: tantivy::TantivyError) -> StoreError {
    StoreError::Backend(format!("search index: {e}"))
}

impl TextIndex {
    /// An empty index.
    pub fn new() -> Result<TextIndex, StoreError> {
        let mut schema = Schema::builder();
        let key = schema.add_text_field("key", STRING | FAST);
        let grams = TextFieldIndexing::default()
            .set_tokenizer(TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions);
        let text = schema.add_text_field("text", TextOptions::default().set_indexing_options(grams));
        let index = Index::create_in_ram(schema.build());
        index.tokenizers().register(TOKENIZER, Grams);
        let writer = index.writer_with_num_threads(1, WRITER_BUDGET).map_err(failed)?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into().map_err(failed)?;
        Ok(TextIndex { key, text, writer: Mutex::new(Pending { writer, dirty: false, uncommitted: 0 }), reader })
    }

    /// Indexes `text` under `key`, replacing what was there; None removes it.
    pub fn put(&self, key: &str, text: Option<&str>) -> Result<(), StoreError> {
        self.change(key, true, text)
    }

    /// Indexes `text` under a `key` the index does not hold (a load, a new
    /// record): nothing to delete first, so nothing for tantivy to keep
    /// until the next commit.
    pub fn insert(&self, key: &str, text: &str) -> Result<(), StoreError> {
        self.change(key, false, Some(text))
    }

    fn change(&self, key: &str, held: bool, text: Option<&str>) -> Result<(), StoreError> {
        let mut pending = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        pending.dirty = true;
        if held {
            pending.writer.delete_term(Term::from_field_text(self.key, key));
        }
        if let Some(text) = text {
            let mut doc = TantivyDocument::default();
            doc.add_text(self.key, key);
            doc.add_text(self.text, text);
            pending.writer.add_document(doc).map_err(failed)?;
        }
        pending.uncommitted = pending.uncommitted.saturating_add(1);
        if pending.uncommitted >= COMMIT_EVERY {
            pending.writer.commit().map_err(failed)?;
            pending.uncommitted = 0;
        }
        Ok(())
    }

    /// The keys of the records whose text holds `needle` (lowercased, not
    /// empty); every key when it is empty.
    pub fn keys(&self, needle: &str) -> Result<BTreeSet<String>, StoreError> {
        {
            let mut pending = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
            if pending.dirty {
                pending.writer.commit().map_err(failed)?;
                self.reader.reload().map_err(failed)?;
                (pending.dirty, pending.uncommitted) = (false, 0);
            }
        }
        let searcher = self.reader.searcher();
        let Some(query) = self.query(needle) else { return Ok(BTreeSet::new()) };
        searcher.search(query.as_ref(), &Keys).map_err(failed)
    }

    /// The query for `needle`, None when nothing can hold it.
    fn query(&self, needle: &str) -> Option<Box<dyn Query>> {
        if needle.contains(FIELD_BREAK) {
            return None;
        }
        let term = |t: &Token| Term::from_field_text(self.text, &t.text);
        let tokens = grams(needle);
        let full: Vec<(usize, Term)> =
            tokens.iter().filter(|t| t.text.chars().count() == GRAM).map(|t| (t.position, term(t))).collect();
        Some(match (full.len(), tokens.first()) {
            (_, None) => Box::new(tantivy::query::AllQuery),
            // Shorter than a window: the needle begins some token.
            (0, Some(t)) => Box::new(PhrasePrefixQuery::new(vec![term(t)])),
            (1, _) => Box::new(TermQuery::new(full.into_iter().next()?.1, IndexRecordOption::Basic)),
            _ => Box::new(PhraseQuery::new_with_offset(full)),
        })
    }
}

/// Collects the key of every matching document.
struct Keys;

struct SegmentKeys {
    column: Option<StrColumn>,
    ords: Vec<u64>,
}

impl Collector for Keys {
    type Fruit = BTreeSet<String>;
    type Child = SegmentKeys;

    fn for_segment(&self, _: u32, segment: &SegmentReader) -> tantivy::Result<SegmentKeys> {
        Ok(SegmentKeys { column: segment.fast_fields().str("key")?, ords: Vec::new() })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<BTreeSet<String>>) -> tantivy::Result<BTreeSet<String>> {
        Ok(fruits.into_iter().flatten().collect())
    }
}

impl SegmentCollector for SegmentKeys {
    type Fruit = BTreeSet<String>;

    fn collect(&mut self, doc: DocId, _: Score) {
        if let Some(c) = &self.column {
            self.ords.extend(c.term_ords(doc));
        }
    }

    fn harvest(mut self) -> BTreeSet<String> {
        let Some(column) = self.column else { return BTreeSet::new() };
        // In dictionary order, so the lookups walk it once.
        self.ords.sort_unstable();
        let mut out = BTreeSet::new();
        for ord in self.ords {
            let mut key = String::new();
            if let Ok(true) = column.ord_to_str(ord, &mut key) {
                out.insert(key);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn index(docs: &[(&str, &str)]) -> TextIndex {
        let ix = TextIndex::new().unwrap();
        for (k, t) in docs {
            ix.insert(k, t).unwrap();
        }
        ix
    }

    fn found(ix: &TextIndex, needle: &str) -> Vec<String> {
        ix.keys(needle).unwrap().into_iter().collect()
    }

    #[test]
    fn grams_cover_every_position_and_stop_at_field_breaks() {
        let g: Vec<(usize, String)> = grams("abcd\0xy").into_iter().map(|t| (t.position, t.text)).collect();
        let want = [(0, "abc"), (1, "bcd"), (2, "cd"), (3, "d"), (5, "xy"), (6, "y")];
        assert_eq!(g, want.map(|(p, t)| (p, t.to_string())));
    }

    #[test]
    fn finds_substrings_in_any_script() {
        let ix =
            index(&[("a", "border liaison desk 1\0poipet"), ("b", "ศูนย์ปฏิบัติการต่อต้านการค้ามนุษย์\0"), ("c", "desk\0one")]);
        assert_eq!(found(&ix, "desk 1"), ["a"]);
        assert_eq!(found(&ix, "iaison d"), ["a"]);
        assert_eq!(found(&ix, "ค้ามนุษย์"), ["b"]);
        assert_eq!(found(&ix, "desk"), ["a", "c"]);
        assert_eq!(found(&ix, "t"), ["a"]);
        assert_eq!(found(&ix, "1"), ["a"]);
        assert_eq!(found(&ix, ""), ["a", "b", "c"]);
        // Never across two fields.
        assert!(found(&ix, "desk one").is_empty());
        assert!(found(&ix, "deskone").is_empty());
        assert!(found(&ix, "k\0o").is_empty());
    }

    #[test]
    fn changes_replace_and_remove() {
        let ix = index(&[("a", "alpha"), ("b", "beta")]);
        assert_eq!(found(&ix, "alpha"), ["a"]);
        ix.put("a", Some("gamma")).unwrap();
        ix.put("b", None).unwrap();
        // Applied twice (an edit re-applied after a load) changes nothing.
        ix.put("b", None).unwrap();
        assert!(found(&ix, "alpha").is_empty());
        assert!(found(&ix, "beta").is_empty());
        assert_eq!(found(&ix, "amm"), ["a"]);
    }

    #[test]
    fn many_changes_between_searches_are_committed_on_the_way() {
        let ix = TextIndex::new().unwrap();
        for i in 0..COMMIT_EVERY + 5 {
            ix.put(&format!("k{i}"), Some(&format!("text {i}"))).unwrap();
        }
        assert_eq!(ix.writer.lock().unwrap().uncommitted, 5);
        ix.put("k3", None).unwrap();
        let threes = found(&ix, "text 3");
        assert!(!threes.contains(&"k3".to_string()) && threes.contains(&"k3999".to_string()), "{threes:?}");
        assert_eq!(found(&ix, "text 9999"), ["k9999"]);
        assert_eq!(found(&ix, "text 10004"), ["k10004"]);
        assert_eq!(ix.writer.lock().unwrap().uncommitted, 0);
    }

    fn text() -> impl Strategy<Value = String> {
        // A small alphabet so needles often occur; a field break and Thai.
        proptest::collection::vec(prop::sample::select(vec!['a', 'b', 'a', ' ', '\0', 'ก', 'า']), 0..24)
            .prop_map(|c| c.into_iter().collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// The index finds exactly what a scan of the texts finds.
        #[test]
        fn same_as_a_scan(texts in proptest::collection::vec(text(), 1..12), needles in proptest::collection::vec(text(), 1..6)) {
            let ix = TextIndex::new().unwrap();
            for (i, t) in texts.iter().enumerate() {
                ix.put(&format!("k{i:02}"), Some(t)).unwrap();
            }
            for n in needles.iter().map(|n| n.chars().take(5).collect::<String>()) {
                let scan: BTreeSet<String> = texts
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| crate::record::text_contains(t, &n))
                    .map(|(i, _)| format!("k{i:02}"))
                    .collect();
                prop_assert_eq!(ix.keys(&n).unwrap(), scan, "needle {:?}", n);
            }
        }
    }
}
