//! Victim cases: the stages as a stepper, the safeguards for the next step
//! (met, or missing and why), advance with a note, the shared history.

use std::sync::Arc;

use axum::extract::Path;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use liaison_node::api;
use liaison_node::pb::{self, victim_case_service_server::VictimCaseService};
use serde::Deserialize;

use super::req;
use crate::ctx::{back, page, Ctx, Problem};

pub(crate) struct CaseRow {
    pub href: String,
    pub id: String,
    pub referral: String,
    pub parties: String,
    pub stage: String,
}

#[derive(askama::Template)]
#[template(path = "cases.html")]
struct List {
    c: Ctx,
    title: String,
    nav: &'static str,
    rows: Vec<CaseRow>,
    error: String,
}

pub(crate) async fn list(c: Ctx) -> Response {
    let (cases, error) = match api::CaseApi::new(Arc::clone(&c.node))
        .list_cases(req(&c, pb::ListCasesRequest { page_size: 1000, ..Default::default() }))
        .await
    {
        Ok(r) => (r.into_inner().cases, String::new()),
        Err(s) => (Vec::new(), Problem::of(&c.tr, &s).message),
    };
    let rows = cases
        .iter()
        .map(|k| CaseRow {
            href: format!("/cases/{}", k.id),
            id: k.id.clone(),
            referral: k.referral_record_id.clone(),
            parties: format!("{} → {}", k.sending_node, k.receiving_node),
            stage: c.word::<pb::CaseStage>(k.stage),
        })
        .collect();
    let title = c.t("cases-title");
    page(List { c, title, nav: "cases", rows, error })
}

pub(crate) struct StageView {
    pub label: String,
    /// `done`, `current` or `todo`.
    pub state: &'static str,
}

pub(crate) struct Gate {
    pub safeguard: String,
    pub met: bool,
    pub detail: String,
}

pub(crate) struct Event {
    pub from: String,
    pub to: String,
    pub actor: String,
    pub when: String,
    pub note: String,
}

#[derive(askama::Template)]
#[template(path = "case.html")]
struct Show {
    c: Ctx,
    title: String,
    nav: &'static str,
    id: String,
    referral_href: String,
    stages: Vec<StageView>,
    next: Option<(i32, String)>,
    gates: Vec<Gate>,
    blocked: bool,
    history: Vec<Event>,
}

pub(crate) async fn show(c: Ctx, Path(id): Path<String>) -> Response {
    let got =
        match api::CaseApi::new(Arc::clone(&c.node)).get_case(req(&c, pb::GetCaseRequest { id: id.clone() })).await {
            Ok(r) => r.into_inner(),
            Err(s) => return back(&c, "/cases", &s),
        };
    let case = got.case.unwrap_or_default();
    let stages = (1..=6)
        .map(|s| StageView {
            label: c.word::<pb::CaseStage>(s),
            state: if s < case.stage {
                "done"
            } else if s == case.stage {
                "current"
            } else {
                "todo"
            },
        })
        .collect();
    let next = (case.stage < pb::CaseStage::ReintegrationFollowUp as i32)
        .then(|| case.stage.saturating_add(1))
        .map(|n| (n, c.word::<pb::CaseStage>(n)));
    let gates: Vec<Gate> = got
        .gates
        .iter()
        .map(|g| Gate { safeguard: c.tr.word("safeguard", &g.safeguard), met: g.met, detail: g.detail.clone() })
        .collect();
    let blocked = gates.iter().any(|g| !g.met);
    let history = case
        .history
        .iter()
        .map(|e| Event {
            from: c.word::<pb::CaseStage>(e.from),
            to: c.word::<pb::CaseStage>(e.to),
            actor: e.actor.clone(),
            when: c.when(&e.time),
            note: e.note.clone(),
        })
        .collect();
    let title = c.t1("case-title", "id", &case.id);
    page(Show {
        title,
        nav: "cases",
        id: case.id.clone(),
        referral_href: super::record_href(&case.referral_record_id),
        stages,
        next,
        gates,
        blocked,
        history,
        c,
    })
}

#[derive(Deserialize)]
pub(crate) struct AdvanceForm {
    #[serde(default)]
    to: i32,
    #[serde(default)]
    note: String,
}

pub(crate) async fn advance(c: Ctx, Path(id): Path<String>, Form(f): Form<AdvanceForm>) -> Response {
    let to = format!("/cases/{id}");
    let msg = pb::AdvanceCaseRequest { id: id.clone(), to: f.to, note: f.note, ..Default::default() };
    match api::CaseApi::new(Arc::clone(&c.node)).advance_case(req(&c, msg)).await {
        Ok(_) => {
            c.flash(c.t1("case-advanced", "stage", c.word::<pb::CaseStage>(f.to)));
            Redirect::to(&to).into_response()
        }
        Err(s) => back(&c, &to, &s),
    }
}
