//! The last signed checkpoint, kept in a small file beside the store
//! (`store.head`). sled recovers a damaged log by cutting it at the damage,
//! so a torn or flipped page can silently turn the store into an older one;
//! and a bad restore can put an older store in place. At start the store
//! must still hold the audit entry this file names, with the same hash —
//! otherwise the node refuses to start and says why. (Peers' witnessed
//! checkpoints catch a rollback of the whole directory; this catches the
//! store alone.)

use std::io::Write;
use std::path::Path;

use super::StoreError;

/// The audit entry the head file names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub seq: u64,
    pub hash: Vec<u8>,
}

pub fn format(h: &Head) -> String {
    format!("seq {}\nhash {}\n", h.seq, hex::encode(&h.hash))
}

pub fn parse(text: &str) -> Option<Head> {
    let mut seq = None;
    let mut hash = None;
    for line in text.lines() {
        match line.split_once(' ') {
            Some(("seq", v)) => seq = v.trim().parse().ok(),
            Some(("hash", v)) => hash = hex::decode(v.trim()).ok(),
            _ => {}
        }
    }
    Some(Head { seq: seq?, hash: hash? })
}

/// Whether a store whose audit entry at `head.seq` has hash `held` (None:
/// the chain is shorter) is the store the head file was written for.
pub fn check(head: &Head, held: Option<&[u8]>) -> Result<(), StoreError> {
    match held {
        Some(h) if h == head.hash.as_slice() => Ok(()),
        Some(_) => Err(StoreError::Corrupt(format!(
            "audit entry {} differs from the one last checkpointed (store.head): the store was damaged or replaced; \
             restore the store and its store.head from one backup (docs/OPERATIONS.md)",
            head.seq
        ))),
        None => Err(StoreError::Corrupt(format!(
            "the store ends before audit entry {}, which was checkpointed (store.head): it was truncated, damaged or \
             restored from an older copy; restore the store and its store.head from one backup (docs/OPERATIONS.md)",
            head.seq
        ))),
    }
}

pub fn read(path: &Path) -> Result<Option<Head>, StoreError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text)
            .map(Some)
            .ok_or_else(|| StoreError::Corrupt(format!("{}: not a store head file", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::Backend(format!("{}: {e}", path.display()))),
    }
}

/// Replaces the file atomically and durably (temporary file, fsync, rename).
pub fn write(path: &Path, h: &Head) -> Result<(), StoreError> {
    let io = |e: std::io::Error| StoreError::Backend(format!("{}: {e}", path.display()));
    let tmp = path.with_extension("head.tmp");
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(format(h).as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_behind_or_different_from_its_head_is_refused() {
        let h = Head { seq: 128, hash: vec![7; 32] };
        assert_eq!(parse(&format(&h)), Some(h.clone()));
        assert_eq!(parse("seq x\nhash 00\n"), None);
        assert!(check(&h, Some(&[7; 32])).is_ok());
        let shorter = check(&h, None).unwrap_err().to_string();
        assert!(shorter.contains("ends before audit entry 128"), "{shorter}");
        assert!(check(&h, Some(&[8; 32])).unwrap_err().to_string().contains("differs"));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("store.head");
        assert_eq!(read(&p).unwrap(), None);
        write(&p, &h).unwrap();
        assert_eq!(read(&p).unwrap(), Some(h));
        std::fs::write(&p, "garbage").unwrap();
        assert!(matches!(read(&p), Err(StoreError::Corrupt(_))));
    }
}
