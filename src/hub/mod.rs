//! Hub nodes for regional secretariats: a signed member directory, the
//! regional contact-point directory, the regional statistics report and
//! SOP-compliance indicators. `report` and `indicators` are pure.

pub mod directory;
pub mod indicators;
pub mod relay;
pub mod report;

use std::ops::Bound;

use prost::Message;

use crate::audit::Event;
use crate::exchange::{self, ExchangeError};
use crate::node::Node;
use crate::pb;
use crate::store::records::{self, Filter, StoredRecord};
use crate::store::{StoreError, Tree};

const METADATA_PREFIX: &str = "reqmeta/";

/// Stores request metadata a member reported (the hub sees types, parties and times only).
pub async fn store_metadata(node: &Node, caller: &str, m: pb::RequestMetadata) -> Result<(), ExchangeError> {
    if m.from_node != caller && m.to_node != caller {
        return Err(ExchangeError::Refused(format!("{caller} is not a party to request {}", m.request_id)));
    }
    if m.request_id.is_empty() || m.request_id.len() > 64 {
        return Err(exchange::invalid("metadata.request_id", "1-64 characters"));
    }
    let key = format!("{METADATA_PREFIX}{}", m.request_id).into_bytes();
    node.db
        .write(|st, tx| {
            // Keep the most advanced report of the two parties.
            let merged = match st.get(Tree::Meta, &key)?.and_then(|v| pb::RequestMetadata::decode(v.as_slice()).ok()) {
                Some(old) => pb::RequestMetadata {
                    ack_time: m.ack_time.or(old.ack_time),
                    answer_time: m.answer_time.or(old.answer_time),
                    state: if m.answer_time.is_some() || old.answer_time.is_none() {
                        m.state.clone()
                    } else {
                        old.state
                    },
                    ..m.clone()
                },
                None => m.clone(),
            };
            tx.batch.put(Tree::Meta, key.clone(), merged.encode_to_vec());
            tx.audit(
                Event::new(format!("peer:{caller}"), "hub.request_metadata")
                    .agreement(&m.agreement_id)
                    .reason(format!("{} {} → {}", m.request_type, m.from_node, m.to_node)),
            );
            Ok::<_, StoreError>(())
        })
        .await?;
    Ok(())
}

pub fn all_metadata(node: &Node) -> Result<Vec<pb::RequestMetadata>, StoreError> {
    let start = Bound::Included(METADATA_PREFIX.as_bytes().to_vec());
    let end = crate::store::prefix_end(METADATA_PREFIX.as_bytes()).map_or(Bound::Unbounded, Bound::Excluded);
    Ok(node
        .db
        .store()
        .range(Tree::Meta, start, end, usize::MAX)?
        .into_iter()
        .filter_map(|(_, v)| pb::RequestMetadata::decode(v.as_slice()).ok())
        .collect())
}

/// Statistics reports held (own and received), for the regional report.
pub fn statistics(node: &Node) -> Result<Vec<pb::StatisticsReport>, StoreError> {
    let filter = Filter { kind: Some(pb::RecordKind::StatisticsReport), ..Default::default() };
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let (rows, next) = records::list(node.db.store(), &filter, after.as_deref(), 1000)?;
        out.extend(rows.into_iter().filter_map(|(r, _)| match r.body {
            Some(pb::record::Body::StatisticsReport(s)) => Some(s),
            _ => None,
        }));
        match next {
            Some(n) => after = Some(n),
            None => return Ok(out),
        }
    }
}

/// The hub's regional contact-point directory: contact points received from
/// members, as their originators signed them, for a member that asks.
pub async fn regional_contacts(
    node: &Node,
    caller: &str,
    text: &str,
    country: &str,
) -> Result<Vec<pb::SharedRecord>, ExchangeError> {
    if text.chars().count() > 200 {
        return Err(exchange::invalid("text", "at most 200 characters"));
    }
    if crate::store::peers::get(node.db.store(), caller)?.is_none_or(|p| p.source != "member") {
        return Err(ExchangeError::Refused(format!("{caller} is not a member of this hub")));
    }
    let mut out = Vec::new();
    for (_, v) in node.db.store().range(Tree::Records, Bound::Unbounded, Bound::Unbounded, usize::MAX)? {
        let s = StoredRecord::decode(v.as_slice()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let Some(prov) = &s.provenance else { continue };
        let rec = s.record()?;
        let ok = crate::record::kind(&rec) == Some(pb::RecordKind::ContactPoint)
            && !rec.withdrawn
            && prov.onward_sharing == pb::OnwardSharing::Allowed as i32
            && (text.is_empty() || crate::record::matches_text(&rec, text))
            && (country.is_empty() || crate::record::countries(&rec).iter().any(|c| c == country));
        if ok {
            out.push(pb::SharedRecord {
                record: s.envelope.clone(),
                agreement_id: prov.agreement_id.clone(),
                agreement_version: prov.agreement_version,
                onward_sharing: prov.onward_sharing,
                retention_days: 0,
            });
        }
    }
    node.db
        .audit(vec![
            Event::new(format!("peer:{caller}"), "hub.contacts_search").reason(format!("{} entries", out.len()))
        ])
        .await?;
    Ok(out)
}

/// A member searches its hubs' regional directories.
pub async fn search_regional(
    node: &Node,
    text: &str,
    country: &str,
) -> Result<Vec<(pb::Record, String)>, ExchangeError> {
    let mut out = Vec::new();
    for hub in directory::joined_hubs(node)? {
        let mut c = exchange::client(node, &hub).await?;
        let resp = c
            .search_regional_contacts(pb::SearchRegionalContactsRequest { text: text.into(), country: country.into() })
            .await
            .map_err(|s| ExchangeError::Peer { peer: hub.clone(), reason: s.message().to_string() })?
            .into_inner();
        for s in resp.records {
            let Some(env) = s.record else { continue };
            // Each entry is verified against its originator's key, not the hub's.
            match exchange::open_record(node, &env) {
                Ok(r) => out.push((r, hub.clone())),
                Err(e) => tracing::warn!(hub = %hub, error = %e, "regional directory entry refused"),
            }
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
        state: pb::RequestState::try_from(req.state)
            .map(|s| crate::convert::word(s.as_str_name(), "REQUEST_STATE_"))
            .unwrap_or_default(),
    };
    let result = async {
        let mut c = exchange::client(node, &hub).await?;
        c.report_request_metadata(pb::ReportRequestMetadataRequest { metadata: Some(m) })
            .await
            .map_err(|s| ExchangeError::Peer { peer: hub.clone(), reason: s.message().to_string() })?;
        Ok::<(), ExchangeError>(())
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(hub = %hub, error = %e, "request metadata not reported");
    }
}
