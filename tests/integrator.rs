//! What a case-management system relies on beyond single calls: its own
//! reference on records (kept at home), partial updates, and bulk import
//! and export without size traps or silent failures.

mod common;

use common::{create, TestNode};
use liaison::pb;
use liaison::pb::record::Body;
use tonic::Code;

fn with_reference(mut r: pb::Record, reference: &str) -> pb::Record {
    r.external_reference = reference.into();
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_external_reference_is_kept_at_home_and_never_crosses() {
    let root = tempfile::tempdir().unwrap();
    let (th, kh) = common::th_kh_under_mou(root.path());
    let mut rec = liaison::record::examples::entity();
    rec.id = "en-ext-1".into();
    create(&th, with_reference(rec, "POL/2026/0042")).await;
    create(&th, with_reference(common::contact_point("cp-ext-2", "Desk"), "POL/2026/0043")).await;

    let mut c = th.records().await;
    let got = c.get_record(pb::GetRecordRequest { id: "en-ext-1".into(), ..Default::default() }).await.unwrap();
    let got = got.into_inner();
    assert_eq!(got.record.as_ref().unwrap().external_reference, "POL/2026/0042");
    // Never signed into the envelope another node would receive.
    let signed: pb::Record = liaison::envelope::decode(got.envelope.as_ref().unwrap()).unwrap();
    assert_eq!(signed.external_reference, "");
    let found = c
        .list_records(pb::ListRecordsRequest { external_reference: "POL/2026/0042".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.records.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), vec!["en-ext-1"]);

    th.cli_ok(&["record", "share", "en-ext-1", "--to", "kh-antht", "--purpose", "investigation"]);
    common::wait_for_record(&kh, "th-atpd/en-ext-1");
    let at_kh = kh
        .records()
        .await
        .get_record(pb::GetRecordRequest { id: "th-atpd/en-ext-1".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(at_kh.record.unwrap().external_reference, "");
    let carried: pb::Record = liaison::envelope::decode(at_kh.envelope.as_ref().unwrap()).unwrap();
    assert_eq!(carried.external_reference, "");

    // A hostile peer signs its own reference into a record it pushes: the
    // receiver never shows it as the receiver's reference.
    let mut h = common::Hostile::new(&kh, &th);
    let mut pushed = liaison::record::examples::entity();
    pushed.id = "en-h-1".into();
    // As the grant has it: the evidence basis withheld.
    if let Some(Body::Entity(e)) = pushed.body.as_mut() {
        e.evidence_basis.clear();
    }
    pushed.redacted_fields = vec!["entity.evidence_basis".into()];
    let mut pushed = common::originated("kh-antht", pushed);
    pushed.external_reference = "KH-INTERNAL-7".into();
    let req = pb::PushRecordRequest {
        delivery_id: liaison::exchange::random_id("dlv"),
        shared: Some(h.shared(&pushed, "th-kh")),
        purpose: pb::Purpose::Investigation as i32,
        consent: None,
    };
    let receipt = h.client.push_record(req).await.expect("the share itself is allowed").into_inner();
    let receipt: pb::Receipt = liaison::envelope::decode(receipt.receipt.as_ref().unwrap()).unwrap();
    assert!(receipt.delivered, "{receipt:?}");
    let shown = c
        .get_record(pb::GetRecordRequest { id: "kh-antht/en-h-1".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(shown.record.unwrap().external_reference, "");
    let found = c
        .list_records(pb::ListRecordsRequest { external_reference: "KH-INTERNAL-7".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert!(found.records.is_empty());
}

fn contact(r: &pb::Record) -> &pb::ContactPoint {
    match &r.body {
        Some(Body::ContactPoint(c)) => c,
        other => panic!("not a contact point: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_mask_writes_only_the_named_fields() {
    let root = tempfile::tempdir().unwrap();
    let mut node = TestNode::init(root.path(), "th-atpd", "TH");
    node.start();
    let made = create(&node, with_reference(common::contact_point("cp-mask", "Old name"), "CASE-9")).await;
    let mut patch = common::contact_point("cp-mask", "New name");
    if let Some(Body::ContactPoint(c)) = patch.body.as_mut() {
        c.agency = "An agency the mask does not name".into();
    }
    let mut c = node.records().await;
    let update = |paths: &[&str], version: u64, patch: &pb::Record| pb::UpdateRecordRequest {
        record: Some(patch.clone()),
        expected_version: version,
        update_mask: Some(pbjson_types::FieldMask { paths: paths.iter().map(|p| p.to_string()).collect() }),
        ..Default::default()
    };
    let out = c.update_record(update(&["contact_point.name"], 1, &patch)).await.unwrap().into_inner();
    let rec = out.record.unwrap();
    assert_eq!(contact(&rec).name, "New name");
    assert_eq!(contact(&rec).agency, contact(&made).agency);
    assert_eq!((rec.external_reference.as_str(), rec.version), ("CASE-9", 2));

    for bad in ["version", "contact_point.nonsense", "entity.names"] {
        let err = c.update_record(update(&[bad], 2, &patch)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad}");
        assert_eq!(common::bad_field(&err).as_deref(), Some("update_mask"), "{bad}");
    }
    // A named field left unset clears it; nothing else moves.
    let out = c.update_record(update(&["external_reference"], 2, &patch)).await.unwrap().into_inner();
    let rec = out.record.unwrap();
    assert_eq!((rec.external_reference.as_str(), contact(&rec).name.as_str()), ("", "New name"));
}

fn long_report(i: usize) -> String {
    let mut r = liaison::record::examples::intelligence_report();
    r.id = format!("ir-long-{i:04}");
    if let Some(Body::IntelligenceReport(ir)) = r.body.as_mut() {
        ir.subject_entity_ids.clear();
        ir.summary = format!("Report {i}: ") + &"recruiters moved workers across the border at night; ".repeat(170);
    }
    serde_json::to_string(&r).unwrap()
}

#[test]
fn bulk_import_and_export_of_long_records_fit_the_message_limit() {
    let root = tempfile::tempdir().unwrap();
    let mut node = TestNode::init(root.path(), "th-atpd", "TH");
    node.start();
    // 1,000 reports of about 9 KB each: about 9 MB, more than two 4 MiB messages.
    let lines: Vec<String> = (0..1000).map(long_report).collect();
    assert!(lines.iter().map(String::len).sum::<usize>() > 8 << 20);
    let file = root.path().join("long.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let out = node.cli_json(&["import", file.to_str().unwrap()]);
    assert_eq!(out["stored"], 1000, "{out}");

    let exported = root.path().join("out.jsonl");
    let out = node.cli(&["export", "--out", exported.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&exported).unwrap();
    assert_eq!(text.lines().filter(|l| l.contains("ir-long-")).count(), 1000);
    assert!(!root.path().join("out.partial").exists());

    // A refused line fails the command; problems are line, field and reason.
    let mixed = root.path().join("mixed.jsonl");
    let mut bad = liaison::record::examples::intelligence_report();
    bad.id = "ir-bad".into();
    if let Some(Body::IntelligenceReport(ir)) = bad.body.as_mut() {
        ir.route = vec!["ZZ".into()];
        ir.subject_entity_ids.clear();
    }
    std::fs::write(&mixed, format!("{}\n{}\nnot json\n", long_report(5000), serde_json::to_string(&bad).unwrap()))
        .unwrap();
    let out = node.cli(&["--json", "import", mixed.to_str().unwrap()]);
    assert!(!out.status.success(), "refused lines fail the import");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["stored"], 1);
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 2, "{report}");
    assert_eq!(problems[0]["line"], 2);
    assert_eq!(problems[0]["field"], "record.intelligence_report.route[0]");
    assert!(problems[0]["reason"].as_str().unwrap().contains("ISO 3166"), "{report}");
    assert_eq!((problems[1]["line"].clone(), problems[1]["field"].clone()), (3.into(), "".into()));
}

type Records = pb::record_service_client::RecordServiceClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, common::Bearer>,
>;

async fn listed(c: &mut Records, req: pb::ListRecordsRequest) -> Vec<String> {
    let mut ids = Vec::new();
    let mut req = pb::ListRecordsRequest { page_size: 3, ..req };
    loop {
        let page = c.list_records(req.clone()).await.unwrap().into_inner();
        ids.extend(page.records.into_iter().map(|r| r.id));
        if page.next_page_token.is_empty() {
            return ids;
        }
        req.page_token = page.next_page_token;
    }
}

fn text(t: &str) -> pb::ListRecordsRequest {
    pb::ListRecordsRequest { text: t.into(), ..Default::default() }
}

/// The filters read the catalogue's indexes and the text index: what they
/// find is what the records say, in any script, immediately after a write,
/// after a restart (the index is rebuilt from the store), and never a
/// victim's identity, locally or through a peer's query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexed_search_finds_substrings_in_any_script_and_never_an_identity() {
    let root = tempfile::tempdir().unwrap();
    let (mut th, kh) = common::th_kh_under_mou(root.path());
    let mut c = th.records().await;
    // Thai is written without spaces between words: a word inside a run.
    create(&th, common::contact_point("cp-th-1", "ศูนย์ปฏิบัติการต่อต้านการค้ามนุษย์")).await;
    create(&th, with_reference(common::contact_point("cp-th-2", "Poipet border desk"), "POL/7")).await;
    let mut vr = liaison::record::examples::victim_referral();
    vr.id = "vr-idx".into();
    if let Some(Body::VictimReferral(v)) = vr.body.as_mut() {
        v.identity.as_mut().unwrap().full_name = "นางสาวสมศรี Qzxvbn".into();
        v.notes = "met at the การค้ามนุษย์ shelter".into();
    }
    create(&th, vr).await;

    assert_eq!(listed(&mut c, text("การค้ามนุษย์")).await, ["cp-th-1"]);
    assert_eq!(listed(&mut c, text("DER DE")).await, ["cp-th-2"]);
    assert_eq!(listed(&mut c, text("oi")).await, ["cp-th-2"]);
    assert!(listed(&mut c, text("qzxvbn")).await.is_empty(), "identity searchable");
    assert!(listed(&mut c, text("สมศรี")).await.is_empty(), "identity searchable");
    assert!(listed(&mut c, text("shelter")).await.is_empty(), "protected notes searchable");
    let kh_th = |kind: pb::RecordKind| pb::ListRecordsRequest {
        kind: kind as i32,
        country: "TH".into(),
        external_reference: "POL/7".into(),
        ..Default::default()
    };
    assert_eq!(listed(&mut c, kh_th(pb::RecordKind::ContactPoint)).await, ["cp-th-2"]);
    assert!(listed(&mut c, kh_th(pb::RecordKind::Entity)).await.is_empty());

    // An update is found by its new words at once, and no longer by its old ones.
    let renamed = pb::UpdateRecordRequest {
        record: Some(common::contact_point("cp-th-2", "Aranyaprathet crossing")),
        expected_version: 1,
        update_mask: Some(pbjson_types::FieldMask { paths: vec!["contact_point.name".into()] }),
        ..Default::default()
    };
    c.update_record(renamed).await.unwrap();
    assert_eq!(listed(&mut c, text("aranya")).await, ["cp-th-2"]);
    assert!(listed(&mut c, text("poipet")).await.is_empty());
    th.cli_ok(&["record", "withdraw", "cp-th-1", "--expected-version", "1"]);
    assert!(listed(&mut c, text("การค้า")).await.is_empty(), "withdrawn listed");
    let with_withdrawn = pb::ListRecordsRequest { include_withdrawn: true, ..text("การค้า") };
    assert_eq!(listed(&mut c, with_withdrawn.clone()).await, ["cp-th-1"]);

    // Rebuilt from the store on start: the same answers.
    th.stop();
    th.start();
    let mut c = th.records().await;
    assert_eq!(listed(&mut c, with_withdrawn).await, ["cp-th-1"]);
    assert_eq!(listed(&mut c, text("crossing")).await, ["cp-th-2"]);
    assert!(listed(&mut c, text("qzxvbn")).await.is_empty());

    // A peer's query goes through the same indexes and its own decision.
    let mut h = common::Hostile::new(&kh, &th);
    let ask = |text: &str| pb::QueryRecordsRequest {
        kind: pb::RecordKind::VictimReferral as i32,
        text: text.into(),
        purpose: pb::Purpose::VictimIdentification as i32,
        ..Default::default()
    };
    for probe in ["qzxvbn", "สมศรี", "shelter"] {
        let got = h.client.query_records(ask(probe)).await.unwrap().into_inner();
        assert!(got.records.is_empty(), "{probe} found through a query");
    }
    let pseudonym = h.client.query_records(ask("vr-")).await.unwrap().into_inner();
    assert_eq!(pseudonym.records.len(), 1, "the pseudonym is searchable");
}
