//! Two hashes for telling texts apart, neither for security:
//! - [`content_hash`] (64-bit FNV-1a), stable across builds, for what outlives the process: an
//!   evidence file before and after a run, a service file's board path, an ID in a branch name;
//! - [`text_hash`] (SipHash-1-3 with fixed keys, as std's `DefaultHasher`), five times faster
//!   on a board's size, for comparing texts within one process only: the board as last read
//!   or written, hashed on every read. Std may change its algorithm in a later release, so it
//!   is never stored or shown.

use std::hash::{DefaultHasher, Hasher};

/// The 64-bit FNV-1a hash of `bytes`.
pub fn content_hash(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// A hash of `bytes` to compare with others made by this process (see the module's header).
pub fn text_hash(bytes: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    hasher.write(bytes);
    hasher.finish()
}
