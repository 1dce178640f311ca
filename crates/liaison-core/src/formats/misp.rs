//! MISP events for intelligence reports.
//!
//! The report is one `intelligence-report` object (MISP's INTREP template):
//! `narrative` is the summary, `enemy-activity` the modus operandi,
//! `enemy-location` each country of the route in order, `enemy-unit` each
//! subject entity's record id; the object's `first_seen`/`last_seen` are the
//! period. Handling, the Admiralty grades and the exploitation types are
//! event tags: `tlp:<colour>` and `admiralty-scale:...` from the MISP
//! taxonomies, `liaison:exploitation="<type>"` of our own.

use serde_json::{json, Value};

use super::{problem, Obj, Problem};
use crate::convert::ProtoEnum;
use crate::pb;
use crate::pb::record::Body;

const NS: &str = "liaison/misp";
/// MISP object template `intelligence-report`, version 1.
const INTREP: &str = "intelligence-report";
const INTREP_UUID: &str = "a88289fe-9afb-54b7-97a6-f51c6a004942";
const RELIABILITY: &str = "admiralty-scale:source-reliability=";
const CREDIBILITY: &str = "admiralty-scale:information-credibility=";
const EXPLOITATION: &str = "liaison:exploitation=";

fn date(t: time::OffsetDateTime) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    t.format(&fmt).unwrap_or_default()
}

/// A MISP event for an intelligence report; `None` for other kinds.
pub fn event(rec: &pb::Record, producer: &str) -> Option<Value> {
    let Some(Body::IntelligenceReport(r)) = &rec.body else { return None };
    let key = super::record_key(rec);
    let mut attributes = Vec::new();
    let mut attr = |relation: &str, ty: &str, category: &str, value: &str| {
        if value.is_empty() {
            return;
        }
        let n = attributes.len();
        attributes.push(json!({
            "uuid": super::uuid(NS, &format!("attribute/{key}/{n}")),
            "object_relation": relation, "type": ty, "category": category, "value": value,
            "to_ids": false, "disable_correlation": ty == "text",
        }));
    };
    attr("report-id", "text", "Other", &rec.id);
    attr("reporting-unit", "text", "Other", producer);
    attr("narrative", "text", "Other", &r.summary);
    attr("enemy-activity", "text", "Other", &r.modus_operandi);
    for c in &r.route {
        attr("enemy-location", "target-location", "Targeting data", c);
    }
    for s in &r.subject_entity_ids {
        attr("enemy-unit", "text", "Attribution", s);
    }
    let mut object = json!({
        "name": INTREP, "meta-category": "misc",
        "description": "Object template for an Intelligence Report (INTREP) based on FM 34-35, FM 101-5-2 and FM 6-99 report/message formats for tactical intelligence reporting and dissemination.",
        "template_uuid": INTREP_UUID, "template_version": "1",
        "uuid": super::uuid(NS, &format!("object/{key}")),
        "Attribute": attributes,
    });
    if let Some(o) = object.as_object_mut() {
        for (field, d) in [("first_seen", &r.period_start), ("last_seen", &r.period_end)] {
            if !d.is_empty() {
                o.insert(field.into(), json!(format!("{d}T00:00:00+00:00")));
            }
        }
    }

    let mut tags = Vec::new();
    let tlp = super::tlp_word(rec.handling);
    if !tlp.is_empty() {
        tags.push(format!("tlp:{tlp}"));
    }
    let reliability = pb::SourceReliability::word_of(r.source_reliability);
    if !reliability.is_empty() {
        tags.push(format!("{RELIABILITY}\"{reliability}\""));
    }
    let credibility = pb::InformationCredibility::word_of(r.information_credibility);
    if !credibility.is_empty() {
        tags.push(format!("{CREDIBILITY}\"{credibility}\""));
    }
    for e in &r.exploitation_types {
        tags.push(format!("{EXPLOITATION}\"{}\"", pb::ExploitationType::word_of(*e)));
    }
    // Distribution follows TLP: CLEAR to all communities, GREEN to this
    // community, anything stricter to the receiving organisation only.
    let distribution = match pb::HandlingCode::of(rec.handling) {
        Some(pb::HandlingCode::Clear) => "3",
        Some(pb::HandlingCode::Green) => "1",
        _ => "0",
    };
    let mut ev = json!({
        "uuid": super::uuid(NS, &format!("event/{key}")),
        "info": super::heading(r),
        "threat_level_id": "4",
        "analysis": "2",
        "distribution": distribution,
        "published": false,
        "Orgc": { "name": producer, "uuid": super::uuid(NS, &format!("node/{producer}")) },
        "Tag": tags.into_iter().map(|t| json!({ "name": t })).collect::<Vec<_>>(),
        "Attribute": [],
        "Object": [object],
    });
    if let Some(ev) = ev.as_object_mut() {
        if let Some(created) = rec.create_time.as_ref().and_then(crate::convert::from_timestamp) {
            ev.insert("date".into(), json!(date(created)));
        }
        if let Some(updated) = rec.update_time.as_ref() {
            ev.insert("timestamp".into(), json!(updated.seconds.to_string()));
        }
    }
    Some(json!({ "Event": ev }))
}

/// Where each field of the report being imported came from.
#[derive(Default)]
struct Paths {
    info: String,
    uuid: String,
    tags: String,
    summary: Option<String>,
    modus_operandi: String,
    route: Vec<String>,
    subjects: Vec<String>,
    first_seen: String,
    last_seen: String,
}

impl Paths {
    fn of(&self, field: &str) -> String {
        let name = field.split(['[', '.']).next().unwrap_or(field);
        let index = || field.strip_prefix(name)?.strip_prefix('[')?.split(']').next()?.parse::<usize>().ok();
        let nth = |v: &[String]| index().and_then(|k| v.get(k)).cloned().unwrap_or_else(|| self.info.clone());
        match name {
            "id" => self.uuid.clone(),
            "title" => self.info.clone(),
            "summary" => self.summary.clone().unwrap_or_else(|| self.info.clone()),
            "modus_operandi" => self.modus_operandi.clone(),
            "route" => nth(&self.route),
            "subject_entity_ids" => nth(&self.subjects),
            "period_start" => self.first_seen.clone(),
            "period_end" => self.last_seen.clone(),
            _ => self.tags.clone(),
        }
    }
}

/// An intelligence report record from a MISP event (`{"Event": {...}}` or
/// the bare event). The report's text comes from its `intelligence-report`
/// object; an event without one gives its `info` as the summary. Handling
/// is required (a `tlp:` tag); Admiralty grades nobody gave are F and 6.
pub fn import(event: &Value) -> Result<pb::Record, Vec<Problem>> {
    read(event).map_err(|p| vec![p])
}

fn read(event: &Value) -> Result<pb::Record, Problem> {
    let root = Obj::of(event, "")?;
    let ev = match root.obj("Event")? {
        Some(ev) => ev,
        None => root,
    };
    let mut paths = Paths { info: ev.at("info"), uuid: ev.at("uuid"), tags: ev.at("Tag"), ..Default::default() };
    let uuid = ev.required("uuid")?;
    if !super::is_uuid(uuid) {
        return Err(problem(ev.at("uuid"), "not a UUID"));
    }
    let info = ev.required("info")?;

    let mut handling = None;
    let mut reliability = pb::SourceReliability::F;
    let mut credibility = pb::InformationCredibility::InformationCredibility6;
    let mut exploitation_types = Vec::new();
    for (k, t) in ev.list("Tag")?.iter().enumerate() {
        let t = Obj::of(t, format!("{}[{k}]", ev.at("Tag")))?;
        let name = t.required("name")?;
        let unknown = || problem(t.at("name"), format!("{name:?}: unknown value"));
        let quoted = |prefix: &str| name.strip_prefix(prefix).map(|v| v.trim_matches('"'));
        if let Some(w) = name.strip_prefix("tlp:") {
            handling = Some(super::strictest(handling, super::tlp_from_word(w).ok_or_else(unknown)?));
        } else if let Some(w) = quoted(RELIABILITY) {
            reliability = pb::SourceReliability::from_word(w).ok_or_else(unknown)?;
        } else if let Some(w) = quoted(CREDIBILITY) {
            credibility = pb::InformationCredibility::from_word(w).ok_or_else(unknown)?;
        } else if let Some(w) = quoted(EXPLOITATION) {
            exploitation_types.push(pb::ExploitationType::from_word(w).ok_or_else(unknown)? as i32);
        }
    }
    let handling = handling.ok_or_else(|| problem(ev.at("Tag"), "a tlp: tag is required"))?;

    let mut report = pb::IntelligenceReport {
        title: info.to_string(),
        exploitation_types,
        source_reliability: reliability as i32,
        information_credibility: credibility as i32,
        ..Default::default()
    };
    let objects = ev.list("Object")?;
    if let Some((k, o)) =
        objects.iter().enumerate().find(|(_, o)| o.get("name").and_then(Value::as_str) == Some(INTREP))
    {
        let o = Obj::of(o, format!("{}[{k}]", ev.at("Object")))?;
        for (field, target, path) in [
            ("first_seen", &mut report.period_start, &mut paths.first_seen),
            ("last_seen", &mut report.period_end, &mut paths.last_seen),
        ] {
            *path = o.at(field);
            if let Some(s) = o.str(field)? {
                let t = super::parse_rfc3339(s).ok_or_else(|| problem(o.at(field), format!("{s:?} is not a time")))?;
                *target = date(t);
            }
        }
        for (n, a) in o.list("Attribute")?.iter().enumerate() {
            let a = Obj::of(a, format!("{}[{n}]", o.at("Attribute")))?;
            let (Some(relation), Some(value)) = (a.str("object_relation")?, a.str("value")?) else { continue };
            let at = a.at("value");
            match relation {
                "narrative" => {
                    report.summary = value.to_string();
                    paths.summary = Some(at);
                }
                "enemy-activity" => {
                    report.modus_operandi = value.to_string();
                    paths.modus_operandi = at;
                }
                "enemy-location" => {
                    report.route.push(value.to_string());
                    paths.route.push(at);
                }
                "enemy-unit" => {
                    report.subject_entity_ids.push(value.to_string());
                    paths.subjects.push(at);
                }
                _ => {}
            }
        }
    }
    if paths.summary.is_none() {
        // A foreign event without a report object: its info is all it says.
        report.summary = info.to_string();
    }
    let rec = pb::Record {
        id: format!("misp-{}", uuid.to_ascii_lowercase()),
        handling: handling as i32,
        body: Some(Body::IntelligenceReport(report)),
        ..Default::default()
    };
    super::validated(rec, |f| paths.of(f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::examples;

    fn sample() -> pb::Record {
        let mut r = examples::intelligence_report();
        r.originator = "th-atpd".into();
        r.external_reference = "CASE-2026-17".into();
        r.create_time = Some(pbjson_types::Timestamp { seconds: 1_780_000_000, nanos: 0 });
        r.update_time = Some(pbjson_types::Timestamp { seconds: 1_785_000_000, nanos: 0 });
        if let Some(Body::IntelligenceReport(ir)) = &mut r.body {
            ir.exploitation_types.push(pb::ExploitationType::ForcedCriminality as i32);
            ir.subject_entity_ids.push("en-agency".into());
        }
        r
    }

    fn tags(e: &Value) -> Vec<&str> {
        e["Event"]["Tag"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect()
    }

    #[test]
    fn exports_reports_only() {
        let e = event(&sample(), "th-atpd").unwrap();
        assert_eq!(
            tags(&e),
            [
                "tlp:amber",
                "admiralty-scale:source-reliability=\"b\"",
                "admiralty-scale:information-credibility=\"2\"",
                "liaison:exploitation=\"labour\"",
                "liaison:exploitation=\"forced_criminality\"",
            ]
        );
        assert_eq!(e["Event"]["date"], "2026-05-28");
        assert_eq!(e["Event"]["Object"][0]["first_seen"], "2026-05-01T00:00:00+00:00");
        assert!(!e.to_string().contains("CASE-2026-17"));
        assert_eq!(event(&sample(), "th-atpd"), Some(e), "deterministic");
        for other in [examples::victim_referral(), examples::entity(), examples::contact_point()] {
            assert_eq!(event(&other, "th-atpd"), None);
        }
    }

    #[test]
    fn round_trip_keeps_business_fields() {
        let rec = sample();
        let e = event(&rec, "th-atpd").unwrap();
        let back = import(&e).unwrap();
        assert_eq!((back.handling, &back.body), (rec.handling, &rec.body));
        assert_eq!(back.id, format!("misp-{}", e["Event"]["uuid"].as_str().unwrap()));
        assert!(back.external_reference.is_empty());
        // The bare event reads the same.
        assert_eq!(import(&e["Event"]).unwrap(), back);
    }

    #[test]
    fn foreign_events_need_a_tlp_tag_and_read_info_as_summary() {
        let mut e = json!({"uuid": "5f4b3c2a-1e0d-4c9b-8a7f-6e5d4c3b2a10", "info": "Forced begging ring",
                           "Tag": [{"name": "tlp:white"}, {"name": "liaison:exploitation=\"begging\""}]});
        let rec = import(&e).unwrap();
        let Some(Body::IntelligenceReport(r)) = &rec.body else { panic!() };
        assert_eq!((rec.handling, r.summary.as_str()), (pb::HandlingCode::Clear as i32, "Forced begging ring"));
        assert_eq!(r.source_reliability, pb::SourceReliability::F as i32);
        e["Tag"] = json!([{"name": "liaison:exploitation=\"begging\""}]);
        assert_eq!(import(&e).unwrap_err()[0].path, "Tag");
    }

    #[test]
    fn malformed_input_is_refused_at_its_path() {
        let good = event(&sample(), "th-atpd").unwrap();
        let at = |f: &dyn Fn(&mut Value)| {
            let mut e = good.clone();
            f(&mut e);
            import(&e).unwrap_err().into_iter().map(|p| p.path).collect::<Vec<_>>()
        };
        assert_eq!(at(&|e| e["Event"]["uuid"] = json!("nope")), ["Event.uuid"]);
        assert_eq!(at(&|e| e["Event"]["info"] = json!("x".repeat(201))), ["Event.info"]);
        assert_eq!(at(&|e| e["Event"]["Tag"][0]["name"] = json!("tlp:ex:chr")), ["Event.Tag[0].name"]);
        assert_eq!(
            at(&|e| e["Event"]["Tag"][3]["name"] = json!("liaison:exploitation=\"piracy\"")),
            ["Event.Tag[3].name"]
        );
        assert_eq!(at(&|e| e["Event"]["Tag"] = json!({})), ["Event.Tag"]);
        assert_eq!(
            at(&|e| e["Event"]["Object"][0]["Attribute"][2]["value"] = json!("")),
            ["Event.Object[0].Attribute[2].value"]
        );
        assert_eq!(
            at(&|e| e["Event"]["Object"][0]["Attribute"][5]["value"] = json!("XX")),
            ["Event.Object[0].Attribute[5].value"]
        );
        assert_eq!(
            at(&|e| e["Event"]["Object"][0]["Attribute"][7]["value"] = json!("Not An Id")),
            ["Event.Object[0].Attribute[7].value"]
        );
        assert_eq!(
            at(&|e| e["Event"]["Object"][0]["last_seen"] = json!("2026-01-01T00:00:00Z")),
            ["Event.Object[0].last_seen"]
        );
        assert_eq!(at(&|e| e["Event"]["Object"][0]["Attribute"] = json!("x")), ["Event.Object[0].Attribute"]);
    }

    proptest::proptest! {
        #[test]
        fn import_never_panics(v in super::super::arbitrary_json(
            &["Event", "uuid", "info", "Tag", "name", "Object", "Attribute", "object_relation", "value", "first_seen", "last_seen"],
            &["5f4b3c2a-1e0d-4c9b-8a7f-6e5d4c3b2a10", "tlp:amber", "tlp:", "intelligence-report", "narrative", "enemy-location",
              "enemy-unit", "TH", "admiralty-scale:source-reliability=\"b\"", "liaison:exploitation=\"labour\"",
              "2026-01-01T00:00:00Z", ""],
        )) {
            let _ = import(&v);
        }
    }
}
