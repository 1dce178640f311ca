//! Nothing acknowledged is lost and nothing diverges: cancelled calls,
//! crashes between a change and its delivery, and deliveries overtaken by
//! newer versions, against real nodes over real mutual TLS.

mod common;

use std::time::Duration;

use common::*;
use futures::StreamExt;
use liaison::pb;

const MOU_ID: &str = "th-kh";

fn push_request(h: &Hostile, id: &str) -> pb::PushRecordRequest {
    let mut rec = contact_point(id, "Storm");
    rec.originator = h.identity.id().into();
    rec.version = 1;
    let now = liaison::convert::timestamp(time::OffsetDateTime::now_utc());
    rec.create_time = Some(now);
    rec.update_time = Some(now);
    pb::PushRecordRequest {
        delivery_id: liaison::exchange::random_id("dlv"),
        shared: Some(h.shared(&rec, MOU_ID)),
        purpose: pb::Purpose::Coordination as i32,
        consent: None,
    }
}

/// A fresh connection: the server answers a burst of cancelled streams on
/// one connection with GOAWAY (h2 rapid-reset protection), so each call of
/// the storm gets its own.
fn fresh(
    h: &Hostile,
    target: &TestNode,
) -> pb::federation_service_client::FederationServiceClient<tonic::transport::Channel> {
    pb::federation_service_client::FederationServiceClient::new(
        liaison::federation::dial(&h.identity, &target.card()).unwrap(),
    )
}

/// Every change the node has logged, in order, from the change feed.
async fn change_feed(node: &TestNode) -> Vec<pb::Change> {
    let mut feed = pb::change_service_client::ChangeServiceClient::new(node.authed().await);
    let mut stream =
        feed.watch_changes(pb::WatchChangesRequest { since_seq: 0, no_follow: true }).await.unwrap().into_inner();
    let mut out = Vec::new();
    while let Some(item) = stream.message().await.unwrap() {
        out.push(item.change.unwrap());
    }
    out
}

/// A peer's calls with a 1 ms deadline are dropped by the server while their
/// writes are being applied. Each such write still lands whole: the audit
/// chain verifies, the change feed has no gap, and no write took another's
/// sequence number (every record received has its own change and audit entry).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_one_millisecond_calls_leaves_the_chain_and_the_feed_whole() {
    let root = tempfile::tempdir().unwrap();
    let (th, kh) = th_kh_under_mou(root.path());
    let h = Hostile::new(&kh, &th);
    const N: usize = 80;
    let pushes: Vec<pb::PushRecordRequest> = (0..N).map(|i| push_request(&h, &format!("cp-storm-{i}"))).collect();

    futures::stream::iter(pushes.clone())
        .for_each_concurrent(16, |req| {
            let mut c = fresh(&h, &th);
            async move {
                let mut r = tonic::Request::new(req);
                r.set_timeout(Duration::from_millis(1));
                let _ = c.push_record(r).await;
            }
        })
        .await;
    futures::stream::iter(0..N)
        .for_each_concurrent(16, |_| {
            let mut c = fresh(&h, &th);
            async move {
                let mut r = tonic::Request::new(pb::QueryRecordsRequest {
                    kind: pb::RecordKind::ContactPoint as i32,
                    purpose: pb::Purpose::Coordination as i32,
                    ..Default::default()
                });
                r.set_timeout(Duration::from_millis(1));
                let _ = c.query_records(r).await;
            }
        })
        .await;

    // The same deliveries again, with time to answer: each is taken (once).
    let mut c = fresh(&h, &th);
    for req in pushes {
        let r = c.push_record(req).await.expect("a retried delivery is answered").into_inner();
        let receipt = liaison::envelope::decode::<pb::Receipt>(&r.receipt.unwrap()).unwrap();
        assert!(receipt.delivered, "{receipt:?}");
    }

    let feed = change_feed(&th).await;
    let seqs: Vec<u64> = feed.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "the change feed has a gap");
    let received = feed.iter().filter(|c| c.r#type == pb::ChangeType::RecordReceived as i32).count();
    assert_eq!(received, N, "a received record lost its change to another write");
    assert_eq!(audit_entries(&th, "record.receive").len(), N, "a receive lost its audit entry");
    let verify = th.cli_ok(&["audit", "verify"]);
    assert!(verify.contains("intact"), "{verify}");
}

async fn held_version(node: &TestNode, key: &str) -> Option<u64> {
    let mut c = node.records().await;
    c.get_record(pb::GetRecordRequest { id: key.into(), reason: "integration test".into(), ..Default::default() })
        .await
        .ok()?
        .into_inner()
        .record
        .map(|r| r.version)
}

/// TH and KH under the MOU, TH reaching KH only through a link the test can
/// slow down (periodic sync off, so only the test's traffic crosses it).
async fn over_a_slow_link(root: &std::path::Path) -> (TestNode, TestNode, common::slow_link::SlowLink) {
    let mut th = TestNode::init(root, "th-atpd", "TH");
    let mut kh = TestNode::init(root, "kh-antht", "KH");
    let link = common::slow_link::SlowLink::start(kh.fed).await;
    configure(&kh, |c| c.endpoint = link.addr.to_string());
    for n in [&th, &kh] {
        configure(n, |c| c.intervals.sync_secs = 3600);
    }
    th.start();
    kh.start();
    pin_all(&[&th, &kh]);
    activate(&[&th, &kh], &bilateral(MOU_ID, "th-atpd", "kh-antht", 365, MOU_GRANTS), MOU_ID);
    (th, kh, link)
}

/// A record updated while its previous version's share is on the wire still
/// reaches that receiver: the new version goes to every peer being sent the
/// record, not only to those already marked delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_made_while_its_share_is_in_flight_reaches_the_receiver() {
    let root = tempfile::tempdir().unwrap();
    let (th, kh, link) = over_a_slow_link(root.path()).await;

    let rec = create(&th, contact_point("cp-slow", "Version one")).await;
    let key = format!("th-atpd/{}", rec.id);
    link.hold();
    th.cli_ok(&["record", "share", &rec.id, "--to", "kh-antht", "--purpose", "coordination"]);
    // The push of version 1 is on the wire (more than keep-alive chatter).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while link.held_bytes() <= 400 {
        assert!(
            std::time::Instant::now() < deadline,
            "the share was not sent ({} bytes held): {}",
            link.held_bytes(),
            th.cli_ok(&["outbox", "--all"])
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut next = contact_point("cp-slow", "Version two");
    next.id = rec.id.clone();
    let mut records = th.records().await;
    records
        .update_record(pb::UpdateRecordRequest { record: Some(next), expected_version: 1, ..Default::default() })
        .await
        .unwrap();
    link.release();

    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if held_version(&kh, &key).await == Some(2) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "KH still holds {:?}", held_version(&kh, &key).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls (async) until `f` holds, or fails naming `what`.
async fn eventually<F, Fut>(secs: u64, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while !f().await {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Shares a new contact point from TH to KH and waits until KH holds it.
async fn shared_with_kh(th: &TestNode, kh: &TestNode, id: &str) -> String {
    let rec = create(th, contact_point(id, "Version one")).await;
    th.cli_ok(&["record", "share", &rec.id, "--to", "kh-antht", "--purpose", "coordination"]);
    let key = format!("th-atpd/{}", rec.id);
    eventually(30, "KH to hold the record", || async { held_version(kh, &key).await == Some(1) }).await;
    key
}

/// A crash right after a withdrawal is stored still purges the record at
/// every partner: the withdrawal and its deliveries are one write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_right_after_a_withdrawal_still_purges_it_at_the_partner() {
    let root = tempfile::tempdir().unwrap();
    let (mut th, kh) = th_kh_under_mou(root.path());
    let key = shared_with_kh(&th, &kh, "cp-crash-w").await;

    th.arm_crash("record.withdraw");
    let mut records = th.records().await;
    let _ = records
        .withdraw_record(pb::WithdrawRecordRequest {
            id: "cp-crash-w".into(),
            expected_version: 1,
            ..Default::default()
        })
        .await;
    th.restart_after_crash();

    let held = th
        .records()
        .await
        .get_record(pb::GetRecordRequest { id: key.clone(), reason: "integration test".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert!(held.record.unwrap().withdrawn, "the withdrawal was acknowledged by the store before the crash");
    eventually(30, "KH to purge the withdrawn record", || async { held_version(&kh, &key).await.is_none() }).await;
}

/// A crash right after an update is stored still sends the new version to
/// everyone holding the old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_right_after_an_update_still_delivers_it() {
    let root = tempfile::tempdir().unwrap();
    let (mut th, kh) = th_kh_under_mou(root.path());
    let key = shared_with_kh(&th, &kh, "cp-crash-u").await;

    th.arm_crash("record.update");
    let mut next = contact_point("cp-crash-u", "Version two");
    next.id = "cp-crash-u".into();
    let _ = th
        .records()
        .await
        .update_record(pb::UpdateRecordRequest { record: Some(next), expected_version: 1, ..Default::default() })
        .await;
    th.restart_after_crash();

    eventually(30, "KH to hold version 2", || async { held_version(&kh, &key).await == Some(2) }).await;
}

/// A crash right after a request is submitted, or right after a step is
/// taken, still delivers it: both sides end on the same timeline, and later
/// steps are not buffered behind a lost one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_right_after_a_request_or_a_step_still_delivers_it() {
    let root = tempfile::tempdir().unwrap();
    let (mut th, mut kh) = th_kh_under_mou(root.path());

    th.arm_crash("request.submit");
    let _ = th.cli(&[
        "request",
        "send",
        "--to",
        "kh-antht",
        "--type",
        "information_request",
        "--purpose",
        "investigation",
        "--subject",
        "Crash while sending",
    ]);
    th.restart_after_crash();
    let list = th.cli_json(&["request", "list"]);
    let id = list["requests"][0]["id"].as_str().unwrap_or_else(|| panic!("no request at TH: {list}")).to_string();
    wait_for(30, "the request at KH", || request_state(&kh, &id) == "REQUEST_STATE_SUBMITTED");

    kh.arm_crash("request.acknowledge");
    let _ = kh.cli(&["request", "ack", &id]);
    kh.restart_after_crash();
    wait_for(30, "TH to see the acknowledgement", || request_state(&th, &id) == "REQUEST_STATE_ACKNOWLEDGED");

    kh.cli_ok(&["request", "answer", &id, "--text", "Nothing held."]);
    wait_for(30, "TH to see the answer", || request_state(&th, &id) == "REQUEST_STATE_ANSWERED");
    assert_eq!(request_state(&kh, &id), "REQUEST_STATE_ANSWERED");
}

fn agreement_state(n: &TestNode, id: &str) -> String {
    let out = n.cli(&["--json", "agreement", "show", id]);
    if !out.status.success() {
        return String::new();
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["agreement"]["state"].as_str().unwrap_or_default().to_string()
}

/// Agreement documents and notices go through the durable outbox: a party
/// that is down when an agreement is proposed or suspended, or a party that
/// crashes right after accepting, still ends in the same state as the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agreement_steps_reach_a_party_that_was_down_or_crashed() {
    let root = tempfile::tempdir().unwrap();
    let mut th = TestNode::init(root.path(), "th-atpd", "TH");
    let mut kh = TestNode::init(root.path(), "kh-antht", "KH");
    th.start();
    kh.start();
    pin_all(&[&th, &kh]);

    // Proposed while KH is down: TH reports the delivery as waiting.
    kh.stop();
    let file = root.path().join("mou.toml");
    std::fs::write(&file, bilateral(MOU_ID, "th-atpd", "kh-antht", 365, MOU_GRANTS)).unwrap();
    th.cli_ok(&["agreement", "draft", &file.display().to_string()]);
    let proposed = th.cli_json(&["agreement", "propose", MOU_ID]);
    assert_ne!(proposed["deliveries"][0]["delivered"], serde_json::Value::Bool(true), "{proposed}");
    kh.start();
    wait_for(60, "the proposal to reach KH once it is back", || {
        agreement_state(&kh, MOU_ID) == "AGREEMENT_STATE_PROPOSED"
    });

    // KH crashes right after storing its acceptance: TH still gets it.
    kh.arm_crash("agreement.accept");
    let _ = kh.cli(&["agreement", "accept", MOU_ID]);
    kh.restart_after_crash();
    assert_eq!(agreement_state(&kh, MOU_ID), "AGREEMENT_STATE_ACTIVE");
    wait_for(60, "TH to see the agreement active", || agreement_state(&th, MOU_ID) == "AGREEMENT_STATE_ACTIVE");

    // Suspended while KH is down: KH is suspended once it is back.
    kh.stop();
    th.cli_ok(&["agreement", "suspend", MOU_ID, "--reason", "Audit of the exchange"]);
    kh.start();
    wait_for(60, "KH to see the suspension", || agreement_state(&kh, MOU_ID) == "AGREEMENT_STATE_SUSPENDED");
}

fn submit_at(id: &str, at: time::OffsetDateTime) -> pb::RequestEvent {
    pb::RequestEvent {
        request_id: id.into(),
        actor: "kh-antht".into(),
        seq: 1,
        transition: pb::Transition::Submit as i32,
        time: Some(liaison::convert::timestamp(at)),
        header: Some(pb::RequestHeader {
            agreement_id: MOU_ID.into(),
            agreement_version: 1,
            request_type: "information_request".into(),
            from_node: "kh-antht".into(),
            to_node: "th-atpd".into(),
            purpose: pb::Purpose::Investigation as i32,
            subject: "Skewed clock".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A request from a node whose clock is two days behind does not arrive
/// overdue: the receiver's deadlines run from its own clock. A step dated a
/// day ahead of the receiver's clock (a wrong clock, or a try at making a
/// waiting period pass early) is refused, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_clock_two_days_off_neither_makes_a_request_overdue_nor_is_believed() {
    let root = tempfile::tempdir().unwrap();
    let (th, kh) = th_kh_under_mou(root.path());
    let mut h = Hostile::new(&kh, &th);
    let now = time::OffsetDateTime::now_utc();

    let behind = liaison::exchange::random_id("req");
    let r = h.deliver_step(&submit_at(&behind, now - time::Duration::days(2))).await.unwrap();
    assert!(r.delivered, "{r:?}");
    let shown = th.cli_json(&["request", "show", &behind]);
    let due =
        time::OffsetDateTime::parse(shown["ackDue"].as_str().unwrap(), &time::format_description::well_known::Rfc3339)
            .unwrap();
    assert!(due > now + time::Duration::hours(23), "acknowledge due {due}, from the sender's clock: {shown}");
    assert_ne!(shown["overdue"], serde_json::Value::Bool(true), "{shown}");

    let ahead = liaison::exchange::random_id("req");
    let r = h.deliver_step(&submit_at(&ahead, now + time::Duration::days(1))).await.unwrap();
    assert!(!r.delivered && r.reason.starts_with("clock_skew"), "{r:?}");
    assert!(!th.cli(&["request", "show", &ahead]).status.success(), "a refused submit left a request");
    // A later step dated ahead is refused the same way; the request is unchanged.
    let mut ack = h.step(&behind, 2, pb::Transition::Acknowledge, "");
    ack.time = Some(liaison::convert::timestamp(now + time::Duration::days(1)));
    let r = h.deliver_step(&ack).await;
    assert!(r.as_ref().is_ok_and(|r| !r.delivered && r.reason.starts_with("clock_skew")), "{r:?}");
    assert_eq!(th.cli_json(&["request", "show", &behind])["state"], "REQUEST_STATE_SUBMITTED");
}

/// The API listener's overall health status.
async fn health(node: &TestNode) -> i32 {
    use tonic_health::pb::health_client::HealthClient;
    let mut c = HealthClient::new(node.channel().await);
    let r = c.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await;
    r.map(|r| r.into_inner().status).unwrap_or(-1)
}

const SERVING: i32 = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
const NOT_SERVING: i32 = tonic_health::pb::health_check_response::ServingStatus::NotServing as i32;

/// A full disk (reported through the test-only free-space switch): writes
/// are refused up front with RESOURCE_EXHAUSTED saying why, health says
/// NOT_SERVING, reads go on, SIGTERM still stops the node, nothing refused is
/// there after a restart, and writes resume by themselves once space returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_clearly_stops_cleanly_and_recovers() {
    let root = tempfile::tempdir().unwrap();
    let mut th = TestNode::init(root.path(), "th-atpd", "TH");
    let free = root.path().join("free-bytes");
    let plenty = "100000000000";
    std::fs::write(&free, plenty).unwrap();
    th.env.push((liaison::store::disk::FAKE_FREE_VAR.into(), free.display().to_string()));
    th.start();
    create(&th, contact_point("cp-before", "Before")).await;
    assert_eq!(health(&th).await, SERVING);

    std::fs::write(&free, "4096").unwrap();
    eventually(30, "health NOT_SERVING on a full disk", || async { health(&th).await == NOT_SERVING }).await;
    let err = th
        .records()
        .await
        .create_record(pb::CreateRecordRequest {
            record: Some(contact_point("cp-full", "Refused")),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("disk is nearly full"), "{}", err.message());
    assert_eq!(held_version(&th, "th-atpd/cp-before").await, Some(1), "reads go on");

    let status = th.stop();
    assert!(status.success(), "SIGTERM on a full disk: {status}");
    th.start();
    eventually(30, "health NOT_SERVING after a restart on a full disk", || async { health(&th).await == NOT_SERVING })
        .await;
    assert_eq!(held_version(&th, "th-atpd/cp-full").await, None, "a refused write is not there");

    std::fs::write(&free, plenty).unwrap();
    eventually(30, "health SERVING once space returns", || async { health(&th).await == SERVING }).await;
    create(&th, contact_point("cp-after", "After")).await;
    assert_eq!(held_version(&th, "th-atpd/cp-after").await, Some(1));
}

/// `liaison run` on `node`, which must refuse to start: its stderr.
fn refused_start(node: &TestNode) -> String {
    let mut child = std::process::Command::new(BIN)
        .args(["--dir", &node.dir.display().to_string(), "run"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(!status.success(), "the node started on a damaged store");
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            assert!(!err.contains("panicked"), "a panic instead of a clear refusal:\n{err}");
            return err;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the node kept running on a damaged store");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A store damaged on disk (a torn tail, flipped bytes, an older copy put
/// back on its own) is refused at start with a message that says what to
/// do — never served as an older state, never a panic. The store and its
/// head restored together from one backup start again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_truncated_or_partly_restored_store_is_refused_at_start() {
    let root = tempfile::tempdir().unwrap();
    let mut th = TestNode::init(root.path(), "th-atpd", "TH");
    th.start();
    create(&th, contact_point("cp-1", "One")).await;
    th.stop();
    let backup = root.path().join("backup");
    copy_dir(&th.dir.join("store"), &backup.join("store"));
    std::fs::copy(th.dir.join("store.head"), backup.join("store.head")).unwrap();
    th.start();
    for i in 2..20 {
        create(&th, contact_point(&format!("cp-{i}"), "More")).await;
    }
    th.stop();
    let restore = |th: &TestNode, with_head: bool| {
        std::fs::remove_dir_all(th.dir.join("store")).unwrap();
        copy_dir(&backup.join("store"), &th.dir.join("store"));
        if with_head {
            std::fs::copy(backup.join("store.head"), th.dir.join("store.head")).unwrap();
        }
    };

    // Only the older store put back: it lacks what store.head recorded.
    let current = root.path().join("current");
    copy_dir(&th.dir.join("store"), &current);
    restore(&th, false);
    let err = refused_start(&th);
    assert!(err.contains("ends before audit entry") && err.contains("restore"), "{err}");

    // A torn tail and flipped bytes in the current store.
    std::fs::remove_dir_all(th.dir.join("store")).unwrap();
    copy_dir(&current, &th.dir.join("store"));
    let db = th.dir.join("store").join("db");
    let bytes = std::fs::read(&db).unwrap();
    std::fs::write(&db, &bytes[..4000]).unwrap();
    let err = refused_start(&th);
    assert!(err.contains("audit entry") || err.contains("is damaged"), "{err}");
    let mut flipped = bytes.clone();
    for b in &mut flipped[100..164] {
        *b ^= 0xff;
    }
    std::fs::write(&db, &flipped).unwrap();
    let err = refused_start(&th);
    assert!(err.contains("is damaged") && err.contains("backup"), "{err}");

    // The store and its head from one backup: it starts and serves the backup.
    restore(&th, true);
    th.start();
    assert_eq!(held_version(&th, "th-atpd/cp-1").await, Some(1));
    assert_eq!(held_version(&th, "th-atpd/cp-5").await, None);
}

fn timeline_len(n: &TestNode, id: &str) -> usize {
    let out = n.cli(&["--json", "request", "show", id]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["timeline"].as_array().map_or(0, Vec::len)
}

/// A withdrawal and an answer that cross on the wire end the same on both
/// nodes (the answer stands: its information already went out), and each
/// node keeps both steps — instead of each refusing the other's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawal_and_an_answer_that_cross_end_the_same_on_both_nodes() {
    let root = tempfile::tempdir().unwrap();
    let (th, kh, link) = over_a_slow_link(root.path()).await;
    let id = send_information_request(&th, "kh-antht", "Crossing steps");
    wait_for(30, "the request at KH", || request_state(&kh, &id) == "REQUEST_STATE_SUBMITTED");

    // TH withdraws while its link to KH holds everything back; KH, not
    // having seen it, answers.
    link.hold();
    th.cli_ok(&["request", "withdraw", &id]);
    assert_eq!(request_state(&th, &id), "REQUEST_STATE_WITHDRAWN");
    kh.cli_ok(&["request", "answer", &id, "--text", "Nothing held on him."]);
    wait_for(30, "TH to take the crossed answer", || request_state(&th, &id) == "REQUEST_STATE_ANSWERED");

    link.release();
    wait_for(30, "KH to record the crossed withdrawal", || timeline_len(&kh, &id) == 3);
    assert_eq!(request_state(&kh, &id), "REQUEST_STATE_ANSWERED");
    assert_eq!(timeline_len(&th, &id), 3);
}
