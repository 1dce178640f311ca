//! What every [`Store`] implementation must do, as one suite each backend
//! runs: atomic multi-tree batches, ordered and bounded scans both ways,
//! deletes, durability across a close and reopen, and index tokens that
//! are stable for one store. A new backend passes this before it is used.

use std::ops::Bound;
use std::path::Path;

use super::{scan_prefix, Batch, Store, Tree};

fn keys(entries: Vec<super::Entry>) -> Vec<Vec<u8>> {
    entries.into_iter().map(|(k, _)| k).collect()
}

/// Runs the suite against stores opened by `open` on a directory (opened
/// twice on the same directory to check durability).
pub(crate) fn run<S: Store>(open: impl Fn(&Path) -> S) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    {
        let s = open(dir.path());
        // One batch over several trees, puts and deletes together.
        let mut b = Batch::default();
        for k in [b"b/2".as_slice(), b"a/1", b"b/1", b"a/3", b"a/2", b"c"] {
            b.put(Tree::Records, k.to_vec(), [k, b"-v"].concat());
        }
        b.put(Tree::Peers, b"kh-antht".to_vec(), b"card".to_vec());
        b.put(Tree::Meta, b"gone".to_vec(), b"x".to_vec());
        s.apply(&b).expect("a batch applies");
        let mut d = Batch::default();
        d.delete(Tree::Meta, b"gone".to_vec()).put(Tree::Meta, b"kept".to_vec(), b"y".to_vec());
        s.apply(&d).expect("a batch with a delete applies");
        assert_eq!(s.get(Tree::Meta, b"gone").unwrap(), None);
        assert_eq!(s.get(Tree::Meta, b"kept").unwrap(), Some(b"y".to_vec()));
        assert!(s.apply(&Batch::default()).is_ok(), "an empty batch is a no-op");

        // Ordered scans, bounded both ways, limited, and in reverse.
        let all = keys(s.range(Tree::Records, Bound::Unbounded, Bound::Unbounded, 100).unwrap());
        assert_eq!(
            all,
            [b"a/1".to_vec(), b"a/2".to_vec(), b"a/3".to_vec(), b"b/1".to_vec(), b"b/2".to_vec(), b"c".to_vec()]
        );
        let a = keys(scan_prefix(&s, Tree::Records, b"a/", None, 100).unwrap());
        assert_eq!(a, [b"a/1".to_vec(), b"a/2".to_vec(), b"a/3".to_vec()]);
        let after = keys(scan_prefix(&s, Tree::Records, b"a/", Some(b"a/1"), 1).unwrap());
        assert_eq!(after, [b"a/2".to_vec()], "after is exclusive and the limit holds");
        let rev = keys(s.range_rev(Tree::Records, Bound::Unbounded, Bound::Excluded(b"b/2".to_vec()), 2).unwrap());
        assert_eq!(rev, [b"b/1".to_vec(), b"a/3".to_vec()]);
        let values: Vec<Vec<u8>> =
            scan_prefix(&s, Tree::Records, b"b/", None, 10).unwrap().into_iter().map(|e| e.1).collect();
        assert_eq!(values, [b"b/1-v".to_vec(), b"b/2-v".to_vec()], "values come back as written");
        assert_eq!(s.len(Tree::Records).unwrap(), 6);
        assert_eq!(s.len(Tree::Audit).unwrap(), 0, "trees are separate");

        // Index tokens: stable within a store, distinct for distinct values.
        assert_eq!(s.index_token("passport:AA1234567"), s.index_token("passport:AA1234567"));
        assert_ne!(s.index_token("passport:AA1234567"), s.index_token("passport:AA1234568"));
        assert!(s.size_on_disk().unwrap() > 0);
    }
    // Everything acknowledged is there after the store is closed and reopened.
    let s = open(dir.path());
    assert_eq!(s.get(Tree::Records, b"a/2").unwrap(), Some(b"a/2-v".to_vec()));
    assert_eq!(s.get(Tree::Peers, b"kh-antht").unwrap(), Some(b"card".to_vec()));
    assert_eq!(s.get(Tree::Meta, b"gone").unwrap(), None);
    assert_eq!(s.len(Tree::Records).unwrap(), 6);
}

#[cfg(test)]
mod tests {
    use super::super::{SealedStore, SledStore, StoreKey};

    #[test]
    fn sled_conforms() {
        super::run(|p| SledStore::open(p).expect("sled opens"));
    }

    #[test]
    fn the_encrypted_store_conforms() {
        let key = StoreKey::generate();
        super::run(|p| SealedStore::new(SledStore::open(p).expect("sled opens"), &key).expect("the key opens it"));
    }
}
