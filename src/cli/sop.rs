//! CLI for SOP requests and victim cases.

use crate::convert::ProtoEnum;
use std::path::PathBuf;

use clap::Subcommand;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};

use super::client::Authed;
use super::exchange::purpose;
use super::output::print_json;
use super::{CliError, Global};
use crate::convert::{self};
use crate::pb;

#[derive(Subcommand, Debug)]
pub enum RequestCmd {
    /// Send a formal request under an agreement's SOP.
    Send {
        #[arg(long)]
        to: String,
        /// information_request, intelligence_request, contact_verification,
        /// mutual_legal_assistance, victim_identification, victim_return
        #[arg(long = "type")]
        request_type: String,
        #[arg(long)]
        purpose: String,
        #[arg(long)]
        urgent: bool,
        #[arg(long)]
        subject: String,
        #[arg(long)]
        body_file: Option<PathBuf>,
        /// A record id or hit reference the request refers to (repeatable).
        #[arg(long = "ref")]
        refs: Vec<String>,
        #[arg(long)]
        agreement: Option<String>,
    },
    Ack {
        id: String,
    },
    Answer {
        id: String,
        #[arg(long, default_value = "")]
        text: String,
        /// Records to send with the answer (they travel as shares).
        #[arg(long = "attach")]
        attach: Vec<String>,
    },
    Decline {
        id: String,
        #[arg(long)]
        reason: String,
    },
    Withdraw {
        id: String,
    },
    Show {
        id: String,
    },
    List {
        #[arg(long)]
        overdue: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum CaseCmd {
    /// Open a victim case on a referral, with the person's country of origin.
    Open {
        referral: String,
        #[arg(long)]
        with: String,
        /// Transit countries' nodes on the way back, in order (repeat or comma-separate).
        #[arg(long, value_delimiter = ',')]
        transit: Vec<String>,
    },
    /// Move to the next stage: identification_confirmed, assistance, then return_planned
    /// (→ in_transit per transit node → returned → reintegration_follow_up), residence_permit,
    /// asylum_referral or service_referral
    Advance {
        id: String,
        #[arg(long)]
        to: String,
        #[arg(long, default_value = "")]
        note: String,
    },
    Show {
        id: String,
    },
    List,
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(header.iter().copied());
    t
}

fn ts(t: &Option<pbjson_types::Timestamp>) -> String {
    t.as_ref()
        .and_then(convert::from_timestamp)
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

fn state(r: &pb::Request) -> String {
    let s = pb::RequestState::word_of(r.state);
    if r.overdue {
        format!("{s} (OVERDUE)")
    } else {
        s
    }
}

pub(super) fn requests_table(rs: &[pb::Request]) {
    let mut t = table(&["id", "type", "from", "to", "subject", "state", "ack due", "answer due", "escalated to"]);
    for r in rs {
        let h = r.header.clone().unwrap_or_default();
        let esc = r
            .escalations
            .iter()
            .map(|e| {
                format!(
                    "{} ({})",
                    if e.contact_name.is_empty() { pb::ContactRole::word_of(e.role) } else { e.contact_name.clone() },
                    e.deadline
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let urgent = if h.priority == pb::Priority::Urgent as i32 { " [urgent]" } else { "" };
        t.add_row(vec![
            r.id.clone(),
            format!("{}{urgent}", h.request_type),
            h.from_node,
            h.to_node,
            h.subject,
            state(r),
            ts(&r.ack_due),
            ts(&r.answer_due),
            esc,
        ]);
    }
    println!("{t}");
}

fn show(r: &pb::Request) {
    let h = r.header.clone().unwrap_or_default();
    println!(
        "{} — {} from {} to {} under {} v{}",
        r.id, h.request_type, h.from_node, h.to_node, h.agreement_id, h.agreement_version
    );
    println!("subject: {}   purpose: {}   state: {}", h.subject, pb::Purpose::word_of(h.purpose), state(r));
    println!("acknowledge by {}; answer by {}", ts(&r.ack_due), ts(&r.answer_due));
    for e in &r.escalations {
        let role = pb::ContactRole::word_of(e.role);
        println!(
            "ESCALATED ({} deadline) to {role} {} {} at {}",
            e.deadline,
            e.contact_name,
            e.contact_record_id,
            ts(&e.time)
        );
    }
    let mut t = table(&["time", "node", "seq", "step", "text"]);
    for e in &r.timeline {
        t.add_row(vec![
            ts(&e.time),
            e.actor.clone(),
            e.seq.to_string(),
            pb::Transition::word_of(e.transition),
            e.text.clone(),
        ]);
    }
    println!("{t}");
}

pub(super) async fn inbox(g: &Global, ch: Authed, overdue: bool) -> Result<(), CliError> {
    let req = pb::ListRequestsRequest {
        r#box: pb::RequestBox::Inbox as i32,
        overdue_only: overdue,
        page_size: 1000,
        ..Default::default()
    };
    let r = every_request(pb::request_service_client::RequestServiceClient::new(ch), req).await?;
    if g.json {
        return print_json(&r);
    }
    requests_table(&r.requests);
    Ok(())
}

/// Requests this node sent (for `liaison outbox`).
pub(super) async fn sent(ch: Authed) -> Result<Vec<pb::Request>, CliError> {
    let req = pb::ListRequestsRequest {
        r#box: pb::RequestBox::Outbox as i32,
        overdue_only: false,
        page_size: 1000,
        ..Default::default()
    };
    Ok(every_request(pb::request_service_client::RequestServiceClient::new(ch), req).await?.requests)
}

/// Every page of a request listing.
async fn every_request(
    c: pb::request_service_client::RequestServiceClient<Authed>,
    req: pb::ListRequestsRequest,
) -> Result<pb::ListRequestsResponse, CliError> {
    Ok(super::pages::all(req, |r| {
        let mut c = c.clone();
        async move { c.list_requests(r).await }
    })
    .await?)
}

pub(super) async fn request(g: &Global, ch: Authed, cmd: RequestCmd) -> Result<(), CliError> {
    let mut c = pb::request_service_client::RequestServiceClient::new(ch);
    let step = |id: String, t: pb::Transition, text: String, attach: Vec<String>| pb::TransitionRequestRequest {
        id,
        transition: t as i32,
        text,
        attach_record_ids: attach,
        ..Default::default()
    };
    let r = match cmd {
        RequestCmd::Send { to, request_type, purpose: p, urgent, subject, body_file, refs, agreement } => {
            let body = match body_file {
                Some(f) => std::fs::read_to_string(&f)
                    .map_err(|e| CliError::Msg(format!("--body-file {}: {e}", f.display())))?,
                None => String::new(),
            };
            let req = pb::SendRequestRequest {
                to,
                request_type,
                purpose: purpose(&p)? as i32,
                urgent,
                subject,
                body,
                refs,
                agreement_id: agreement.unwrap_or_default(),
                ..Default::default()
            };
            c.send_request(req).await?.into_inner().request
        }
        RequestCmd::Ack { id } => {
            c.transition_request(step(id, pb::Transition::Acknowledge, String::new(), vec![]))
                .await?
                .into_inner()
                .request
        }
        RequestCmd::Answer { id, text, attach } => {
            c.transition_request(step(id, pb::Transition::Answer, text, attach)).await?.into_inner().request
        }
        RequestCmd::Decline { id, reason } => {
            c.transition_request(step(id, pb::Transition::Decline, reason, vec![])).await?.into_inner().request
        }
        RequestCmd::Withdraw { id } => {
            c.transition_request(step(id, pb::Transition::Withdraw, String::new(), vec![])).await?.into_inner().request
        }
        RequestCmd::Show { id } => c.get_request(pb::GetRequestRequest { id }).await?.into_inner().request,
        RequestCmd::List { overdue } => {
            let mut all = Vec::new();
            for b in [pb::RequestBox::Inbox, pb::RequestBox::Outbox] {
                let req = pb::ListRequestsRequest {
                    r#box: b as i32,
                    overdue_only: overdue,
                    page_size: 1000,
                    ..Default::default()
                };
                all.extend(every_request(c.clone(), req).await?.requests);
            }
            if g.json {
                return print_json(&pb::ListRequestsResponse { requests: all, ..Default::default() });
            }
            requests_table(&all);
            return Ok(());
        }
    };
    let r = r.unwrap_or_default();
    if g.json {
        return print_json(&r);
    }
    show(&r);
    Ok(())
}

fn stage(s: &str) -> Result<pb::CaseStage, CliError> {
    pb::CaseStage::from_str_name(&format!("CASE_STAGE_{}", s.trim().to_uppercase().replace('-', "_")))
        .filter(|x| *x != pb::CaseStage::Unspecified)
        .ok_or_else(|| CliError::Msg(format!("--to: {s:?} is not one of identification_confirmed, assistance, return_planned, returned, reintegration_follow_up")))
}

fn print_case(c: &pb::VictimCase, gates: &[pb::GateStatus]) {
    let st = pb::CaseStage::word_of(c.stage);
    println!("{} — referral {} — {} ⇄ {} — stage: {st}", c.id, c.referral_record_id, c.sending_node, c.receiving_node);
    let mut t = table(&["time", "node", "step", "note"]);
    for e in &c.history {
        let to = pb::CaseStage::word_of(e.to);
        t.add_row(vec![ts(&e.time), e.actor.clone(), to, e.note.clone()]);
    }
    println!("{t}");
    if !gates.is_empty() {
        println!("safeguards for the next step:");
        for g in gates {
            println!("  [{}] {} — {}", if g.met { "x" } else { " " }, g.safeguard, g.detail);
        }
    }
}

pub(super) async fn case(g: &Global, ch: Authed, cmd: CaseCmd) -> Result<(), CliError> {
    let mut c = pb::victim_case_service_client::VictimCaseServiceClient::new(ch);
    let (case, gates) = match cmd {
        CaseCmd::Open { referral, with, transit } => (
            c.open_case(pb::OpenCaseRequest {
                referral_record_id: referral,
                receiving_node: with,
                transit_nodes: transit,
                ..Default::default()
            })
            .await?
            .into_inner()
            .case,
            vec![],
        ),
        CaseCmd::Advance { id, to, note } => (
            c.advance_case(pb::AdvanceCaseRequest { id, to: stage(&to)? as i32, note, ..Default::default() })
                .await?
                .into_inner()
                .case,
            vec![],
        ),
        CaseCmd::Show { id } => {
            let r = c.get_case(pb::GetCaseRequest { id }).await?.into_inner();
            (r.case, r.gates)
        }
        CaseCmd::List => {
            let r = super::pages::all(pb::ListCasesRequest { page_size: 1000, ..Default::default() }, |r| {
                let mut c = c.clone();
                async move { c.list_cases(r).await }
            })
            .await?;
            if g.json {
                return print_json(&r);
            }
            for k in &r.cases {
                print_case(k, &[]);
            }
            return Ok(());
        }
    };
    let case = case.unwrap_or_default();
    if g.json {
        return print_json(&serde_json::json!({ "case": case, "gates": gates }));
    }
    print_case(&case, &gates);
    Ok(())
}
