//! The walk-through: set-up (cards, hub directories, agreements, records),
//! then the scenario's steps, each told as it happens through the nodes' APIs.

use crate::convert::ProtoEnum;
use std::collections::BTreeMap;

use super::narrate::{describe, spoken, Narrator};
use super::scenario::{self, Outcome, SafeguardSpec, Step};
use super::{rpc, until, DemoError, Federation, Member};
use crate::pb;

const WAIT: u64 = 60;

/// Cards, hub membership, agreements and starting records.
pub(super) async fn set_up(fed: &Federation, n: &mut Narrator) -> Result<(), DemoError> {
    let s = &fed.scenario;
    let mut cards = BTreeMap::new();
    for m in &fed.members {
        let c = m.node().get_card(pb::GetCardRequest {}).await.map_err(rpc(format!("{}: card", m.spec.id)))?;
        cards.insert(m.spec.id.clone(), c.into_inner().envelope.unwrap_or_default());
    }

    let pairs = s.direct_pairs()?;
    if !pairs.is_empty() {
        n.section(
            "Units swap node cards",
            "Parties to an agreement without a hub exchange signed node cards (in real life by e-mail or on a \
             USB stick at a meeting). Each node verifies the card's signature and pins the peer's TLS \
             certificate: from now on only that certificate gets through its federation port.",
        );
        let mut pinned: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (a, b) in &pairs {
            for (x, y) in [(a, b), (b, a)] {
                let card = cards.get(y).cloned();
                fed.member(x)?
                    .peers()
                    .add_peer(pb::AddPeerRequest { card })
                    .await
                    .map_err(rpc(format!("{x}: pin {y}")))?;
                pinned.entry(x.as_str()).or_default().push(y.as_str());
            }
        }
        for (x, ys) in pinned {
            n.info(&format!("{x} pinned {}", ys.join(", ")));
        }
    }

    for (hub, members) in s.members() {
        if members.is_empty() {
            continue;
        }
        n.section(
            &format!("{hub} admits its members"),
            "The secretariat's hub admits each member's card and signs a new version of the member directory. \
             Each member joins by pinning the hub's card; it then pins the other members from the directory, \
             which it accepts only with the pinned hub's signature.",
        );
        let h = fed.member(&hub)?;
        let mut version = 0;
        for id in &members {
            version = h
                .hub()
                .admit_member(pb::AdmitMemberRequest { card: cards.get(id).cloned() })
                .await
                .map_err(rpc(format!("{hub}: admit {id}")))?
                .into_inner()
                .directory_version;
        }
        n.ok(&format!("{hub} signed member directory version {version} with {} members", members.len()));
        for id in &members {
            let r = fed
                .member(id)?
                .hub()
                .join_hub(pb::JoinHubRequest { hub_card: cards.get(&hub).cloned() })
                .await
                .map_err(rpc(format!("{id}: join {hub}")))?
                .into_inner();
            n.info(&format!(
                "{id} joined; directory v{} pinned {}",
                r.directory_version,
                if r.pinned.is_empty() { "no new peers".into() } else { r.pinned.join(", ") }
            ));
        }
    }

    n.section(
        "Agreements are drafted, signed by every party, and become active",
        "Each agreement mirrors an MOU or SOP: who may send what to whom, for which purposes, up to which \
         handling code, what is always redacted, and the SOP's request deadlines. The first party drafts \
         and proposes it; every other party reviews and signs it from its own node. It is active only \
         when all have signed the same bytes.",
    );
    for i in 0..s.agreements.len() {
        let a = s.agreement(i)?;
        let toml = s.agreement_toml(i)?;
        let first = fed.member(&a.parties[0])?;
        first
            .agreements()
            .draft_agreement(pb::DraftAgreementRequest { toml })
            .await
            .map_err(rpc(format!("{}: draft {}", first.spec.id, a.id)))?;
        first
            .agreements()
            .propose_agreement(pb::ProposeAgreementRequest { id: a.id.clone(), version: 0 })
            .await
            .map_err(rpc(format!("{}: propose {}", first.spec.id, a.id)))?;
        for p in &a.parties[1..] {
            fed.member(p)?
                .agreements()
                .accept_agreement(pb::AcceptAgreementRequest { id: a.id.clone(), version: 0 })
                .await
                .map_err(rpc(format!("{p}: accept {}", a.id)))?;
        }
        for p in &a.parties {
            let m = fed.member(p)?;
            until(&format!("{} active at {p}", a.id), WAIT, || async {
                let r = m.agreements().get_agreement(pb::GetAgreementRequest { id: a.id.clone(), version: 0 }).await;
                r.ok().and_then(|r| r.into_inner().agreement).filter(|r| r.state == pb::AgreementState::Active as i32)
            })
            .await?;
        }
        let hub = if a.hub.is_empty() { String::new() } else { format!(", monitored by {}", a.hub) };
        n.ok(&format!("{} — {} — signed by all {} parties, active{hub}", a.id, a.title, a.parties.len()));
    }

    if !s.records.is_empty() {
        n.section(
            "Each unit keeps its own records",
            "Contact points, intelligence, entities, victim referrals and statistics are created on the node \
             that owns them. Nothing leaves a node except through an agreement.",
        );
        let mut held: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (i, r) in s.records.iter().enumerate() {
            let record = s.record(i)?;
            let line = describe(&record);
            fed.member(&r.node)?
                .records()
                .create_record(pb::CreateRecordRequest { record: Some(record), ..Default::default() })
                .await
                .map_err(rpc(format!("{}: create record {i}", r.node)))?;
            held.entry(r.node.as_str()).or_default().push(line);
        }
        for (node, lines) in held {
            n.info(&format!("{node}: {}", lines.join("; ")));
        }
    }
    Ok(())
}

pub(super) async fn walk(fed: &Federation, n: &mut Narrator) -> Result<(), DemoError> {
    for step in &fed.scenario.steps {
        match step {
            Step::Sync { by, say } => sync(fed, n, by, say).await?,
            Step::Query { by, peer, kind, text, purpose, say } => {
                query(fed, n, by, peer, kind, text, purpose, say).await?
            }
            Step::Check { by, identifiers, purpose, say } => check(fed, n, by, identifiers, purpose, say).await?,
            Step::Share { by, record, to, purpose, via, say } if !via.is_empty() => {
                n.section(&format!("{by} shares {record} with {to}, sealed, through {via}"), say);
                relayed_share(fed, n, by, record, to, purpose, via).await?;
            }
            Step::Share { by, record, to, purpose, say, .. } => {
                n.section(&format!("{by} shares {record} with {to}"), say);
                share(fed, n, by, record, to, purpose).await?;
            }
            Step::Contacts { by, text, say } => contacts(fed, n, by, text, say).await?,
            Step::Request { .. } => request(fed, n, step).await?,
            Step::VictimCase { by, with, referral, say, safeguards, transit, outcome } => {
                victim_case(fed, n, by, with, transit, referral, *outcome, say, safeguards).await?
            }
            Step::Report { hub, period, say, collect } => report(fed, n, hub, period, say, *collect).await?,
            Step::Wait { advance, say } => wait(fed, n, advance, say).await?,
            Step::Aggregate { hub, to, period, say } => aggregate(fed, n, hub, to, period, say).await?,
            Step::Indicators { hub, say } => indicators(fed, n, hub, say).await?,
        }
    }
    Ok(())
}

fn purpose(p: &str) -> i32 {
    crate::convert::purpose_from_word(p).map_or(0, |p| p as i32)
}

/// Tells of a peer that did not answer (refused, unreachable, timed out); false when it answered.
fn unanswered(n: &mut Narrator, by: &str, what: &str, peer: &str, outcome: i32, error: &str) -> bool {
    match pb::PeerOutcome::of(outcome) {
        Some(pb::PeerOutcome::Answered) => return false,
        Some(pb::PeerOutcome::Denied) => n.refused(format!("{peer} refused {by}'s {what}: {error}")),
        Some(o) => n.info(&format!("{peer}: {} ({error})", spoken(o.as_str_name(), "PEER_OUTCOME_"))),
        None => n.info(&format!("{peer}: no answer ({error})")),
    }
    true
}

async fn sync(fed: &Federation, n: &mut Narrator, by: &str, say: &str) -> Result<(), DemoError> {
    n.section(&format!("{by} synchronises with its peers"), say);
    let r = fed
        .member(by)?
        .exchange()
        .sync_now(pb::SyncNowRequest { peer: String::new() })
        .await
        .map_err(rpc(format!("{by}: sync")))?
        .into_inner();
    let total: u32 = r.peers.iter().map(|p| p.received).sum();
    for p in &r.peers {
        if p.received > 0 {
            n.info(&format!("{} record(s) from {}", p.received, p.peer));
        }
    }
    n.exchanged(format!("{by} synced {total} record(s) from {} peers", r.peers.len()));
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn query(
    fed: &Federation,
    n: &mut Narrator,
    by: &str,
    peer: &str,
    kind: &str,
    text: &str,
    p: &str,
    say: &str,
) -> Result<(), DemoError> {
    let whom = if peer.is_empty() { "every peer".to_string() } else { peer.to_string() };
    let what = if kind.is_empty() { "records".to_string() } else { spoken(kind, "") };
    let matching = if text.is_empty() { String::new() } else { format!(" matching “{text}”") };
    n.section(&format!("{by} asks {whom} for {what}{matching}"), say);
    let r = fed
        .member(by)?
        .exchange()
        .query(pb::QueryRequest {
            peer: peer.into(),
            kind: crate::convert::kind_from_word(kind).map_or(0, |k| k as i32),
            text: text.into(),
            country: String::new(),
            purpose: purpose(p),
            deadline_ms: 5000,
            limit: 20,
        })
        .await
        .map_err(rpc(format!("{by}: query")))?
        .into_inner();
    for res in r.peers {
        if unanswered(n, by, "query", &res.peer, res.outcome, &res.error) {
            continue;
        }
        if res.records.is_empty() {
            n.info(&format!("{}: nothing that matches ({} ms)", res.peer, res.elapsed_ms));
            continue;
        }
        n.exchanged(format!(
            "{} answered {by}'s {} query with {} record(s), each signed by its originator",
            res.peer,
            spoken(p, ""),
            res.records.len()
        ));
        for rec in &res.records {
            n.detail(&describe(rec));
        }
    }
    Ok(())
}

async fn check(
    fed: &Federation,
    n: &mut Narrator,
    by: &str,
    ids: &[scenario::IdentifierSpec],
    p: &str,
    say: &str,
) -> Result<(), DemoError> {
    let shown: Vec<String> = ids.iter().map(|i| format!("{} {}", spoken(&i.kind, ""), i.value)).collect();
    n.section(&format!("{by} checks {} against every peer", shown.join(" and ")), say);
    let r = fed
        .member(by)?
        .exchange()
        .check_identifiers(pb::CheckIdentifiersRequest {
            peer: String::new(),
            identifiers: ids
                .iter()
                .map(|i| pb::IdentifierQuery {
                    r#type: crate::record::parse_identifier_type(&i.kind).map_or(0, |t| t as i32),
                    value: i.value.clone(),
                })
                .collect(),
            purpose: purpose(p),
            deadline_ms: 5000,
        })
        .await
        .map_err(rpc(format!("{by}: check")))?
        .into_inner();
    for res in r.peers {
        if unanswered(n, by, "check", &res.peer, res.outcome, &res.error) {
            continue;
        }
        let hits: Vec<&pb::HitResult> = res.results.iter().filter(|h| h.hit).collect();
        if hits.is_empty() {
            n.info(&format!("{}: no hit", res.peer));
        }
        for h in hits {
            n.exchanged(format!(
                "HIT at {} for {} — reference {} to cite in a formal request; nothing else was disclosed",
                res.peer, h.identifier, h.reference
            ));
        }
    }
    Ok(())
}

/// Shares a record and waits for the receiver's signed receipt.
async fn share(
    fed: &Federation,
    n: &mut Narrator,
    by: &str,
    record: &str,
    to: &str,
    p: &str,
) -> Result<bool, DemoError> {
    let m = fed.member(by)?;
    let r = match m
        .exchange()
        .share_record(pb::ShareRecordRequest {
            record_id: record.into(),
            peer: to.into(),
            purpose: purpose(p),
            ..Default::default()
        })
        .await
    {
        Ok(r) => r.into_inner(),
        Err(s) if s.code() == tonic::Code::PermissionDenied => {
            n.refused(format!("{by} may not share {record} with {to}: {}", s.message()));
            return Ok(false);
        }
        Err(s) => return Err(rpc(format!("{by}: share {record}"))(s)),
    };
    let delivery = r.item.map(|i| i.delivery_id).unwrap_or_default();
    let item = until(&format!("{record} delivered to {to}"), WAIT, || async {
        let items = m
            .exchange()
            .list_outbox(pb::ListOutboxRequest { all: true, page_size: 1000, ..Default::default() })
            .await
            .ok()?
            .into_inner()
            .items;
        items.into_iter().find(|i| i.delivery_id == delivery && i.state != pb::OutboxState::Pending as i32)
    })
    .await?;
    let redacted = if r.redacted_fields.is_empty() {
        String::new()
    } else {
        format!("; redacted: {}", r.redacted_fields.join(", "))
    };
    if item.state == pb::OutboxState::Delivered as i32 && item.receipt.is_none() {
        // Handed to a hub's relay: the hub holds it until the recipient takes it.
        n.ok(&format!(
            "{record} sealed for {to} under {} for {}{redacted}; {}",
            r.agreement_id,
            spoken(p, ""),
            item.last_error
        ));
        Ok(true)
    } else if item.state == pb::OutboxState::Delivered as i32 {
        n.exchanged(format!(
            "{record} delivered to {to} under {} for {}{redacted}; {to} signed the receipt",
            r.agreement_id,
            spoken(p, "")
        ));
        Ok(true)
    } else {
        n.refused(format!("{to} refused {record}: {}", item.last_error));
        Ok(false)
    }
}

/// A share with no direct route: sealed to the recipient's key and carried by a hub.
#[allow(clippy::too_many_arguments)]
async fn relayed_share(
    fed: &Federation,
    n: &mut Narrator,
    by: &str,
    record: &str,
    to: &str,
    p: &str,
    via: &str,
) -> Result<(), DemoError> {
    let m = fed.member(by)?;
    m.peers()
        .set_peer_route(pb::SetPeerRouteRequest { node_id: to.into(), via: via.into() })
        .await
        .map_err(rpc(format!("{by}: route {to} via {via}")))?;
    n.info(&format!("{by} routes everything for {to} through {via}"));
    if !share(fed, n, by, record, to, p).await? {
        return Ok(());
    }
    let dest = fed.member(to)?;
    let key = format!("{by}/{record}");
    let got = until(&format!("{key} at {to}"), WAIT, || async {
        let req = pb::GetRecordRequest { id: key.clone(), masked: true, ..Default::default() };
        let r = dest.records().get_record(req).await.ok()?;
        r.into_inner().record
    })
    .await?;
    n.exchanged(format!("{} arrived at {to} through {via}, checked against {by}'s key", describe(&got)));
    let hub = fed.member(via)?;
    let forwarded = until(&format!("{via} logs the relay"), WAIT, || async {
        let req = pb::ListAuditEntriesRequest {
            action_prefix: "relay.forwarded".into(),
            limit: 100,
            after_seq: 0,
            ..Default::default()
        };
        let log = hub.audit().list_audit_entries(req).await.ok()?.into_inner();
        log.entries.into_iter().last()
    })
    .await?;
    n.info(&format!("{via}'s log: “{}” — all it could see", forwarded.reason));
    Ok(())
}

async fn contacts(fed: &Federation, n: &mut Narrator, by: &str, text: &str, say: &str) -> Result<(), DemoError> {
    n.section(&format!("{by} searches the regional contact-point directory for “{text}”"), say);
    let r = fed
        .member(by)?
        .exchange()
        .search_region(pb::SearchRegionRequest { text: text.into(), country: String::new() })
        .await
        .map_err(rpc(format!("{by}: regional search")))?
        .into_inner();
    if r.records.is_empty() {
        n.info("no entry matches");
    }
    for rec in &r.records {
        let verified = match &rec.body {
            Some(pb::record::Body::ContactPoint(c)) => c.last_verified.clone(),
            _ => String::new(),
        };
        n.ok(&format!("{} (from {}, last verified {verified})", describe(rec), rec.originator));
    }
    n.exchanged(format!(
        "{by} found {} entr{} for “{text}” in the regional directory, each verified against its originator's key",
        r.records.len(),
        if r.records.len() == 1 { "y" } else { "ies" }
    ));
    Ok(())
}

async fn request(fed: &Federation, n: &mut Narrator, step: &Step) -> Result<(), DemoError> {
    let Step::Request { by, to, request_type, purpose: p, subject, urgent, agreement, advance, say } = step else {
        return Ok(());
    };
    n.section(&format!("{by} sends {to} a formal request: {}", spoken(request_type, "")), say);
    let from = fed.member(by)?;
    let dest = fed.member(to)?;
    let sent = from
        .requests()
        .send_request(pb::SendRequestRequest {
            to: to.clone(),
            request_type: request_type.clone(),
            purpose: purpose(p),
            urgent: *urgent,
            subject: subject.clone(),
            body: String::new(),
            refs: vec![],
            agreement_id: agreement.clone(),
            ..Default::default()
        })
        .await
        .map_err(rpc(format!("{by}: send request")))?
        .into_inner()
        .request
        .unwrap_or_default();
    let h = sent.header.clone().unwrap_or_default();
    let due = |t: &Option<pbjson_types::Timestamp>| {
        t.as_ref()
            .and_then(crate::convert::from_timestamp)
            .map(|t| format!("{} {:02}:{:02} UTC", t.date(), t.hour(), t.minute()))
            .unwrap_or_default()
    };
    n.exchanged(format!(
        "request {} “{subject}” sent under {}: acknowledge by {}, answer by {}",
        sent.id,
        h.agreement_id,
        due(&sent.ack_due),
        due(&sent.answer_due)
    ));
    let get = |m: &Member, id: String| {
        let mut c = m.requests();
        async move { c.get_request(pb::GetRequestRequest { id }).await.ok().and_then(|r| r.into_inner().request) }
    };
    until(&format!("{} at {to}", sent.id), WAIT, || get(dest, sent.id.clone())).await?;
    n.info(&format!("{to} holds the request in its inbox, with the same deadlines"));
    let Some(clock) = &fed.clock else {
        n.info("(the deadline part needs the demo's shared clock; skipped when attached to separate processes)");
        return Ok(());
    };
    let secs = crate::agreement::parse_duration("advance", advance).map_err(|e| DemoError::Setup(e.to_string()))?;
    n.info(&format!("nobody at {to} acknowledges it; the demo moves every node's clock forward {advance}"));
    clock.advance(time::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX)));
    let overdue = until(&format!("{} overdue at {to}", sent.id), WAIT, || async {
        get(dest, sent.id.clone()).await.filter(|r| r.overdue && !r.escalations.is_empty())
    })
    .await?;
    until(&format!("{} overdue at {by}", sent.id), WAIT, || async {
        get(from, sent.id.clone()).await.filter(|r| r.overdue)
    })
    .await?;
    for e in &overdue.escalations {
        let role = pb::ContactRole::of(e.role).map(|r| spoken(r.as_str_name(), "CONTACT_ROLE_")).unwrap_or_default();
        let who = if e.contact_name.is_empty() { "no contact on file".into() } else { e.contact_name.clone() };
        n.escalated(format!(
            "{} is overdue on both nodes ({} deadline passed): escalated once to {to}'s {role}, {who}",
            sent.id, e.deadline
        ));
    }
    Ok(())
}

/// Fields of a safeguard merged into the referral, then saved as a new version.
async fn record_safeguard(m: &Member, referral: &str, g: &SafeguardSpec) -> Result<(), DemoError> {
    let got = m
        .records()
        .get_record(pb::GetRecordRequest {
            id: referral.into(),
            masked: false,
            // The new version keeps the identity: read it, audited.
            reason: "recording a safeguard on the referral".into(),
        })
        .await
        .map_err(rpc(format!("{}: get {referral}", m.spec.id)))?
        .into_inner()
        .record
        .unwrap_or_default();
    let version = got.version;
    let mut record = got;
    scenario::merge_referral(&mut record, &g.set).map_err(|e| DemoError::Setup(format!("safeguard fields: {e}")))?;
    m.records()
        .update_record(pb::UpdateRecordRequest {
            record: Some(record),
            expected_version: version,
            ..Default::default()
        })
        .await
        .map_err(rpc(format!("{}: update {referral}", m.spec.id)))?;
    Ok(())
}

/// The version of `id` a node holds (0: none).
async fn held_version(m: &Member, id: &str) -> u64 {
    let got = m.records().get_record(pb::GetRecordRequest { id: id.into(), masked: true, reason: String::new() }).await;
    got.ok().and_then(|r| r.into_inner().record).map_or(0, |r| r.version)
}

/// One victim case from referral to its outcome: the referral is shared
/// with the country of origin (and any transit country), the case opened,
/// identification confirmed by the country of origin, then each step of the
/// outcome's path tried; a refused step records the next safeguard and is
/// tried again. Transit countries record their own in-transit steps.
#[allow(clippy::too_many_arguments)]
async fn victim_case(
    fed: &Federation,
    n: &mut Narrator,
    by: &str,
    with: &str,
    transit: &[String],
    referral: &str,
    outcome: Outcome,
    say: &str,
    safeguards: &[SafeguardSpec],
) -> Result<(), DemoError> {
    use pb::CaseStage as C;
    let title = match outcome {
        Outcome::Return if transit.is_empty() => {
            format!("A victim's return from {by} to {with}, one safeguard at a time")
        }
        Outcome::Return => {
            format!("A victim's return from {by} to {with} through {}, one safeguard at a time", transit.join(", "))
        }
        Outcome::ResidencePermit => format!("A victim referred by {by} to {with} stays in {by}'s country"),
        Outcome::Asylum => format!("A victim referred by {by} to {with} is referred to asylum instead"),
        Outcome::ServiceProvider => format!("A victim referred by {by} to {with} goes to a service provider"),
    };
    n.section(&title, say);
    let m = fed.member(by)?;
    if !share(fed, n, by, referral, with, "victim_identification").await? {
        return Err(DemoError::Setup(format!("the referral {referral} did not reach {with}")));
    }
    for t in transit {
        if !share(fed, n, by, referral, t, "return_and_reintegration").await? {
            return Err(DemoError::Setup(format!("the referral {referral} did not reach {t}")));
        }
    }
    let case = m
        .cases()
        .open_case(pb::OpenCaseRequest {
            referral_record_id: referral.into(),
            receiving_node: with.into(),
            transit_nodes: transit.to_vec(),
            ..Default::default()
        })
        .await
        .map_err(rpc(format!("{by}: open case")))?
        .into_inner()
        .case
        .unwrap_or_default();
    let via = if transit.is_empty() { String::new() } else { format!(" (transit: {})", transit.join(", ")) };
    n.info(&format!("{by} opened case {} with {with}{via}", case.id));
    let stage_at = |m: &Member, id: String, want: C| {
        let mut c = m.cases();
        async move {
            let r = c.get_case(pb::GetCaseRequest { id }).await.ok()?;
            r.into_inner().case.filter(|c| c.stage == want as i32)
        }
    };
    // The receiving country, where the person comes from, confirms the
    // identification (identity and nationality verified there).
    let other = fed.member(with)?;
    until(&format!("case {} at {with}", case.id), WAIT, || stage_at(other, case.id.clone(), C::Referral)).await?;
    other
        .cases()
        .advance_case(pb::AdvanceCaseRequest {
            id: case.id.clone(),
            to: C::IdentificationConfirmed as i32,
            note: "identity and nationality verified with the family".into(),
            ..Default::default()
        })
        .await
        .map_err(rpc(format!("{with}: confirm identification")))?;
    n.exchanged(format!("{}: {with} confirms the identification (identity and nationality verified)", case.id));
    until(&format!("the confirmation at {by}"), WAIT, || stage_at(m, case.id.clone(), C::IdentificationConfirmed))
        .await?;
    let path: Vec<(C, &str)> = match outcome {
        Outcome::Return => vec![
            (C::Assistance, "shelter, medical care and counselling"),
            (C::ReturnPlanned, "travel documents and escort arranged"),
        ],
        Outcome::ResidencePermit => vec![
            (C::Assistance, "shelter, medical care and counselling"),
            (C::ResidencePermit, "she stays, with a residence permit"),
        ],
        Outcome::Asylum => vec![
            (C::Assistance, "shelter, medical care and counselling"),
            (C::AsylumReferral, "referred to the asylum authority; no return while the claim is pending"),
        ],
        Outcome::ServiceProvider => vec![
            (C::Assistance, "shelter, medical care and counselling"),
            (C::ServiceReferral, "referred to a service provider for long-term support"),
        ],
    };
    let mut pending = safeguards.iter();
    let mut steps = Vec::new();
    for (to, note) in path {
        advance_with_safeguards(fed, n, by, referral, &case.id, to, note, &mut pending).await?;
        steps.push(to);
    }
    if outcome == Outcome::Return {
        for t in transit {
            let tm = fed.member(t)?;
            // The transit node checks the return's safeguards against its own
            // copy of the referral: wait until it holds the latest version.
            let latest = held_version(m, referral).await;
            let key = format!("{by}/{referral}");
            until(&format!("{referral} v{latest} at {t}"), WAIT, || async {
                (held_version(tm, &key).await >= latest).then_some(())
            })
            .await?;
            let before = steps.last().copied().unwrap_or(C::ReturnPlanned);
            until(&format!("case {} at {t}", case.id), WAIT, || stage_at(tm, case.id.clone(), before)).await?;
            tm.cases()
                .advance_case(pb::AdvanceCaseRequest {
                    id: case.id.clone(),
                    to: C::InTransit as i32,
                    note: "escorted through the country to the next border".into(),
                    ..Default::default()
                })
                .await
                .map_err(rpc(format!("{t}: in transit")))?;
            n.exchanged(format!("{}: {t} escorts her through its territory and records the in-transit step", case.id));
            until(&format!("the transit step at {by}"), WAIT, || {
                let mut c = m.cases();
                let id = case.id.clone();
                let done = steps.iter().filter(|s| **s == C::InTransit).count();
                async move {
                    let r = c.get_case(pb::GetCaseRequest { id }).await.ok()?.into_inner().case?;
                    (r.history.iter().filter(|e| e.to == C::InTransit as i32).count() > done).then_some(())
                }
            })
            .await?;
            steps.push(C::InTransit);
        }
        let note = "handed over to the receiving social workers";
        advance_with_safeguards(fed, n, by, referral, &case.id, C::Returned, note, &mut pending).await?;
        until(&format!("case {} returned at {with}", case.id), WAIT, || stage_at(other, case.id.clone(), C::Returned))
            .await?;
        other
            .cases()
            .advance_case(pb::AdvanceCaseRequest {
                id: case.id.clone(),
                to: C::ReintegrationFollowUp as i32,
                note: "reintegration plan agreed with the family".into(),
                ..Default::default()
            })
            .await
            .map_err(rpc(format!("{with}: follow-up")))?;
        n.exchanged(format!("{}: {with} records reintegration follow-up; every party holds the same history", case.id));
    } else {
        let last = steps.last().copied().unwrap_or(C::Assistance);
        until(&format!("case {} at {with}", case.id), WAIT, || stage_at(other, case.id.clone(), last)).await?;
        n.ok(&format!("{}: {with} holds the same history; no return will be planned", case.id));
    }
    for g in pending {
        n.info(&format!("(not needed this time: {})", g.say));
    }
    Ok(())
}

/// Moves the case at `by` to `to`, recording the scenario's next safeguard
/// each time the step is refused for a missing one.
#[allow(clippy::too_many_arguments)]
async fn advance_with_safeguards(
    fed: &Federation,
    n: &mut Narrator,
    by: &str,
    referral: &str,
    case: &str,
    to: pb::CaseStage,
    note: &str,
    pending: &mut std::slice::Iter<'_, SafeguardSpec>,
) -> Result<(), DemoError> {
    let m = fed.member(by)?;
    let stage = spoken(to.as_str_name(), "CASE_STAGE_");
    loop {
        let r = m
            .cases()
            .advance_case(pb::AdvanceCaseRequest {
                id: case.into(),
                to: to as i32,
                note: note.into(),
                ..Default::default()
            })
            .await;
        match r {
            Ok(_) => {
                n.exchanged(format!("{case}: {stage} ({note}); every party receives the signed step"));
                return Ok(());
            }
            Err(s) if s.code() == tonic::Code::FailedPrecondition => {
                n.refused(format!("{case}: {stage} blocked — {}", s.message()));
                let Some(g) = pending.next() else {
                    return Err(DemoError::Setup(format!("no safeguard left to record for {stage}")));
                };
                n.info(&g.say);
                record_safeguard(m, referral, g).await?;
            }
            Err(s) => return Err(rpc(format!("{by}: advance case"))(s)),
        }
    }
}

async fn wait(fed: &Federation, n: &mut Narrator, advance: &str, say: &str) -> Result<(), DemoError> {
    n.section(&format!("{advance} pass"), say);
    let Some(clock) = &fed.clock else {
        n.info("(moving the clock needs the demo's shared clock; skipped when attached to separate processes)");
        return Ok(());
    };
    let secs = crate::agreement::parse_duration("advance", advance).map_err(|e| DemoError::Setup(e.to_string()))?;
    clock.advance(time::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX)));
    n.info(&format!("the demo moves every node's clock forward {advance}"));
    Ok(())
}

async fn aggregate(
    fed: &Federation,
    n: &mut Narrator,
    hub: &str,
    to: &str,
    period: &str,
    say: &str,
) -> Result<(), DemoError> {
    n.section(&format!("{hub} sends its published {period} figures up to {to}"), say);
    let r = fed
        .member(hub)?
        .hub()
        .send_aggregate(pb::SendAggregateRequest { to: to.into(), period: period.into() })
        .await
        .map_err(rpc(format!("{hub}: send aggregate")))?
        .into_inner();
    let key = format!("{hub}/{}", r.record_id);
    let up = fed.member(to)?;
    until(&format!("{key} at {to}"), WAIT, || async { (held_version(up, &key).await > 0).then_some(()) }).await?;
    n.exchanged(format!(
        "{} reached {to}: the region's rows as published, every figure under 5 already hidden",
        r.record_id
    ));
    Ok(())
}

async fn report(
    fed: &Federation,
    n: &mut Narrator,
    hub: &str,
    period: &str,
    say: &str,
    collect: bool,
) -> Result<(), DemoError> {
    n.section(&format!("{hub} compiles the regional report for {period}"), say);
    let s = &fed.scenario;
    let members = s.members().get(hub).cloned().unwrap_or_default();
    for (i, r) in s.records.iter().enumerate().filter(|_| collect) {
        let rec = s.record(i)?;
        let is_stats = matches!(rec.body, Some(pb::record::Body::StatisticsReport(_)));
        if is_stats && members.contains(&r.node) {
            share(fed, n, &r.node, &rec.id, hub, "statistics_and_reporting").await?;
        }
    }
    let r = fed
        .member(hub)?
        .hub()
        .regional_report(pb::RegionalReportRequest { period: period.into(), format: "md".into() })
        .await
        .map_err(rpc(format!("{hub}: report")))?
        .into_inner();
    n.detail(&r.content);
    let duties = fed
        .member(hub)?
        .hub()
        .reporting_statuses(pb::ReportingStatusesRequest { period: period.into() })
        .await
        .map_err(rpc(format!("{hub}: reporting statuses")))?
        .into_inner()
        .statuses;
    for d in &duties {
        let line = format!("{} {}: {} {}", d.member, d.duty, d.period, d.state.replace('_', " "));
        match d.state.as_str() {
            "on_time" => n.ok(&line),
            "late" | "missing" => n.refused(line),
            _ => n.info(&line),
        }
    }
    n.info(&format!(
        "the same report as CSV, JSON or HTML with charts: liaison hub report --period {period} --format html"
    ));
    Ok(())
}

async fn indicators(fed: &Federation, n: &mut Narrator, hub: &str, say: &str) -> Result<(), DemoError> {
    n.section(&format!("{hub} shows how members keep their SOP deadlines"), say);
    let r = fed
        .member(hub)?
        .hub()
        .compliance_indicators(pb::ComplianceIndicatorsRequest {})
        .await
        .map_err(rpc(format!("{hub}: indicators")))?
        .into_inner();
    if r.pairs.is_empty() {
        n.info("no request metadata has reached the hub yet");
    }
    for p in &r.pairs {
        n.info(&format!(
            "{} → {}: {} request(s), {:.0}% acknowledged on time, {:.0}% answered on time",
            p.from,
            p.to,
            p.requests,
            p.acknowledged_on_time * 100.0,
            p.answered_on_time * 100.0
        ));
    }
    Ok(())
}

/// Every node's audit chain verifies.
pub(super) async fn verify_audit(fed: &Federation, n: &mut Narrator) -> Result<(), DemoError> {
    n.section(
        "Every node proves its audit log was not edited",
        "Each node hash-chains every action it took or refused and signs checkpoints with its key.",
    );
    let mut total = 0;
    for m in &fed.members {
        let r = m
            .audit()
            .verify_audit(pb::VerifyAuditRequest {})
            .await
            .map_err(rpc(format!("{}: verify audit", m.spec.id)))?
            .into_inner();
        if !r.ok {
            n.refused(format!("{}: audit chain broken at {}: {}", m.spec.id, r.first_bad_seq, r.problem));
            return Err(DemoError::Setup(format!("{}: audit chain does not verify", m.spec.id)));
        }
        total += r.entries;
    }
    n.ok(&format!("{total} audit entries on {} nodes, every chain intact", fed.members.len()));
    Ok(())
}
