//! Scratch files of a test, removed on drop, and reproducible test data.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A scratch directory removed on drop.
#[derive(Debug)]
pub struct Scratch {
    /// Its path.
    pub dir: PathBuf,
}

impl Scratch {
    /// A new directory under the system's temporary directory.
    pub fn new(test: &str) -> Scratch {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("aoe-test-{test}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("make scratch directory");
        Scratch { dir }
    }

    /// A directory on the file system of the test binaries (`target/`), where `O_DIRECT`
    /// works more often than on tmpfs.
    pub fn on_disk(test: &str) -> Scratch {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let exe = std::env::current_exe().expect("the test's own path");
        let base = exe.parent().expect("a directory holds the test");
        let dir = base.join(format!("scratch-{test}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("make scratch directory");
        Scratch { dir }
    }

    /// A sparse file of `bytes` in the directory.
    pub fn sparse(&self, name: &str, bytes: u64) -> PathBuf {
        let path = self.dir.join(name);
        let file = std::fs::File::create(&path).expect("create sparse file");
        file.set_len(bytes).expect("size sparse file");
        path
    }

    /// A file holding `data`.
    pub fn file(&self, name: &str, data: &[u8]) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, data).expect("write file");
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Deterministic pseudo-random bytes (xorshift64 from `seed`).
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}
