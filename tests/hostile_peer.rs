//! A hostile peer against real nodes: it holds a pinned certificate and a
//! valid signing key, calls the federation port directly and ignores its own
//! policy. Each test sends what the grant does not allow (or what arrives
//! after the agreement is suspended or revoked) and checks that nothing is
//! stored, shown or applied.

mod common;

use common::*;
use liaison::envelope::payload;
use liaison::pb;
use liaison::pb::record::Body;
use prost::Message;

const MOU_ID: &str = "th-kh";

fn entity(id: &str) -> pb::Record {
    let mut r = liaison::record::examples::entity();
    r.id = id.into();
    r
}

fn referral(id: &str, consent: pb::ConsentStatus, notes: &str) -> pb::Record {
    let mut r = liaison::record::examples::victim_referral();
    r.id = id.into();
    if let Some(Body::VictimReferral(v)) = r.body.as_mut() {
        if let Some(c) = v.consent.as_mut() {
            c.status = consent as i32;
        }
        v.notes = notes.into();
    }
    r
}

fn without_evidence(mut r: pb::Record) -> pb::Record {
    if let Some(Body::Entity(e)) = r.body.as_mut() {
        e.evidence_basis.clear();
    }
    r.redacted_fields = vec!["entity.evidence_basis".into()];
    r
}

/// Pushes `env` as a share and returns the receiver's signed receipt, decoded.
async fn push_env(h: &mut Hostile, env: pb::Envelope, purpose: pb::Purpose) -> Result<pb::Receipt, tonic::Status> {
    let req = pb::PushRecordRequest {
        delivery_id: liaison::exchange::random_id("dlv"),
        shared: Some(pb::SharedRecord {
            record: Some(env),
            agreement_id: MOU_ID.into(),
            agreement_version: 1,
            onward_sharing: pb::OnwardSharing::Forbidden as i32,
            retention_days: 0,
        }),
        purpose: purpose as i32,
        consent: None,
    };
    let receipt = h.client.push_record(req).await?.into_inner().receipt.expect("a receipt");
    Ok(liaison::envelope::decode::<pb::Receipt>(&receipt).unwrap())
}

async fn push(h: &mut Hostile, rec: &pb::Record, purpose: pb::Purpose) -> Result<pb::Receipt, tonic::Status> {
    let env = h.seal(payload::RECORD, rec);
    push_env(h, env, purpose).await
}

async fn held(node: &TestNode, key: &str) -> Option<pb::Record> {
    let mut c = node.records().await;
    c.get_record(pb::GetRecordRequest { id: key.into(), reason: "integration test".into(), ..Default::default() })
        .await
        .ok()
        .and_then(|r| r.into_inner().record)
}

fn state(node: &TestNode, id: &str, version: u32) -> String {
    let v = version.to_string();
    node.cli_json(&["agreement", "show", id, "--version", &v])["agreement"]["state"].as_str().unwrap().to_string()
}

async fn query(
    h: &mut Hostile,
    kind: pb::RecordKind,
    purpose: pb::Purpose,
    text: &str,
) -> Result<usize, tonic::Status> {
    let r = h
        .client
        .query_records(pb::QueryRecordsRequest {
            kind: kind as i32,
            text: text.into(),
            country: String::new(),
            purpose: purpose as i32,
            limit: 0,
        })
        .await?;
    Ok(r.into_inner().records.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receiver_refuses_a_record_carrying_what_its_own_decision_withholds() {
    let root = tempfile::tempdir().unwrap();
    let (th, kh) = th_kh_under_mou(root.path());
    let mut h = Hostile::new(&kh, &th);

    // Victim identity without recorded consent: refused, and nothing stored.
    let vr = originated("kh-antht", referral("vr-1", pb::ConsentStatus::Refused, ""));
    let r = push(&mut h, &vr, pb::Purpose::VictimIdentification).await.unwrap();
    assert!(!r.delivered, "{r:?}");
    assert!(r.reason.starts_with("victim_consent_missing"), "{}", r.reason);
    assert!(held(&th, "kh-antht/vr-1").await.is_none(), "the victim's identity was stored");

    // Identity with consent, but notes the grant never releases: refused, naming the field.
    let vr = originated("kh-antht", referral("vr-2", pb::ConsentStatus::Given, "met her brother in Poipet"));
    let r = push(&mut h, &vr, pb::Purpose::VictimIdentification).await.unwrap();
    assert!(!r.delivered);
    assert!(r.reason.contains("withheld_field_carried") && r.reason.contains("victim_referral.notes"), "{}", r.reason);
    assert!(held(&th, "kh-antht/vr-2").await.is_none());

    // Identity for a purpose that never releases it: refused.
    let vr = originated("kh-antht", referral("vr-3", pb::ConsentStatus::Given, ""));
    let r = push(&mut h, &vr, pb::Purpose::Investigation).await.unwrap();
    assert!(!r.delivered, "{r:?}");

    // An entity with the evidence basis the MOU always redacts: refused, naming it.
    let en = originated("kh-antht", entity("en-1"));
    let r = push(&mut h, &en, pb::Purpose::Investigation).await.unwrap();
    assert!(!r.delivered);
    assert!(r.reason.contains("entity.evidence_basis"), "{}", r.reason);
    assert!(held(&th, "kh-antht/en-1").await.is_none());

    // The properly redacted copy is taken.
    let ok = originated("kh-antht", without_evidence(entity("en-1")));
    let r = push(&mut h, &ok, pb::Purpose::Investigation).await.unwrap();
    assert!(r.delivered, "{r:?}");
    assert!(held(&th, "kh-antht/en-1").await.is_some());

    // Every refusal is on TH's audit log with its reason.
    let refused = audit_entries(&th, "exchange.push.refused");
    assert!(refused.len() >= 4, "{refused:?}");
    assert!(th.cli_ok(&["audit", "verify"]).contains("intact"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn received_records_are_validated_redacted_or_not_and_never_change_kind() {
    let root = tempfile::tempdir().unwrap();
    let (th, kh) = th_kh_under_mou(root.path());
    let mut h = Hostile::new(&kh, &th);
    let invalid = |r: Result<pb::Receipt, tonic::Status>| {
        let s = r.expect_err("must be refused");
        assert_eq!(s.code(), tonic::Code::InvalidArgument, "{s:?}");
        bad_field(&s).unwrap_or_default()
    };

    // Redacted copies are validated too: a 100,000-character name, an unknown enum, absurd times.
    let mut long = without_evidence(entity("en-long"));
    if let Some(Body::Entity(e)) = long.body.as_mut() {
        e.names = vec!["x".repeat(100_000)];
    }
    assert_eq!(
        invalid(push(&mut h, &originated("kh-antht", long), pb::Purpose::Investigation).await),
        "record.entity.names[0]"
    );
    let mut odd = without_evidence(entity("en-odd"));
    if let Some(Body::Entity(e)) = odd.body.as_mut() {
        e.entity_type = 77;
    }
    assert_eq!(
        invalid(push(&mut h, &originated("kh-antht", odd), pb::Purpose::Investigation).await),
        "record.entity.entity_type"
    );
    let mut late = originated("kh-antht", without_evidence(entity("en-late")));
    late.update_time = Some(pbjson_types::Timestamp { seconds: 253_402_300_800_000, nanos: 0 });
    assert_eq!(invalid(push(&mut h, &late, pb::Purpose::Investigation).await), "record.update_time");
    let mut foreign = originated("kh-antht", without_evidence(entity("en-foreign")));
    foreign.redacted_fields.push("victim_referral.identity".into());
    assert_eq!(invalid(push(&mut h, &foreign, pb::Purpose::Investigation).await), "record.redacted_fields[1]");

    // Two kind bodies in one signed record: decoding would keep only the last one.
    let mut two = originated("kh-antht", without_evidence(entity("en-two"))).encode_to_vec();
    let vr = pb::Record { body: referral("x", pb::ConsentStatus::Given, "").body, ..Default::default() };
    two.extend(vr.encode_to_vec());
    let env = liaison::envelope::seal_bytes(payload::RECORD, two, "kh-antht", &h.identity.signing_key);
    assert_eq!(invalid(push_env(&mut h, env, pb::Purpose::Investigation).await), "record.body");

    // A later version may never change the kind: an entity cannot become a referral.
    let v1 = originated("kh-antht", without_evidence(entity("en-k")));
    assert!(push(&mut h, &v1, pb::Purpose::Investigation).await.unwrap().delivered);
    let mut v2 = originated("kh-antht", referral("en-k", pb::ConsentStatus::Given, ""));
    v2.version = 2;
    if let Some(Body::VictimReferral(v)) = v2.body.as_mut() {
        v.identity = None;
    }
    let r = push(&mut h, &v2, pb::Purpose::VictimIdentification).await.unwrap();
    assert!(!r.delivered && r.reason.contains("kind"), "{r:?}");
    let kept = held(&th, "kh-antht/en-k").await.expect("v1 still held");
    assert_eq!(kept.version, 1);
    assert!(matches!(kept.body, Some(Body::Entity(_))));

    // Nothing bad was stored: export still works and lists only what was taken.
    let out = root.path().join("th-export.jsonl");
    th.cli_ok(&["export", "--out", &out.display().to_string()]);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("en-k") && !text.contains("en-long") && !text.contains("en-odd"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_matches_only_what_the_caller_would_receive() {
    let root = tempfile::tempdir().unwrap();
    let (th, kh) = th_kh_under_mou(root.path());
    // TH holds a referral (identity, no consent) and an entity whose evidence basis the MOU redacts.
    let mut vr = referral("vr-search", pb::ConsentStatus::Refused, "");
    if let Some(Body::VictimReferral(v)) = vr.body.as_mut() {
        v.identity.as_mut().unwrap().full_name = "Sreymom Zyxwv".into();
    }
    create(&th, vr).await;
    let mut en = entity("en-search");
    if let Some(Body::Entity(e)) = en.body.as_mut() {
        e.evidence_basis = "informant Qwertyuiop saw the transfer".into();
    }
    create(&th, en).await;

    // Local listing: the name is not searchable (listings are pseudonymised).
    let mut c = th.records().await;
    let list = |text: &str| pb::ListRecordsRequest { text: text.into(), ..Default::default() };
    assert!(c.list_records(list("zyxwv")).await.unwrap().into_inner().records.is_empty(), "name searchable");
    assert_eq!(c.list_records(list("VR-KH")).await.unwrap().into_inner().records.len(), 1, "pseudonym is");

    // Federation query: words held only in withheld fields never make a match.
    let mut h = Hostile::new(&kh, &th);
    assert_eq!(
        query(&mut h, pb::RecordKind::VictimReferral, pb::Purpose::VictimIdentification, "zyxwv").await.unwrap(),
        0
    );
    assert_eq!(query(&mut h, pb::RecordKind::VictimReferral, pb::Purpose::VictimIdentification, "").await.unwrap(), 1);
    assert_eq!(query(&mut h, pb::RecordKind::Entity, pb::Purpose::Investigation, "qwertyuiop").await.unwrap(), 0);
    assert_eq!(query(&mut h, pb::RecordKind::Entity, pb::Purpose::Investigation, "").await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_feed_is_pseudonymised() {
    let root = tempfile::tempdir().unwrap();
    let mut th = TestNode::init(root.path(), "th-atpd", "TH");
    th.start();
    let mut vr = referral("vr-feed", pb::ConsentStatus::Given, "she fears the recruiter");
    if let Some(Body::VictimReferral(v)) = vr.body.as_mut() {
        v.identity.as_mut().unwrap().full_name = "Sreymom Feedname".into();
    }
    create(&th, vr).await;
    let mut feed = pb::change_service_client::ChangeServiceClient::new(th.authed().await);
    let mut s =
        feed.watch_changes(pb::WatchChangesRequest { since_seq: 0, no_follow: true }).await.unwrap().into_inner();
    let mut seen = 0;
    while let Some(item) = s.message().await.unwrap() {
        let Some(rec) = item.record else { continue };
        seen += 1;
        let Some(Body::VictimReferral(v)) = rec.body else { continue };
        assert!(v.identity.is_none(), "identity in the feed: {:?}", v.identity);
        assert!(v.notes.is_empty(), "notes in the feed");
        assert!(rec.redacted_fields.iter().any(|f| f.starts_with("victim_referral.identity")));
    }
    assert!(seen >= 1);
}

/// The agreement as KH would deliver a new version: same terms, version 2,
/// signed by KH alone.
fn planted_v2(h: &Hostile) -> pb::Envelope {
    let mut doc = liaison::agreement::parse_toml(&bilateral(MOU_ID, "th-atpd", "kh-antht", 365, MOU_GRANTS)).unwrap();
    doc.version = 2;
    h.seal(payload::AGREEMENT, &doc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_version_never_absorbs_a_suspension() {
    let root = tempfile::tempdir().unwrap();
    let (th, kh) = th_kh_under_mou(root.path());
    let mut h = Hostile::new(&kh, &th);
    create(&th, contact_point("cp-1", "Duty desk")).await;
    assert_eq!(query(&mut h, pb::RecordKind::ContactPoint, pb::Purpose::Coordination, "").await.unwrap(), 1);

    // KH plants an unsigned "version 2"; TH keeps it as a proposal.
    h.client.deliver_agreement(pb::DeliverAgreementRequest { agreement: Some(planted_v2(&h)) }).await.unwrap();
    assert_eq!(state(&th, MOU_ID, 2), "AGREEMENT_STATE_PROPOSED");

    // Suspending "the agreement" suspends the version in force, not the proposal.
    th.cli_ok(&["agreement", "suspend", MOU_ID, "--reason", "review"]);
    assert_eq!(state(&th, MOU_ID, 1), "AGREEMENT_STATE_SUSPENDED");
    assert_eq!(state(&kh, MOU_ID, 1), "AGREEMENT_STATE_SUSPENDED", "KH got the notice for v1");
    let err = query(&mut h, pb::RecordKind::ContactPoint, pb::Purpose::Coordination, "").await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");

    // A suspension held on any version applies to every version: suspending v2
    // explicitly (as the notice of an honest amendment would) still stops v1.
    th.cli_ok(&["agreement", "resume", MOU_ID, "--reason", "done"]);
    assert_eq!(state(&th, MOU_ID, 1), "AGREEMENT_STATE_ACTIVE");
    assert_eq!(query(&mut h, pb::RecordKind::ContactPoint, pb::Purpose::Coordination, "").await.unwrap(), 1);
    th.cli_ok(&["agreement", "suspend", MOU_ID, "--version", "2", "--reason", "review"]);
    assert_eq!(state(&th, MOU_ID, 1), "AGREEMENT_STATE_SUSPENDED");
    assert!(query(&mut h, pb::RecordKind::ContactPoint, pb::Purpose::Coordination, "").await.is_err());
    th.cli_ok(&["agreement", "resume", MOU_ID, "--version", "2", "--reason", "done"]);
    assert_eq!(state(&th, MOU_ID, 1), "AGREEMENT_STATE_ACTIVE");

    // Revocation ends every version.
    th.cli_ok(&["agreement", "revoke", MOU_ID, "--reason", "ended"]);
    assert_eq!(state(&th, MOU_ID, 1), "AGREEMENT_STATE_REVOKED");
    assert_eq!(state(&kh, MOU_ID, 1), "AGREEMENT_STATE_REVOKED");
    assert!(query(&mut h, pb::RecordKind::ContactPoint, pb::Purpose::Coordination, "").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_honest_amendment_does_not_absorb_a_suspension_either() {
    let root = tempfile::tempdir().unwrap();
    let (th, kh) = th_kh_under_mou(root.path());
    let v2 = root.path().join("v2.toml");
    std::fs::write(
        &v2,
        bilateral(MOU_ID, "th-atpd", "kh-antht", 365, MOU_GRANTS).replace("version = 1", "version = 2"),
    )
    .unwrap();
    th.cli_ok(&["agreement", "amend", MOU_ID, &v2.display().to_string()]);
    th.cli_ok(&["agreement", "propose", MOU_ID]);
    assert_eq!(state(&kh, MOU_ID, 2), "AGREEMENT_STATE_PROPOSED");
    // KH suspends "the agreement" while v2 waits for its signature.
    kh.cli_ok(&["agreement", "suspend", MOU_ID, "--reason", "review"]);
    for n in [&th, &kh] {
        assert_eq!(state(n, MOU_ID, 1), "AGREEMENT_STATE_SUSPENDED", "on {}", n.id);
    }
    // Once KH signs v2 it is the agreement in force, and it is still suspended.
    kh.cli_ok(&["agreement", "accept", MOU_ID]);
    for n in [&th, &kh] {
        assert_eq!(state(n, MOU_ID, 2), "AGREEMENT_STATE_SUSPENDED", "on {}", n.id);
        assert_eq!(state(n, MOU_ID, 1), "AGREEMENT_STATE_SUPERSEDED", "on {}", n.id);
    }
    kh.cli_ok(&["agreement", "resume", MOU_ID, "--reason", "done"]);
    for n in [&th, &kh] {
        assert_eq!(state(n, MOU_ID, 2), "AGREEMENT_STATE_ACTIVE", "on {}", n.id);
    }
}

/// A victim case KH opens with `receiving`, as KH's node would sign it.
fn kh_case(id: &str, receiving: &str) -> pb::VictimCase {
    let mut c = liaison::sop::victim::open(
        id,
        "kh-antht/vr-case",
        "kh-antht",
        receiving,
        "kh-antht",
        time::OffsetDateTime::now_utc(),
    );
    c.history[0].time = Some(now_ts());
    c
}

async fn deliver_case(h: &mut Hostile, case: &pb::VictimCase) -> pb::Receipt {
    deliver_case_as(h, &liaison::exchange::random_id("dlv"), case).await.expect("a receipt")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_steps_stop_while_suspended_and_after_revocation() {
    let root = tempfile::tempdir().unwrap();
    let (th, kh) = th_kh_under_mou(root.path());
    let id = send_information_request(&th, "kh-antht", "Recruiter using the alias Uncle Sok");
    wait_for(30, "the request at KH", || kh.cli(&["request", "show", &id]).status.success());

    th.cli_ok(&["agreement", "suspend", MOU_ID, "--reason", "review"]);
    wait_for(30, "KH to learn of the suspension", || state(&kh, MOU_ID, 1) == "AGREEMENT_STATE_SUSPENDED");

    // KH's officer cannot make the step while the agreement is suspended...
    let out = kh.cli(&["request", "ack", &id]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("agreement_not_active"), "{out:?}");
    // ...and a hostile KH sending the signed step directly is refused and audited.
    let mut h = Hostile::new(&kh, &th);
    let ack = h.step(&id, 1, pb::Transition::Acknowledge, "");
    let r = h.deliver_step(&ack).await.unwrap();
    assert!(!r.delivered && r.reason.contains("agreement_not_active"), "{r:?}");
    assert_eq!(request_state(&th, &id), "REQUEST_STATE_SUBMITTED");
    assert!(!audit_entries(&th, "request.refused").is_empty());

    // Resumed: the same step is taken.
    th.cli_ok(&["agreement", "resume", MOU_ID, "--reason", "done"]);
    let r = h.deliver_step(&ack).await.unwrap();
    assert!(r.delivered, "{r:?}");
    assert_eq!(request_state(&th, &id), "REQUEST_STATE_ACKNOWLEDGED");

    // Revoked: no further step.
    th.cli_ok(&["agreement", "revoke", MOU_ID, "--reason", "ended"]);
    let answer = h.step(&id, 2, pb::Transition::Answer, "One match");
    let r = h.deliver_step(&answer).await.unwrap();
    assert!(!r.delivered && r.reason.contains("agreement_not_active"), "{r:?}");
    assert_eq!(request_state(&th, &id), "REQUEST_STATE_ACKNOWLEDGED");
    // TH's own officer cannot withdraw over a revoked agreement either: the step stays local.
    let out = th.cli(&["request", "withdraw", &id]);
    assert!(!out.status.success(), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_updates_stop_while_suspended_and_after_revocation() {
    const SOP: &str = "kh-vn-victim-return";
    let root = tempfile::tempdir().unwrap();
    let (kh, vn) = kh_vn_under_sop(root.path());
    let mut h = Hostile::new(&kh, &vn);

    vn.cli_ok(&["agreement", "suspend", SOP, "--reason", "review"]);
    let r = deliver_case(&mut h, &kh_case("case-suspended", "vn-c02")).await;
    assert!(!r.delivered && r.reason.contains("agreement_not_active"), "{r:?}");
    assert!(!vn.cli(&["case", "show", "case-suspended"]).status.success(), "a refused case was stored");

    vn.cli_ok(&["agreement", "resume", SOP, "--reason", "done"]);
    let active = kh_case("case-active", "vn-c02");
    let r = deliver_case(&mut h, &active).await;
    assert!(r.delivered, "{r:?}");

    // KH cannot confirm the identification for VN: that step is the
    // receiving side's, whatever KH's own node would have allowed.
    let mut next = active.clone();
    next.history.push(pb::CaseEvent {
        from: pb::CaseStage::Referral as i32,
        to: pb::CaseStage::IdentificationConfirmed as i32,
        actor: "kh-antht".into(),
        time: Some(now_ts()),
        ..Default::default()
    });
    next.stage = pb::CaseStage::IdentificationConfirmed as i32;
    let r = deliver_case(&mut h, &next).await;
    assert!(!r.delivered && r.reason.contains("other_side"), "{r:?}");

    // Revoked: no new case and no step on the open one.
    vn.cli_ok(&["agreement", "revoke", SOP, "--reason", "ended"]);
    let r = deliver_case(&mut h, &kh_case("case-revoked", "vn-c02")).await;
    assert!(!r.delivered && r.reason.contains("agreement_not_active"), "{r:?}");
    let r = deliver_case(&mut h, &next).await;
    assert!(!r.delivered, "{r:?}");
    let held = vn.cli_json(&["case", "show", "case-active"]);
    assert_eq!(held["case"]["stage"], "CASE_STAGE_REFERRAL");
    assert!(audit_entries(&vn, "case.refused").len() >= 3);
    // VN's own officer cannot step it either.
    assert!(!vn.cli(&["case", "advance", "case-active", "--to", "identification_confirmed"]).status.success());
}

/// A case step, as `who` records it on top of `case`.
fn stepped(case: &pb::VictimCase, to: pb::CaseStage, who: &str) -> pb::VictimCase {
    let mut next = case.clone();
    next.history.push(pb::CaseEvent {
        from: case.stage,
        to: to as i32,
        actor: who.into(),
        time: Some(now_ts()),
        ..Default::default()
    });
    next.stage = to as i32;
    next
}

/// Delivers `case` as a sender's outbox would, under a fixed delivery id
/// (a retry repeats it): the receipt, or the status that asks for a retry.
async fn deliver_case_as(
    h: &mut Hostile,
    delivery_id: &str,
    case: &pb::VictimCase,
) -> Result<pb::Receipt, tonic::Status> {
    let req = pb::DeliverCaseUpdateRequest {
        delivery_id: delivery_id.into(),
        case: Some(h.seal(payload::VICTIM_CASE, case)),
    };
    let r = h.client.deliver_case_update(req).await?.into_inner();
    Ok(liaison::envelope::decode::<pb::Receipt>(&r.receipt.expect("a receipt")).unwrap())
}

/// Three parties' case deliveries cross: TH is the transit country of a
/// return from KH to VN. A step that reaches TH before another party's
/// step it follows is answered "not yet" (a retry), never taken out of
/// order and never refused for good (which would leave TH's copy behind
/// the others' for ever); once the step before it arrives, the retry is
/// taken. A gap holding the caller's own earlier step, which its in-order
/// delivery would have brought first, is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_step_that_overtakes_another_partys_step_waits_for_it() {
    let root = tempfile::tempdir().unwrap();
    let nodes = under_victim_return_sop(root.path(), &[("kh-antht", "KH"), ("vn-c02", "VN"), ("th-atpd", "TH")]);
    let [kh, vn, th] = &nodes[..] else { unreachable!("three nodes were started") };
    let mut as_kh = Hostile::new(kh, th);
    let mut as_vn = Hostile::new(vn, th);
    let stage = |th: &TestNode| {
        th.cli_json(&["case", "show", "case-x"])["case"]["stage"].as_str().unwrap_or_default().to_string()
    };

    let mut opened = kh_case("case-x", "vn-c02");
    opened.transit_nodes = vec!["th-atpd".into()];
    let confirmed = stepped(&opened, pb::CaseStage::IdentificationConfirmed, "vn-c02");
    let assisted = stepped(&confirmed, pb::CaseStage::Assistance, "kh-antht");

    // VN's confirmation before KH's opening: TH holds nothing and asks for a retry.
    let waits = deliver_case_as(&mut as_vn, "dlv-vn-1", &confirmed).await.unwrap_err();
    assert_eq!(waits.code(), tonic::Code::Unavailable, "{waits:?}");
    assert!(!th.cli(&["case", "show", "case-x"]).status.success(), "a step was taken without its case");
    assert!(deliver_case_as(&mut as_kh, "dlv-kh-1", &opened).await.unwrap().delivered);

    // KH's assistance before VN's confirmation (VN's retry not yet due): waits.
    let waits = deliver_case_as(&mut as_kh, "dlv-kh-2", &assisted).await.unwrap_err();
    assert_eq!(waits.code(), tonic::Code::Unavailable, "{waits:?}");
    assert_eq!(stage(th), "CASE_STAGE_REFERRAL");

    // The retries, in the order they come due: both taken, nothing lost.
    assert!(deliver_case_as(&mut as_vn, "dlv-vn-1", &confirmed).await.unwrap().delivered);
    assert_eq!(stage(th), "CASE_STAGE_IDENTIFICATION_CONFIRMED");
    assert!(deliver_case_as(&mut as_kh, "dlv-kh-2", &assisted).await.unwrap().delivered);
    assert_eq!(stage(th), "CASE_STAGE_ASSISTANCE");

    // KH skipping its own planned return: no retry can fill that gap.
    let planned = stepped(&assisted, pb::CaseStage::ReturnPlanned, "kh-antht");
    let asylum = stepped(&planned, pb::CaseStage::AsylumReferral, "kh-antht");
    let r = deliver_case_as(&mut as_kh, "dlv-kh-3", &asylum).await.unwrap();
    assert!(!r.delivered && r.reason.contains("does not extend"), "{r:?}");
    assert_eq!(stage(th), "CASE_STAGE_ASSISTANCE");
    let held = th.cli_json(&["case", "show", "case-x"]);
    assert_eq!(held["case"]["history"].as_array().map(Vec::len), Some(3), "{held}");
}

async fn sync(h: &mut Hostile) -> Result<usize, tonic::Status> {
    let req = pb::SyncRecordsRequest {
        kind: pb::RecordKind::ContactPoint as i32,
        purpose: pb::Purpose::Coordination as i32,
        cursor: 0,
        limit: 0,
    };
    Ok(h.client.sync_records(req).await?.into_inner().records.len())
}

async fn hit_check(h: &mut Hostile) -> Result<usize, tonic::Status> {
    let req = pb::MatchIdentifiersRequest {
        identifiers: vec!["passport:N0123456".into()],
        purpose: pb::Purpose::Investigation as i32,
    };
    let r = h.client.match_identifiers(req).await?.into_inner();
    Ok(r.results.iter().filter(|x| x.hit).count())
}

fn outbox_items(n: &TestNode) -> Vec<serde_json::Value> {
    n.cli_json(&["outbox", "--all"])["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_revocation_every_path_between_the_nodes_is_closed() {
    let root = tempfile::tempdir().unwrap();
    let (th, mut kh) = th_kh_under_mou(root.path());
    create(&th, contact_point("cp-rv", "Duty desk")).await;
    create(&th, entity("en-rv")).await;
    let mut h = Hostile::new(&kh, &th);
    let cp = |id: &str| originated("kh-antht", contact_point(id, "KH desk"));

    // Every path works while the agreement is active (so each check below can fail).
    assert_eq!(query(&mut h, pb::RecordKind::ContactPoint, pb::Purpose::Coordination, "").await.unwrap(), 1);
    assert_eq!(sync(&mut h).await.unwrap(), 1);
    assert_eq!(hit_check(&mut h).await.unwrap(), 1);
    assert!(push(&mut h, &cp("cp-kh-1"), pb::Purpose::Coordination).await.unwrap().delivered);
    th.cli_ok(&["record", "share", "en-rv", "--to", "kh-antht", "--purpose", "investigation"]);
    wait_for(30, "the entity at KH", || {
        outbox_items(&th).iter().any(|i| i["recordKey"] == "th-atpd/en-rv" && i["state"] == "OUTBOX_STATE_DELIVERED")
    });
    let consent = |id: &str| pb::RequestOnwardConsentRequest {
        consent_id: id.into(),
        record_key: "th-atpd/en-rv".into(),
        third_party: "la-dcta".into(),
        purpose: pb::Purpose::Investigation as i32,
    };
    h.client.request_onward_consent(consent("consent-1")).await.unwrap();

    // KH is away when TH revokes; a share TH queued for KH before that is still waiting.
    kh.stop();
    th.cli_ok(&["record", "share", "cp-rv", "--to", "kh-antht", "--purpose", "coordination"]);
    th.cli_ok(&["agreement", "revoke", MOU_ID, "--reason", "ended"]);

    // The hostile peer tries every path again.
    let denied = |r: Result<usize, tonic::Status>, what: &str| {
        let s = r.expect_err(what);
        assert_eq!(s.code(), tonic::Code::PermissionDenied, "{what}: {s:?}");
    };
    denied(query(&mut h, pb::RecordKind::ContactPoint, pb::Purpose::Coordination, "").await, "query");
    denied(sync(&mut h).await, "sync");
    denied(hit_check(&mut h).await, "hit check");
    let r = push(&mut h, &cp("cp-kh-2"), pb::Purpose::Coordination).await.unwrap();
    assert!(!r.delivered && r.reason.contains("agreement_not_active"), "{r:?}");
    assert!(held(&th, "kh-antht/cp-kh-2").await.is_none());
    // What TH received under the agreement is purged (the MOU says so), and a
    // new version of it is refused rather than taken back in.
    wait_for(30, "the purge on revocation", || futures::executor::block_on(held(&th, "kh-antht/cp-kh-1")).is_none());
    let mut v2 = cp("cp-kh-1");
    v2.version = 2;
    assert!(!push(&mut h, &v2, pb::Purpose::Coordination).await.unwrap().delivered);
    assert!(held(&th, "kh-antht/cp-kh-1").await.is_none());
    // A new request.
    let submit = pb::RequestEvent {
        request_id: liaison::exchange::random_id("req"),
        actor: "kh-antht".into(),
        seq: 1,
        transition: pb::Transition::Submit as i32,
        time: Some(now_ts()),
        header: Some(pb::RequestHeader {
            agreement_id: MOU_ID.into(),
            agreement_version: 1,
            request_type: "information_request".into(),
            from_node: "kh-antht".into(),
            to_node: "th-atpd".into(),
            purpose: pb::Purpose::Investigation as i32,
            subject: "after the end".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let r = h.deliver_step(&submit).await.unwrap();
    assert!(!r.delivered && r.reason.contains("agreement_not_active"), "{r:?}");
    // Onward consent for what KH was given.
    let s = h.client.request_onward_consent(consent("consent-2")).await.unwrap_err();
    assert_eq!(s.code(), tonic::Code::PermissionDenied, "{s:?}");
    // Reviving the agreement: a signed "resume" from KH, and a fresh version signed by KH alone.
    let resume = pb::AgreementNotice {
        agreement_id: MOU_ID.into(),
        version: 1,
        action: pb::NoticeAction::Resume as i32,
        reason: "we never agreed".into(),
        issuer: "kh-antht".into(),
        issue_time: Some(now_ts()),
    };
    let notice = h.seal(payload::AGREEMENT_NOTICE, &resume);
    let _ = h.client.deliver_agreement_notice(pb::DeliverAgreementNoticeRequest { notice: Some(notice) }).await;
    let _ = h.client.deliver_agreement(pb::DeliverAgreementRequest { agreement: Some(planted_v2(&h)) }).await;
    assert_eq!(state(&th, MOU_ID, 1), "AGREEMENT_STATE_REVOKED");
    assert_ne!(state(&th, MOU_ID, 2), "AGREEMENT_STATE_ACTIVE");
    denied(query(&mut h, pb::RecordKind::ContactPoint, pb::Purpose::Coordination, "").await, "query after revival");

    // A withdrawal is still taken: revocation never stops data from being removed.
    let mut gone = cp("cp-kh-1");
    gone.version = 3;
    gone.withdrawn = true;
    let req = pb::RetractRecordRequest {
        delivery_id: liaison::exchange::random_id("dlv"),
        record: Some(h.seal(payload::RECORD, &gone)),
    };
    let r = h.client.retract_record(req).await.unwrap().into_inner();
    let r = liaison::envelope::decode::<pb::Receipt>(&r.receipt.unwrap()).unwrap();
    assert!(r.delivered, "{r:?}");

    // TH's own queued share never leaves once the agreement is revoked.
    kh.start();
    wait_for(60, "the queued share to be refused", || {
        outbox_items(&th).iter().any(|i| i["recordKey"] == "th-atpd/cp-rv" && i["state"] == "OUTBOX_STATE_REFUSED")
    });
    assert!(held(&kh, "th-atpd/cp-rv").await.is_none());
}
