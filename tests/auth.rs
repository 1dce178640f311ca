//! Local API authentication and roles.

mod common;

use common::TestNode;
use liaison::pb;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_roles_are_enforced() {
    let root = tempfile::tempdir().unwrap();
    let mut a = TestNode::init(root.path(), "th-atpd", "TH");
    a.start();

    // No token, or a wrong one: UNAUTHENTICATED.
    let mut anon = pb::record_service_client::RecordServiceClient::new(a.channel().await);
    let err = anon.list_records(pb::ListRecordsRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let mut wrong = pb::record_service_client::RecordServiceClient::new(a.authed_with("lsn_not-a-token").await);
    let err = wrong.list_records(pb::ListRecordsRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    // Users get tokens with roles; only the hash is stored.
    let officer = a.cli_json(&["user", "add", "somchai", "--role", "officer"]);
    let officer_token = officer["token"].as_str().unwrap().to_string();
    let auditor = a.cli_json(&["user", "add", "audit-1", "--role", "auditor"]);
    let auditor_token = auditor["token"].as_str().unwrap().to_string();
    let store_files = walk(&a.dir.join("store"));
    for f in store_files {
        let bytes = std::fs::read(&f).unwrap();
        assert!(!contains(&bytes, officer_token.as_bytes()), "token stored in clear in {}", f.display());
    }

    // Right token, right role.
    let mut off = pb::record_service_client::RecordServiceClient::new(a.authed_with(&officer_token).await);
    off.list_records(pb::ListRecordsRequest::default()).await.unwrap();
    // Right token, wrong role: PERMISSION_DENIED.
    let mut off_peers = pb::peer_service_client::PeerServiceClient::new(a.authed_with(&officer_token).await);
    let err = off_peers.remove_peer(pb::RemovePeerRequest { node_id: "x".into() }).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    let mut aud = pb::record_service_client::RecordServiceClient::new(a.authed_with(&auditor_token).await);
    let err = aud
        .create_record(pb::CreateRecordRequest {
            record: Some(common::contact_point("cp-x", "X")),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let mut off_users = pb::user_service_client::UserServiceClient::new(a.authed_with(&officer_token).await);
    let err = off_users
        .create_user(pb::CreateUserRequest { name: "x".into(), role: 1, ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // A removed user's token stops working at once.
    a.cli_ok(&["user", "remove", "somchai"]);
    let err = off.list_records(pb::ListRecordsRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    // Bad input names the field.
    let mut users = pb::user_service_client::UserServiceClient::new(a.authed().await);
    let err = users
        .create_user(pb::CreateUserRequest { name: "bad name".into(), role: 2, ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(common::bad_field(&err).as_deref(), Some("name"));
    let err = users
        .create_user(pb::CreateUserRequest { name: "ok".into(), role: 99, ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(common::bad_field(&err).as_deref(), Some("role"));
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
