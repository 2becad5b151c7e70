//! The one answer to "may this backend's serving state be stale?": a key of the data the running statement can see,
//! taken from its active snapshot, so that every statement execution (in a multi-statement message, a DO block, a
//! PL/pgSQL loop or a procedure) that could see a change re-checks, while one statement over a million rows checks once.
use pgrx::pg_sys;
use std::hash::{Hash, Hasher};

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
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (snapshot.xmin.into_inner(), snapshot.xmax.into_inner(), snapshot.curcid, snapshot.suboverflowed).hash(&mut hasher);
        hash_ids(&mut hasher, snapshot.xip, snapshot.xcnt as usize);
        hash_ids(&mut hasher, snapshot.subxip, snapshot.subxcnt.max(0) as usize);
        Some(VisibleData(hasher.finish()))
    }
}

/// Feeds a snapshot's in-progress transaction ids to `hasher`.
///
/// # Safety
/// `ids` points to at least `count` transaction ids, or `count` is 0.
unsafe fn hash_ids(hasher: &mut impl Hasher, ids: *const pg_sys::TransactionId, count: usize) {
    count.hash(hasher);
    if count > 0 && !ids.is_null() {
        std::slice::from_raw_parts(ids, count).iter().for_each(|id| id.into_inner().hash(hasher));
    }
}
