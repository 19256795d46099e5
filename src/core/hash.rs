//! Two hashes for telling texts apart, neither for security:
//! - [`content_hash`] (64-bit FNV-1a), stable across builds, for what outlives the process: an
//!   evidence file before and after a run, a service file's board path, an ID in a branch name;
//!   as [`Fnv`], it also keys the maps by task ID ([`IdMap`]);
//! - [`text_hash`] (SipHash-1-3 with fixed keys, as std's `DefaultHasher`), five times faster
//!   on a board's size, for comparing texts within one process only: the board as last read
//!   or written, hashed on every read. Std may change its algorithm in a later release, so it
//!   is never stored or shown.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, DefaultHasher, Hasher};

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The 64-bit FNV-1a hash of `bytes`.
pub fn content_hash(bytes: &[u8]) -> u64 {
    let mut fnv = Fnv::default();
    fnv.write(bytes);
    fnv.finish()
}

/// A map keyed by task ID. Hashed with FNV-1a: IDs are short and come from the person's own
/// board, so std's keyed hash only costs time (it was a tenth of lint's).
pub type IdMap<'a, V> = HashMap<&'a str, V, BuildHasherDefault<Fnv>>;

/// FNV-1a as a [`Hasher`].
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(FNV_OFFSET)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        }
    }
}

/// A hash of `bytes` to compare with others made by this process (see the module's header).
pub fn text_hash(bytes: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    hasher.write(bytes);
    hasher.finish()
}
