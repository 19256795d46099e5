//! One content hash (64-bit FNV-1a) for telling texts apart: a board as last read, an evidence
//! file before and after a run, a service file's board path. Not for security.

/// The 64-bit FNV-1a hash of `bytes`.
pub fn content_hash(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}
