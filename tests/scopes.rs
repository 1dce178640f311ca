//! Token scopes, checked against a running node: every local API method
//! needs exactly the scope `docs/INTEGRATION.md` says it needs, roles are the
//! bundles it lists, a narrowed token can do no more than its scopes, and an
//! integrator token does a case system's daily work.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{create, TestNode};
use liaison::pb;
use prost::Message;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

const DOC: &str = include_str!("../docs/INTEGRATION.md");

/// `Service.Method` → scope, from the doc's scope table.
fn documented_methods() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in DOC.lines() {
        let cells: Vec<&str> = line.split('|').map(|c| c.trim().trim_matches('`')).collect();
        if let [_, method, scope, ..] = cells.as_slice() {
            if method.contains("Service.") && !scope.contains(' ') && !scope.is_empty() {
                out.insert(method.to_string(), scope.to_string());
            }
        }
    }
    out
}

/// Role → scopes, from the doc's role table (`| role | scope scope … |`).
fn documented_roles() -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for line in DOC.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if let [_, role, scopes, ..] = cells.as_slice() {
            let role = role.trim_matches('`');
            if ["admin", "officer", "integrator", "auditor", "partner"].contains(&role) && scopes.contains('`') {
                let set = scopes.split_whitespace().map(|s| s.trim_matches('`').to_string()).collect();
                out.insert(role.to_string(), set);
            }
        }
    }
    out
}

/// Every method of the local API's services: `Service.Method` and whether it streams.
fn local_methods() -> Vec<(String, bool)> {
    let fds = prost_types::FileDescriptorSet::decode(pb::FILE_DESCRIPTOR_SET).unwrap();
    let local: BTreeSet<&str> = liaison::api::SERVICES.iter().copied().collect();
    let mut out = Vec::new();
    for f in fds.file {
        for s in &f.service {
            let full = format!("{}.{}", f.package(), s.name());
            if local.contains(full.as_str()) {
                for m in &s.method {
                    out.push((format!("{}.{}", s.name(), m.name()), m.server_streaming()));
                }
            }
        }
    }
    out
}

/// Calls `Service.Method` with an empty request (every field at its
/// default), as a raw gRPC client would.
async fn call(node: &TestNode, token: &str, method: &str, streaming: bool) -> Result<(), Status> {
    let (service, name) = method.split_once('.').unwrap();
    let path = http::uri::PathAndQuery::try_from(format!("/liaison.v1.{service}/{name}")).unwrap();
    let mut g = tonic::client::Grpc::new(node.authed_with(token).await);
    g.ready().await.map_err(|e| Status::unknown(e.to_string()))?;
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    if streaming {
        g.server_streaming(Request::new(()), path, codec).await.map(|_| ())
    } else {
        g.unary(Request::new(()), path, codec).await.map(|_| ())
    }
}

fn missing_scope(s: &Status) -> Option<String> {
    let info = s.get_details_error_info()?;
    (s.code() == Code::PermissionDenied && info.reason == "MISSING_SCOPE").then(|| info.metadata["scope"].clone())
}

fn add_user(node: &TestNode, name: &str, role: &str, scopes: &[&str]) -> (String, serde_json::Value) {
    let mut args = vec!["user", "add", name, "--role", role];
    let joined = scopes.join(",");
    if !scopes.is_empty() {
        args.extend(["--scope", joined.as_str()]);
    }
    let out = node.cli_json(&args);
    (out["token"].as_str().expect("token").to_string(), out["user"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_needs_exactly_the_documented_scope() {
    let root = tempfile::tempdir().unwrap();
    let mut node = TestNode::init(root.path(), "th-atpd", "TH");
    node.start();
    let documented = documented_methods();
    let methods = local_methods();
    assert!(methods.len() >= 58, "the local API's methods, from the descriptor: {methods:?}");
    let undocumented: Vec<_> = methods.iter().filter(|(m, _)| !documented.contains_key(m)).collect();
    assert!(undocumented.is_empty(), "methods missing from the scope table in docs/INTEGRATION.md: {undocumented:?}");
    let all: Vec<&str> = liaison::scope::Scope::ALL.iter().map(|s| s.name()).collect();
    for scope in &all {
        assert!(DOC.contains(&format!("`{scope}`")), "scope {scope} is not documented");
    }
    // One admin token without each scope, and one with only it.
    let mut without = BTreeMap::new();
    let mut only = BTreeMap::new();
    for (i, scope) in all.iter().enumerate() {
        let rest: Vec<&str> = all.iter().copied().filter(|s| s != scope).collect();
        without.insert(*scope, add_user(&node, &format!("without-{i}"), "admin", &rest).0);
        only.insert(*scope, add_user(&node, &format!("only-{i}"), "admin", &[scope]).0);
    }
    for (method, streaming) in &methods {
        let scope = documented[method].as_str();
        assert!(all.contains(&scope), "{method}: unknown scope {scope} in the doc");
        let err = call(&node, &without[scope], method, *streaming).await.expect_err(method);
        assert_eq!(missing_scope(&err).as_deref(), Some(scope), "{method} without {scope}: {err:?}");
        // With only that scope the call gets past the scope check (it may
        // still refuse the empty request for other reasons).
        if let Err(e) = call(&node, &only[scope], method, *streaming).await {
            assert_eq!(missing_scope(&e), None, "{method} with {scope}: {e:?}");
        }
    }
}

#[test]
fn roles_are_the_documented_bundles_and_narrowing_stays_within_them() {
    let root = tempfile::tempdir().unwrap();
    let mut node = TestNode::init(root.path(), "th-atpd", "TH");
    node.start();
    // A partner account reads as a pinned peer.
    let mut peer = TestNode::init(root.path(), "kh-antht", "KH");
    peer.start();
    common::pin_all(&[&node, &peer]);
    let roles = documented_roles();
    assert_eq!(roles.len(), 5, "the role table in docs/INTEGRATION.md: {roles:?}");
    for (role, scopes) in &roles {
        let name = format!("bundle-{role}");
        let user = if role == "partner" {
            node.cli_json(&["user", "add", &name, "--role", role, "--peer", "kh-antht"])["user"].clone()
        } else {
            add_user(&node, &name, role, &[]).1
        };
        let got: BTreeSet<String> =
            user["scopes"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect();
        assert_eq!(&got, scopes, "role {role}");
    }
    // A narrowed token names scopes of its role only; the error names which.
    let out = node.cli(&["user", "add", "wide", "--role", "integrator", "--scope", "feed,users.manage"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("scopes[1]") && err.contains("users.manage"), "{err}");
    let out = node.cli(&["user", "add", "typo", "--role", "officer", "--scope", "record.read"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("scopes[0]"));
    let listed = node.cli_json(&["user", "list"]);
    assert!(!listed.to_string().contains("\"wide\""), "nothing was created: {listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_integrator_queries_checks_and_sends_requests_but_sees_no_identity() {
    let root = tempfile::tempdir().unwrap();
    let (th, kh) = common::th_kh_under_mou(root.path());
    create(&kh, common::contact_point("cp-kh-duty", "AHTJP duty desk")).await;
    create(&kh, liaison::record::examples::entity()).await;
    let referral = create(&th, common::child_referral()).await;
    let (token, _) = add_user(&th, "case-system", "integrator", &[]);

    let mut ex = pb::exchange_service_client::ExchangeServiceClient::new(th.authed_with(&token).await);
    let q = ex
        .query(pb::QueryRequest {
            peer: "kh-antht".into(),
            kind: pb::RecordKind::ContactPoint as i32,
            text: "duty".into(),
            purpose: pb::Purpose::Coordination as i32,
            ..Default::default()
        })
        .await
        .expect("an integrator queries a peer")
        .into_inner();
    assert_eq!(q.peers[0].outcome, pb::PeerOutcome::Answered as i32, "{q:?}");
    assert_eq!(q.peers[0].records.len(), 1);
    let check = ex
        .check_identifiers(pb::CheckIdentifiersRequest {
            peer: "kh-antht".into(),
            identifiers: vec![pb::IdentifierQuery {
                r#type: pb::IdentifierType::Passport as i32,
                value: "N0123456".into(),
            }],
            purpose: pb::Purpose::Investigation as i32,
            ..Default::default()
        })
        .await
        .expect("an integrator runs a hit check")
        .into_inner();
    assert!(check.peers[0].results.iter().any(|r| r.hit), "{check:?}");
    let mut rq = pb::request_service_client::RequestServiceClient::new(th.authed_with(&token).await);
    let sent = rq
        .send_request(pb::SendRequestRequest {
            to: "kh-antht".into(),
            request_type: "information_request".into(),
            purpose: pb::Purpose::Investigation as i32,
            subject: "Passport N0123456".into(),
            ..Default::default()
        })
        .await
        .expect("an integrator sends a request")
        .into_inner();
    assert!(sent.request.is_some());

    // A victim's identity needs records.identity, which integrators lack.
    let mut rec = pb::record_service_client::RecordServiceClient::new(th.authed_with(&token).await);
    let err = rec
        .get_record(pb::GetRecordRequest { id: referral.id.clone(), reason: "case file".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(missing_scope(&err).as_deref(), Some("records.identity"), "{err:?}");
    let masked = rec
        .get_record(pb::GetRecordRequest { id: referral.id.clone(), masked: true, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    match masked.record.and_then(|r| r.body) {
        Some(pb::record::Body::VictimReferral(v)) => assert!(v.identity.is_none(), "masked: {v:?}"),
        other => panic!("not the referral: {other:?}"),
    }
    // Nothing about the refused view was audited as a view.
    assert!(common::audit_entries(&th, "protected.view").is_empty());

    // A token narrowed to the feed reads the feed and nothing else.
    let (feed, _) = add_user(&th, "feed-only", "integrator", &["feed"]);
    let mut ch = pb::change_service_client::ChangeServiceClient::new(th.authed_with(&feed).await);
    let mut s = ch.watch_changes(pb::WatchChangesRequest { since_seq: 0, no_follow: true }).await.unwrap().into_inner();
    assert!(s.message().await.unwrap().is_some());
    let mut rec = pb::record_service_client::RecordServiceClient::new(th.authed_with(&feed).await);
    let err = rec.list_records(pb::ListRecordsRequest::default()).await.unwrap_err();
    assert_eq!(missing_scope(&err).as_deref(), Some("records.read"));
}
