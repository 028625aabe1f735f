//! The fixed-shard partitioner and sharder (upstream `dht/fixed_shard.*`, SPEC §7.2): the
//! token of a Raft-group metadata row encodes the shard the row belongs to, so that a group's
//! metadata stays on the shard its server runs on whatever the node's shard count.
//!
//! - Token: `(shard << 48) | (h & (2^48 − 1))`, where `shard` is the partition key's first
//!   component (a big-endian 16-bit value, at most [`MAX_SHARD`], so tokens are non-negative)
//!   and `h` the first 64 bits of Murmur3 x64-128 of the *entire* serialized partition key.
//! - Sharder: `shard_of(t) = min(t >> 48, shard_count − 1)` (the minimum token maps to shard 0,
//!   the maximum to the last shard); `shard_for_writes` is exactly that one shard (no double
//!   writes, no migration support); `token_for_next_shard` and `next_shard` walk the one token
//!   range each shard owns.
//! - Decoding ([`decode_shard`]) is a pure bit operation that does not depend on the shard
//!   count: a larger `--smp` moves no metadata.
//!
//! Simplification: `group_id` is a 64-bit id serialized big-endian (upstream: a 16-byte
//! timeuuid). The layout of the token does not depend on the id's width.

use super::{compound_key, murmur3_x64_128, Token};
use std::fmt;

/// Bits of the token below the shard.
pub const SHARD_SHIFT: u32 = 48;
/// The hash bits kept in a token.
pub const HASH_MASK: u64 = (1 << SHARD_SHIFT) - 1;
/// The largest shard a key may name (the `smallint` column, kept non-negative).
pub const MAX_SHARD: u16 = i16::MAX as u16;

/// Why a partition key has no fixed-shard token (upstream: an internal error).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyError {
    /// The key has no components.
    Empty,
    /// The shard component is not 2 bytes long.
    InvalidShardSize(usize),
    /// The shard is above [`MAX_SHARD`].
    ShardTooLarge(u16),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Empty => write!(f, "empty partition key"),
            KeyError::InvalidShardSize(n) => {
                write!(f, "Invalid shard value size: expected 2, got {n}")
            }
            KeyError::ShardTooLarge(s) => {
                write!(
                    f,
                    "Shard value {s} exceeds maximum allowed shard {MAX_SHARD}"
                )
            }
        }
    }
}

impl std::error::Error for KeyError {}

/// The token of `shard` with the hash bits `hash_bits` (only the low 48 are kept).
pub fn token_for_shard(shard: u16, hash_bits: u64) -> Token {
    assert!(shard <= MAX_SHARD, "shard {shard} above {MAX_SHARD}");
    Token(((shard as i64) << SHARD_SHIFT) | (hash_bits & HASH_MASK) as i64)
}

/// The shard a token encodes, independent of any shard count.
pub fn decode_shard(t: Token) -> u32 {
    ((t.0 as u64) >> SHARD_SHIFT) as u32
}

/// The serialized partition key `(shard smallint, group_id)` of the Raft-group tables.
pub fn raft_group_key(shard: u16, group_id: u64) -> Vec<u8> {
    compound_key(&[&shard.to_be_bytes(), &group_id.to_be_bytes()])
}

/// The fixed-shard partitioner's token of a serialized compound partition key whose first
/// component is the shard.
pub fn token(key: &[u8]) -> Result<Token, KeyError> {
    if key.len() < 2 {
        return Err(KeyError::Empty);
    }
    let len = u16::from_be_bytes([key[0], key[1]]) as usize;
    if len != 2 || key.len() < 4 {
        return Err(KeyError::InvalidShardSize(len));
    }
    let shard = u16::from_be_bytes([key[2], key[3]]);
    if shard > MAX_SHARD {
        return Err(KeyError::ShardTooLarge(shard));
    }
    Ok(token_for_shard(shard, murmur3_x64_128(key, 0).0))
}

/// The token of a Raft group's metadata partition `(shard, group_id)`.
pub fn raft_group_token(shard: u16, group_id: u64) -> Token {
    token(&raft_group_key(shard, group_id)).expect("a well-formed raft group key")
}

/// The fixed-shard sharder of a node with `shard_count` shards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedShardSharder {
    shard_count: u32,
}

impl FixedShardSharder {
    /// The sharder of a node with `shard_count` (≥ 1) shards.
    pub fn new(shard_count: u32) -> Self {
        assert!(shard_count >= 1, "a node has at least one shard");
        FixedShardSharder { shard_count }
    }

    /// The node's shard count.
    pub fn shard_count(&self) -> u32 {
        self.shard_count
    }

    /// The shard owning `t`: the encoded shard, clamped to the last shard.
    pub fn shard_of(&self, t: Token) -> u32 {
        if t.is_minimum() {
            return 0;
        }
        if t.is_maximum() {
            return self.shard_count - 1;
        }
        decode_shard(t).min(self.shard_count - 1)
    }

    /// The shard reads of `t` go to (always one).
    pub fn try_shard_for_reads(&self, t: Token) -> Option<u32> {
        Some(self.shard_of(t))
    }

    /// The shards writes of `t` go to: exactly one (no double writes, no migrations).
    pub fn shard_for_writes(&self, t: Token) -> Vec<u32> {
        self.try_shard_for_reads(t).into_iter().collect()
    }

    /// The first token after `t` owned by `shard`, or the maximum token if there is none
    /// (`spans > 1`, `shard` at or above the shard count, or `t` at or past the shard's start).
    pub fn token_for_next_shard(&self, t: Token, shard: u32, spans: u32) -> Token {
        if spans > 1 || shard >= self.shard_count || t.is_maximum() {
            return Token::MAX;
        }
        let value = if t.is_minimum() { 0 } else { t.0 };
        let start = (shard as i64) << SHARD_SHIFT;
        if value < start {
            Token(start)
        } else {
            Token::MAX
        }
    }

    /// The shard after `t`'s, with the first token it owns; none after the last shard.
    pub fn next_shard(&self, t: Token) -> Option<(u32, Token)> {
        let shard = self.try_shard_for_reads(t)?;
        if shard + 1 >= self.shard_count {
            return None;
        }
        let next = self.token_for_next_shard(t, shard + 1, 1);
        (!next.is_maximum()).then_some((shard + 1, next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn layout_and_errors() {
        let t = raft_group_token(3, 42);
        assert_eq!(decode_shard(t), 3);
        assert!(t.0 >= 0);
        assert_eq!(token(&[]), Err(KeyError::Empty));
        assert_eq!(
            token(&compound_key(&[&[1, 2, 3]])),
            Err(KeyError::InvalidShardSize(3))
        );
        assert_eq!(
            token(&compound_key(&[&40_000u16.to_be_bytes()])),
            Err(KeyError::ShardTooLarge(40_000))
        );
        let max = raft_group_token(MAX_SHARD, 1);
        assert_eq!(decode_shard(max), MAX_SHARD as u32);
    }

    #[test]
    fn extreme_tokens_and_next_shard_edges() {
        let s = FixedShardSharder::new(4);
        assert_eq!(s.shard_of(Token::MIN), 0);
        assert_eq!(s.shard_of(Token::MAX), 3);
        assert_eq!(s.token_for_next_shard(Token::MIN, 2, 1), Token(2 << 48));
        assert_eq!(s.token_for_next_shard(Token::MIN, 4, 1), Token::MAX);
        assert_eq!(s.token_for_next_shard(Token::MIN, 9, 1), Token::MAX);
        assert_eq!(s.token_for_next_shard(Token::MIN, 1, 2), Token::MAX);
        assert_eq!(s.token_for_next_shard(Token::MAX, 1, 1), Token::MAX);
        assert_eq!(s.next_shard(Token::MIN), Some((1, Token(1 << 48))));
        assert_eq!(s.next_shard(raft_group_token(3, 5)), None);
        assert_eq!(FixedShardSharder::new(1).next_shard(Token(5)), None);
        // A token of a shard the node does not have is owned by its last shard.
        assert_eq!(s.shard_of(raft_group_token(7, 5)), 3);
        assert_eq!(s.shard_for_writes(raft_group_token(7, 5)), vec![3]);
    }

    proptest! {
        #[test]
        fn every_key_maps_to_its_shard(count in 1u32..=64, shard_pick in any::<u32>(), g in any::<u64>()) {
            let shard = (shard_pick % count) as u16;
            let t = raft_group_token(shard, g);
            let s = FixedShardSharder::new(count);
            prop_assert_eq!(s.shard_of(t), shard as u32);
            prop_assert_eq!(s.shard_for_writes(t), vec![shard as u32]);
            prop_assert_eq!(s.try_shard_for_reads(t), Some(shard as u32));
            prop_assert!(t.0 >= 0);
        }

        #[test]
        fn decoding_does_not_depend_on_the_shard_count(shard in 0u16..=MAX_SHARD, g in any::<u64>(), a in 1u32..=40_000, b in 1u32..=40_000) {
            let t = raft_group_token(shard, g);
            let (sa, sb) = (FixedShardSharder::new(a), FixedShardSharder::new(b));
            if (shard as u32) < a && (shard as u32) < b {
                prop_assert_eq!(sa.shard_of(t), sb.shard_of(t));
            }
            // Above the count the token is clamped to the last shard, never wrapped.
            prop_assert_eq!(sa.shard_of(t), (shard as u32).min(a - 1));
            prop_assert_eq!(decode_shard(t), shard as u32);
        }

        #[test]
        fn tokens_order_by_shard_first(a in 0u16..=MAX_SHARD, b in 0u16..=MAX_SHARD, ga in any::<u64>(), gb in any::<u64>()) {
            let (ta, tb) = (raft_group_token(a, ga), raft_group_token(b, gb));
            if a < b {
                prop_assert!(ta < tb);
            }
            if ta < tb {
                prop_assert!(a <= b);
            }
        }

        #[test]
        fn token_for_next_shard_is_the_shards_start(count in 1u32..=64, t in any::<i64>(), shard in 0u32..80, spans in 1u32..3) {
            let s = FixedShardSharder::new(count);
            let t = Token(t);
            let next = s.token_for_next_shard(t, shard, spans);
            if shard >= count || spans > 1 {
                prop_assert_eq!(next, Token::MAX);
            } else if !next.is_maximum() {
                prop_assert!(next > t);
                prop_assert_eq!(next, Token((shard as i64) << SHARD_SHIFT));
                prop_assert_eq!(s.shard_of(next), shard);
            } else {
                // None left: t is at or past the start of `shard`.
                prop_assert!(t.is_maximum() || t.0.max(0) >= (shard as i64) << SHARD_SHIFT);
            }
        }

        #[test]
        fn next_shard_is_the_following_one(count in 1u32..=64, t in any::<i64>()) {
            let s = FixedShardSharder::new(count);
            let t = Token(t);
            match s.next_shard(t) {
                Some((n, start)) => {
                    prop_assert_eq!(n, s.shard_of(t) + 1);
                    prop_assert!(n < count);
                    prop_assert!(start > t);
                    prop_assert_eq!(s.shard_of(start), n);
                }
                None => prop_assert!(s.shard_of(t) + 1 >= count || t.0 >= ((s.shard_of(t) as i64 + 1) << SHARD_SHIFT)),
            }
        }
    }
}
