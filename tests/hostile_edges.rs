//! Hostile peers and clients at the edges: existence oracles, refusals that
//! must leave a (bounded) trace, malformed bodies and cards, and what each
//! listener admits to serving — against real nodes over real mutual TLS.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use common::{
    activate, audit_entries, bad_field, bilateral, configure, create, deliveries, pin_all, wait_for, Hostile, TestNode,
    MOU_GRANTS,
};
use liaison::config::Layout;
use liaison::identity::Identity;
use liaison::pb;
use liaison::record::examples;
use prost::bytes::{Buf, BufMut};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_reflection::pb::{v1, v1alpha};

/// Sets how long refusals are counted before they are audited (before start).
fn refusal_window(n: &TestNode, secs: u64) {
    configure(n, |c| c.intervals.refusal_window_secs = secs);
}

/// Limits high enough that a flood is refused (and audited) rather than
/// slowed down: the rate limits have their own tests (`tests/limits.rs`).
fn no_rate_limits(n: &TestNode) {
    configure(n, |c| {
        c.limits.peer_burst = 100_000;
        c.limits.failed_token_burst = 100_000;
    });
}

/// The count an aggregated refusal entry carries (`count=N; ...`).
fn count(e: &serde_json::Value) -> u64 {
    e["reason"]
        .as_str()
        .and_then(|r| r.strip_prefix("count="))
        .and_then(|r| r.split(';').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn by_actor(entries: Vec<serde_json::Value>, actor: &str) -> Vec<serde_json::Value> {
    entries.into_iter().filter(|e| e["actor"] == actor).collect()
}

fn identity(n: &TestNode) -> Identity {
    liaison::tls::install_provider();
    Identity::load(&Layout::new(&n.dir)).unwrap()
}

fn now() -> pbjson_types::Timestamp {
    liaison::convert::timestamp(time::OffsetDateTime::now_utc())
}

fn consent_answer(r: Result<tonic::Response<pb::RequestOnwardConsentResponse>, Status>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(s) => format!("{:?}: {} {:?}", s.code(), s.message(), s.details()),
    }
}

static NEXT: AtomicU32 = AtomicU32::new(0);

async fn ask_consent(h: &mut Hostile, key: &str) -> String {
    let req = pb::RequestOnwardConsentRequest {
        consent_id: format!("consent-{}", NEXT.fetch_add(1, Ordering::Relaxed)),
        record_key: key.into(),
        third_party: "kh-antht".into(),
        purpose: pb::Purpose::Investigation as i32,
    };
    consent_answer(h.client.request_onward_consent(req).await)
}

fn consent_holders(n: &TestNode) -> Vec<String> {
    n.cli_json(&["consent", "list"])["requests"]
        .as_array()
        .map_or(vec![], |a| a.iter().map(|r| r["holder"].as_str().unwrap_or("").to_string()).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consent_request_does_not_tell_a_stranger_whether_a_record_exists() {
    let root = tempfile::tempdir().unwrap();
    let mut th = TestNode::init(root.path(), "th-atpd", "TH");
    let mut kh = TestNode::init(root.path(), "kh-antht", "KH");
    let mut vn = TestNode::init(root.path(), "vn-c02", "VN");
    refusal_window(&th, 2);
    for n in [&mut th, &mut kh, &mut vn] {
        n.start();
    }
    pin_all(&[&th, &kh, &vn]);
    activate(&[&th, &kh], &bilateral("th-kh", "th-atpd", "kh-antht", 365, MOU_GRANTS), "th-kh");
    let rec = create(&th, examples::entity()).await;
    let key = format!("th-atpd/{}", rec.id);
    th.cli_ok(&["record", "share", &rec.id, "--to", "kh-antht", "--purpose", "investigation"]);
    wait_for(30, "delivery to KH", || {
        deliveries(&th).iter().any(|i| i["recordKey"] == key.as_str() && i["state"] == "OUTBOX_STATE_DELIVERED")
    });

    // VN, pinned but never given the record, with no agreement with TH.
    let mut vn_raw = Hostile::new(&vn, &th);
    let exists = ask_consent(&mut vn_raw, &key).await;
    let missing = ask_consent(&mut vn_raw, "th-atpd/ent-does-not-exist").await;
    assert_eq!(exists, missing, "the answer must not depend on whether the record exists");

    // The same once VN has an agreement with TH (that grants it no copy of this record).
    activate(&[&th, &vn], &bilateral("th-vn", "th-atpd", "vn-c02", 365, MOU_GRANTS), "th-vn");
    let exists = ask_consent(&mut vn_raw, &key).await;
    let missing = ask_consent(&mut vn_raw, "th-atpd/ent-does-not-exist").await;
    assert_eq!(exists, missing, "with an agreement too");
    assert!(consent_holders(&th).is_empty(), "nothing from VN is put before TH's officers");

    // The honest holder's request is still recorded.
    kh.cli_ok(&["consent", "request", &key, "--to", "vn-c02", "--purpose", "investigation"]);
    assert_eq!(consent_holders(&th), vec!["kh-antht".to_string()]);

    // VN's probing is counted, not silently dropped.
    wait_for(30, "VN's consent refusals audited", || {
        by_actor(audit_entries(&th, "federation.refused.consent"), "peer:vn-c02").iter().map(count).sum::<u64>() == 4
    });
    assert!(th.cli_ok(&["audit", "verify"]).contains("intact"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impersonation_tampered_envelopes_invalid_records_and_refused_steps_are_audited() {
    let root = tempfile::tempdir().unwrap();
    let mut th = TestNode::init(root.path(), "th-atpd", "TH");
    let mut kh = TestNode::init(root.path(), "kh-antht", "KH");
    refusal_window(&th, 2);
    th.start();
    kh.start();
    pin_all(&[&th, &kh]);
    activate(&[&th, &kh], &bilateral("th-kh", "th-atpd", "kh-antht", 365, MOU_GRANTS), "th-kh");
    let mut h = Hostile::new(&kh, &th);

    // KH's certificate, claiming to be TH.
    let err = h.client.hello(pb::HelloRequest { node_id: "th-atpd".into() }).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // A share whose signed bytes were changed after signing.
    let mut rec = common::contact_point("cp-kh-1", "Border liaison office");
    rec.originator = "kh-antht".into();
    rec.version = 1;
    let mut shared = h.shared(&rec, "th-kh");
    if let Some(env) = shared.record.as_mut() {
        let last = env.body.len() - 1;
        env.body[last] ^= 1;
    }
    let push = pb::PushRecordRequest {
        delivery_id: "dlv-tampered".into(),
        shared: Some(shared),
        purpose: pb::Purpose::Coordination as i32,
        consent: None,
    };
    let err = h.client.push_record(push).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");

    // A record KH signed properly that fails validation.
    let mut invalid = common::contact_point("cp-kh-2", &"x".repeat(100_000));
    invalid.originator = "kh-antht".into();
    invalid.version = 1;
    let push = pb::PushRecordRequest {
        delivery_id: "dlv-invalid".into(),
        shared: Some(h.shared(&invalid, "th-kh")),
        purpose: pb::Purpose::Coordination as i32,
        consent: None,
    };
    let err = h.client.push_record(push).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");

    // A request step KH signed, in VN's name: refused with a receipt, and
    // audited as each refused step is.
    let step = pb::RequestEvent {
        request_id: "req-forged".into(),
        actor: "vn-c02".into(),
        seq: 1,
        transition: pb::Transition::Submit as i32,
        time: Some(now()),
        ..Default::default()
    };
    let req = pb::DeliverRequestEventRequest {
        delivery_id: "dlv-step".into(),
        event: Some(h.seal(liaison::envelope::payload::REQUEST_EVENT, &step)),
    };
    let env = h.client.deliver_request_event(req).await.unwrap().into_inner().receipt.unwrap();
    let receipt: pb::Receipt = liaison::envelope::decode(&env).unwrap();
    assert!(!receipt.delivered, "{receipt:?}");
    let refused = audit_entries(&th, "request.refused");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["actor"], "peer:kh-antht");
    assert!(refused[0]["reason"].as_str().unwrap().contains("a step by vn-c02"), "{refused:?}");

    for action in ["federation.refused.impersonation", "federation.refused.signature", "federation.refused.invalid"] {
        wait_for(30, action, || {
            by_actor(audit_entries(&th, action), "peer:kh-antht").iter().map(count).sum::<u64>() == 1
        });
    }
    let imp = audit_entries(&th, "federation.refused.impersonation");
    assert!(imp[0]["reason"].as_str().unwrap().contains("Hello: claimed to be th-atpd"), "{imp:?}");
    assert!(th.cli_ok(&["audit", "verify"]).contains("intact"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bad_calls_leaves_one_entry_per_source_and_window() {
    const WINDOW: u64 = 5;
    let root = tempfile::tempdir().unwrap();
    let mut th = TestNode::init(root.path(), "th-atpd", "TH");
    let mut kh = TestNode::init(root.path(), "kh-antht", "KH");
    let vn = identity(&TestNode::init(root.path(), "vn-c02", "VN"));
    refusal_window(&th, WINDOW);
    no_rate_limits(&th);
    th.start();
    kh.start();
    pin_all(&[&th, &kh]);
    let before = audit_entries(&th, "").len();

    let started = Instant::now();
    let mut h = Hostile::new(&kh, &th);
    for _ in 0..200 {
        let err = h.client.hello(pb::HelloRequest { node_id: "vn-c02".into() }).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied);
    }
    let mut peers = pb::peer_service_client::PeerServiceClient::new(th.authed_with("lsn_not-a-token").await);
    for _ in 0..200 {
        let err = peers.list_peers(pb::ListPeersRequest { page_size: 1000, ..Default::default() }).await.unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated);
    }
    // A stranger whose certificate TH never pinned: refused at the handshake.
    let card = th.card();
    for _ in 0..100 {
        let stranger = liaison::federation::dial(&vn, &card).unwrap();
        let err = HealthClient::new(stranger).check(HealthCheckRequest { service: String::new() }).await.unwrap_err();
        assert_ne!(err.code(), Code::Ok);
    }
    let windows = started.elapsed().as_secs() / WINDOW + 2;

    for (action, actor, at_least) in [
        ("federation.refused.impersonation", "peer:kh-antht", 200),
        ("api.refused.token", "addr:127.0.0.1", 200),
        ("federation.refused.handshake", "addr:127.0.0.1", 100),
    ] {
        wait_for(60, action, || by_actor(audit_entries(&th, action), actor).iter().map(count).sum::<u64>() >= at_least);
        let n = audit_entries(&th, action).len() as u64;
        assert!(n <= windows, "{action}: {n} entries for {at_least} refusals in at most {windows} windows");
    }
    let sum = |action| by_actor(audit_entries(&th, action), "peer:kh-antht").iter().map(count).sum::<u64>();
    assert_eq!(sum("federation.refused.impersonation"), 200, "each refusal counted once");
    let grown = audit_entries(&th, "").len() - before;
    assert!(grown as u64 <= 3 * windows, "500 refused calls added {grown} audit entries");
    assert!(th.cli_ok(&["audit", "verify"]).contains("intact"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_and_user_changes_are_audited() {
    let root = tempfile::tempdir().unwrap();
    let mut th = TestNode::init(root.path(), "th-atpd", "TH");
    let mut kh = TestNode::init(root.path(), "kh-antht", "KH");
    th.start();
    kh.start();
    pin_all(&[&th, &kh]);

    let added = audit_entries(&th, "peer.add");
    assert_eq!(added.len(), 1, "{added:?}");
    assert_eq!(added[0]["actor"], "user:admin");
    assert!(added[0]["reason"].as_str().unwrap().starts_with("kh-antht "), "{added:?}");

    th.cli_ok(&["user", "add", "somchai", "--role", "officer"]);
    let created = audit_entries(&th, "user.create");
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["actor"], "user:admin");
    let reason = created[0]["reason"].as_str().unwrap();
    assert!(reason.contains("somchai") && reason.contains("officer"), "{reason}");
    assert!(!reason.contains("lsn_"), "the token is never logged");
    th.cli_ok(&["user", "remove", "somchai"]);
    assert_eq!(audit_entries(&th, "user.delete").len(), 1);

    th.cli_ok(&["peer", "remove", "kh-antht"]);
    let removed = audit_entries(&th, "peer.remove");
    assert_eq!(removed.len(), 1);
    assert!(removed[0]["reason"].as_str().unwrap().starts_with("kh-antht"), "{removed:?}");
    assert!(th.cli_ok(&["audit", "verify"]).contains("intact"));
}

/// A codec that sends the given bytes as the message, whatever they are.
#[derive(Clone, Copy, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let n = src.remaining();
        Ok(Some(src.copy_to_bytes(n).to_vec()))
    }
}

/// Sends `body` as one gRPC message to `path` and returns the status.
async fn garbage<S>(svc: S, path: &'static str, body: Vec<u8>) -> Status
where
    S: tonic::client::GrpcService<tonic::body::Body>,
    S::ResponseBody: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    <S::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
    S::Error: Into<tonic::codegen::StdError>,
{
    let mut g = tonic::client::Grpc::new(svc);
    g.ready().await.unwrap_or_else(|e| panic!("not ready: {}", e.into()));
    let path = http::uri::PathAndQuery::from_static(path);
    g.unary(tonic::Request::new(body), path, Raw).await.expect_err("garbage must be refused")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_body_that_does_not_decode_is_invalid_argument_on_both_listeners() {
    let root = tempfile::tempdir().unwrap();
    let mut th = TestNode::init(root.path(), "th-atpd", "TH");
    let mut kh = TestNode::init(root.path(), "kh-antht", "KH");
    th.start();
    kh.start();
    pin_all(&[&th, &kh]);
    // A field tag whose varint never ends: no protobuf message decodes from it.
    let bytes = vec![0xff; 12];

    let api = th.authed().await;
    for path in ["/liaison.v1.RecordService/GetRecord", "/liaison.v1.PeerService/AddPeer"] {
        let s = garbage(api.clone(), path, bytes.clone()).await;
        assert_eq!(s.code(), Code::InvalidArgument, "{path}: {s:?}");
        assert_eq!(bad_field(&s).as_deref(), Some("request"), "{path}");
    }
    let s = garbage(th.channel().await, "/grpc.health.v1.Health/Check", bytes.clone()).await;
    assert_eq!(s.code(), Code::InvalidArgument, "health: {s:?}");

    let fed: Channel = liaison::federation::dial(&identity(&kh), &th.card()).unwrap();
    for path in ["/liaison.v1.FederationService/PushRecord", "/grpc.health.v1.Health/Check"] {
        let s = garbage(fed.clone(), path, bytes.clone()).await;
        assert_eq!(s.code(), Code::InvalidArgument, "{path}: {s:?}");
    }
    // Well-formed calls are unaffected.
    let h = HealthClient::new(fed).check(HealthCheckRequest { service: String::new() }).await.unwrap();
    assert_eq!(h.into_inner().status, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_with_a_malformed_endpoint_is_refused_by_peer_add_and_in_a_hub_directory() {
    let root = tempfile::tempdir().unwrap();
    let mut hub = TestNode::init_role(root.path(), "commit-hub", "COMMIT-Mekong", "hub");
    let mut th = TestNode::init(root.path(), "th-atpd", "TH");
    let vn = identity(&TestNode::init(root.path(), "vn-c02", "VN"));
    let la = identity(&TestNode::init(root.path(), "la-dcta", "LA"));
    hub.start();
    th.start();

    let mut peers = pb::peer_service_client::PeerServiceClient::new(th.authed().await);
    for bad in ["vn.example", "vn.example:0", "vn.example:99999", ":7443", "vn c02:7443", "https://vn.example:7443/x"] {
        let (_, env) = vn.card(bad, now());
        let err = peers.add_peer(pb::AddPeerRequest { card: Some(env) }).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad:?}: {err:?}");
        assert_eq!(bad_field(&err).as_deref(), Some("card.federation_endpoint"), "{bad:?}");
    }
    let listed = th.cli_json(&["peer", "list"]);
    assert!(listed["peers"].as_array().is_none_or(|a| a.is_empty()), "{listed}");

    // The same card arriving in a directory signed by a hub TH joined.
    hub.cli_ok(&["hub", "admit", &th.card_file().display().to_string()]);
    th.cli_ok(&["hub", "join", &hub.card_file().display().to_string()]);
    let mut h = Hostile::new(&hub, &th);
    let dir = pb::MemberDirectory {
        hub_id: "commit-hub".into(),
        version: 1000,
        issue_time: Some(now()),
        members: vec![vn.card("vn c02:7443", now()).1, la.card("127.0.0.1:7443", now()).1],
    };
    let env = h.seal(liaison::envelope::payload::MEMBER_DIRECTORY, &dir);
    h.client.push_directory(pb::PushDirectoryRequest { directory: Some(env) }).await.unwrap();
    let ids: Vec<String> = th.cli_json(&["peer", "list"])["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["card"]["nodeId"].as_str().unwrap().to_string())
        .collect();
    assert!(ids.contains(&"la-dcta".to_string()), "the well-formed card is pinned: {ids:?}");
    assert!(!ids.contains(&"vn-c02".to_string()), "the malformed one is not: {ids:?}");
}

async fn list_v1(ch: Channel) -> Vec<String> {
    let mut c = v1::server_reflection_client::ServerReflectionClient::new(ch);
    let req = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut stream = c.server_reflection_info(tokio_stream::iter(vec![req])).await.unwrap().into_inner();
    match stream.message().await.unwrap().unwrap().message_response.unwrap() {
        v1::server_reflection_response::MessageResponse::ListServicesResponse(l) => {
            let mut names: Vec<String> = l.service.into_iter().map(|s| s.name).collect();
            names.sort();
            names
        }
        other => panic!("unexpected {other:?}"),
    }
}

async fn list_v1alpha(ch: Channel) -> Vec<String> {
    let mut c = v1alpha::server_reflection_client::ServerReflectionClient::new(ch);
    let req = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1alpha::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut stream = c.server_reflection_info(tokio_stream::iter(vec![req])).await.unwrap().into_inner();
    match stream.message().await.unwrap().unwrap().message_response.unwrap() {
        v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(l) => {
            let mut names: Vec<String> = l.service.into_iter().map(|s| s.name).collect();
            names.sort();
            names
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// Whether reflection v1 can describe `symbol`.
async fn resolves(ch: Channel, symbol: &str) -> bool {
    let mut c = v1::server_reflection_client::ServerReflectionClient::new(ch);
    let req = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::FileContainingSymbol(symbol.into())),
    };
    let mut stream = c.server_reflection_info(tokio_stream::iter(vec![req])).await.unwrap().into_inner();
    // tonic-reflection answers an unknown symbol with a NOT_FOUND status.
    match stream.message().await {
        Ok(Some(r)) => matches!(
            r.message_response,
            Some(v1::server_reflection_response::MessageResponse::FileDescriptorResponse(_))
        ),
        Ok(None) => false,
        Err(s) => {
            assert_eq!(s.code(), Code::NotFound, "{s:?}");
            false
        }
    }
}

fn sorted(mut v: Vec<&str>) -> Vec<String> {
    v.sort();
    v.into_iter().map(String::from).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_listener_serves_health_and_reflection_for_its_own_services_only() {
    let root = tempfile::tempdir().unwrap();
    let mut th = TestNode::init(root.path(), "th-atpd", "TH");
    let mut kh = TestNode::init(root.path(), "kh-antht", "KH");
    th.start();
    kh.start();
    pin_all(&[&th, &kh]);
    let liaison_api = [
        "liaison.v1.AgreementService",
        "liaison.v1.AuditService",
        "liaison.v1.ChangeService",
        "liaison.v1.ExchangeService",
        "liaison.v1.HubService",
        "liaison.v1.NodeService",
        "liaison.v1.PeerService",
        "liaison.v1.PolicyService",
        "liaison.v1.RecordService",
        "liaison.v1.RequestService",
        "liaison.v1.UserService",
        "liaison.v1.VictimCaseService",
    ];
    let api = th.channel().await;
    let fed = liaison::federation::dial(&identity(&kh), &th.card()).unwrap();
    for (ch, own) in [(api, liaison_api.to_vec()), (fed, vec!["liaison.v1.FederationService"])] {
        let mut v1_names = own.clone();
        v1_names.extend(["grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"]);
        let mut v1alpha_names = own.clone();
        v1alpha_names.extend(["grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"]);
        let listed = list_v1(ch.clone()).await;
        assert_eq!(listed, sorted(v1_names));
        assert_eq!(list_v1alpha(ch.clone()).await, sorted(v1alpha_names));
        let mut health = HealthClient::new(ch.clone());
        for s in &listed {
            let h = health.check(HealthCheckRequest { service: s.clone() }).await;
            assert_eq!(h.map(|r| r.into_inner().status).map_err(|e| e.code()), Ok(1), "{s} is SERVING");
        }
        // The other listener's services are neither reported nor described.
        let other = if own.len() == 1 { "liaison.v1.RecordService" } else { "liaison.v1.FederationService" };
        let h = health.check(HealthCheckRequest { service: other.into() }).await.unwrap_err();
        assert_eq!(h.code(), Code::NotFound, "{other}");
        assert!(!resolves(ch.clone(), other).await, "{other} is described");
        assert!(resolves(ch, own[0]).await, "{} is not described", own[0]);
    }
}

/// A holder cannot overwrite another holder's consent request by reusing
/// its id: the originator keeps the first holder's request, and the reuse
/// is refused naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_cannot_take_over_another_holders_consent_request() {
    let root = tempfile::tempdir().unwrap();
    let mut th = TestNode::init(root.path(), "th-atpd", "TH");
    let mut kh = TestNode::init(root.path(), "kh-antht", "KH");
    let mut vn = TestNode::init(root.path(), "vn-c02", "VN");
    for n in [&mut th, &mut kh, &mut vn] {
        n.start();
    }
    pin_all(&[&th, &kh, &vn]);
    activate(&[&th, &kh], &bilateral("th-kh", "th-atpd", "kh-antht", 365, MOU_GRANTS), "th-kh");
    activate(&[&th, &vn], &bilateral("th-vn", "th-atpd", "vn-c02", 365, MOU_GRANTS), "th-vn");
    let rec = create(&th, examples::entity()).await;
    let key = format!("th-atpd/{}", rec.id);
    for to in ["kh-antht", "vn-c02"] {
        th.cli_ok(&["record", "share", &rec.id, "--to", to, "--purpose", "investigation"]);
    }
    wait_for(30, "delivery to both holders", || {
        deliveries(&th)
            .iter()
            .filter(|i| i["recordKey"] == key.as_str() && i["state"] == "OUTBOX_STATE_DELIVERED")
            .count()
            == 2
    });

    kh.cli_ok(&["consent", "request", &key, "--to", "vn-c02", "--purpose", "investigation"]);
    let listed = th.cli_json(&["consent", "list"]);
    let id = listed["requests"][0]["consentId"].as_str().expect("KH's request").to_string();

    // VN, a holder too, sends a request under KH's id.
    let mut vn_raw = Hostile::new(&vn, &th);
    let req = pb::RequestOnwardConsentRequest {
        consent_id: id.clone(),
        record_key: key.clone(),
        third_party: "th-atpd".into(),
        purpose: pb::Purpose::Investigation as i32,
    };
    let err = vn_raw.client.request_onward_consent(req).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(bad_field(&err).as_deref(), Some("consent_id"), "{err:?}");
    assert_eq!(consent_holders(&th), vec!["kh-antht".to_string()], "KH's request is kept as it was");
}
