//! Sharing agreements: the human-written TOML form, validation with errors
//! naming the field, and the pure life-cycle state (draft → proposed →
//! active → suspended / revoked / expired / superseded).

use crate::convert::ProtoEnum;
use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use time::OffsetDateTime;

use crate::convert::{self, from_timestamp, timestamp};
use crate::pb;
use crate::record::valid_node_id;
use crate::redact;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct AgreementError {
    pub field: String,
    pub reason: String,
}

fn fail<T>(field: impl Into<String>, reason: impl Into<String>) -> Result<T, AgreementError> {
    Err(AgreementError { field: field.into(), reason: reason.into() })
}

/// Purposes for which a victim's identity may ever be released.
pub const VICTIM_PURPOSES: [pb::Purpose; 3] =
    [pb::Purpose::VictimIdentification, pb::Purpose::VictimAssistance, pb::Purpose::ReturnAndReintegration];

/// Request types with a meaning every node knows, and what each is. An SOP
/// may define others, with a title saying what they are.
/// `victim_identification` and `victim_return` also govern victim-case steps.
pub const WELL_KNOWN_REQUEST_TYPES: [(&str, &str); 12] = [
    ("information_request", "a request for information held by the other unit"),
    ("intelligence_request", "a request for criminal intelligence on a case"),
    ("contact_verification", "confirming that a contact point is current"),
    ("mutual_legal_assistance", "formal mutual legal assistance in a criminal matter"),
    ("extradition", "a request to surrender a person for prosecution or punishment"),
    ("joint_investigation_team", "setting up or running a joint investigation team"),
    ("consular_notification", "notifying a victim's or suspect's consulate"),
    ("victim_identification", "identifying a presumed victim and their nationality"),
    ("victim_return", "the safe return of an identified victim"),
    ("reception_of_returnee", "receiving a returning victim: escort, shelter, services"),
    ("referral_to_services", "referring a victim to a service provider"),
    ("training_information", "information on training offered or requested"),
];

/// What a well-known request type is (None for an SOP's own type).
pub fn well_known_request_type(name: &str) -> Option<&'static str> {
    WELL_KNOWN_REQUEST_TYPES.iter().find(|(n, _)| *n == name).map(|(_, what)| *what)
}

/// What a request type is, for people: its SOP's title, else the
/// well-known meaning, else its name.
pub fn request_type_title(t: &pb::RequestTypeTerms) -> String {
    if !t.title.is_empty() {
        return t.title.clone();
    }
    well_known_request_type(&t.name).map_or_else(|| t.name.replace('_', " "), str::to_string)
}

/// A request type's name: snake_case, 3–48 characters, starting with a letter.
pub fn is_request_type_name(name: &str) -> bool {
    (3..=48).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.ends_with('_')
        && !name.contains("__")
}

// ---- TOML form ---------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgreementToml {
    id: String,
    version: u32,
    title: String,
    legal_basis: String,
    parties: Vec<String>,
    valid_from: String,
    valid_until: String,
    #[serde(default)]
    hub: String,
    #[serde(default)]
    grants: Vec<GrantToml>,
    #[serde(default)]
    sop: Option<SopToml>,
    #[serde(default)]
    retention: Option<RetentionToml>,
    /// Party → role ("ngo"), or a table with the role and, for an
    /// embassy, the host country.
    #[serde(default)]
    roles: BTreeMap<String, RoleToml>,
    #[serde(default)]
    reporting: Vec<ReportingToml>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RoleToml {
    Word(String),
    Table {
        role: String,
        #[serde(default)]
        posted_in: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportingToml {
    name: String,
    title: String,
    every: String,
    due_after: String,
    remind_before: String,
    #[serde(default)]
    members: Vec<String>,
    #[serde(default)]
    source: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantToml {
    from: String,
    to: String,
    #[serde(default)]
    record_kinds: Vec<String>,
    #[serde(default)]
    purposes: Vec<String>,
    #[serde(default)]
    operations: Vec<String>,
    max_handling: String,
    #[serde(default)]
    released_protected_fields: Vec<String>,
    #[serde(default)]
    redacted_fields: Vec<String>,
    #[serde(default = "forbidden")]
    onward_sharing: String,
}

fn forbidden() -> String {
    "forbidden".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SopToml {
    name: String,
    #[serde(default)]
    request_types: Vec<RequestTypeToml>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestTypeToml {
    name: String,
    ack_within: String,
    answer_within: String,
    urgent_ack_within: String,
    urgent_answer_within: String,
    escalation_role: String,
    #[serde(default)]
    purposes: Vec<String>,
    #[serde(default)]
    source: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    answered_by: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetentionToml {
    days: u32,
    #[serde(default)]
    purge_on_revoke: bool,
}

/// Longest SOP deadline: a year. Longer ones are a typo, and unbounded ones
/// would overflow the time arithmetic that sets a request's due dates.
pub const MAX_DEADLINE_SECS: u64 = 366 * 86_400;
/// Longest retention of received records (about a century).
pub const MAX_RETENTION_DAYS: u32 = 36_600;
/// Validity windows lie within these years.
const YEARS: std::ops::RangeInclusive<i32> = 2000..=2199;

/// "30m", "8h", "3d", "2w" → seconds (at most [`MAX_DEADLINE_SECS`]).
pub fn parse_duration(field: &str, s: &str) -> Result<u64, AgreementError> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().or_else(|_| fail(field, format!("{s:?} is not a duration like 8h, 3d, 2w")))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return fail(field, format!("{s:?}: unit must be s, m, h, d or w")),
    };
    let secs = n
        .checked_mul(mult)
        .filter(|v| *v > 0)
        .ok_or_else(|| AgreementError { field: field.into(), reason: format!("{s:?} must be a positive duration") })?;
    if secs > MAX_DEADLINE_SECS {
        return fail(field, format!("{s:?} is longer than a year (366d)"));
    }
    Ok(secs)
}

/// "YYYY-MM-DD" (midnight UTC) or RFC 3339.
fn parse_time(field: &str, s: &str) -> Result<OffsetDateTime, AgreementError> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t);
    }
    let d =
        crate::record::parse_date(field, s).map_err(|e| AgreementError { field: field.into(), reason: e.reason })?;
    Ok(d.midnight().assume_utc())
}

fn words<T>(
    field: &str,
    ws: &[String],
    parse: impl Fn(&str) -> Option<T>,
    what: &str,
) -> Result<Vec<i32>, AgreementError>
where
    T: Into<i32>,
{
    ws.iter()
        .enumerate()
        .map(|(i, w)| {
            parse(w).map(Into::into).ok_or_else(|| AgreementError {
                field: format!("{field}[{i}]"),
                reason: format!("{w:?} is not a {what}"),
            })
        })
        .collect()
}

/// Parses and validates the TOML form.
pub fn parse_toml(text: &str) -> Result<pb::Agreement, AgreementError> {
    let t: AgreementToml = toml::from_str(text).map_err(|e| {
        let reason = e.message().to_string();
        let field = e
            .span()
            .and_then(|sp| text.get(..sp.start))
            .map(|before| format!("line {}", before.lines().count().max(1)))
            .unwrap_or_else(|| "agreement".into());
        AgreementError { field, reason }
    })?;
    let mut grants = Vec::new();
    for (i, g) in t.grants.iter().enumerate() {
        let f = format!("grants[{i}]");
        grants.push(pb::Grant {
            from: g.from.clone(),
            to: g.to.clone(),
            record_kinds: words(&format!("{f}.record_kinds"), &g.record_kinds, convert::kind_from_word, "record kind")?,
            purposes: words(&format!("{f}.purposes"), &g.purposes, convert::purpose_from_word, "purpose")?,
            operations: words(
                &format!("{f}.operations"),
                &g.operations,
                convert::operation_from_word,
                "operation (query, hit_check, push, sync)",
            )?,
            max_handling: convert::handling_from_word(&g.max_handling).map(|h| h as i32).ok_or_else(|| {
                AgreementError {
                    field: format!("{f}.max_handling"),
                    reason: format!("{:?} is not a TLP code (clear, green, amber, amber+strict, red)", g.max_handling),
                }
            })?,
            released_protected_fields: g.released_protected_fields.clone(),
            redacted_fields: g.redacted_fields.clone(),
            onward_sharing: convert::onward_from_word(&g.onward_sharing).map(|o| o as i32).ok_or_else(|| {
                AgreementError {
                    field: format!("{f}.onward_sharing"),
                    reason: "must be forbidden, with_consent or allowed".into(),
                }
            })?,
        });
    }
    let sop = match &t.sop {
        Some(s) => {
            let mut types = Vec::new();
            for (i, r) in s.request_types.iter().enumerate() {
                let f = format!("sop.request_types[{i}]");
                types.push(pb::RequestTypeTerms {
                    name: r.name.clone(),
                    ack_within_seconds: parse_duration(&format!("{f}.ack_within"), &r.ack_within)?,
                    answer_within_seconds: parse_duration(&format!("{f}.answer_within"), &r.answer_within)?,
                    urgent_ack_within_seconds: parse_duration(&format!("{f}.urgent_ack_within"), &r.urgent_ack_within)?,
                    urgent_answer_within_seconds: parse_duration(
                        &format!("{f}.urgent_answer_within"),
                        &r.urgent_answer_within,
                    )?,
                    escalation_role: convert::contact_role_from_word(&r.escalation_role).map(|x| x as i32).ok_or_else(
                        || AgreementError {
                            field: format!("{f}.escalation_role"),
                            reason: format!("{:?} is not a contact role", r.escalation_role),
                        },
                    )?,
                    purposes: words(&format!("{f}.purposes"), &r.purposes, convert::purpose_from_word, "purpose")?,
                    source: r.source.clone(),
                    title: r.title.clone(),
                    answered_by: r.answered_by.clone(),
                });
            }
            Some(pb::SopTerms { name: s.name.clone(), request_types: types })
        }
        None => None,
    };
    let doc = pb::Agreement {
        id: t.id,
        version: t.version,
        title: t.title,
        legal_basis: t.legal_basis,
        parties: t.parties,
        valid_from: Some(timestamp(parse_time("valid_from", &t.valid_from)?)),
        valid_until: Some(timestamp(parse_time("valid_until", &t.valid_until)?)),
        grants,
        sop,
        retention: t.retention.map(|r| pb::Retention { days: r.days, purge_on_revoke: r.purge_on_revoke }),
        hub: t.hub,
        roles: roles_from_toml(&t.roles)?,
        reporting: reporting_from_toml(&t.reporting)?,
    };
    validate(&doc)?;
    Ok(doc)
}

fn roles_from_toml(roles: &BTreeMap<String, RoleToml>) -> Result<Vec<pb::PartyRole>, AgreementError> {
    roles
        .iter()
        .map(|(party, r)| {
            let (word, posted_in) = match r {
                RoleToml::Word(w) => (w, String::new()),
                RoleToml::Table { role, posted_in } => (role, posted_in.clone()),
            };
            let role = pb::ActorRole::from_word(word).ok_or_else(|| AgreementError {
                field: format!("roles.{party}"),
                reason: format!(
                    "{word:?} is not a role (law_enforcement, secretariat, ngo, service_provider, international_org, nhri, embassy)"
                ),
            })?;
            Ok(pb::PartyRole { party: party.clone(), role: role as i32, posted_in })
        })
        .collect()
}

fn reporting_from_toml(duties: &[ReportingToml]) -> Result<Vec<pb::ReportingDuty>, AgreementError> {
    duties
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let f = format!("reporting[{i}]");
            let every = pb::ReportingPeriod::from_word(&d.every).ok_or_else(|| AgreementError {
                field: format!("{f}.every"),
                reason: format!("{:?} is not year, half_year or quarter", d.every),
            })?;
            Ok(pb::ReportingDuty {
                name: d.name.clone(),
                title: d.title.clone(),
                every: every as i32,
                due_after_seconds: parse_duration(&format!("{f}.due_after"), &d.due_after)?,
                remind_before_seconds: parse_duration(&format!("{f}.remind_before"), &d.remind_before)?,
                members: d.members.clone(),
                source: d.source.clone(),
            })
        })
        .collect()
}

fn validate_roles(a: &pb::Agreement) -> Result<(), AgreementError> {
    let mut seen = BTreeSet::new();
    for (i, r) in a.roles.iter().enumerate() {
        let f = format!("roles[{i}]");
        if !a.parties.contains(&r.party) {
            return fail(format!("{f}.party"), format!("{:?} is not a party", r.party));
        }
        if !seen.insert(r.party.as_str()) {
            return fail(format!("{f}.party"), format!("{} has two roles", r.party));
        }
        let role = pb::ActorRole::known(&format!("{f}.role"), r.role)
            .map_err(|e| AgreementError { field: e.field, reason: e.reason })?;
        match (role, r.posted_in.is_empty()) {
            (pb::ActorRole::Embassy, false) if !crate::record::is_country(&r.posted_in) => {
                return fail(format!("{f}.posted_in"), format!("{:?} is not an ISO 3166-1 alpha-2 code", r.posted_in))
            }
            (pb::ActorRole::Embassy, _) | (_, true) => {}
            (_, false) => return fail(format!("{f}.posted_in"), "only an embassy is posted in another country"),
        }
    }
    // A grant naming a party cannot give it a kind its role may never receive.
    for (i, g) in a.grants.iter().enumerate() {
        if g.to == "*" {
            continue;
        }
        let role = crate::actor::role_of(a, &g.to);
        for (j, k) in g.record_kinds.iter().enumerate() {
            if let Some(kind) = pb::RecordKind::of(*k).filter(|k| !crate::actor::may_receive(role, *k)) {
                return fail(
                    format!("grants[{i}].record_kinds[{j}]"),
                    format!(
                        "{} (role: {}) may receive only {}, not {}",
                        g.to,
                        crate::actor::title(role),
                        crate::actor::receivable_words(role),
                        redact::kind_prefix(kind)
                    ),
                );
            }
        }
    }
    Ok(())
}

fn validate_reporting(a: &pb::Agreement) -> Result<(), AgreementError> {
    if !a.reporting.is_empty() && a.hub.is_empty() {
        return fail("reporting", "reports go to the agreement's hub: name one in `hub`");
    }
    let mut names = BTreeSet::new();
    for (i, d) in a.reporting.iter().enumerate() {
        let f = format!("reporting[{i}]");
        if !is_request_type_name(&d.name) {
            return fail(format!("{f}.name"), format!("{:?} is not a snake_case name of 3-48 characters", d.name));
        }
        if !names.insert(d.name.as_str()) {
            return fail(format!("{f}.name"), format!("duplicate reporting duty {}", d.name));
        }
        text(&format!("{f}.title"), &d.title, 300)?;
        if !d.source.is_empty() {
            text(&format!("{f}.source"), &d.source, 2000)?;
        }
        pb::ReportingPeriod::known(&format!("{f}.every"), d.every)
            .map_err(|e| AgreementError { field: e.field, reason: e.reason })?;
        for (n, v) in [("due_after", d.due_after_seconds), ("remind_before", d.remind_before_seconds)] {
            if v == 0 || v > MAX_DEADLINE_SECS {
                return fail(format!("{f}.{n}"), "a positive duration of at most a year (366d)");
            }
        }
        for (j, m) in d.members.iter().enumerate() {
            if !a.parties.contains(m) || *m == a.hub {
                return fail(format!("{f}.members[{j}]"), format!("{m:?} is not a party that reports to the hub"));
            }
        }
    }
    Ok(())
}

fn text(field: &str, v: &str, max: usize) -> Result<(), AgreementError> {
    if v.trim().is_empty() {
        return fail(field, "required");
    }
    if v.chars().count() > max || v.chars().any(|c| c.is_control() && c != '\n') {
        return fail(field, format!("at most {max} characters, no control characters"));
    }
    Ok(())
}

fn known<E: ProtoEnum>(field: &str, v: i32) -> Result<(), AgreementError> {
    if E::known(field, v).is_err() {
        return fail(field, format!("{v} is not a known value"));
    }
    Ok(())
}

/// Checks an agreement, however it arrived (TOML or protobuf from a peer).
pub fn validate(a: &pb::Agreement) -> Result<(), AgreementError> {
    crate::record::validate_id(&a.id).map_err(|e| AgreementError { field: "id".into(), reason: e.reason })?;
    if a.version == 0 {
        return fail("version", "starts at 1");
    }
    text("title", &a.title, 300)?;
    text("legal_basis", &a.legal_basis, 2000)?;
    if a.parties.len() < 2 {
        return fail("parties", "an agreement needs at least two parties");
    }
    if a.parties.len() > 64 {
        return fail("parties", "at most 64 parties");
    }
    let mut seen = BTreeSet::new();
    for (i, p) in a.parties.iter().enumerate() {
        if !valid_node_id(p) {
            return fail(format!("parties[{i}]"), format!("{p:?} is not a node id"));
        }
        if !seen.insert(p.as_str()) {
            return fail(format!("parties[{i}]"), format!("{p} is listed twice"));
        }
    }
    let from = a.valid_from.as_ref().and_then(from_timestamp);
    let until = a.valid_until.as_ref().and_then(from_timestamp);
    let (Some(from), Some(until)) = (from, until) else {
        return fail("valid_from", "validity window (valid_from, valid_until) is required");
    };
    if until <= from {
        return fail("valid_until", "the validity window ends before it starts");
    }
    for (f, t) in [("valid_from", from), ("valid_until", until)] {
        if !YEARS.contains(&t.year()) {
            return fail(f, format!("{t} is not between the years {} and {}", YEARS.start(), YEARS.end()));
        }
    }
    if let Some(r) = &a.retention {
        if r.days > MAX_RETENTION_DAYS {
            return fail("retention.days", format!("at most {MAX_RETENTION_DAYS} days"));
        }
    }
    if !a.hub.is_empty() && !valid_node_id(&a.hub) {
        return fail("hub", format!("{:?} is not a node id", a.hub));
    }
    if a.grants.is_empty() {
        return fail("grants", "at least one grant is required");
    }
    for (i, g) in a.grants.iter().enumerate() {
        validate_grant(&format!("grants[{i}]"), g, &seen)?;
    }
    validate_roles(a)?;
    validate_reporting(a)?;
    if let Some(sop) = &a.sop {
        text("sop.name", &sop.name, 300)?;
        let mut names = BTreeSet::new();
        for (i, r) in sop.request_types.iter().enumerate() {
            let f = format!("sop.request_types[{i}]");
            if !is_request_type_name(&r.name) {
                return fail(format!("{f}.name"), format!("{:?} is not a snake_case name of 3-48 characters", r.name));
            }
            if !r.title.is_empty() {
                text(&format!("{f}.title"), &r.title, 200)?;
            } else if well_known_request_type(&r.name).is_none() {
                return fail(
                    format!("{f}.title"),
                    format!("{} is not a well-known request type: say what it is in a title", r.name),
                );
            }
            let mut answerers = BTreeSet::new();
            for (j, p) in r.answered_by.iter().enumerate() {
                if !a.parties.contains(p) {
                    return fail(format!("{f}.answered_by[{j}]"), format!("{p:?} is not a party"));
                }
                if !answerers.insert(p.as_str()) {
                    return fail(format!("{f}.answered_by[{j}]"), format!("{p} is listed twice"));
                }
            }
            if !names.insert(r.name.as_str()) {
                return fail(format!("{f}.name"), format!("duplicate request type {}", r.name));
            }
            for (n, v) in [
                ("ack_within", r.ack_within_seconds),
                ("answer_within", r.answer_within_seconds),
                ("urgent_ack_within", r.urgent_ack_within_seconds),
                ("urgent_answer_within", r.urgent_answer_within_seconds),
            ] {
                if v == 0 {
                    return fail(format!("{f}.{n}"), "must be a positive duration");
                }
                if v > MAX_DEADLINE_SECS {
                    return fail(format!("{f}.{n}"), "longer than a year (366d)");
                }
            }
            if r.urgent_ack_within_seconds > r.ack_within_seconds {
                return fail(
                    format!("{f}.urgent_ack_within"),
                    "an urgent deadline cannot be longer than the normal one",
                );
            }
            if r.urgent_answer_within_seconds > r.answer_within_seconds {
                return fail(
                    format!("{f}.urgent_answer_within"),
                    "an urgent deadline cannot be longer than the normal one",
                );
            }
            if r.ack_within_seconds > r.answer_within_seconds {
                return fail(format!("{f}.ack_within"), "acknowledgement cannot be due after the answer");
            }
            if r.urgent_ack_within_seconds > r.urgent_answer_within_seconds {
                return fail(format!("{f}.urgent_ack_within"), "acknowledgement cannot be due after the answer");
            }
            known::<pb::ContactRole>(&format!("{f}.escalation_role"), r.escalation_role)?;
            for (j, p) in r.purposes.iter().enumerate() {
                known::<pb::Purpose>(&format!("{f}.purposes[{j}]"), *p)?;
            }
        }
    }
    Ok(())
}

fn validate_grant(f: &str, g: &pb::Grant, parties: &BTreeSet<&str>) -> Result<(), AgreementError> {
    for (side, v) in [("from", &g.from), ("to", &g.to)] {
        if v != "*" && !parties.contains(v.as_str()) {
            let reason = if valid_node_id(v) {
                format!("{v} is not a party to this agreement")
            } else {
                format!("{v:?} is not a node id or *")
            };
            return fail(format!("{f}.{side}"), reason);
        }
    }
    if g.from == g.to && g.from != "*" {
        return fail(format!("{f}.to"), "a grant cannot be from a party to itself");
    }
    if g.record_kinds.is_empty() {
        return fail(format!("{f}.record_kinds"), "empty grant: name at least one record kind");
    }
    if g.purposes.is_empty() {
        return fail(format!("{f}.purposes"), "empty grant: name at least one purpose");
    }
    if g.operations.is_empty() {
        return fail(format!("{f}.operations"), "empty grant: name at least one operation");
    }
    for (i, k) in g.record_kinds.iter().enumerate() {
        known::<pb::RecordKind>(&format!("{f}.record_kinds[{i}]"), *k)?;
    }
    for (i, p) in g.purposes.iter().enumerate() {
        known::<pb::Purpose>(&format!("{f}.purposes[{i}]"), *p)?;
    }
    for (i, o) in g.operations.iter().enumerate() {
        known::<pb::Operation>(&format!("{f}.operations[{i}]"), *o)?;
    }
    known::<pb::HandlingCode>(&format!("{f}.max_handling"), g.max_handling)?;
    known::<pb::OnwardSharing>(&format!("{f}.onward_sharing"), g.onward_sharing)?;
    let kinds: Vec<&str> =
        g.record_kinds.iter().filter_map(|k| pb::RecordKind::of(*k)).map(redact::kind_prefix).collect();
    for (list, name) in
        [(&g.released_protected_fields, "released_protected_fields"), (&g.redacted_fields, "redacted_fields")]
    {
        for (i, path) in list.iter().enumerate() {
            if !redact::is_known_field(path) {
                return fail(format!("{f}.{name}[{i}]"), format!("{path:?} is not a field a grant can name"));
            }
            if !kinds.iter().any(|k| path.starts_with(&format!("{k}."))) {
                return fail(format!("{f}.{name}[{i}]"), format!("{path} is not a field of a kind this grant covers"));
            }
        }
    }
    let releases_identity = g
        .released_protected_fields
        .iter()
        .any(|p| redact::covers(redact::VICTIM_IDENTITY, p) || redact::covers(p, "victim_referral.identity.full_name"));
    if releases_identity {
        let all_victim = g.purposes.iter().all(|p| VICTIM_PURPOSES.iter().any(|v| *v as i32 == *p));
        if !all_victim {
            return fail(
                format!("{f}.released_protected_fields"),
                "victim identity may be released only for victim_identification, victim_assistance or return_and_reintegration; put other purposes in a separate grant",
            );
        }
    }
    Ok(())
}

/// SOP terms by request type name.
pub fn request_terms(a: &pb::Agreement) -> BTreeMap<String, pb::RequestTypeTerms> {
    a.sop.iter().flat_map(|s| s.request_types.iter()).map(|r| (r.name.clone(), r.clone())).collect()
}

// ---- life cycle --------------------------------------------------------

/// Everything that decides an agreement's state besides the document.
#[derive(Debug, Clone, Default)]
pub struct Standing {
    /// Parties whose signatures over the document's exact bytes verified.
    pub signed_by: BTreeSet<String>,
    /// Verified notices, in the order received.
    pub notices: Vec<pb::AgreementNotice>,
    /// A newer version of the same agreement is active.
    pub superseded: bool,
    /// The document was delivered to (or received from) another party.
    pub proposed: bool,
}

/// True while some party's latest suspend/resume notice is a suspension.
pub fn suspended(notices: &[pb::AgreementNotice]) -> bool {
    let mut by_party: BTreeMap<&str, bool> = BTreeMap::new();
    for n in notices {
        match pb::NoticeAction::of(n.action) {
            Some(pb::NoticeAction::Suspend) => {
                by_party.insert(&n.issuer, true);
            }
            Some(pb::NoticeAction::Resume) => {
                by_party.insert(&n.issuer, false);
            }
            _ => {}
        }
    }
    by_party.values().any(|s| *s)
}

pub fn revoked(notices: &[pb::AgreementNotice]) -> bool {
    notices.iter().any(|n| n.action == pb::NoticeAction::Revoke as i32)
}

/// The state at `now`. Revocation is final; suspension lasts until the
/// suspending party resumes; expiry follows from the window.
pub fn state(doc: &pb::Agreement, s: &Standing, now: OffsetDateTime) -> pb::AgreementState {
    use pb::AgreementState as S;
    if revoked(&s.notices) {
        return S::Revoked;
    }
    if s.superseded {
        return S::Superseded;
    }
    let all_signed = doc.parties.iter().all(|p| s.signed_by.contains(p));
    if !all_signed {
        return if s.proposed { S::Proposed } else { S::Draft };
    }
    let from = doc.valid_from.as_ref().and_then(from_timestamp);
    let until = doc.valid_until.as_ref().and_then(from_timestamp);
    match (from, until) {
        (Some(f), _) if now < f => S::Pending,
        (_, Some(u)) if now >= u => S::Expired,
        (Some(_), Some(_)) if suspended(&s.notices) => S::Suspended,
        (Some(_), Some(_)) => S::Active,
        _ => S::Draft,
    }
}

#[cfg(test)]
mod tests;
