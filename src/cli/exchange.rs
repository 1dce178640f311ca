//! CLI for exchange: query, check, share, outbox, receipts, sync, consent.

use crate::convert::ProtoEnum;
use clap::{Args, Subcommand};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};

use super::client::{parse_kind, Authed};
use super::output::{print_json, summary};
use super::{CliError, Global};
use crate::convert;
use crate::pb;

#[derive(Args, Debug)]
pub struct QueryArgs {
    #[arg(long, conflicts_with = "all", required_unless_present = "all")]
    pub peer: Option<String>,
    /// Ask every pinned peer in parallel.
    #[arg(long)]
    pub all: bool,
    #[arg(long)]
    pub kind: String,
    #[arg(long)]
    pub text: Option<String>,
    #[arg(long)]
    pub country: Option<String>,
    #[arg(long)]
    pub purpose: String,
    /// Per-peer deadline.
    #[arg(long, default_value_t = 5000)]
    pub deadline_ms: u32,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// TYPE:VALUE, e.g. passport:N0123456 (repeat for a batch).
    #[arg(long = "identifier", required = true)]
    pub identifiers: Vec<String>,
    #[arg(long, conflicts_with = "all", required_unless_present = "all")]
    pub peer: Option<String>,
    #[arg(long)]
    pub all: bool,
    #[arg(long)]
    pub purpose: String,
    #[arg(long, default_value_t = 5000)]
    pub deadline_ms: u32,
}

#[derive(Subcommand, Debug)]
pub enum ConsentCmd {
    /// Ask a received record's originator for consent to share it onwards.
    Request {
        record: String,
        #[arg(long)]
        to: String,
        #[arg(long)]
        purpose: String,
    },
    /// Consent requests other nodes made about this node's records.
    List,
    /// Grant one: the signed consent goes to the node that asked.
    Grant { consent_id: String },
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(header.iter().copied());
    t
}

pub(super) fn purpose(s: &str) -> Result<pb::Purpose, CliError> {
    convert::purpose_from_word(s).ok_or_else(|| {
        CliError::Msg(format!(
            "--purpose: {s:?} is not one of coordination, investigation, prosecution, victim_identification, victim_assistance, return_and_reintegration, prevention_and_analysis, statistics_and_reporting"
        ))
    })
}

fn outcome(o: i32) -> String {
    pb::PeerOutcome::word_of(o)
}

pub(super) async fn query(g: &Global, ch: Authed, a: QueryArgs) -> Result<(), CliError> {
    let req = pb::QueryRequest {
        peer: a.peer.unwrap_or_default(),
        kind: parse_kind(&a.kind)? as i32,
        text: a.text.unwrap_or_default(),
        country: a.country.unwrap_or_default(),
        purpose: purpose(&a.purpose)? as i32,
        deadline_ms: a.deadline_ms,
        limit: 0,
    };
    let r = pb::exchange_service_client::ExchangeServiceClient::new(ch).query(req).await?.into_inner();
    if g.json {
        return print_json(&r);
    }
    let mut t = table(&["origin", "id", "v", "handling", "summary", "redacted"]);
    for p in &r.peers {
        for rec in &p.records {
            let h = pb::HandlingCode::of(rec.handling).map(convert::handling_word).unwrap_or_default();
            t.add_row(vec![
                rec.originator.clone(),
                rec.id.clone(),
                rec.version.to_string(),
                h.to_uppercase(),
                summary(rec),
                rec.redacted_fields.join(", "),
            ]);
        }
    }
    println!("{t}");
    for p in &r.peers {
        let extra = if p.error.is_empty() { String::new() } else { format!(" — {}", p.error) };
        println!("{}: {} ({} record(s), {} ms){extra}", p.peer, outcome(p.outcome), p.records.len(), p.elapsed_ms);
    }
    Ok(())
}

pub(super) async fn check(g: &Global, ch: Authed, a: CheckArgs) -> Result<(), CliError> {
    let mut identifiers = Vec::new();
    for s in &a.identifiers {
        let (t, v) =
            s.split_once(':').ok_or_else(|| CliError::Msg(format!("--identifier {s:?}: expected TYPE:VALUE")))?;
        let it = crate::record::parse_identifier_type(t)
            .ok_or_else(|| CliError::Msg(format!("--identifier {s:?}: unknown type {t:?}")))?;
        identifiers.push(pb::IdentifierQuery { r#type: it as i32, value: v.to_string() });
    }
    let req = pb::CheckIdentifiersRequest {
        peer: a.peer.unwrap_or_default(),
        identifiers,
        purpose: purpose(&a.purpose)? as i32,
        deadline_ms: a.deadline_ms,
    };
    let r = pb::exchange_service_client::ExchangeServiceClient::new(ch).check_identifiers(req).await?.into_inner();
    if g.json {
        return print_json(&r);
    }
    let mut t = table(&["peer", "identifier", "result", "reference"]);
    for p in &r.peers {
        if p.results.is_empty() {
            t.add_row(vec![p.peer.clone(), String::new(), outcome(p.outcome), p.error.clone()]);
        }
        for h in &p.results {
            t.add_row(vec![
                p.peer.clone(),
                h.identifier.clone(),
                if h.hit { "HIT".into() } else { "no hit".into() },
                h.reference.clone(),
            ]);
        }
    }
    println!("{t}");
    Ok(())
}

pub(super) async fn share(g: &Global, ch: Authed, id: String, to: String, p: &str) -> Result<(), CliError> {
    let req = pb::ShareRecordRequest {
        record_id: id.clone(),
        peer: to.clone(),
        purpose: purpose(p)? as i32,
        ..Default::default()
    };
    let r = pb::exchange_service_client::ExchangeServiceClient::new(ch).share_record(req).await?.into_inner();
    if g.json {
        return print_json(&r);
    }
    let item = r.item.unwrap_or_default();
    println!("{id} queued for {to} under {} (delivery {})", r.agreement_id, item.delivery_id);
    if !r.redacted_fields.is_empty() {
        println!("  redacted: {}", r.redacted_fields.join(", "));
    }
    println!("  `liaison outbox` shows progress; `liaison record receipts {id}` the receiver's receipt");
    Ok(())
}

pub(super) async fn outbox(g: &Global, ch: Authed, all: bool) -> Result<(), CliError> {
    let c = pb::exchange_service_client::ExchangeServiceClient::new(ch);
    let r = super::pages::all(pb::ListOutboxRequest { all, page_size: 1000, ..Default::default() }, |r| {
        let mut c = c.clone();
        async move { c.list_outbox(r).await }
    })
    .await?;
    if g.json {
        return print_json(&r);
    }
    let mut t = table(&["delivery", "action", "record", "to", "state", "attempts", "next attempt", "why"]);
    for i in &r.items {
        let action = pb::OutboxAction::word_of(i.action);
        let state = pb::OutboxState::word_of(i.state);
        let next = i
            .next_attempt_time
            .as_ref()
            .and_then(convert::from_timestamp)
            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
            .unwrap_or_default();
        t.add_row(vec![
            i.delivery_id.clone(),
            action,
            i.record_key.clone(),
            i.peer.clone(),
            state,
            i.attempts.to_string(),
            next,
            i.last_error.clone(),
        ]);
    }
    println!("{t}");
    println!("{} item(s)", r.items.len());
    Ok(())
}

pub(super) async fn receipts(g: &Global, ch: Authed, id: String) -> Result<(), CliError> {
    let c = pb::exchange_service_client::ExchangeServiceClient::new(ch);
    let req = pb::ListReceiptsRequest { record_id: id, page_size: 1000, ..Default::default() };
    let r = super::pages::all(req, |r| {
        let mut c = c.clone();
        async move { c.list_receipts(r).await }
    })
    .await?;
    if g.json {
        return print_json(&r);
    }
    let mut t = table(&["receiver", "delivery", "version", "delivered", "reason", "time"]);
    for rc in &r.receipts {
        let time = rc
            .time
            .as_ref()
            .and_then(convert::from_timestamp)
            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
            .unwrap_or_default();
        t.add_row(vec![
            rc.receiver.clone(),
            rc.delivery_id.clone(),
            rc.version.to_string(),
            rc.delivered.to_string(),
            rc.reason.clone(),
            time,
        ]);
    }
    println!("{t}");
    Ok(())
}

pub(super) async fn sync(g: &Global, ch: Authed, peer: Option<String>) -> Result<(), CliError> {
    let r = pb::exchange_service_client::ExchangeServiceClient::new(ch)
        .sync_now(pb::SyncNowRequest { peer: peer.unwrap_or_default() })
        .await?
        .into_inner();
    if g.json {
        return print_json(&r);
    }
    for p in &r.peers {
        let extra = if p.error.is_empty() { String::new() } else { format!(" — {}", p.error) };
        println!(
            "{}: {} (+{} received, {} purged, cursor {}){extra}",
            p.peer,
            outcome(p.outcome),
            p.received,
            p.purged,
            p.cursor
        );
    }
    Ok(())
}

pub(super) async fn consent(g: &Global, ch: Authed, cmd: ConsentCmd) -> Result<(), CliError> {
    let mut c = pb::exchange_service_client::ExchangeServiceClient::new(ch);
    match cmd {
        ConsentCmd::Request { record, to, purpose: p } => {
            let r = c
                .request_consent(pb::RequestConsentRequest {
                    record_id: record,
                    third_party: to,
                    purpose: purpose(&p)? as i32,
                    ..Default::default()
                })
                .await?
                .into_inner();
            if g.json {
                return print_json(&r);
            }
            println!("consent requested ({}); the originator must grant it", r.consent_id);
        }
        ConsentCmd::List => {
            let req = pb::ListConsentRequestsRequest { page_size: 1000, ..Default::default() };
            let r = super::pages::all(req, |r| {
                let mut c = c.clone();
                async move { c.list_consent_requests(r).await }
            })
            .await?;
            if g.json {
                return print_json(&r);
            }
            let mut t = table(&["consent", "record", "holder", "third party", "purpose", "granted"]);
            for q in &r.requests {
                let p = pb::Purpose::word_of(q.purpose);
                t.add_row(vec![
                    q.consent_id.clone(),
                    q.record_key.clone(),
                    q.holder.clone(),
                    q.third_party.clone(),
                    p,
                    q.granted.to_string(),
                ]);
            }
            println!("{t}");
        }
        ConsentCmd::Grant { consent_id } => {
            let r = c.grant_consent(pb::GrantConsentRequest { consent_id }).await?.into_inner();
            if g.json {
                return print_json(&r);
            }
            let q = r.request.unwrap_or_default();
            println!("consent granted: {} may share {} with {}", q.holder, q.record_key, q.third_party);
        }
    }
    Ok(())
}
