//! One record: TLP banner, masked identity ("show identity" asks for a
//! reason and is audited), provenance, who viewed it, share with a policy
//! preview, withdraw; create and edit forms; bulk import.

use std::sync::Arc;

use axum::extract::{Multipart, Path, Query};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use liaison_node::api;
use liaison_node::convert::ProtoEnum;
use liaison_node::pb::{self, exchange_service_server::ExchangeService, record_service_server::RecordService};
use serde::Deserialize;

use super::{choices, req};
use crate::ctx::{back, page, Ctx, Problem};
use crate::forms::{self, FieldView};

pub(crate) struct ViewRow {
    pub actor: String,
    pub when: String,
    pub reason: String,
}

/// The outcome of a share preview, as the page shows it.
pub(crate) struct Preview {
    pub allowed: bool,
    pub peer: String,
    pub purpose: i32,
    pub purpose_word: String,
    pub agreement: String,
    pub redacted: Vec<String>,
    pub reason: String,
}

#[derive(askama::Template)]
#[template(path = "record.html")]
struct Show {
    c: Ctx,
    title: String,
    nav: &'static str,
    key: String,
    href: String,
    kind: String,
    tlp: (&'static str, &'static str),
    version: u64,
    own: bool,
    withdrawn: bool,
    revealed: bool,
    protected: bool,
    masked_fields: Vec<String>,
    fields: Vec<FieldView>,
    provenance: Vec<(String, String)>,
    views: Vec<ViewRow>,
    receipts: Vec<super::requests::ReceiptView>,
    peers: Vec<(String, bool)>,
    purposes: Vec<(i32, String, bool)>,
    preview: Option<Preview>,
    reason_error: String,
}

fn key(origin: &str, id: &str) -> String {
    format!("{origin}/{id}")
}

async fn get(c: &Ctx, key: &str, reveal: Option<String>) -> Result<pb::GetRecordResponse, tonic::Status> {
    let msg =
        pb::GetRecordRequest { id: key.to_string(), masked: reveal.is_none(), reason: reveal.unwrap_or_default() };
    Ok(api::RecordApi::new(Arc::clone(&c.node)).get_record(req(c, msg)).await?.into_inner())
}

/// The record with its identity masked (nothing audited).
async fn render(c: Ctx, key: String, preview: Option<Preview>, reason_error: String) -> Response {
    let got = match get(&c, &key, None).await {
        Ok(g) => g,
        Err(s) => return back(&c, "/search", &s),
    };
    show_got(c, key, got, false, preview, reason_error)
}

fn show_got(
    c: Ctx,
    key: String,
    got: pb::GetRecordResponse,
    revealed: bool,
    preview: Option<Preview>,
    reason_error: String,
) -> Response {
    let rec = got.record.unwrap_or_default();
    let kind = super::kind_of(&rec);
    let fields: Vec<FieldView> = forms::views(&c.tr, kind, &rec, &Problem::default())
        .into_iter()
        .filter(|f| !f.value.is_empty() || f.checked || f.options.iter().any(|o| o.2 && !o.0.is_empty()))
        .collect();
    let masked_fields = if revealed { Vec::new() } else { rec.redacted_fields.clone() };
    let protected = rec.body.as_ref().is_some_and(|b| matches!(b, pb::record::Body::VictimReferral(_)));
    let provenance = got
        .provenance
        .map(|p| {
            vec![
                (c.t("provenance-from"), p.received_from.clone()),
                (c.t("provenance-agreement"), format!("{} v{}", p.agreement_id, p.agreement_version)),
                (c.t("provenance-purpose"), c.word::<pb::Purpose>(p.purpose)),
                (c.t("provenance-received"), c.when(&p.receive_time)),
                (c.t("provenance-purge"), c.when(&p.retain_until)),
                (c.t("provenance-onward"), c.word::<pb::OnwardSharing>(p.onward_sharing)),
            ]
        })
        .unwrap_or_default();
    let views = got
        .views
        .iter()
        .map(|v| ViewRow { actor: v.actor.clone(), when: c.when(&v.time), reason: v.reason.clone() })
        .collect();
    let receipts = super::requests::receipts(&c, &key);
    let chosen = preview.as_ref().map(|p| p.peer.clone()).unwrap_or_default();
    let peers = liaison_node::exchange::peer_ids(&c.node)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| *p != rec.originator)
        .map(|p| (p.clone(), p == chosen))
        .collect();
    let purpose = preview.as_ref().map_or(pb::Purpose::Investigation as i32, |p| p.purpose);
    let purposes = choices::<pb::Purpose>(&c, purpose);
    let title = format!("{} · {}", c.word::<pb::RecordKind>(kind as i32), super::title_of(&rec));
    page(Show {
        title,
        nav: "search",
        href: super::record_href(&key),
        kind: c.word::<pb::RecordKind>(kind as i32),
        tlp: super::tlp(rec.handling),
        version: rec.version,
        own: rec.originator == c.node_id,
        withdrawn: rec.withdrawn,
        revealed,
        protected,
        masked_fields,
        fields,
        provenance,
        views,
        receipts,
        peers,
        purposes,
        preview,
        reason_error,
        key,
        c,
    })
}

pub(crate) async fn show(c: Ctx, Path((origin, id)): Path<(String, String)>) -> Response {
    render(c, key(&origin, &id), None, String::new()).await
}

#[derive(Deserialize)]
pub(crate) struct RevealForm {
    #[serde(default)]
    reason: String,
}

pub(crate) async fn reveal(c: Ctx, Path((origin, id)): Path<(String, String)>, Form(f): Form<RevealForm>) -> Response {
    let k = key(&origin, &id);
    let reason = f.reason.trim().to_string();
    if reason.is_empty() {
        let e = c.t("reveal-reason-required");
        return render(c, k, None, e).await;
    }
    match get(&c, &k, Some(reason)).await {
        Ok(got) => show_got(c, k, got, true, None, String::new()),
        Err(s) => {
            let e = Problem::of(&c.tr, &s).message;
            render(c, k, None, e).await
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct ShareForm {
    #[serde(default)]
    peer: String,
    #[serde(default)]
    purpose: i32,
}

async fn share_call(
    c: &Ctx,
    k: &str,
    f: &ShareForm,
    validate_only: bool,
) -> Result<pb::ShareRecordResponse, tonic::Status> {
    let msg = pb::ShareRecordRequest {
        record_id: k.to_string(),
        peer: f.peer.clone(),
        purpose: f.purpose,
        validate_only,
        ..Default::default()
    };
    Ok(api::ExchangeApi::new(Arc::clone(&c.node)).share_record(req(c, msg)).await?.into_inner())
}

/// The policy engine's answer before anything is sent: allowed or refused
/// and why, what would be redacted, who receives it.
pub(crate) async fn preview(c: Ctx, Path((origin, id)): Path<(String, String)>, Form(f): Form<ShareForm>) -> Response {
    let k = key(&origin, &id);
    let p = match share_call(&c, &k, &f, true).await {
        Ok(r) => Preview {
            allowed: true,
            peer: f.peer.clone(),
            purpose: f.purpose,
            purpose_word: c.word::<pb::Purpose>(f.purpose),
            agreement: r.agreement_id,
            redacted: r.redacted_fields,
            reason: String::new(),
        },
        Err(s) => Preview {
            allowed: false,
            peer: f.peer.clone(),
            purpose: f.purpose,
            purpose_word: c.word::<pb::Purpose>(f.purpose),
            agreement: String::new(),
            redacted: Vec::new(),
            reason: Problem::of(&c.tr, &s).message,
        },
    };
    render(c, k, Some(p), String::new()).await
}

pub(crate) async fn share(c: Ctx, Path((origin, id)): Path<(String, String)>, Form(f): Form<ShareForm>) -> Response {
    let k = key(&origin, &id);
    let to = super::record_href(&k);
    match share_call(&c, &k, &f, false).await {
        Ok(_) => {
            c.flash(c.t1("share-queued", "peer", &f.peer));
            Redirect::to(&to).into_response()
        }
        Err(s) => back(&c, &to, &s),
    }
}

#[derive(Deserialize)]
pub(crate) struct WithdrawForm {
    #[serde(default)]
    version: u64,
}

pub(crate) async fn withdraw(
    c: Ctx,
    Path((origin, id)): Path<(String, String)>,
    Form(f): Form<WithdrawForm>,
) -> Response {
    let k = key(&origin, &id);
    let to = super::record_href(&k);
    let msg = pb::WithdrawRecordRequest { id: k.clone(), expected_version: f.version, ..Default::default() };
    match api::RecordApi::new(Arc::clone(&c.node)).withdraw_record(req(&c, msg)).await {
        Ok(_) => {
            c.flash(c.t("record-withdrawn"));
            Redirect::to(&to).into_response()
        }
        Err(s) => back(&c, &to, &s),
    }
}

#[derive(askama::Template)]
#[template(path = "record_form.html")]
struct Edit {
    c: Ctx,
    title: String,
    nav: &'static str,
    action: String,
    kind: i32,
    kinds: Vec<(i32, String, bool)>,
    id: String,
    version: u64,
    handling: Vec<(i32, String, bool)>,
    fields: Vec<FieldView>,
    problem: Problem,
}

fn handling_choices(current: i32) -> Vec<(i32, String, bool)> {
    (1..=5)
        .filter_map(pb::HandlingCode::of)
        .map(|h| (h as i32, super::tlp(h as i32).0.to_string(), h as i32 == current))
        .collect()
}

fn form_page(
    c: Ctx,
    action: String,
    kind: pb::RecordKind,
    rec: &pb::Record,
    version: u64,
    problem: Problem,
) -> Response {
    let fields = forms::views(&c.tr, kind, rec, &problem);
    let kinds = choices::<pb::RecordKind>(&c, kind as i32);
    let handling = handling_choices(if rec.handling == 0 { pb::HandlingCode::Amber as i32 } else { rec.handling });
    let title = if version == 0 { c.t("record-new-title") } else { c.t("record-edit-title") };
    page(Edit {
        title,
        nav: "search",
        action,
        kind: kind as i32,
        kinds,
        id: rec.id.clone(),
        version,
        handling,
        fields,
        problem,
        c,
    })
}

#[derive(Deserialize, Default)]
pub(crate) struct KindQuery {
    #[serde(default)]
    kind: i32,
}

pub(crate) async fn new_form(c: Ctx, Query(q): Query<KindQuery>) -> Response {
    let kind = pb::RecordKind::of(q.kind)
        .filter(|k| *k != pb::RecordKind::Unspecified)
        .unwrap_or(pb::RecordKind::ContactPoint);
    form_page(c, "/records/new".into(), kind, &pb::Record::default(), 0, Problem::default())
}

fn kind_in(form: &[(String, String)]) -> pb::RecordKind {
    form.iter()
        .find(|(k, _)| k == "kind")
        .and_then(|(_, v)| v.parse::<i32>().ok())
        .and_then(pb::RecordKind::of)
        .unwrap_or(pb::RecordKind::Unspecified)
}

fn handling_in(form: &mut [(String, String)]) {
    // The select sends the number; proto JSON wants the name.
    for (k, v) in form.iter_mut() {
        if k == "handling" {
            if let Some(h) = v.parse::<i32>().ok().and_then(pb::HandlingCode::of) {
                *v = h.as_str_name().to_string();
            }
        }
    }
}

pub(crate) async fn create(c: Ctx, Form(mut form): Form<Vec<(String, String)>>) -> Response {
    let kind = kind_in(&form);
    handling_in(&mut form);
    let rec = match forms::record(kind, &form) {
        Ok(r) => r,
        Err(p) => return form_page(c, "/records/new".into(), kind, &pb::Record::default(), 0, p),
    };
    match api::RecordApi::new(Arc::clone(&c.node))
        .create_record(req(&c, pb::CreateRecordRequest { record: Some(rec.clone()), ..Default::default() }))
        .await
    {
        Ok(r) => {
            let r = r.into_inner().record.unwrap_or_default();
            c.flash(c.t("record-created"));
            Redirect::to(&super::record_href(&key(&r.originator, &r.id))).into_response()
        }
        Err(s) => {
            let p = Problem::of(&c.tr, &s);
            form_page(c, "/records/new".into(), kind, &rec, 0, p)
        }
    }
}

pub(crate) async fn edit_form(c: Ctx, Path((origin, id)): Path<(String, String)>) -> Response {
    let k = key(&origin, &id);
    // Editing shows every field, the identity too: audited as a view.
    let got = match get(&c, &k, Some(c.t("reveal-reason-edit"))).await {
        Ok(g) => g,
        Err(s) => return back(&c, &super::record_href(&k), &s),
    };
    let rec = got.record.unwrap_or_default();
    let kind = super::kind_of(&rec);
    let v = rec.version;
    form_page(c, format!("{}/edit", super::record_href(&k)), kind, &rec, v, Problem::default())
}

pub(crate) async fn update(
    c: Ctx,
    Path((origin, id)): Path<(String, String)>,
    Form(mut form): Form<Vec<(String, String)>>,
) -> Response {
    let k = key(&origin, &id);
    let action = format!("{}/edit", super::record_href(&k));
    let kind = kind_in(&form);
    handling_in(&mut form);
    let version = form.iter().find(|(n, _)| n == "version").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let mut rec = match forms::record(kind, &form) {
        Ok(r) => r,
        Err(p) => return form_page(c, action, kind, &pb::Record::default(), version, p),
    };
    rec.id = id.clone();
    let msg = pb::UpdateRecordRequest { record: Some(rec.clone()), expected_version: version, ..Default::default() };
    match api::RecordApi::new(Arc::clone(&c.node)).update_record(req(&c, msg)).await {
        Ok(_) => {
            c.flash(c.t("record-saved"));
            Redirect::to(&super::record_href(&k)).into_response()
        }
        Err(s) => {
            let p = Problem::of(&c.tr, &s);
            form_page(c, action, kind, &rec, version, p)
        }
    }
}

#[derive(askama::Template)]
#[template(path = "import.html")]
struct Import {
    c: Ctx,
    title: String,
    nav: &'static str,
    job: Option<crate::imports::Job>,
    summary: String,
    error: String,
}

fn import_page(c: Ctx, job: Option<crate::imports::Job>, error: String) -> Response {
    let title = c.t("import-title");
    let summary = match &job {
        Some(j) if j.finished => c.tr.ta(
            "import-done",
            &[("stored", j.stored.to_string()), ("total", j.total.to_string()), ("held", j.held.to_string())],
        ),
        Some(j) => c.tr.ta("import-running", &[("sent", j.sent.to_string()), ("total", j.total.to_string())]),
        None => String::new(),
    };
    page(Import { c, title, nav: "search", job, summary, error })
}

pub(crate) async fn import_form(c: Ctx) -> Response {
    import_page(c, None, String::new())
}

/// The records of a JSON-lines upload: one proto-JSON record per line.
fn parse_lines(text: &str) -> Result<Vec<pb::Record>, (usize, String)> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str::<pb::Record>(l).map_err(|e| (i.saturating_add(1), e.to_string())))
        .collect()
}

/// Starts a background import of the uploaded lines and sends the user to
/// its progress page. Nothing is stored when a line is not a record.
pub(crate) async fn import(c: Ctx, mut mp: Multipart) -> Response {
    let mut text = String::new();
    while let Ok(Some(field)) = mp.next_field().await {
        if matches!(field.name(), Some("file") | Some("lines")) {
            if let Ok(t) = field.text().await {
                text.push_str(&t);
                text.push('\n');
            }
        }
    }
    let records = match parse_lines(&text) {
        Ok(r) if r.is_empty() => {
            let error = c.t("import-empty");
            return import_page(c, None, error);
        }
        Ok(r) => r,
        Err((line, e)) => {
            let error = c.ta_line(line, &e);
            return import_page(c, None, error);
        }
    };
    let Some(id) = c.app.imports.start(&c.user, records.len()) else {
        let error = c.t("import-busy");
        return import_page(c, None, error);
    };
    let (node, caller, tr, imports, job) =
        (Arc::clone(&c.node), c.caller(), c.tr.clone(), Arc::clone(&c.app.imports), id.clone());
    tokio::spawn(async move {
        let api = api::RecordApi::new(node);
        let mut first = 0usize;
        let mut rest = records.into_iter().peekable();
        while rest.peek().is_some() {
            let chunk: Vec<pb::Record> = rest.by_ref().take(crate::imports::CHUNK).collect();
            let len = chunk.len();
            let msg = pb::ImportRecordsRequest { records: chunk, received: Vec::new(), ..Default::default() };
            match api.import_records(api::as_caller(msg, caller.clone())).await {
                Ok(r) => {
                    let r = r.into_inner();
                    let problems = r.problems.into_iter().map(|p| (p.index as usize, p.field, p.reason)).collect();
                    imports.update(&job, |j| j.chunk_done(first, len, r.stored, r.already_held, problems));
                }
                Err(s) => {
                    let why = Problem::of(&tr, &s).message;
                    imports.update(&job, |j| j.error = Some(why));
                    break;
                }
            }
            first = first.saturating_add(len);
        }
        imports.update(&job, |j| j.finished = true);
    });
    Redirect::to(&format!("/records/import/{id}")).into_response()
}

/// How far an import got; refreshes itself until it ends.
pub(crate) async fn import_status(c: Ctx, Path(id): Path<String>) -> Response {
    match c.app.imports.get(&id, &c.user) {
        Some(job) => import_page(c, Some(job), String::new()),
        None => super::not_found().await.into_response(),
    }
}

impl Ctx {
    fn ta_line(&self, line: usize, e: &str) -> String {
        self.tr.ta("import-bad-line", &[("line", line.to_string()), ("reason", e.to_string())])
    }
}
