use super::*;

const MOU: &str = include_str!("../../../../deploy/agreements/commit-bilateral-mou.toml");

fn at(s: &str) -> OffsetDateTime {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
}

fn err_field(text: &str) -> String {
    parse_toml(text).unwrap_err().field
}

/// The MOU with one line replaced.
fn with(from: &str, to: &str) -> String {
    assert!(MOU.contains(from), "{from}");
    MOU.replacen(from, to, 1)
}

#[test]
fn templates_parse() {
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/agreements")).unwrap() {
        let p = entry.unwrap().path();
        let text = std::fs::read_to_string(&p).unwrap();
        let a = parse_toml(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        // An SOP, when there is one, defines request types (a hubs-only agreement may have none).
        assert!(a.sop.as_ref().is_none_or(|s| !s.request_types.is_empty()), "{}", p.display());
    }
}

#[test]
fn parsed_fields() {
    let a = parse_toml(MOU).unwrap();
    assert_eq!(a.parties, vec!["th-atpd", "kh-antht"]);
    assert_eq!(a.grants[1].max_handling, pb::HandlingCode::Amber as i32);
    assert_eq!(a.grants[1].onward_sharing, pb::OnwardSharing::WithConsent as i32);
    let t = request_terms(&a);
    assert_eq!(t["information_request"].answer_within_seconds, 7 * 86_400);
    assert_eq!(t["intelligence_request"].urgent_answer_within_seconds, 8 * 3600);
    assert_eq!(a.retention.unwrap().days, 730);
}

#[test]
fn validation_errors_name_the_field() {
    let cases = [
        (with("parties = [\"th-atpd\", \"kh-antht\"]", "parties = [\"th-atpd\"]"), "parties"),
        (with("parties = [\"th-atpd\", \"kh-antht\"]", "parties = [\"th-atpd\", \"th-atpd\"]"), "parties[1]"),
        (with("valid_until = \"2028-12-31\"", "valid_until = \"2025-12-31\""), "valid_until"),
        (with("valid_from = \"2026-01-01\"", "valid_from = \"2026-02-30\""), "valid_from"),
        (with("from = \"*\"\nto = \"*\"\nrecord_kinds = [\"contact_point\"]", "from = \"th-atpd\"\nto = \"la-dcta\"\nrecord_kinds = [\"contact_point\"]"), "grants[0].to"),
        (with("from = \"*\"\nto = \"*\"\nrecord_kinds = [\"contact_point\"]", "from = \"th-atpd\"\nto = \"th-atpd\"\nrecord_kinds = [\"contact_point\"]"), "grants[0].to"),
        (with("record_kinds = [\"contact_point\"]", "record_kinds = []"), "grants[0].record_kinds"),
        (with("operations = [\"query\", \"sync\", \"push\"]", "operations = []"), "grants[0].operations"),
        (with("operations = [\"query\", \"sync\", \"push\"]", "operations = [\"query\", \"gossip\"]"), "grants[0].operations[1]"),
        (with("purposes = [\"statistics_and_reporting\"]", "purposes = [\"immigration_enforcement\"]"), "grants[3].purposes[0]"),
        (with("max_handling = \"green\"", "max_handling = \"purple\""), "grants[0].max_handling"),
        (with("redacted_fields = [\"entity.evidence_basis\"]", "redacted_fields = [\"entity.shoe_size\"]"), "grants[1].redacted_fields[0]"),
        (with("redacted_fields = [\"entity.evidence_basis\"]", "redacted_fields = [\"contact_point.channels\"]"), "grants[1].redacted_fields[0]"),
        (
            with("purposes = [\"victim_identification\", \"victim_assistance\", \"return_and_reintegration\"]\noperations = [\"push\", \"query\"]", "purposes = [\"victim_identification\", \"investigation\"]\noperations = [\"push\", \"query\"]"),
            "grants[2].released_protected_fields",
        ),
        (with("name = \"contact_verification\"", "name = \"information_request\""), "sop.request_types[2].name"),
        // An SOP's own type must say what it is; names are snake_case.
        (with("name = \"contact_verification\"", "name = \"gossip\""), "sop.request_types[2].title"),
        (with("name = \"contact_verification\"", "name = \"Gossip!\""), "sop.request_types[2].name"),
        (with("name = \"contact_verification\"", "name = \"x_\""), "sop.request_types[2].name"),
        (with("name = \"contact_verification\"", "name = \"contact_verification\"\nanswered_by = [\"la-dcta\"]"), "sop.request_types[2].answered_by[0]"),
        (with("name = \"contact_verification\"", "name = \"contact_verification\"\nanswered_by = [\"th-atpd\", \"th-atpd\"]"), "sop.request_types[2].answered_by[1]"),
        (with("answer_within = \"7d\"\nurgent_ack_within = \"8h\"", "answer_within = \"0h\"\nurgent_ack_within = \"8h\""), "sop.request_types[0].answer_within"),
        (with("urgent_answer_within = \"3d\"", "urgent_answer_within = \"9d\""), "sop.request_types[0].urgent_answer_within"),
        (with("escalation_role = \"central_authority\"", "escalation_role = \"the boss\""), "sop.request_types[3].escalation_role"),
        (with("ack_within = \"3d\"", "ack_within = \"3 days\""), "sop.request_types[3].ack_within"),
        // Extremes that once passed validation and then panicked in time arithmetic.
        (with("ack_within = \"3d\"", "ack_within = \"99999999w\""), "sop.request_types[3].ack_within"),
        (with("days = 730", "days = 4000000000"), "retention.days"),
        (with("valid_until = \"2028-12-31\"", "valid_until = \"9999-12-31\""), "valid_until"),
    ];
    for (text, field) in cases {
        assert_eq!(err_field(&text), field, "{}", parse_toml(&text).unwrap_err());
    }
    // Unknown keys are refused, naming the line.
    let e = parse_toml(&with("title = ", "colour = \"blue\"\ntitle = ")).unwrap_err();
    assert!(e.reason.contains("unknown field"), "{e}");
    // No grants at all.
    let no_grants = MOU.split("[[grants]]").next().unwrap();
    assert_eq!(err_field(no_grants), "grants");
}

#[test]
fn protobuf_agreements_are_validated_too() {
    let mut a = parse_toml(MOU).unwrap();
    a.grants[0].record_kinds.push(99);
    assert_eq!(validate(&a).unwrap_err().field, "grants[0].record_kinds[1]");
    let mut a = parse_toml(MOU).unwrap();
    a.version = 0;
    assert_eq!(validate(&a).unwrap_err().field, "version");
}

#[test]
fn life_cycle_states() {
    let a = parse_toml(MOU).unwrap();
    let mid = at("2027-01-01T00:00:00Z");
    let mut s = Standing::default();
    assert_eq!(state(&a, &s, mid), pb::AgreementState::Draft);
    s.signed_by.insert("th-atpd".into());
    s.proposed = true;
    assert_eq!(state(&a, &s, mid), pb::AgreementState::Proposed, "one party missing");
    s.signed_by.insert("kh-antht".into());
    assert_eq!(state(&a, &s, mid), pb::AgreementState::Active);
    assert_eq!(state(&a, &s, at("2025-12-31T23:59:59Z")), pb::AgreementState::Pending);
    assert_eq!(state(&a, &s, at("2028-12-31T00:00:00Z")), pb::AgreementState::Expired);

    let notice = |action: pb::NoticeAction, issuer: &str| pb::AgreementNotice {
        agreement_id: a.id.clone(),
        version: 1,
        action: action as i32,
        reason: "r".into(),
        issuer: issuer.into(),
        issue_time: None,
    };
    s.notices.push(notice(pb::NoticeAction::Suspend, "kh-antht"));
    assert_eq!(state(&a, &s, mid), pb::AgreementState::Suspended);
    s.notices.push(notice(pb::NoticeAction::Resume, "th-atpd"));
    assert_eq!(state(&a, &s, mid), pb::AgreementState::Suspended, "only the suspending party resumes its suspension");
    s.notices.push(notice(pb::NoticeAction::Resume, "kh-antht"));
    assert_eq!(state(&a, &s, mid), pb::AgreementState::Active);
    s.superseded = true;
    assert_eq!(state(&a, &s, mid), pb::AgreementState::Superseded);
    s.notices.push(notice(pb::NoticeAction::Revoke, "th-atpd"));
    s.notices.push(notice(pb::NoticeAction::Resume, "th-atpd"));
    assert_eq!(state(&a, &s, mid), pb::AgreementState::Revoked, "revocation is final");
}

#[test]
fn durations() {
    assert_eq!(parse_duration("f", "90s").unwrap(), 90);
    assert_eq!(parse_duration("f", "2w").unwrap(), 1_209_600);
    assert!(parse_duration("f", "0d").is_err());
    assert!(parse_duration("f", "7").is_err());
    assert!(parse_duration("f", "d").is_err());
    assert_eq!(parse_duration("f", "366d").unwrap(), MAX_DEADLINE_SECS);
    assert!(parse_duration("f", "367d").is_err());
    assert!(parse_duration("f", "99999999w").is_err());
    assert!(parse_duration("f", "99999999999999999999999w").is_err());
}

#[test]
fn extreme_terms_in_a_received_document_are_refused() {
    let mut a = parse_toml(MOU).unwrap();
    a.sop.as_mut().unwrap().request_types[0].answer_within_seconds = u64::MAX;
    assert_eq!(validate(&a).unwrap_err().field, "sop.request_types[0].answer_within");
    let mut a = parse_toml(MOU).unwrap();
    a.retention.as_mut().unwrap().days = u32::MAX;
    assert_eq!(validate(&a).unwrap_err().field, "retention.days");
    let mut a = parse_toml(MOU).unwrap();
    a.valid_until = Some(pbjson_types::Timestamp { seconds: 253_402_300_799, nanos: 0 });
    assert_eq!(validate(&a).unwrap_err().field, "valid_until");
}

/// Fuzzing finding (agreement_toml): an urgent acknowledgement could be due
/// after the urgent answer (`urgent_ack_within = "8h"`,
/// `urgent_answer_within = "1h"`); the normal pair was already checked.
#[test]
fn an_urgent_acknowledgement_is_never_due_after_the_urgent_answer() {
    let text = with("urgent_answer_within = \"3d\"", "urgent_answer_within = \"1h\"");
    assert_eq!(err_field(&text), "sop.request_types[0].urgent_ack_within");
    let mut a = parse_toml(MOU).unwrap();
    let r = &mut a.sop.as_mut().unwrap().request_types[0];
    r.urgent_answer_within_seconds = r.urgent_ack_within_seconds - 1;
    assert_eq!(validate(&a).unwrap_err().field, "sop.request_types[0].urgent_ack_within");
}

#[test]
fn an_sop_defines_its_own_request_types_with_who_answers_them() {
    let own = "[[sop.request_types]]\nname = \"asset_freezing\"\ntitle = \"Freezing a trafficker's assets\"\n\
               ack_within = \"1d\"\nanswer_within = \"30d\"\nurgent_ack_within = \"8h\"\nurgent_answer_within = \"7d\"\n\
               escalation_role = \"central_authority\"\nanswered_by = [\"kh-antht\"]\n\n[[grants]]";
    let text = MOU.replacen("[[grants]]", own, 1);
    let a = parse_toml(&text).unwrap();
    let t = a.sop.as_ref().unwrap().request_types.iter().find(|t| t.name == "asset_freezing").unwrap();
    assert_eq!(t.answered_by, vec!["kh-antht".to_string()]);
    assert_eq!(request_type_title(t), "Freezing a trafficker's assets");
    // A well-known type needs no title; its meaning is known.
    let info = a.sop.as_ref().unwrap().request_types.iter().find(|t| t.name == "information_request").unwrap();
    assert!(request_type_title(info).contains("information"));
    assert!(WELL_KNOWN_REQUEST_TYPES.iter().all(|(n, _)| is_request_type_name(n)));
}

#[test]
fn roles_and_reporting_duties_are_checked_naming_the_field() {
    let with = |extra: &str| parse_toml(&format!("{MOU}\n{extra}"));
    let a = with("[roles]\nkh-antht = \"ngo\"\n").unwrap();
    assert_eq!(crate::actor::role_of(&a, "kh-antht"), pb::ActorRole::Ngo);
    assert_eq!(with("[roles]\nkh-antht = \"spy\"\n").unwrap_err().field, "roles.kh-antht");
    assert_eq!(with("[roles]\nxx-nobody = \"ngo\"\n").unwrap_err().field, "roles[0].party");
    let e = with("[roles]\nkh-antht = { role = \"ngo\", posted_in = \"TH\" }\n").unwrap_err();
    assert_eq!(e.field, "roles[0].posted_in");
    assert!(with("[roles]\nkh-antht = { role = \"embassy\", posted_in = \"TH\" }\n").is_ok());
    // Reporting needs a hub to report to, and says when reports fall due.
    let duty = "[[reporting]]\nname = \"annual_country_report\"\ntitle = \"Annual report\"\nevery = \"year\"\ndue_after = \"90d\"\nremind_before = \"30d\"\n";
    assert_eq!(with(duty).unwrap_err().field, "reporting");
    let hub =
        |d: &str| parse_toml(&format!("{}\n{d}", MOU.replacen("valid_from", "hub = \"kh-antht\"\nvalid_from", 1)));
    let a = hub(duty).unwrap();
    assert_eq!(a.reporting[0].due_after_seconds, 90 * 86_400);
    assert_eq!(hub(&duty.replace("\"year\"", "\"decade\"")).unwrap_err().field, "reporting[0].every");
    assert_eq!(hub(&duty.replace("\"90d\"", "\"400d\"")).unwrap_err().field, "reporting[0].due_after");
}

#[test]
fn a_grant_naming_a_party_cannot_exceed_its_role() {
    let text = format!(
        "{MOU}\n[roles]\nkh-antht = \"nhri\"\n\n[[grants]]\nfrom = \"th-atpd\"\nto = \"kh-antht\"\nrecord_kinds = [\"entity\"]\npurposes = [\"investigation\"]\noperations = [\"push\"]\nmax_handling = \"green\"\n"
    );
    // The MOU's own wildcard grants are fine (the engine bounds them); the
    // explicit one is refused when the agreement is drafted.
    let e = parse_toml(&text).unwrap_err();
    assert!(e.field.starts_with("grants[") && e.field.ends_with("record_kinds[0]"), "{e}");
    assert!(e.reason.contains("may receive only statistics_report, regional_aggregate"), "{e}");
}
