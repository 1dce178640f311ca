//! Directory sync's protocol decisions, without IO: which changed records go
//! in a responder's next page and where its cursor ends, and whether a
//! requester may take a page a peer answered.

use crate::pb;

/// One page of a responder's answer, before the policy looks at each record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Distinct keys of changed records, in change order.
    pub keys: Vec<String>,
    /// The last change this page covers: the requester's next start.
    pub cursor: u64,
    /// Whether changes after `cursor` remain.
    pub more: bool,
}

/// The page after `start` from `changes` (the change log after `start`, in
/// order, as far as it was read; `walked_all` when that is all of it): the
/// records of `kind` this node originated (keys starting with `own`), at
/// most `limit` of them. The cursor stops after the last change looked at,
/// so no change is skipped and none is answered twice.
pub fn page(
    changes: &[pb::Change],
    start: u64,
    own: &str,
    kind: pb::RecordKind,
    limit: usize,
    walked_all: bool,
) -> Page {
    let mut keys: Vec<String> = Vec::new();
    let mut cursor = start;
    for c in changes {
        if keys.len() >= limit {
            break;
        }
        cursor = c.seq;
        if c.kind == kind as i32 && c.record_key.starts_with(own) && !keys.contains(&c.record_key) {
            keys.push(c.record_key.clone());
        }
    }
    let more = !walked_all || changes.last().is_some_and(|c| c.seq != cursor);
    Page { keys, cursor, more }
}

/// Why a requester refuses a page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    /// A peer syncs only what it originated.
    #[error("{peer} synced a record originated by {originator}")]
    Foreign { peer: String, originator: String },
    /// A peer that says "more" must move its cursor, or we would ask forever.
    #[error("sync answer did not advance the cursor")]
    Stalled,
}

/// Whether the page `peer` answered to a pull from `asked` may be taken:
/// every record is `peer`'s own, and a page that claims more moves the cursor.
pub fn check_page<'a>(
    peer: &str,
    asked: u64,
    cursor: u64,
    more: bool,
    originators: impl IntoIterator<Item = &'a str>,
) -> Result<(), PageError> {
    if let Some(o) = originators.into_iter().find(|o| *o != peer) {
        return Err(PageError::Foreign { peer: peer.into(), originator: o.into() });
    }
    if more && cursor <= asked {
        return Err(PageError::Stalled);
    }
    Ok(())
}

/// The withdrawn keys of a page that `peer` may speak for: its own records.
pub fn own_withdrawals<'a>(peer: &str, keys: &'a [String]) -> impl Iterator<Item = &'a String> {
    let prefix = format!("{peer}/");
    keys.iter().filter(move |k| k.starts_with(&prefix))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn change(seq: u64, key: &str, kind: pb::RecordKind) -> pb::Change {
        pb::Change { seq, record_key: key.into(), kind: kind as i32, ..Default::default() }
    }

    #[test]
    fn a_page_takes_own_records_of_the_kind_once() {
        use pb::RecordKind as K;
        let log = [
            change(5, "th/a", K::ContactPoint),
            change(6, "kh/b", K::ContactPoint),
            change(7, "th/c", K::Entity),
            change(8, "th/a", K::ContactPoint),
            change(9, "th/d", K::ContactPoint),
        ];
        let p = page(&log, 4, "th/", K::ContactPoint, 10, true);
        assert_eq!(p, Page { keys: vec!["th/a".into(), "th/d".into()], cursor: 9, more: false });
        let p = page(&log, 4, "th/", K::ContactPoint, 1, true);
        assert_eq!(
            p,
            Page { keys: vec!["th/a".into()], cursor: 5, more: true },
            "a full page stops at its last record"
        );
        assert_eq!(page(&[], 4, "th/", K::ContactPoint, 1, true), Page { keys: vec![], cursor: 4, more: false });
        assert!(page(&log, 4, "th/", K::ContactPoint, 10, false).more, "an unfinished walk has more");
    }

    #[test]
    fn a_page_is_taken_only_from_its_originator_and_only_if_it_moves() {
        assert_eq!(check_page("kh", 4, 9, true, ["kh", "kh"]), Ok(()));
        assert_eq!(
            check_page("kh", 4, 9, false, ["kh", "vn"]),
            Err(PageError::Foreign { peer: "kh".into(), originator: "vn".into() })
        );
        assert_eq!(check_page("kh", 4, 4, true, []), Err(PageError::Stalled));
        assert_eq!(check_page("kh", 4, 4, false, []), Ok(()), "nothing new is no error");
        let keys = vec!["kh/a".to_string(), "vn/b".to_string(), "kh2/c".to_string()];
        assert_eq!(own_withdrawals("kh", &keys).collect::<Vec<_>>(), vec!["kh/a"]);
    }

    proptest! {
        /// Paging through any change log with any page size visits every
        /// own record of the kind that changed, never moves the cursor
        /// back, and ends.
        #[test]
        fn paging_covers_the_log_and_ends(
            log in proptest::collection::vec((0u8..4, any::<bool>(), any::<bool>()), 0..60),
            limit in 1usize..5,
            walk in 1usize..20,
        ) {
            let changes: Vec<pb::Change> = log.iter().enumerate().map(|(i, (r, own, entity))| {
                let kind = if *entity { pb::RecordKind::Entity } else { pb::RecordKind::ContactPoint };
                change(i as u64 + 1, &format!("{}/r{r}", if *own { "th" } else { "kh" }), kind)
            }).collect();
            let mut cursor = 0;
            let mut seen = std::collections::BTreeSet::new();
            for _ in 0..=changes.len() {
                let after: Vec<pb::Change> = changes.iter().filter(|c| c.seq > cursor).take(walk).cloned().collect();
                let walked_all = after.len() < walk;
                let p = page(&after, cursor, "th/", pb::RecordKind::ContactPoint, limit, walked_all);
                prop_assert!(p.cursor >= cursor);
                prop_assert!(check_page("th", cursor, p.cursor, p.more, []).is_ok(), "a page that says more moves on");
                seen.extend(p.keys);
                cursor = p.cursor;
                if !p.more {
                    break;
                }
            }
            let expected: std::collections::BTreeSet<String> = changes.iter()
                .filter(|c| c.kind == pb::RecordKind::ContactPoint as i32 && c.record_key.starts_with("th/"))
                .map(|c| c.record_key.clone()).collect();
            prop_assert_eq!(seen, expected);
            prop_assert_eq!(cursor, changes.last().map_or(0, |c| c.seq));
        }
    }
}
