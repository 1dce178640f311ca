//! Bulk import (JSON lines of any kind, CSV of contact points), export to
//! JSON lines, and following the change feed.

use std::io::Write;
use std::path::Path;

use super::client::{parse_kind, Authed};
use super::output::print_json;
use super::{CliError, Global};
use crate::pb;

/// A record to import: one of this node's own, or a received record from
/// `liaison export` (kept only as received, never as this node's own).
enum Item {
    Own(Box<pb::Record>),
    Received(Box<pb::ExportedRecord>),
}

/// One input line: its 1-based number and what it holds, or why it failed.
type Line = (usize, Result<Item, String>);

const BATCH: usize = 500;

fn json_lines(text: &str) -> Vec<Line> {
    text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()).map(|(i, l)| (i + 1, json_line(l))).collect()
}

/// A `liaison.v1.Record` line, or a `liaison.v1.ExportedRecord` line (it
/// carries the originator's `envelope`).
fn json_line(l: &str) -> Result<Item, String> {
    let v: serde_json::Value = serde_json::from_str(l).map_err(|e| format!("not JSON: {e}"))?;
    if v.get("envelope").is_some() || v.get("holding").is_some() {
        serde_json::from_value::<pb::ExportedRecord>(v)
            .map(|x| Item::Received(Box::new(x)))
            .map_err(|e| format!("not a liaison.v1.ExportedRecord: {e}"))
    } else {
        serde_json::from_value::<pb::Record>(v)
            .map(|r| Item::Own(Box::new(r)))
            .map_err(|e| format!("not a liaison.v1.Record: {e}"))
    }
}

/// CSV columns: id,name,role,agency,country,languages,phone,email,availability,last_verified,handling
/// `languages` is `;`-separated; `availability` is `24/7` or `HH:MM-HH:MM Area/City`;
/// `role` and `handling` are words like `unit_head`, `green`.
pub const CSV_HEADER: &str = "id,name,role,agency,country,languages,phone,email,availability,last_verified,handling";

fn csv_record(row: &csv::StringRecord) -> Result<pb::Record, String> {
    let col = |i: usize| row.get(i).unwrap_or("").trim().to_string();
    if row.len() != 11 {
        return Err(format!("expected 11 columns ({CSV_HEADER}), found {}", row.len()));
    }
    let role = pb::ContactRole::from_str_name(&format!("CONTACT_ROLE_{}", col(2).to_uppercase()))
        .ok_or_else(|| format!("role: unknown contact role {:?}", col(2)))?;
    let handling_word = col(10).to_uppercase().replace('+', "_");
    let handling = pb::HandlingCode::from_str_name(&format!("HANDLING_CODE_{handling_word}"))
        .ok_or_else(|| format!("handling: unknown TLP code {:?}", col(10)))?;
    let mut channels = Vec::new();
    if !col(6).is_empty() {
        channels.push(pb::Channel { r#type: pb::ChannelType::Phone as i32, value: col(6) });
    }
    if !col(7).is_empty() {
        channels.push(pb::Channel { r#type: pb::ChannelType::Email as i32, value: col(7) });
    }
    let avail = col(8);
    let availability = if avail == "24/7" {
        pb::Availability { always: true, ..Default::default() }
    } else {
        let (hours, tz) = avail.split_once(' ').unwrap_or((avail.as_str(), ""));
        pb::Availability { always: false, hours: hours.to_string(), time_zone: tz.trim().to_string() }
    };
    Ok(pb::Record {
        id: col(0),
        handling: handling as i32,
        body: Some(pb::record::Body::ContactPoint(pb::ContactPoint {
            name: col(1),
            role: role as i32,
            agency: col(3),
            country: col(4),
            languages: col(5).split(';').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
            channels,
            availability: Some(availability),
            last_verified: col(9),
            office: false,
        })),
        ..Default::default()
    })
}

fn csv_lines(text: &str) -> Vec<Line> {
    let mut rdr = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(text.as_bytes());
    rdr.records()
        .enumerate()
        .map(|(i, r)| {
            (i + 2, r.map_err(|e| e.to_string()).and_then(|row| csv_record(&row)).map(|r| Item::Own(Box::new(r))))
        })
        .collect()
}

pub(super) async fn import(g: &Global, ch: Authed, file: &Path) -> Result<(), CliError> {
    let text = std::fs::read_to_string(file).map_err(|e| CliError::Msg(format!("{}: {e}", file.display())))?;
    let is_csv = file.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let lines = if is_csv { csv_lines(&text) } else { json_lines(&text) };
    let bar = if g.json { indicatif::ProgressBar::hidden() } else { indicatif::ProgressBar::new(lines.len() as u64) };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} lines {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut problems: Vec<(usize, String)> = Vec::new();
    let mut stored = 0u32;
    let mut held = 0u32;
    let client = pb::record_service_client::RecordServiceClient::new(ch);
    let mut pending: Vec<(usize, Item)> = Vec::new();
    let flush = |pending: Vec<(usize, Item)>| {
        let mut client = client.clone();
        async move {
            let (mut own_lines, mut received_lines) = (Vec::new(), Vec::new());
            let (mut records, mut received) = (Vec::new(), Vec::new());
            for (n, item) in pending {
                match item {
                    Item::Own(r) => {
                        own_lines.push(n);
                        records.push(*r);
                    }
                    Item::Received(x) => {
                        received_lines.push(n);
                        received.push(*x);
                    }
                }
            }
            let r = client.import_records(pb::ImportRecordsRequest { records, received }).await?.into_inner();
            let probs: Vec<(usize, String)> = r
                .problems
                .into_iter()
                .map(|p| {
                    let lines = if p.received { &received_lines } else { &own_lines };
                    (lines.get(p.index as usize).copied().unwrap_or(0), format!("{}: {}", p.field, p.reason))
                })
                .collect();
            Ok::<_, CliError>((r.stored, r.already_held, probs))
        }
    };
    for (n, parsed) in lines {
        match parsed {
            Ok(r) => pending.push((n, r)),
            Err(e) => problems.push((n, e)),
        }
        if pending.len() == BATCH {
            let (s, h, p) = flush(std::mem::take(&mut pending)).await?;
            stored += s;
            held += h;
            problems.extend(p);
        }
        bar.inc(1);
    }
    if !pending.is_empty() {
        let (s, h, p) = flush(pending).await?;
        stored += s;
        held += h;
        problems.extend(p);
    }
    bar.finish_and_clear();
    problems.sort();
    if g.json {
        let probs: Vec<_> = problems.iter().map(|(n, r)| serde_json::json!({"line": n, "reason": r})).collect();
        print_json(&serde_json::json!({ "stored": stored, "alreadyHeld": held, "problems": probs }))?;
    } else {
        println!("{stored} record(s) stored, {held} already held, {} line(s) refused", problems.len());
        for (n, r) in &problems {
            println!("  line {n}: {r}");
        }
    }
    Ok(())
}

/// Own records as `liaison.v1.Record` lines; received records as
/// `liaison.v1.ExportedRecord` lines carrying the originator's exact signed
/// envelope, the provenance and this node's signed holding statement
/// (fetched with GetRecord, which audits any view of protected fields).
pub(super) async fn export(ch: Authed, kind: Option<&str>, out: Option<&Path>) -> Result<(), CliError> {
    let own = pb::node_service_client::NodeServiceClient::new(ch.clone())
        .get_status(pb::GetStatusRequest {})
        .await?
        .into_inner()
        .card
        .map(|c| c.node_id)
        .unwrap_or_default();
    let mut client = pb::record_service_client::RecordServiceClient::new(ch);
    let kind = match kind {
        Some(k) => parse_kind(k)? as i32,
        None => 0,
    };
    let mut sink: Box<dyn Write> = match out {
        Some(p) => Box::new(std::fs::File::create(p).map_err(|e| CliError::Msg(format!("{}: {e}", p.display())))?),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut token = String::new();
    let mut n = 0usize;
    loop {
        let req = pb::ListRecordsRequest {
            kind,
            page_size: 1000,
            page_token: token.clone(),
            include_withdrawn: true,
            ..Default::default()
        };
        let page = client.list_records(req).await?.into_inner();
        for r in &page.records {
            let line = if r.originator == own {
                serde_json::to_string(r)
            } else {
                let got = client
                    .get_record(pb::GetRecordRequest {
                        id: format!("{}/{}", r.originator, r.id),
                        masked: false,
                        // The envelope carries the whole record: an audited view.
                        reason: "liaison export".into(),
                    })
                    .await?
                    .into_inner();
                serde_json::to_string(&pb::ExportedRecord {
                    record: Some(r.clone()),
                    envelope: got.envelope,
                    provenance: got.provenance,
                    holding: got.holding,
                })
            }
            .map_err(|e| CliError::Msg(e.to_string()))?;
            writeln!(sink, "{line}").map_err(|e| CliError::Msg(e.to_string()))?;
            n += 1;
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    sink.flush().map_err(|e| CliError::Msg(e.to_string()))?;
    if out.is_some() {
        eprintln!("{n} record(s) exported");
    }
    Ok(())
}

pub(super) async fn watch(ch: Authed, since: u64, follow: bool) -> Result<(), CliError> {
    let mut client = pb::change_service_client::ChangeServiceClient::new(ch);
    let mut stream =
        client.watch_changes(pb::WatchChangesRequest { since_seq: since, no_follow: !follow }).await?.into_inner();
    while let Some(item) = stream.message().await? {
        let line = serde_json::to_string(&item).map_err(|e| CliError::Msg(e.to_string()))?;
        println!("{line}");
    }
    Ok(())
}
