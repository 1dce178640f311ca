//! Agreements: their states, a readable view of each (parties, window,
//! grants as a table, SOP deadlines, retention), the difference between
//! versions, and sign, accept, suspend, resume, revoke (admins).

use std::sync::Arc;

use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use liaison_node::api;
use liaison_node::convert::ProtoEnum;
use liaison_node::pb::{self, agreement_service_server::AgreementService};
use serde::Deserialize;

use super::req;
use crate::ctx::{back, page, Ctx, Problem};

pub(crate) struct Row {
    pub href: String,
    pub id: String,
    pub version: u32,
    pub title: String,
    pub parties: String,
    pub state: String,
    pub until: String,
}

#[derive(askama::Template)]
#[template(path = "agreements.html")]
struct List {
    c: Ctx,
    title: String,
    nav: &'static str,
    rows: Vec<Row>,
    error: String,
}

async fn all(c: &Ctx, history: bool) -> Result<Vec<pb::AgreementRecord>, tonic::Status> {
    let msg = pb::ListAgreementsRequest { include_history: history, page_size: 1000, ..Default::default() };
    Ok(api::AgreementApi::new(Arc::clone(&c.node)).list_agreements(req(c, msg)).await?.into_inner().agreements)
}

pub(crate) async fn list(c: Ctx) -> Response {
    let (records, error) = match all(&c, true).await {
        Ok(a) => (a, String::new()),
        Err(s) => (Vec::new(), Problem::of(&c.tr, &s).message),
    };
    let rows = records
        .iter()
        .filter_map(|r| {
            let a = r.agreement.as_ref()?;
            Some(Row {
                href: format!("/agreements/{}?v={}", a.id, a.version),
                id: a.id.clone(),
                version: a.version,
                title: a.title.clone(),
                parties: a.parties.join(", "),
                state: c.word::<pb::AgreementState>(r.state),
                until: c.when(&a.valid_until),
            })
        })
        .collect();
    let title = c.t("agreements-title");
    page(List { c, title, nav: "agreements", rows, error })
}

pub(crate) struct GrantRow {
    pub from: String,
    pub to: String,
    pub kinds: String,
    pub purposes: String,
    pub operations: String,
    pub max_tlp: String,
    pub released: String,
    pub redacted: String,
    pub onward: String,
}

pub(crate) struct SopRow {
    pub name: String,
    pub what: String,
    /// Parties that answer this type; empty: any party.
    pub answered_by: String,
    pub ack: String,
    pub answer: String,
    pub urgent: String,
    pub escalation: String,
    pub source: String,
}

#[derive(askama::Template)]
#[template(path = "agreement.html")]
struct Show {
    c: Ctx,
    title: String,
    nav: &'static str,
    id: String,
    version: u32,
    state: String,
    legal_basis: String,
    parties: String,
    window: String,
    hub: String,
    grants: Vec<GrantRow>,
    sop: Vec<SopRow>,
    retention: String,
    signed_by: String,
    missing: String,
    versions: Vec<(u32, bool)>,
    diff: Vec<(String, String, String)>,
    against: u32,
}

fn words<E: ProtoEnum>(c: &Ctx, v: &[i32]) -> String {
    v.iter().map(|x| c.word::<E>(*x)).collect::<Vec<_>>().join(", ")
}

fn duration(c: &Ctx, secs: u64) -> String {
    if secs == 0 {
        return String::new();
    }
    if secs % 86_400 == 0 {
        c.t1("duration-days", "n", secs / 86_400)
    } else {
        c.t1("duration-hours", "n", secs.div_ceil(3600))
    }
}

fn grant_rows(c: &Ctx, a: &pb::Agreement) -> Vec<GrantRow> {
    a.grants
        .iter()
        .map(|g| GrantRow {
            from: g.from.clone(),
            to: g.to.clone(),
            kinds: words::<pb::RecordKind>(c, &g.record_kinds),
            purposes: words::<pb::Purpose>(c, &g.purposes),
            operations: words::<pb::Operation>(c, &g.operations),
            max_tlp: super::tlp(g.max_handling).0.to_string(),
            released: g.released_protected_fields.join(", "),
            redacted: g.redacted_fields.join(", "),
            onward: c.word::<pb::OnwardSharing>(g.onward_sharing),
        })
        .collect()
}

/// Lines of a readable agreement, for the difference between versions.
fn lines(c: &Ctx, a: &pb::Agreement) -> Vec<(String, String)> {
    let mut out = vec![
        (c.t("agreement-title-field"), a.title.clone()),
        (c.t("agreement-legal-basis"), a.legal_basis.clone()),
        (c.t("agreement-parties"), a.parties.join(", ")),
        (c.t("agreement-window"), format!("{} – {}", c.when(&a.valid_from), c.when(&a.valid_until))),
    ];
    for g in grant_rows(c, a) {
        out.push((
            format!("{} {} → {}", c.t("agreement-grant"), g.from, g.to),
            format!(
                "{} · {} · {} · {} · {} · {} · {}",
                g.kinds, g.purposes, g.operations, g.max_tlp, g.released, g.redacted, g.onward
            ),
        ));
    }
    if let Some(r) = &a.retention {
        out.push((c.t("agreement-retention"), c.t1("duration-days", "n", r.days)));
    }
    out
}

#[derive(Deserialize, Default)]
pub(crate) struct Which {
    #[serde(default)]
    v: u32,
    #[serde(default)]
    against: u32,
}

pub(crate) async fn show(c: Ctx, Path(id): Path<String>, Query(w): Query<Which>) -> Response {
    let api = api::AgreementApi::new(Arc::clone(&c.node));
    let got = match api.get_agreement(req(&c, pb::GetAgreementRequest { id: id.clone(), version: w.v })).await {
        Ok(r) => r.into_inner().agreement.unwrap_or_default(),
        Err(s) => return back(&c, "/agreements", &s),
    };
    let a = got.agreement.clone().unwrap_or_default();
    let mut versions: Vec<u32> = all(&c, true)
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(|r| r.agreement.as_ref().filter(|x| x.id == id).map(|x| x.version))
        .collect();
    versions.sort_unstable();
    versions.dedup();
    let mut diff = Vec::new();
    if w.against != 0 && w.against != a.version {
        if let Ok(r) = api.get_agreement(req(&c, pb::GetAgreementRequest { id: id.clone(), version: w.against })).await
        {
            let old = r.into_inner().agreement.and_then(|r| r.agreement).unwrap_or_default();
            let (before, after) = (lines(&c, &old), lines(&c, &a));
            for (k, v) in &after {
                let was = before.iter().find(|(bk, _)| bk == k).map(|(_, bv)| bv.clone()).unwrap_or_default();
                if was != *v {
                    diff.push((k.clone(), was, v.clone()));
                }
            }
            for (k, v) in &before {
                if !after.iter().any(|(ak, _)| ak == k) {
                    diff.push((k.clone(), v.clone(), String::new()));
                }
            }
        }
    }
    let sop = a
        .sop
        .as_ref()
        .map(|s| {
            s.request_types
                .iter()
                .map(|t| SopRow {
                    name: t.name.clone(),
                    what: liaison_node::agreement::request_type_title(t),
                    answered_by: if t.answered_by.is_empty() { c.t("sop-any-party") } else { t.answered_by.join(", ") },
                    ack: duration(&c, t.ack_within_seconds),
                    answer: duration(&c, t.answer_within_seconds),
                    urgent: format!(
                        "{} / {}",
                        duration(&c, t.urgent_ack_within_seconds),
                        duration(&c, t.urgent_answer_within_seconds)
                    ),
                    escalation: c.word::<pb::ContactRole>(t.escalation_role),
                    source: t.source.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    let retention = a
        .retention
        .as_ref()
        .map(|r| {
            let mut s = c.t1("duration-days", "n", r.days);
            if r.purge_on_revoke {
                s.push_str(" · ");
                s.push_str(&c.t("agreement-purge-on-revoke"));
            }
            s
        })
        .unwrap_or_default();
    let grants = grant_rows(&c, &a);
    let title = a.title.clone();
    page(Show {
        title,
        nav: "agreements",
        id: a.id.clone(),
        version: a.version,
        state: c.word::<pb::AgreementState>(got.state),
        legal_basis: a.legal_basis.clone(),
        parties: a.parties.join(", "),
        window: format!("{} – {}", c.when(&a.valid_from), c.when(&a.valid_until)),
        hub: a.hub.clone(),
        grants,
        sop,
        retention,
        signed_by: got.signed_by.join(", "),
        missing: got.missing_signatures.join(", "),
        versions: versions.into_iter().map(|v| (v, v == a.version)).collect(),
        diff,
        against: w.against,
        c,
    })
}

#[derive(Deserialize)]
pub(crate) struct ActForm {
    action: String,
    #[serde(default)]
    version: u32,
    #[serde(default)]
    reason: String,
}

pub(crate) async fn act(c: Ctx, Path(id): Path<String>, Form(f): Form<ActForm>) -> Response {
    let to = format!("/agreements/{id}?v={}", f.version);
    let api = api::AgreementApi::new(Arc::clone(&c.node));
    let (id2, v) = (id.clone(), f.version);
    let r = match f.action.as_str() {
        "sign" => api.sign_agreement(req(&c, pb::SignAgreementRequest { id: id2, version: v })).await.map(|_| ()),
        "accept" => api.accept_agreement(req(&c, pb::AcceptAgreementRequest { id: id2, version: v })).await.map(|_| ()),
        "propose" => {
            api.propose_agreement(req(&c, pb::ProposeAgreementRequest { id: id2, version: v })).await.map(|_| ())
        }
        notice => {
            let action = pb::NoticeAction::from_word(notice).map_or(0, |a| a as i32);
            let msg = pb::IssueAgreementNoticeRequest { id: id2, version: v, action, reason: f.reason.clone() };
            api.issue_agreement_notice(req(&c, msg)).await.map(|_| ())
        }
    };
    match r {
        Ok(()) => {
            c.flash(c.t("agreement-done"));
            Redirect::to(&to).into_response()
        }
        Err(s) => back(&c, &to, &s),
    }
}
