//! Partial updates (AIP-134): which fields of a record an update writes,
//! named by an `update_mask` of snake_case field paths. Applied on the
//! records' proto3 JSON form, so every field of every body is reachable
//! without a hand-written copy per field.

use serde_json::{Map, Value};

use super::FieldError;
use crate::pb;

/// Fields only the node sets: an update never names them.
const NODE_SET: &[&str] =
    &["id", "originator", "version", "create_time", "update_time", "withdrawn", "redacted_fields"];
const BODIES: &[&str] =
    &["contact_point", "intelligence_report", "entity", "victim_referral", "statistics_report", "regional_aggregate"];

fn bad(reason: impl Into<String>) -> FieldError {
    FieldError { field: "update_mask".into(), reason: reason.into() }
}

/// A proto field name as proto3 JSON spells it (`contact_point` → `contactPoint`).
pub fn json_name(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    let mut up = false;
    for c in segment.chars() {
        if c == '_' {
            up = true;
        } else if up {
            out.extend(c.to_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// `current` with the fields `paths` name taken from `patch` (a named
/// field left unset in `patch` is cleared). No paths, or "*", take
/// handling, external_reference and body from `patch` whole.
pub fn apply(current: &pb::Record, patch: &pb::Record, paths: &[String]) -> Result<pb::Record, FieldError> {
    if paths.is_empty() || paths.iter().any(|p| p == "*") {
        if paths.len() > 1 {
            return Err(bad("\"*\" stands alone"));
        }
        return Ok(pb::Record {
            handling: patch.handling,
            external_reference: patch.external_reference.clone(),
            body: patch.body.clone(),
            ..current.clone()
        });
    }
    let encode = |r: &pb::Record| serde_json::to_value(r).map_err(|e| bad(format!("record does not encode: {e}")));
    let mut cur = encode(current)?;
    let from = encode(patch)?;
    for path in paths {
        let segments: Vec<&str> = path.split('.').collect();
        let valid = segments
            .iter()
            .all(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
        let Some(first) = segments.first().copied().filter(|_| valid) else {
            return Err(bad(format!("{path:?} is not a field path like \"contact_point.channels\"")));
        };
        if NODE_SET.contains(&first) {
            return Err(bad(format!("{first} is set by the node and cannot be updated")));
        }
        // The body an update names must be the record's own kind.
        if BODIES.contains(&first) && cur.get(json_name(first)).is_none() {
            return Err(bad(format!("{path}: the record is not a {first}")));
        }
        let camels: Vec<String> = segments.iter().map(|s| json_name(s)).collect();
        known(&camels).map_err(|e| bad(format!("{path}: {e}")))?;
        let value = lookup(&from, &camels).cloned();
        set(&mut cur, &camels, value).map_err(|e| bad(format!("{path}: {e}")))?;
    }
    serde_json::from_value(cur).map_err(|e| bad(format!("the updated record does not decode: {e}")))
}

/// Whether a path names a real field: the record's JSON decoder refuses
/// unknown field names.
fn known(path: &[String]) -> Result<(), String> {
    let mut probe = Value::Null;
    for seg in path.iter().rev() {
        let mut m = Map::new();
        m.insert(seg.clone(), probe);
        probe = Value::Object(m);
    }
    match serde_json::from_value::<pb::Record>(probe) {
        // A null a field does not take is fine here: only the names matter.
        Err(e) if e.to_string().starts_with("unknown field") => Err(format!("no such field ({e})")),
        _ => Ok(()),
    }
}

fn lookup<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, seg| v.get(seg))
}

/// Sets (or, with None, removes) the value at `path`, creating the
/// messages on the way.
fn set(v: &mut Value, path: &[String], value: Option<Value>) -> Result<(), String> {
    let Some((last, parents)) = path.split_last() else { return Ok(()) };
    let mut at = v;
    for seg in parents {
        let obj = at.as_object_mut().ok_or("goes through a field that is not a message")?;
        at = obj.entry(seg.clone()).or_insert_with(|| Value::Object(Map::new()));
    }
    let obj = at.as_object_mut().ok_or("goes through a field that is not a message")?;
    match value {
        Some(x) => obj.insert(last.clone(), x),
        None => obj.remove(last),
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::examples;

    fn cp(name: &str, agency: &str) -> pb::Record {
        let mut r = examples::contact_point();
        if let Some(pb::record::Body::ContactPoint(c)) = r.body.as_mut() {
            c.name = name.into();
            c.agency = agency.into();
        }
        r
    }

    fn names(r: &pb::Record) -> (String, String) {
        match &r.body {
            Some(pb::record::Body::ContactPoint(c)) => (c.name.clone(), c.agency.clone()),
            _ => panic!("not a contact point"),
        }
    }

    #[test]
    fn only_the_named_fields_change() {
        let cur = pb::Record { external_reference: "CASE-1".into(), ..cp("Old name", "Old agency") };
        let patch = pb::Record { external_reference: "CASE-2".into(), ..cp("New name", "Ignored") };
        let out = apply(&cur, &patch, &["contact_point.name".into()]).unwrap();
        assert_eq!(names(&out), ("New name".into(), "Old agency".into()));
        assert_eq!(out.external_reference, "CASE-1");
        let out = apply(&cur, &patch, &["external_reference".into()]).unwrap();
        assert_eq!((names(&out).0, out.external_reference.as_str()), ("Old name".into(), "CASE-2"));
    }

    #[test]
    fn a_named_field_left_unset_is_cleared() {
        let cur = pb::Record { external_reference: "CASE-1".into(), ..cp("A", "B") };
        let patch = cp("A", "B");
        let out = apply(&cur, &patch, &["external_reference".into()]).unwrap();
        assert_eq!(out.external_reference, "");
    }

    #[test]
    fn no_mask_or_a_star_replaces_the_whole_record() {
        let cur = pb::Record { external_reference: "CASE-1".into(), ..cp("A", "B") };
        let patch = cp("C", "D");
        for paths in [vec![], vec!["*".to_string()]] {
            let out = apply(&cur, &patch, &paths).unwrap();
            assert_eq!((names(&out), out.external_reference.as_str()), (("C".into(), "D".into()), ""));
            assert_eq!((out.id.as_str(), out.version), (cur.id.as_str(), cur.version));
        }
    }

    #[test]
    fn node_set_unknown_and_foreign_paths_are_refused() {
        let cur = cp("A", "B");
        for path in ["version", "originator", "contact_point.bogus", "Contact_point", "", "entity.name", "handling.x"] {
            let e = apply(&cur, &cur, &[path.to_string()]).unwrap_err();
            assert_eq!(e.field, "update_mask", "{path}");
        }
    }
}
