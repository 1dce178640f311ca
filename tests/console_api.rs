//! The API additions the console stands on, tried by a hostile local
//! client: passwords and sign-in links beyond the caller's role, a spent
//! link, a share preview that must leave nothing behind, and a masked read
//! that must show and audit nothing.

mod common;

use common::*;
use liaison::pb;
use tonic::Code;

fn token_of(n: &TestNode, name: &str, role: &str) -> String {
    n.cli_json(&["user", "add", name, "--role", role])["token"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_and_links_stay_within_the_callers_role() {
    let root = tempfile::tempdir().unwrap();
    let mut kh = TestNode::init(root.path(), "kh-antht", "KH");
    kh.start();
    let officer = token_of(&kh, "ana", "officer");
    token_of(&kh, "ben", "officer");
    let mut as_officer = pb::user_service_client::UserServiceClient::new(kh.authed_with(&officer).await);
    let pw = |name: &str| pb::SetPasswordRequest { name: name.into(), password: "a long enough password".into() };

    // Their own: yes. Another user's, or the admin's: no.
    as_officer.set_password(pw("ana")).await.expect("own password");
    for other in ["ben", "admin"] {
        let e = as_officer.set_password(pw(other)).await.unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "{other}: {e:?}");
    }
    let e = as_officer.issue_sign_in_link(pb::IssueSignInLinkRequest { name: "ben".into() }).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    // Too short is refused naming the field; nothing changes.
    let short = pb::SetPasswordRequest { name: "ana".into(), password: "short".into() };
    assert_eq!(bad_field(&as_officer.set_password(short).await.unwrap_err()).as_deref(), Some("password"));

    // A link works once; a guessed one never.
    let mut as_admin = pb::user_service_client::UserServiceClient::new(kh.authed().await);
    let link =
        as_admin.issue_sign_in_link(pb::IssueSignInLinkRequest { name: "ben".into() }).await.unwrap().into_inner();
    assert!(link.path.ends_with(&link.token));
    // The console redeems links in process: do the same on the stopped node.
    kh.stop();
    let node =
        liaison::node::Node::open(liaison::config::Layout::new(&kh.dir), liaison::node::default_clock().unwrap())
            .unwrap();
    let pw = "a long enough password";
    assert!(liaison::account::redeem_link(&node, "addr:test", &"x".repeat(43), pw).await.is_err());
    let user = liaison::account::redeem_link(&node, "addr:test", &link.token, pw).await.unwrap();
    assert_eq!(user.name, "ben");
    assert!(liaison::account::redeem_link(&node, "addr:test", &link.token, pw).await.is_err(), "spent");
    assert!(liaison::account::sign_in(&node, "addr:test", "ben", pw).await.is_ok());
    assert!(liaison::account::sign_in(&node, "addr:test", "ben", "a wrong but long password").await.is_err());
    assert!(liaison::account::sign_in(&node, "addr:test", "nobody", pw).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preview_queues_and_audits_nothing_and_a_masked_read_shows_nothing() {
    let root = tempfile::tempdir().unwrap();
    let (th, _kh) = th_kh_under_mou(root.path());
    let rec = create(&th, liaison::record::examples::victim_referral()).await;
    let mut ex = pb::exchange_service_client::ExchangeServiceClient::new(th.authed().await);
    let decisions = audit_entries(&th, "policy.decision").len();

    // Allowed and refused previews alike leave no outbox item and no decision.
    let preview = |purpose: pb::Purpose| pb::ShareRecordRequest {
        record_id: rec.id.clone(),
        peer: "kh-antht".into(),
        purpose: purpose as i32,
        validate_only: true,
        ..Default::default()
    };
    let ok = ex.share_record(preview(pb::Purpose::VictimIdentification)).await.unwrap().into_inner();
    assert!(!ok.agreement_id.is_empty());
    let refused = ex.share_record(preview(pb::Purpose::Investigation)).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(deliveries(&th).is_empty(), "a preview queues nothing");
    assert_eq!(audit_entries(&th, "policy.decision").len(), decisions, "a preview audits nothing");

    // A masked read carries no identity and leaves no view; a read with a
    // reason is audited with it and listed on the record.
    let mut records = th.records().await;
    let get = |masked: bool, reason: &str| pb::GetRecordRequest { id: rec.id.clone(), masked, reason: reason.into() };
    let masked = records.get_record(get(true, "")).await.unwrap().into_inner();
    assert!(!liaison::redact::holds_protected(masked.record.as_ref().unwrap()));
    assert!(masked.envelope.is_none(), "the signed envelope would carry the identity");
    assert!(audit_entries(&th, "protected.view").is_empty());
    let shown = records.get_record(get(false, "return interview")).await.unwrap().into_inner();
    assert!(liaison::redact::holds_protected(shown.record.as_ref().unwrap()));
    assert_eq!(shown.views.len(), 1);
    assert_eq!(shown.views[0].reason, "return interview");
    let views = audit_entries(&th, "protected.view");
    assert_eq!(views.len(), 1);
    assert_eq!(views[0]["reason"], "return interview");
    // An over-long reason is refused, naming the field; so is none at all
    // (or only spaces), from the API as from the CLI: the rule is the node's.
    let long = records.get_record(get(false, &"x".repeat(501))).await.unwrap_err();
    assert_eq!(bad_field(&long).as_deref(), Some("reason"));
    for blank in ["", "   "] {
        let none = records.get_record(get(false, blank)).await.unwrap_err();
        assert_eq!((none.code(), bad_field(&none).as_deref()), (Code::InvalidArgument, Some("reason")), "{none:?}");
    }
    let cli = th.cli(&["record", "show", &rec.id]);
    assert!(!cli.status.success() && String::from_utf8_lossy(&cli.stderr).contains("reason"), "{cli:?}");
    let masked_cli = th.cli_json(&["record", "show", &rec.id, "--masked"]);
    assert!(masked_cli["record"]["victimReferral"]["identity"].is_null(), "{masked_cli}");
    th.cli_ok(&["record", "show", &rec.id, "--reason", "court order 12/2026"]);
    assert_eq!(audit_entries(&th, "protected.view").len(), 2, "only the reads with a reason were views");
    // A record without protected fields needs no reason.
    let cp = create(&th, contact_point("cp-plain", "Plain desk")).await;
    records.get_record(pb::GetRecordRequest { id: cp.id, ..Default::default() }).await.expect("no reason needed");
}
