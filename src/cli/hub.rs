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
    /// On the hub: SOP-compliance indicators per member and per pair.
    Indicators,
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
            let r = c.list_members(pb::ListMembersRequest {}).await?.into_inner();
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
        }
    }
    Ok(())
}
