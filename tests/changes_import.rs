//! Integrator features: the resumable change feed, bulk import and export.

mod common;

use common::{contact_point, TestNode};
use liaison::pb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_changes_resumes_without_gap_or_duplicate() {
    let root = tempfile::tempdir().unwrap();
    let mut a = TestNode::init(root.path(), "th-atpd", "TH");
    a.start();
    let mut records = a.records().await;
    for i in 0..5 {
        records
            .create_record(pb::CreateRecordRequest {
                record: Some(contact_point(&format!("cp-{i}"), "A")),
                ..Default::default()
            })
            .await
            .unwrap();
    }

    let mut seen: Vec<u64> = Vec::new();
    {
        let mut feed = pb::change_service_client::ChangeServiceClient::new(a.authed().await);
        let mut stream =
            feed.watch_changes(pb::WatchChangesRequest { since_seq: 0, no_follow: false }).await.unwrap().into_inner();
        for _ in 0..3 {
            let item = stream.message().await.unwrap().unwrap();
            seen.push(item.change.unwrap().seq);
        }
        // Client disconnects mid-stream.
    }
    // More changes while disconnected, including an update.
    for i in 5..8 {
        records
            .create_record(pb::CreateRecordRequest {
                record: Some(contact_point(&format!("cp-{i}"), "B")),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let mut upd = contact_point("cp-0", "A renamed");
    upd.id = "cp-0".into();
    records
        .update_record(pb::UpdateRecordRequest { record: Some(upd), expected_version: 1, ..Default::default() })
        .await
        .unwrap();

    let mut feed = pb::change_service_client::ChangeServiceClient::new(a.authed().await);
    let last = *seen.last().unwrap();
    let mut stream =
        feed.watch_changes(pb::WatchChangesRequest { since_seq: last, no_follow: false }).await.unwrap().into_inner();
    let mut kinds = Vec::new();
    while seen.len() < 9 {
        let item =
            tokio::time::timeout(std::time::Duration::from_secs(10), stream.message()).await.unwrap().unwrap().unwrap();
        let c = item.change.unwrap();
        assert!(item.record.is_some(), "record changes carry the record");
        kinds.push(c.r#type);
        seen.push(c.seq);
    }
    assert_eq!(seen, (1..=9).collect::<Vec<u64>>(), "no gap, no duplicate");
    assert_eq!(*kinds.last().unwrap(), pb::ChangeType::RecordUpdated as i32);

    // Following: a change made now arrives on the open stream.
    records
        .create_record(pb::CreateRecordRequest { record: Some(contact_point("cp-live", "C")), ..Default::default() })
        .await
        .unwrap();
    let item =
        tokio::time::timeout(std::time::Duration::from_secs(10), stream.message()).await.unwrap().unwrap().unwrap();
    assert_eq!(item.change.unwrap().seq, 10);
    assert_eq!(item.record.unwrap().id, "cp-live");
}

/// One JSON line of `liaison import`: a valid contact point.
fn imported(id: &str) -> String {
    serde_json::to_string(&contact_point(id, "Imported")).unwrap()
}

/// Runs an import with refused lines: the command fails, and its JSON
/// report still says what was stored.
fn refused(node: &TestNode, args: &[&str]) -> serde_json::Value {
    let out = node.cli(args);
    assert!(!out.status.success(), "refused lines fail the import");
    serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("JSON report")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_stores_good_lines_and_reports_bad_ones() {
    let root = tempfile::tempdir().unwrap();
    let mut a = TestNode::init(root.path(), "th-atpd", "TH");
    a.start();
    let lines = [
        imported("cp-imp-1"),
        "{ not json".to_string(),
        imported("cp-imp-2"),
        imported("cp-imp-1"), // duplicate id
        String::new(),
        imported("cp-imp-3"),
        serde_json::to_string(&{
            let mut r = contact_point("cp-imp-4", "Bad country");
            if let Some(pb::record::Body::ContactPoint(c)) = r.body.as_mut() {
                c.country = "Thailand".into();
            }
            r
        })
        .unwrap(),
    ];
    let file = root.path().join("in.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let out = refused(&a, &["--json", "import", &file.display().to_string()]);
    assert_eq!(out["stored"], 3, "{out}");
    let problems = out["problems"].as_array().unwrap();
    let line_nos: Vec<u64> = problems.iter().map(|p| p["line"].as_u64().unwrap()).collect();
    assert_eq!(line_nos, vec![2, 4, 7], "{out}");
    assert_eq!(problems[2]["field"], "record.contact_point.country", "{out}");
    assert!(problems[1]["reason"].as_str().unwrap().contains("already exists"));

    // CSV of contact points.
    let csv = format!(
        "{}\ncp-csv-1,Border liaison office,border_office,Immigration Police,TH,th;en,+66 2 555 0100,border@imm.example.th,08:00-17:00 Asia/Bangkok,2026-10-01,green\ncp-csv-2,Bad role,not_a_role,X,TH,th,,,24/7,2026-10-01,green\n",
        liaison::cli::CSV_HEADER
    );
    let file = root.path().join("contacts.csv");
    std::fs::write(&file, csv).unwrap();
    let out = refused(&a, &["--json", "import", &file.display().to_string()]);
    assert_eq!(out["stored"], 1, "{out}");
    assert_eq!(out["problems"][0]["line"], 3);
    assert_eq!(out["problems"][0]["field"], "role");
    assert!(out["problems"][0]["reason"].as_str().unwrap().contains("unknown contact role"));

    // Export gives back every record as JSON lines.
    let exported = a.cli_ok(&["export", "--kind", "contact_point"]);
    let ids: Vec<String> = exported.lines().map(|l| serde_json::from_str::<pb::Record>(l).unwrap().id).collect();
    assert_eq!(ids, vec!["cp-csv-1", "cp-imp-1", "cp-imp-2", "cp-imp-3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_keeps_several_calls_in_flight_and_refuses_duplicates_on_their_later_line() {
    let root = tempfile::tempdir().unwrap();
    let mut a = TestNode::init(root.path(), "th-atpd", "TH");
    a.start();
    let held = root.path().join("held.jsonl");
    std::fs::write(&held, imported("cp-held")).unwrap();
    assert!(a.cli(&["import", &held.display().to_string()]).status.success());
    // Enough lines for several calls in flight at once: every one is
    // stored once, and an id used again far down the file (in another
    // call) is refused on its later line, whichever call the node takes
    // first; one the node already holds is refused too.
    let mut many: Vec<String> = (0..2600).map(|i| imported(&format!("cp-many-{i}"))).collect();
    many[2100] = imported("cp-many-7");
    many[2400] = imported("cp-held");
    let file = root.path().join("many.jsonl");
    std::fs::write(&file, many.join("\n")).unwrap();
    let out = refused(&a, &["--json", "import", &file.display().to_string()]);
    assert_eq!(out["stored"], 2598, "{out}");
    let line_nos: Vec<u64> = out["problems"].as_array().unwrap().iter().map(|p| p["line"].as_u64().unwrap()).collect();
    assert_eq!(line_nos, vec![2101, 2401], "{out}");

    let mut rc = a.records().await;
    let last = rc.get_record(pb::GetRecordRequest { id: "cp-many-2599".into(), ..Default::default() }).await;
    assert!(last.is_ok(), "{last:?}");
}
