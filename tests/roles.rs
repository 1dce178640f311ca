//! Issue 15 as a hostile peer sees it: roles that bound what a party may
//! receive, regional aggregates that must arrive suppressed, and a victim
//! case whose parties a peer cannot rewrite. Real nodes, real mutual TLS;
//! the attacker holds a pinned certificate and ignores its own policy.

mod common;

use common::*;
use liaison::envelope::payload;
use liaison::pb;

/// What a regional hub may push down to a member under the test agreements.
const AGGREGATE_GRANT: &str = r#"
[[grants]]
from = "*"
to = "*"
record_kinds = ["regional_aggregate", "statistics_report"]
purposes = ["statistics_and_reporting"]
operations = ["push"]
max_handling = "green"
"#;

/// TH and KH under the COMMIT-style MOU, with KH given `role`.
fn under_roles(root: &std::path::Path, role: &str) -> (TestNode, TestNode) {
    let mut th = TestNode::init(root, "th-atpd", "TH");
    let mut kh = TestNode::init(root, "kh-antht", "KH");
    th.start();
    kh.start();
    pin_all(&[&th, &kh]);
    let grants = format!("{MOU_GRANTS}\n{AGGREGATE_GRANT}");
    let text = format!("{}\n[roles]\nkh-antht = \"{role}\"\n", bilateral("th-kh", "th-atpd", "kh-antht", 365, &grants));
    activate(&[&th, &kh], &text, "th-kh");
    (th, kh)
}

async fn push(h: &mut Hostile, rec: &pb::Record, purpose: pb::Purpose) -> Result<pb::Receipt, tonic::Status> {
    let req = pb::PushRecordRequest {
        delivery_id: liaison::exchange::random_id("dlv"),
        shared: Some(h.shared(rec, "th-kh")),
        purpose: purpose as i32,
        consent: None,
    };
    let receipt = h.client.push_record(req).await?.into_inner().receipt.expect("a receipt");
    Ok(liaison::envelope::decode::<pb::Receipt>(&receipt).unwrap())
}

async fn held(node: &TestNode, key: &str) -> bool {
    let mut c = node.records().await;
    c.get_record(pb::GetRecordRequest { id: key.into(), masked: true, ..Default::default() }).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_national_human_rights_institution_receives_aggregates_only_whatever_the_grants_say() {
    let root = tempfile::tempdir().unwrap();
    let (th, kh) = under_roles(root.path(), "nhri");
    let mut entity = liaison::record::examples::entity();
    entity.id = "en-broker".into();
    create(&th, entity.clone()).await;

    // TH's own officer cannot share intelligence with the NHRI: the MOU's
    // wildcard grant would allow it, the role does not.
    let out = th.cli(&["record", "share", "en-broker", "--to", "kh-antht", "--purpose", "investigation"]);
    assert!(!out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("role_may_not_receive"), "{out:?}");

    // A hostile NHRI querying TH directly gets nothing.
    let mut as_kh = Hostile::new(&kh, &th);
    let q = as_kh
        .client
        .query_records(pb::QueryRecordsRequest {
            kind: pb::RecordKind::Entity as i32,
            purpose: pb::Purpose::Investigation as i32,
            ..Default::default()
        })
        .await;
    match q {
        Ok(r) => assert!(r.into_inner().records.is_empty(), "an entity reached the NHRI"),
        Err(s) => assert_eq!(s.code(), tonic::Code::PermissionDenied, "{s:?}"),
    }

    // A hostile TH pushing intelligence into the NHRI's node is refused there.
    let mut as_th = Hostile::new(&th, &kh);
    let r = push(&mut as_th, &originated("th-atpd", entity), pb::Purpose::Investigation).await.unwrap();
    assert!(!r.delivered && r.reason.contains("role_may_not_receive"), "{r:?}");
    assert!(!held(&kh, "th-atpd/en-broker").await, "refused, yet stored");

    // Statistics are what it is for.
    let stats = originated("th-atpd", {
        let mut s = liaison::record::examples::statistics_report();
        s.id = "sr-th".into();
        s
    });
    let r = push(&mut as_th, &stats, pb::Purpose::StatisticsAndReporting).await.unwrap();
    assert!(r.delivered, "{r:?}");

    // Revoked: not even statistics.
    th.cli_ok(&["agreement", "revoke", "th-kh", "--reason", "ended"]);
    wait_for(30, "KH to learn of the revocation", || {
        kh.cli_json(&["agreement", "show", "th-kh"])["agreement"]["state"] == "AGREEMENT_STATE_REVOKED"
    });
    let again = pb::Record { id: "sr-th-2".into(), ..stats };
    let r = push(&mut as_th, &again, pb::Purpose::StatisticsAndReporting).await.unwrap();
    assert!(!r.delivered, "{r:?}");
}

fn aggregate(small_visible: bool) -> pb::Record {
    let cell = |key: &str, value: u64, suppressed: bool| pb::AggregateCell {
        dimension: "nationality".into(),
        key: key.into(),
        value,
        suppressed,
    };
    let small = if small_visible { cell("TG", 2, false) } else { cell("TG", 0, true) };
    pb::Record {
        id: "ra-2025".into(),
        handling: pb::HandlingCode::Green as i32,
        body: Some(pb::record::Body::RegionalAggregate(pb::RegionalAggregate {
            region: "Mekong".into(),
            period_start: "2025-01-01".into(),
            period_end: "2025-12-31".into(),
            rows: vec![pb::AggregateRow {
                area: "REGION".into(),
                total: Some(pb::AggregateCell {
                    dimension: "total".into(),
                    value: 0,
                    suppressed: true,
                    ..Default::default()
                }),
                cells: vec![cell("TH", 40, false), small],
                ..Default::default()
            }],
            reports_used: 2,
        })),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regional_aggregate_showing_a_small_figure_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let (th, kh) = under_roles(root.path(), "law_enforcement");
    let mut as_th = Hostile::new(&th, &kh);
    // Two victims of one nationality, shown: the sender did not suppress.
    let leak = originated("th-atpd", aggregate(true));
    match push(&mut as_th, &leak, pb::Purpose::StatisticsAndReporting).await {
        Ok(r) => assert!(!r.delivered && r.reason.contains("must arrive suppressed"), "{r:?}"),
        Err(s) => {
            assert_eq!(s.code(), tonic::Code::InvalidArgument, "{s:?}");
            assert!(s.message().contains("must arrive suppressed"), "{s:?}");
        }
    }
    assert!(!held(&kh, "th-atpd/ra-2025").await, "an unsuppressed aggregate was stored");
    // The same figures, suppressed, are taken.
    let r =
        push(&mut as_th, &originated("th-atpd", aggregate(false)), pb::Purpose::StatisticsAndReporting).await.unwrap();
    assert!(r.delivered, "{r:?}");
    assert!(held(&kh, "th-atpd/ra-2025").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_cannot_rewrite_who_a_victim_case_is_between() {
    let root = tempfile::tempdir().unwrap();
    let (kh, vn) = kh_vn_under_sop(root.path());
    let h = Hostile::new(&kh, &vn);
    let deliver = |case: pb::VictimCase| {
        let env = h.seal(payload::VICTIM_CASE, &case);
        let req = pb::DeliverCaseUpdateRequest { delivery_id: liaison::exchange::random_id("dlv"), case: Some(env) };
        let mut c = h.client.clone();
        async move {
            let r = c.deliver_case_update(req).await.expect("a receipt").into_inner();
            liaison::envelope::decode::<pb::Receipt>(&r.receipt.expect("a receipt")).unwrap()
        }
    };
    let mut case = liaison::sop::victim::open(
        "case-t",
        "kh-antht/vr-t",
        "kh-antht",
        "vn-c02",
        "kh-antht",
        time::OffsetDateTime::now_utc(),
    );
    case.history[0].time = Some(now_ts());
    assert!(deliver(case.clone()).await.delivered);

    // The same case with a transit country slipped in, or the sides swapped: refused.
    let mut rerouted = case.clone();
    rerouted.transit_nodes = vec!["th-atpd".into()];
    let r = deliver(rerouted).await;
    assert!(!r.delivered && r.reason.contains("between"), "{r:?}");
    // A party listed twice is refused before anything else.
    let mut twice = case.clone();
    twice.transit_nodes = vec!["vn-c02".into()];
    let r = deliver(twice).await;
    assert!(!r.delivered && r.reason.contains("twice"), "{r:?}");
    let held = vn.cli_json(&["case", "show", "case-t"]);
    assert!(held["case"]["transitNodes"].as_array().is_none_or(|a| a.is_empty()), "{held}");
}
