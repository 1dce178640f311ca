//! The exchange formats this field already speaks: STIX 2.1 ([`stix`]),
//! MISP events ([`misp`]) and FollowTheMoney entities ([`ftm`]).
//!
//! Export takes records as the caller may show them (already policy-checked
//! and pseudonymised) and still never writes a victim referral or an
//! `external_reference`. Import reads untrusted JSON: it never panics, names
//! every problem by its JSON path (`objects[3].name`), and runs
//! [`crate::record::validate`] on every record it makes. Imported records get
//! ids derived from the foreign id (`stix-<uuid>`, `misp-<uuid>`,
//! `ftm-<hash>`), so importing the same data again updates the same records.
//!
//! Pure: no IO, no clock (the caller passes `now` where one is needed).

pub mod ftm;
pub mod misp;
pub mod stix;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::convert::ProtoEnum;
use crate::pb;
use crate::pb::record::Body;
use crate::record::FieldError;

/// One thing wrong with an imported document, at its JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub reason: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

pub(crate) fn problem(path: impl Into<String>, reason: impl Into<String>) -> Problem {
    Problem { path: path.into(), reason: reason.into() }
}

/// `originator/id`: what every derived export id hangs on, so re-exporting
/// any version of a record gives the same ids.
pub(crate) fn record_key(rec: &pb::Record) -> String {
    format!("{}/{}", rec.originator, rec.id)
}

/// Victim referrals never leave through these formats, whatever the caller
/// passes; the other kinds each format knows are chosen by the format.
pub(crate) fn exportable(rec: &pb::Record) -> bool {
    !matches!(rec.body, None | Some(Body::VictimReferral(_)))
}

/// SHA-256 of `namespace NUL key`.
fn digest(namespace: &str, key: &str) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(namespace.as_bytes());
    h.update([0u8]);
    h.update(key.as_bytes());
    h.finalize().to_vec()
}

/// A deterministic RFC 4122 UUID for `key` within `namespace`: the first 16
/// bytes of [`digest`] with the version 4 and variant bits set. Version 4,
/// not 5 (which would be SHA-1 based): stix2-validator wants v4 for domain
/// objects, and nothing reads the bits back.
pub(crate) fn uuid(namespace: &str, key: &str) -> String {
    let mut out = String::with_capacity(36);
    for (i, b) in digest(namespace, key).into_iter().take(16).enumerate() {
        let b = match i {
            6 => (b & 0x0f) | 0x40,
            8 => (b & 0x3f) | 0x80,
            _ => b,
        };
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push_str(&hex::encode([b]));
    }
    out
}

/// `len` lowercase hex characters of [`digest`] (at most 64).
pub(crate) fn hash_hex(namespace: &str, key: &str, len: usize) -> String {
    hex::encode(digest(namespace, key)).chars().take(len).collect()
}

/// True for a UUID in its canonical text form (any version, any case).
pub(crate) fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| if matches!(i, 8 | 13 | 18 | 23) { c == '-' } else { c.is_ascii_hexdigit() })
}

/// RFC 3339 in UTC with exactly three fractional digits and `Z`, as STIX
/// wants for `created` and `modified`.
pub(crate) fn rfc3339_ms(t: OffsetDateTime) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    t.to_offset(time::UtcOffset::UTC).format(&fmt).unwrap_or_default()
}

pub(crate) fn parse_rfc3339(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

/// A record's time, or `fallback` when it has none or it is out of range.
pub(crate) fn record_time(t: Option<&pbjson_types::Timestamp>, fallback: OffsetDateTime) -> OffsetDateTime {
    t.and_then(crate::convert::from_timestamp).unwrap_or(fallback)
}

/// The heading exported for a report without a title: the first line of its
/// summary, cut to the longest title a record takes. Import reads the
/// heading back as the title, so an untitled report comes back titled.
pub(crate) fn heading(r: &pb::IntelligenceReport) -> String {
    if !r.title.trim().is_empty() {
        return r.title.clone();
    }
    let first = r.summary.lines().find(|l| !l.trim().is_empty()).unwrap_or("Intelligence report");
    first.trim().chars().take(crate::record::MAX_NAME).collect()
}

/// TLP word for a handling code (`amber+strict`); empty for none.
pub(crate) fn tlp_word(handling: i32) -> String {
    pb::HandlingCode::of(handling)
        .filter(|h| *h != pb::HandlingCode::Unspecified)
        .map(crate::convert::handling_word)
        .unwrap_or_default()
}

/// Handling for a TLP word (`clear`, `white` as TLP 1.0's name for it,
/// `green`, `amber`, `amber+strict`, `red`), in any case.
pub(crate) fn tlp_from_word(w: &str) -> Option<pb::HandlingCode> {
    let w = w.trim().to_ascii_lowercase();
    if w == "white" {
        return Some(pb::HandlingCode::Clear);
    }
    crate::convert::handling_from_word(&w)
}

/// Of several TLP markings on one object, the most restrictive applies.
pub(crate) fn strictest(a: Option<pb::HandlingCode>, b: pb::HandlingCode) -> pb::HandlingCode {
    match a {
        Some(a) if (a as i32) > (b as i32) => a,
        _ => b,
    }
}

/// Runs [`crate::record::validate`] on an imported record, naming a failure
/// by the source path `map` gives for the record's field path (the part
/// after `record.<kind>.`, or the whole path for `record.id`/`handling`).
pub(crate) fn validated(rec: pb::Record, map: impl Fn(&str) -> String) -> Result<pb::Record, Problem> {
    match crate::record::validate(&rec) {
        Ok(()) => Ok(rec),
        Err(FieldError { field, reason }) => {
            let rest = field.strip_prefix("record.").unwrap_or(&field);
            let rest = rest.split_once('.').map_or(rest, |(_, r)| r);
            Err(problem(map(rest), reason))
        }
    }
}

/// A JSON object being read, with its path for problems.
pub(crate) struct Obj<'a> {
    pub(crate) map: &'a Map<String, Value>,
    pub(crate) path: String,
}

impl<'a> Obj<'a> {
    pub(crate) fn of(v: &'a Value, path: impl Into<String>) -> Result<Self, Problem> {
        let path = path.into();
        match v {
            Value::Object(map) => Ok(Obj { map, path }),
            _ => Err(problem(path, "must be a JSON object")),
        }
    }

    /// The path of `key` in this object.
    pub(crate) fn at(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// A string property; `None` when absent or null.
    pub(crate) fn str(&self, key: &str) -> Result<Option<&'a str>, Problem> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(problem(self.at(key), "must be a string")),
        }
    }

    /// A string property that must be present and not blank.
    pub(crate) fn required(&self, key: &str) -> Result<&'a str, Problem> {
        match self.str(key)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            _ => Err(problem(self.at(key), "required")),
        }
    }

    /// An array property; empty when absent or null.
    pub(crate) fn list(&self, key: &str) -> Result<&'a [Value], Problem> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(&[]),
            Some(Value::Array(a)) => Ok(a),
            Some(_) => Err(problem(self.at(key), "must be an array")),
        }
    }

    /// An array of strings; empty when absent or null.
    pub(crate) fn strings(&self, key: &str) -> Result<Vec<&'a str>, Problem> {
        self.list(key)?
            .iter()
            .enumerate()
            .map(|(i, v)| v.as_str().ok_or_else(|| problem(format!("{}[{i}]", self.at(key)), "must be a string")))
            .collect()
    }

    /// An object property; `None` when absent or null.
    pub(crate) fn obj(&self, key: &str) -> Result<Option<Obj<'a>>, Problem> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => Obj::of(v, self.at(key)).map(Some),
        }
    }
}

/// Arbitrary JSON for the import properties: objects use `keys`, strings
/// are often one of `words`, so generated documents reach deep paths.
#[cfg(test)]
pub(crate) fn arbitrary_json(
    keys: &[&'static str],
    words: &[&'static str],
) -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let key = prop::sample::select(keys.to_vec());
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        any::<f64>().prop_map(|n| serde_json::json!(n)),
        prop::sample::select(words.to_vec()).prop_map(|s| serde_json::json!(s)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_deterministic_v4_rfc4122() {
        let a = uuid("ns", "th-atpd/ir-1");
        assert_eq!(a, uuid("ns", "th-atpd/ir-1"));
        assert_ne!(a, uuid("ns", "th-atpd/ir-2"));
        assert_ne!(a, uuid("other", "th-atpd/ir-1"));
        assert!(is_uuid(&a), "{a}");
        assert_eq!(a.chars().nth(14), Some('4'));
        assert!(matches!(a.chars().nth(19), Some('8' | '9' | 'a' | 'b')), "{a}");
        assert!(!is_uuid("not-a-uuid"));
        assert!(!is_uuid(&a.replace('-', "x")));
    }

    #[test]
    fn times_have_milliseconds_and_z() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_780_000_000_123_456_789).unwrap();
        assert_eq!(rfc3339_ms(t), "2026-05-28T20:26:40.123Z");
        assert_eq!(parse_rfc3339(&rfc3339_ms(t)).map(|p| p.unix_timestamp()), Some(t.unix_timestamp()));
    }

    #[test]
    fn tlp_words() {
        for h in [
            pb::HandlingCode::Clear,
            pb::HandlingCode::Green,
            pb::HandlingCode::Amber,
            pb::HandlingCode::AmberStrict,
            pb::HandlingCode::Red,
        ] {
            assert_eq!(tlp_from_word(&tlp_word(h as i32)), Some(h));
        }
        assert_eq!(tlp_word(pb::HandlingCode::AmberStrict as i32), "amber+strict");
        assert_eq!(tlp_from_word("WHITE"), Some(pb::HandlingCode::Clear));
        assert_eq!(tlp_from_word("ex:chr"), None);
        assert_eq!(strictest(Some(pb::HandlingCode::Red), pb::HandlingCode::Green), pb::HandlingCode::Red);
    }
}
