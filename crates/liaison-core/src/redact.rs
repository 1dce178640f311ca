//! Field-level redaction: which fields are protected, which fields a grant
//! may name, and the pure function that removes them from a record.
//!
//! Field paths are `<kind>.<field>[.<sub-field>]`, e.g.
//! `victim_referral.identity.full_name`. Naming a message field
//! (`victim_referral.identity`) covers all of its sub-fields.

use std::collections::BTreeSet;

use crate::pb;
use crate::pb::record::Body;
use crate::pb::RecordKind;

/// Protected fields: they leave a node only where a grant names them.
/// Victim identity, and notes (free text that may identify the person).
pub const PROTECTED_FIELDS: &[&str] = &[
    "victim_referral.identity.full_name",
    "victim_referral.identity.date_of_birth",
    "victim_referral.identity.identity_document",
    "victim_referral.identity.address",
    "victim_referral.identity.family_contact",
    "victim_referral.notes",
];

/// The victim's identity as a whole.
pub const VICTIM_IDENTITY: &str = "victim_referral.identity";

/// Every field path a grant may name (release or redact), per kind.
pub const REDACTABLE_FIELDS: &[&str] = &[
    "contact_point.channels",
    "contact_point.availability",
    "contact_point.languages",
    "intelligence_report.subject_entity_ids",
    "intelligence_report.route",
    "intelligence_report.modus_operandi",
    "intelligence_report.period",
    "entity.aliases",
    "entity.identifiers",
    "entity.evidence_basis",
    "entity.source_state",
    "entity.review_by",
    "victim_referral.identity",
    "victim_referral.identity.full_name",
    "victim_referral.identity.date_of_birth",
    "victim_referral.identity.identity_document",
    "victim_referral.identity.address",
    "victim_referral.identity.family_contact",
    "victim_referral.notes",
    "victim_referral.preferred_language",
    "victim_referral.risk_assessment",
    "victim_referral.best_interest_determination",
    "victim_referral.non_refoulement_check",
    "statistics_report.framework",
];

pub fn kind_prefix(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::ContactPoint => "contact_point",
        RecordKind::IntelligenceReport => "intelligence_report",
        RecordKind::Entity => "entity",
        RecordKind::VictimReferral => "victim_referral",
        RecordKind::StatisticsReport => "statistics_report",
        RecordKind::RegionalAggregate => "regional_aggregate",
        RecordKind::Unspecified => "",
    }
}

/// True if `path` is a field a grant may name.
pub fn is_known_field(path: &str) -> bool {
    REDACTABLE_FIELDS.contains(&path)
}

/// True if naming `named` covers `field` (equal, or `named` is a parent).
pub fn covers(named: &str, field: &str) -> bool {
    field == named || (field.starts_with(named) && field.as_bytes().get(named.len()) == Some(&b'.'))
}

/// Protected fields of `kind`.
pub fn protected_fields(kind: RecordKind) -> impl Iterator<Item = &'static str> {
    let prefix = kind_prefix(kind);
    PROTECTED_FIELDS
        .iter()
        .copied()
        .filter(move |f| !prefix.is_empty() && f.starts_with(prefix) && f.as_bytes().get(prefix.len()) == Some(&b'.'))
}

/// What to remove from a record before it leaves the node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedactionPlan {
    pub remove: BTreeSet<String>,
}

impl RedactionPlan {
    /// The plan a grant implies for `kind`: every protected field it does not
    /// release, plus the fields it always redacts.
    pub fn for_grant(kind: RecordKind, released: &[String], redacted: &[String]) -> Self {
        let mut remove: BTreeSet<String> =
            protected_fields(kind).filter(|f| !released.iter().any(|r| covers(r, f))).map(str::to_string).collect();
        let prefix = kind_prefix(kind);
        remove.extend(redacted.iter().filter(|r| r.starts_with(prefix)).cloned());
        Self { remove }
    }

    /// True if the plan removes `field` (directly or through a parent).
    pub fn removes(&self, field: &str) -> bool {
        self.remove.iter().any(|r| covers(r, field))
    }

    /// True if the plan removes the whole victim identity.
    pub fn strips_identity(&self) -> bool {
        protected_fields(RecordKind::VictimReferral).filter(|f| covers(VICTIM_IDENTITY, f)).all(|f| self.removes(f))
    }
}

/// Returns the record without the planned fields, listing what was removed.
pub fn redact(record: &pb::Record, plan: &RedactionPlan) -> pb::Record {
    let mut out = record.clone();
    let rm = |f: &str| plan.removes(f);
    match out.body.as_mut() {
        Some(Body::ContactPoint(c)) => {
            if rm("contact_point.channels") {
                c.channels.clear();
            }
            if rm("contact_point.availability") {
                c.availability = None;
            }
            if rm("contact_point.languages") {
                c.languages.clear();
            }
        }
        Some(Body::IntelligenceReport(i)) => {
            if rm("intelligence_report.subject_entity_ids") {
                i.subject_entity_ids.clear();
            }
            if rm("intelligence_report.route") {
                i.route.clear();
            }
            if rm("intelligence_report.modus_operandi") {
                i.modus_operandi.clear();
            }
            if rm("intelligence_report.period") {
                i.period_start.clear();
                i.period_end.clear();
            }
        }
        Some(Body::Entity(e)) => {
            if rm("entity.aliases") {
                e.aliases.clear();
            }
            if rm("entity.identifiers") {
                e.identifiers.clear();
            }
            if rm("entity.evidence_basis") {
                e.evidence_basis.clear();
            }
            if rm("entity.source_state") {
                e.source_state.clear();
            }
            if rm("entity.review_by") {
                e.review_by.clear();
            }
        }
        Some(Body::VictimReferral(v)) => {
            if let Some(id) = v.identity.as_mut() {
                if rm("victim_referral.identity.full_name") {
                    id.full_name.clear();
                }
                if rm("victim_referral.identity.date_of_birth") {
                    id.date_of_birth.clear();
                }
                if rm("victim_referral.identity.identity_document") {
                    id.identity_document.clear();
                }
                if rm("victim_referral.identity.address") {
                    id.address.clear();
                }
                if rm("victim_referral.identity.family_contact") {
                    id.family_contact.clear();
                }
                if *id == pb::VictimIdentity::default() {
                    v.identity = None;
                }
            }
            if rm("victim_referral.notes") {
                v.notes.clear();
            }
            if rm("victim_referral.preferred_language") {
                v.preferred_language.clear();
            }
            if rm("victim_referral.risk_assessment") {
                v.risk_assessment = None;
            }
            if rm("victim_referral.best_interest_determination") {
                v.best_interest_determination = None;
            }
            if rm("victim_referral.non_refoulement_check") {
                v.non_refoulement_check = None;
            }
        }
        Some(Body::StatisticsReport(s)) if rm("statistics_report.framework") => {
            s.framework.clear();
        }
        Some(Body::StatisticsReport(_)) | Some(Body::RegionalAggregate(_)) => {}
        None => {}
    }
    let prefix = crate::record::kind(record).map(kind_prefix).unwrap_or_default();
    let mut removed: BTreeSet<String> = out.redacted_fields.drain(..).collect();
    removed.extend(plan.remove.iter().filter(|f| f.starts_with(prefix)).cloned());
    out.redacted_fields = removed.into_iter().collect();
    out
}

/// Fields `plan` removes that still hold a value in `record`, most specific
/// first. A receiver cannot redact a record its originator signed, so it
/// refuses one that carries any of these.
pub fn carried(record: &pb::Record, plan: &RedactionPlan) -> Vec<String> {
    let Some(kind) = crate::record::kind(record) else { return Vec::new() };
    let prefix = kind_prefix(kind);
    // Compare against the record as `redact` normalises it (an empty identity
    // counts as absent), so only real values are reported.
    let baseline = redact(record, &RedactionPlan::default()).body;
    let fields = REDACTABLE_FIELDS
        .iter()
        .chain(PROTECTED_FIELDS)
        .copied()
        .filter(|f| f.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('.')) && plan.removes(f));
    let mut out: Vec<String> = Vec::new();
    for f in fields {
        let one = RedactionPlan { remove: BTreeSet::from([f.to_string()]) };
        if redact(record, &one).body != baseline && !out.iter().any(|o| o == f) {
            out.push(f.to_string());
        }
    }
    // Name the leaf ("…identity.full_name"), not its parent as well.
    let leaves: Vec<String> = out.iter().filter(|f| !out.iter().any(|g| g != *f && covers(f, g))).cloned().collect();
    leaves
}

/// The record with every protected field removed (for listings and feeds).
pub fn pseudonymise(record: &pb::Record) -> pb::Record {
    let Some(kind) = crate::record::kind(record) else {
        return record.clone();
    };
    let plan = RedactionPlan { remove: protected_fields(kind).map(str::to_string).collect() };
    if plan.remove.is_empty() || !holds_protected(record) {
        return record.clone();
    }
    redact(record, &plan)
}

/// True if the record carries any part of a victim's identity.
pub fn holds_identity(record: &pb::Record) -> bool {
    matches!(&record.body, Some(Body::VictimReferral(v)) if v.identity.as_ref().is_some_and(|i| *i != pb::VictimIdentity::default()))
}

/// True if any protected field of the record holds a value.
pub fn holds_protected(record: &pb::Record) -> bool {
    match &record.body {
        Some(Body::VictimReferral(v)) => {
            v.identity.as_ref().is_some_and(|i| *i != pb::VictimIdentity::default()) || !v.notes.is_empty()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::examples;
    use proptest::prelude::*;

    fn identity(r: &pb::Record) -> Option<pb::VictimIdentity> {
        match &r.body {
            Some(Body::VictimReferral(v)) => v.identity.clone(),
            _ => None,
        }
    }

    #[test]
    fn every_redactable_field_names_a_kind() {
        for f in REDACTABLE_FIELDS.iter().chain(PROTECTED_FIELDS) {
            assert!(
                ["contact_point.", "intelligence_report.", "entity.", "victim_referral.", "statistics_report."]
                    .iter()
                    .any(|p| f.starts_with(p)),
                "{f}"
            );
            assert!(is_known_field(f), "{f} must be nameable in a grant");
        }
    }

    #[test]
    fn default_plan_strips_victim_identity_and_notes() {
        let plan = RedactionPlan::for_grant(RecordKind::VictimReferral, &[], &[]);
        assert!(plan.strips_identity());
        let out = redact(&examples::victim_referral(), &plan);
        assert_eq!(identity(&out), None);
        assert!(out.redacted_fields.contains(&"victim_referral.identity.full_name".to_string()));
        // Non-protected facts stay.
        let Some(Body::VictimReferral(v)) = &out.body else { panic!() };
        assert_eq!(v.pseudonym, "VR-KH-0042");
    }

    #[test]
    fn releasing_identity_keeps_it_and_partial_release_keeps_only_that() {
        let plan = RedactionPlan::for_grant(RecordKind::VictimReferral, &[VICTIM_IDENTITY.into()], &[]);
        assert!(!plan.strips_identity());
        assert_eq!(identity(&redact(&examples::victim_referral(), &plan)).unwrap().full_name, "Chann Sreymom");
        let plan =
            RedactionPlan::for_grant(RecordKind::VictimReferral, &["victim_referral.identity.full_name".into()], &[]);
        let id = identity(&redact(&examples::victim_referral(), &plan)).unwrap();
        assert_eq!(id.full_name, "Chann Sreymom");
        assert!(id.address.is_empty() && id.identity_document.is_empty() && id.date_of_birth.is_empty());
    }

    #[test]
    fn grant_redactions_apply_to_their_kind_only() {
        let plan = RedactionPlan::for_grant(
            RecordKind::Entity,
            &[],
            &["entity.identifiers".into(), "contact_point.channels".into()],
        );
        let out = redact(&examples::entity(), &plan);
        let Some(Body::Entity(e)) = &out.body else { panic!() };
        assert!(e.identifiers.is_empty());
        assert_eq!(out.redacted_fields, vec!["entity.identifiers".to_string()]);
        let cp = redact(
            &examples::contact_point(),
            &RedactionPlan::for_grant(RecordKind::ContactPoint, &[], &["contact_point.channels".into()]),
        );
        let Some(Body::ContactPoint(c)) = &cp.body else { panic!() };
        assert!(c.channels.is_empty());
    }

    #[test]
    fn carried_names_each_withheld_field_that_holds_a_value() {
        let rec = examples::victim_referral();
        let plan = RedactionPlan::for_grant(RecordKind::VictimReferral, &[], &[]);
        let carried = carried(&rec, &plan);
        assert!(carried.contains(&"victim_referral.identity.full_name".to_string()), "{carried:?}");
        assert!(!carried.iter().any(|f| f == VICTIM_IDENTITY), "leaves only: {carried:?}");
        // A properly redacted copy carries nothing the plan withholds.
        assert!(super::carried(&redact(&rec, &plan), &plan).is_empty());
        // Releasing the identity leaves only what else the plan removes.
        let open = RedactionPlan::for_grant(RecordKind::VictimReferral, &[VICTIM_IDENTITY.into()], &[]);
        assert!(super::carried(&rec, &open).iter().all(|f| !f.contains(".identity")));
        // An empty identity is no value.
        let mut empty = redact(&rec, &plan);
        if let Some(Body::VictimReferral(v)) = empty.body.as_mut() {
            v.identity = Some(pb::VictimIdentity::default());
        }
        assert!(super::carried(&empty, &plan).is_empty());
        // Grant redactions of other kinds do not apply.
        let en = RedactionPlan::for_grant(RecordKind::Entity, &[], &["entity.evidence_basis".into()]);
        assert_eq!(super::carried(&examples::entity(), &en), vec!["entity.evidence_basis".to_string()]);
        assert!(super::carried(&examples::contact_point(), &en).is_empty());
    }

    fn arb_released() -> impl Strategy<Value = Vec<String>> {
        proptest::sample::subsequence(
            REDACTABLE_FIELDS
                .iter()
                .filter(|f| f.starts_with("victim_referral"))
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
            0..4,
        )
    }

    proptest! {
        #[test]
        fn a_redacted_record_never_holds_an_unreleased_protected_field(
            released in arb_released(),
            name in "[A-Za-z ]{1,20}", doc in "[A-Z0-9]{1,12}", addr in "[a-z ]{1,30}", contact in "[0-9+ ]{1,15}", notes in ".{0,40}", dob in "[0-9-]{0,10}",
        ) {
            let mut rec = examples::victim_referral();
            if let Some(Body::VictimReferral(v)) = rec.body.as_mut() {
                v.identity = Some(pb::VictimIdentity { full_name: name, date_of_birth: dob, identity_document: doc, address: addr, family_contact: contact });
                v.notes = notes;
            }
            let plan = RedactionPlan::for_grant(RecordKind::VictimReferral, &released, &[]);
            let out = redact(&rec, &plan);
            let Some(Body::VictimReferral(v)) = &out.body else { panic!() };
            let id = v.identity.clone().unwrap_or_default();
            let values = [
                ("victim_referral.identity.full_name", id.full_name.is_empty()),
                ("victim_referral.identity.date_of_birth", id.date_of_birth.is_empty()),
                ("victim_referral.identity.identity_document", id.identity_document.is_empty()),
                ("victim_referral.identity.address", id.address.is_empty()),
                ("victim_referral.identity.family_contact", id.family_contact.is_empty()),
                ("victim_referral.notes", v.notes.is_empty()),
            ];
            for (field, empty) in values {
                let is_released = released.iter().any(|r| covers(r, field));
                if !is_released {
                    prop_assert!(empty, "{} leaked with release {:?}", field, released);
                    prop_assert!(out.redacted_fields.iter().any(|r| covers(r, field)));
                }
            }
            // What the receiver checks agrees with what the sender removes:
            // the redacted copy carries nothing withheld, the original carries
            // exactly the withheld fields that hold a value.
            prop_assert!(carried(&out, &plan).is_empty());
            for f in carried(&rec, &plan) {
                prop_assert!(plan.removes(&f));
            }
        }
    }
}
