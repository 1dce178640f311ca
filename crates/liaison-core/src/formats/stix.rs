//! STIX 2.1 bundles: intelligence reports as `report` objects, entities as
//! `threat-actor` (a suspect in a trafficking role) or `identity` objects,
//! handling as the OASIS TLP 2.0 marking definitions.
//!
//! What STIX has no property for (route, modus operandi, Admiralty grades,
//! roles, identifiers, ...) travels in one property extension, defined by an
//! `extension-definition` object in every bundle, so stix2-validator accepts
//! the bundle without custom-property errors and the round trip is exact.
//! Ids are UUIDs derived from the record key, so every version of a record
//! is exported under the same STIX id.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use super::{problem, Obj, Problem};
use crate::convert::ProtoEnum;
use crate::pb;
use crate::pb::record::Body;
use crate::record::{identifier_type_name, parse_identifier_type};

/// Namespace of every UUID this module derives.
const NS: &str = "liaison/stix";

/// Our property extension: `uuid(NS, "extension-definition/record-fields/1")`.
pub const EXTENSION: &str = "extension-definition--8577320c-4fc6-4859-9177-4949e399c20a";
/// The liaison project, creator of [`EXTENSION`]: `uuid(NS, "identity/liaison")`.
const PROJECT: &str = "identity--4a37942a-7973-461e-b2b5-5789ea597f44";
/// Fixed times for the objects that never change (extension, project and
/// node identities), so every bundle carries the same version of them.
const FIXED_TIME: &str = "2026-01-01T00:00:00.000Z";

/// The OASIS TLP 2.0 extension and its five marking definitions (fixed ids,
/// from oasis-open/cti-stix-common-objects, tlp-2.0).
const TLP2_EXTENSION: &str = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d";
const TLP2_CREATED: &str = "2022-10-01T00:00:00.000Z";
const TLP2: [(pb::HandlingCode, &str); 5] = [
    (pb::HandlingCode::Clear, "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487"),
    (pb::HandlingCode::Green, "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"),
    (pb::HandlingCode::Amber, "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"),
    (pb::HandlingCode::AmberStrict, "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003"),
    (pb::HandlingCode::Red, "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"),
];
/// TLP 1.0 as predefined in STIX 2.1 §7.2.1.4: still common, read on import.
const TLP1: [(pb::HandlingCode, &str); 4] = [
    (pb::HandlingCode::Clear, "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9"),
    (pb::HandlingCode::Green, "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"),
    (pb::HandlingCode::Amber, "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"),
    (pb::HandlingCode::Red, "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed"),
];

fn tlp_ref(handling: i32) -> Option<&'static str> {
    TLP2.iter().find(|(h, _)| *h as i32 == handling).map(|(_, id)| *id)
}

fn tlp_of(marking: &str) -> Option<pb::HandlingCode> {
    TLP2.iter().chain(TLP1.iter()).find(|(_, id)| *id == marking).map(|(h, _)| *h)
}

fn tlp_definition(h: pb::HandlingCode, id: &str) -> Value {
    let word = crate::convert::handling_word(h);
    json!({
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": id,
        "created": TLP2_CREATED,
        "name": format!("TLP:{}", word.to_uppercase()),
        "extensions": { TLP2_EXTENSION: { "extension_type": "property-extension", "tlp_2_0": word } },
    })
}

fn liaison_objects() -> [Value; 2] {
    [
        json!({
            "type": "identity", "spec_version": "2.1", "id": PROJECT,
            "created": FIXED_TIME, "modified": FIXED_TIME,
            "name": "liaison", "identity_class": "system",
            "description": "liaison, the federated information-exchange node for counter-trafficking authorities; defines the liaison record-fields extension.",
        }),
        json!({
            "type": "extension-definition", "spec_version": "2.1", "id": EXTENSION,
            "created": FIXED_TIME, "modified": FIXED_TIME, "created_by_ref": PROJECT,
            "name": "liaison record fields",
            "description": "Fields of liaison intelligence reports and entities that STIX 2.1 has no property for.",
            "schema": "Property extension (all properties optional). On report: route (array of ISO 3166-1 alpha-2 codes, in order), modus_operandi (string), source_reliability (Admiralty 'a'-'f'), information_credibility (Admiralty '1'-'6'), period_start and period_end (YYYY-MM-DD). On identity and threat-actor: additional_names and aliases (arrays of strings), roles (array of: suspected_trafficker, recruiter, job_broker, marriage_broker, adoption_broker, recruitment_agency, transporter, exploiter, facilitator, other), identifiers (array of objects with type: passport, national_id, phone, email, company_registration or bank_account; value; optional country), country and source_state (ISO 3166-1 alpha-2), review_by (YYYY-MM-DD). Exploitation types travel as report labels 'exploitation-<type>'.",
            "version": "1.0.0",
            "extension_types": ["property-extension"],
        }),
    ]
}

fn producer_ref(producer: &str) -> String {
    format!("identity--{}", super::uuid(NS, &format!("node/{producer}")))
}

/// The uuid shared by the `identity` or `threat-actor` of an entity record,
/// so a report can point at an entity that is not in the same bundle.
fn entity_uuid(key: &str) -> String {
    super::uuid(NS, &format!("entity/{key}"))
}

/// An entity in a trafficking role is a threat actor; one without a role
/// (or only `other`) is an identity.
fn is_threat_actor(e: &pb::Entity) -> bool {
    e.roles
        .iter()
        .any(|r| !matches!(pb::EntityRole::of(*r), None | Some(pb::EntityRole::Unspecified | pb::EntityRole::Other)))
}

/// STIX confidence for an Admiralty information-credibility grade (STIX 2.1
/// appendix A, "Admiralty Credibility"); none for 6, "cannot be judged".
fn confidence(c: i32) -> Option<u8> {
    Some(match pb::InformationCredibility::of(c)? {
        pb::InformationCredibility::InformationCredibility1 => 90,
        pb::InformationCredibility::InformationCredibility2 => 70,
        pb::InformationCredibility::InformationCredibility3 => 50,
        pb::InformationCredibility::InformationCredibility4 => 30,
        pb::InformationCredibility::InformationCredibility5 => 10,
        _ => return None,
    })
}

fn credibility(confidence: u64) -> pb::InformationCredibility {
    match confidence {
        80.. => pb::InformationCredibility::InformationCredibility1,
        60..=79 => pb::InformationCredibility::InformationCredibility2,
        40..=59 => pb::InformationCredibility::InformationCredibility3,
        20..=39 => pb::InformationCredibility::InformationCredibility4,
        _ => pb::InformationCredibility::InformationCredibility5,
    }
}

/// Sets `key` unless `v` is an empty string or array.
fn put(m: &mut Map<String, Value>, key: &str, v: Value) {
    let empty = match &v {
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    };
    if !empty {
        m.insert(key.to_string(), v);
    }
}

/// The intelligence reports and entities among `records` (other kinds have
/// no STIX equivalent; victim referrals never leave).
fn exported(records: &[pb::Record]) -> Vec<&pb::Record> {
    records
        .iter()
        .filter(|r| super::exportable(r) && matches!(r.body, Some(Body::IntelligenceReport(_) | Body::Entity(_))))
        .collect()
}

fn producer_identity(producer: &str) -> Value {
    json!({
        "type": "identity", "spec_version": "2.1", "id": producer_ref(producer),
        "created": FIXED_TIME, "modified": FIXED_TIME, "created_by_ref": PROJECT,
        "name": producer, "identity_class": "organization",
        "description": format!("liaison node {producer}"),
    })
}

/// One STIX object per record in `recs`, as published by `producer`.
fn sdos(recs: &[&pb::Record], producer: &str, now: OffsetDateTime) -> Vec<Value> {
    let by = producer_ref(producer);
    // How each exported entity appears, for the reports pointing at it.
    let entity_types: HashMap<String, &str> = recs
        .iter()
        .filter_map(|r| match &r.body {
            Some(Body::Entity(e)) => {
                Some((super::record_key(r), if is_threat_actor(e) { "threat-actor" } else { "identity" }))
            }
            _ => None,
        })
        .collect();
    recs.iter().map(|r| sdo(r, &by, now, &entity_types)).collect()
}

/// A STIX 2.1 bundle of the intelligence reports and entities among
/// `records`, as published by node `producer`. Other kinds have no STIX
/// equivalent and are left out; victim referrals never leave.
pub fn bundle(records: &[pb::Record], producer: &str, now: OffsetDateTime) -> Value {
    let recs = exported(records);
    let mut objects: Vec<Value> = liaison_objects().into();
    objects.push(producer_identity(producer));
    for (h, id) in TLP2 {
        if recs.iter().any(|r| r.handling == h as i32) {
            objects.push(tlp_definition(h, id));
        }
    }
    let mut versions = String::new();
    for r in &recs {
        versions.push_str(&format!("{}@{};", super::record_key(r), r.version));
    }
    objects.extend(sdos(&recs, producer, now));
    let bundle_key = format!("{producer};{};{versions}", now.unix_timestamp_nanos());
    json!({
        "type": "bundle",
        "id": format!("bundle--{}", super::uuid(NS, &format!("bundle/{bundle_key}"))),
        "objects": objects,
    })
}

/// What the objects of a collection of `producer`'s records refer to: the
/// liaison identity and extension, the producer's identity and every TLP
/// 2.0 marking (a TAXII collection serves them first).
pub fn definitions(producer: &str) -> Vec<Value> {
    let mut out: Vec<Value> = liaison_objects().into();
    out.push(producer_identity(producer));
    out.extend(TLP2.iter().map(|(h, id)| tlp_definition(*h, id)));
    out
}

/// One STIX object per intelligence report or entity among `records`, in
/// their order (a page of a TAXII collection); other kinds are left out.
pub fn objects(records: &[pb::Record], producer: &str, now: OffsetDateTime) -> Vec<Value> {
    sdos(&exported(records), producer, now)
}

fn sdo(rec: &pb::Record, by: &str, now: OffsetDateTime, entity_types: &HashMap<String, &str>) -> Value {
    let key = super::record_key(rec);
    let created = super::record_time(rec.create_time.as_ref(), now);
    let modified = super::record_time(rec.update_time.as_ref(), now).max(created);
    let mut m = Map::new();
    let mut ext = Map::new();
    ext.insert("extension_type".into(), json!("property-extension"));
    let (ty, uuid) = match &rec.body {
        Some(Body::IntelligenceReport(r)) => {
            let mut refs: Vec<String> = r
                .subject_entity_ids
                .iter()
                .map(|id| {
                    let key = format!("{}/{id}", rec.originator);
                    let ty = entity_types.get(&key).copied().unwrap_or("threat-actor");
                    format!("{ty}--{}", entity_uuid(&key))
                })
                .collect();
            if refs.is_empty() {
                // object_refs may not be empty: a report about no entity
                // refers to its producer (import skips producers).
                refs.push(by.to_string());
            }
            put(&mut m, "name", json!(super::heading(r)));
            put(&mut m, "description", json!(r.summary));
            m.insert("published".into(), json!(super::rfc3339_ms(modified)));
            m.insert("report_types".into(), json!(["threat-report"]));
            m.insert("object_refs".into(), json!(refs));
            if let Some(c) = confidence(r.information_credibility) {
                m.insert("confidence".into(), json!(c));
            }
            let labels: Vec<String> = r
                .exploitation_types
                .iter()
                .map(|e| format!("exploitation-{}", pb::ExploitationType::word_of(*e).replace('_', "-")))
                .collect();
            put(&mut m, "labels", json!(labels));
            put(&mut ext, "route", json!(r.route));
            put(&mut ext, "modus_operandi", json!(r.modus_operandi));
            put(&mut ext, "source_reliability", json!(pb::SourceReliability::word_of(r.source_reliability)));
            put(
                &mut ext,
                "information_credibility",
                json!(pb::InformationCredibility::word_of(r.information_credibility)),
            );
            put(&mut ext, "period_start", json!(r.period_start));
            put(&mut ext, "period_end", json!(r.period_end));
            ("report", super::uuid(NS, &format!("report/{key}")))
        }
        Some(Body::Entity(e)) => {
            let person = e.entity_type == pb::EntityType::Person as i32;
            let threat = is_threat_actor(e);
            put(&mut m, "name", json!(e.names.first().cloned().unwrap_or_default()));
            put(&mut m, "description", json!(e.evidence_basis));
            if threat {
                put(&mut m, "aliases", json!(e.aliases));
                m.insert("threat_actor_types".into(), json!([if person { "criminal" } else { "crime-syndicate" }]));
                m.insert("resource_level".into(), json!(if person { "individual" } else { "organization" }));
                m.insert("primary_motivation".into(), json!("personal-gain"));
            } else {
                m.insert("identity_class".into(), json!(if person { "individual" } else { "organization" }));
                put(&mut ext, "aliases", json!(e.aliases));
            }
            put(&mut ext, "additional_names", json!(e.names.get(1..).unwrap_or_default()));
            let roles: Vec<String> = e.roles.iter().map(|r| pb::EntityRole::word_of(*r)).collect();
            put(&mut ext, "roles", json!(roles));
            let ids: Vec<Value> = e
                .identifiers
                .iter()
                .map(|i| {
                    let mut o = Map::new();
                    o.insert("type".into(), json!(identifier_type_name(i.r#type())));
                    o.insert("value".into(), json!(i.value));
                    put(&mut o, "country", json!(i.country));
                    Value::Object(o)
                })
                .collect();
            put(&mut ext, "identifiers", json!(ids));
            put(&mut ext, "country", json!(e.country));
            put(&mut ext, "source_state", json!(e.source_state));
            put(&mut ext, "review_by", json!(e.review_by));
            (if threat { "threat-actor" } else { "identity" }, entity_uuid(&key))
        }
        _ => ("", String::new()),
    };
    m.insert("type".into(), json!(ty));
    m.insert("spec_version".into(), json!("2.1"));
    m.insert("id".into(), json!(format!("{ty}--{uuid}")));
    m.insert("created".into(), json!(super::rfc3339_ms(created)));
    m.insert("modified".into(), json!(super::rfc3339_ms(modified)));
    m.insert("created_by_ref".into(), json!(by));
    if let Some(tlp) = tlp_ref(rec.handling) {
        m.insert("object_marking_refs".into(), json!([tlp]));
    }
    if rec.withdrawn {
        m.insert("revoked".into(), json!(true));
    }
    if ext.len() > 1 {
        m.insert("extensions".into(), json!({ EXTENSION: ext }));
    }
    Value::Object(m)
}

/// What the whole bundle tells each object's import.
struct Context<'a> {
    /// Every `created_by_ref`: identities that produced, not subjects.
    producers: HashSet<&'a str>,
    /// Marking definitions the bundle defines.
    markings: HashSet<&'a str>,
}

/// Records from a STIX 2.1 bundle: `report` → intelligence report,
/// `identity` (other than a producer) and `threat-actor` → entity. Other
/// object types are ignored, revoked objects skipped; several versions of
/// one object give the newest. Every problem found is returned.
pub fn import(bundle: &Value) -> Result<Vec<pb::Record>, Vec<Problem>> {
    let root = Obj::of(bundle, "").map_err(|p| vec![p])?;
    let head = || -> Result<&[Value], Problem> {
        if root.str("type")? != Some("bundle") {
            return Err(problem("type", "must be \"bundle\""));
        }
        let id = root.required("id")?;
        if !id.strip_prefix("bundle--").is_some_and(super::is_uuid) {
            return Err(problem("id", "must be bundle--<uuid>"));
        }
        root.list("objects")
    };
    let objects = head().map_err(|p| vec![p])?;
    let ctx = Context {
        producers: objects.iter().filter_map(|o| o.get("created_by_ref")?.as_str()).collect(),
        markings: objects
            .iter()
            .filter(|o| o.get("type").and_then(Value::as_str) == Some("marking-definition"))
            .filter_map(|o| o.get("id")?.as_str())
            .collect(),
    };
    let mut problems = Vec::new();
    let mut out: Vec<pb::Record> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for (i, v) in objects.iter().enumerate() {
        match object(i, v, &ctx) {
            Ok(None) => {}
            Ok(Some(rec)) => match at.get(&rec.id).and_then(|&n| out.get_mut(n)) {
                Some(prev) => {
                    let t = |r: &pb::Record| r.update_time.map(|t| (t.seconds, t.nanos));
                    if t(&rec) > t(prev) {
                        *prev = rec;
                    }
                }
                None => {
                    at.insert(rec.id.clone(), out.len());
                    out.push(rec);
                }
            },
            Err(p) => problems.push(p),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

fn time(o: &Obj<'_>, key: &str) -> Result<pbjson_types::Timestamp, Problem> {
    let s = o.required(key)?;
    super::parse_rfc3339(s)
        .map(crate::convert::timestamp)
        .ok_or_else(|| problem(o.at(key), format!("{s:?} is not an RFC 3339 timestamp")))
}

fn object(i: usize, v: &Value, ctx: &Context<'_>) -> Result<Option<pb::Record>, Problem> {
    let o = Obj::of(v, format!("objects[{i}]"))?;
    let ty = o.required("type")?;
    if !matches!(ty, "report" | "identity" | "threat-actor") {
        return Ok(None);
    }
    if o.str("spec_version")? != Some("2.1") {
        return Err(problem(o.at("spec_version"), "must be \"2.1\""));
    }
    let id = o.required("id")?;
    let Some(uuid) = id.strip_prefix(ty).and_then(|r| r.strip_prefix("--")).filter(|u| super::is_uuid(u)) else {
        return Err(problem(o.at("id"), format!("must be {ty}--<uuid>")));
    };
    let (create_time, update_time) = (time(&o, "created")?, time(&o, "modified")?);
    match o.map.get("revoked") {
        None | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => return Ok(None),
        Some(_) => return Err(problem(o.at("revoked"), "must be true or false")),
    }
    if ty == "identity" && ctx.producers.contains(id) {
        return Ok(None);
    }
    let handling = marking(&o, ctx)?;
    let ext = match o.obj("extensions")? {
        Some(exts) => match exts.obj(EXTENSION)? {
            Some(e) if e.str("extension_type")? == Some("property-extension") => Some(e),
            Some(e) => return Err(problem(e.at("extension_type"), "must be \"property-extension\"")),
            None => None,
        },
        None => None,
    };
    let body = if ty == "report" { report(&o, ext.as_ref(), ctx)? } else { entity(&o, ty, ext.as_ref())? };
    let is_threat = ty == "threat-actor";
    let rec = pb::Record {
        id: format!("stix-{}", uuid.to_ascii_lowercase()),
        handling: handling as i32,
        create_time: Some(create_time),
        update_time: Some(update_time),
        body: Some(body),
        ..Default::default()
    };
    let ext_path = format!("{}.{EXTENSION}", o.at("extensions"));
    super::validated(rec, |f| path(&o, &ext_path, f, is_threat)).map(Some)
}

/// The source path of a record field an imported object failed validation on.
fn path(o: &Obj<'_>, ext: &str, field: &str, threat_actor: bool) -> String {
    let name = field.split(['[', '.']).next().unwrap_or(field);
    match name {
        "id" => o.at("id"),
        "handling" => o.at("object_marking_refs"),
        "title" => o.at("name"),
        "summary" | "evidence_basis" => o.at("description"),
        "subject_entity_ids" => o.at("object_refs"),
        "exploitation_types" => o.at("labels"),
        "entity_type" => o.at(if threat_actor { "resource_level" } else { "identity_class" }),
        "aliases" if threat_actor => o.at("aliases"),
        "names" => match field.strip_prefix("names[").and_then(|r| r.split(']').next()?.parse::<usize>().ok()) {
            Some(n) if n > 0 => format!("{ext}.additional_names[{}]", n.saturating_sub(1)),
            _ => o.at("name"),
        },
        _ => format!("{ext}.{field}"),
    }
}

fn marking(o: &Obj<'_>, ctx: &Context<'_>) -> Result<pb::HandlingCode, Problem> {
    let mut handling = None;
    for (k, m) in o.strings("object_marking_refs")?.into_iter().enumerate() {
        match tlp_of(m) {
            Some(h) => handling = Some(super::strictest(handling, h)),
            None if ctx.markings.contains(m) => {}
            None => {
                return Err(problem(
                    format!("{}[{k}]", o.at("object_marking_refs")),
                    format!("{m:?} is neither a TLP marking nor defined in this bundle"),
                ))
            }
        }
    }
    handling.ok_or_else(|| problem(o.at("object_marking_refs"), "a TLP marking (TLP 2.0 or 1.0) is required"))
}

fn ext_str<'a>(ext: Option<&Obj<'a>>, key: &str) -> Result<&'a str, Problem> {
    Ok(match ext {
        Some(e) => e.str(key)?.unwrap_or_default(),
        None => "",
    })
}

fn ext_strings(ext: Option<&Obj<'_>>, key: &str) -> Result<Vec<String>, Problem> {
    Ok(match ext {
        Some(e) => e.strings(key)?.into_iter().map(String::from).collect(),
        None => Vec::new(),
    })
}

/// An enum from its word in the extension; `None` when absent.
fn ext_enum<E: ProtoEnum>(ext: Option<&Obj<'_>>, key: &str) -> Result<Option<E>, Problem> {
    let Some(e) = ext else { return Ok(None) };
    match e.str(key)? {
        None => Ok(None),
        Some(w) => E::from_word(w).map(Some).ok_or_else(|| problem(e.at(key), format!("{w:?} is not a known value"))),
    }
}

fn report(o: &Obj<'_>, ext: Option<&Obj<'_>>, ctx: &Context<'_>) -> Result<Body, Problem> {
    let title = o.required("name")?;
    time(o, "published")?;
    let refs = o.strings("object_refs")?;
    if refs.is_empty() {
        return Err(problem(o.at("object_refs"), "required"));
    }
    let mut subjects = Vec::new();
    for (k, r) in refs.into_iter().enumerate() {
        let Some((ty, uuid)) = r.split_once("--") else {
            return Err(problem(format!("{}[{k}]", o.at("object_refs")), "not a STIX identifier"));
        };
        if matches!(ty, "identity" | "threat-actor") && !ctx.producers.contains(r) {
            if !super::is_uuid(uuid) {
                return Err(problem(format!("{}[{k}]", o.at("object_refs")), "not a STIX identifier"));
            }
            subjects.push(format!("stix-{}", uuid.to_ascii_lowercase()));
        }
    }
    let mut exploitation_types = Vec::new();
    for (k, l) in o.strings("labels")?.into_iter().enumerate() {
        if let Some(w) = l.strip_prefix("exploitation-") {
            let e = pb::ExploitationType::from_word(w).ok_or_else(|| {
                problem(format!("{}[{k}]", o.at("labels")), format!("{l:?}: unknown exploitation type"))
            })?;
            exploitation_types.push(e as i32);
        }
    }
    // Without our extension, credibility comes from STIX confidence; a
    // grade nobody gave is "cannot be judged" (F, 6).
    let credibility = match ext_enum::<pb::InformationCredibility>(ext, "information_credibility")? {
        Some(c) => c,
        None => match o.map.get("confidence") {
            None | Some(Value::Null) => pb::InformationCredibility::InformationCredibility6,
            Some(c) => match c.as_u64().filter(|c| *c <= 100) {
                Some(c) => credibility(c),
                None => return Err(problem(o.at("confidence"), "must be an integer from 0 to 100")),
            },
        },
    };
    Ok(Body::IntelligenceReport(pb::IntelligenceReport {
        title: title.to_string(),
        summary: o.str("description")?.unwrap_or_default().to_string(),
        subject_entity_ids: subjects,
        route: ext_strings(ext, "route")?,
        modus_operandi: ext_str(ext, "modus_operandi")?.to_string(),
        exploitation_types,
        source_reliability: ext_enum::<pb::SourceReliability>(ext, "source_reliability")?
            .unwrap_or(pb::SourceReliability::F) as i32,
        information_credibility: credibility as i32,
        period_start: ext_str(ext, "period_start")?.to_string(),
        period_end: ext_str(ext, "period_end")?.to_string(),
    }))
}

fn entity(o: &Obj<'_>, ty: &str, ext: Option<&Obj<'_>>) -> Result<Body, Problem> {
    let (class_key, class) = if ty == "threat-actor" {
        ("resource_level", o.str("resource_level")?)
    } else {
        ("identity_class", o.str("identity_class")?)
    };
    let entity_type = match class {
        Some("individual") => pb::EntityType::Person,
        Some("organization" | "group" | "team" | "club" | "government") => pb::EntityType::Organisation,
        _ => {
            return Err(problem(
                o.at(class_key),
                "\"individual\" or \"organization\" is needed to tell a person from an organisation",
            ))
        }
    };
    let mut names = vec![o.required("name")?.to_string()];
    names.extend(ext_strings(ext, "additional_names")?);
    let mut aliases: Vec<String> = o.strings("aliases")?.into_iter().map(String::from).collect();
    aliases.extend(ext_strings(ext, "aliases")?);
    let mut roles = Vec::new();
    let mut identifiers = Vec::new();
    if let Some(e) = ext {
        for (k, w) in e.strings("roles")?.into_iter().enumerate() {
            let r = pb::EntityRole::from_word(w)
                .ok_or_else(|| problem(format!("{}[{k}]", e.at("roles")), format!("{w:?} is not a known role")))?;
            roles.push(r as i32);
        }
        for (k, v) in e.list("identifiers")?.iter().enumerate() {
            let i = Obj::of(v, format!("{}[{k}]", e.at("identifiers")))?;
            let t = i.required("type")?;
            let t = parse_identifier_type(t)
                .ok_or_else(|| problem(i.at("type"), format!("{t:?} is not a known identifier type")))?;
            identifiers.push(pb::Identifier {
                r#type: t as i32,
                value: i.str("value")?.unwrap_or_default().to_string(),
                country: i.str("country")?.unwrap_or_default().to_string(),
            });
        }
    }
    Ok(Body::Entity(pb::Entity {
        entity_type: entity_type as i32,
        names,
        aliases,
        roles,
        identifiers,
        country: ext_str(ext, "country")?.to_string(),
        evidence_basis: o.str("description")?.unwrap_or_default().to_string(),
        source_state: ext_str(ext, "source_state")?.to_string(),
        review_by: ext_str(ext, "review_by")?.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::examples;

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap()
    }

    fn stamped(mut r: pb::Record) -> pb::Record {
        r.originator = "th-atpd".into();
        r.version = 3;
        r.create_time = Some(pbjson_types::Timestamp { seconds: 1_780_000_000, nanos: 123_456_789 });
        r.update_time = Some(pbjson_types::Timestamp { seconds: 1_785_000_000, nanos: 0 });
        r.external_reference = "CASE-2026-17".into();
        r
    }

    fn sample() -> Vec<pb::Record> {
        examples::all().into_iter().map(stamped).collect()
    }

    fn objects(b: &Value) -> &Vec<Value> {
        b["objects"].as_array().unwrap()
    }

    fn of_type<'a>(b: &'a Value, ty: &str) -> Vec<&'a Value> {
        objects(b).iter().filter(|o| o["type"] == ty).collect()
    }

    #[test]
    fn exports_reports_and_entities_only_never_victims_or_local_fields() {
        let b = bundle(&sample(), "th-atpd", now());
        let text = b.to_string();
        assert!(!text.contains("VR-KH-0042") && !text.contains("Chann Sreymom"), "victim referral exported");
        assert!(!text.contains("CASE-2026-17"), "external_reference exported");
        assert!(!text.contains("ATPD duty officer"), "contact point exported");
        assert_eq!(of_type(&b, "report").len(), 1);
        assert_eq!(of_type(&b, "threat-actor").len(), 1);
        let report = of_type(&b, "report")[0];
        let actor = of_type(&b, "threat-actor")[0];
        assert_eq!(report["object_refs"], json!([actor["id"]]));
        assert_eq!(report["confidence"], 70);
        assert_eq!(report["created"], "2026-05-28T20:26:40.123Z");
        assert_eq!(report["object_marking_refs"], json!([tlp_ref(pb::HandlingCode::Amber as i32).unwrap()]));
        assert_eq!(report["created_by_ref"], producer_ref("th-atpd"));
        assert_eq!(actor["resource_level"], "individual");
        let markings = of_type(&b, "marking-definition");
        assert_eq!(markings.len(), 1, "only the TLP markings used");
        assert_eq!(markings[0]["name"], "TLP:AMBER");
        assert!(of_type(&b, "extension-definition").iter().any(|e| e["id"] == EXTENSION));
    }

    #[test]
    fn ids_are_stable_across_versions_and_exports() {
        let a = bundle(&sample(), "th-atpd", now());
        let mut later = sample();
        for r in &mut later {
            r.version = 9;
            r.update_time = Some(pbjson_types::Timestamp { seconds: 1_786_000_000, nanos: 0 });
        }
        let b = bundle(&later, "th-atpd", now());
        let ids = |b: &Value| objects(b).iter().map(|o| o["id"].clone()).collect::<Vec<_>>();
        assert_eq!(ids(&a), ids(&b));
        assert_ne!(a["id"], b["id"], "a bundle of other versions is another bundle");
        assert_eq!(a, bundle(&sample(), "th-atpd", now()));
    }

    fn business(r: &pb::Record) -> (i32, Option<Body>) {
        (r.handling, r.body.clone())
    }

    #[test]
    fn round_trip_keeps_business_fields() {
        let mut recs = sample();
        // An organisation as a plain identity, with every identifier kind.
        let mut org = examples::entity();
        org.id = "en-agency".into();
        org.handling = pb::HandlingCode::Green as i32;
        if let Some(Body::Entity(e)) = &mut org.body {
            e.entity_type = pb::EntityType::Organisation as i32;
            e.names = vec!["Golden Star Recruitment".into(), "Golden Star Co. Ltd".into()];
            e.roles = vec![];
            e.identifiers = vec![
                pb::Identifier {
                    r#type: pb::IdentifierType::CompanyRegistration as i32,
                    value: "KH-123-456".into(),
                    country: "KH".into(),
                },
                pb::Identifier {
                    r#type: pb::IdentifierType::BankAccount as i32,
                    value: "KH12 3456 7890 1234".into(),
                    country: String::new(),
                },
                pb::Identifier {
                    r#type: pb::IdentifierType::Email as i32,
                    value: "jobs@goldenstar.example".into(),
                    country: String::new(),
                },
            ];
        }
        recs.push(stamped(org));
        if let Some(Body::IntelligenceReport(r)) = &mut recs[1].body {
            r.subject_entity_ids.push("en-agency".into());
        }
        let b = bundle(&recs, "th-atpd", now());
        let back = import(&b).unwrap();
        assert_eq!(back.len(), 3);
        let report = back.iter().find(|r| matches!(r.body, Some(Body::IntelligenceReport(_)))).unwrap();
        let actor = back.iter().find(|r| r.id.ends_with(&entity_uuid("th-atpd/en-broker-sok"))).unwrap();
        let agency = back.iter().find(|r| r.id.ends_with(&entity_uuid("th-atpd/en-agency"))).unwrap();
        // Ids are the importer's own, derived from the STIX ids; the
        // report's subjects point at them.
        let mut want = recs[1].clone();
        if let Some(Body::IntelligenceReport(r)) = &mut want.body {
            r.subject_entity_ids = vec![actor.id.clone(), agency.id.clone()];
        }
        assert_eq!(business(report), business(&want));
        assert_eq!(business(actor), business(&recs[2]));
        assert_eq!(business(agency), business(&recs[5]));
        assert_eq!(report.create_time, Some(pbjson_types::Timestamp { seconds: 1_780_000_000, nanos: 123_000_000 }));
        assert!(back.iter().all(|r| r.external_reference.is_empty() && r.originator.is_empty()));
        // Importing again gives the same records.
        assert_eq!(import(&b).unwrap(), back);
    }

    #[test]
    fn untitled_reports_and_reports_without_subjects_still_export() {
        let mut r = stamped(examples::intelligence_report());
        if let Some(Body::IntelligenceReport(ir)) = &mut r.body {
            ir.title.clear();
            ir.subject_entity_ids.clear();
        }
        let b = bundle(&[r], "th-atpd", now());
        let report = of_type(&b, "report")[0];
        assert_eq!(report["object_refs"], json!([producer_ref("th-atpd")]));
        let back = import(&b).unwrap();
        let Some(Body::IntelligenceReport(ir)) = &back[0].body else { panic!() };
        assert!(ir.subject_entity_ids.is_empty());
        assert!(ir.title.starts_with("Broker network advertises"));
    }

    #[test]
    fn withdrawn_records_are_revoked_and_not_imported() {
        let mut r = stamped(examples::entity());
        r.withdrawn = true;
        let b = bundle(&[r], "th-atpd", now());
        assert_eq!(of_type(&b, "threat-actor")[0]["revoked"], true);
        assert_eq!(import(&b).unwrap(), vec![]);
    }

    fn tampered(f: impl FnOnce(&mut Value)) -> Vec<Problem> {
        let mut b = bundle(&sample(), "th-atpd", now());
        f(&mut b);
        import(&b).unwrap_err()
    }

    fn index(b: &Value, ty: &str) -> usize {
        objects(b).iter().position(|o| o["type"] == ty).unwrap()
    }

    #[test]
    fn malformed_input_is_refused_at_its_path() {
        let b = bundle(&sample(), "th-atpd", now());
        let (r, a) = (index(&b, "report"), index(&b, "threat-actor"));
        let at = |p: Vec<Problem>| p.into_iter().map(|p| p.path).collect::<Vec<_>>();
        assert_eq!(at(tampered(|b| b["type"] = json!("report"))), ["type"]);
        assert_eq!(
            at(tampered(|b| b["objects"][r]["spec_version"] = json!("2.0"))),
            [format!("objects[{r}].spec_version")]
        );
        assert_eq!(
            at(tampered(|b| {
                b["objects"][r].as_object_mut().unwrap().remove("name");
            })),
            [format!("objects[{r}].name")]
        );
        assert_eq!(
            at(tampered(|b| b["objects"][a]["object_marking_refs"] =
                json!(["marking-definition--00000000-0000-4000-8000-000000000000"]))),
            [format!("objects[{a}].object_marking_refs[0]")]
        );
        assert_eq!(
            at(tampered(|b| {
                b["objects"][a].as_object_mut().unwrap().remove("object_marking_refs");
            })),
            [format!("objects[{a}].object_marking_refs")]
        );
        assert_eq!(at(tampered(|b| b["objects"][a]["id"] = json!("threat-actor--nope"))), [format!("objects[{a}].id")]);
        assert_eq!(
            at(tampered(|b| b["objects"][r]["modified"] = json!("yesterday"))),
            [format!("objects[{r}].modified")]
        );
        // Failures of record validation point at the STIX property.
        assert_eq!(at(tampered(|b| b["objects"][r]["description"] = json!(""))), [format!("objects[{r}].description")]);
        assert_eq!(
            at(tampered(|b| b["objects"][a]["extensions"][EXTENSION]["identifiers"][0]["value"] = json!("x"))),
            [format!("objects[{a}].extensions.{EXTENSION}.identifiers[0].value")]
        );
        assert_eq!(
            at(tampered(|b| b["objects"][r]["extensions"][EXTENSION]["route"][1] = json!("XX"))),
            [format!("objects[{r}].extensions.{EXTENSION}.route[1]")]
        );
        assert_eq!(
            at(tampered(|b| b["objects"][r]["labels"] = json!(["exploitation-piracy"]))),
            [format!("objects[{r}].labels[0]")]
        );
        // Both bad objects are reported.
        let both = tampered(|b| {
            b["objects"][r]["name"] = json!(7);
            b["objects"][a]["name"] = json!("");
        });
        assert_eq!(at(both), [format!("objects[{r}].name"), format!("objects[{a}].name")]);
    }

    #[test]
    fn foreign_objects_map_sensibly() {
        let b = json!({
            "type": "bundle", "id": "bundle--6f1f5ef4-6f7c-4d3b-9b43-3b2c3f1f2a10",
            "objects": [
                {"type": "identity", "spec_version": "2.1", "id": "identity--0b8a3cba-1f0e-4e0d-8d8f-4b1c1a2d0e01",
                 "created": "2026-01-02T03:04:05Z", "modified": "2026-01-02T03:04:05Z",
                 "name": "Karaoke bar owner", "identity_class": "individual",
                 "description": "Named by two rescued women.",
                 "object_marking_refs": ["marking-definition--f88d31f6-486f-44da-b317-01333bde0b82",
                                         "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed"]},
                {"type": "report", "spec_version": "2.1", "id": "report--0b8a3cba-1f0e-4e0d-8d8f-4b1c1a2d0e02",
                 "created": "2026-01-02T03:04:05Z", "modified": "2026-01-02T03:04:05Z", "published": "2026-01-02T03:04:05Z",
                 "name": "Bar", "description": "Women held at a karaoke bar.", "confidence": 55,
                 "labels": ["exploitation-sexual", "karaoke"],
                 "object_refs": ["identity--0b8a3cba-1f0e-4e0d-8d8f-4b1c1a2d0e01", "location--0b8a3cba-1f0e-4e0d-8d8f-4b1c1a2d0e03"],
                 "object_marking_refs": ["marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"]},
                {"type": "malware", "spec_version": "2.1", "id": "malware--0b8a3cba-1f0e-4e0d-8d8f-4b1c1a2d0e04"},
            ]
        });
        let recs = import(&b).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].handling, pb::HandlingCode::Red as i32, "the strictest TLP applies");
        let Some(Body::IntelligenceReport(r)) = &recs[1].body else { panic!() };
        assert_eq!(r.subject_entity_ids, vec![recs[0].id.clone()]);
        assert_eq!(r.information_credibility, pb::InformationCredibility::InformationCredibility3 as i32);
        assert_eq!(r.source_reliability, pb::SourceReliability::F as i32);
        assert_eq!(r.exploitation_types, vec![pb::ExploitationType::Sexual as i32]);
    }

    proptest::proptest! {
        #[test]
        fn import_never_panics(v in super::super::arbitrary_json(
            &["type", "id", "objects", "spec_version", "name", "created", "modified", "published", "object_refs",
              "object_marking_refs", "extensions", EXTENSION, "identifiers", "identity_class", "labels", "confidence",
              "revoked", "description", "resource_level", "value", "roles"],
            &["bundle", "report", "identity", "threat-actor", "2.1", "individual", "2026-01-02T03:04:05Z",
              "report--0b8a3cba-1f0e-4e0d-8d8f-4b1c1a2d0e02", "identity--0b8a3cba-1f0e-4e0d-8d8f-4b1c1a2d0e01",
              "bundle--6f1f5ef4-6f7c-4d3b-9b43-3b2c3f1f2a10", "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82",
              "exploitation-labour", "property-extension", "passport", ""],
        )) {
            let _ = import(&v);
            let _ = import(&json!({"type": "bundle", "id": "bundle--6f1f5ef4-6f7c-4d3b-9b43-3b2c3f1f2a10", "objects": [v]}));
        }
    }
}
