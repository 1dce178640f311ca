//! Human output (tables) and JSON output for the CLI.

use crate::convert::ProtoEnum;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use serde::Serialize;

use super::{CliError, Global};
use crate::config::{Layout, NodeConfig};
use crate::pb;

pub(super) fn print_json<T: Serialize>(v: &T) -> Result<(), CliError> {
    let s = serde_json::to_string_pretty(v).map_err(|e| CliError::Msg(format!("JSON output: {e}")))?;
    println!("{s}");
    Ok(())
}

pub(super) fn done(g: &Global, msg: &str) -> Result<(), CliError> {
    if g.json {
        print_json(&serde_json::json!({ "ok": true, "message": msg }))
    } else {
        println!("{msg}");
        Ok(())
    }
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(header.iter().copied());
    t
}

pub(super) fn init_done(g: &Global, layout: &Layout, cfg: &NodeConfig, token: &str) {
    if g.json {
        let key_file = cfg.storage.as_ref().and_then(|s| s.key_path(layout));
        let key_env = cfg.storage.as_ref().and_then(|s| s.key_env.clone());
        let _ = print_json(&serde_json::json!({
            "dir": layout.dir, "id": cfg.id, "federation": cfg.listen, "api": cfg.api, "admin_token": token,
            "store_key_file": key_file, "store_key_env": key_env,
        }));
    } else {
        println!("created node {} in {}", cfg.id, layout.dir.display());
        println!("  federation (mutual TLS): {}", cfg.listen);
        println!("  local API:               http://{}", cfg.api);
        println!("  admin token:             {token}  (also in {})", layout.admin_token().display());
        if let Some(s) = &cfg.storage {
            match (s.key_path(layout), &s.key_env) {
                (Some(p), _) => println!("  store key:               {}", p.display()),
                (None, Some(v)) => println!("  store key:               environment variable {v}"),
                (None, None) => {}
            }
            println!("  back up the store key apart from the data directory: without it the store cannot be read");
        }
    }
}

pub(super) fn enum_word(name: &str, prefix: &str) -> String {
    crate::convert::word(name, prefix)
}

pub(super) fn role_name(role: i32) -> String {
    pb::UserRole::of(role).map(pb::UserRole::to_word).unwrap_or_else(|| "?".into())
}

fn kind_name(r: &pb::Record) -> String {
    crate::record::kind(r).map(pb::RecordKind::to_word).unwrap_or_default()
}

fn handling_name(h: i32) -> String {
    pb::HandlingCode::of(h)
        .map(|h| enum_word(h.as_str_name(), "HANDLING_CODE_").replace('_', "+").to_uppercase())
        .unwrap_or_else(|| "?".into())
}

fn ts(t: &Option<pbjson_types::Timestamp>) -> String {
    t.as_ref()
        .and_then(crate::convert::from_timestamp)
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// One line that says what a record is about (never protected fields).
pub fn summary(r: &pb::Record) -> String {
    use pb::record::Body;
    let s = match &r.body {
        Some(Body::ContactPoint(c)) => format!("{} — {} ({})", c.name, c.agency, c.country),
        Some(Body::IntelligenceReport(i)) => {
            if i.title.is_empty() {
                i.summary.clone()
            } else {
                i.title.clone()
            }
        }
        Some(Body::Entity(e)) => e.names.join(" / "),
        Some(Body::VictimReferral(v)) => format!("{} ({})", v.pseudonym, v.nationality),
        Some(Body::StatisticsReport(s)) => {
            format!("{} {}..{}", s.country, s.period_start, s.period_end)
        }
        Some(Body::RegionalAggregate(a)) => format!("{} {}..{}", a.region, a.period_start, a.period_end),
        None => String::new(),
    };
    let mut out: String = s.chars().take(60).collect();
    if s.chars().count() > 60 {
        out.push('…');
    }
    out
}

pub(super) fn records(rs: &[pb::Record]) {
    let mut t = table(&["id", "originator", "kind", "handling", "v", "updated", "summary"]);
    for r in rs {
        t.add_row(vec![
            r.id.clone(),
            r.originator.clone(),
            kind_name(r),
            handling_name(r.handling),
            format!("{}{}", r.version, if r.withdrawn { " (withdrawn)" } else { "" }),
            ts(&r.update_time),
            summary(r),
        ]);
    }
    println!("{t}");
    println!("{} record(s)", rs.len());
}

pub(super) fn contacts(rs: &[pb::Record]) {
    let mut t = table(&["name", "role", "agency", "country", "channels", "availability", "verified", "origin"]);
    for r in rs {
        if let Some(pb::record::Body::ContactPoint(c)) = &r.body {
            let role = pb::ContactRole::word_of(c.role);
            let channels = c.channels.iter().map(|ch| ch.value.clone()).collect::<Vec<_>>().join(", ");
            let avail = c.availability.as_ref().map_or(String::new(), |a| {
                if a.always {
                    "24/7".into()
                } else {
                    format!("{} {}", a.hours, a.time_zone)
                }
            });
            t.add_row(vec![
                c.name.clone(),
                role,
                c.agency.clone(),
                c.country.clone(),
                channels,
                avail,
                c.last_verified.clone(),
                r.originator.clone(),
            ]);
        }
    }
    println!("{t}");
    println!("{} contact point(s)", rs.len());
}

pub(super) fn record_written(g: &Global, what: &str, r: Option<pb::Record>) -> Result<(), CliError> {
    let r = r.unwrap_or_default();
    if g.json {
        print_json(&r)
    } else {
        println!("record {} {what} (version {})", r.id, r.version);
        Ok(())
    }
}

pub(super) fn record_detail(r: &pb::GetRecordResponse) -> Result<(), CliError> {
    let rec = r.record.clone().unwrap_or_default();
    println!(
        "{} ({}) from {} — version {}, {}{}",
        rec.id,
        kind_name(&rec),
        rec.originator,
        rec.version,
        handling_name(rec.handling),
        if rec.withdrawn { ", withdrawn" } else { "" }
    );
    println!("created {}  updated {}", ts(&rec.create_time), ts(&rec.update_time));
    if let Some(p) = &r.provenance {
        println!(
            "received from {} under agreement {} v{} (purpose {}), retained until {}",
            p.received_from,
            p.agreement_id,
            p.agreement_version,
            pb::Purpose::word_of(p.purpose),
            ts(&p.retain_until)
        );
    }
    let body = serde_json::to_string_pretty(&body_json(&rec)).map_err(|e| CliError::Msg(e.to_string()))?;
    println!("{body}");
    Ok(())
}

/// A record's body as proto3 JSON, without the fields shown above it.
fn body_json(rec: &pb::Record) -> serde_json::Value {
    let mut v = serde_json::to_value(rec).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        for k in ["id", "originator", "version", "createTime", "updateTime", "handling", "withdrawn"] {
            o.remove(k);
        }
    }
    v
}

pub(super) fn peers(ps: &[pb::Peer]) {
    let mut t = table(&["id", "name", "country/region", "role", "endpoint", "fingerprint", "source"]);
    for p in ps {
        let c = p.card.clone().unwrap_or_default();
        let role = pb::NodeRole::word_of(c.role);
        let place = if c.country.is_empty() { c.region.clone() } else { c.country.clone() };
        t.add_row(vec![
            c.node_id,
            c.display_name,
            place,
            role,
            c.federation_endpoint,
            p.tls_fingerprint.chars().take(16).collect(),
            p.source.clone(),
        ]);
    }
    println!("{t}");
}

pub(super) fn users(us: &[pb::User]) {
    let mut t = table(&["name", "role", "scopes", "created"]);
    for u in us {
        t.add_row(vec![u.name.clone(), role_name(u.role), u.scopes.join(" "), ts(&u.create_time)]);
    }
    println!("{t}");
}

pub(super) fn status(s: &pb::GetStatusResponse) {
    let c = s.card.clone().unwrap_or_default();
    println!("{} — {} ({})", c.node_id, c.display_name, if c.country.is_empty() { &c.region } else { &c.country });
    println!(
        "federation endpoint {}; {} peer(s); {} record(s); liaison {}",
        c.federation_endpoint, s.peer_count, s.record_count, s.version
    );
}

/// The exported card file: the signed envelope, plus a readable copy that importers ignore.
pub(super) fn card_json(r: &pb::GetCardResponse) -> Result<String, CliError> {
    serde_json::to_string_pretty(&serde_json::json!({ "envelope": r.envelope, "card": r.card }))
        .map_err(|e| CliError::Msg(e.to_string()))
}
