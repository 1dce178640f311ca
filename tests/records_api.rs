//! Records over the local API: validation, versioning, withdrawal, listing, identifiers.

mod common;

use common::{bad_field, contact_point, TestNode};
use liaison::pb;
use liaison::record::examples;
use tonic::Code;

fn body_mut(r: &mut pb::Record) -> &mut pb::record::Body {
    r.body.as_mut().unwrap()
}

/// Invalid records, each with the field the error must name.
fn invalid_cases() -> Vec<(&'static str, pb::Record)> {
    use pb::record::Body;
    let mut cases = Vec::new();

    let mut r = examples::contact_point();
    r.id = "Bad Id!".into();
    cases.push(("record.id", r));

    let mut r = examples::contact_point();
    r.handling = 0;
    cases.push(("record.handling", r));

    let mut r = examples::contact_point();
    r.handling = 42;
    cases.push(("record.handling", r));

    let mut r = examples::contact_point();
    r.body = None;
    cases.push(("record.body", r));

    let mut r = examples::contact_point();
    if let Body::ContactPoint(c) = body_mut(&mut r) {
        c.country = "th".into();
    }
    cases.push(("record.contact_point.country", r));

    let mut r = examples::contact_point();
    if let Body::ContactPoint(c) = body_mut(&mut r) {
        c.name = "x".repeat(10_000);
    }
    cases.push(("record.contact_point.name", r));

    let mut r = examples::contact_point();
    if let Body::ContactPoint(c) = body_mut(&mut r) {
        c.role = 999;
    }
    cases.push(("record.contact_point.role", r));

    let mut r = examples::contact_point();
    if let Body::ContactPoint(c) = body_mut(&mut r) {
        c.last_verified = "2026-02-30".into();
    }
    cases.push(("record.contact_point.last_verified", r));

    let mut r = examples::intelligence_report();
    if let Body::IntelligenceReport(i) = body_mut(&mut r) {
        i.source_reliability = 0;
    }
    cases.push(("record.intelligence_report.source_reliability", r));

    let mut r = examples::intelligence_report();
    if let Body::IntelligenceReport(i) = body_mut(&mut r) {
        i.information_credibility = 7;
    }
    cases.push(("record.intelligence_report.information_credibility", r));

    let mut r = examples::entity();
    if let Body::Entity(e) = body_mut(&mut r) {
        e.identifiers[0].value = "12".into();
    }
    cases.push(("record.entity.identifiers[0].value", r));

    let mut r = examples::victim_referral();
    if let Body::VictimReferral(v) = body_mut(&mut r) {
        v.consent = None;
    }
    cases.push(("record.victim_referral.consent", r));

    let mut r = examples::statistics_report();
    if let Body::StatisticsReport(s) = body_mut(&mut r) {
        s.period_end = "2020-01-01".into();
    }
    cases.push(("record.statistics_report.period_end", r));
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_input_is_refused_naming_the_field_and_changes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let mut a = TestNode::init(root.path(), "th-atpd", "TH");
    a.start();
    let mut c = a.records().await;
    for r in [
        examples::contact_point(),
        examples::intelligence_report(),
        examples::entity(),
        examples::victim_referral(),
        examples::statistics_report(),
    ] {
        c.create_record(pb::CreateRecordRequest { record: Some(r), ..Default::default() }).await.unwrap();
    }
    let before = c
        .list_records(pb::ListRecordsRequest { include_withdrawn: true, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(before.records.len(), 5);

    for (field, mut rec) in invalid_cases() {
        // As a new record...
        let mut new = rec.clone();
        new.id = if field == "record.id" { new.id } else { format!("{}-new", new.id) };
        let err =
            c.create_record(pb::CreateRecordRequest { record: Some(new), ..Default::default() }).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
        assert_eq!(bad_field(&err).as_deref(), Some(field), "{err:?}");
        // ...and as an update of a stored one.
        if field != "record.id" && rec.body.is_some() {
            let existing =
                before.records.iter().find(|s| liaison::record::kind(s) == liaison::record::kind(&rec)).unwrap();
            rec.id = existing.id.clone();
            let err = c
                .update_record(pb::UpdateRecordRequest { record: Some(rec), expected_version: 1, ..Default::default() })
                .await
                .unwrap_err();
            assert_eq!(err.code(), Code::InvalidArgument, "update {field}: {err:?}");
            assert_eq!(bad_field(&err).as_deref(), Some(field));
        }
    }
    // Request-level fields are checked too.
    let err = c.list_records(pb::ListRecordsRequest { page_size: 5000, ..Default::default() }).await.unwrap_err();
    assert_eq!(bad_field(&err).as_deref(), Some("page_size"));
    let err =
        c.list_records(pb::ListRecordsRequest { country: "Thailand".into(), ..Default::default() }).await.unwrap_err();
    assert_eq!(bad_field(&err).as_deref(), Some("country"));
    let err = c.list_records(pb::ListRecordsRequest { kind: 77, ..Default::default() }).await.unwrap_err();
    assert_eq!(bad_field(&err).as_deref(), Some("kind"));

    let after = c
        .list_records(pb::ListRecordsRequest { include_withdrawn: true, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(before, after, "a refused write must leave the store unchanged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_withdrawal_filters_pagination_and_identifiers() {
    let root = tempfile::tempdir().unwrap();
    let mut a = TestNode::init(root.path(), "th-atpd", "TH");
    a.start();
    let mut c = a.records().await;

    let created = c
        .create_record(pb::CreateRecordRequest {
            record: Some(contact_point("cp-1", "Border desk")),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    assert_eq!((created.version, created.originator.as_str()), (1, "th-atpd"));
    let err = c
        .create_record(pb::CreateRecordRequest { record: Some(contact_point("cp-1", "Again")), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);

    let v2 = c
        .update_record(pb::UpdateRecordRequest {
            record: Some(contact_point("cp-1", "Border desk (north)")),
            expected_version: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(v2.create_time, created.create_time);
    // A stale version is refused and changes nothing.
    let err = c
        .update_record(pb::UpdateRecordRequest {
            record: Some(contact_point("cp-1", "Lost update")),
            expected_version: 1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Aborted, "{err:?}");
    let shown =
        c.get_record(pb::GetRecordRequest { id: "cp-1".into(), ..Default::default() }).await.unwrap().into_inner();
    assert_eq!(shown.record.as_ref().unwrap().version, 2);
    // The stored record carries the originator's signature over its exact bytes.
    let env = shown.envelope.unwrap();
    let card = a.cli_json(&["card", "export"]);
    let key_b64 = card["card"]["signingPublicKey"].as_str().unwrap();
    use base64::Engine;
    let key =
        liaison::envelope::verifying_key(&base64::engine::general_purpose::STANDARD.decode(key_b64).unwrap()).unwrap();
    let signed: pb::Record =
        liaison::envelope::open(&env, liaison::envelope::payload::RECORD, "th-atpd", &key).unwrap();
    assert_eq!(Some(signed), shown.record);

    // Entities are indexed by normalised identifier.
    let ent = c
        .create_record(pb::CreateRecordRequest { record: Some(examples::entity()), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    let pb::record::Body::Entity(e) = ent.body.as_ref().unwrap() else { panic!() };
    let ident = e.identifiers[0].clone();
    let spaced: String = ident.value.chars().flat_map(|ch| [ch, ' ']).collect::<String>().to_lowercase();
    let hit = c
        .lookup_identifier(pb::LookupIdentifierRequest { r#type: ident.r#type, value: spaced })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(hit.record_ids, vec![format!("th-atpd/{}", ent.id)]);

    // Withdrawal: a new version, hidden from default listings and from identifier look-ups.
    let w = c
        .withdraw_record(pb::WithdrawRecordRequest { id: ent.id.clone(), expected_version: 1, ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    assert!(w.withdrawn && w.version == 2);
    let hit = c
        .lookup_identifier(pb::LookupIdentifierRequest { r#type: ident.r#type, value: ident.value.clone() })
        .await
        .unwrap()
        .into_inner();
    assert!(hit.record_ids.is_empty());
    let err = c
        .update_record(pb::UpdateRecordRequest {
            record: Some(examples::entity()),
            expected_version: 2,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "a withdrawn record cannot be updated: {err:?}");

    // Filters and pagination.
    for i in 0..25 {
        let mut r = contact_point(&format!("cp-page-{i:02}"), &format!("Desk {i}"));
        if let Some(pb::record::Body::ContactPoint(cp)) = r.body.as_mut() {
            cp.country = if i % 2 == 0 { "KH".into() } else { "TH".into() };
        }
        c.create_record(pb::CreateRecordRequest { record: Some(r), ..Default::default() }).await.unwrap();
    }
    let mut ids = Vec::new();
    let mut token = String::new();
    loop {
        let page = c
            .list_records(pb::ListRecordsRequest {
                kind: pb::RecordKind::ContactPoint as i32,
                country: "KH".into(),
                page_size: 5,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.records.len() <= 5);
        ids.extend(page.records.into_iter().map(|r| r.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(ids.len(), 13, "{ids:?}");
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, ids, "pages are ordered and never repeat");
    let text = c
        .list_records(pb::ListRecordsRequest { text: "DESK 1".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert!(text.records.iter().all(|r| liaison::cli::output_summary(r).to_lowercase().contains("desk 1")));
    assert!(text.records.len() >= 11, "Desk 1, Desk 10..19");
    let since = c
        .list_records(pb::ListRecordsRequest {
            updated_since: v2.update_time,
            include_withdrawn: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let cutoff = v2.update_time.unwrap();
    assert!(since.records.iter().all(|r| {
        let t = r.update_time.unwrap();
        (t.seconds, t.nanos) >= (cutoff.seconds, cutoff.nanos)
    }));
    assert!(since.records.iter().any(|r| r.id == "cp-1"));
    let later = c
        .list_records(pb::ListRecordsRequest {
            updated_since: w.update_time,
            include_withdrawn: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(later.records.iter().all(|r| r.id != "cp-1"), "cp-1 was last updated before the withdrawal");

    // The CLI shows the same, with contacts search.
    let out = a.cli_ok(&["contacts", "search", "Border desk"]);
    assert!(out.contains("Border desk (north)"), "{out}");
}
