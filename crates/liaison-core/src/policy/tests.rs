use proptest::prelude::*;

use super::*;

const MOU: &str = include_str!("../../../../deploy/agreements/commit-bilateral-mou.toml");

fn t(s: &str) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
}

fn mou() -> Vec<(pb::Agreement, AgreementState)> {
    vec![(crate::agreement::parse_toml(MOU).unwrap(), AgreementState::Active)]
}

fn ex(kind: RecordKind, op: Operation, purpose: Purpose, handling: HandlingCode) -> Exchange {
    Exchange {
        local: "th-atpd".into(),
        peer: "kh-antht".into(),
        direction: Direction::Outgoing,
        operation: op,
        kind,
        purpose,
        handling,
        at: t("2027-03-01T00:00:00Z"),
        victim: None,
        into_kind: None,
        onward: None,
    }
}

fn intel() -> Exchange {
    ex(RecordKind::IntelligenceReport, Operation::Query, Purpose::Investigation, HandlingCode::Amber)
}

fn victim(consent: pb::ConsentStatus, identity: bool) -> Exchange {
    let mut e = ex(RecordKind::VictimReferral, Operation::Push, Purpose::VictimIdentification, HandlingCode::Red);
    e.victim = Some(VictimFacts {
        consent,
        guardian_decision: false,
        child: false,
        best_interest: pb::BestInterestOutcome::Unspecified,
        identity_requested: identity,
        return_step: false,
    });
    e
}

fn denial(agreements: &[(pb::Agreement, AgreementState)], e: &Exchange) -> &'static str {
    match decide(agreements, e) {
        Decision::Deny(d) => d.code(),
        Decision::Allow { .. } => "allow",
    }
}

#[test]
fn allows_what_the_mou_grants_with_its_redactions() {
    match decide(&mou(), &ex(RecordKind::Entity, Operation::HitCheck, Purpose::Prosecution, HandlingCode::Green)) {
        Decision::Allow { agreement_id, plan, onward, retention_days, .. } => {
            assert_eq!(agreement_id, "th-kh-mou");
            assert!(plan.removes("entity.evidence_basis"));
            assert_eq!(onward, pb::OnwardSharing::WithConsent);
            assert_eq!(retention_days, 730);
        }
        d => panic!("{d:?}"),
    }
    // Incoming: the receiver checks the same grant from the peer's side.
    let mut e = intel();
    e.direction = Direction::Incoming;
    assert!(decide(&mou(), &e).is_allowed());
}

#[test]
fn every_denial_reason() {
    let a = mou();
    let mut e = intel();
    e.peer = "la-dcta".into();
    assert_eq!(denial(&a, &e), "no_agreement");
    for (state, code) in [
        (AgreementState::Suspended, "agreement_not_active"),
        (AgreementState::Revoked, "agreement_not_active"),
        (AgreementState::Expired, "agreement_not_active"),
        (AgreementState::Proposed, "agreement_not_active"),
    ] {
        assert_eq!(denial(&[(a[0].0.clone(), state)], &intel()), code);
    }
    let mut e = intel();
    e.at = t("2030-01-01T00:00:00Z");
    assert_eq!(denial(&a, &e), "outside_validity");

    let mut one_way = a[0].0.clone();
    for g in &mut one_way.grants {
        g.from = "kh-antht".into();
        g.to = "th-atpd".into();
    }
    assert_eq!(denial(&[(one_way, AgreementState::Active)], &intel()), "wrong_direction");

    let mut contacts_only = a[0].0.clone();
    contacts_only.grants.truncate(1);
    assert_eq!(denial(&[(contacts_only, AgreementState::Active)], &intel()), "kind_not_granted");
    assert_eq!(
        denial(&a, &ex(RecordKind::IntelligenceReport, Operation::Sync, Purpose::Investigation, HandlingCode::Green)),
        "operation_not_granted"
    );
    assert_eq!(
        denial(
            &a,
            &ex(RecordKind::IntelligenceReport, Operation::Query, Purpose::StatisticsAndReporting, HandlingCode::Green)
        ),
        "purpose_not_granted"
    );
    assert_eq!(
        denial(&a, &ex(RecordKind::IntelligenceReport, Operation::Query, Purpose::Investigation, HandlingCode::Red)),
        "handling_above_grant"
    );
    assert_eq!(
        denial(&a, &ex(RecordKind::ContactPoint, Operation::Query, Purpose::Coordination, HandlingCode::AmberStrict)),
        "handling_above_grant"
    );

    let mut e = victim(pb::ConsentStatus::Given, false);
    e.into_kind = Some(RecordKind::Entity);
    assert_eq!(denial(&a, &e), "victim_data_into_entity");
    let mut e = victim(pb::ConsentStatus::Given, true);
    e.purpose = Purpose::Investigation;
    assert_eq!(denial(&a, &e), "purpose_not_granted", "the victim grant does not cover investigation at all");
    let mut wide = a[0].0.clone();
    wide.grants[2].purposes.push(Purpose::Investigation as i32);
    assert_eq!(denial(&[(wide, AgreementState::Active)], &e), "victim_identity_purpose");
    assert_eq!(denial(&a, &victim(pb::ConsentStatus::Refused, true)), "victim_consent_missing");
    assert_eq!(
        denial(&a, &victim(pb::ConsentStatus::NotPossible, true)),
        "victim_consent_missing",
        "no guardian decision"
    );
    let mut no_release = a[0].0.clone();
    no_release.grants[2].released_protected_fields.clear();
    assert_eq!(
        denial(&[(no_release, AgreementState::Active)], &victim(pb::ConsentStatus::Given, true)),
        "victim_identity_not_released"
    );

    let mut e = victim(pb::ConsentStatus::Given, false);
    e.purpose = Purpose::ReturnAndReintegration;
    if let Some(v) = e.victim.as_mut() {
        v.child = true;
        v.return_step = true;
    }
    assert_eq!(denial(&a, &e), "child_return_without_best_interest");
    if let Some(v) = e.victim.as_mut() {
        v.best_interest = pb::BestInterestOutcome::NoReturn;
    }
    assert_eq!(denial(&a, &e), "child_return_without_best_interest");
    if let Some(v) = e.victim.as_mut() {
        v.best_interest = pb::BestInterestOutcome::Return;
    }
    assert_eq!(denial(&a, &e), "allow");

    let mut e = intel();
    e.onward =
        Some(OnwardFacts { rule: pb::OnwardSharing::Forbidden, originator: "vn-ctp".into(), originator_consent: true });
    assert_eq!(denial(&a, &e), "onward_forbidden");
    e.onward = Some(OnwardFacts {
        rule: pb::OnwardSharing::WithConsent,
        originator: "vn-ctp".into(),
        originator_consent: false,
    });
    assert_eq!(denial(&a, &e), "onward_consent_missing");
    e.onward = Some(OnwardFacts {
        rule: pb::OnwardSharing::WithConsent,
        originator: "vn-ctp".into(),
        originator_consent: true,
    });
    assert_eq!(denial(&a, &e), "allow");

    let mut e = intel();
    e.purpose = Purpose::Unspecified;
    assert_eq!(denial(&a, &e), "invalid_exchange");
}

#[test]
fn victim_identity_rules() {
    let a = mou();
    // Identity with consent for identification: released, nothing protected removed.
    match decide(&a, &victim(pb::ConsentStatus::Given, true)) {
        Decision::Allow { plan, .. } => assert!(!plan.strips_identity()),
        d => panic!("{d:?}"),
    }
    // Guardian's decision when consent is not possible.
    let mut e = victim(pb::ConsentStatus::NotPossible, true);
    if let Some(v) = e.victim.as_mut() {
        v.guardian_decision = true;
    }
    assert!(decide(&a, &e).is_allowed());
    // Without consent, the pseudonymised record may still go, identity stripped.
    match decide(&a, &victim(pb::ConsentStatus::Refused, false)) {
        Decision::Allow { plan, .. } => {
            assert!(plan.strips_identity() && plan.removes("victim_referral.notes"))
        }
        d => panic!("{d:?}"),
    }
}

#[test]
fn least_redaction_wins_across_agreements() {
    let strict = crate::agreement::parse_toml(&MOU.replace("id = \"th-kh-mou\"", "id = \"strict\"").replace(
        "redacted_fields = [\"entity.evidence_basis\"]",
        "redacted_fields = [\"entity.evidence_basis\", \"entity.identifiers\"]",
    ))
    .unwrap();
    let both = vec![(strict, AgreementState::Active), mou().remove(0)];
    match decide(&both, &ex(RecordKind::Entity, Operation::Query, Purpose::Investigation, HandlingCode::Amber)) {
        Decision::Allow { agreement_id, plan, .. } => {
            assert_eq!(agreement_id, "th-kh-mou");
            assert!(!plan.removes("entity.identifiers"));
        }
        d => panic!("{d:?}"),
    }
}

fn arb_grant() -> impl Strategy<Value = pb::Grant> {
    let side = prop_oneof![Just("*".to_string()), Just("th-atpd".to_string()), Just("kh-antht".to_string())];
    (
        side.clone(),
        side,
        proptest::collection::vec(1i32..=5, 1..3),
        proptest::collection::vec(1i32..=8, 1..4),
        proptest::collection::vec(1i32..=4, 1..3),
        1i32..=5,
        any::<bool>(),
    )
        .prop_map(|(from, to, kinds, purposes, ops, max, release)| pb::Grant {
            from,
            to,
            record_kinds: kinds,
            purposes,
            operations: ops,
            max_handling: max,
            released_protected_fields: if release { vec![redact::VICTIM_IDENTITY.into()] } else { vec![] },
            redacted_fields: vec![],
            onward_sharing: pb::OnwardSharing::Forbidden as i32,
        })
}

fn arb_state() -> impl Strategy<Value = AgreementState> {
    prop_oneof![
        4 => Just(AgreementState::Active),
        1 => Just(AgreementState::Suspended),
        1 => Just(AgreementState::Revoked),
        1 => Just(AgreementState::Expired),
        1 => Just(AgreementState::Proposed),
    ]
}

fn arb_exchange() -> impl Strategy<Value = Exchange> {
    (
        any::<bool>(),
        1i32..=4,
        1i32..=5,
        1i32..=8,
        1i32..=5,
        prop_oneof![Just("2025-06-01T00:00:00Z"), Just("2027-06-01T00:00:00Z"), Just("2029-06-01T00:00:00Z")],
        0i32..=3,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        0i32..=2,
    )
        .prop_map(|(outgoing, op, kind, purpose, handling, at, consent, guardian, child, identity, bi)| Exchange {
            local: "th-atpd".into(),
            peer: "kh-antht".into(),
            direction: if outgoing { Direction::Outgoing } else { Direction::Incoming },
            operation: Operation::try_from(op).unwrap(),
            kind: RecordKind::try_from(kind).unwrap(),
            purpose: Purpose::try_from(purpose).unwrap(),
            handling: HandlingCode::try_from(handling).unwrap(),
            at: t(at),
            victim: Some(VictimFacts {
                consent: pb::ConsentStatus::try_from(consent).unwrap(),
                guardian_decision: guardian,
                child,
                best_interest: pb::BestInterestOutcome::try_from(bi).unwrap(),
                identity_requested: identity,
                return_step: false,
            }),
            into_kind: None,
            onward: None,
        })
}

/// Independent statement of the rules: is there any grant that allows it?
fn oracle(a: &pb::Agreement, state: AgreementState, e: &Exchange) -> bool {
    let (s, r) = match e.direction {
        Direction::Outgoing => (&e.local, &e.peer),
        Direction::Incoming => (&e.peer, &e.local),
    };
    if state != AgreementState::Active || !a.parties.contains(s) || !a.parties.contains(r) {
        return false;
    }
    let from = from_timestamp(a.valid_from.as_ref().unwrap()).unwrap();
    let until = from_timestamp(a.valid_until.as_ref().unwrap()).unwrap();
    if e.at < from || e.at >= until {
        return false;
    }
    a.grants.iter().any(|g| {
        let dir = (g.from == "*" || &g.from == s) && (g.to == "*" || &g.to == r) && (g.from != g.to || g.from == "*");
        let victim_ok = if e.kind == RecordKind::VictimReferral {
            let v = e.victim.as_ref().unwrap();
            let consent = v.consent == pb::ConsentStatus::Given
                || (v.consent == pb::ConsentStatus::NotPossible && v.guardian_decision);
            let id_allowed = VICTIM_PURPOSES.contains(&e.purpose) && consent && !g.released_protected_fields.is_empty();
            !v.identity_requested || id_allowed
        } else {
            true
        };
        dir && g.record_kinds.contains(&(e.kind as i32))
            && g.operations.contains(&(e.operation as i32))
            && g.purposes.contains(&(e.purpose as i32))
            && (e.handling as i32) <= g.max_handling
            && victim_ok
    })
}

proptest! {
    #[test]
    fn no_allowance_without_every_condition(grants in proptest::collection::vec(arb_grant(), 1..4), state in arb_state(), e in arb_exchange()) {
        let mut a = crate::agreement::parse_toml(MOU).unwrap();
        a.grants = grants;
        let decision = decide(&[(a.clone(), state)], &e);
        prop_assert_eq!(decision.is_allowed(), oracle(&a, state, &e), "{:?}", decision);
        if let Decision::Allow { plan, .. } = &decision {
            if e.kind == RecordKind::VictimReferral {
                let v = e.victim.as_ref().unwrap();
                let consent = v.consent == pb::ConsentStatus::Given || (v.consent == pb::ConsentStatus::NotPossible && v.guardian_decision);
                if !consent || !VICTIM_PURPOSES.contains(&e.purpose) {
                    prop_assert!(plan.strips_identity(), "identity must be stripped: {:?}", plan);
                }
            }
        }
    }
}

#[test]
fn requests_need_an_active_agreement_that_defines_the_type() {
    let a = mou();
    let at = t("2027-03-01T00:00:00Z");
    let (doc, terms) =
        decide_request(&a, "th-atpd", "kh-antht", "information_request", Purpose::Investigation, None, at, None)
            .unwrap();
    assert_eq!(doc.id, "th-kh-mou");
    assert_eq!(terms.answer_within_seconds, 7 * 86_400);
    let code = |r: Result<(pb::Agreement, pb::RequestTypeTerms), Denial>| r.unwrap_err().code();
    assert_eq!(
        code(decide_request(&a, "th-atpd", "kh-antht", "asset_tracing", Purpose::Investigation, None, at, None)),
        "request_type_not_defined"
    );
    assert_eq!(
        code(decide_request(&a, "th-atpd", "la-dcta", "information_request", Purpose::Investigation, None, at, None)),
        "no_agreement"
    );
    assert_eq!(
        code(decide_request(
            &[(a[0].0.clone(), AgreementState::Suspended)],
            "th-atpd",
            "kh-antht",
            "information_request",
            Purpose::Investigation,
            None,
            at,
            None
        )),
        "agreement_not_active"
    );
    let mut limited = a[0].0.clone();
    limited.sop.as_mut().unwrap().request_types[0].purposes = vec![Purpose::Prosecution as i32];
    assert_eq!(
        code(decide_request(
            &[(limited, AgreementState::Active)],
            "th-atpd",
            "kh-antht",
            "information_request",
            Purpose::Investigation,
            None,
            at,
            None
        )),
        "request_purpose_not_allowed"
    );
    // An SOP that says who answers a type: a request to anyone else is
    // refused, whoever checks it (the sender or the addressee).
    let mut mla = a[0].0.clone();
    let sop = mla.sop.as_mut().unwrap();
    sop.request_types.push(pb::RequestTypeTerms {
        name: "extradition".into(),
        answered_by: vec!["kh-antht".into()],
        ..sop.request_types[0].clone()
    });
    let only_kh = [(mla, AgreementState::Active)];
    let ask = |local: &str, peer: &str, to: &str| {
        decide_request(&only_kh, local, peer, "extradition", Purpose::Prosecution, Some(to), at, None)
    };
    assert!(ask("th-atpd", "kh-antht", "kh-antht").is_ok(), "TH asks KH, which answers");
    assert!(ask("kh-antht", "th-atpd", "kh-antht").is_ok(), "KH, receiving it, agrees");
    assert_eq!(code(ask("kh-antht", "th-atpd", "th-atpd")), "request_not_for_addressee", "KH asks TH, which does not");
    assert_eq!(
        code(ask("th-atpd", "kh-antht", "th-atpd")),
        "request_not_for_addressee",
        "and TH, receiving it, refuses"
    );
    assert!(
        ask("th-atpd", "kh-antht", "th-atpd").unwrap_err().to_string().contains("th-atpd does not answer extradition"),
        "the reason names who and what"
    );
}

fn incoming(mut e: Exchange) -> Exchange {
    e.direction = Direction::Incoming;
    e
}

#[test]
fn a_received_record_carrying_a_withheld_field_is_refused_naming_it() {
    let a = mou();
    // Entity: the MOU always redacts evidence_basis; a copy that still carries it is refused.
    let rec = crate::record::examples::entity();
    let e = incoming(ex(RecordKind::Entity, Operation::Push, Purpose::Investigation, HandlingCode::Amber));
    match decide_received(&a, &e, &rec) {
        Decision::Deny(Denial::WithheldFieldCarried { field, agreement }) => {
            assert_eq!(field, "entity.evidence_basis");
            assert_eq!(agreement, "th-kh-mou v1");
        }
        other => panic!("{other:?}"),
    }
    // The redacted copy passes.
    let Decision::Allow { plan, .. } = decide(&a, &e) else { panic!() };
    assert!(decide_received(&a, &e, &crate::redact::redact(&rec, &plan)).is_allowed());
    // Victim notes are protected and the MOU never releases them.
    let mut v = victim(pb::ConsentStatus::Given, true);
    v.direction = Direction::Incoming;
    let mut referral = crate::record::examples::victim_referral();
    assert!(decide_received(&a, &v, &referral).is_allowed(), "identity released for identification with consent");
    if let Some(pb::record::Body::VictimReferral(r)) = referral.body.as_mut() {
        r.notes = "met her brother in Poipet".into();
    }
    match decide_received(&a, &v, &referral) {
        Decision::Deny(Denial::WithheldFieldCarried { field, .. }) => assert_eq!(field, "victim_referral.notes"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn syncable_kinds_follow_the_grants_and_the_state() {
    let a = mou();
    let at = t("2027-03-01T00:00:00Z");
    assert_eq!(syncable(&a, "th-atpd", "kh-antht", at), vec![(RecordKind::ContactPoint, Purpose::Coordination)]);
    assert!(syncable(&a, "th-atpd", "la-dcta", at).is_empty(), "no agreement with LA");
    for state in [AgreementState::Suspended, AgreementState::Revoked, AgreementState::Proposed] {
        assert!(syncable(&[(a[0].0.clone(), state)], "th-atpd", "kh-antht", at).is_empty(), "{state:?}");
    }
    assert!(syncable(&a, "th-atpd", "kh-antht", t("2030-01-01T00:00:00Z")).is_empty(), "expired");
    // A one-way grant lets only its sender sync to its receiver.
    let mut one_way = a[0].0.clone();
    for g in &mut one_way.grants {
        g.from = "kh-antht".into();
        g.to = "th-atpd".into();
    }
    let one_way = [(one_way, AgreementState::Active)];
    assert_eq!(syncable(&one_way, "th-atpd", "kh-antht", at).len(), 1);
    assert!(syncable(&one_way, "kh-antht", "th-atpd", at).is_empty());
}

#[test]
fn request_and_case_steps_need_the_agreement_active_now() {
    let a = mou();
    let at = t("2027-03-01T00:00:00Z");
    let h = pb::RequestHeader {
        agreement_id: "th-kh-mou".into(),
        request_type: "information_request".into(),
        purpose: Purpose::Investigation as i32,
        ..Default::default()
    };
    assert_eq!(decide_request_step(&a, "th-atpd", "kh-antht", &h, at), Ok(()));
    for state in [AgreementState::Suspended, AgreementState::Revoked, AgreementState::Superseded] {
        let s = [(a[0].0.clone(), state)];
        assert_eq!(decide_request_step(&s, "th-atpd", "kh-antht", &h, at).unwrap_err().code(), "agreement_not_active");
        assert_eq!(
            decide_case_step(&s, "th-atpd", "kh-antht", pb::CaseStage::Assistance, at).unwrap_err().code(),
            "agreement_not_active"
        );
    }
    // A step under another agreement id is not covered by this one.
    let other = pb::RequestHeader { agreement_id: "other".into(), ..h.clone() };
    assert_eq!(decide_request_step(&a, "th-atpd", "kh-antht", &other, at).unwrap_err().code(), "no_agreement");
    assert_eq!(decide_case_step(&a, "th-atpd", "kh-antht", pb::CaseStage::Returned, at), Ok(()));
    assert_eq!(case_step_terms(pb::CaseStage::Returned), ("victim_return", Purpose::ReturnAndReintegration));
    assert_eq!(case_step_terms(pb::CaseStage::Assistance), ("victim_identification", Purpose::VictimIdentification));
    // Without victim_return in the SOP, return steps are refused, identification steps are not.
    let mut no_return = a[0].0.clone();
    no_return.sop.as_mut().unwrap().request_types.retain(|r| r.name != "victim_return");
    let s = [(no_return, AgreementState::Active)];
    assert_eq!(
        decide_case_step(&s, "th-atpd", "kh-antht", pb::CaseStage::ReturnPlanned, at).unwrap_err().code(),
        "request_type_not_defined"
    );
    assert_eq!(decide_case_step(&s, "th-atpd", "kh-antht", pb::CaseStage::IdentificationConfirmed, at), Ok(()));
}

#[test]
fn onward_consent_only_while_an_agreement_with_the_holder_is_active() {
    let a = mou();
    let at = t("2027-03-01T00:00:00Z");
    assert_eq!(decide_consent(&a, "th-atpd", "kh-antht", at), Ok(()));
    assert_eq!(decide_consent(&a, "th-atpd", "mm-atipd", at).unwrap_err().code(), "no_agreement");
    assert_eq!(
        decide_consent(&a, "th-atpd", "kh-antht", t("2035-01-01T00:00:00Z")).unwrap_err().code(),
        "outside_validity"
    );
    for state in [AgreementState::Suspended, AgreementState::Revoked] {
        let s = [(a[0].0.clone(), state)];
        assert_eq!(decide_consent(&s, "th-atpd", "kh-antht", at).unwrap_err().code(), "agreement_not_active");
    }
}

/// The MOU with kh-antht given `role`: every grant still says "*".
fn mou_with_role(role: pb::ActorRole) -> Vec<(pb::Agreement, AgreementState)> {
    let mut a = crate::agreement::parse_toml(MOU).unwrap();
    a.roles.push(pb::PartyRole { party: "kh-antht".into(), role: role as i32, posted_in: String::new() });
    crate::agreement::validate(&a).unwrap();
    vec![(a, AgreementState::Active)]
}

#[test]
fn a_role_bounds_what_a_party_receives_whatever_the_grants_say() {
    // The MOU's wildcard grants give kh-antht intelligence; as an NHRI or an
    // NGO desk it gets none, in either direction of the decision.
    for role in [pb::ActorRole::Nhri, pb::ActorRole::Ngo, pb::ActorRole::Secretariat] {
        let a = mou_with_role(role);
        assert_eq!(denial(&a, &intel()), "role_may_not_receive", "{role:?}");
        let mut incoming = intel();
        incoming.direction = Direction::Incoming;
        incoming.local = "kh-antht".into();
        incoming.peer = "th-atpd".into();
        assert_eq!(denial(&a, &incoming), "role_may_not_receive", "{role:?} checks on receipt too");
        // What th-atpd (law enforcement) receives from it is unchanged.
        let mut from_it = intel();
        from_it.direction = Direction::Incoming;
        assert_eq!(denial(&a, &from_it), "allow");
    }
    assert_eq!(denial(&mou_with_role(pb::ActorRole::Embassy), &intel()), "allow");
    let Decision::Deny(d) = decide(&mou_with_role(pb::ActorRole::Nhri), &intel()) else { panic!() };
    assert!(d.to_string().contains("national human rights institution"), "{d}");
}

#[test]
fn a_victim_case_never_includes_a_party_whose_role_may_not_receive_a_referral() {
    let kv = include_str!("../../../../deploy/agreements/kh-vn-victim-return.toml");
    let mut a = crate::agreement::parse_toml(kv).unwrap();
    let at = t("2027-03-01T00:00:00Z");
    let ok = [(a.clone(), AgreementState::Active)];
    assert!(decide_case_step(&ok, "kh-antht", "vn-c02", pb::CaseStage::Assistance, at).is_ok());
    a.roles.push(pb::PartyRole { party: "vn-c02".into(), role: pb::ActorRole::Nhri as i32, posted_in: String::new() });
    let nhri = [(a, AgreementState::Active)];
    let e = decide_case_step(&nhri, "kh-antht", "vn-c02", pb::CaseStage::Assistance, at).unwrap_err();
    assert_eq!(e.code(), "role_may_not_receive");
    let e = decide_case_step(&nhri, "vn-c02", "kh-antht", pb::CaseStage::Assistance, at).unwrap_err();
    assert_eq!(e.code(), "role_may_not_receive", "the NHRI's own node refuses too");
}

#[test]
fn a_record_admitted_under_an_agreement_is_stored_only_while_it_or_its_successor_is_in_force() {
    let at = t("2027-03-01T00:00:00Z");
    let doc = mou().remove(0).0;
    let (id, v) = (doc.id.clone(), doc.version);
    let with = |states: &[(u32, AgreementState)]| -> Vec<(pb::Agreement, AgreementState)> {
        states.iter().map(|(ver, s)| (pb::Agreement { version: *ver, ..doc.clone() }, *s)).collect()
    };
    assert!(admitted_in_force(&with(&[(v, AgreementState::Active)]), &id, v, at));
    for ended in [AgreementState::Revoked, AgreementState::Suspended, AgreementState::Expired] {
        assert!(!admitted_in_force(&with(&[(v, ended)]), &id, v, at), "{ended:?}");
    }
    // Replaced by a newer version: in force while that one is.
    assert!(admitted_in_force(&with(&[(v, AgreementState::Superseded), (v + 1, AgreementState::Active)]), &id, v, at));
    assert!(!admitted_in_force(
        &with(&[(v, AgreementState::Superseded), (v + 1, AgreementState::Suspended)]),
        &id,
        v,
        at
    ));
    // An older version in force does not carry a newer one; another id never counts.
    assert!(!admitted_in_force(&with(&[(v, AgreementState::Active)]), &id, v + 1, at));
    assert!(!admitted_in_force(&with(&[(v, AgreementState::Active)]), "another", v, at));
    // Outside the validity window.
    assert!(!admitted_in_force(&with(&[(v, AgreementState::Active)]), &id, v, t("2040-01-01T00:00:00Z")));
}
