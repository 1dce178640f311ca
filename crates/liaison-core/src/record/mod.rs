//! Records: validation of every field, identifier normalisation, and what a
//! record exposes to listings (countries, free text). Pure: no IO, no clock.
//!
//! Errors name the field by its proto path, e.g.
//! `record.contact_point.channels[1].value`, so clients can point at it.

mod country;
pub mod examples;
mod identifier;
pub mod mask;

pub use country::is_country;
pub use identifier::{identifier_type_name, normalize_identifier, parse_identifier_type};

use crate::convert::ProtoEnum;
use crate::pb;
use crate::pb::record::Body;

/// Longest name-like string (names, agencies, titles), in characters.
pub const MAX_NAME: usize = 200;
/// Longest free-text field (summaries, narratives, notes), in characters.
pub const MAX_TEXT: usize = 10_000;
/// Most items in any repeated field.
pub const MAX_LIST: usize = 100;
/// Most countries on a route.
pub const MAX_ROUTE: usize = 20;

/// A validation failure naming the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

fn fail<T>(field: impl Into<String>, reason: impl Into<String>) -> Result<T, FieldError> {
    Err(FieldError { field: field.into(), reason: reason.into() })
}

type Check = Result<(), FieldError>;

/// Record ids: 1–64 of `a-z 0-9 . _ -`, starting with a letter or digit.
pub fn validate_id(id: &str) -> Check {
    let b = id.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 64
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        fail("record.id", "must be 1-64 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit")
    }
}

fn text(field: &str, v: &str, max: usize, required: bool, multiline: bool) -> Check {
    if required && v.trim().is_empty() {
        return fail(field, "required");
    }
    let n = v.chars().count();
    if n > max {
        return fail(field, format!("at most {max} characters (got {n})"));
    }
    if v.chars().any(|c| c.is_control() && !(multiline && (c == '\n' || c == '\t' || c == '\r'))) {
        return fail(field, "control characters are not allowed");
    }
    Ok(())
}

fn name(field: &str, v: &str, required: bool) -> Check {
    text(field, v, MAX_NAME, required, false)
}

fn free(field: &str, v: &str, required: bool) -> Check {
    text(field, v, MAX_TEXT, required, true)
}

fn country(field: &str, v: &str, required: bool) -> Check {
    if v.is_empty() && !required {
        return Ok(());
    }
    if is_country(v) {
        Ok(())
    } else if v.is_empty() {
        fail(field, "required (ISO 3166-1 alpha-2, e.g. TH)")
    } else {
        fail(field, format!("{v:?} is not an ISO 3166-1 alpha-2 code (two capital letters, e.g. TH)"))
    }
}

fn language(field: &str, v: &str) -> Check {
    if v.len() == 2 && v.bytes().all(|b| b.is_ascii_lowercase()) {
        Ok(())
    } else {
        fail(field, format!("{v:?} is not an ISO 639-1 code (two lowercase letters, e.g. th)"))
    }
}

/// Parses "YYYY-MM-DD", years 1900–2199: wide enough for any date of birth
/// or agreement, narrow enough that date arithmetic never overflows.
pub fn parse_date(field: &str, s: &str) -> Result<time::Date, FieldError> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let d = time::Date::parse(s, &fmt).or_else(|_| fail(field, format!("{s:?} is not a date (YYYY-MM-DD)")))?;
    if !(1900..2200).contains(&d.year()) {
        return fail(field, format!("{s:?}: the year must be between 1900 and 2199"));
    }
    Ok(d)
}

fn date(field: &str, v: &str, required: bool) -> Result<Option<time::Date>, FieldError> {
    if v.is_empty() {
        return if required { fail(field, "required (YYYY-MM-DD)") } else { Ok(None) };
    }
    parse_date(field, v).map(Some)
}

fn list<T>(field: &str, v: &[T], max: usize) -> Check {
    if v.len() > max {
        fail(field, format!("at most {max} items (got {})", v.len()))
    } else {
        Ok(())
    }
}

/// An enum field: known value; `Unspecified` (0) only if not required.
fn enumeration<E: ProtoEnum>(field: &str, v: i32, required: bool) -> Check {
    if v == 0 {
        return if required { fail(field, "required") } else { Ok(()) };
    }
    if E::of(v).is_none() {
        return fail(field, format!("{v} is not a known value"));
    }
    Ok(())
}

pub fn kind(record: &pb::Record) -> Option<pb::RecordKind> {
    Some(match record.body.as_ref()? {
        Body::ContactPoint(_) => pb::RecordKind::ContactPoint,
        Body::IntelligenceReport(_) => pb::RecordKind::IntelligenceReport,
        Body::Entity(_) => pb::RecordKind::Entity,
        Body::VictimReferral(_) => pb::RecordKind::VictimReferral,
        Body::StatisticsReport(_) => pb::RecordKind::StatisticsReport,
        Body::RegionalAggregate(_) => pb::RecordKind::RegionalAggregate,
    })
}

/// Field paths a sender redacted (`<kind>.<field>`): a required field among
/// them may be absent from the copy received.
struct Redacted<'a>(&'a [String]);

impl Redacted<'_> {
    fn has(&self, path: &str) -> bool {
        self.0
            .iter()
            .any(|r| path == r || (path.starts_with(r.as_str()) && path.as_bytes().get(r.len()) == Some(&b'.')))
    }
}

/// Checks id, handling and body. Originator, version, times and withdrawal
/// are the node's to set and are not checked here.
pub fn validate(record: &pb::Record) -> Check {
    validate_with(record, &Redacted(&[]))
}

fn validate_with(record: &pb::Record, redacted: &Redacted<'_>) -> Check {
    validate_id(&record.id)?;
    enumeration::<pb::HandlingCode>("record.handling", record.handling, true)?;
    external_reference(&record.external_reference)?;
    match &record.body {
        None => fail(
            "record.body",
            "one of contact_point, intelligence_report, entity, victim_referral, statistics_report, regional_aggregate is required",
        ),
        Some(Body::ContactPoint(c)) => contact_point(c, redacted),
        Some(Body::IntelligenceReport(i)) => intelligence_report(i),
        Some(Body::Entity(e)) => entity(e, redacted),
        Some(Body::VictimReferral(v)) => victim_referral(v),
        Some(Body::StatisticsReport(s)) => statistics_report(s),
        Some(Body::RegionalAggregate(a)) => crate::hub::joint::validate(a),
    }
}

/// The integrating system's own reference: short, printable.
fn external_reference(r: &str) -> Check {
    if r.chars().count() > 128 {
        return fail("record.external_reference", "at most 128 characters");
    }
    if r.chars().any(char::is_control) {
        return fail("record.external_reference", "no control characters");
    }
    Ok(())
}

/// Record times accepted from another node: 2000-01-01 to 2100-01-01 (UTC).
/// Anything outside is an encoding error or an attack, never a real record.
const EARLIEST: i64 = 946_684_800;
const LATEST: i64 = 4_102_444_800;

fn record_time(field: &str, t: Option<&pbjson_types::Timestamp>) -> Result<i128, FieldError> {
    let Some(t) = t else { return fail(field, "required") };
    if !(EARLIEST..LATEST).contains(&t.seconds) || !(0..1_000_000_000).contains(&t.nanos) {
        return fail(field, "must be a time between 2000-01-01 and 2100-01-01");
    }
    Ok(i128::from(t.seconds).saturating_mul(1_000_000_000).saturating_add(i128::from(t.nanos)))
}

/// A time another node sent outside a record (e.g. request metadata at a
/// hub): the same range as record times.
pub fn peer_time(field: &str, t: &pbjson_types::Timestamp) -> Result<(), FieldError> {
    record_time(field, Some(t)).map(|_| ())
}

/// Most field paths a received copy may list as redacted.
pub const MAX_REDACTED: usize = 64;

/// Checks a record another node signed, however it arrived (push, sync,
/// query answer, relay, import): every rule of [`validate`] except that a
/// required field the sender lists as redacted may be absent, plus the
/// fields the originator sets (originator, version, times) and the shape of
/// the redacted list (its names are checked against the known field paths by
/// the caller, which knows them).
pub fn validate_received(record: &pb::Record) -> Check {
    if !valid_node_id(&record.originator) {
        return fail("record.originator", "not a node id");
    }
    if record.version == 0 {
        return fail("record.version", "starts at 1");
    }
    let created = record_time("record.create_time", record.create_time.as_ref())?;
    let updated = record_time("record.update_time", record.update_time.as_ref())?;
    if updated < created {
        return fail("record.update_time", "before create_time");
    }
    list("record.redacted_fields", &record.redacted_fields, MAX_REDACTED)?;
    let prefix = kind(record).map(crate::convert::kind_word).unwrap_or_default();
    for (i, f) in record.redacted_fields.iter().enumerate() {
        let of_kind = f.strip_prefix(prefix.as_str()).is_some_and(|rest| rest.starts_with('.'));
        if !of_kind || f.len() > 100 {
            return fail(format!("record.redacted_fields[{i}]"), format!("{f:?} is not a field of this record's kind"));
        }
    }
    validate_with(record, &Redacted(&record.redacted_fields))
}

/// Counts the `body` fields (tags 10–14) at the top level of an encoded
/// record. Protobuf decoding keeps only the last of several oneof members, so
/// a signed record with two kind bodies must be refused on its bytes, before
/// decoding. Errors on bytes that are not a well-formed message.
pub fn body_fields(encoded: &[u8]) -> Result<usize, FieldError> {
    let bad = || FieldError { field: "record".into(), reason: "not a well-formed protobuf message".into() };
    fn varint(b: &[u8], at: &mut usize) -> Option<u64> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = *b.get(*at)?;
            *at = at.checked_add(1)?;
            v |= u64::from(byte & 0x7f).checked_shl(shift)?;
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    let mut at = 0usize;
    let mut bodies = 0usize;
    while at < encoded.len() {
        let key = varint(encoded, &mut at).ok_or_else(bad)?;
        let (tag, wire) = (key >> 3, key & 7);
        match wire {
            0 => {
                varint(encoded, &mut at).ok_or_else(bad)?;
            }
            1 => at = at.checked_add(8).filter(|e| *e <= encoded.len()).ok_or_else(bad)?,
            5 => at = at.checked_add(4).filter(|e| *e <= encoded.len()).ok_or_else(bad)?,
            2 => {
                let len = usize::try_from(varint(encoded, &mut at).ok_or_else(bad)?).map_err(|_| bad())?;
                at = at.checked_add(len).filter(|e| *e <= encoded.len()).ok_or_else(bad)?;
            }
            _ => return Err(bad()),
        }
        if (10..=14).contains(&tag) {
            bodies = bodies.saturating_add(1);
        }
    }
    Ok(bodies)
}

fn contact_point(c: &pb::ContactPoint, redacted: &Redacted<'_>) -> Check {
    const P: &str = "record.contact_point";
    name(&format!("{P}.name"), &c.name, true)?;
    enumeration::<pb::ContactRole>(&format!("{P}.role"), c.role, true)?;
    name(&format!("{P}.agency"), &c.agency, true)?;
    country(&format!("{P}.country"), &c.country, true)?;
    list(&format!("{P}.languages"), &c.languages, 20)?;
    for (i, l) in c.languages.iter().enumerate() {
        language(&format!("{P}.languages[{i}]"), l)?;
    }
    if c.channels.is_empty() && !redacted.has("contact_point.channels") {
        return fail(format!("{P}.channels"), "at least one channel is required");
    }
    list(&format!("{P}.channels"), &c.channels, 20)?;
    for (i, ch) in c.channels.iter().enumerate() {
        let f = format!("{P}.channels[{i}]");
        enumeration::<pb::ChannelType>(&format!("{f}.type"), ch.r#type, true)?;
        name(&format!("{f}.value"), &ch.value, true)?;
        let as_ident = match pb::ChannelType::of(ch.r#type) {
            Some(pb::ChannelType::Phone) | Some(pb::ChannelType::Fax) => Some(pb::IdentifierType::Phone),
            Some(pb::ChannelType::Email) => Some(pb::IdentifierType::Email),
            _ => None,
        };
        if let Some(t) = as_ident {
            normalize_identifier(t, &ch.value)
                .map_err(|e| FieldError { field: format!("{f}.value"), reason: e.reason })?;
        }
    }
    let f = format!("{P}.availability");
    let Some(a) = &c.availability else {
        if redacted.has("contact_point.availability") {
            return date(&format!("{P}.last_verified"), &c.last_verified, true).map(|_| ());
        }
        return fail(f, "required: always (24/7) or hours with a time zone");
    };
    if !a.always {
        if !valid_hours(&a.hours) {
            return fail(format!("{f}.hours"), "office hours as HH:MM-HH:MM are required unless always is set");
        }
    } else if !a.hours.is_empty() {
        return fail(format!("{f}.hours"), "leave empty when always is set");
    }
    if (!a.time_zone.is_empty() || !a.always) && !valid_time_zone(&a.time_zone) {
        return fail(format!("{f}.time_zone"), "an IANA time zone such as Asia/Bangkok or UTC");
    }
    date(&format!("{P}.last_verified"), &c.last_verified, true)?;
    Ok(())
}

fn valid_hours(h: &str) -> bool {
    let hm = |s: &str| -> Option<u32> {
        let (a, b) = s.split_once(':')?;
        if a.len() != 2 || b.len() != 2 {
            return None;
        }
        let (h, m) = (a.parse::<u32>().ok()?, b.parse::<u32>().ok()?);
        (h < 24 && m < 60).then(|| h.saturating_mul(60).saturating_add(m))
    };
    matches!(h.split_once('-'), Some((a, b)) if hm(a).is_some() && hm(b).is_some() && hm(a) != hm(b))
}

fn valid_time_zone(tz: &str) -> bool {
    tz == "UTC"
        || (tz.len() <= 64
            && tz.contains('/')
            && tz
                .split('/')
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+'))))
}

fn exploitation(field: &str, v: &[i32], required: bool) -> Check {
    if required && v.is_empty() {
        return fail(field, "at least one exploitation type is required");
    }
    list(field, v, 9)?;
    for (i, e) in v.iter().enumerate() {
        enumeration::<pb::ExploitationType>(&format!("{field}[{i}]"), *e, true)?;
    }
    Ok(())
}

fn period(p: &str, start: &str, end: &str, required: bool) -> Check {
    let s = date(&format!("{p}.period_start"), start, required)?;
    let e = date(&format!("{p}.period_end"), end, required)?;
    if let (Some(s), Some(e)) = (s, e) {
        if e < s {
            return fail(format!("{p}.period_end"), "ends before period_start");
        }
    }
    Ok(())
}

fn intelligence_report(r: &pb::IntelligenceReport) -> Check {
    const P: &str = "record.intelligence_report";
    name(&format!("{P}.title"), &r.title, false)?;
    free(&format!("{P}.summary"), &r.summary, true)?;
    list(&format!("{P}.subject_entity_ids"), &r.subject_entity_ids, MAX_LIST)?;
    for (i, id) in r.subject_entity_ids.iter().enumerate() {
        validate_id(id).map_err(|e| FieldError { field: format!("{P}.subject_entity_ids[{i}]"), reason: e.reason })?;
    }
    list(&format!("{P}.route"), &r.route, MAX_ROUTE)?;
    for (i, c) in r.route.iter().enumerate() {
        country(&format!("{P}.route[{i}]"), c, true)?;
    }
    free(&format!("{P}.modus_operandi"), &r.modus_operandi, false)?;
    exploitation(&format!("{P}.exploitation_types"), &r.exploitation_types, true)?;
    enumeration::<pb::SourceReliability>(&format!("{P}.source_reliability"), r.source_reliability, true)?;
    enumeration::<pb::InformationCredibility>(
        &format!("{P}.information_credibility"),
        r.information_credibility,
        true,
    )?;
    period(P, &r.period_start, &r.period_end, false)
}

fn entity(e: &pb::Entity, redacted: &Redacted<'_>) -> Check {
    const P: &str = "record.entity";
    enumeration::<pb::EntityType>(&format!("{P}.entity_type"), e.entity_type, true)?;
    if e.names.is_empty() {
        return fail(format!("{P}.names"), "at least one name is required");
    }
    list(&format!("{P}.names"), &e.names, MAX_LIST)?;
    for (i, n) in e.names.iter().enumerate() {
        name(&format!("{P}.names[{i}]"), n, true)?;
    }
    list(&format!("{P}.aliases"), &e.aliases, MAX_LIST)?;
    for (i, n) in e.aliases.iter().enumerate() {
        name(&format!("{P}.aliases[{i}]"), n, true)?;
    }
    list(&format!("{P}.roles"), &e.roles, 20)?;
    for (i, r) in e.roles.iter().enumerate() {
        enumeration::<pb::EntityRole>(&format!("{P}.roles[{i}]"), *r, true)?;
    }
    list(&format!("{P}.identifiers"), &e.identifiers, MAX_LIST)?;
    for (i, id) in e.identifiers.iter().enumerate() {
        let f = format!("{P}.identifiers[{i}]");
        enumeration::<pb::IdentifierType>(&format!("{f}.type"), id.r#type, true)?;
        let t = id.r#type();
        normalize_identifier(t, &id.value).map_err(|e| FieldError { field: format!("{f}.value"), reason: e.reason })?;
        country(&format!("{f}.country"), &id.country, false)?;
    }
    country(&format!("{P}.country"), &e.country, false)?;
    free(&format!("{P}.evidence_basis"), &e.evidence_basis, !redacted.has("entity.evidence_basis"))?;
    country(&format!("{P}.source_state"), &e.source_state, false)?;
    date(&format!("{P}.review_by"), &e.review_by, false)?;
    Ok(())
}

fn victim_referral(v: &pb::VictimReferral) -> Check {
    const P: &str = "record.victim_referral";
    name(&format!("{P}.pseudonym"), &v.pseudonym, true)?;
    if let Some(id) = &v.identity {
        let f = format!("{P}.identity");
        name(&format!("{f}.full_name"), &id.full_name, false)?;
        date(&format!("{f}.date_of_birth"), &id.date_of_birth, false)?;
        name(&format!("{f}.identity_document"), &id.identity_document, false)?;
        free(&format!("{f}.address"), &id.address, false)?;
        free(&format!("{f}.family_contact"), &id.family_contact, false)?;
    }
    enumeration::<pb::Sex>(&format!("{P}.sex"), v.sex, true)?;
    enumeration::<pb::AgeGroup>(&format!("{P}.age_group"), v.age_group, true)?;
    match pb::AgeGroup::of(v.age_group) {
        Some(pb::AgeGroup::AgeGroup011 | pb::AgeGroup::AgeGroup1217) if !v.child => {
            return fail(format!("{P}.child"), "must be true for an age group under 18");
        }
        Some(
            pb::AgeGroup::AgeGroup1824
            | pb::AgeGroup::AgeGroup2539
            | pb::AgeGroup::AgeGroup4059
            | pb::AgeGroup::AgeGroup60Plus,
        ) if v.child => {
            return fail(format!("{P}.child"), "must be false for an adult age group");
        }
        _ => {}
    }
    country(&format!("{P}.nationality"), &v.nationality, true)?;
    if !v.preferred_language.is_empty() {
        language(&format!("{P}.preferred_language"), &v.preferred_language)?;
    }
    exploitation(&format!("{P}.exploitation_types"), &v.exploitation_types, false)?;
    let f = format!("{P}.consent");
    let Some(c) = &v.consent else {
        return fail(f, "required: given, refused or not possible (with the guardian's decision)");
    };
    enumeration::<pb::ConsentStatus>(&format!("{f}.status"), c.status, true)?;
    name(&format!("{f}.by"), &c.by, c.status == pb::ConsentStatus::NotPossible as i32)?;
    if c.status == pb::ConsentStatus::NotPossible as i32 {
        free(&format!("{f}.guardian_decision"), &c.guardian_decision, true)?;
    } else {
        free(&format!("{f}.guardian_decision"), &c.guardian_decision, false)?;
    }
    date(&format!("{f}.date"), &c.date, false)?;
    date(&format!("{P}.reflection_period_start"), &v.reflection_period_start, false)?;
    if let Some(b) = &v.best_interest_determination {
        let f = format!("{P}.best_interest_determination");
        enumeration::<pb::BestInterestOutcome>(&format!("{f}.outcome"), b.outcome, true)?;
        date(&format!("{f}.date"), &b.date, true)?;
        name(&format!("{f}.by"), &b.by, false)?;
    }
    if let Some(r) = &v.risk_assessment {
        let f = format!("{P}.risk_assessment");
        enumeration::<pb::RiskLevel>(&format!("{f}.level"), r.level, true)?;
        date(&format!("{f}.date"), &r.date, true)?;
        free(&format!("{f}.summary"), &r.summary, false)?;
    }
    enumeration::<pb::Voluntariness>(&format!("{P}.return_voluntariness"), v.return_voluntariness, false)?;
    if let Some(n) = &v.non_refoulement_check {
        let f = format!("{P}.non_refoulement_check");
        enumeration::<pb::NonRefoulementOutcome>(&format!("{f}.outcome"), n.outcome, true)?;
        date(&format!("{f}.date"), &n.date, true)?;
        name(&format!("{f}.by"), &n.by, false)?;
    }
    country(&format!("{P}.identified_in"), &v.identified_in, false)?;
    free(&format!("{P}.notes"), &v.notes, false)?;
    if let Some(r) = &v.residence_permit {
        let f = format!("{P}.residence_permit");
        enumeration::<pb::ResidencePermitDecision>(&format!("{f}.decision"), r.decision, true)?;
        date(&format!("{f}.date"), &r.date, true)?;
        name(&format!("{f}.by"), &r.by, false)?;
        date(&format!("{f}.valid_until"), &r.valid_until, false)?;
    }
    if let Some(a) = &v.asylum_referral {
        let f = format!("{P}.asylum_referral");
        name(&format!("{f}.authority"), &a.authority, true)?;
        date(&format!("{f}.date"), &a.date, true)?;
    }
    if let Some(r) = &v.service_referral {
        let f = format!("{P}.service_referral");
        name(&format!("{f}.provider"), &r.provider, true)?;
        name(&format!("{f}.service"), &r.service, true)?;
        date(&format!("{f}.date"), &r.date, true)?;
    }
    Ok(())
}

fn statistics_report(s: &pb::StatisticsReport) -> Check {
    const P: &str = "record.statistics_report";
    country(&format!("{P}.country"), &s.country, true)?;
    period(P, &s.period_start, &s.period_end, true)?;
    list(&format!("{P}.victims"), &s.victims, 1000)?;
    for (i, v) in s.victims.iter().enumerate() {
        let f = format!("{P}.victims[{i}]");
        enumeration::<pb::Sex>(&format!("{f}.sex"), v.sex, true)?;
        enumeration::<pb::AgeGroup>(&format!("{f}.age_group"), v.age_group, true)?;
        country(&format!("{f}.nationality"), &v.nationality, true)?;
        enumeration::<pb::ExploitationType>(&format!("{f}.exploitation_type"), v.exploitation_type, true)?;
    }
    list(&format!("{P}.framework"), &s.framework, 9)?;
    let mut seen = Vec::new();
    for (i, e) in s.framework.iter().enumerate() {
        let f = format!("{P}.framework[{i}]");
        enumeration::<pb::FrameworkArea>(&format!("{f}.area"), e.area, true)?;
        if seen.contains(&e.area) {
            return fail(format!("{f}.area"), "each framework area may appear once");
        }
        seen.push(e.area);
        free(&format!("{f}.narrative"), &e.narrative, false)?;
    }
    Ok(())
}

/// Every country code the record mentions, for the `country` filter.
pub fn countries(record: &pb::Record) -> Vec<String> {
    let mut out: Vec<String> = match &record.body {
        Some(Body::ContactPoint(c)) => vec![c.country.clone()],
        Some(Body::IntelligenceReport(i)) => i.route.clone(),
        Some(Body::Entity(e)) => {
            let mut v = vec![e.country.clone(), e.source_state.clone()];
            v.extend(e.identifiers.iter().map(|i| i.country.clone()));
            v
        }
        Some(Body::VictimReferral(v)) => vec![v.nationality.clone(), v.identified_in.clone()],
        Some(Body::StatisticsReport(s)) => vec![s.country.clone()],
        Some(Body::RegionalAggregate(a)) => a.rows.iter().map(|r| r.area.clone()).filter(|a| a != "REGION").collect(),
        None => Vec::new(),
    };
    out.retain(|c| !c.is_empty());
    out.sort();
    out.dedup();
    out
}

/// Case-insensitive substring match over the record's searchable text. Victim
/// identity fields are protected and never searched: a search must not become
/// a way to probe them.
pub fn matches_text(record: &pb::Record, needle: &str) -> bool {
    text_contains(&search_text(record), &needle.to_lowercase())
}

/// Separates fields in [`search_text`], so no needle matches across two.
const FIELD_BREAK: char = '\0';

/// The record's searchable fields, each lowercased, in one string (what a
/// search catalogue keeps instead of the record). Protected fields are not
/// among them.
pub fn search_text(record: &pb::Record) -> String {
    let fields: Vec<&str> = match &record.body {
        Some(Body::ContactPoint(c)) => [c.name.as_str(), c.agency.as_str()]
            .into_iter()
            .chain(c.channels.iter().map(|ch| ch.value.as_str()))
            .collect(),
        Some(Body::IntelligenceReport(i)) => vec![&i.title, &i.summary, &i.modus_operandi],
        Some(Body::Entity(e)) => e
            .names
            .iter()
            .chain(&e.aliases)
            .map(String::as_str)
            .chain(e.identifiers.iter().map(|i| i.value.as_str()))
            .chain([e.evidence_basis.as_str()])
            .collect(),
        Some(Body::VictimReferral(v)) => vec![&v.pseudonym, &v.notes],
        Some(Body::StatisticsReport(s)) => s.framework.iter().map(|f| f.narrative.as_str()).collect(),
        Some(Body::RegionalAggregate(a)) => vec![&a.region],
        None => Vec::new(),
    };
    let mut out = String::new();
    for f in fields {
        out.push_str(&f.to_lowercase());
        out.push(FIELD_BREAK);
    }
    out
}

/// Whether `text` (from [`search_text`]) holds `lowered`, a needle already
/// lowercased (once per search, not once per record). An empty needle
/// matches every record.
pub fn text_contains(text: &str, lowered: &str) -> bool {
    lowered.is_empty() || (!lowered.contains(FIELD_BREAK) && text.contains(lowered))
}

/// Normalised identifier keys (`type:value`) of an entity record.
pub fn identifier_keys(record: &pb::Record) -> Vec<String> {
    let Some(Body::Entity(e)) = &record.body else {
        return Vec::new();
    };
    let mut out: Vec<String> = e
        .identifiers
        .iter()
        .filter_map(|i| {
            let t = pb::IdentifierType::of(i.r#type)?;
            let n = normalize_identifier(t, &i.value).ok()?;
            Some(format!("{}:{n}", identifier_type_name(t)))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests;

/// A node id: 2 to 32 of `a-z`, `0-9` and `-`, starting with a letter and
/// not ending with `-`.
pub fn valid_node_id(id: &str) -> bool {
    let b = id.as_bytes();
    (2..=32).contains(&b.len())
        && b.first().is_some_and(u8::is_ascii_lowercase)
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && !id.ends_with('-')
}
