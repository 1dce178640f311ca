//! Mutual TLS with pinned certificates between real node processes.

mod common;

use common::{pin_all, TestNode};
use liaison::config::Layout;
use liaison::identity::Identity;
use liaison::pb;

#[test]
fn pinned_nodes_hello_both_ways_and_strangers_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let mut a = TestNode::init(root.path(), "th-atpd", "TH");
    let mut b = TestNode::init(root.path(), "kh-antht", "KH");
    let mut c = TestNode::init(root.path(), "la-dcta", "LA");
    a.start();
    b.start();
    c.start();
    pin_all(&[&a, &b]);

    let out = a.cli_ok(&["peer", "ping", "kh-antht"]);
    assert!(out.contains("answered over mutual TLS"), "{out}");
    let pong = b.cli_json(&["peer", "ping", "th-atpd"]);
    assert_eq!(pong["card"]["nodeId"], "th-atpd");

    // C pins A, but A never imported C's card: A refuses C at the handshake.
    let a_card = a.card_file();
    c.cli_ok(&["peer", "add", &a_card.display().to_string()]);
    let out = c.cli(&["peer", "ping", "th-atpd"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unreachable") || err.contains("unavailable"), "{err}");
    assert!(a.log().contains("federation handshake refused"), "A must log the refused handshake");

    // Removing a peer un-pins it at once.
    a.cli_ok(&["peer", "remove", "kh-antht"]);
    let out = b.cli(&["peer", "ping", "th-atpd"]);
    assert!(!out.status.success(), "a removed peer must be refused");
    let listed = a.cli_json(&["peer", "list"]);
    assert!(listed["peers"].as_array().is_none_or(|p| p.is_empty()), "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_peer_cannot_claim_another_nodes_id() {
    let root = tempfile::tempdir().unwrap();
    let mut a = TestNode::init(root.path(), "th-atpd", "TH");
    let mut b = TestNode::init(root.path(), "kh-antht", "KH");
    let mut c = TestNode::init(root.path(), "la-dcta", "LA");
    a.start();
    b.start();
    c.start();
    pin_all(&[&a, &b]);
    // A also pins C, so C's certificate passes the handshake.
    a.cli_ok(&["peer", "add", &c.card_file().display().to_string()]);
    let a_card = {
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(a.card_file()).unwrap()).unwrap();
        let env: pb::Envelope = serde_json::from_value(v["envelope"].clone()).unwrap();
        liaison::identity::verify_card(&env).unwrap()
    };
    let c_identity = Identity::load(&Layout::new(&c.dir)).unwrap();
    let ch = liaison::federation::dial(&c_identity, &a_card).unwrap();
    let mut client = pb::federation_service_client::FederationServiceClient::new(ch);

    // Honest Hello works...
    let ok = client.hello(pb::HelloRequest { node_id: "la-dcta".into() }).await;
    assert!(ok.is_ok(), "{ok:?}");
    // ...claiming to be B with C's certificate does not.
    let err = client.hello(pb::HelloRequest { node_id: "kh-antht".into() }).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("la-dcta"), "{}", err.message());

    // A card re-signed by C with B's id is refused on import (B is pinned with another key).
    let c_forged = {
        let (mut card, _) = c_identity.card("127.0.0.1:1", Default::default());
        card.node_id = "kh-antht".into();
        liaison::envelope::seal(liaison::envelope::payload::NODE_CARD, &card, "kh-antht", &c_identity.signing_key)
    };
    let mut peers = pb::peer_service_client::PeerServiceClient::new(a.authed().await);
    let err = peers.add_peer(pb::AddPeerRequest { card: Some(c_forged) }).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::AlreadyExists, "{err:?}");
}

#[test]
fn sigterm_shuts_down_cleanly_and_init_refuses_to_overwrite() {
    let root = tempfile::tempdir().unwrap();
    let mut a = TestNode::init(root.path(), "th-atpd", "TH");
    a.start();
    let status = a.stop();
    assert!(status.success(), "exit status {status}");
    assert!(!a.dir.join("run.toml").exists(), "run.toml is removed on clean shutdown");
    let out = std::process::Command::new(common::BIN)
        .args(["--dir", &a.dir.display().to_string(), "init", "--id", "th-atpd", "--name", "X", "--country", "TH"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to overwrite"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_replaces_the_pin_and_the_old_one_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let mut a = TestNode::init(root.path(), "th-atpd", "TH");
    let mut b = TestNode::init(root.path(), "kh-antht", "KH");
    a.start();
    b.start();
    pin_all(&[&a, &b]);
    b.cli_ok(&["peer", "ping", "th-atpd"]);
    let old_card = root.path().join("kh-old.card.json");
    std::fs::copy(b.card_file(), &old_card).unwrap();
    let old_identity = Identity::load(&Layout::new(&b.dir)).unwrap();

    // Rotation needs the node stopped.
    let refused = b.cli(&["tls", "rotate"]);
    assert!(!refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("stop the node first"));
    b.stop();
    let out = b.cli(&["tls", "rotate"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("new TLS certificate"));
    b.start();
    assert_eq!(
        Identity::load(&Layout::new(&b.dir)).unwrap().signing_key.to_bytes(),
        old_identity.signing_key.to_bytes()
    );

    // TH still pins the old certificate, so KH's new one is refused until TH imports the new card.
    assert!(!b.cli(&["peer", "ping", "th-atpd"]).status.success(), "the new certificate is not pinned yet");
    a.cli_ok(&["peer", "add", &b.card_file().display().to_string()]);
    b.cli_ok(&["peer", "ping", "th-atpd"]);

    // The old certificate stops working at once, without a restart of TH.
    let th_card = a.card();
    let mut with_old = pb::federation_service_client::FederationServiceClient::new(
        liaison::federation::dial(&old_identity, &th_card).unwrap(),
    );
    assert!(
        with_old.hello(pb::HelloRequest { node_id: "kh-antht".into() }).await.is_err(),
        "the old certificate still gets through"
    );
    let new_identity = Identity::load(&Layout::new(&b.dir)).unwrap();
    let mut with_new = pb::federation_service_client::FederationServiceClient::new(
        liaison::federation::dial(&new_identity, &th_card).unwrap(),
    );
    let r = with_new.hello(pb::HelloRequest { node_id: "kh-antht".into() }).await;
    assert!(r.is_ok(), "the same call with the new certificate: {r:?}");

    // Replaying the old card cannot undo the rotation.
    let replay = a.cli(&["peer", "add", &old_card.display().to_string()]);
    assert!(!replay.status.success());
    assert!(String::from_utf8_lossy(&replay.stderr).contains("older than the one pinned"), "{replay:?}");
    b.cli_ok(&["peer", "ping", "th-atpd"]);
}
