//! What every [`Store`] implementation must do, as one suite each backend
//! runs: atomic multi-tree batches, ordered and bounded scans both ways,
//! deletes, durability across a close and reopen and across a kill (a
//! process that dies right after `apply` returned), and index tokens that
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

/// Set in the child process of [`killed`]: the directory to write to.
const CHILD_DIR: &str = "LIAISON_CONFORMANCE_CHILD_DIR";

/// Durability across a kill: a child process (this test binary, running
/// only `test`) opens a store, applies a batch and aborts the moment
/// `apply` returns, with nothing closed or flushed on the way out; the
/// parent then opens the same directory and finds the batch whole.
pub(crate) fn killed<S: Store>(test: &str, open: impl Fn(&Path) -> S) {
    let batch = || {
        let mut b = Batch::default();
        for i in 0..200u32 {
            b.put(Tree::Records, format!("r/{i:04}").into_bytes(), vec![7; 512]);
        }
        b.put(Tree::Meta, b"acknowledged".to_vec(), b"yes".to_vec());
        b
    };
    if let Some(dir) = std::env::var_os(CHILD_DIR) {
        let s = open(Path::new(&dir));
        s.apply(&batch()).expect("the batch applies");
        // Acknowledged: now die without any orderly shutdown.
        std::process::abort();
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let status = std::process::Command::new(std::env::current_exe().expect("the test binary"))
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("the child runs");
    assert!(!status.success(), "the child was to abort after apply, not finish: {status}");
    let s = open(dir.path());
    assert_eq!(s.get(Tree::Meta, b"acknowledged").unwrap(), Some(b"yes".to_vec()), "an acknowledged batch was lost");
    assert_eq!(s.len(Tree::Records).unwrap(), 200, "the batch is whole");
}

#[cfg(test)]
mod tests {
    use super::super::{SealedStore, SledStore, StoreKey};

    #[test]
    fn sled_keeps_what_it_acknowledged_across_a_kill() {
        super::killed("conformance::tests::sled_keeps_what_it_acknowledged_across_a_kill", |p| {
            SledStore::open(p).expect("sled opens")
        });
    }

    #[test]
    fn the_encrypted_store_keeps_what_it_acknowledged_across_a_kill() {
        // The same key in the child and the parent: a fixed one, for the test only.
        let key = StoreKey::from_bytes([42; 32]);
        super::killed("conformance::tests::the_encrypted_store_keeps_what_it_acknowledged_across_a_kill", |p| {
            SealedStore::new(SledStore::open(p).expect("sled opens"), &key).expect("the key opens it")
        });
    }

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
