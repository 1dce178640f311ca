//! A node that no peer can stall: a peer that hangs holds up only its own
//! queue, and a peer's error answer stays typed — retried only when a retry
//! can succeed, failed at once (with the peer's reason) when it cannot.

mod common;

use std::sync::{Arc, Mutex};

use common::fake_peer::{serve_fake, Answers, PushAnswer};
use common::*;

fn items_for(n: &TestNode, peer: &str) -> Vec<serde_json::Value> {
    deliveries(n).into_iter().filter(|i| i["peer"] == peer).collect()
}

fn attempts(i: &serde_json::Value) -> u64 {
    // proto3 JSON writes 64-bit integers as strings and omits zero.
    i["attempts"].as_u64().or_else(|| i["attempts"].as_str().and_then(|s| s.parse().ok())).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_error_that_retrying_cannot_change_fails_the_item_at_once() {
    let root = tempfile::tempdir().unwrap();
    let (th, mut kh) = th_kh_under_mou(root.path());
    kh.kill();
    let answers = Arc::new(Mutex::new(Answers {
        push: PushAnswer::Status(tonic::Code::InvalidArgument, "record.contact_point.name: too long".into()),
        ..Default::default()
    }));
    let server = serve_fake(&kh, &th, Arc::clone(&answers)).await;

    create(&th, contact_point("cp-1", "Duty desk")).await;
    th.cli_ok(&["record", "share", "cp-1", "--to", "kh-antht", "--purpose", "coordination"]);
    wait_for(30, "the item to fail", || items_for(&th, "kh-antht").iter().any(|i| i["state"] == "OUTBOX_STATE_FAILED"));
    let item = &items_for(&th, "kh-antht")[0];
    assert_eq!(attempts(item), 1, "not retried: {item}");
    let why = item["lastError"].as_str().unwrap_or_default();
    assert!(why.contains("InvalidArgument") && why.contains("record.contact_point.name"), "{why}");
    assert!(audit_entries(&th, "exchange.failed").iter().any(|e| e.to_string().contains("cp-1")));

    // "Unavailable" can change: that item stays pending and is retried.
    answers.lock().unwrap().push = PushAnswer::Status(tonic::Code::Unavailable, "restarting".into());
    create(&th, contact_point("cp-2", "Night desk")).await;
    th.cli_ok(&["record", "share", "cp-2", "--to", "kh-antht", "--purpose", "coordination"]);
    wait_for(30, "a retry", || {
        items_for(&th, "kh-antht").iter().any(|i| i["recordKey"] == "th-atpd/cp-2" && attempts(i) >= 2)
    });
    let cp2 = items_for(&th, "kh-antht").into_iter().find(|i| i["recordKey"] == "th-atpd/cp-2").unwrap();
    assert_eq!(cp2["state"], "OUTBOX_STATE_PENDING", "{cp2}");
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_peer_holds_up_only_its_own_queue() {
    let root = tempfile::tempdir().unwrap();
    let (th, mut kh) = th_kh_under_mou(root.path());
    let mut la = TestNode::init(root.path(), "la-dcta", "LA");
    la.start();
    pin_all(&[&th, &la]);
    activate(&[&th, &la], &bilateral("th-la", "th-atpd", "la-dcta", 365, MOU_GRANTS), "th-la");
    kh.kill();
    let answers = Arc::new(Mutex::new(Answers { push: PushAnswer::HoldFirst, ..Default::default() }));
    let server = serve_fake(&kh, &th, Arc::clone(&answers)).await;

    // KH takes the share and never answers.
    create(&th, contact_point("cp-1", "Duty desk")).await;
    th.cli_ok(&["record", "share", "cp-1", "--to", "kh-antht", "--purpose", "coordination"]);
    wait_for(30, "KH to hold the call", || answers.lock().unwrap().holding);

    // A share to LA queued after that is delivered while KH's call is still open.
    create(&th, contact_point("cp-2", "Night desk")).await;
    th.cli_ok(&["record", "share", "cp-2", "--to", "la-dcta", "--purpose", "coordination"]);
    wait_for(25, "the share to LA", || {
        items_for(&th, "la-dcta").iter().any(|i| i["state"] == "OUTBOX_STATE_DELIVERED")
    });
    assert!(answers.lock().unwrap().holding, "LA's share waited for KH's call to end");
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_request_steps_from_a_peer_are_bounded() {
    use liaison::pb::Transition as T;
    let root = tempfile::tempdir().unwrap();
    let (th, kh) = th_kh_under_mou(root.path());
    let id = send_information_request(&th, "kh-antht", "Recruiter using the alias Uncle Sok");
    wait_for(30, "the request at KH", || kh.cli(&["request", "show", &id]).status.success());
    let mut h = Hostile::new(&kh, &th);

    // Twenty oversized steps, each ahead of its turn: refused, nothing kept.
    let big = "x".repeat(200_000);
    for seq in 2..22 {
        let s = h.deliver_step(&h.step(&id, seq, T::Answer, &big)).await.expect_err("oversized");
        assert_eq!(s.code(), tonic::Code::InvalidArgument, "{s:?}");
        assert_eq!(bad_field(&s).as_deref(), Some("text"));
    }
    // Small early steps: only as many as a request can ever use are kept.
    let mut kept = 0;
    for seq in 2..30 {
        match h.deliver_step(&h.step(&id, seq, T::Answer, "one match")).await {
            Ok(r) if r.delivered => kept += 1,
            Ok(_) => {}
            Err(s) => assert_eq!(s.code(), tonic::Code::ResourceExhausted, "{s:?}"),
        }
    }
    assert!(kept <= 4, "{kept} early steps kept");
    // The buffer still does its job: the missing step arrives and the early answer follows.
    assert!(h.deliver_step(&h.step(&id, 1, T::Acknowledge, "")).await.unwrap().delivered);
    wait_for(10, "the answer", || th.cli_json(&["request", "show", &id])["state"] == "REQUEST_STATE_ANSWERED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_answers_a_sync_does_not_hold_up_the_others() {
    let root = tempfile::tempdir().unwrap();
    let mut th = TestNode::init(root.path(), "th-atpd", "TH");
    let mut kh = TestNode::init(root.path(), "kh-antht", "KH");
    let mut la = TestNode::init(root.path(), "la-dcta", "LA");
    configure(&th, |c| c.intervals.sync_secs = 1);
    for n in [&mut th, &mut kh, &mut la] {
        n.start();
    }
    pin_all(&[&th, &kh, &la]);
    activate(&[&th, &kh], &bilateral("th-kh", "th-atpd", "kh-antht", 365, MOU_GRANTS), "th-kh");
    activate(&[&th, &la], &bilateral("th-la", "th-atpd", "la-dcta", 365, MOU_GRANTS), "th-la");
    kh.kill();
    let answers = Arc::new(Mutex::new(Answers { hold_sync: true, ..Default::default() }));
    let server = serve_fake(&kh, &th, Arc::clone(&answers)).await;
    wait_for(30, "KH to hold a sync call", || answers.lock().unwrap().holding);

    // LA's new contact point reaches TH by the periodic sync while KH's call is open.
    create(&la, contact_point("cp-la", "LA duty desk")).await;
    wait_for(25, "LA's contact point at TH", || {
        futures::executor::block_on(async {
            th.records()
                .await
                .get_record(liaison::pb::GetRecordRequest { id: "la-dcta/cp-la".into(), ..Default::default() })
                .await
                .is_ok()
        })
    });
    assert!(answers.lock().unwrap().holding, "LA's sync waited for KH's");
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookkeeping_a_peer_causes_ends() {
    let root = tempfile::tempdir().unwrap();
    let (mut th, kh) = th_kh_under_mou(root.path());
    let mut h = Hostile::new(&kh, &th);
    let mut cp = contact_point("cp-kh", "KH desk");
    cp.originator = "kh-antht".into();
    cp.version = 1;
    let now = liaison::convert::timestamp(time::OffsetDateTime::now_utc());
    (cp.create_time, cp.update_time) = (Some(now), Some(now));
    let push = liaison::pb::PushRecordRequest {
        delivery_id: "dlv-once".into(),
        shared: Some(h.shared(&cp, "th-kh")),
        purpose: liaison::pb::Purpose::Coordination as i32,
        consent: None,
    };
    let first = h.client.push_record(push.clone()).await.unwrap().into_inner().receipt.unwrap();
    // A retry is answered from the kept receipt, byte for byte.
    assert_eq!(h.client.push_record(push.clone()).await.unwrap().into_inner().receipt.unwrap(), first);

    // Fifteen days later the receipt is gone: a retry is decided afresh.
    th.stop();
    th.env.push(("LIAISON_CLOCK_OFFSET_SECS".into(), (15 * 86_400).to_string()));
    configure(&th, |c| c.intervals.housekeeping_secs = 1);
    th.start();
    let mut h = Hostile::new(&kh, &th);
    wait_for(30, "the old receipt to go", || {
        let again = futures::executor::block_on(h.client.push_record(push.clone()));
        again.map(|r| r.into_inner().receipt.unwrap() != first).unwrap_or(false)
    });
}
