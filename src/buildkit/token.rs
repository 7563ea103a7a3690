//! Random identifiers: the one place torchkit draws randomness from.
//!
//! - [`random_token`]: 32 hex digits, for the per-build bust node (`CompileOptions::build_token`)
//!   and the lock's resolution run;
//! - [`new_id`]: 25 base-36 characters like BuildKit's `identity.NewID`, for build refs and
//!   session ids.
//!
//! Both only have to differ between builds. When the OS random source fails (it does not on
//! Linux with a working `getrandom(2)`), the time, the process id and a per-process counter
//! still make them differ, so a build never fails for want of entropy.

use std::sync::atomic::{AtomicU64, Ordering};

/// Sixteen random bytes (see the module docs for the fallback).
fn random_bytes() -> [u8; 16] {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_ok() {
        return b;
    }
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mixed = nanos ^ (u128::from(std::process::id()) << 64) ^ u128::from(n);
    mixed.to_le_bytes()
}

/// A random token of 32 lower-case hex digits.
pub fn random_token() -> String {
    hex::encode(random_bytes())
}

/// A random identifier like BuildKit's `identity.NewID`: 25 characters of `[0-9a-z]`.
pub fn new_id() -> String {
    const ALPHA: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut n = u128::from_le_bytes(random_bytes());
    let mut s = String::with_capacity(25);
    for _ in 0..25 {
        s.push(char::from(ALPHA[(n % 36) as usize]));
        n /= 36;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_hex_and_differ() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 32);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }

    #[test]
    fn ids_are_base36_and_differ() {
        let (a, b) = (new_id(), new_id());
        assert_eq!(a.len(), 25);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()));
        assert_ne!(a, b);
    }
}
