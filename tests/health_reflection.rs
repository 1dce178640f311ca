//! Both listeners serve gRPC health and reflection (v1 and v1alpha).

mod common;

use common::{pin_all, TestNode};
use liaison::config::Layout;
use liaison::identity::Identity;
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_reflection::pb::{v1, v1alpha};

async fn services_v1(ch: Channel) -> Vec<String> {
    let mut c = v1::server_reflection_client::ServerReflectionClient::new(ch);
    let req = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut stream = c.server_reflection_info(tokio_stream::iter(vec![req])).await.unwrap().into_inner();
    let resp = stream.message().await.unwrap().unwrap();
    match resp.message_response.unwrap() {
        v1::server_reflection_response::MessageResponse::ListServicesResponse(l) => {
            l.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("unexpected {other:?}"),
    }
}

async fn services_v1alpha(ch: Channel) -> Vec<String> {
    let mut c = v1alpha::server_reflection_client::ServerReflectionClient::new(ch);
    let req = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1alpha::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut stream = c.server_reflection_info(tokio_stream::iter(vec![req])).await.unwrap().into_inner();
    let resp = stream.message().await.unwrap().unwrap();
    match resp.message_response.unwrap() {
        v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(l) => {
            l.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_listeners_serve_health_and_reflection() {
    let root = tempfile::tempdir().unwrap();
    let mut a = TestNode::init(root.path(), "th-atpd", "TH");
    let mut b = TestNode::init(root.path(), "kh-antht", "KH");
    a.start();
    b.start();
    pin_all(&[&a, &b]);

    // Local API: plain gRPC, no token needed for health and reflection.
    let api = a.channel().await;
    let h = HealthClient::new(api.clone())
        .check(HealthCheckRequest { service: "liaison.v1.RecordService".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(h.status, 1, "SERVING");
    for list in [services_v1(api.clone()).await, services_v1alpha(api.clone()).await] {
        for s in ["liaison.v1.RecordService", "liaison.v1.PeerService", "grpc.health.v1.Health"] {
            assert!(list.iter().any(|x| x == s), "{s} missing from {list:?}");
        }
    }

    // Federation listener: the same over mutual TLS, as a pinned peer.
    let card = a.card();
    let b_identity = Identity::load(&Layout::new(&b.dir)).unwrap();
    let fed = liaison::federation::dial(&b_identity, &card).unwrap();
    let h = HealthClient::new(fed.clone())
        .check(HealthCheckRequest { service: "liaison.v1.FederationService".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(h.status, 1);
    let list = services_v1(fed.clone()).await;
    assert!(list.iter().any(|x| x == "liaison.v1.FederationService"), "{list:?}");
    let list = services_v1alpha(fed).await;
    assert!(list.iter().any(|x| x == "liaison.v1.FederationService"), "{list:?}");
}
