//! The one answer to "may this backend's serving state be stale?": a key of the data the running statement can see,
//! taken from its active snapshot, so that every statement execution (in a multi-statement message, a DO block, a
//! PL/pgSQL loop or a procedure) that could see a change re-checks, while one statement over a million rows checks once.
use pgrx::pg_sys;

/// What the running statement sees. Two equal keys come from snapshots with the same transaction horizon, the same
/// in-progress transactions and the same command counter, so they see exactly the same rows: an answer read from
/// the database under one is still true under the other.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct VisibleData(u64);

/// The key of the active snapshot; `None` outside a statement with one, where nothing may be assumed current.
pub fn visible_data() -> Option<VisibleData> {
    // SAFETY: the active snapshot, when one is set, stays valid for the call; its xip/subxip arrays hold xcnt/subxcnt
    // entries (snapmgr.c), read here without being kept.
    unsafe {
        if !pg_sys::ActiveSnapshotSet() {
            return None;
        }
        let snapshot = pg_sys::GetActiveSnapshot().as_ref()?;
        let mut key = Fnv::default();
        key.add(u64::from(snapshot.xmin.into_inner()));
        key.add(u64::from(snapshot.xmax.into_inner()));
        key.add(u64::from(snapshot.curcid));
        key.add(u64::from(snapshot.suboverflowed));
        add_ids(&mut key, snapshot.xip, snapshot.xcnt as usize);
        add_ids(&mut key, snapshot.subxip, snapshot.subxcnt.max(0) as usize);
        Some(VisibleData(key.0))
    }
}

/// FNV-1a over 64-bit words: a few nanoseconds per statement row, where a collision would need two consecutive
/// snapshots of one backend to differ and hash alike.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn add(&mut self, value: u64) {
        self.0 = (self.0 ^ value).wrapping_mul(0x0000_0100_0000_01b3);
    }
}

/// Adds a snapshot's in-progress transaction ids (and how many there are) to `key`.
///
/// # Safety
/// `ids` points to at least `count` transaction ids, or `count` is 0.
unsafe fn add_ids(key: &mut Fnv, ids: *const pg_sys::TransactionId, count: usize) {
    key.add(count as u64);
    if count > 0 && !ids.is_null() {
        std::slice::from_raw_parts(ids, count).iter().for_each(|id| key.add(u64::from(id.into_inner())));
    }
}
