//! Reporting duties at a hub, and hubs above hubs: a regional hub sends its
//! published (already suppressed) aggregate to a hub it joined, through the
//! ordinary share path, so the policy engine decides it (the agreement
//! between the hubs, the receiver's role) and the outbox delivers it. (The
//! regional directories flow up the other way: the joint body is admitted
//! to each regional hub's directory and searches it like any member, each
//! entry released under the originator's onward-sharing rule.)

use crate::exchange::{self, outbox};
use crate::hub::{held, joint, report, reporting, HubError};
use crate::node::Node;
use crate::pb;
use crate::store::records::{self, Signer};
use crate::store::StoreError;

/// Regional aggregates received from the hubs below this one.
pub fn aggregates(node: &Node) -> Result<Vec<pb::RegionalAggregate>, StoreError> {
    Ok(held(node, pb::RecordKind::RegionalAggregate)?
        .into_iter()
        .filter(|(r, p)| p.is_some() && !r.withdrawn)
        .filter_map(|(r, _)| match r.body {
            Some(pb::record::Body::RegionalAggregate(a)) => Some(a),
            _ => None,
        })
        .collect())
}

/// The statistics reports this hub received, with who sent each and when:
/// what the reporting duties are checked against (`hub::reporting`).
pub fn submissions(node: &Node) -> Result<Vec<reporting::Submission>, StoreError> {
    let mut out = Vec::new();
    for (r, p) in held(node, pb::RecordKind::StatisticsReport)? {
        let (Some(p), Some(pb::record::Body::StatisticsReport(s))) = (p, &r.body) else { continue };
        let received = p.receive_time.as_ref().and_then(crate::convert::from_timestamp);
        let start = crate::record::parse_date("", &s.period_start);
        let end = crate::record::parse_date("", &s.period_end);
        if let (Some(received), Ok(start), Ok(end)) = (received, start, end) {
            if !r.withdrawn {
                let (member, sent_by) = (r.originator.clone(), p.received_from.clone());
                out.push(reporting::Submission { member, sent_by, start, end, received });
            }
        }
    }
    Ok(out)
}

/// Where members stand with the reporting duties of the active agreements
/// naming this hub: for `period`, or each duty's last ended period.
pub fn statuses(node: &Node, period: &str) -> Result<Vec<pb::ReportingStatus>, HubError> {
    let asked = if period.is_empty() {
        None
    } else {
        Some(report::parse_period(period).map_err(|e| exchange::invalid("period", e.0))?)
    };
    let agreements: Vec<pb::Agreement> = crate::agreement::book::for_policy(node)?
        .into_iter()
        .filter(|(_, s)| *s == pb::AgreementState::Active)
        .map(|(a, _)| a)
        .collect();
    Ok(reporting::all_statuses(&agreements, node.id(), asked, &submissions(node)?, node.now()))
}

/// The regional report for `period`: members' statistics, the regions'
/// aggregates received from hubs below, and the reporting duties.
pub fn regional_report(node: &Node, period: &str) -> Result<report::Report, HubError> {
    let stats = crate::hub::statistics(node)?;
    let r = report::aggregate(&stats, period).map_err(|e| exchange::invalid("period", e.0))?;
    let r = joint::with_regions(r, &aggregates(node)?).map_err(|e| exchange::invalid("period", e.0))?;
    Ok(r.with_duties(&statuses(node, period)?))
}

/// `to` must be a hub this node joined.
fn joined(node: &Node, to: &str) -> Result<(), HubError> {
    if !crate::hub::directory::joined_hubs(node)?.iter().any(|h| h == to) {
        return Err(exchange::invalid("to", format!("{to} is not a hub this node joined")).into());
    }
    Ok(())
}

/// Publishes this hub's report for `period` as a `RegionalAggregate` record
/// (cells already suppressed; a new version when sent again) and queues it
/// for `to`. Returns the record id.
pub async fn send_aggregate(node: &Node, actor: &str, to: &str, period: &str) -> Result<String, HubError> {
    joined(node, to)?;
    let span = report::parse_period(period).map_err(|e| exchange::invalid("period", e.0))?;
    let r = report::aggregate(&crate::hub::statistics(node)?, period).map_err(|e| exchange::invalid("period", e.0))?;
    let region = match node.config().region.trim() {
        "" => node.id().to_string(),
        r => r.to_string(),
    };
    let body = joint::to_aggregate(&r, &region, span);
    let id = format!("ra-{}-{}", span.0, span.1);
    let rec = pb::Record {
        id: id.clone(),
        handling: pb::HandlingCode::Green as i32,
        body: Some(pb::record::Body::RegionalAggregate(body)),
        ..Default::default()
    };
    let signer = Signer { node_id: node.id(), key: &node.identity.signing_key, actor: actor.to_string() };
    let key = records::resolve_key(node.id(), &id);
    let existing = records::get(node.db.store(), &key)?.map(|s| s.record()).transpose()?;
    let result = match existing {
        None => records::create(&node.db, &signer, rec, node.now()).await.map(|_| ()),
        Some(cur) => {
            let noop: records::Then<'_> = &|_, _, _, _| Ok(());
            let merge: records::Merge<'_> = &|_| Ok(rec.clone());
            records::update(&node.db, &signer, &id, cur.version, node.now(), merge, noop).await.map(|_| ())
        }
    };
    result.map_err(|e| exchange::invalid("record", e.to_string()))?;
    outbox::share(node, actor, &id, to, pb::Purpose::StatisticsAndReporting).await?;
    Ok(id)
}
