//! Synthetic records shaped like a unit's real ones (the example records of
//! every kind, with numbered names, identifiers and text), so that record
//! sizes, signatures and indexes are what a node really handles.

use crate::pb;
use crate::record::examples;

/// An intelligence report or an entity (alternately): what peers query.
pub fn intelligence(i: u64) -> pb::Record {
    if i % 2 == 0 {
        let mut r = examples::intelligence_report();
        r.id = format!("ir-{i:07}");
        if let Some(pb::record::Body::IntelligenceReport(b)) = r.body.as_mut() {
            b.title = format!("Recruitment route {} report {i}", i % 97);
            b.summary = format!(
                "Report {i}: movements on route {} observed by patrol {}; {}.",
                i % 97,
                i % 13,
                batch_tag((i / 2) % 500)
            );
        }
        r
    } else {
        entity(i)
    }
}

/// A tag shared by every 500th report, which a filtered listing finds.
pub fn batch_tag(b: u64) -> String {
    format!("batch B{b:03}")
}

/// The passport number entity `i` carries (what hit checks look for).
pub fn passport(i: u64) -> String {
    format!("P{i:08}")
}

/// An entity with one passport and one phone number.
pub fn entity(i: u64) -> pb::Record {
    let mut r = examples::entity();
    r.id = format!("en-{i:07}");
    if let Some(pb::record::Body::Entity(e)) = r.body.as_mut() {
        e.names = vec![format!("Person {i}")];
        e.aliases.clear();
        e.identifiers = vec![
            pb::Identifier { r#type: pb::IdentifierType::Passport as i32, value: passport(i), country: "KH".into() },
            pb::Identifier {
                r#type: pb::IdentifierType::Phone as i32,
                value: format!("+855 1{:08}", i % 100_000_000),
                country: String::new(),
            },
        ];
    }
    r
}

/// A contact point (what sync carries).
pub fn contact_point(i: u64) -> pb::Record {
    let mut r = examples::contact_point();
    r.id = format!("cp-{i:07}");
    if let Some(pb::record::Body::ContactPoint(c)) = r.body.as_mut() {
        c.name = format!("Liaison desk {i}");
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_records_are_valid_and_distinct() {
        for i in [0, 1, 2, 999_999] {
            for r in [intelligence(i), entity(i), contact_point(i)] {
                crate::record::validate(&r).unwrap_or_else(|e| panic!("{}: {e:?}", r.id));
            }
        }
        assert_ne!(entity(1).id, entity(2).id);
        assert_ne!(passport(1), passport(2));
    }
}
