use proptest::prelude::*;

use super::*;

fn field_of(r: &pb::Record) -> String {
    validate(r).unwrap_err().field
}

fn cp(f: impl FnOnce(&mut pb::ContactPoint)) -> pb::Record {
    let mut r = examples::contact_point();
    if let Some(Body::ContactPoint(c)) = r.body.as_mut() {
        f(c);
    }
    r
}
fn ir(f: impl FnOnce(&mut pb::IntelligenceReport)) -> pb::Record {
    let mut r = examples::intelligence_report();
    if let Some(Body::IntelligenceReport(c)) = r.body.as_mut() {
        f(c);
    }
    r
}
fn en(f: impl FnOnce(&mut pb::Entity)) -> pb::Record {
    let mut r = examples::entity();
    if let Some(Body::Entity(c)) = r.body.as_mut() {
        f(c);
    }
    r
}
fn vr(f: impl FnOnce(&mut pb::VictimReferral)) -> pb::Record {
    let mut r = examples::victim_referral();
    if let Some(Body::VictimReferral(c)) = r.body.as_mut() {
        f(c);
    }
    r
}
fn sr(f: impl FnOnce(&mut pb::StatisticsReport)) -> pb::Record {
    let mut r = examples::statistics_report();
    if let Some(Body::StatisticsReport(c)) = r.body.as_mut() {
        f(c);
    }
    r
}

#[test]
fn examples_are_valid() {
    for r in examples::all() {
        assert_eq!(validate(&r), Ok(()), "{}", r.id);
    }
}

#[test]
fn record_level_rules() {
    let mut r = examples::contact_point();
    for bad in ["", "Upper", "-lead", "has space", &"x".repeat(65)] {
        r.id = bad.into();
        assert_eq!(field_of(&r), "record.id", "{bad:?}");
    }
    let mut r = examples::contact_point();
    r.handling = 0;
    assert_eq!(field_of(&r), "record.handling");
    r.handling = 9;
    assert_eq!(field_of(&r), "record.handling");
    let mut r = examples::contact_point();
    r.body = None;
    assert_eq!(field_of(&r), "record.body");
}

#[test]
fn contact_point_rules() {
    let cases: Vec<(&str, pb::Record)> = vec![
        ("record.contact_point.name", cp(|c| c.name = " ".into())),
        ("record.contact_point.name", cp(|c| c.name = "x".repeat(MAX_NAME + 1))),
        ("record.contact_point.name", cp(|c| c.name = "bell\u{7}".into())),
        ("record.contact_point.role", cp(|c| c.role = 0)),
        ("record.contact_point.role", cp(|c| c.role = 99)),
        ("record.contact_point.agency", cp(|c| c.agency.clear())),
        ("record.contact_point.country", cp(|c| c.country = "th".into())),
        ("record.contact_point.country", cp(|c| c.country = "XX".into())),
        ("record.contact_point.languages[1]", cp(|c| c.languages[1] = "eng".into())),
        ("record.contact_point.channels", cp(|c| c.channels.clear())),
        ("record.contact_point.channels[0].type", cp(|c| c.channels[0].r#type = 0)),
        ("record.contact_point.channels[0].value", cp(|c| c.channels[0].value = "02 123 4567".into())),
        ("record.contact_point.channels[1].value", cp(|c| c.channels[1].value = "not-an-email".into())),
        ("record.contact_point.availability", cp(|c| c.availability = None)),
        (
            "record.contact_point.availability.hours",
            cp(|c| {
                c.availability =
                    Some(pb::Availability { always: false, hours: "9-5".into(), time_zone: "Asia/Bangkok".into() })
            }),
        ),
        (
            "record.contact_point.availability.time_zone",
            cp(|c| {
                c.availability = Some(pb::Availability {
                    always: false,
                    hours: "08:00-17:00".into(),
                    time_zone: "Bangkok time".into(),
                })
            }),
        ),
        ("record.contact_point.last_verified", cp(|c| c.last_verified = "2026-13-01".into())),
        ("record.contact_point.last_verified", cp(|c| c.last_verified.clear())),
    ];
    for (field, r) in cases {
        assert_eq!(field_of(&r), field);
    }
    let ok = cp(|c| {
        c.availability = Some(pb::Availability { always: false, hours: "08:30-17:00".into(), time_zone: "UTC".into() })
    });
    assert_eq!(validate(&ok), Ok(()));
}

#[test]
fn intelligence_report_rules() {
    let cases: Vec<(&str, pb::Record)> = vec![
        ("record.intelligence_report.summary", ir(|i| i.summary.clear())),
        ("record.intelligence_report.summary", ir(|i| i.summary = "x".repeat(MAX_TEXT + 1))),
        ("record.intelligence_report.subject_entity_ids[0]", ir(|i| i.subject_entity_ids[0] = "Bad Id".into())),
        ("record.intelligence_report.route[1]", ir(|i| i.route[1] = "Thailand".into())),
        ("record.intelligence_report.route", ir(|i| i.route = vec!["TH".into(); MAX_ROUTE + 1])),
        ("record.intelligence_report.exploitation_types", ir(|i| i.exploitation_types.clear())),
        ("record.intelligence_report.exploitation_types[0]", ir(|i| i.exploitation_types[0] = 42)),
        ("record.intelligence_report.source_reliability", ir(|i| i.source_reliability = 0)),
        ("record.intelligence_report.source_reliability", ir(|i| i.source_reliability = 7)),
        ("record.intelligence_report.information_credibility", ir(|i| i.information_credibility = 0)),
        ("record.intelligence_report.information_credibility", ir(|i| i.information_credibility = 7)),
        ("record.intelligence_report.period_end", ir(|i| i.period_end = "2026-01-01".into())),
        ("record.intelligence_report.period_start", ir(|i| i.period_start = "May 2026".into())),
    ];
    for (field, r) in cases {
        assert_eq!(field_of(&r), field);
    }
}

#[test]
fn entity_rules() {
    let cases: Vec<(&str, pb::Record)> = vec![
        ("record.entity.entity_type", en(|e| e.entity_type = 0)),
        ("record.entity.names", en(|e| e.names.clear())),
        ("record.entity.names[0]", en(|e| e.names[0] = "".into())),
        ("record.entity.aliases[0]", en(|e| e.aliases[0] = "x".repeat(201))),
        ("record.entity.roles[0]", en(|e| e.roles[0] = 0)),
        ("record.entity.identifiers[0].type", en(|e| e.identifiers[0].r#type = 0)),
        ("record.entity.identifiers[0].value", en(|e| e.identifiers[0].value = "12".into())),
        ("record.entity.identifiers[1].value", en(|e| e.identifiers[1].value = "012 345 678".into())),
        ("record.entity.identifiers[0].country", en(|e| e.identifiers[0].country = "kh".into())),
        ("record.entity.country", en(|e| e.country = "KHM".into())),
        ("record.entity.evidence_basis", en(|e| e.evidence_basis.clear())),
        ("record.entity.review_by", en(|e| e.review_by = "soon".into())),
    ];
    for (field, r) in cases {
        assert_eq!(field_of(&r), field);
    }
}

#[test]
fn victim_referral_rules() {
    let cases: Vec<(&str, pb::Record)> = vec![
        ("record.victim_referral.pseudonym", vr(|v| v.pseudonym.clear())),
        (
            "record.victim_referral.identity.date_of_birth",
            vr(|v| v.identity.as_mut().unwrap().date_of_birth = "14/03/2001".into()),
        ),
        ("record.victim_referral.sex", vr(|v| v.sex = 0)),
        ("record.victim_referral.age_group", vr(|v| v.age_group = 0)),
        ("record.victim_referral.child", vr(|v| v.age_group = pb::AgeGroup::AgeGroup1217 as i32)),
        ("record.victim_referral.child", vr(|v| v.child = true)),
        ("record.victim_referral.nationality", vr(|v| v.nationality.clear())),
        ("record.victim_referral.preferred_language", vr(|v| v.preferred_language = "khmer".into())),
        ("record.victim_referral.consent", vr(|v| v.consent = None)),
        ("record.victim_referral.consent.status", vr(|v| v.consent.as_mut().unwrap().status = 0)),
        (
            "record.victim_referral.consent.guardian_decision",
            vr(|v| v.consent.as_mut().unwrap().status = pb::ConsentStatus::NotPossible as i32),
        ),
        ("record.victim_referral.reflection_period_start", vr(|v| v.reflection_period_start = "2026-02-30".into())),
        (
            "record.victim_referral.best_interest_determination.outcome",
            vr(|v| {
                v.best_interest_determination =
                    Some(pb::BestInterestDetermination { outcome: 0, date: "2026-01-01".into(), by: String::new() })
            }),
        ),
        (
            "record.victim_referral.risk_assessment.date",
            vr(|v| {
                v.risk_assessment = Some(pb::RiskAssessment { level: 1, date: String::new(), summary: String::new() })
            }),
        ),
        (
            "record.victim_referral.non_refoulement_check.outcome",
            vr(|v| {
                v.non_refoulement_check =
                    Some(pb::NonRefoulementCheck { outcome: 9, date: "2026-01-01".into(), by: String::new() })
            }),
        ),
        ("record.victim_referral.return_voluntariness", vr(|v| v.return_voluntariness = 9)),
    ];
    for (field, r) in cases {
        assert_eq!(field_of(&r), field);
    }
    let guardian = vr(|v| {
        v.age_group = pb::AgeGroup::AgeGroup011 as i32;
        v.child = true;
        v.consent = Some(pb::Consent {
            status: pb::ConsentStatus::NotPossible as i32,
            by: "Provincial social welfare office".into(),
            date: "2026-09-02".into(),
            guardian_decision: "Guardian agrees to identification and assistance".into(),
        });
    });
    assert_eq!(validate(&guardian), Ok(()));
}

#[test]
fn statistics_report_rules() {
    let cases: Vec<(&str, pb::Record)> = vec![
        ("record.statistics_report.country", sr(|s| s.country.clear())),
        ("record.statistics_report.period_start", sr(|s| s.period_start.clear())),
        ("record.statistics_report.period_end", sr(|s| s.period_end = "2024-12-31".into())),
        ("record.statistics_report.victims[0].sex", sr(|s| s.victims[0].sex = 0)),
        ("record.statistics_report.victims[1].nationality", sr(|s| s.victims[1].nationality = "Cambodia".into())),
        ("record.statistics_report.victims[0].exploitation_type", sr(|s| s.victims[0].exploitation_type = 0)),
        ("record.statistics_report.framework[0].area", sr(|s| s.framework[0].area = 0)),
        ("record.statistics_report.framework[1].area", sr(|s| s.framework.push(s.framework[0].clone()))),
    ];
    for (field, r) in cases {
        assert_eq!(field_of(&r), field);
    }
}

#[test]
fn countries_and_identifier_keys() {
    assert_eq!(countries(&examples::intelligence_report()), vec!["KH", "MY", "TH"]);
    assert_eq!(countries(&examples::entity()), vec!["KH", "TH"]);
    assert_eq!(identifier_keys(&examples::entity()), vec!["passport:N0123456", "phone:+85512345678"]);
    assert!(identifier_keys(&examples::contact_point()).is_empty());
}

#[test]
fn text_search_never_reaches_victim_identity() {
    let r = examples::victim_referral();
    assert!(matches_text(&r, "vr-kh"));
    assert!(!matches_text(&r, "Chann"), "full name is protected");
    assert!(!matches_text(&r, "Prey Veng"), "address is protected");
    assert!(matches_text(&examples::entity(), "uncle"));
}

fn arb_string() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "\\PC{0,30}", "[A-Z]{2}", "[0-9]{4}-[0-9]{2}-[0-9]{2}", ".{0,300}"]
}

proptest! {
    #[test]
    fn validate_never_panics(a in arb_string(), b in arb_string(), c in arb_string(), n in -3i32..20, k in 0usize..5) {
        let mut r = examples::all().swap_remove(k);
        match r.body.as_mut() {
            Some(Body::ContactPoint(x)) => { x.name = a; x.country = b; x.last_verified = c; x.role = n; }
            Some(Body::IntelligenceReport(x)) => { x.summary = a; x.route = vec![b]; x.period_start = c; x.source_reliability = n; }
            Some(Body::Entity(x)) => { x.names = vec![a]; x.identifiers[0].value = b; x.review_by = c; x.entity_type = n; }
            Some(Body::VictimReferral(x)) => { x.pseudonym = a; x.nationality = b; x.reflection_period_start = c; x.age_group = n; }
            Some(Body::StatisticsReport(x)) => { x.country = a; x.period_end = b; x.period_start = c; x.victims[0].sex = n; }
            Some(Body::RegionalAggregate(x)) => { x.region = a; x.period_end = b; x.period_start = c; }
            None => {}
        }
        let _ = validate(&r);
    }

    #[test]
    fn identity_text_is_never_searchable(name in "[a-z]{6,12}") {
        let r = vr(|v| {
            let id = v.identity.as_mut().unwrap();
            id.full_name = format!("zq{name}");
            id.address = format!("zq{name} street");
        });
        let needle = format!("zq{name}");
        prop_assert!(!matches_text(&r, &needle));
    }
}

/// Field by field, as a search meant before the catalogue kept one string.
fn any_field_contains(r: &pb::Record, needle: &str) -> bool {
    let needle = needle.to_lowercase();
    let hit = |s: &str| s.to_lowercase().contains(&needle);
    needle.is_empty()
        || match &r.body {
            Some(Body::ContactPoint(c)) => hit(&c.name) || hit(&c.agency) || c.channels.iter().any(|ch| hit(&ch.value)),
            Some(Body::IntelligenceReport(i)) => hit(&i.title) || hit(&i.summary) || hit(&i.modus_operandi),
            Some(Body::Entity(e)) => {
                e.names.iter().chain(&e.aliases).any(|n| hit(n))
                    || e.identifiers.iter().any(|i| hit(&i.value))
                    || hit(&e.evidence_basis)
            }
            Some(Body::VictimReferral(v)) => hit(&v.pseudonym) || hit(&v.notes),
            Some(Body::StatisticsReport(s)) => s.framework.iter().any(|f| hit(&f.narrative)),
            Some(Body::RegionalAggregate(a)) => hit(&a.region),
            None => false,
        }
}

proptest! {
    /// One string per record finds exactly what a field-by-field search
    /// finds: never a match across two fields, never a miss.
    #[test]
    fn search_text_matches_field_by_field(
        k in 0usize..5, a in "\\PC{0,12}", b in "\\PC{0,12}", from in 0usize..24, len in 0usize..10, cross in any::<bool>()
    ) {
        let mut r = examples::all().swap_remove(k);
        match r.body.as_mut() {
            Some(Body::ContactPoint(x)) => { x.name = a.clone(); x.agency = b.clone(); }
            Some(Body::IntelligenceReport(x)) => { x.title = a.clone(); x.summary = b.clone(); }
            Some(Body::Entity(x)) => { x.names = vec![a.clone()]; x.aliases = vec![b.clone()]; }
            Some(Body::VictimReferral(x)) => { x.pseudonym = a.clone(); x.notes = b.clone(); }
            Some(Body::StatisticsReport(x)) => { x.framework.truncate(1); if let Some(f) = x.framework.first_mut() { f.narrative = format!("{a}{b}"); } }
            Some(Body::RegionalAggregate(x)) => { x.region = format!("{a}{b}"); }
            None => {}
        }
        // A needle from inside one field, or spanning the end of a and the start of b.
        let joined: Vec<char> = if cross { a.chars().chain(b.chars()).collect() } else { a.chars().collect() };
        let start = from.min(joined.len());
        let needle: String = joined[start..(start + len).min(joined.len())].iter().collect();
        prop_assert_eq!(matches_text(&r, &needle), any_field_contains(&r, &needle), "needle {:?}", needle);
    }
}

fn as_received(mut r: pb::Record) -> pb::Record {
    r.originator = "kh-antht".into();
    r.version = 1;
    r.create_time = Some(pbjson_types::Timestamp { seconds: 1_790_000_000, nanos: 0 });
    r.update_time = Some(pbjson_types::Timestamp { seconds: 1_790_000_100, nanos: 0 });
    r
}

#[test]
fn a_received_record_is_validated_even_when_redacted() {
    let ok = as_received(examples::entity());
    assert_eq!(validate_received(&ok), Ok(()));
    // A redacted required field may be absent, and only that one.
    let mut redacted = as_received(en(|e| e.evidence_basis.clear()));
    assert_eq!(validate_received(&redacted).unwrap_err().field, "record.entity.evidence_basis");
    redacted.redacted_fields = vec!["entity.evidence_basis".into()];
    assert_eq!(validate_received(&redacted), Ok(()));
    // Everything else is still checked: lengths, enums, ...
    let mut long = as_received(en(|e| e.names = vec!["x".repeat(100_000)]));
    long.redacted_fields = vec!["entity.evidence_basis".into()];
    assert_eq!(validate_received(&long).unwrap_err().field, "record.entity.names[0]");
    let mut odd = as_received(en(|e| e.entity_type = 77));
    odd.redacted_fields = vec!["entity.aliases".into()];
    assert_eq!(validate_received(&odd).unwrap_err().field, "record.entity.entity_type");
    // ... the redacted list names fields of this kind only ...
    let mut other = as_received(examples::entity());
    other.redacted_fields = vec!["victim_referral.identity".into()];
    assert_eq!(validate_received(&other).unwrap_err().field, "record.redacted_fields[0]");
    // ... and the times and version the originator sets.
    let mut t = as_received(examples::entity());
    t.update_time = Some(pbjson_types::Timestamp { seconds: i64::MAX, nanos: 0 });
    assert_eq!(validate_received(&t).unwrap_err().field, "record.update_time");
    t.update_time = Some(pbjson_types::Timestamp { seconds: 1_000_000_000, nanos: 0 });
    assert_eq!(validate_received(&t).unwrap_err().field, "record.update_time", "before create_time");
    t.create_time = None;
    assert_eq!(validate_received(&t).unwrap_err().field, "record.create_time");
    let mut v0 = as_received(examples::entity());
    v0.version = 0;
    assert_eq!(validate_received(&v0).unwrap_err().field, "record.version");
    // A redacted contact point without channels and availability is still a contact point.
    let mut cp0 = as_received(cp(|c| {
        c.channels.clear();
        c.availability = None;
    }));
    cp0.redacted_fields = vec!["contact_point.channels".into(), "contact_point.availability".into()];
    assert_eq!(validate_received(&cp0), Ok(()));
}

#[test]
fn dates_outside_1900_to_2199_are_refused() {
    assert_eq!(
        field_of(&vr(|v| v.reflection_period_start = "9999-12-31".into())),
        "record.victim_referral.reflection_period_start"
    );
    assert_eq!(validate(&vr(|v| v.reflection_period_start = "2199-12-31".into())), Ok(()));
    assert!(parse_date("d", "1899-12-31").is_err());
}

#[test]
fn two_kind_bodies_are_seen_on_the_bytes() {
    use prost::Message;
    let one = examples::entity().encode_to_vec();
    assert_eq!(body_fields(&one), Ok(1));
    // Append a second body: prost would keep only the last one.
    let mut two = one.clone();
    two.extend(examples::victim_referral().encode_to_vec());
    let decoded = pb::Record::decode(two.as_slice()).unwrap();
    assert_eq!(kind(&decoded), Some(pb::RecordKind::VictimReferral));
    assert_eq!(body_fields(&two), Ok(2));
    assert!(body_fields(&[0x0a, 0x05, b'a']).is_err(), "length past the end");
    assert!(body_fields(&[0xff; 11]).is_err(), "varint too long");
}

proptest! {
    #[test]
    fn body_fields_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = body_fields(&bytes);
    }
}
