//! Home: what needs me now.

use std::sync::Arc;

use axum::response::Response;
use liaison_node::api;
use liaison_node::pb::{self, agreement_service_server::AgreementService, exchange_service_server::ExchangeService};
use liaison_node::pb::{request_service_server::RequestService, victim_case_service_server::VictimCaseService};

use super::req;
use crate::ctx::{page, Ctx};

pub(crate) struct Due {
    pub href: String,
    pub subject: String,
    pub from: String,
    pub state: String,
    pub due: String,
    pub overdue: bool,
    pub urgent: bool,
}

pub(crate) struct Line {
    pub href: String,
    pub text: String,
    pub detail: String,
}

#[derive(askama::Template)]
#[template(path = "home.html")]
struct Home {
    c: Ctx,
    title: String,
    nav: &'static str,
    requests: Vec<Due>,
    cases: Vec<Line>,
    consents: Vec<Line>,
    failing: Vec<Line>,
    expiring: Vec<Line>,
    certificate: String,
    certificate_soon: bool,
}

/// The deadline a request waits on now: acknowledgement, then answer.
fn deadline(r: &pb::Request) -> &Option<pbjson_types::Timestamp> {
    if r.state == pb::RequestState::Submitted as i32 {
        &r.ack_due
    } else {
        &r.answer_due
    }
}

/// Overdue first, then by the deadline each waits on.
pub(crate) fn by_due(rs: &mut [pb::Request]) {
    rs.sort_by_key(|r| (!r.overdue, deadline(r).as_ref().map_or(i64::MAX, |t| t.seconds)));
}

/// One request as a row to act on.
pub(crate) fn due(c: &Ctx, r: &pb::Request) -> Due {
    let h = r.header.clone().unwrap_or_default();
    Due {
        href: format!("/requests/{}", r.id),
        subject: h.subject,
        from: h.from_node,
        state: c.word::<pb::RequestState>(r.state),
        due: c.when(deadline(r)),
        overdue: r.overdue,
        urgent: h.priority == pb::Priority::Urgent as i32,
    }
}

/// The node's certificate's end, and whether it is within 30 days.
pub(crate) fn certificate(c: &Ctx) -> (String, bool) {
    use x509_parser::prelude::FromDer;
    let Ok((_, cert)) = x509_parser::certificate::X509Certificate::from_der(&c.node.identity.tls_cert) else {
        return (String::new(), false);
    };
    let end = cert.validity().not_after.timestamp();
    let ts = pbjson_types::Timestamp { seconds: end, nanos: 0 };
    let soon = end.saturating_sub(c.node.now().unix_timestamp()) < 30 * 86_400;
    (c.when(&Some(ts)), soon)
}

pub(crate) async fn show(c: Ctx) -> Response {
    let node = Arc::clone(&c.node);
    let open = |r: &pb::Request| {
        r.state == pb::RequestState::Submitted as i32 || r.state == pb::RequestState::Acknowledged as i32
    };
    // Each part shows what the user's role may see; a refused part is empty.
    let mut inbox: Vec<pb::Request> = api::RequestApi::new(Arc::clone(&node))
        .list_requests(req(
            &c,
            pb::ListRequestsRequest {
                r#box: pb::RequestBox::Inbox as i32,
                overdue_only: false,
                page_size: 1000,
                ..Default::default()
            },
        ))
        .await
        .map(|r| r.into_inner().requests.into_iter().filter(open).collect())
        .unwrap_or_default();
    by_due(&mut inbox);
    let requests = inbox.iter().map(|r| due(&c, r)).collect();
    let cases = api::CaseApi::new(Arc::clone(&node))
        .list_cases(req(&c, pb::ListCasesRequest { page_size: 1000, ..Default::default() }))
        .await
        .map(|r| r.into_inner().cases)
        .unwrap_or_default()
        .into_iter()
        .filter(|k| k.stage != pb::CaseStage::ReintegrationFollowUp as i32)
        .map(|k| Line {
            href: format!("/cases/{}", k.id),
            text: k.id.clone(),
            detail: c.word::<pb::CaseStage>(k.stage),
        })
        .collect();
    let consents = api::ExchangeApi::new(Arc::clone(&node))
        .list_consent_requests(req(&c, pb::ListConsentRequestsRequest { page_size: 1000, ..Default::default() }))
        .await
        .map(|r| r.into_inner().requests)
        .unwrap_or_default()
        .into_iter()
        .filter(|r| !r.granted)
        .map(|r| Line {
            href: super::record_href(&r.record_key),
            text: r.record_key.clone(),
            detail: c.t1("home-consent-detail", "party", format!("{} → {}", r.holder, r.third_party)),
        })
        .collect();
    let failing = api::ExchangeApi::new(Arc::clone(&node))
        .list_outbox(req(&c, pb::ListOutboxRequest { all: false, page_size: 1000, ..Default::default() }))
        .await
        .map(|r| r.into_inner().items)
        .unwrap_or_default()
        .into_iter()
        .filter(|i| i.attempts > 0 && !i.last_error.is_empty())
        .map(|i| Line {
            href: super::record_href(&i.record_key),
            text: format!("{} → {}", i.record_key, i.peer),
            detail: c.t1("home-attempts", "count", i.attempts) + " · " + &i.last_error,
        })
        .collect();
    let soon = c.node.now().unix_timestamp().saturating_add(30 * 86_400);
    let expiring = api::AgreementApi::new(Arc::clone(&node))
        .list_agreements(req(
            &c,
            pb::ListAgreementsRequest { include_history: false, page_size: 1000, ..Default::default() },
        ))
        .await
        .map(|r| r.into_inner().agreements)
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a.state == pb::AgreementState::Active as i32)
        .filter_map(|a| {
            let ag = a.agreement?;
            let until = ag.valid_until?;
            (until.seconds <= soon).then(|| Line {
                href: format!("/agreements/{}", ag.id),
                text: ag.title.clone(),
                detail: c.when(&Some(until)),
            })
        })
        .collect();
    let (certificate, certificate_soon) = certificate(&c);
    let title = c.t("home-title");
    page(Home { c, title, nav: "home", requests, cases, consents, failing, expiring, certificate, certificate_soon })
}
