//! Bulk import (JSON lines of any kind, CSV of contact points), export to
//! JSON lines, and following the change feed.

use std::io::Write;
use std::path::Path;

use futures::StreamExt as _;

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

impl Item {
    fn encoded_len(&self) -> usize {
        match self {
            Item::Own(r) => prost::Message::encoded_len(r.as_ref()),
            Item::Received(x) => prost::Message::encoded_len(x.as_ref()),
        }
    }
}

/// A refused line: which, the field path, and why, kept apart so a
/// program reading `--json` needs no parsing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
struct Problem {
    line: usize,
    field: String,
    reason: String,
}

/// One input line: its 1-based number and what it holds, or why it failed.
type Line = (usize, Result<Item, (String, String)>);

/// A call carries at most this many records...
const BATCH: usize = 500;
/// ...and at most this many encoded bytes, well under the node's 4 MiB
/// message limit however long the records are.
const BATCH_BYTES: usize = 2 << 20;
/// Attempts per call when the node is unreachable or the call timed out;
/// the same request_id makes a retry safe (nothing is stored twice).
const ATTEMPTS: u32 = 3;
/// Calls in flight at once: the node signs one batch while it writes
/// another, and this side parses the next meanwhile.
const IN_FLIGHT: usize = 4;

fn json_lines(text: &str) -> Vec<Line> {
    text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()).map(|(i, l)| (i + 1, json_line(l))).collect()
}

/// A `liaison.v1.Record` line, or a `liaison.v1.ExportedRecord` line (it
/// carries the originator's `envelope`).
fn json_line(l: &str) -> Result<Item, (String, String)> {
    let v: serde_json::Value = serde_json::from_str(l).map_err(|e| (String::new(), format!("not JSON: {e}")))?;
    if v.get("envelope").is_some() || v.get("holding").is_some() {
        serde_json::from_value::<pb::ExportedRecord>(v)
            .map(|x| Item::Received(Box::new(x)))
            .map_err(|e| (String::new(), format!("not a liaison.v1.ExportedRecord: {e}")))
    } else {
        serde_json::from_value::<pb::Record>(v)
            .map(|r| Item::Own(Box::new(r)))
            .map_err(|e| (String::new(), format!("not a liaison.v1.Record: {e}")))
    }
}

/// CSV columns: id,name,role,agency,country,languages,phone,email,availability,last_verified,handling
/// `languages` is `;`-separated; `availability` is `24/7` or `HH:MM-HH:MM Area/City`;
/// `role` and `handling` are words like `unit_head`, `green`.
pub const CSV_HEADER: &str = "id,name,role,agency,country,languages,phone,email,availability,last_verified,handling";

fn csv_record(row: &csv::StringRecord) -> Result<pb::Record, (String, String)> {
    let col = |i: usize| row.get(i).unwrap_or("").trim().to_string();
    if row.len() != 11 {
        return Err((String::new(), format!("expected 11 columns ({CSV_HEADER}), found {}", row.len())));
    }
    let role = pb::ContactRole::from_str_name(&format!("CONTACT_ROLE_{}", col(2).to_uppercase()))
        .ok_or_else(|| ("role".to_string(), format!("unknown contact role {:?}", col(2))))?;
    let handling_word = col(10).to_uppercase().replace('+', "_");
    let handling = pb::HandlingCode::from_str_name(&format!("HANDLING_CODE_{handling_word}"))
        .ok_or_else(|| ("handling".to_string(), format!("unknown TLP code {:?}", col(10))))?;
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
            let item = r.map_err(|e| (String::new(), e.to_string())).and_then(|row| csv_record(&row));
            (i + 2, item.map(|r| Item::Own(Box::new(r))))
        })
        .collect()
}

/// Records from a file in an exchange format. A document that does not
/// convert is refused whole, each problem with its path (line 1 for a
/// single document, the line number for JSON lines).
fn format_lines(format: &str, text: &str) -> Vec<Line> {
    use liaison_core::formats::{ftm, misp, stix, Problem};
    let docs = || -> Result<Vec<serde_json::Value>, (String, String)> {
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Array(a)) => Ok(a),
            Ok(v) => Ok(vec![v]),
            Err(_) => text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| serde_json::from_str(l).map_err(|e| (String::new(), format!("not JSON: {e}"))))
                .collect(),
        }
    };
    let refused = |ps: Vec<Problem>| ps.into_iter().map(|p| (1, Err((p.path, p.reason)))).collect::<Vec<Line>>();
    let own = |recs: Vec<pb::Record>| {
        recs.into_iter().enumerate().map(|(i, r)| (i + 1, Ok(Item::Own(Box::new(r))))).collect::<Vec<Line>>()
    };
    let docs = match docs() {
        Ok(d) => d,
        Err(e) => return vec![(1, Err(e))],
    };
    match format {
        "stix" => match docs.as_slice() {
            [bundle] => stix::import(bundle).map_or_else(refused, own),
            _ => vec![(1, Err((String::new(), "one STIX bundle per file".into())))],
        },
        "ftm" => ftm::import(&docs).map_or_else(refused, own),
        _ => docs
            .iter()
            .enumerate()
            .map(|(i, ev)| match misp::import(ev) {
                Ok(r) => (i + 1, Ok(Item::Own(Box::new(r)))),
                Err(ps) => {
                    let p = ps
                        .into_iter()
                        .next()
                        .map_or((String::new(), "not a MISP event".into()), |p| (p.path, p.reason));
                    (i + 1, Err(p))
                }
            })
            .collect(),
    }
}

pub(super) async fn import(g: &Global, ch: Authed, file: &Path, format: Option<&str>) -> Result<(), CliError> {
    let text = std::fs::read_to_string(file).map_err(|e| CliError::Msg(format!("{}: {e}", file.display())))?;
    let is_csv = file.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let lines = match format {
        Some(f) => format_lines(f, &text),
        None if is_csv => csv_lines(&text),
        None => json_lines(&text),
    };
    let bar = if g.json { indicatif::ProgressBar::hidden() } else { indicatif::ProgressBar::new(lines.len() as u64) };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} lines {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut problems: Vec<Problem> = Vec::new();
    let mut stored = 0u32;
    let mut held = 0u32;
    let client = pb::record_service_client::RecordServiceClient::new(ch);
    let mut pending: Vec<(usize, Item)> = Vec::new();
    let mut pending_bytes = 0usize;
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
            let req = pb::ImportRecordsRequest { records, received, request_id: super::client::request_id() };
            let mut attempt = 1;
            let r = loop {
                match client.import_records(req.clone()).await {
                    Ok(r) => break r.into_inner(),
                    Err(s) if attempt < ATTEMPTS && retryable(s.code()) => attempt += 1,
                    Err(s) => return Err(CliError::from(s)),
                }
            };
            let probs: Vec<Problem> = r
                .problems
                .into_iter()
                .map(|p| {
                    let lines = if p.received { &received_lines } else { &own_lines };
                    Problem {
                        line: lines.get(p.index as usize).copied().unwrap_or(0),
                        field: p.field,
                        reason: p.reason,
                    }
                })
                .collect();
            Ok::<_, CliError>((r.stored, r.already_held, probs))
        }
    };
    // Batches go out in order, up to IN_FLIGHT at once. A record id used
    // twice in the file is refused here, on its later line, so which line
    // is refused does not depend on which call the node takes first.
    let mut inflight = futures::stream::FuturesOrdered::new();
    let mut ids: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut totals = |(s, h, p): (u32, u32, Vec<Problem>), problems: &mut Vec<Problem>| {
        (stored, held) = (stored.saturating_add(s), held.saturating_add(h));
        problems.extend(p);
    };
    for (n, parsed) in lines {
        let parsed = match parsed {
            Ok(Item::Own(r)) if !r.id.is_empty() => match ids.get(&r.id) {
                Some(first) => Err(("record.id".to_string(), format!("record {} already exists (line {first})", r.id))),
                None => {
                    ids.insert(r.id.clone(), n);
                    Ok(Item::Own(r))
                }
            },
            other => other,
        };
        match parsed {
            Ok(r) => {
                let len = r.encoded_len();
                if !pending.is_empty() && pending_bytes.saturating_add(len) > BATCH_BYTES {
                    inflight.push_back(flush(std::mem::take(&mut pending)));
                    pending_bytes = 0;
                }
                pending_bytes = pending_bytes.saturating_add(len);
                pending.push((n, r));
            }
            Err((field, reason)) => problems.push(Problem { line: n, field, reason }),
        }
        if pending.len() == BATCH {
            inflight.push_back(flush(std::mem::take(&mut pending)));
            pending_bytes = 0;
        }
        while inflight.len() >= IN_FLIGHT {
            if let Some(done) = inflight.next().await {
                totals(done?, &mut problems);
            }
        }
        bar.inc(1);
    }
    if !pending.is_empty() {
        inflight.push_back(flush(pending));
    }
    while let Some(done) = inflight.next().await {
        totals(done?, &mut problems);
    }
    bar.finish_and_clear();
    problems.sort();
    if g.json {
        print_json(&serde_json::json!({ "stored": stored, "alreadyHeld": held, "problems": problems }))?;
    } else {
        println!("{stored} record(s) stored, {held} already held, {} line(s) refused", problems.len());
        for p in &problems {
            if p.field.is_empty() {
                println!("  line {}: {}", p.line, p.reason);
            } else {
                println!("  line {}: {}: {}", p.line, p.field, p.reason);
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        // Any refused line fails the command, so a script notices.
        Err(CliError::Msg(format!("{} line(s) refused; the others were stored", problems.len())))
    }
}

/// Failures after which the same call may be sent again.
fn retryable(code: tonic::Code) -> bool {
    matches!(code, tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Aborted)
}

/// Own records as `liaison.v1.Record` lines; received records as
/// `liaison.v1.ExportedRecord` lines carrying the originator's exact signed
/// envelope, the provenance and this node's signed holding statement
/// (fetched with GetRecord, which audits any view of protected fields).
pub(super) async fn export(
    ch: Authed,
    kind: Option<&str>,
    out: Option<&Path>,
    format: Option<&str>,
) -> Result<(), CliError> {
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
    // A file is written beside its target and renamed when complete: a
    // failed export never leaves an empty or partial file behind.
    let partial = out.map(|p| p.with_extension("partial"));
    let mut sink: Box<dyn Write> = match &partial {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(|e| CliError::Msg(format!("{}: {e}", p.display())))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    let written = match format {
        Some(f) => write_format(&mut client, &own, kind, f, &mut sink).await,
        None => write_export(&mut client, &own, kind, &mut sink).await,
    };
    drop(sink);
    let n = match (written, &partial, out) {
        (Ok(n), Some(tmp), Some(dest)) => {
            std::fs::rename(tmp, dest).map_err(|e| CliError::Msg(format!("{}: {e}", dest.display())))?;
            n
        }
        (Ok(n), _, _) => n,
        (Err(e), tmp, _) => {
            if let Some(tmp) = tmp {
                let _ = std::fs::remove_file(tmp);
            }
            return Err(e);
        }
    };
    if out.is_some() {
        eprintln!("{n} record(s) exported");
    }
    Ok(())
}

/// Writes every record as a line, page by page (a page is bounded in bytes
/// by the node, so long records never exceed a message); returns how many.
async fn write_export(
    client: &mut pb::record_service_client::RecordServiceClient<Authed>,
    own: &str,
    kind: i32,
    sink: &mut dyn Write,
) -> Result<usize, CliError> {
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
    Ok(n)
}

/// Every record as listed (victims' identities masked), page by page.
async fn listed(
    client: &mut pb::record_service_client::RecordServiceClient<Authed>,
    kind: i32,
) -> Result<Vec<pb::Record>, CliError> {
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let req = pb::ListRecordsRequest { kind, page_size: 1000, page_token: token, ..Default::default() };
        let page = client.list_records(req).await?.into_inner();
        all.extend(page.records);
        if page.next_page_token.is_empty() {
            return Ok(all);
        }
        token = page.next_page_token;
    }
}

/// Records in an exchange format, converted by the core from what the
/// listing shows (victim referrals are never converted); returns how many
/// documents or entities were written.
async fn write_format(
    client: &mut pb::record_service_client::RecordServiceClient<Authed>,
    own: &str,
    kind: i32,
    format: &str,
    sink: &mut dyn Write,
) -> Result<usize, CliError> {
    use liaison_core::formats::{ftm, misp, stix};
    let records = listed(client, kind).await?;
    let io = |e: std::io::Error| CliError::Msg(e.to_string());
    let json = |v: &serde_json::Value| serde_json::to_string(v).map_err(|e| CliError::Msg(e.to_string()));
    let mut n = 0;
    match format {
        "stix" => {
            let bundle = stix::bundle(&records, own, time::OffsetDateTime::now_utc());
            n = bundle["objects"].as_array().map_or(0, Vec::len);
            writeln!(sink, "{}", json(&bundle)?).map_err(io)?;
        }
        "ftm" => {
            for e in records.iter().flat_map(ftm::entities) {
                writeln!(sink, "{}", json(&e)?).map_err(io)?;
                n += 1;
            }
        }
        _ => {
            for ev in records.iter().filter_map(|r| misp::event(r, own)) {
                writeln!(sink, "{}", json(&ev)?).map_err(io)?;
                n += 1;
            }
        }
    }
    sink.flush().map_err(io)?;
    Ok(n)
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
