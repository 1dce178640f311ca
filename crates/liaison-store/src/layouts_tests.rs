//! The typed layouts over a real store: what one write puts, the next read sees.

use std::sync::Arc;

use time::OffsetDateTime;

use crate::{cursors, pb, receipts, released, retention, withdrawals, Db, SledStore, StoreError};

fn t(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000 + secs).unwrap()
}

async fn db(dir: &std::path::Path) -> Db {
    let store = Arc::new(SledStore::open(dir).unwrap());
    Db::new(store, Arc::new(crate::clock::SystemClock::default()), None).unwrap()
}

#[tokio::test]
async fn each_layout_reads_back_what_it_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(dir.path()).await;
    let receipt = pb::Envelope { payload_type: "receipt".into(), ..Default::default() };
    db.write(|_, tx| {
        receipts::put(tx, "kh-antht", "dlv-1", &receipt);
        withdrawals::mark(tx, "kh-antht/en-1");
        cursors::put(tx, "kh-antht", pb::RecordKind::ContactPoint, 42);
        released::mark(tx, "th-atpd/en-2", "vn-police");
        Ok::<_, StoreError>(())
    })
    .await
    .unwrap();
    let st = db.store();
    assert_eq!(receipts::get(st, "kh-antht", "dlv-1").unwrap(), Some(receipt));
    assert_eq!(receipts::get(st, "kh-antht", "dlv-2").unwrap(), None);
    assert!(!receipts::contains(st, "vn-police", "dlv-1").unwrap(), "receipts are per sender");
    assert!(withdrawals::known(st, "kh-antht/en-1").unwrap());
    assert!(!withdrawals::known(st, "kh-antht/en-10").unwrap());
    assert_eq!(cursors::get(st, "kh-antht", pb::RecordKind::ContactPoint).unwrap(), 42);
    assert_eq!(cursors::get(st, "kh-antht", pb::RecordKind::Entity).unwrap(), 0);
    assert!(released::contains(st, "th-atpd/en-2", "vn-police").unwrap());
    assert!(!released::contains(st, "th-atpd/en-2", "kh-antht").unwrap());
}

/// Only entries whose time has passed are due, oldest first; a dropped
/// entry is gone.
#[tokio::test]
async fn retention_is_due_in_time_order() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(dir.path()).await;
    db.write(|_, tx| {
        retention::put(tx, t(30), "kh/late");
        retention::put(tx, t(10), "kh/early");
        retention::put(tx, t(20), "kh/middle");
        Ok::<_, StoreError>(())
    })
    .await
    .unwrap();
    let keys = |now| -> Vec<String> {
        retention::due(db.store(), now, 10).unwrap().into_iter().map(|d| d.record_key).collect()
    };
    assert_eq!(keys(t(5)), Vec::<String>::new());
    assert_eq!(keys(t(25)), vec!["kh/early", "kh/middle"]);
    let first = retention::due(db.store(), t(25), 1).unwrap();
    db.write(|_, tx| {
        first[0].delete(tx);
        retention::delete(tx, t(20), "kh/middle");
        Ok::<_, StoreError>(())
    })
    .await
    .unwrap();
    assert_eq!(keys(t(29)), Vec::<String>::new());
    assert_eq!(keys(t(31)), vec!["kh/late"]);
}
