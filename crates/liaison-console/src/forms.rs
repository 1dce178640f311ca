//! Record forms for the five kinds, from one table per kind: each field's
//! path is the record's own field path, so a validation error from the
//! node (which names `record.<path>`) lands next to the field it names.
//! Submitted fields become proto JSON and then a `pb::Record`; nothing is
//! checked here that the node checks.

use liaison_node::convert::ProtoEnum;
use liaison_node::pb;
use serde_json::{Map, Value};

use crate::ctx::Problem;
use crate::i18n::Tr;

/// How one field is entered.
#[derive(Clone, Copy)]
pub enum Input {
    Text,
    Area,
    Date,
    Number,
    Check,
    /// One value per line.
    Lines,
    Enum(fn() -> Options),
    /// Any number of an enum's values.
    Multi(fn() -> Options),
    /// A repeated message: up to `n` rows of sub-fields.
    Rows(usize, &'static [F]),
}

/// Proto names with the enum's key prefix, for labels.
pub struct Options {
    pub key: String,
    pub values: Vec<(&'static str, String)>,
}

pub fn options<E: ProtoEnum>() -> Options {
    let values = (1..64).filter_map(E::of).map(|e| (e.proto_name(), e.to_word())).collect();
    Options { key: enum_key::<E>(), values }
}

/// `CONTACT_ROLE_` → `contact-role`.
pub fn enum_key<E: ProtoEnum>() -> String {
    E::prefix().trim_end_matches('_').to_lowercase().replace('_', "-")
}

#[derive(Clone, Copy)]
pub struct F(pub &'static str, pub Input);

use Input::*;

const CHANNEL: &[F] = &[F("type", Enum(options::<pb::ChannelType>)), F("value", Text)];
const IDENTIFIER: &[F] = &[F("type", Enum(options::<pb::IdentifierType>)), F("value", Text), F("country", Text)];
const VICTIMS: &[F] = &[
    F("sex", Enum(options::<pb::Sex>)),
    F("age_group", Enum(options::<pb::AgeGroup>)),
    F("nationality", Text),
    F("exploitation_type", Enum(options::<pb::ExploitationType>)),
    F("count", Number),
];
const FRAMEWORK: &[F] = &[F("area", Enum(options::<pb::FrameworkArea>)), F("narrative", Area)];

/// The proto JSON name of each kind's body, and its fields.
pub fn schema(kind: pb::RecordKind) -> Option<(&'static str, &'static [F])> {
    Some(match kind {
        pb::RecordKind::ContactPoint => (
            "contact_point",
            &[
                F("name", Text),
                F("role", Enum(options::<pb::ContactRole>)),
                F("office", Check),
                F("agency", Text),
                F("country", Text),
                F("languages", Lines),
                F("channels", Rows(3, CHANNEL)),
                F("availability.always", Check),
                F("availability.hours", Text),
                F("availability.time_zone", Text),
                F("last_verified", Date),
            ],
        ),
        pb::RecordKind::IntelligenceReport => (
            "intelligence_report",
            &[
                F("title", Text),
                F("summary", Area),
                F("subject_entity_ids", Lines),
                F("route", Lines),
                F("modus_operandi", Area),
                F("exploitation_types", Multi(options::<pb::ExploitationType>)),
                F("source_reliability", Enum(options::<pb::SourceReliability>)),
                F("information_credibility", Enum(options::<pb::InformationCredibility>)),
                F("period_start", Date),
                F("period_end", Date),
            ],
        ),
        pb::RecordKind::Entity => (
            "entity",
            &[
                F("entity_type", Enum(options::<pb::EntityType>)),
                F("names", Lines),
                F("aliases", Lines),
                F("roles", Multi(options::<pb::EntityRole>)),
                F("identifiers", Rows(3, IDENTIFIER)),
                F("country", Text),
                F("evidence_basis", Area),
                F("source_state", Text),
                F("review_by", Date),
            ],
        ),
        pb::RecordKind::VictimReferral => (
            "victim_referral",
            &[
                F("pseudonym", Text),
                F("identity.full_name", Text),
                F("identity.date_of_birth", Date),
                F("identity.identity_document", Text),
                F("identity.address", Text),
                F("identity.family_contact", Text),
                F("sex", Enum(options::<pb::Sex>)),
                F("age_group", Enum(options::<pb::AgeGroup>)),
                F("child", Check),
                F("nationality", Text),
                F("preferred_language", Text),
                F("exploitation_types", Multi(options::<pb::ExploitationType>)),
                F("consent.status", Enum(options::<pb::ConsentStatus>)),
                F("consent.by", Text),
                F("consent.date", Date),
                F("consent.guardian_decision", Text),
                F("reflection_period_start", Date),
                F("early_return_requested", Check),
                F("best_interest_determination.outcome", Enum(options::<pb::BestInterestOutcome>)),
                F("best_interest_determination.date", Date),
                F("best_interest_determination.by", Text),
                F("risk_assessment.level", Enum(options::<pb::RiskLevel>)),
                F("risk_assessment.date", Date),
                F("risk_assessment.summary", Text),
                F("return_voluntariness", Enum(options::<pb::Voluntariness>)),
                F("non_refoulement_check.outcome", Enum(options::<pb::NonRefoulementOutcome>)),
                F("non_refoulement_check.date", Date),
                F("non_refoulement_check.by", Text),
                F("identified_in", Text),
                F("notes", Area),
                F("residence_permit.decision", Enum(options::<pb::ResidencePermitDecision>)),
                F("residence_permit.date", Date),
                F("residence_permit.by", Text),
                F("residence_permit.valid_until", Date),
                F("asylum_referral.authority", Text),
                F("asylum_referral.date", Date),
                F("service_referral.provider", Text),
                F("service_referral.service", Text),
                F("service_referral.date", Date),
            ],
        ),
        pb::RecordKind::StatisticsReport => (
            "statistics_report",
            &[
                F("country", Text),
                F("period_start", Date),
                F("period_end", Date),
                F("victims", Rows(4, VICTIMS)),
                F("investigations", Number),
                F("prosecutions", Number),
                F("convictions", Number),
                F("framework", Rows(3, FRAMEWORK)),
            ],
        ),
        // A regional aggregate is published by the hub, never typed in.
        pb::RecordKind::Unspecified | pb::RecordKind::RegionalAggregate => return None,
    })
}

/// One input as a page shows it.
pub struct FieldView {
    /// The form field name: the record path (`contact_point.channels[0].type`).
    pub name: String,
    pub id: String,
    pub label: String,
    /// `text`, `textarea`, `date`, `number`, `checkbox`, `select`, `multi`.
    pub kind: &'static str,
    pub value: String,
    pub checked: bool,
    /// (value, label, selected)
    pub options: Vec<(String, String, bool)>,
    pub error: String,
    /// Where a row starts: its caption.
    pub group: String,
}

/// A field's label key: `field-contact_point-availability-hours`.
pub fn label_key(path: &str) -> String {
    format!("field-{}", path.replace(['.', '['], "-").replace(']', ""))
}

fn get<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, seg| v.get(liaison_node::record::mask::json_name(seg)).or_else(|| v.get(seg)))
}

fn text_of(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

fn field_views(
    tr: &Tr,
    prefix: &str,
    label_prefix: &str,
    fields: &[F],
    body: &Value,
    problem: &Problem,
) -> Vec<FieldView> {
    let mut out = Vec::new();
    for F(path, input) in fields {
        let name = format!("{prefix}{path}");
        let label_path = format!("{label_prefix}{path}");
        let v = get(body, path);
        let mut f = FieldView {
            id: name.replace(['.', '[', ']'], "_"),
            name: name.clone(),
            label: tr.t(&label_key(&label_path)),
            kind: "text",
            value: String::new(),
            checked: false,
            options: Vec::new(),
            error: problem.at(&name),
            group: String::new(),
        };
        match input {
            Text => f.value = text_of(v),
            Area => {
                f.kind = "textarea";
                f.value = text_of(v);
            }
            Date => {
                f.kind = "date";
                f.value = text_of(v);
            }
            Number => {
                f.kind = "number";
                f.value = text_of(v);
            }
            Check => {
                f.kind = "checkbox";
                f.checked = matches!(v, Some(Value::Bool(true)));
            }
            Lines => {
                f.kind = "textarea";
                f.value = match v {
                    Some(Value::Array(a)) => a.iter().map(|x| text_of(Some(x))).collect::<Vec<_>>().join("\n"),
                    _ => String::new(),
                };
            }
            Enum(opts) => {
                f.kind = "select";
                let o = opts();
                let cur = text_of(v);
                f.options.push((String::new(), tr.t("form-none"), cur.is_empty()));
                f.options.extend(o.values.iter().map(|(n, w)| (n.to_string(), tr.word(&o.key, w), *n == cur)));
            }
            Multi(opts) => {
                f.kind = "multi";
                let o = opts();
                let cur: Vec<String> = match v {
                    Some(Value::Array(a)) => a.iter().map(|x| text_of(Some(x))).collect(),
                    _ => Vec::new(),
                };
                f.options = o
                    .values
                    .iter()
                    .map(|(n, w)| (n.to_string(), tr.word(&o.key, w), cur.iter().any(|c| c == n)))
                    .collect();
            }
            Rows(n, sub) => {
                let rows = match v {
                    Some(Value::Array(a)) => a.clone(),
                    _ => Vec::new(),
                };
                for i in 0..*n {
                    let row = rows.get(i).cloned().unwrap_or(Value::Null);
                    let mut views =
                        field_views(tr, &format!("{name}[{i}]."), &format!("{label_path}."), sub, &row, problem);
                    if let Some(first) = views.first_mut() {
                        first.group = tr.ta(&label_key(&label_path), &[]) + &format!(" {}", i + 1);
                    }
                    out.extend(views);
                }
                continue;
            }
        }
        out.push(f);
    }
    out
}

/// The inputs for a record of `kind` holding `record`'s values.
pub fn views(tr: &Tr, kind: pb::RecordKind, record: &pb::Record, problem: &Problem) -> Vec<FieldView> {
    let Some((body_key, fields)) = schema(kind) else { return Vec::new() };
    let json = serde_json::to_value(record).unwrap_or(Value::Null);
    let body = json.get(liaison_node::record::mask::json_name(body_key)).cloned().unwrap_or(Value::Null);
    field_views(tr, &format!("{body_key}."), &format!("{body_key}."), fields, &body, problem)
}

fn put(obj: &mut Map<String, Value>, path: &str, v: Value) {
    match path.split_once('.') {
        None => {
            obj.insert(path.to_string(), v);
        }
        Some((head, rest)) => {
            let e = obj.entry(head.to_string()).or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(m) = e {
                put(m, rest, v);
            }
        }
    }
}

fn collect(form: &[(String, String)], prefix: &str, fields: &[F]) -> Map<String, Value> {
    let one = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim().to_string());
    let mut obj = Map::new();
    for F(path, input) in fields {
        let name = format!("{prefix}{path}");
        let v = match input {
            Text | Area | Date => one(&name).filter(|s| !s.is_empty()).map(Value::String),
            Enum(_) => one(&name).filter(|s| !s.is_empty()).map(Value::String),
            Number => one(&name).filter(|s| !s.is_empty()).map(|s| match s.parse::<u64>() {
                Ok(n) => Value::from(n),
                // Not a number: sent as given, so the node names the field.
                Err(_) => Value::String(s),
            }),
            Check => one(&name).map(|_| Value::Bool(true)),
            Lines => {
                let lines: Vec<Value> = one(&name)
                    .unwrap_or_default()
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(|l| Value::String(l.to_string()))
                    .collect();
                (!lines.is_empty()).then_some(Value::Array(lines))
            }
            Multi(_) => {
                let all: Vec<Value> = form
                    .iter()
                    .filter(|(k, v)| *k == name && !v.is_empty())
                    .map(|(_, v)| Value::String(v.clone()))
                    .collect();
                (!all.is_empty()).then_some(Value::Array(all))
            }
            Rows(n, sub) => {
                let rows: Vec<Value> = (0..*n)
                    .map(|i| collect(form, &format!("{name}[{i}]."), sub))
                    .filter(|m| !m.is_empty())
                    .map(Value::Object)
                    .collect();
                (!rows.is_empty()).then_some(Value::Array(rows))
            }
        };
        if let Some(v) = v {
            put(&mut obj, path, v);
        }
    }
    obj
}

/// The record a submitted form describes: the kind's fields, the handling
/// code and, for an edit, the id. A value of the wrong shape is a problem
/// naming the form, not a panic.
pub fn record(kind: pb::RecordKind, form: &[(String, String)]) -> Result<pb::Record, Problem> {
    let Some((body_key, fields)) = schema(kind) else {
        return Err(Problem { message: "unknown record kind".into(), field: "kind".into() });
    };
    let body = collect(form, &format!("{body_key}."), fields);
    let mut rec = Map::new();
    rec.insert(body_key.to_string(), Value::Object(body));
    for k in ["id", "handling"] {
        if let Some((_, v)) = form.iter().find(|(n, v)| n == k && !v.is_empty()) {
            rec.insert(k.to_string(), Value::String(v.clone()));
        }
    }
    serde_json::from_value(Value::Object(rec)).map_err(|e| Problem { message: e.to_string(), field: String::new() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_contact_point_form_becomes_a_record_and_back() {
        let f = form(&[
            ("handling", "HANDLING_CODE_GREEN"),
            ("contact_point.name", "Duty desk"),
            ("contact_point.role", "CONTACT_ROLE_FOCAL_POINT"),
            ("contact_point.languages", "th\nen\n"),
            ("contact_point.channels[0].type", "CHANNEL_TYPE_PHONE"),
            ("contact_point.channels[0].value", "+66 2 000 0000"),
            ("contact_point.channels[1].type", ""),
            ("contact_point.availability.always", "on"),
        ]);
        let r = record(pb::RecordKind::ContactPoint, &f).unwrap();
        let Some(pb::record::Body::ContactPoint(c)) = &r.body else { panic!("{r:?}") };
        assert_eq!(c.name, "Duty desk");
        assert_eq!(c.languages, vec!["th", "en"]);
        assert_eq!(c.channels.len(), 1, "an empty row is no channel");
        assert!(c.availability.as_ref().unwrap().always);
        assert_eq!(r.handling, pb::HandlingCode::Green as i32);
        // Back into the form: the same values in the same inputs.
        let tr = Tr::new("en");
        let v = views(&tr, pb::RecordKind::ContactPoint, &r, &Problem::default());
        let by = |n: &str| v.iter().find(|f| f.name == n).unwrap();
        assert_eq!(by("contact_point.name").value, "Duty desk");
        assert_eq!(by("contact_point.languages").value, "th\nen");
        assert_eq!(by("contact_point.channels[0].value").value, "+66 2 000 0000");
        assert!(by("contact_point.availability.always").checked);
        assert!(by("contact_point.role").options.iter().any(|(n, _, sel)| n == "CONTACT_ROLE_FOCAL_POINT" && *sel));
    }

    #[test]
    fn errors_land_next_to_the_field_they_name() {
        let p = Problem { message: "bad".into(), field: "record.contact_point.availability.time_zone".into() };
        let tr = Tr::new("en");
        let v = views(&tr, pb::RecordKind::ContactPoint, &pb::Record::default(), &p);
        let with: Vec<&str> = v.iter().filter(|f| !f.error.is_empty()).map(|f| f.name.as_str()).collect();
        assert_eq!(with, vec!["contact_point.availability.time_zone"]);
    }

    #[test]
    fn a_value_of_the_wrong_shape_is_a_problem_not_a_panic() {
        let f = form(&[("statistics_report.investigations", "many"), ("handling", "HANDLING_CODE_NONSENSE")]);
        assert!(record(pb::RecordKind::StatisticsReport, &f).is_err());
    }

    #[test]
    fn every_kind_has_a_form() {
        for k in 1..=5 {
            let kind = pb::RecordKind::of(k).unwrap();
            let (_, fields) = schema(kind).unwrap();
            assert!(!fields.is_empty());
        }
    }
}
