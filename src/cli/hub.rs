//! CLI for hubs and their members.

use std::path::PathBuf;

use clap::Subcommand;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};

use super::client::{parse_card, Authed};
use super::output::print_json;
use super::{CliError, Global};
use crate::pb;

#[derive(Subcommand, Debug)]
pub enum HubCmd {
    /// On the hub: admit a member (verify and pin its card; publish the directory).
    Admit {
        card: PathBuf,
    },
    Members,
    /// On the hub: remove a member; members un-pin it from the next directory.
    Remove {
        id: String,
    },
    /// On a member: pin the hub and every member of its signed directory.
    Join {
        hub_card: PathBuf,
    },
    /// On a member: fetch the hub's directory now.
    Refresh,
    /// On the hub: the regional statistics report.
    Report {
        /// "2025" or "2025-01-01..2025-06-30"
        #[arg(long)]
        period: String,
        #[arg(long, default_value = "md", value_parser = ["md", "csv", "json", "html"])]
        format: String,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// On the hub: SOP-compliance indicators per member and per pair, and
    /// the members' reporting duties for the last period that fell due.
    Indicators,
    /// On the hub: where each member stands with its reporting duties
    /// (on time, late, missing, reminder, due).
    Reporting {
        /// "2025" or a range; default: each duty's last ended period
        #[arg(long, default_value = "")]
        period: String,
    },
    /// On a regional hub: send its published (suppressed) figures for a
    /// period up to a hub it joined.
    SendAggregate {
        #[arg(long)]
        to: String,
        #[arg(long)]
        period: String,
    },
}

fn duties_table(rows: &[pb::ReportingStatus]) -> Table {
    let mut t = table(&["member", "duty", "period", "due", "state", "received", "agreement"]);
    for s in rows {
        let d = crate::hub::report::DutyRow::of(s);
        let received = if d.received.is_empty() { "—".to_string() } else { d.received };
        t.add_row(vec![d.member, d.duty, d.period, d.due, d.state, received, s.agreement_id.clone()]);
    }
    t
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(header.iter().copied());
    t
}

pub(super) async fn hub(g: &Global, ch: Authed, cmd: HubCmd) -> Result<(), CliError> {
    let mut c = pb::hub_service_client::HubServiceClient::new(ch);
    match cmd {
        HubCmd::Admit { card } => {
            let r = c.admit_member(pb::AdmitMemberRequest { card: Some(parse_card(&card)?) }).await?.into_inner();
            if g.json {
                return print_json(&r);
            }
            println!("member admitted; directory version {}", r.directory_version);
        }
        HubCmd::Members => {
            let r = super::pages::all(pb::ListMembersRequest { page_size: 1000, ..Default::default() }, |r| {
                let mut c = c.clone();
                async move { c.list_members(r).await }
            })
            .await?;
            if g.json {
                return print_json(&r);
            }
            let mut t = table(&["member", "name", "country"]);
            for m in &r.members {
                t.add_row(vec![m.node_id.clone(), m.display_name.clone(), m.country.clone()]);
            }
            println!("{t}");
            println!("directory version {}", r.directory_version);
        }
        HubCmd::Remove { id } => {
            let r = c.remove_member(pb::RemoveMemberRequest { node_id: id.clone() }).await?.into_inner();
            if g.json {
                return print_json(&r);
            }
            println!("{id} removed; directory version {}", r.directory_version);
        }
        HubCmd::Join { hub_card } => {
            let r = c.join_hub(pb::JoinHubRequest { hub_card: Some(parse_card(&hub_card)?) }).await?.into_inner();
            if g.json {
                return print_json(&r);
            }
            println!(
                "joined; directory version {}; pinned {}",
                r.directory_version,
                if r.pinned.is_empty() { "none".into() } else { r.pinned.join(", ") }
            );
        }
        HubCmd::Refresh => {
            let r = c.refresh_directory(pb::RefreshDirectoryRequest {}).await?.into_inner();
            if g.json {
                return print_json(&r);
            }
            println!(
                "directory version {}; pinned [{}]; un-pinned [{}]",
                r.directory_version,
                r.pinned.join(", "),
                r.unpinned.join(", ")
            );
        }
        HubCmd::Report { period, format, out } => {
            let r = c.regional_report(pb::RegionalReportRequest { period, format }).await?.into_inner();
            match out {
                Some(p) => {
                    std::fs::write(&p, &r.content).map_err(|e| CliError::Msg(format!("{}: {e}", p.display())))?
                }
                None => println!("{}", r.content),
            }
        }
        HubCmd::Indicators => {
            let r = c.compliance_indicators(pb::ComplianceIndicatorsRequest {}).await?.into_inner();
            if g.json {
                return print_json(&r);
            }
            for (title, rows) in [("per member (as the node asked)", &r.members), ("per pair", &r.pairs)] {
                println!("{title}");
                let mut t = table(&[
                    "from",
                    "to",
                    "requests",
                    "ack on time",
                    "answered on time",
                    "median ack h",
                    "median answer h",
                ]);
                for p in rows {
                    t.add_row(vec![
                        p.from.clone(),
                        p.to.clone(),
                        p.requests.to_string(),
                        format!("{:.0}%", p.acknowledged_on_time * 100.0),
                        format!("{:.0}%", p.answered_on_time * 100.0),
                        format!("{:.1}", p.median_ack_hours),
                        format!("{:.1}", p.median_answer_hours),
                    ]);
                }
                println!("{t}");
            }
            if !r.reporting.is_empty() {
                println!("reporting duties");
                println!("{}", duties_table(&r.reporting));
            }
        }
        HubCmd::Reporting { period } => {
            let r = c.reporting_statuses(pb::ReportingStatusesRequest { period }).await?.into_inner();
            if g.json {
                return print_json(&r);
            }
            if r.statuses.is_empty() {
                println!("no reporting duties towards this hub in its active agreements");
            } else {
                println!("{}", duties_table(&r.statuses));
            }
        }
        HubCmd::SendAggregate { to, period } => {
            let r = c.send_aggregate(pb::SendAggregateRequest { to: to.clone(), period }).await?.into_inner();
            println!("{} queued for {to} (small figures already hidden)", r.record_id);
        }
    }
    Ok(())
}
