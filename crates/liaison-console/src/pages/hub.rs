//! Hub: members and directory version, the regional report (tables and
//! bars, suppressed cells marked), compliance indicators per member and pair.

use std::sync::Arc;

use axum::extract::Query;
use axum::response::Response;
use liaison_node::api;
use liaison_node::pb::{self, hub_service_server::HubService};
use serde::Deserialize;
use serde_json::Value;

use super::req;
use crate::ctx::{page, Ctx, Problem};

pub(crate) struct Cell {
    pub label: String,
    /// None: suppressed (fewer than the threshold).
    pub value: Option<u64>,
    /// Bar width in percent of the largest cell.
    pub width: u64,
}

pub(crate) struct Table {
    pub caption: String,
    pub cells: Vec<Cell>,
}

pub(crate) struct Indicator {
    pub from: String,
    pub to: String,
    pub requests: u32,
    pub ack: String,
    pub answer: String,
    pub median_ack: String,
    pub median_answer: String,
}

#[derive(askama::Template)]
#[template(path = "hub.html")]
struct Hub {
    c: Ctx,
    title: String,
    nav: &'static str,
    members: Vec<(String, String, String, String)>,
    directory_version: u64,
    period: String,
    tables: Vec<Table>,
    countries: Vec<(String, Option<u64>)>,
    report_error: String,
    members_ind: Vec<Indicator>,
    pairs: Vec<Indicator>,
    error: String,
}

#[derive(Deserialize, Default)]
pub(crate) struct Period {
    #[serde(default)]
    period: String,
}

fn table(c: &Ctx, caption: &str, v: Option<&Value>) -> Table {
    let cells: Vec<(String, Option<u64>)> = v
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_u64())).collect())
        .unwrap_or_default();
    let max = cells.iter().filter_map(|(_, v)| *v).max().unwrap_or(0).max(1);
    Table {
        caption: c.t(caption),
        cells: cells
            .into_iter()
            .map(|(label, value)| Cell {
                width: value.map_or(0, |v| v.saturating_mul(100) / max),
                label: label.replace('_', " "),
                value,
            })
            .collect(),
    }
}

fn indicator(p: &pb::PairIndicator) -> Indicator {
    Indicator {
        from: p.from.clone(),
        to: p.to.clone(),
        requests: p.requests,
        ack: format!("{:.0} %", p.acknowledged_on_time * 100.0),
        answer: format!("{:.0} %", p.answered_on_time * 100.0),
        median_ack: format!("{:.1} h", p.median_ack_hours),
        median_answer: format!("{:.1} h", p.median_answer_hours),
    }
}

pub(crate) async fn show(c: Ctx, Query(q): Query<Period>) -> Response {
    let api = api::HubApi::new(Arc::clone(&c.node));
    let (members, directory_version, error) =
        match api.list_members(req(&c, pb::ListMembersRequest { page_size: 1000, ..Default::default() })).await {
            Ok(r) => {
                let r = r.into_inner();
                let m = r
                    .members
                    .iter()
                    .map(|m| (m.node_id.clone(), m.display_name.clone(), m.country.clone(), c.when(&m.admit_time)))
                    .collect();
                (m, r.directory_version, String::new())
            }
            Err(s) => (Vec::new(), 0, Problem::of(&c.tr, &s).message),
        };
    let period = if q.period.is_empty() { c.node.now().year().to_string() } else { q.period.clone() };
    let msg = pb::RegionalReportRequest { period: period.clone(), format: "json".into() };
    let (tables, countries, report_error) = match api.regional_report(req(&c, msg)).await {
        Ok(r) => {
            let v: Value = serde_json::from_str(&r.into_inner().content).unwrap_or(Value::Null);
            let region = v.get("region");
            let tables = vec![
                table(&c, "hub-by-exploitation", region.and_then(|r| r.get("by_exploitation"))),
                table(&c, "hub-by-sex", region.and_then(|r| r.get("by_sex"))),
                table(&c, "hub-by-age", region.and_then(|r| r.get("by_age_group"))),
                table(&c, "hub-by-nationality", region.and_then(|r| r.get("by_nationality"))),
            ];
            let countries = v
                .get("countries")
                .and_then(Value::as_object)
                .map(|m| m.iter().map(|(k, b)| (k.clone(), b.get("total").and_then(Value::as_u64))).collect())
                .unwrap_or_default();
            (tables, countries, String::new())
        }
        Err(s) => (Vec::new(), Vec::new(), Problem::of(&c.tr, &s).message),
    };
    let (members_ind, pairs) = match api.compliance_indicators(req(&c, pb::ComplianceIndicatorsRequest {})).await {
        Ok(r) => {
            let r = r.into_inner();
            (r.members.iter().map(indicator).collect(), r.pairs.iter().map(indicator).collect())
        }
        Err(_) => (Vec::new(), Vec::new()),
    };
    let title = c.t("hub-title");
    page(Hub {
        c,
        title,
        nav: "hub",
        members,
        directory_version,
        period,
        tables,
        countries,
        report_error,
        members_ind,
        pairs,
        error,
    })
}
