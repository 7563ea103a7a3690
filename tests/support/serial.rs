//! One lock over the daemon's build cache, shared by every test process.
//!
//! Tests against the real daemon share its build cache, and some of them change it for the
//! others: `docker builder prune -af` (tests/e2e_cache.rs) empties it, and a release build
//! (`ignore_cache` on every op, the shared base included) makes the same vertex of a
//! concurrent job run again. Tests that assert what came from the cache, or that compare two
//! builds made one after the other, must not overlap with those.
//!
//! A lock inside one test binary (a `static Mutex`) does not do that: `cargo test` runs the
//! binaries one after the other, but `cargo nextest run` runs every test in its own process,
//! all binaries at once, and several checkouts may test against one daemon. So the lock is
//! an OS file lock (`flock`, through `File::lock`) on a file beside the test environment the
//! daemon belongs to:
//! - [`exclusive`]: for tests that change the cache for others (prune, release builds) or
//!   assert the `cached` flag of their steps; no other holder runs meanwhile;
//! - [`shared`]: for tests that only need the cache left alone while they compare builds;
//!   they run side by side, never beside an exclusive holder.
//!
//! Each guard opens the file anew, so threads of one process exclude each other as processes
//! do; a thread must not take the lock twice. Dropping the guard (or the process ending)
//! releases it.

use std::fs::{File, OpenOptions};
use std::path::PathBuf;

/// The lock file: in the test environment's directory (`$RT`, else
/// `/var/lib/torchkit-test-env`, as scripts/test-env.sh), which every checkout testing
/// against that daemon shares; in this target's `tmp/` when there is no such directory.
pub fn lock_path() -> PathBuf {
    let rt = std::env::var_os("RT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/torchkit-test-env"));
    let dir = if rt.is_dir() {
        rt
    } else {
        PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
    };
    dir.join("e2e-build-cache.lock")
}

/// A held lock over the daemon's build cache; released on drop.
#[derive(Debug)]
pub struct CacheLock {
    _file: File,
}

fn open() -> File {
    let path = lock_path();
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot open the cache lock {}: {e}", path.display()))
}

/// Waits until no other test holds the lock, then holds it alone.
pub fn exclusive() -> CacheLock {
    let file = open();
    file.lock()
        .unwrap_or_else(|e| panic!("locking {}: {e}", lock_path().display()));
    CacheLock { _file: file }
}

/// Waits until no test holds the lock exclusively, then holds it beside other shared holders.
pub fn shared() -> CacheLock {
    let file = open();
    file.lock_shared()
        .unwrap_or_else(|e| panic!("locking {}: {e}", lock_path().display()));
    CacheLock { _file: file }
}
