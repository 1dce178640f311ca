use proptest::prelude::*;

use super::*;

fn t(s: &str) -> OffsetDateTime {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
}

fn now() -> OffsetDateTime {
    t("2027-03-01T00:00:00Z")
}

fn mou(version: u32, purge_on_revoke: bool) -> pb::Agreement {
    let toml = format!(
        r#"
id = "th-kh"
version = {version}
title = "MOU"
legal_basis = "Test"
parties = ["th-atpd", "kh-antht"]
valid_from = "2026-01-01"
valid_until = "2030-01-01"

[retention]
days = 365
purge_on_revoke = {purge_on_revoke}

[[grants]]
from = "th-atpd"
to = "kh-antht"
record_kinds = ["contact_point"]
purposes = ["coordination"]
operations = ["push"]
max_handling = "green"
onward_sharing = "forbidden"
"#
    );
    crate::agreement::parse_toml(&toml).unwrap()
}

/// KH takes back a contact point TH shared with it under th-kh v1.
fn facts() -> ImportFacts {
    ImportFacts {
        local: "kh-antht".into(),
        holder: "kh-antht".into(),
        originator: "th-atpd".into(),
        withdrawn: false,
        withdrawal_known: false,
        agreement_id: "th-kh".into(),
        agreement_version: 1,
        receive_time: Some(t("2027-01-01T00:00:00Z")),
        retain_until: Some(t("2028-01-01T00:00:00Z")),
        at: now(),
    }
}

fn code(a: &[(pb::Agreement, AgreementState)], f: &ImportFacts) -> &'static str {
    match decide(a, f) {
        Ok(()) => "allow",
        Err(d) => d.code(),
    }
}

#[test]
fn the_holder_takes_back_what_it_would_still_hold() {
    let a = vec![(mou(1, true), AgreementState::Active)];
    assert_eq!(code(&a, &facts()), "allow");
    // Suspended, expired, or revoked without purging: a holder keeps what it has.
    for (state, purge) in
        [(AgreementState::Suspended, true), (AgreementState::Expired, true), (AgreementState::Revoked, false)]
    {
        assert_eq!(code(&[(mou(1, purge), state)], &facts()), "allow", "{state:?}");
    }
    // Kept until withdrawn.
    let f = ImportFacts { retain_until: None, ..facts() };
    assert_eq!(code(&a, &f), "allow");
}

#[test]
fn every_reason_an_exported_received_record_is_refused() {
    let a = vec![(mou(1, true), AgreementState::Active)];
    let f = ImportFacts { originator: "kh-antht".into(), ..facts() };
    assert_eq!(code(&a, &f), "own_record");

    let f = ImportFacts { local: "la-dcta".into(), ..facts() };
    let d = decide(&a, &f).unwrap_err();
    assert_eq!(d.code(), "held_elsewhere");
    assert!(d.to_string().contains("kh-antht") && d.to_string().contains("th-atpd"), "{d}");

    assert_eq!(code(&a, &ImportFacts { withdrawn: true, ..facts() }), "withdrawn");
    assert_eq!(code(&a, &ImportFacts { withdrawal_known: true, ..facts() }), "withdrawn");
    assert_eq!(code(&a, &ImportFacts { receive_time: None, ..facts() }), "no_receive_time");
    assert_eq!(code(&a, &ImportFacts { receive_time: Some(t("2027-03-02T00:00:00Z")), ..facts() }), "no_receive_time");
    assert_eq!(code(&a, &ImportFacts { retain_until: Some(now()), ..facts() }), "retention_ended");
    assert_eq!(code(&[], &facts()), "unknown_agreement");
    assert_eq!(code(&a, &ImportFacts { agreement_version: 2, ..facts() }), "unknown_agreement");
    assert_eq!(code(&[(mou(1, true), AgreementState::Revoked)], &facts()), "agreement_revoked");
    // A revoked later version that purges purges what came under any version.
    let a = vec![(mou(1, true), AgreementState::Superseded), (mou(2, true), AgreementState::Revoked)];
    assert_eq!(code(&a, &facts()), "agreement_revoked");
}

proptest! {
    /// Independent statement of the rule.
    #[test]
    fn taken_back_only_when_every_condition_holds(
        holder in prop_oneof![Just("kh-antht"), Just("la-dcta")],
        originator in prop_oneof![Just("th-atpd"), Just("kh-antht")],
        withdrawn in any::<bool>(),
        withdrawal_known in any::<bool>(),
        version in 1u32..3,
        received_days_ago in -2i64..400,
        retention_days in proptest::option::of(0i64..400),
        state in prop_oneof![
            Just(AgreementState::Active),
            Just(AgreementState::Suspended),
            Just(AgreementState::Revoked),
            Just(AgreementState::Expired),
        ],
        purge in any::<bool>(),
    ) {
        let received = now() - time::Duration::days(received_days_ago);
        let f = ImportFacts {
            holder: holder.into(),
            originator: originator.into(),
            withdrawn,
            withdrawal_known,
            agreement_version: version,
            receive_time: Some(received),
            retain_until: retention_days.map(|d| received + time::Duration::days(d)),
            ..facts()
        };
        let a = vec![(mou(1, purge), state)];
        let oracle = originator != "kh-antht"
            && holder == "kh-antht"
            && !withdrawn
            && !withdrawal_known
            && received <= now()
            && retention_days.is_none_or(|d| received + time::Duration::days(d) > now())
            && version == 1
            && !(state == AgreementState::Revoked && purge);
        prop_assert_eq!(decide(&a, &f).is_ok(), oracle);
    }
}
