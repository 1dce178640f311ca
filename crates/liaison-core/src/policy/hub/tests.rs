use proptest::prelude::*;

use super::*;

const HUB: &str = "commit-hub";

fn t(s: &str) -> OffsetDateTime {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
}

fn now() -> OffsetDateTime {
    t("2027-03-01T00:00:00Z")
}

/// A membership agreement naming the hub, with `grants` (TOML blocks) and an SOP.
fn agreement(hub_field: &str, parties: &[&str], grants: &str, sop: bool) -> pb::Agreement {
    let parties: Vec<String> = parties.iter().map(|p| format!("\"{p}\"")).collect();
    let hub_line = if hub_field.is_empty() { String::new() } else { format!("hub = \"{hub_field}\"") };
    let sop_block = if sop {
        r#"
[sop]
name = "Test SOP"

[[sop.request_types]]
name = "information_request"
ack_within = "24h"
answer_within = "7d"
urgent_ack_within = "8h"
urgent_answer_within = "3d"
escalation_role = "unit_head"
"#
    } else {
        ""
    };
    let toml = format!(
        r#"
id = "membership"
version = 1
title = "Membership"
legal_basis = "Test"
parties = [{}]
valid_from = "2026-01-01"
valid_until = "2030-01-01"
{hub_line}

[retention]
days = 365
purge_on_revoke = true
{sop_block}
{grants}
"#,
        parties.join(", ")
    );
    crate::agreement::parse_toml(&toml).unwrap()
}

const CONTACTS: &str = r#"
[[grants]]
from = "*"
to = "*"
record_kinds = ["contact_point"]
purposes = ["coordination"]
operations = ["query", "sync", "push"]
max_handling = "green"
onward_sharing = "allowed"
"#;

fn membership() -> pb::Agreement {
    agreement(HUB, &[HUB, "th-atpd", "kh-antht"], CONTACTS, true)
}

fn active(a: pb::Agreement) -> Vec<(pb::Agreement, AgreementState)> {
    vec![(a, AgreementState::Active)]
}

fn entry(caller: &str) -> ContactRelease {
    ContactRelease {
        hub: HUB.into(),
        caller: caller.into(),
        caller_is_member: true,
        handling: HandlingCode::Green,
        onward: pb::OnwardSharing::Allowed,
        originator: "kh-antht".into(),
        redacted: vec![],
        at: now(),
    }
}

fn release_code(a: &[(pb::Agreement, AgreementState)], c: &ContactRelease) -> &'static str {
    match release_contact(a, c) {
        Ok(_) => "allow",
        Err(d) => d.code(),
    }
}

#[test]
fn a_member_under_the_hub_agreement_gets_a_contact_point_it_may_see() {
    let r = release_contact(&active(membership()), &entry("th-atpd")).unwrap();
    assert_eq!((r.agreement_id.as_str(), r.agreement_version), ("membership", 1));
    assert_eq!(r.onward, pb::OnwardSharing::Allowed);
    assert!(may_search(&active(membership()), HUB, "th-atpd", true, now()).is_ok());
}

#[test]
fn every_reason_the_directory_refuses_an_entry() {
    let a = active(membership());
    let mut c = entry("th-atpd");
    c.caller_is_member = false;
    assert_eq!(release_code(&a, &c), "not_a_member");
    assert_eq!(may_search(&a, HUB, "th-atpd", false, now()).unwrap_err().code(), "not_a_member");

    // A member that no agreement with the hub covers.
    assert_eq!(release_code(&a, &entry("la-dcta")), "no_agreement");
    assert_eq!(may_search(&a, HUB, "la-dcta", true, now()).unwrap_err().code(), "no_agreement");

    for state in [AgreementState::Suspended, AgreementState::Revoked, AgreementState::Expired] {
        let a = vec![(membership(), state)];
        assert_eq!(release_code(&a, &entry("th-atpd")), "agreement_not_active", "{state:?}");
        assert_eq!(may_search(&a, HUB, "th-atpd", true, now()).unwrap_err().code(), "agreement_not_active");
    }
    let mut late = entry("th-atpd");
    late.at = t("2031-01-01T00:00:00Z");
    assert_eq!(release_code(&a, &late), "outside_validity");

    let mut amber = entry("th-atpd");
    amber.handling = HandlingCode::Amber;
    assert_eq!(release_code(&a, &amber), "handling_above_grant");

    let mut forbidden = entry("th-atpd");
    forbidden.onward = pb::OnwardSharing::Forbidden;
    assert_eq!(release_code(&a, &forbidden), "onward_forbidden");
    let mut consent = entry("th-atpd");
    consent.onward = pb::OnwardSharing::WithConsent;
    assert_eq!(release_code(&a, &consent), "onward_consent_missing");

    // Contact points may flow to the hub but not from it.
    let inbound = CONTACTS.replace("to = \"*\"", &format!("to = \"{HUB}\""));
    let a = active(agreement(HUB, &[HUB, "th-atpd", "kh-antht"], &inbound, true));
    assert_eq!(release_code(&a, &entry("th-atpd")), "wrong_direction");

    let intel_only = CONTACTS.replace("contact_point", "intelligence_report");
    let a = active(agreement(HUB, &[HUB, "th-atpd", "kh-antht"], &intel_only, true));
    assert_eq!(release_code(&a, &entry("th-atpd")), "kind_not_granted");
}

#[test]
fn the_hub_never_releases_what_the_grant_would_redact() {
    let redacting =
        CONTACTS.replace("onward_sharing", "redacted_fields = [\"contact_point.channels\"]\nonward_sharing");
    let a = active(agreement(HUB, &[HUB, "th-atpd", "kh-antht"], &redacting, true));
    let err = release_contact(&a, &entry("th-atpd")).unwrap_err();
    assert_eq!(err.code(), "hub_cannot_redact");
    assert!(err.to_string().contains("contact_point.channels"), "{err}");
    // Already removed by the originator: nothing left to redact.
    let mut c = entry("th-atpd");
    c.redacted = vec!["contact_point.channels".into()];
    assert!(release_contact(&a, &c).is_ok());
}

fn relay(from: &str, to: &str) -> RelayFacts {
    RelayFacts {
        hub: HUB.into(),
        from: from.into(),
        to: to.into(),
        from_is_member: true,
        to_is_member: true,
        at: now(),
    }
}

fn relay_code(a: &[(pb::Agreement, AgreementState)], r: &RelayFacts) -> &'static str {
    match may_relay(a, r) {
        Ok(_) => "allow",
        Err(d) => d.code(),
    }
}

#[test]
fn the_hub_relays_only_under_an_active_agreement_that_names_it() {
    let a = active(membership());
    assert_eq!(may_relay(&a, &relay("th-atpd", "kh-antht")).unwrap().to_string(), "membership v1");
    assert_eq!(relay_code(&a, &relay("th-atpd", "th-atpd")), "same_node");
    let mut r = relay("th-atpd", "kh-antht");
    r.from_is_member = false;
    assert_eq!(relay_code(&a, &r), "not_a_member");
    let mut r = relay("th-atpd", "kh-antht");
    r.to_is_member = false;
    assert_eq!(relay_code(&a, &r), "not_a_member");
    assert_eq!(relay_code(&a, &relay("th-atpd", "la-dcta")), "no_hub_agreement");
    assert_eq!(relay_code(&[], &relay("th-atpd", "kh-antht")), "no_hub_agreement");

    // The hub is a party but the agreement does not name it as hub (or names another hub).
    for hub_field in ["", "other-hub"] {
        let a = active(agreement(hub_field, &[HUB, "th-atpd", "kh-antht"], CONTACTS, true));
        assert_eq!(relay_code(&a, &relay("th-atpd", "kh-antht")), "agreement_not_naming_hub", "{hub_field:?}");
    }
    let a = active(agreement(HUB, &["th-atpd", "kh-antht"], CONTACTS, true));
    assert_eq!(relay_code(&a, &relay("th-atpd", "kh-antht")), "not_a_party");
    for state in [AgreementState::Suspended, AgreementState::Revoked, AgreementState::Proposed] {
        assert_eq!(relay_code(&[(membership(), state)], &relay("th-atpd", "kh-antht")), "agreement_not_active");
    }
    let mut late = relay("th-atpd", "kh-antht");
    late.at = t("2031-01-01T00:00:00Z");
    assert_eq!(relay_code(&a, &late), "not_a_party", "the furthest reason of the only agreement");
    assert_eq!(relay_code(&active(membership()), &late), "outside_validity");

    // Direction: without an SOP, only the granted direction.
    let one_way = CONTACTS.replace("from = \"*\"", "from = \"th-atpd\"").replace("to = \"*\"", "to = \"kh-antht\"");
    let a = active(agreement(HUB, &[HUB, "th-atpd", "kh-antht"], &one_way, false));
    assert_eq!(relay_code(&a, &relay("th-atpd", "kh-antht")), "allow");
    assert_eq!(relay_code(&a, &relay("kh-antht", "th-atpd")), "wrong_direction");
    let a = active(agreement(HUB, &[HUB, "th-atpd", "kh-antht"], &one_way, true));
    assert_eq!(relay_code(&a, &relay("kh-antht", "th-atpd")), "allow", "SOP steps go both ways");

    // The furthest reason wins over an unrelated agreement.
    let a = vec![
        (agreement("", &[HUB, "th-atpd", "kh-antht"], CONTACTS, true), AgreementState::Active),
        (membership(), AgreementState::Suspended),
    ];
    assert_eq!(relay_code(&a, &relay("th-atpd", "kh-antht")), "agreement_not_active");
}

fn meta(caller: &str, from: &str, to: &str) -> MetadataFacts {
    MetadataFacts {
        hub: HUB.into(),
        caller: caller.into(),
        caller_is_member: true,
        agreement_id: "membership".into(),
        request_type: "information_request".into(),
        from: from.into(),
        to: to.into(),
        at: now(),
    }
}

fn meta_code(a: &[(pb::Agreement, AgreementState)], m: &MetadataFacts) -> &'static str {
    match accept_metadata(a, m) {
        Ok(_) => "allow",
        Err(d) => d.code(),
    }
}

#[test]
fn the_hub_takes_metadata_only_from_members_under_its_agreement() {
    let a = active(membership());
    assert_eq!(accept_metadata(&a, &meta("th-atpd", "th-atpd", "kh-antht")).unwrap().to_string(), "membership v1");
    assert_eq!(meta_code(&a, &meta("kh-antht", "th-atpd", "kh-antht")), "allow", "either end reports");
    let mut m = meta("la-dcta", "la-dcta", "kh-antht");
    m.caller_is_member = false;
    assert_eq!(meta_code(&a, &m), "not_a_member");
    assert_eq!(meta_code(&a, &meta("la-dcta", "th-atpd", "kh-antht")), "not_a_request_party");
    assert_eq!(meta_code(&a, &meta("th-atpd", "th-atpd", "th-atpd")), "same_node");
    assert_eq!(meta_code(&a, &meta("th-atpd", "th-atpd", "la-dcta")), "not_a_party");
    assert_eq!(meta_code(&a, &meta("la-dcta", "la-dcta", "th-atpd")), "not_a_party");
    let mut m = meta("th-atpd", "th-atpd", "kh-antht");
    m.agreement_id = "th-kh".into();
    assert_eq!(meta_code(&a, &m), "unknown_agreement");
    let mut m = meta("th-atpd", "th-atpd", "kh-antht");
    m.request_type = "extradition".into();
    assert_eq!(meta_code(&a, &m), "request_type_not_defined");
    for hub_field in ["", "other-hub"] {
        let a = active(agreement(hub_field, &[HUB, "th-atpd", "kh-antht"], CONTACTS, true));
        assert_eq!(meta_code(&a, &meta("th-atpd", "th-atpd", "kh-antht")), "agreement_not_naming_hub");
    }
    for state in [AgreementState::Suspended, AgreementState::Revoked, AgreementState::Expired] {
        assert_eq!(
            meta_code(&[(membership(), state)], &meta("th-atpd", "th-atpd", "kh-antht")),
            "agreement_not_active"
        );
    }
    let mut late = meta("th-atpd", "th-atpd", "kh-antht");
    late.at = t("2031-01-01T00:00:00Z");
    assert_eq!(meta_code(&a, &late), "outside_validity");
}

fn arb_state() -> impl Strategy<Value = AgreementState> {
    prop_oneof![
        3 => Just(AgreementState::Active),
        1 => Just(AgreementState::Suspended),
        1 => Just(AgreementState::Revoked),
        1 => Just(AgreementState::Proposed),
    ]
}

const NODES: [&str; 4] = [HUB, "th-atpd", "kh-antht", "la-dcta"];

/// An agreement with some of the nodes as parties, some `hub` field, grants
/// in some direction, with or without an SOP.
fn arb_agreement() -> impl Strategy<Value = (pb::Agreement, AgreementState)> {
    (
        proptest::sample::subsequence(NODES.to_vec(), 2..=4),
        prop_oneof![Just(HUB), Just(""), Just("other-hub")],
        prop_oneof![Just("*"), Just("th-atpd"), Just("kh-antht")],
        prop_oneof![Just("*"), Just("th-atpd"), Just("kh-antht"), Just(HUB)],
        any::<bool>(),
        prop_oneof![Just("green"), Just("amber")],
        arb_state(),
    )
        .prop_map(|(parties, hub, from, to, sop, max, state)| {
            // Grants may only name parties.
            let side = |n: &'static str| if n == "*" || parties.contains(&n) { n } else { "*" };
            let (from, to) = (side(from), side(to));
            let to = if to == from && to != "*" { "*" } else { to };
            let grants = CONTACTS
                .replace("from = \"*\"", &format!("from = \"{from}\""))
                .replace("to = \"*\"", &format!("to = \"{to}\""))
                .replace("\"green\"", &format!("\"{max}\""));
            (agreement(hub, &parties, &grants, sop), state)
        })
}

fn has(a: &pb::Agreement, n: &str) -> bool {
    a.parties.iter().any(|p| p == n)
}

/// A grant from `from` to `to` (written out again, independently of the engine).
fn granted(g: &pb::Grant, from: &str, to: &str) -> bool {
    let one_side_only = g.from == g.to && g.from != "*";
    (g.from == "*" || g.from == from) && (g.to == "*" || g.to == to) && !one_side_only
}

proptest! {
    /// Independent statement of the relay rule.
    #[test]
    fn relay_needs_every_condition(
        agreements in proptest::collection::vec(arb_agreement(), 0..3),
        from in proptest::sample::select(NODES[1..].to_vec()),
        to in proptest::sample::select(NODES[1..].to_vec()),
        from_member in any::<bool>(),
        to_member in any::<bool>(),
    ) {
        let r = RelayFacts { hub: HUB.into(), from: from.into(), to: to.into(), from_is_member: from_member, to_is_member: to_member, at: now() };
        let oracle = from != to && from_member && to_member && agreements.iter().any(|(a, s)| {
            *s == AgreementState::Active && a.hub == HUB && has(a, HUB) && has(a, from) && has(a, to)
                && (a.sop.is_some() || a.grants.iter().any(|g| granted(g, from, to)))
        });
        prop_assert_eq!(may_relay(&agreements, &r).is_ok(), oracle);
    }

    /// Independent statement of the directory rule.
    #[test]
    fn an_entry_is_released_only_when_every_condition_holds(
        agreements in proptest::collection::vec(arb_agreement(), 0..3),
        caller in proptest::sample::select(NODES[1..].to_vec()),
        member in any::<bool>(),
        handling in prop_oneof![Just(HandlingCode::Clear), Just(HandlingCode::Green), Just(HandlingCode::Amber), Just(HandlingCode::Red)],
        onward in prop_oneof![Just(pb::OnwardSharing::Allowed), Just(pb::OnwardSharing::WithConsent), Just(pb::OnwardSharing::Forbidden)],
    ) {
        let c = ContactRelease { handling, onward, caller_is_member: member, ..entry(caller) };
        let oracle = member && onward == pb::OnwardSharing::Allowed && agreements.iter().any(|(a, s)| {
            *s == AgreementState::Active && has(a, HUB) && has(a, caller)
                && a.grants.iter().any(|g| granted(g, HUB, caller) && (handling as i32) <= g.max_handling)
        });
        prop_assert_eq!(release_contact(&agreements, &c).is_ok(), oracle);
    }

    /// Independent statement of the metadata rule.
    #[test]
    fn metadata_is_taken_only_when_every_condition_holds(
        agreements in proptest::collection::vec(arb_agreement(), 0..3),
        caller in proptest::sample::select(NODES[1..].to_vec()),
        from in proptest::sample::select(NODES[1..].to_vec()),
        to in proptest::sample::select(NODES[1..].to_vec()),
        member in any::<bool>(),
    ) {
        let m = MetadataFacts { caller_is_member: member, ..meta(caller, from, to) };
        let oracle = member && (caller == from || caller == to) && from != to && agreements.iter().any(|(a, s)| {
            *s == AgreementState::Active && a.hub == HUB && has(a, from) && has(a, to) && a.sop.is_some()
        });
        prop_assert_eq!(accept_metadata(&agreements, &m).is_ok(), oracle);
    }
}
