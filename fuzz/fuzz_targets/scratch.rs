//! Where a harness keeps its files: a per-process directory on tmpfs when
//! there is one (no disk I/O per run), else in the temp dir.

use std::path::PathBuf;

pub fn scratch_dir(target: &str) -> PathBuf {
    let base = PathBuf::from("/dev/shm");
    let base = if base.is_dir() {
        base
    } else {
        std::env::temp_dir()
    };
    base.join(format!("keygate-fuzz-{target}-{}", std::process::id()))
}
