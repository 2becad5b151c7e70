//! What a re-import can skip: per user, the stored ratings' count, newest time and an order-free digest (the XOR of a
//! hash of each (movie, rating, time), computed by the server with its own hash functions and here with the same
//! ones). A file's rows no newer than the user's newest stored rating must reproduce that digest exactly; then only
//! the newer rows need merging. Anything else (an edited, removed or added old rating) sends the user's every row.
use std::collections::HashMap;

/// The stored ratings' digest per user: `(user_id, count, digest, newest rated_at in Unix seconds)`.
pub const STORED_DIGESTS: &str = "
SELECT user_id, pg_catalog.count(*),
       pg_catalog.bit_xor((pg_catalog.hashint4(movie_id)::pg_catalog.int8 OPERATOR(pg_catalog.<<) 32)
           OPERATOR(pg_catalog.#) (pg_catalog.hashint8(pg_catalog.date_part('epoch', rated_at)::pg_catalog.int8 OPERATOR(pg_catalog.*) 8192
               OPERATOR(pg_catalog.+) (rating::pg_catalog.float8 OPERATOR(pg_catalog.*) 1000)::pg_catalog.int8)::pg_catalog.int8
               OPERATOR(pg_catalog.&) 4294967295)),
       pg_catalog.max(pg_catalog.date_part('epoch', rated_at))
FROM recsys.ratings GROUP BY user_id";

/// A set of ratings summarised: how many, and the XOR of their row digests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Digest {
    pub count: i64,
    pub xor: i64,
}

impl Digest {
    /// Adds one rating.
    pub fn add(&mut self, movie_id: i32, rating: f32, timestamp: i64) {
        self.count += 1;
        self.xor ^= row_digest(movie_id, rating, timestamp);
    }
}

/// A user's stored ratings as the server summarised them.
#[derive(Debug, Clone, Copy)]
pub struct Stored {
    pub digest: Digest,
    /// Unix seconds of the newest stored rating.
    pub newest: f64,
}

/// The digest of one rating, as `STORED_DIGESTS` computes it per row.
pub fn row_digest(movie_id: i32, rating: f32, timestamp: i64) -> i64 {
    let movie = i64::from(hashint4(movie_id) as i32) << 32;
    let scaled = (f64::from(rating) * 1000.0).round_ties_even() as i64;
    let moment = timestamp.wrapping_mul(8192).wrapping_add(scaled);
    movie ^ i64::from(hashint8(moment))
}

/// Summaries of the stored ratings, by user.
pub fn stored(rows: &[postgres::Row]) -> HashMap<i32, Stored> {
    rows.iter().map(|row| (row.get(0), Stored { digest: Digest { count: row.get(1), xor: row.get(2) }, newest: row.get(3) })).collect()
}

/// PostgreSQL's `hashint4`: Bob Jenkins' hash of one 32-bit word (`hash_bytes_uint32`, src/common/hashfn.c).
pub fn hashint4(value: i32) -> u32 {
    hash_uint32(value as u32)
}

/// PostgreSQL's `hashint8`: the two halves folded into one word (so that equal int4 and int8 values hash alike),
/// then `hash_bytes_uint32`.
pub fn hashint8(value: i64) -> u32 {
    let (low, high) = (value as u32, (value >> 32) as u32);
    hash_uint32(low ^ if value >= 0 { high } else { !high })
}

fn hash_uint32(k: u32) -> u32 {
    let start = 0x9e37_79b9u32.wrapping_add(4).wrapping_add(3_923_095);
    let (mut a, mut b, mut c) = (start.wrapping_add(k), start, start);
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(14));
    a ^= c;
    a = a.wrapping_sub(c.rotate_left(11));
    b ^= a;
    b = b.wrapping_sub(a.rotate_left(25));
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(16));
    a ^= c;
    a = a.wrapping_sub(c.rotate_left(4));
    b ^= a;
    b = b.wrapping_sub(a.rotate_left(14));
    c ^= b;
    c.wrapping_sub(b.rotate_left(24))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hashes_are_postgres_own() {
        // SELECT hashint4(0), hashint4(1), hashint4(-7), hashint4(209171) on PostgreSQL 15.
        let int4: Vec<i32> = [0, 1, -7, 209_171].into_iter().map(|v| hashint4(v) as i32).collect();
        assert_eq!(int4, [-272_711_505, -1_905_060_026, -82_204_417, -1_397_866_612]);
        // SELECT hashint8(0), hashint8(978300760::int8 * 8192 + 5000), hashint8(-123456789012), hashint8(4294967296).
        let int8: Vec<i32> = [0, 978_300_760 * 8192 + 5000, -123_456_789_012, 4_294_967_296].into_iter().map(|v| hashint8(v) as i32).collect();
        assert_eq!(int8, [-272_711_505, -1_529_055_225, 1_743_192_617, -1_905_060_026]);
    }

    #[test]
    fn a_digest_ignores_order_and_sees_any_changed_value() {
        let rows = [(1, 4.0, 100), (2, 3.5, 200), (3, 5.0, 300)];
        let digest = |rows: &[(i32, f32, i64)]| {
            let mut digest = Digest::default();
            rows.iter().for_each(|&(movie, rating, at)| digest.add(movie, rating, at));
            digest
        };
        let reversed: Vec<_> = rows.iter().rev().copied().collect();
        assert_eq!(digest(&rows), digest(&reversed));
        for changed in [[(1, 4.5, 100), rows[1], rows[2]], [(1, 4.0, 101), rows[1], rows[2]], [(4, 4.0, 100), rows[1], rows[2]]] {
            assert_ne!(digest(&changed), digest(&rows), "{changed:?}");
        }
        assert_ne!(digest(&rows[..2]), digest(&rows));
    }
}
