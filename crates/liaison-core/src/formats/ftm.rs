//! FollowTheMoney entities, as Aleph, OpenSanctions and yente read them:
//! an entity record becomes a `Person`, `Company` (an organisation with a
//! company registration) or `Organization`, plus a `Passport` or
//! `Identification` per identity document (linked by `holder`) and a
//! `BankAccount` per account with the `Ownership` that links it to its
//! holder (FtM has no holder property on accounts).
//!
//! Identifiers are written in liaison's normal form (what hit checks
//! compare). FtM has no place for an entity's review date or source state,
//! nor for the issuing country of a phone number, e-mail address or company
//! registration: those do not travel. Handling travels as a `tlp:<colour>`
//! keyword on the main entity.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::{problem, Obj, Problem};
use crate::convert::ProtoEnum;
use crate::pb;
use crate::pb::record::Body;
use crate::record::normalize_identifier;

const NS: &str = "liaison/ftm";

/// Ids hang on the record key and what the entity stands for, so the same
/// record exports the same ids whatever its version or identifier order.
fn ftm_id(key: &str, what: &str) -> String {
    format!("liaison-{}", super::hash_hex(NS, &format!("{key}/{what}"), 40))
}

fn put(props: &mut Map<String, Value>, name: &str, values: Vec<String>) {
    let values: Vec<String> = values.into_iter().filter(|v| !v.is_empty()).collect();
    if !values.is_empty() {
        props.insert(name.to_string(), json!(values));
    }
}

fn entity(id: String, schema: &str, props: Map<String, Value>) -> Value {
    json!({ "id": id, "schema": schema, "properties": props })
}

/// FtM validates an `iban` property's checksum: anything else is an
/// `accountNumber`.
fn is_iban(s: &str) -> bool {
    let b = s.as_bytes();
    let shape = (15..=34).contains(&b.len())
        && b.iter().take(2).all(u8::is_ascii_uppercase)
        && b.iter().skip(2).take(2).all(u8::is_ascii_digit)
        && b.iter().all(u8::is_ascii_alphanumeric);
    // ISO 13616: move the first four characters to the end, letters count
    // as 10..35, and the number is 1 modulo 97.
    let digits = b.iter().skip(4).chain(b.iter().take(4)).map(|c| (*c as char).to_digit(36).unwrap_or(0));
    let rem = digits.fold(0u32, |r, d| {
        let scale = if d >= 10 { 100 } else { 10 };
        r.saturating_mul(scale).saturating_add(d) % 97
    });
    shape && rem == 1
}

/// FollowTheMoney entities for an entity record; nothing for other kinds.
pub fn entities(rec: &pb::Record) -> Vec<Value> {
    let Some(Body::Entity(e)) = &rec.body else { return Vec::new() };
    let key = super::record_key(rec);
    let id = ftm_id(&key, "entity");
    let person = e.entity_type == pb::EntityType::Person as i32;
    let normal = |i: &pb::Identifier| normalize_identifier(i.r#type(), &i.value).unwrap_or_else(|_| i.value.clone());
    let values = |t: pb::IdentifierType| -> Vec<String> {
        e.identifiers.iter().filter(|i| i.r#type == t as i32).map(normal).collect()
    };
    let registrations = values(pb::IdentifierType::CompanyRegistration);
    let schema = match (person, registrations.is_empty()) {
        (true, _) => "Person",
        (false, false) => "Company",
        (false, true) => "Organization",
    };
    let mut props = Map::new();
    put(&mut props, "name", e.names.clone());
    put(&mut props, "alias", e.aliases.clone());
    put(&mut props, if person { "nationality" } else { "jurisdiction" }, vec![e.country.to_ascii_lowercase()]);
    put(&mut props, "notes", vec![e.evidence_basis.clone()]);
    // FtM's free classification field holds the roles, its topic says why
    // the entity is listed at all.
    put(&mut props, "classification", e.roles.iter().map(|r| pb::EntityRole::word_of(*r)).collect());
    put(&mut props, "topics", vec!["crime.traffick".into()]);
    let tlp = super::tlp_word(rec.handling);
    put(&mut props, "keywords", vec![if tlp.is_empty() { tlp } else { format!("tlp:{tlp}") }]);
    put(&mut props, "phone", values(pb::IdentifierType::Phone));
    put(&mut props, "email", values(pb::IdentifierType::Email));
    put(&mut props, "registrationNumber", registrations);
    let mut out = vec![entity(id.clone(), schema, props)];

    for i in &e.identifiers {
        let number = normal(i);
        let country = i.country.to_ascii_lowercase();
        let mut p = Map::new();
        match i.r#type() {
            pb::IdentifierType::Passport | pb::IdentifierType::NationalId => {
                let passport = i.r#type() == pb::IdentifierType::Passport;
                put(&mut p, "holder", vec![id.clone()]);
                put(&mut p, "number", vec![number.clone()]);
                put(&mut p, "country", vec![country]);
                if !passport {
                    put(&mut p, "type", vec!["national id".into()]);
                }
                let (schema, what) =
                    if passport { ("Passport", "passport") } else { ("Identification", "national-id") };
                out.push(entity(ftm_id(&key, &format!("{what}/{number}")), schema, p));
            }
            pb::IdentifierType::BankAccount => {
                let account = ftm_id(&key, &format!("bank-account/{number}"));
                put(&mut p, if is_iban(&number) { "iban" } else { "accountNumber" }, vec![number.clone()]);
                put(&mut p, "country", vec![country]);
                out.push(entity(account.clone(), "BankAccount", p));
                let mut link = Map::new();
                put(&mut link, "owner", vec![id.clone()]);
                put(&mut link, "asset", vec![account]);
                out.push(entity(ftm_id(&key, &format!("ownership/{number}")), "Ownership", link));
            }
            _ => {}
        }
    }
    out
}

/// One FtM entity as read.
struct Read<'a> {
    id: &'a str,
    schema: &'a str,
    props: Option<Obj<'a>>,
    path: String,
}

impl<'a> Read<'a> {
    fn values(&self, name: &str) -> Result<Vec<&'a str>, Problem> {
        match &self.props {
            Some(p) => p.strings(name),
            None => Ok(Vec::new()),
        }
    }

    fn first(&self, name: &str) -> Result<Option<&'a str>, Problem> {
        Ok(self.values(name)?.into_iter().find(|v| !v.trim().is_empty()))
    }

    fn prop_path(&self, name: &str) -> String {
        format!("{}.properties.{name}", self.path)
    }
}

fn read(at: usize, v: &Value) -> Result<Read<'_>, Problem> {
    let o = Obj::of(v, format!("[{at}]"))?;
    Ok(Read { id: o.required("id")?, schema: o.required("schema")?, props: o.obj("properties")?, path: o.path.clone() })
}

const MAIN: [&str; 4] = ["Person", "Company", "Organization", "LegalEntity"];

/// Where each field of an entity being imported came from.
struct Paths {
    country: String,
    /// Per identifier: its value's path and its country's.
    identifiers: Vec<(String, String)>,
}

/// Entity records from FollowTheMoney entities: each `Person`, `Company`,
/// `Organization` or `LegalEntity` is one record, with the `Passport`,
/// `Identification` and (through `Ownership`) `BankAccount` entities that
/// point at it as its identifiers. Other schemas are ignored. Every problem
/// found is returned, paths like `[3].properties.name`.
pub fn import(entities: &[Value]) -> Result<Vec<pb::Record>, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut all = Vec::new();
    for (i, v) in entities.iter().enumerate() {
        match read(i, v) {
            Ok(r) => all.push(r),
            Err(p) => problems.push(p),
        }
    }
    let mut built: Vec<(pb::Record, Paths, &Read<'_>)> = Vec::new();
    // Main entities by FtM id; `None` for one that failed (its documents
    // are then left out quietly: the problem is reported once).
    let mut main: HashMap<&str, Option<usize>> = HashMap::new();
    for r in all.iter().filter(|r| MAIN.contains(&r.schema)) {
        match main_entity(r) {
            Ok((rec, paths)) => {
                main.insert(r.id, Some(built.len()));
                built.push((rec, paths, r));
            }
            Err(p) => {
                main.insert(r.id, None);
                problems.push(p);
            }
        }
    }
    let accounts: HashMap<&str, &Read<'_>> =
        all.iter().filter(|r| r.schema == "BankAccount").map(|r| (r.id, r)).collect();
    for r in &all {
        let attached = match r.schema {
            "Passport" | "Identification" => document(r, &main),
            "Ownership" => ownership(r, &main, &accounts),
            _ => Ok(None),
        };
        match attached {
            Ok(Some((holder, identifier, paths))) => {
                if let Some((pb::Record { body: Some(Body::Entity(e)), .. }, p, _)) = built.get_mut(holder) {
                    e.identifiers.push(identifier);
                    p.identifiers.push(paths);
                }
            }
            Ok(None) => {}
            Err(p) => problems.push(p),
        }
    }
    let mut out = Vec::new();
    for (rec, paths, r) in built {
        match super::validated(rec, |f| path(r, &paths, f)) {
            Ok(rec) => out.push(rec),
            Err(p) => problems.push(p),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        problems.sort_by_key(|p| index_of(&p.path));
        Err(problems)
    }
}

/// The entity index a problem path starts with, to report in input order.
fn index_of(path: &str) -> usize {
    path.strip_prefix('[').and_then(|r| r.split(']').next()?.parse().ok()).unwrap_or(usize::MAX)
}

fn path(r: &Read<'_>, paths: &Paths, field: &str) -> String {
    let name = field.split(['[', '.']).next().unwrap_or(field);
    let index = || field.strip_prefix(name)?.strip_prefix('[')?.split(']').next()?.parse::<usize>().ok();
    match name {
        "id" => format!("{}.id", r.path),
        "entity_type" => format!("{}.schema", r.path),
        "handling" => r.prop_path("keywords"),
        "names" => r.prop_path("name"),
        "aliases" => r.prop_path("alias"),
        "roles" => r.prop_path("classification"),
        "evidence_basis" => r.prop_path("notes"),
        "country" => paths.country.clone(),
        "identifiers" => match index().and_then(|k| paths.identifiers.get(k)) {
            Some((_, country)) if field.ends_with(".country") => country.clone(),
            Some((value, _)) => value.clone(),
            None => r.path.clone(),
        },
        _ => r.path.clone(),
    }
}

fn upper(s: Option<&str>) -> String {
    s.unwrap_or_default().to_ascii_uppercase()
}

fn main_entity(r: &Read<'_>) -> Result<(pb::Record, Paths), Problem> {
    let person = r.schema == "Person";
    let mut handling = None;
    for (k, w) in r.values("keywords")?.into_iter().enumerate() {
        if let Some(tlp) = w.strip_prefix("tlp:") {
            let h = super::tlp_from_word(tlp)
                .ok_or_else(|| problem(format!("{}[{k}]", r.prop_path("keywords")), format!("{w:?}: unknown TLP")))?;
            handling = Some(super::strictest(handling, h));
        }
    }
    let handling = handling.ok_or_else(|| problem(r.prop_path("keywords"), "a tlp:<colour> keyword is required"))?;
    let country_prop = ["nationality", "jurisdiction", "country"]
        .into_iter()
        .find(|p| r.first(p).ok().flatten().is_some())
        .unwrap_or(if person { "nationality" } else { "jurisdiction" });
    let mut paths = Paths { country: r.prop_path(country_prop), identifiers: Vec::new() };
    let mut identifiers = Vec::new();
    for (prop, t) in [
        ("phone", pb::IdentifierType::Phone),
        ("email", pb::IdentifierType::Email),
        ("registrationNumber", pb::IdentifierType::CompanyRegistration),
    ] {
        for (k, v) in r.values(prop)?.into_iter().enumerate() {
            identifiers.push(pb::Identifier { r#type: t as i32, value: v.to_string(), country: String::new() });
            paths.identifiers.push((format!("{}[{k}]", r.prop_path(prop)), r.prop_path(prop)));
        }
    }
    // Roles from the free classification field: what is not a role is not ours.
    let roles =
        r.values("classification")?.into_iter().filter_map(pb::EntityRole::from_word).map(|x| x as i32).collect();
    let rec = pb::Record {
        id: format!("ftm-{}", super::hash_hex("liaison/ftm-import", r.id, 40)),
        handling: handling as i32,
        body: Some(Body::Entity(pb::Entity {
            entity_type: if person { pb::EntityType::Person } else { pb::EntityType::Organisation } as i32,
            names: r.values("name")?.into_iter().map(String::from).collect(),
            aliases: r.values("alias")?.into_iter().map(String::from).collect(),
            roles,
            identifiers,
            country: upper(r.first(country_prop)?),
            evidence_basis: r.values("notes")?.join("\n\n"),
            source_state: String::new(),
            review_by: String::new(),
        })),
        ..Default::default()
    };
    Ok((rec, paths))
}

type Attached = Option<(usize, pb::Identifier, (String, String))>;

type Main<'a> = HashMap<&'a str, Option<usize>>;

/// The record index a reference property points at (`None` for an entity
/// that failed), or a problem.
fn holder(r: &Read<'_>, prop: &str, main: &Main<'_>) -> Result<Option<usize>, Problem> {
    let id = r.first(prop)?.ok_or_else(|| problem(r.prop_path(prop), "required"))?;
    main.get(id)
        .copied()
        .ok_or_else(|| problem(r.prop_path(prop), format!("{id:?} is no Person or organisation in the input")))
}

fn document(r: &Read<'_>, main: &Main<'_>) -> Result<Attached, Problem> {
    let Some(to) = holder(r, "holder", main)? else { return Ok(None) };
    let passport = r.schema == "Passport";
    let number = r.first("number")?.or(if passport { r.first("passportNumber")? } else { None });
    let t = if passport { pb::IdentifierType::Passport } else { pb::IdentifierType::NationalId };
    let identifier = pb::Identifier {
        r#type: t as i32,
        value: number.unwrap_or_default().to_string(),
        country: upper(r.first("country")?),
    };
    Ok(Some((to, identifier, (r.prop_path("number"), r.prop_path("country")))))
}

fn ownership(r: &Read<'_>, main: &Main<'_>, accounts: &HashMap<&str, &Read<'_>>) -> Result<Attached, Problem> {
    // Only ownership of a bank account in the input is an identifier.
    let Some(account) = r.first("asset")?.and_then(|a| accounts.get(a)) else { return Ok(None) };
    let Some(to) = holder(r, "owner", main)? else { return Ok(None) };
    let (prop, number) = match account.first("iban")? {
        Some(iban) => ("iban", iban),
        None => ("accountNumber", account.first("accountNumber")?.unwrap_or_default()),
    };
    let identifier = pb::Identifier {
        r#type: pb::IdentifierType::BankAccount as i32,
        value: number.to_string(),
        country: upper(account.first("country")?),
    };
    Ok(Some((to, identifier, (account.prop_path(prop), account.prop_path("country")))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::examples;

    fn sample() -> pb::Record {
        let mut r = examples::entity();
        r.originator = "th-atpd".into();
        r.external_reference = "CASE-2026-17".into();
        if let Some(Body::Entity(e)) = &mut r.body {
            e.identifiers.push(pb::Identifier {
                r#type: pb::IdentifierType::BankAccount as i32,
                value: "KH12 3456 7890 1234".into(),
                country: "KH".into(),
            });
            e.identifiers.push(pb::Identifier {
                r#type: pb::IdentifierType::BankAccount as i32,
                value: "GB82 WEST 1234 5698 7654 32".into(),
                country: "GB".into(),
            });
            e.identifiers.push(pb::Identifier {
                r#type: pb::IdentifierType::NationalId as i32,
                value: "010203040".into(),
                country: "KH".into(),
            });
            e.identifiers.push(pb::Identifier {
                r#type: pb::IdentifierType::Email as i32,
                value: "Sok.Dara@Example.com".into(),
                country: String::new(),
            });
        }
        r
    }

    fn organisation() -> pb::Record {
        let mut r = sample();
        r.id = "en-agency".into();
        if let Some(Body::Entity(e)) = &mut r.body {
            e.entity_type = pb::EntityType::Organisation as i32;
            e.names = vec!["Golden Star Recruitment".into()];
            e.roles = vec![pb::EntityRole::RecruitmentAgency as i32];
            e.identifiers = vec![pb::Identifier {
                r#type: pb::IdentifierType::CompanyRegistration as i32,
                value: "KH-123-456".into(),
                country: String::new(),
            }];
        }
        r
    }

    fn schemas(v: &[Value]) -> Vec<&str> {
        v.iter().map(|e| e["schema"].as_str().unwrap()).collect()
    }

    #[test]
    fn exports_person_documents_and_accounts() {
        let v = entities(&sample());
        assert_eq!(
            schemas(&v),
            ["Person", "Passport", "BankAccount", "Ownership", "BankAccount", "Ownership", "Identification"]
        );
        let person = &v[0];
        assert_eq!(person["properties"]["nationality"], json!(["kh"]));
        assert_eq!(person["properties"]["phone"], json!(["+85512345678"]));
        assert_eq!(person["properties"]["email"], json!(["sok.dara@example.com"]));
        assert_eq!(person["properties"]["keywords"], json!(["tlp:amber"]));
        assert_eq!(v[1]["properties"], json!({"holder": [person["id"]], "number": ["N0123456"], "country": ["kh"]}));
        assert_eq!(v[2]["properties"]["accountNumber"], json!(["KH12345678901234"]));
        assert_eq!(v[4]["properties"]["iban"], json!(["GB82WEST12345698765432"]));
        assert_eq!(v[3]["properties"], json!({"owner": [person["id"]], "asset": [v[2]["id"]]}));
        assert!(!serde_json::to_string(&v).unwrap().contains("CASE-2026-17"));
        assert_eq!(entities(&sample()), v, "deterministic");
        assert_eq!(schemas(&entities(&organisation())), ["Company"]);
        assert!(entities(&examples::victim_referral()).is_empty());
        assert!(entities(&examples::intelligence_report()).is_empty());
    }

    /// Business fields FtM carries, identifiers normalised and sorted.
    fn carried(r: &pb::Record) -> (i32, pb::Entity) {
        let Some(Body::Entity(e)) = &r.body else { panic!() };
        let mut e = e.clone();
        for i in &mut e.identifiers {
            i.value = normalize_identifier(i.r#type(), &i.value).unwrap();
            if matches!(
                i.r#type(),
                pb::IdentifierType::Phone | pb::IdentifierType::Email | pb::IdentifierType::CompanyRegistration
            ) {
                i.country.clear();
            }
        }
        e.identifiers.sort_by(|a, b| (a.r#type, &a.value).cmp(&(b.r#type, &b.value)));
        e.source_state.clear();
        e.review_by.clear();
        (r.handling, e)
    }

    #[test]
    fn round_trip_keeps_what_ftm_carries() {
        let mut all = entities(&sample());
        all.extend(entities(&organisation()));
        let back = import(&all).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(carried(&back[0]), carried(&sample()));
        assert_eq!(carried(&back[1]), carried(&organisation()));
        assert!(back[0].id.starts_with("ftm-") && back[0].id.len() == 44);
        assert_eq!(import(&all).unwrap(), back);
    }

    #[test]
    fn malformed_input_is_refused_at_its_path() {
        let good = entities(&sample());
        let at = |f: &dyn Fn(&mut Vec<Value>)| {
            let mut v = good.clone();
            f(&mut v);
            import(&v).unwrap_err().into_iter().map(|p| p.path).collect::<Vec<_>>()
        };
        assert_eq!(at(&|v| v[0]["properties"]["name"] = json!([])), ["[0].properties.name"]);
        assert_eq!(at(&|v| v[0]["properties"]["name"] = json!("Sok")), ["[0].properties.name"]);
        assert_eq!(at(&|v| v[0]["properties"]["keywords"] = json!(["tlp:purple"])), ["[0].properties.keywords[0]"]);
        assert_eq!(at(&|v| v[0]["properties"]["nationality"] = json!(["xx"])), ["[0].properties.nationality"]);
        assert_eq!(at(&|v| v[0]["properties"]["phone"] = json!(["12"])), ["[0].properties.phone[0]"]);
        assert_eq!(at(&|v| v[1]["properties"]["number"] = json!(["#"])), ["[1].properties.number"]);
        assert_eq!(at(&|v| v[1]["properties"]["holder"] = json!(["someone-else"])), ["[1].properties.holder"]);
        assert_eq!(at(&|v| v[2]["properties"]["country"] = json!(["zz"])), ["[2].properties.country"]);
        assert_eq!(at(&|v| v[6] = json!(["not an entity"])), ["[6]"]);
        assert_eq!(
            at(&|v| {
                v[0].as_object_mut().unwrap().remove("id");
            }),
            [
                "[0].id",
                "[1].properties.holder",
                "[3].properties.owner",
                "[5].properties.owner",
                "[6].properties.holder"
            ]
        );
    }

    #[test]
    fn ibans_are_checked() {
        assert!(is_iban("GB82WEST12345698765432"));
        assert!(!is_iban("GB83WEST12345698765432"));
        assert!(!is_iban("KH12345678901234"));
    }

    proptest::proptest! {
        #[test]
        fn import_never_panics(v in proptest::collection::vec(super::super::arbitrary_json(
            &["id", "schema", "properties", "name", "notes", "keywords", "holder", "number", "owner", "asset", "iban",
              "accountNumber", "country", "phone", "nationality"],
            &["Person", "Company", "Passport", "Identification", "BankAccount", "Ownership", "tlp:amber", "p1", "a1",
              "kh", "Sok", "N0123456", ""],
        ), 0..6)) {
            let _ = import(&v);
        }
    }
}
