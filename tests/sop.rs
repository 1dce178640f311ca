//! SOP requests between running nodes, deadlines with an injected clock, and
//! the victim identification and return workflow's safeguards.

mod common;

use common::{
    activate, child_referral, confirm_identification, create, kh_vn_under_sop, pin_all, wait_for, wait_for_record,
    TestNode,
};
use liaison::pb;
use liaison::record::examples;

fn request_json(n: &TestNode, id: &str) -> serde_json::Value {
    n.cli_json(&["request", "show", id])
}

fn inbox_ids(n: &TestNode) -> Vec<String> {
    n.cli_json(&["inbox"])["requests"]
        .as_array()
        .map_or(vec![], |a| a.iter().map(|r| r["id"].as_str().unwrap().to_string()).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_round_trip_leaves_identical_timelines_on_both_nodes() {
    let root = tempfile::tempdir().unwrap();
    let (mut th, kh) = common::th_kh_under_mou(root.path());

    // A type the agreement does not define is refused, naming the defined ones.
    let out = th.cli(&[
        "request",
        "send",
        "--to",
        "kh-antht",
        "--type",
        "victim_return",
        "--purpose",
        "return_and_reintegration",
        "--subject",
        "x",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("request_type_not_defined"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let sent = th.cli_json(&[
        "request",
        "send",
        "--to",
        "kh-antht",
        "--type",
        "information_request",
        "--purpose",
        "investigation",
        "--subject",
        "Recruiter using the alias Uncle Sok",
        "--ref",
        "hit-123",
    ]);
    let id = sent["id"].as_str().unwrap().to_string();
    assert_eq!(sent["state"], "REQUEST_STATE_SUBMITTED");
    wait_for(30, "the request in KH's inbox", || inbox_ids(&kh).contains(&id));

    // TH is away while KH acknowledges and answers: both steps wait in KH's outbox
    // and then arrive together, in any order, possibly more than once.
    th.stop();
    kh.cli_ok(&["request", "ack", &id]);
    let rec = create(&kh, {
        let mut r = examples::entity();
        r.id = "en-kh-answer".into();
        r
    })
    .await;
    // Bounds are checked before anything is shared or stored: an answer
    // with more attachments than a peer accepts is refused, nothing queued.
    let queued = || kh.cli_json(&["outbox", "--all"])["items"].as_array().map_or(0, Vec::len);
    let before = queued();
    let mut args = vec!["request", "answer", id.as_str(), "--text", "x"];
    for _ in 0..=liaison::sop::request::MAX_ATTACHED {
        args.extend(["--attach", rec.id.as_str()]);
    }
    let out = kh.cli(&args);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("attached_record_ids"), "{out:?}");
    assert_eq!(queued(), before, "nothing was shared");
    assert_eq!(request_json(&kh, &id)["state"], "REQUEST_STATE_ACKNOWLEDGED");
    let answered =
        kh.cli_json(&["request", "answer", &id, "--text", "One match; see attached entity.", "--attach", &rec.id]);
    assert_eq!(answered["state"], "REQUEST_STATE_ANSWERED");
    th.start();
    wait_for(90, "TH to see the answer", || request_json(&th, &id)["state"] == "REQUEST_STATE_ANSWERED");

    // A replayed step (same sequence number) changes nothing.
    let kh_id = liaison::identity::Identity::load(&liaison::config::Layout::new(&kh.dir)).unwrap();
    let th_card = th.card();
    let replay = pb::RequestEvent {
        request_id: id.clone(),
        actor: "kh-antht".into(),
        seq: 1,
        transition: pb::Transition::Acknowledge as i32,
        peer_seq: 1,
        ..Default::default()
    };
    let env =
        liaison::envelope::seal(liaison::envelope::payload::REQUEST_EVENT, &replay, "kh-antht", &kh_id.signing_key);
    let mut fed = pb::federation_service_client::FederationServiceClient::new(
        liaison::federation::dial(&kh_id, &th_card).unwrap(),
    );
    let receipt = fed
        .deliver_request_event(pb::DeliverRequestEventRequest { delivery_id: "replay-1".into(), event: Some(env) })
        .await
        .unwrap()
        .into_inner();
    assert!(receipt.receipt.is_some());
    // A step in KH's name from another node is refused.
    let th_id = liaison::identity::Identity::load(&liaison::config::Layout::new(&th.dir)).unwrap();
    let forged =
        liaison::envelope::seal(liaison::envelope::payload::REQUEST_EVENT, &replay, "th-atpd", &th_id.signing_key);
    let kh_card = kh.card();
    let mut to_kh = pb::federation_service_client::FederationServiceClient::new(
        liaison::federation::dial(&th_id, &kh_card).unwrap(),
    );
    let r = to_kh
        .deliver_request_event(pb::DeliverRequestEventRequest { delivery_id: "forged-1".into(), event: Some(forged) })
        .await
        .unwrap()
        .into_inner();
    let rc: pb::Receipt = liaison::envelope::decode(&r.receipt.unwrap()).unwrap();
    assert!(!rc.delivered && rc.reason.contains("cannot come from"), "{}", rc.reason);

    let a = request_json(&th, &id);
    let b = request_json(&kh, &id);
    assert_eq!(a["timeline"], b["timeline"], "both nodes show the same timeline");
    assert_eq!(a["state"], b["state"]);
    let steps: Vec<&str> =
        a["timeline"].as_array().unwrap().iter().map(|e| e["transition"].as_str().unwrap()).collect();
    assert_eq!(steps, vec!["TRANSITION_SUBMIT", "TRANSITION_ACKNOWLEDGE", "TRANSITION_ANSWER"]);
    // The attached record travelled as a share.
    wait_for(30, "the attached record at TH", || {
        futures::executor::block_on(async {
            th.records()
                .await
                .get_record(pb::GetRecordRequest { id: "kh-antht/en-kh-answer".into(), ..Default::default() })
                .await
                .is_ok()
        })
    });
    // Invalid steps are refused with a clear error.
    let out = kh.cli(&["request", "decline", &id, "--reason", "late"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot go from answered"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = th.cli(&["request", "withdraw", &id]);
    assert!(!out.status.success());
    // Every transition that crossed has a signed receipt kept by its sender.
    assert!(th.cli_json(&["outbox", "--all"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["action"] == "OUTBOX_ACTION_REQUEST_EVENT"
            && i["state"] == "OUTBOX_STATE_DELIVERED"
            && i["receipt"].is_object()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_request_goes_overdue_and_escalates_once_on_both_sides() {
    let root = tempfile::tempdir().unwrap();
    let (mut th, mut kh) = common::th_kh_under_mou(root.path());
    let mut head = common::contact_point("cp-kh-head", "Pol. Col. Dara, unit head");
    if let Some(pb::record::Body::ContactPoint(c)) = head.body.as_mut() {
        c.country = "KH".into();
    }
    create(&kh, head).await;
    let id = common::send_information_request(&th, "kh-antht", "Vessel crew list");
    wait_for(30, "delivery", || inbox_ids(&kh).contains(&id));
    assert!(kh.cli_json(&["inbox", "--overdue"])["requests"].as_array().is_none_or(|a| a.is_empty()));

    // Two days later on both clocks: the 24 h acknowledgement deadline has passed.
    for n in [&mut th, &mut kh] {
        n.stop();
        n.env.push(("LIAISON_CLOCK_OFFSET_SECS".into(), (2 * 86_400).to_string()));
        n.start();
    }
    wait_for(30, "overdue on both sides", || {
        request_json(&th, &id)["overdue"] == true && request_json(&kh, &id)["overdue"] == true
    });
    let k = request_json(&kh, &id);
    assert_eq!(k["escalations"].as_array().unwrap().len(), 1, "{k}");
    assert_eq!(k["escalations"][0]["deadline"], "acknowledge");
    assert_eq!(k["escalations"][0]["role"], "CONTACT_ROLE_UNIT_HEAD");
    assert_eq!(k["escalations"][0]["contactName"], "Pol. Col. Dara, unit head");
    let shown = kh.cli_ok(&["request", "show", &id]);
    assert!(shown.contains("ESCALATED (acknowledge deadline) to unit_head Pol. Col. Dara"), "{shown}");
    assert_eq!(th.cli_json(&["request", "list", "--overdue"])["requests"].as_array().unwrap().len(), 1);
    // Restarting (another deadline check) escalates nothing again.
    kh.stop();
    kh.start();
    let k = request_json(&kh, &id);
    assert_eq!(k["escalations"].as_array().unwrap().len(), 1, "escalates once");
    let log = kh.cli_json(&["audit", "list", "--action", "request.overdue"]);
    assert_eq!(log["entries"].as_array().unwrap().len(), 1);
    let feed = kh.cli_ok(&["watch"]);
    assert!(feed.contains("CHANGE_TYPE_REQUEST_CHANGED"), "the change feed carries request events");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_childs_return_waits_for_every_safeguard() {
    let root = tempfile::tempdir().unwrap();
    let (kh, vn) = kh_vn_under_sop(root.path());

    let rec = create(&kh, child_referral()).await;
    kh.cli_ok(&["record", "share", &rec.id, "--to", "vn-c02", "--purpose", "victim_identification"]);
    wait_for_record(&vn, "kh-antht/vr-child-1");
    let opened = kh.cli_json(&["case", "open", &rec.id, "--with", "vn-c02"]);
    let case = opened["case"]["id"].as_str().unwrap().to_string();
    // Viet Nam, where she comes from, confirms her identification; Cambodia cannot do it for it.
    let out = kh.cli(&["case", "advance", &case, "--to", "identification_confirmed"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("receiving side"), "{out:?}");
    confirm_identification(&vn, &kh, &case);
    kh.cli_ok(&["case", "advance", &case, "--to", "assistance", "--note", "shelter and counselling"]);

    // Return planning is refused while a safeguard is missing, naming it.
    let refuse = |n: &TestNode, to: &str, safeguard: &str| {
        let out = n.cli(&["case", "advance", &case, "--to", to]);
        assert!(!out.status.success(), "{to} must be refused");
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(err.contains(safeguard), "expected {safeguard} in: {err}");
    };
    refuse(&kh, "return_planned", "best_interest_determination");
    let mut r = child_referral();
    let mut version = 1;
    let mut update = |mutate: &dyn Fn(&mut pb::VictimReferral)| {
        if let Some(pb::record::Body::VictimReferral(v)) = r.body.as_mut() {
            mutate(v);
        }
        let out = futures::executor::block_on(async {
            kh.records()
                .await
                .update_record(pb::UpdateRecordRequest {
                    record: Some(r.clone()),
                    expected_version: version,
                    ..Default::default()
                })
                .await
        });
        out.unwrap();
        version += 1;
    };
    update(&|v| {
        v.best_interest_determination = Some(pb::BestInterestDetermination {
            outcome: pb::BestInterestOutcome::NoReturn as i32,
            date: "2026-11-10".into(),
            by: "BID panel".into(),
        })
    });
    refuse(&kh, "return_planned", "best_interest_determination");
    update(&|v| v.best_interest_determination.as_mut().unwrap().outcome = pb::BestInterestOutcome::Return as i32);
    refuse(&kh, "return_planned", "risk_assessment");
    update(&|v| {
        v.risk_assessment = Some(pb::RiskAssessment {
            level: pb::RiskLevel::Low as i32,
            date: "2026-11-12".into(),
            summary: "family traced, safe".into(),
        })
    });
    refuse(&kh, "return_planned", "non_refoulement");
    update(&|v| {
        v.non_refoulement_check = Some(pb::NonRefoulementCheck {
            outcome: pb::NonRefoulementOutcome::Cleared as i32,
            date: "2026-11-13".into(),
            by: "UNHCR".into(),
        })
    });
    refuse(&kh, "return_planned", "voluntariness");
    update(&|v| v.return_voluntariness = pb::Voluntariness::Voluntary as i32);
    kh.cli_ok(&["case", "advance", &case, "--to", "return_planned"]);
    // The reflection period (30 days from 2026-11-01) has not run yet.
    refuse(&kh, "returned", "reflection_period");
    update(&|v| v.early_return_requested = true);
    kh.cli_ok(&["case", "advance", &case, "--to", "returned", "--note", "handed over at the border"]);

    // Both nodes hold the same case; VN (holding the referral's updated copy) follows up.
    wait_for(30, "the case at VN", || vn.cli_json(&["case", "show", &case])["case"]["stage"] == "CASE_STAGE_RETURNED");
    vn.cli_ok(&["case", "advance", &case, "--to", "reintegration_follow_up", "--note", "vocational training"]);
    wait_for(30, "follow-up at KH", || {
        kh.cli_json(&["case", "show", &case])["case"]["stage"] == "CASE_STAGE_REINTEGRATION_FOLLOW_UP"
    });
    assert_eq!(
        kh.cli_json(&["case", "show", &case])["case"]["history"],
        vn.cli_json(&["case", "show", &case])["case"]["history"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_path_returns_a_child_without_a_best_interest_determination() {
    let root = tempfile::tempdir().unwrap();
    let (kh, vn) = kh_vn_under_sop(root.path());
    // Every other safeguard is met; only the best-interest determination is missing.
    let mut r = child_referral();
    if let Some(pb::record::Body::VictimReferral(v)) = r.body.as_mut() {
        v.reflection_period_start = "2026-01-01".into();
        v.risk_assessment = Some(pb::RiskAssessment { level: 1, date: "2026-11-12".into(), summary: String::new() });
        v.non_refoulement_check =
            Some(pb::NonRefoulementCheck { outcome: 1, date: "2026-11-13".into(), by: String::new() });
        v.return_voluntariness = pb::Voluntariness::Voluntary as i32;
    }
    let rec = create(&kh, r).await;
    kh.cli_ok(&["record", "share", &rec.id, "--to", "vn-c02", "--purpose", "victim_identification"]);
    wait_for_record(&vn, "kh-antht/vr-child-1");
    let case = kh.cli_json(&["case", "open", &rec.id, "--with", "vn-c02"])["case"]["id"].as_str().unwrap().to_string();
    confirm_identification(&vn, &kh, &case);
    kh.cli_ok(&["case", "advance", &case, "--to", "assistance"]);
    wait_for(30, "the case at VN", || {
        vn.cli_json(&["case", "show", &case])["case"]["stage"] == "CASE_STAGE_ASSISTANCE"
    });
    // Not from KH, not from VN, not by skipping a stage.
    for n in [&kh, &vn] {
        for to in ["return_planned", "returned"] {
            assert!(!n.cli(&["case", "advance", &case, "--to", to]).status.success(), "{} {to}", n.id);
        }
    }
    // Not by a forged update: KH's signed case claiming "return planned" is refused by VN's own check.
    let kh_id = liaison::identity::Identity::load(&liaison::config::Layout::new(&kh.dir)).unwrap();
    let mut forged: pb::VictimCase =
        serde_json::from_value(kh.cli_json(&["case", "show", &case])["case"].clone()).unwrap();
    forged.history.push(pb::CaseEvent {
        from: pb::CaseStage::Assistance as i32,
        to: pb::CaseStage::ReturnPlanned as i32,
        actor: "kh-antht".into(),
        time: None,
        note: String::new(),
        referral_version: 0,
    });
    forged.stage = pb::CaseStage::ReturnPlanned as i32;
    let env = liaison::envelope::seal(liaison::envelope::payload::VICTIM_CASE, &forged, "kh-antht", &kh_id.signing_key);
    let vn_card = vn.card();
    let mut fed = pb::federation_service_client::FederationServiceClient::new(
        liaison::federation::dial(&kh_id, &vn_card).unwrap(),
    );
    let r = fed
        .deliver_case_update(pb::DeliverCaseUpdateRequest { delivery_id: "forged".into(), case: Some(env) })
        .await
        .unwrap()
        .into_inner();
    let rc: pb::Receipt = liaison::envelope::decode(&r.receipt.unwrap()).unwrap();
    assert!(!rc.delivered, "VN must refuse");
    assert!(rc.reason.contains("best_interest_determination"), "{}", rc.reason);
    assert_eq!(vn.cli_json(&["case", "show", &case])["case"]["stage"], "CASE_STAGE_ASSISTANCE");
    // And the policy engine refuses a return step for the child.
    let p = kh.cli_json(&[
        "policy",
        "--peer",
        "vn-c02",
        "--operation",
        "push",
        "--kind",
        "victim_referral",
        "--purpose",
        "return_and_reintegration",
        "--handling",
        "red",
        "--victim-record",
        &rec.id,
        "--return-step",
    ]);
    assert_eq!(p["denialCode"], "child_return_without_best_interest");
}

/// An SOP's own request type, answered only by the party it names: sent and
/// answered between honest nodes; refused to the wrong addressee by the
/// sender's node, and by the receiver when a hostile peer skips its own
/// policy; and refused by both once the agreement is revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agreement_defines_its_own_request_types_and_who_answers_them() {
    let root = tempfile::tempdir().unwrap();
    let mut th = TestNode::init(root.path(), "th-atpd", "TH");
    let mut kh = TestNode::init(root.path(), "kh-antht", "KH");
    th.start();
    kh.start();
    pin_all(&[&th, &kh]);
    let own_type = r#"
[[sop.request_types]]
name = "asset_freezing"
title = "Freezing a trafficker's assets held by the other country"
ack_within = "24h"
answer_within = "30d"
urgent_ack_within = "8h"
urgent_answer_within = "7d"
escalation_role = "central_authority"
purposes = ["prosecution"]
answered_by = ["kh-antht"]
"#;
    let mou = common::bilateral("th-kh", "th-atpd", "kh-antht", 365, &format!("{own_type}\n{}", common::MOU_GRANTS))
        .replace("purposes = [\"investigation\"]", "purposes = [\"investigation\", \"prosecution\"]");
    activate(&[&th, &kh], &mou, "th-kh");
    let shown = th.cli_ok(&["agreement", "show", "th-kh"]);
    assert!(shown.contains("asset_freezing") && shown.contains("Freezing a trafficker") && shown.contains("kh-antht"));

    let send = |from: &TestNode, to: &str| {
        from.cli(&[
            "--json",
            "request",
            "send",
            "--to",
            to,
            "--type",
            "asset_freezing",
            "--purpose",
            "prosecution",
            "--subject",
            "Accounts of the Poipet broker",
        ])
    };
    // TH asks KH, which answers this type.
    let out = send(&th, "kh-antht");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let id = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["id"].as_str().unwrap().to_string();
    wait_for(30, "the request at KH", || inbox_ids(&kh).contains(&id));
    kh.cli_ok(&["request", "ack", &id]);
    wait_for(30, "the acknowledgement at TH", || request_json(&th, &id)["state"] == "REQUEST_STATE_ACKNOWLEDGED");
    // KH asking TH is refused by KH's own node, naming the rule.
    let out = send(&kh, "th-atpd");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("th-atpd does not answer asset_freezing"), "{out:?}");

    // A hostile KH skips its own policy and delivers the submit to TH itself.
    let mut h = common::Hostile::new(&kh, &th);
    let submit = |subject: &str| pb::RequestEvent {
        request_id: liaison::exchange::random_id("req"),
        actor: "kh-antht".into(),
        seq: 1,
        transition: pb::Transition::Submit as i32,
        time: Some(liaison::convert::timestamp(time::OffsetDateTime::now_utc())),
        header: Some(pb::RequestHeader {
            agreement_id: "th-kh".into(),
            agreement_version: 1,
            request_type: "asset_freezing".into(),
            from_node: "kh-antht".into(),
            to_node: "th-atpd".into(),
            purpose: pb::Purpose::Prosecution as i32,
            subject: subject.into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let r = h.deliver_step(&submit("freeze what you hold")).await.unwrap();
    assert!(!r.delivered && r.reason.contains("request_not_for_addressee"), "{r:?}");
    assert!(inbox_ids(&th).is_empty(), "nothing reached TH's inbox");

    // Revoked: neither side sends nor takes one.
    th.cli_ok(&["agreement", "revoke", "th-kh", "--reason", "test"]);
    wait_for(30, "the revocation at KH", || {
        kh.cli_json(&["agreement", "show", "th-kh"])["agreement"]["state"] == "AGREEMENT_STATE_REVOKED"
    });
    let out = send(&th, "kh-antht");
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("agreement_not_active"), "{out:?}");
    let mut h = common::Hostile::new(&th, &kh);
    let mut late = submit("after the end");
    if let Some(hd) = late.header.as_mut() {
        (hd.from_node, hd.to_node) = ("th-atpd".into(), "kh-antht".into());
    }
    late.actor = "th-atpd".into();
    let r = h.deliver_step(&late).await.unwrap();
    assert!(!r.delivered && r.reason.contains("agreement_not_active"), "{r:?}");
}
