//! Free space under the store, checked before every write. A write that
//! would eat into the reserve is refused before it touches the store, so the
//! store never meets a full disk half-way through a batch (sled would keep
//! the batch in memory, show it, and lose it at restart). When space returns
//! writes simply succeed again: nothing was left broken.

use std::path::PathBuf;

use super::StoreError;

/// Test-only switch (debug builds): a file holding the number of free bytes
/// to report instead of asking the filesystem, so tests can fill and free
/// "the disk" of a running node.
pub const FAKE_FREE_VAR: &str = "LIAISON_TEST_FREE_SPACE_FILE";

#[derive(Debug, Clone)]
pub struct Disk {
    path: PathBuf,
    reserve: u64,
    fake: Option<PathBuf>,
}

/// Whether a write may go ahead with `free` bytes left and `reserve` kept back
/// (a reserve of 0 turns the check off).
pub fn room(free: u64, reserve: u64) -> Result<(), StoreError> {
    if reserve > 0 && free < reserve {
        return Err(StoreError::Full { free, reserve });
    }
    Ok(())
}

impl Disk {
    pub fn new(path: PathBuf, reserve: u64, fake: Option<PathBuf>) -> Self {
        Self { path, reserve, fake }
    }

    /// Bytes free for the store's files.
    pub fn free(&self) -> Result<u64, StoreError> {
        if let Some(f) = &self.fake {
            let text = std::fs::read_to_string(f).map_err(|e| StoreError::Backend(format!("{}: {e}", f.display())))?;
            return text
                .trim()
                .parse()
                .map_err(|_| StoreError::Backend(format!("{}: not a number of bytes", f.display())));
        }
        fs2::available_space(&self.path).map_err(|e| StoreError::Backend(format!("free space: {e}")))
    }

    /// Refuses (`StoreError::Full`) when less than the reserve is free.
    pub fn check(&self) -> Result<(), StoreError> {
        if self.reserve == 0 {
            return Ok(());
        }
        room(self.free()?, self.reserve)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_stop_at_the_reserve_and_resume_above_it() {
        assert!(room(10, 0).is_ok(), "no reserve, no check");
        assert!(matches!(room(99, 100), Err(StoreError::Full { free: 99, reserve: 100 })));
        assert!(room(100, 100).is_ok());
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("free");
        let d = Disk::new(dir.path().to_path_buf(), 1000, Some(fake.clone()));
        std::fs::write(&fake, "5").unwrap();
        assert!(matches!(d.check(), Err(StoreError::Full { .. })));
        std::fs::write(&fake, "5000\n").unwrap();
        assert!(d.check().is_ok());
        std::fs::write(&fake, "lots").unwrap();
        assert!(matches!(d.check(), Err(StoreError::Backend(_))));
        // The real filesystem answers too.
        assert!(Disk::new(dir.path().to_path_buf(), 1, None).free().unwrap() > 0);
    }
}
