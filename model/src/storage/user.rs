//! The keys of a tablet user table on a shard: partition `(tablet index, key)`, so that one
//! tablet is one contiguous partition range (dropped whole by cleanup, read whole by
//! streaming); a single clustering row holding the value.

use super::Keys;

/// Keys of the tablet user tables (`ks.t*`).
#[derive(Clone, Copy, Debug)]
pub struct UserKeys;

impl Keys for UserKeys {
    type Pk = (u32, u64);
    type Ck = ();
    type Bound = ();
    type Cell = u64;
    fn bound_of(_: &()) {}
}
