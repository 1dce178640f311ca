//! CLI for agreements, the policy engine and the audit log.

use crate::convert::ProtoEnum;
use std::path::PathBuf;

use clap::Subcommand;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};

use super::client::Authed;
use super::output::print_json;
use super::{CliError, Global};
use crate::convert::{self, state_word};
use crate::pb;

#[derive(Subcommand, Debug)]
pub enum AgreementCmd {
    /// Store a draft from a TOML file (see deploy/agreements/).
    Draft { file: PathBuf },
    /// Add this node's signature.
    Sign {
        id: String,
        #[arg(long, default_value_t = 0)]
        version: u32,
    },
    /// Sign and deliver to every other party.
    Propose {
        id: String,
        #[arg(long, default_value_t = 0)]
        version: u32,
    },
    /// Sign a proposal received from another party and deliver the signature.
    Accept {
        id: String,
        #[arg(long, default_value_t = 0)]
        version: u32,
    },
    List {
        /// Include every version, not just the newest.
        #[arg(long)]
        history: bool,
    },
    Show {
        id: String,
        #[arg(long, default_value_t = 0)]
        version: u32,
    },
    /// Suspend at once on every party (a signed notice).
    Suspend {
        id: String,
        #[arg(long)]
        reason: String,
        #[arg(long, default_value_t = 0)]
        version: u32,
    },
    /// Lift this node's suspension.
    Resume {
        id: String,
        #[arg(long)]
        reason: String,
        #[arg(long, default_value_t = 0)]
        version: u32,
    },
    /// Revoke for good, at once on every party.
    Revoke {
        id: String,
        #[arg(long)]
        reason: String,
        #[arg(long, default_value_t = 0)]
        version: u32,
    },
    /// Draft a new version from a TOML file; every party signs it again.
    Amend { id: String, file: PathBuf },
}

#[derive(Subcommand, Debug)]
pub enum AuditCmd {
    List {
        #[arg(long, default_value_t = 0)]
        after: u64,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Only actions starting with this, e.g. "agreement." or "policy."
        #[arg(long, default_value = "")]
        action: String,
    },
    /// Check the hash chain and every signed checkpoint.
    Verify,
    /// Every entry as JSON lines.
    Export {
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(clap::Args, Debug)]
pub struct PolicyCheck {
    #[arg(long)]
    pub peer: String,
    /// outgoing (we send) or incoming (they send)
    #[arg(long, default_value = "outgoing")]
    pub direction: String,
    /// query, hit_check, push, sync
    #[arg(long)]
    pub operation: String,
    #[arg(long)]
    pub kind: String,
    #[arg(long)]
    pub purpose: String,
    /// clear, green, amber, amber+strict, red
    #[arg(long)]
    pub handling: String,
    /// RFC 3339 time (default now)
    #[arg(long)]
    pub at: Option<String>,
    /// A victim referral whose consent/child/best-interest facts apply.
    #[arg(long)]
    pub victim_record: Option<String>,
    #[arg(long)]
    pub identity: bool,
    #[arg(long)]
    pub return_step: bool,
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(header.iter().copied());
    t
}

fn state_of(r: &pb::AgreementRecord) -> String {
    state_word(r.state())
}

fn ts(t: &Option<pbjson_types::Timestamp>) -> String {
    t.as_ref()
        .and_then(convert::from_timestamp)
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

fn words<E: ProtoEnum>(v: &[i32], f: impl Fn(E) -> String) -> String {
    v.iter().filter_map(|x| E::of(*x)).map(f).collect::<Vec<_>>().join(", ")
}

pub(super) fn print_agreement(r: &pb::AgreementRecord) {
    let Some(a) = &r.agreement else { return };
    println!("{} v{} — {}", a.id, a.version, a.title);
    println!(
        "state: {}   signed by: {}   missing: {}",
        state_of(r),
        r.signed_by.join(", "),
        if r.missing_signatures.is_empty() { "none".into() } else { r.missing_signatures.join(", ") }
    );
    println!("legal basis: {}", a.legal_basis);
    println!("parties: {}", a.parties.join(", "));
    println!("valid: {} → {}", ts(&a.valid_from), ts(&a.valid_until));
    if let Some(rt) = &a.retention {
        println!("retention: {} days{}", rt.days, if rt.purge_on_revoke { ", purged on revocation" } else { "" });
    }
    let mut t = table(&["from", "to", "kinds", "purposes", "operations", "max", "released", "redacted", "onward"]);
    for g in &a.grants {
        t.add_row(vec![
            g.from.clone(),
            g.to.clone(),
            words(&g.record_kinds, convert::kind_word),
            words(&g.purposes, convert::purpose_word),
            words(&g.operations, convert::operation_word),
            pb::HandlingCode::of(g.max_handling).map(convert::handling_word).unwrap_or_default(),
            g.released_protected_fields.join(", "),
            g.redacted_fields.join(", "),
            pb::OnwardSharing::word_of(g.onward_sharing),
        ]);
    }
    println!("{t}");
    if let Some(sop) = &a.sop {
        println!("SOP: {}", sop.name);
        let mut t = table(&[
            "request type",
            "what",
            "answered by",
            "ack",
            "answer",
            "urgent ack",
            "urgent answer",
            "escalates to",
            "source",
        ]);
        let d = |s: u64| {
            if s % 86_400 == 0 {
                format!("{}d", s / 86_400)
            } else if s % 3600 == 0 {
                format!("{}h", s / 3600)
            } else {
                format!("{}m", s / 60)
            }
        };
        for r in &sop.request_types {
            t.add_row(vec![
                r.name.clone(),
                crate::agreement::request_type_title(r),
                if r.answered_by.is_empty() { "any party".into() } else { r.answered_by.join(", ") },
                d(r.ack_within_seconds),
                d(r.answer_within_seconds),
                d(r.urgent_ack_within_seconds),
                d(r.urgent_answer_within_seconds),
                pb::ContactRole::word_of(r.escalation_role),
                r.source.clone(),
            ]);
        }
        println!("{t}");
    }
    for n in &r.notices {
        if let Ok(n) = crate::envelope::decode::<pb::AgreementNotice>(n) {
            let action = pb::NoticeAction::word_of(n.action);
            println!("notice: {action} by {} at {}: {}", n.issuer, ts(&n.issue_time), n.reason);
        }
    }
}

fn deliveries(ds: &[pb::DeliveryResult]) {
    for d in ds {
        if d.delivered {
            println!("  delivered to {}", d.node_id);
        } else {
            println!("  NOT delivered to {}: {}", d.node_id, d.error);
        }
    }
}

fn read(path: &PathBuf) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|e| CliError::Msg(format!("{}: {e}", path.display())))
}

pub(super) async fn agreement(g: &Global, ch: Authed, cmd: AgreementCmd) -> Result<(), CliError> {
    let mut c = pb::agreement_service_client::AgreementServiceClient::new(ch);
    let notice = |id: String, version: u32, action: pb::NoticeAction, reason: String| pb::IssueAgreementNoticeRequest {
        id,
        version,
        action: action as i32,
        reason,
    };
    let (record, ds) = match cmd {
        AgreementCmd::Draft { file } => {
            (c.draft_agreement(pb::DraftAgreementRequest { toml: read(&file)? }).await?.into_inner().agreement, vec![])
        }
        AgreementCmd::Amend { id, file } => (
            c.amend_agreement(pb::AmendAgreementRequest { id, toml: read(&file)? }).await?.into_inner().agreement,
            vec![],
        ),
        AgreementCmd::Sign { id, version } => {
            (c.sign_agreement(pb::SignAgreementRequest { id, version }).await?.into_inner().agreement, vec![])
        }
        AgreementCmd::Propose { id, version } => {
            let r = c.propose_agreement(pb::ProposeAgreementRequest { id, version }).await?.into_inner();
            (r.agreement, r.deliveries)
        }
        AgreementCmd::Accept { id, version } => {
            let r = c.accept_agreement(pb::AcceptAgreementRequest { id, version }).await?.into_inner();
            (r.agreement, r.deliveries)
        }
        AgreementCmd::Show { id, version } => {
            (c.get_agreement(pb::GetAgreementRequest { id, version }).await?.into_inner().agreement, vec![])
        }
        AgreementCmd::Suspend { id, reason, version } => {
            let r =
                c.issue_agreement_notice(notice(id, version, pb::NoticeAction::Suspend, reason)).await?.into_inner();
            (r.agreement, r.deliveries)
        }
        AgreementCmd::Resume { id, reason, version } => {
            let r = c.issue_agreement_notice(notice(id, version, pb::NoticeAction::Resume, reason)).await?.into_inner();
            (r.agreement, r.deliveries)
        }
        AgreementCmd::Revoke { id, reason, version } => {
            let r = c.issue_agreement_notice(notice(id, version, pb::NoticeAction::Revoke, reason)).await?.into_inner();
            (r.agreement, r.deliveries)
        }
        AgreementCmd::List { history } => {
            let req = pb::ListAgreementsRequest { include_history: history, page_size: 1000, ..Default::default() };
            let r = super::pages::all(req, |r| {
                let mut c = c.clone();
                async move { c.list_agreements(r).await }
            })
            .await?;
            if g.json {
                return print_json(&r);
            }
            let mut t = table(&["id", "v", "title", "parties", "state", "valid until", "missing signatures"]);
            for a in &r.agreements {
                let doc = a.agreement.clone().unwrap_or_default();
                t.add_row(vec![
                    doc.id,
                    doc.version.to_string(),
                    doc.title,
                    doc.parties.join(", "),
                    state_of(a),
                    ts(&doc.valid_until),
                    a.missing_signatures.join(", "),
                ]);
            }
            println!("{t}");
            return Ok(());
        }
    };
    let record = record.unwrap_or_default();
    if g.json {
        return print_json(&serde_json::json!({ "agreement": record, "deliveries": ds }));
    }
    print_agreement(&record);
    deliveries(&ds);
    Ok(())
}

pub(super) async fn audit(g: &Global, ch: Authed, cmd: AuditCmd) -> Result<(), CliError> {
    let mut c = pb::audit_service_client::AuditServiceClient::new(ch);
    match cmd {
        AuditCmd::List { after, limit, action } => {
            let r = c
                .list_audit_entries(pb::ListAuditEntriesRequest {
                    after_seq: after,
                    limit,
                    action_prefix: action,
                    ..Default::default()
                })
                .await?
                .into_inner();
            if g.json {
                return print_json(&r);
            }
            let mut t =
                table(&["seq", "time", "actor", "action", "record", "agreement", "purpose", "decision", "reason"]);
            for e in &r.entries {
                t.add_row(vec![
                    e.seq.to_string(),
                    ts(&e.time),
                    e.actor.clone(),
                    e.action.clone(),
                    e.record_id.clone(),
                    e.agreement_id.clone(),
                    e.purpose.clone(),
                    e.decision.clone(),
                    e.reason.clone(),
                ]);
            }
            println!("{t}");
        }
        AuditCmd::Verify => {
            let r = c.verify_audit(pb::VerifyAuditRequest {}).await?.into_inner();
            if g.json {
                print_json(&r)?;
            } else {
                if r.ok {
                    println!("audit log intact: {} entries, {} signed checkpoints", r.entries, r.checkpoints);
                    if r.witnessed_seq > 0 {
                        println!("witnessed up to entry {}", r.witnessed_seq);
                    }
                } else {
                    println!("AUDIT LOG TAMPERED: first bad entry {} — {}", r.first_bad_seq, r.problem);
                }
                print_witnesses(&r.witnesses);
            }
            if !r.ok {
                return Err(CliError::Msg(format!("audit verification failed at entry {}", r.first_bad_seq)));
            }
        }
        AuditCmd::Export { out } => {
            let mut sink: Box<dyn std::io::Write> = match &out {
                Some(p) => {
                    Box::new(std::fs::File::create(p).map_err(|e| CliError::Msg(format!("{}: {e}", p.display())))?)
                }
                None => Box::new(std::io::stdout().lock()),
            };
            let mut after = 0;
            loop {
                let r = c
                    .list_audit_entries(pb::ListAuditEntriesRequest {
                        after_seq: after,
                        limit: 1000,
                        action_prefix: String::new(),
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                for e in &r.entries {
                    let line = serde_json::to_string(e).map_err(|e| CliError::Msg(e.to_string()))?;
                    writeln!(sink, "{line}").map_err(|e| CliError::Msg(e.to_string()))?;
                }
                if r.entries.len() < 1000 {
                    break;
                }
                after = r.last_seq;
            }
        }
    }
    Ok(())
}

/// One line per witness answer (live, then the countersignature kept here).
fn print_witnesses(ws: &[pb::WitnessReport]) {
    if ws.is_empty() {
        return;
    }
    let mut t = table(&["witness", "source", "outcome", "entry", "witnessed at", "detail"]);
    for w in ws {
        let outcome = w.outcome();
        t.add_row(vec![
            w.witness.clone(),
            if w.stored { "kept here" } else { "asked now" }.to_string(),
            outcome.as_str_name().trim_start_matches("WITNESS_OUTCOME_").to_lowercase(),
            if w.seq == 0 { String::new() } else { w.seq.to_string() },
            ts(&w.witness_time),
            w.detail.clone(),
        ]);
    }
    println!("{t}");
}

pub(super) async fn policy(g: &Global, ch: Authed, a: PolicyCheck) -> Result<(), CliError> {
    let bad = |f: &str, v: &str| CliError::Msg(format!("--{f}: {v:?} is not valid"));
    let direction = match a.direction.as_str() {
        "outgoing" => pb::Direction::Outgoing,
        "incoming" => pb::Direction::Incoming,
        other => return Err(bad("direction", other)),
    };
    let time = match &a.at {
        Some(s) => Some(convert::timestamp(
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).map_err(|_| bad("at", s))?,
        )),
        None => None,
    };
    let req = pb::EvaluateExchangeRequest {
        peer: a.peer.clone(),
        direction: direction as i32,
        operation: convert::operation_from_word(&a.operation).ok_or_else(|| bad("operation", &a.operation))? as i32,
        kind: convert::kind_from_word(&a.kind).ok_or_else(|| bad("kind", &a.kind))? as i32,
        purpose: convert::purpose_from_word(&a.purpose).ok_or_else(|| bad("purpose", &a.purpose))? as i32,
        handling: convert::handling_from_word(&a.handling).ok_or_else(|| bad("handling", &a.handling))? as i32,
        time,
        victim_record_id: a.victim_record.clone().unwrap_or_default(),
        identity_requested: a.identity,
        return_step: a.return_step,
    };
    let r = pb::policy_service_client::PolicyServiceClient::new(ch).evaluate_exchange(req).await?.into_inner();
    if g.json {
        return print_json(&r);
    }
    if r.allowed {
        println!("ALLOWED under {} v{}", r.agreement_id, r.agreement_version);
        if r.redacted_fields.is_empty() {
            println!("  nothing redacted");
        } else {
            println!("  redacted: {}", r.redacted_fields.join(", "));
        }
    } else {
        println!("DENIED ({}): {}", r.denial_code, r.reason);
    }
    Ok(())
}
