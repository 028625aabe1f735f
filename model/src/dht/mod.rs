//! Partitioners and sharders (upstream `dht/`): tokens, the default Murmur3 partitioner with
//! its static sharder, and the fixed-shard partitioner of the Raft-group tables
//! ([`fixed_shard`], SPEC §7.2).
//!
//! A token is a signed 64-bit value; `i64::MIN` is the minimum token (before every key) and
//! `i64::MAX` the maximum. The default partitioner maps a key to the first 64 bits of its
//! Murmur3 x64-128 hash (`i64::MIN` is moved to `i64::MAX`, as upstream does, so no key has
//! the minimum token). The static sharder splits the token ring into `shard_count` equal
//! ranges.
//!
//! Simplification: upstream's Murmur3 reads tail bytes as signed (a Cassandra compatibility
//! quirk); this one is the reference Murmur3 x64-128. The hash is only used to spread keys, so
//! nothing a checker can catch depends on the difference.

pub mod fixed_shard;

use serde::{Deserialize, Serialize};
use std::fmt;

/// A token on the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Token(pub i64);

impl Token {
    /// The minimum token (sorts before every key's token).
    pub const MIN: Token = Token(i64::MIN);
    /// The maximum token.
    pub const MAX: Token = Token(i64::MAX);

    /// Is this the minimum token?
    pub fn is_minimum(self) -> bool {
        self == Token::MIN
    }

    /// Is this the maximum token?
    pub fn is_maximum(self) -> bool {
        self == Token::MAX
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Murmur3 x64-128 of `data` with `seed`: the two 64-bit halves `(h1, h2)`.
pub fn murmur3_x64_128(data: &[u8], seed: u64) -> (u64, u64) {
    const C1: u64 = 0x87c3_7b91_1142_53d5;
    const C2: u64 = 0x4cf5_ad43_2745_937f;
    let fmix = |mut k: u64| {
        k ^= k >> 33;
        k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
        k ^= k >> 33;
        k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        k ^ (k >> 33)
    };
    let (mut h1, mut h2) = (seed, seed);
    let blocks = data.chunks_exact(16);
    let tail = blocks.remainder();
    for b in blocks {
        let mut k1 = u64::from_le_bytes(b[0..8].try_into().expect("8 bytes"));
        let mut k2 = u64::from_le_bytes(b[8..16].try_into().expect("8 bytes"));
        k1 = k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2);
        h1 ^= k1;
        h1 = h1
            .rotate_left(27)
            .wrapping_add(h2)
            .wrapping_mul(5)
            .wrapping_add(0x52dc_e729);
        k2 = k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1);
        h2 ^= k2;
        h2 = h2
            .rotate_left(31)
            .wrapping_add(h1)
            .wrapping_mul(5)
            .wrapping_add(0x3849_5ab5);
    }
    let (mut k1, mut k2) = (0u64, 0u64);
    for (i, &byte) in tail.iter().enumerate() {
        if i < 8 {
            k1 |= (byte as u64) << (8 * i);
        } else {
            k2 |= (byte as u64) << (8 * (i - 8));
        }
    }
    if tail.len() > 8 {
        h2 ^= k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1);
    }
    if !tail.is_empty() {
        h1 ^= k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2);
    }
    let len = data.len() as u64;
    h1 ^= len;
    h2 ^= len;
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    h1 = fmix(h1);
    h2 = fmix(h2);
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    (h1, h2)
}

/// The default (Murmur3) partitioner's token of a serialized partition key.
pub fn murmur3_token(key: &[u8]) -> Token {
    let h = murmur3_x64_128(key, 0).0 as i64;
    // No key may have the minimum token.
    Token(if h == i64::MIN { i64::MAX } else { h })
}

/// The static sharder of the default partitioner: `shard_count` equal ranges of the ring.
pub fn static_shard_of(t: Token, shard_count: u32) -> u32 {
    assert!(shard_count >= 1, "a node has at least one shard");
    let zero_based = (t.0 as u64) ^ (1u64 << 63);
    ((zero_based as u128 * shard_count as u128) >> 64) as u32
}

/// Serializes a compound partition key the way a key's legacy form is laid out: each component
/// as a big-endian 16-bit length, its bytes and an end-of-component byte 0.
pub fn compound_key(components: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in components {
        let len = u16::try_from(c.len()).expect("a key component fits 64 KiB");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(c);
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur3_reference_vectors() {
        assert_eq!(murmur3_x64_128(b"", 0), (0, 0));
        assert_eq!(
            murmur3_x64_128(b"hello", 0),
            (0xcbd8_a7b3_41bd_9b02, 0x5b1e_906a_48ae_1d19)
        );
        assert_eq!(
            murmur3_x64_128(b"The quick brown fox jumps over the lazy dog", 0),
            (0xe34b_bc7b_bc07_1b6c, 0x7a43_3ca9_c49a_9347)
        );
    }

    #[test]
    fn static_sharder_splits_the_ring_evenly() {
        assert_eq!(static_shard_of(Token::MIN, 4), 0);
        assert_eq!(static_shard_of(Token::MAX, 4), 3);
        assert_eq!(static_shard_of(Token(-1), 2), 0);
        assert_eq!(static_shard_of(Token(0), 2), 1);
        assert_eq!(static_shard_of(Token(123), 1), 0);
    }

    #[test]
    fn compound_key_layout() {
        assert_eq!(
            compound_key(&[&[0, 3], &[7]]),
            vec![0, 2, 0, 3, 0, 0, 1, 7, 0]
        );
    }
}
