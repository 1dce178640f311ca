//! Hub nodes for regional secretariats: a signed member directory, the
//! regional contact-point directory, the regional statistics report and
//! SOP-compliance indicators. `report` and `indicators` are pure, in the core.

pub use liaison_core::hub::{indicators, joint, report, reporting};

pub mod directory;
pub mod relay;
pub mod upward;

use crate::convert::ProtoEnum;

use prost::Message;

use crate::audit::Event;
use crate::exchange::{self, ExchangeError};
use crate::node::Node;
use crate::pb;
use crate::policy::hub::{self as rules, HubDenial};
use crate::store::hubs::metadata_count;
use crate::store::records::{self, Filter, StoredRecord};
use crate::store::{StoreError, Tree};

/// Most entries in one answer of the regional directory.
pub const MAX_CONTACTS: usize = 200;
/// Entries in one answer when the caller sets no limit.
pub const DEFAULT_CONTACTS: usize = 50;
/// Stored records the hub looks at for one directory answer; past it, the
/// answer ends with a page token so no single call scans the whole store.
pub const SCAN_BUDGET: usize = 2000;
/// Pages a member follows through one hub's directory for one search.
const MAX_PAGES: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The hub policy refused (`policy::hub`).
    #[error("refused ({code}): {0}", code = .0.code())]
    Denied(HubDenial),
    /// Metadata under a request id already reported for other parties.
    #[error("{0}")]
    Conflict(String),
    /// A member's share of the hub's storage is used up (`RESOURCE_EXHAUSTED`).
    #[error("{0}")]
    Exhausted(String),
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
}

impl From<StoreError> for HubError {
    fn from(e: StoreError) -> Self {
        HubError::Exchange(e.into())
    }
}

impl From<crate::agreement::book::BookError> for HubError {
    fn from(e: crate::agreement::book::BookError) -> Self {
        HubError::Exchange(e.into())
    }
}

/// A current member of this hub (admitted with `hub admit`).
pub(crate) fn is_member(node: &Node, id: &str) -> Result<bool, StoreError> {
    Ok(crate::store::peers::get(node.db.store(), id)?.is_some_and(|p| p.source == "member"))
}

/// Audits a hub refusal (and counts it with the policy denials) before it is returned.
async fn refuse(node: &Node, ev: Event, what: &str, d: HubDenial) -> HubError {
    metrics::counter!("liaison_policy_denials_total", "reason" => d.code()).increment(1);
    if let Err(e) = node.db.audit(vec![ev.decision("deny", format!("{what}; {}", d.code()))]).await {
        return e.into();
    }
    HubError::Denied(d)
}

fn validate_metadata(m: &pb::RequestMetadata) -> Result<(), ExchangeError> {
    let text = |field: &str, v: &str, max: usize| {
        if v.is_empty() || v.chars().count() > max {
            Err(exchange::invalid(field, format!("1-{max} characters")))
        } else {
            Ok(())
        }
    };
    text("metadata.request_id", &m.request_id, 64)?;
    text("metadata.agreement_id", &m.agreement_id, 100)?;
    text("metadata.request_type", &m.request_type, 64)?;
    text("metadata.state", &m.state, 32)?;
    for (field, id) in [("metadata.from_node", &m.from_node), ("metadata.to_node", &m.to_node)] {
        if !crate::config::valid_node_id(id) {
            return Err(exchange::invalid(field, format!("{id:?} is not a node id")));
        }
    }
    // Absurd times would skew every indicator computed from them.
    let submit = m.submit_time.as_ref().ok_or_else(|| exchange::invalid("metadata.submit_time", "required"))?;
    let times = [
        ("metadata.submit_time", Some(submit)),
        ("metadata.ack_due", m.ack_due.as_ref()),
        ("metadata.answer_due", m.answer_due.as_ref()),
        ("metadata.ack_time", m.ack_time.as_ref()),
        ("metadata.answer_time", m.answer_time.as_ref()),
    ];
    for (field, t) in times {
        if let Some(t) = t {
            crate::record::peer_time(field, t).map_err(|e| exchange::invalid(&e.field, e.reason))?;
        }
    }
    Ok(())
}

/// Requests one member may have on record at the hub.
pub const MAX_METADATA_PER_MEMBER: u64 = 100_000;
/// How long request metadata is kept (indicators look back over years, not decades).
pub const METADATA_KEEP: time::Duration = time::Duration::days(3 * 366);

/// Removes request metadata older than [`METADATA_KEEP`] (by submit time),
/// giving each member's count back.
pub async fn sweep_metadata(node: &Node) -> Result<usize, StoreError> {
    let now = node.now();
    let mut old: Vec<(String, String)> = Vec::new();
    for (id, m) in crate::store::hubs::all_metadata(node.db.store(), 10_000)? {
        let made = m.as_ref().and_then(|m| m.submit_time.as_ref()).and_then(crate::convert::from_timestamp);
        if made.is_none_or(|t| now - t > METADATA_KEEP) {
            old.push((id, m.map(|m| m.from_node).unwrap_or_default()));
        }
    }
    let n = old.len();
    if n == 0 {
        return Ok(0);
    }
    node.db
        .write(|st, tx| {
            let mut counts: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
            for (id, member) in &old {
                crate::store::hubs::delete_metadata(tx, id);
                *counts.entry(member.clone()).or_default() += 1;
            }
            for (member, gone) in counts {
                let left = metadata_count(st, &member)?.saturating_sub(gone);
                crate::store::hubs::set_metadata_count(tx, &member, left);
            }
            Ok::<_, StoreError>(())
        })
        .await?;
    Ok(n)
}

/// Sweeps old request metadata every `every`.
pub fn spawn_sweep(node: std::sync::Arc<Node>, every: std::time::Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match sweep_metadata(&node).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "old request metadata removed"),
                Err(e) => tracing::error!(error = %e, "request metadata sweep failed"),
            }
            tokio::time::sleep(every).await;
        }
    })
}

/// Stores request metadata a member reported (the hub sees types, parties
/// and times only). Taken only as `policy::hub::accept_metadata` allows:
/// from a member that is one end of the request, under an active agreement
/// that names this hub and defines the request type. Both decisions are audited.
pub async fn store_metadata(node: &Node, caller: &str, m: pb::RequestMetadata) -> Result<(), HubError> {
    validate_metadata(&m)?;
    let facts = rules::MetadataFacts {
        hub: node.id().into(),
        caller: caller.into(),
        caller_is_member: is_member(node, caller)?,
        agreement_id: m.agreement_id.clone(),
        request_type: m.request_type.clone(),
        from: m.from_node.clone(),
        to: m.to_node.clone(),
        at: node.now(),
    };
    let what = format!("{} {} {} → {}", m.request_id, m.request_type, m.from_node, m.to_node);
    let ev = Event::new(format!("peer:{caller}"), "hub.request_metadata").agreement(&m.agreement_id);
    let agreement = match rules::accept_metadata(&crate::agreement::book::for_policy(node)?, &facts) {
        Ok(a) => a,
        Err(d) => return Err(refuse(node, ev, &what, d).await),
    };
    node.db
        .write(|st, tx| {
            // Keep the most advanced report of the two parties.
            let merged = match crate::store::hubs::metadata(st, &m.request_id)? {
                Some(old) => {
                    // One request, one pair: a report cannot take over another pair's entry.
                    if (&old.agreement_id, &old.from_node, &old.to_node, &old.request_type)
                        != (&m.agreement_id, &m.from_node, &m.to_node, &m.request_type)
                    {
                        return Err(HubError::Conflict(format!(
                            "request {} was reported as {} {} → {} under {}",
                            m.request_id, old.request_type, old.from_node, old.to_node, old.agreement_id
                        )));
                    }
                    pb::RequestMetadata {
                        ack_time: m.ack_time.or(old.ack_time),
                        answer_time: m.answer_time.or(old.answer_time),
                        state: if m.answer_time.is_some() || old.answer_time.is_none() {
                            m.state.clone()
                        } else {
                            old.state
                        },
                        ..m.clone()
                    }
                }
                None => {
                    // Each member has a bounded number of requests on record.
                    let n = metadata_count(st, &m.from_node)?;
                    if n >= MAX_METADATA_PER_MEMBER {
                        return Err(HubError::Exhausted(format!(
                            "{MAX_METADATA_PER_MEMBER} requests from {} are already on record",
                            m.from_node
                        )));
                    }
                    crate::store::hubs::set_metadata_count(tx, &m.from_node, n.saturating_add(1));
                    m.clone()
                }
            };
            crate::store::hubs::put_metadata(tx, &merged);
            tx.audit(ev.clone().decision("allow", format!("{what}; under {agreement}")));
            Ok::<_, HubError>(())
        })
        .await?;
    Ok(())
}

pub fn all_metadata(node: &Node) -> Result<Vec<pb::RequestMetadata>, StoreError> {
    Ok(crate::store::hubs::all_metadata(node.db.store(), usize::MAX)?.into_iter().filter_map(|(_, m)| m).collect())
}

/// Every stored record of `kind` (own and received), with its provenance.
pub(crate) fn held(node: &Node, kind: pb::RecordKind) -> Result<Vec<(pb::Record, Option<pb::Provenance>)>, StoreError> {
    let filter = Filter { kind: Some(kind), ..Default::default() };
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let (rows, next) = records::list(&node.db, &filter, after.as_deref(), 1000)?;
        out.extend(rows);
        match next {
            Some(n) => after = Some(n),
            None => return Ok(out),
        }
    }
}

/// Statistics reports held (own and received), for the regional report.
pub fn statistics(node: &Node) -> Result<Vec<pb::StatisticsReport>, StoreError> {
    Ok(held(node, pb::RecordKind::StatisticsReport)?
        .into_iter()
        .filter_map(|(r, _)| match r.body {
            Some(pb::record::Body::StatisticsReport(s)) => Some(s),
            _ => None,
        })
        .collect())
}

/// The hub's regional contact-point directory: contact points received from
/// members, as their originators signed them, for a member that asks. The
/// hub hands each one on only where `policy::hub::release_contact` allows
/// (this is onward sharing from the hub), audits every decision, and stops
/// after `limit` entries or [`SCAN_BUDGET`] stored records with a page token.
pub async fn regional_contacts(
    node: &std::sync::Arc<Node>,
    caller: &str,
    req: &pb::SearchRegionalContactsRequest,
) -> Result<pb::SearchRegionalContactsResponse, HubError> {
    if req.text.chars().count() > 200 {
        return Err(exchange::invalid("text", "at most 200 characters").into());
    }
    if !req.country.is_empty() && !crate::record::is_country(&req.country) {
        return Err(exchange::invalid("country", "not an ISO 3166-1 alpha-2 code").into());
    }
    let limit = match req.limit {
        0 => DEFAULT_CONTACTS,
        n => (n as usize).min(MAX_CONTACTS),
    };
    let cursor = if req.page_token.is_empty() {
        None
    } else {
        Some(
            hex::decode(&req.page_token)
                .map_err(|_| exchange::invalid("page_token", "not a token from a previous answer"))?,
        )
    };
    let agreements = crate::agreement::book::for_policy(node)?;
    let now = node.now();
    let actor = format!("peer:{caller}");
    let search = Event::new(&actor, "hub.contacts_search").purpose("coordination");
    if let Err(d) = rules::may_search(&agreements, node.id(), caller, is_member(node, caller)?, now) {
        return Err(refuse(node, search, "regional directory", d).await);
    }
    // Reads and decrypts up to SCAN_BUDGET records: on the blocking pool.
    let scan = DirectoryScan {
        caller: caller.to_string(),
        text: req.text.clone(),
        country: req.country.clone(),
        agreements,
        now,
        actor,
        cursor,
        limit,
    };
    let Found { out, mut events, scanned, refused, next } =
        crate::node::off_runtime(node, move |n| scan.run(n)).await?;
    events.push(search.decision(
        "allow",
        format!(
            "{} released, {refused} refused, {scanned} looked at{}",
            out.len(),
            if next.is_some() { ", more follow" } else { "" }
        ),
    ));
    node.db.audit(events).await?;
    Ok(pb::SearchRegionalContactsResponse { records: out, next_page_token: next.map(hex::encode).unwrap_or_default() })
}

/// One answer's walk of the hub's records for the regional directory.
struct DirectoryScan {
    caller: String,
    text: String,
    country: String,
    agreements: Vec<(pb::Agreement, pb::AgreementState)>,
    now: time::OffsetDateTime,
    actor: String,
    cursor: Option<Vec<u8>>,
    limit: usize,
}

/// What the walk released, its audit events, how many records it looked at
/// and refused, and the key to continue after.
struct Found {
    out: Vec<pb::SharedRecord>,
    events: Vec<Event>,
    scanned: usize,
    refused: usize,
    next: Option<Vec<u8>>,
}

impl DirectoryScan {
    fn run(self, node: &Node) -> Result<Found, HubError> {
        let DirectoryScan { caller, text, country, agreements, now, actor, mut cursor, limit } = self;
        let (mut out, mut events, mut scanned, mut refused) = (Vec::new(), Vec::new(), 0usize, 0usize);
        let mut next = None;
        'scan: loop {
            let chunk = crate::store::scan_prefix(node.db.store(), Tree::Records, b"", cursor.as_deref(), 256)?;
            let done = chunk.len() < 256;
            let last = chunk.len();
            for (i, (k, v)) in chunk.into_iter().enumerate() {
                scanned += 1;
                let s = StoredRecord::decode(v.as_slice()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                // Only contact points received from others: the hub's own records are not the directory.
                if let Some(prov) = &s.provenance {
                    let rec = s.record()?;
                    let candidate = crate::record::kind(&rec) == Some(pb::RecordKind::ContactPoint)
                        && !rec.withdrawn
                        && crate::record::matches_text(&rec, &text)
                        && (country.is_empty() || crate::record::countries(&rec).contains(&country));
                    if candidate {
                        let key = String::from_utf8_lossy(&k).into_owned();
                        let facts = rules::ContactRelease {
                            hub: node.id().into(),
                            caller: caller.clone(),
                            caller_is_member: true,
                            handling: rec.handling(),
                            onward: pb::OnwardSharing::of(prov.onward_sharing).unwrap_or(pb::OnwardSharing::Forbidden),
                            originator: rec.originator.clone(),
                            redacted: rec.redacted_fields.clone(),
                            at: now,
                        };
                        let ev = Event::new(&actor, "hub.contact_release").record(&key).purpose("coordination");
                        match rules::release_contact(&agreements, &facts) {
                            Ok(r) => {
                                let label = format!("{} v{}", r.agreement_id, r.agreement_version);
                                events.push(
                                    ev.agreement(&r.agreement_id)
                                        .decision("allow", format!("to {caller} under {label}")),
                                );
                                out.push(pb::SharedRecord {
                                    record: s.envelope.clone(),
                                    agreement_id: r.agreement_id,
                                    agreement_version: r.agreement_version,
                                    onward_sharing: r.onward as i32,
                                    retention_days: r.retention_days,
                                });
                            }
                            Err(d) => {
                                metrics::counter!("liaison_policy_denials_total", "reason" => d.code()).increment(1);
                                refused += 1;
                                events.push(ev.decision("deny", format!("to {caller}; {}", d.code())));
                            }
                        }
                    }
                }
                let at_end = done && i + 1 == last;
                if !at_end && (out.len() >= limit || scanned >= SCAN_BUDGET) {
                    next = Some(k);
                    break 'scan;
                }
                cursor = Some(k);
            }
            if done {
                break;
            }
        }
        Ok(Found { out, events, scanned, refused, next })
    }
}

/// A member searches its hubs' regional directories, following page tokens
/// up to [`MAX_PAGES`] pages per hub. Each entry is verified against its
/// originator's key (not the hub's) and then admitted like any received
/// record (`exchange::admit_all`, a query answer from the hub): an entry this
/// node's own agreement with the hub would not let in is dropped, audited.
pub async fn search_regional(
    node: &Node,
    actor: &str,
    text: &str,
    country: &str,
) -> Result<Vec<(pb::Record, String)>, ExchangeError> {
    let mut out = Vec::new();
    for hub in directory::joined_hubs(node)? {
        let mut c = exchange::client(node, &hub).await?;
        let mut page_token = String::new();
        for _ in 0..MAX_PAGES {
            let resp = c
                .search_regional_contacts(pb::SearchRegionalContactsRequest {
                    text: text.into(),
                    country: country.into(),
                    limit: MAX_CONTACTS as u32,
                    page_token: page_token.clone(),
                })
                .await
                .map_err(|s| ExchangeError::from_status(&hub, &s))?
                .into_inner();
            let mut opened = Vec::new();
            for s in resp.records.iter().take(MAX_CONTACTS) {
                let Some(env) = &s.record else { continue };
                match exchange::open_record(node, env) {
                    Ok(r) if crate::record::kind(&r) == Some(pb::RecordKind::ContactPoint) => opened.push(r),
                    Ok(r) => {
                        tracing::warn!(hub = %hub, record = %r.id, "regional directory entry is not a contact point")
                    }
                    Err(e) => tracing::warn!(hub = %hub, error = %e, "regional directory entry refused"),
                }
            }
            let received: Vec<_> = opened
                .iter()
                .map(|r| {
                    let ex = exchange::exchange_for(
                        node,
                        &hub,
                        crate::policy::Direction::Incoming,
                        pb::Operation::Query,
                        r,
                        pb::Purpose::Coordination,
                    );
                    (ex, r)
                })
                .collect();
            let decisions = exchange::admit_all(node, actor, &received).await?;
            out.extend(
                opened.into_iter().zip(decisions).filter(|(_, d)| d.is_allowed()).map(|(r, _)| (r, hub.clone())),
            );
            if resp.next_page_token.is_empty() {
                break;
            }
            page_token = resp.next_page_token;
        }
    }
    Ok(out)
}

/// Reports a request's metadata to the hub its agreement names, if any.
pub async fn report_request(node: &Node, req: &pb::Request) {
    let h = req.header.clone().unwrap_or_default();
    let hub = match crate::agreement::book::get(node, &h.agreement_id, h.agreement_version) {
        Ok(r) => r.agreement.map(|a| a.hub).unwrap_or_default(),
        Err(_) => return,
    };
    if hub.is_empty() || hub == node.id() {
        return;
    }
    let at = |t: pb::Transition| req.timeline.iter().find(|e| e.transition == t as i32).and_then(|e| e.time);
    let m = pb::RequestMetadata {
        request_id: req.id.clone(),
        agreement_id: h.agreement_id.clone(),
        request_type: h.request_type.clone(),
        from_node: h.from_node.clone(),
        to_node: h.to_node.clone(),
        urgent: h.priority == pb::Priority::Urgent as i32,
        submit_time: at(pb::Transition::Submit),
        ack_due: req.ack_due,
        answer_due: req.answer_due,
        ack_time: at(pb::Transition::Acknowledge),
        answer_time: at(pb::Transition::Answer).or(at(pb::Transition::Decline)),
        state: pb::RequestState::word_of(req.state),
    };
    let result = async {
        let mut c = exchange::client(node, &hub).await?;
        c.report_request_metadata(pb::ReportRequestMetadataRequest { metadata: Some(m) })
            .await
            .map_err(|s| ExchangeError::from_status(&hub, &s))?;
        Ok::<(), ExchangeError>(())
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(hub = %hub, error = %e, "request metadata not reported");
    }
}
