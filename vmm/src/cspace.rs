//! The VMM's CSpace slot allocator.
//!
//! The VMM owns a range of empty slots and hands out contiguous runs of them:
//! per-page capabilities of a memslot or a guest_memfd file sit in one run,
//! so the core never stores a slot per page. Free space is a sorted list of
//! disjoint, non-adjacent extents (first fit, coalescing on free), so the same
//! set of allocations always has the same representation: an allocation
//! undone leaves the allocator exactly as it was.
//!
//! Capacity: with `n` runs outstanding the free list has at most `n + 1`
//! extents, so allocation is refused once [`MAX_ALLOCATIONS`] runs are out
//! and freeing can never overflow the list.

use heapless::Vec;

use crate::caps::{Slot, SlotRange};
use vmm_abi::limits::{MAX_GMEM_FILES, MAX_MEMSLOTS, MAX_VMS};

/// Runs outstanding at most: per VM its fixed run and a mapping run and a pin
/// run per memslot; per guest_memfd file its frames.
pub(crate) const MAX_ALLOCATIONS: usize = MAX_VMS * (1 + 2 * MAX_MEMSLOTS) + MAX_GMEM_FILES;
/// Free extents at most: one more than the runs outstanding.
const FREE_EXTENTS: usize = MAX_ALLOCATIONS + 1;

crate::errors! {
    /// Why slots could not be allocated or freed.
    pub enum CSpaceError {
        /// No free run is long enough, or too many runs are out.
        Exhausted => ENOMEM, "no free run of CSpace slots is long enough",
        /// A run of zero slots was asked for.
        Empty => EINVAL, "a run of zero slots",
        /// The run freed was not allocated (a bug in the caller).
        NotAllocated => EIO, "freeing slots that are not allocated",
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Extent {
    start: u64,
    len: u64,
}

impl Extent {
    fn end(self) -> u64 {
        self.start.saturating_add(self.len)
    }
}

/// First-fit allocator of contiguous slot runs, with room for `F` free
/// extents and so `F - 1` runs outstanding (the capacity is a parameter so
/// that a proof can use a small one).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SlotAllocator<const F: usize = FREE_EXTENTS> {
    range: SlotRange,
    free: Vec<Extent, F>,
    outstanding: usize,
}

impl<const F: usize> SlotAllocator<F> {
    /// An allocator over `range`, all of it free.
    pub(crate) fn new(range: SlotRange) -> SlotAllocator<F> {
        let mut free = Vec::new();
        if range.len > 0 {
            // Cannot fail unless F is 0, and then no run can be allocated.
            let _ = free.push(Extent { start: range.base.0, len: range.len });
        }
        SlotAllocator { range, free, outstanding: 0 }
    }

    /// Allocates `len` contiguous slots.
    pub(crate) fn alloc(&mut self, len: u64) -> Result<SlotRange, CSpaceError> {
        if len == 0 {
            return Err(CSpaceError::Empty);
        }
        if self.outstanding >= F.saturating_sub(1) {
            return Err(CSpaceError::Exhausted);
        }
        let i = self.free.iter().position(|e| e.len >= len).ok_or(CSpaceError::Exhausted)?;
        let e = self.free.get_mut(i).ok_or(CSpaceError::Exhausted)?;
        let run = SlotRange { base: Slot(e.start), len };
        e.start += len;
        e.len -= len;
        if e.len == 0 {
            self.free.remove(i);
        }
        self.outstanding += 1;
        Ok(run)
    }

    /// Returns a run obtained from [`SlotAllocator::alloc`].
    pub(crate) fn free(&mut self, run: SlotRange) -> Result<(), CSpaceError> {
        let new = Extent { start: run.base.0, len: run.len };
        let inside = run.len > 0 && new.start >= self.range.base.0 && new.end() <= self.range.end();
        // The first free extent starting after the run.
        let i = self.free.partition_point(|e| e.start < new.start);
        let overlaps_prev = i > 0 && self.free.get(i - 1).is_some_and(|p| p.end() > new.start);
        let overlaps_next = self.free.get(i).is_some_and(|n| n.start < new.end());
        if !inside || overlaps_prev || overlaps_next || self.outstanding == 0 {
            return Err(CSpaceError::NotAllocated);
        }
        let joins_prev = i > 0 && self.free.get(i - 1).is_some_and(|p| p.end() == new.start);
        let joins_next = self.free.get(i).is_some_and(|n| n.start == new.end());
        match (joins_prev, joins_next) {
            (true, true) => {
                let next_len = self.free.get(i).map_or(0, |n| n.len);
                if let Some(p) = self.free.get_mut(i - 1) {
                    p.len += new.len + next_len;
                }
                // A bug planted for the proofs to find: the extent that was
                // joined stays in the list.
                #[cfg(not(planted = "cspace_coalesce"))]
                self.free.remove(i);
            }
            (true, false) => {
                if let Some(p) = self.free.get_mut(i - 1) {
                    p.len += new.len;
                }
            }
            (false, true) => {
                if let Some(n) = self.free.get_mut(i) {
                    n.start = new.start;
                    n.len += new.len;
                }
            }
            (false, false) => {
                self.free.insert(i, new).map_err(|_| CSpaceError::NotAllocated)?;
            }
        }
        self.outstanding -= 1;
        Ok(())
    }

    /// Slots not allocated.
    #[cfg(test)]
    fn free_slots(&self) -> u64 {
        self.free.iter().map(|e| e.len).sum()
    }

    /// Runs allocated and not freed.
    #[cfg(test)]
    fn outstanding(&self) -> usize {
        self.outstanding
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc() -> SlotAllocator {
        SlotAllocator::new(SlotRange { base: Slot(100), len: 50 })
    }

    #[test]
    fn alloc_then_free_restores_exactly() {
        let mut a = alloc();
        let before = a.clone();
        let x = a.alloc(10).unwrap();
        let y = a.alloc(5).unwrap();
        let z = a.alloc(7).unwrap();
        assert_eq!((x.base, y.base, z.base), (Slot(100), Slot(110), Slot(115)));
        a.free(y).unwrap();
        a.free(x).unwrap();
        a.free(z).unwrap();
        assert_eq!(a, before);
    }

    #[test]
    fn first_fit_reuses_holes_and_refuses_too_long() {
        let mut a = alloc();
        let x = a.alloc(10).unwrap();
        let _y = a.alloc(30).unwrap();
        a.free(x).unwrap();
        assert_eq!(a.alloc(11), Err(CSpaceError::Exhausted));
        assert_eq!(a.alloc(10).unwrap().base, Slot(100));
        assert_eq!(a.alloc(10).unwrap().base, Slot(140));
        assert_eq!(a.alloc(1), Err(CSpaceError::Exhausted));
        assert_eq!(a.alloc(0), Err(CSpaceError::Empty));
    }

    #[test]
    fn freeing_what_was_not_allocated_is_refused() {
        let mut a = alloc();
        let x = a.alloc(10).unwrap();
        let snapshot = a.clone();
        assert_eq!(a.free(SlotRange { base: Slot(120), len: 2 }), Err(CSpaceError::NotAllocated));
        assert_eq!(a.free(SlotRange { base: Slot(95), len: 10 }), Err(CSpaceError::NotAllocated));
        assert_eq!(a.free(SlotRange { base: Slot(100), len: 0 }), Err(CSpaceError::NotAllocated));
        assert_eq!(a, snapshot);
        a.free(x).unwrap();
        assert_eq!(a.free(x), Err(CSpaceError::NotAllocated));
    }

    #[test]
    fn many_single_slot_runs_never_overflow_the_free_list() {
        let mut a: SlotAllocator = SlotAllocator::new(SlotRange { base: Slot(0), len: 1 << 20 });
        let runs: std::vec::Vec<_> = (0..MAX_ALLOCATIONS).map(|_| a.alloc(1).unwrap()).collect();
        assert_eq!(a.alloc(1), Err(CSpaceError::Exhausted));
        // Free every other run: the most fragmented the list can get.
        for r in runs.iter().step_by(2) {
            a.free(*r).unwrap();
        }
        for r in runs.iter().skip(1).step_by(2) {
            a.free(*r).unwrap();
        }
        assert_eq!(a.free_slots(), 1 << 20);
        assert_eq!(a.outstanding(), 0);
    }
}

/// Proofs over every input (`cargo kani -p vmm`), on a range of six slots
/// and room for two runs (the code paths do not depend on the sizes).
#[cfg(kani)]
mod proofs {
    use super::*;

    /// Runs are inside the range and disjoint; freeing them in either order
    /// restores the allocator exactly; a refused free changes nothing.
    #[kani::proof]
    #[kani::unwind(5)]
    fn runs_are_disjoint_and_freeing_them_restores_the_allocator() {
        let range = SlotRange { base: Slot(10), len: 6 };
        let mut a: SlotAllocator<3> = SlotAllocator::new(range);
        let before = a.clone();
        let x = a.alloc(kani::any::<u64>() % 8);
        let y = a.alloc(kani::any::<u64>() % 8);
        for r in [x, y].into_iter().flatten() {
            assert!(r.len > 0 && range.contains(r.base) && r.end() <= range.end());
        }
        if let (Ok(p), Ok(q)) = (x, y) {
            assert!(p.end() <= q.base.0 || q.end() <= p.base.0);
        }
        let bogus = SlotRange { base: Slot(kani::any::<u64>() % 20), len: kani::any::<u64>() % 8 };
        let snapshot = a.clone();
        if a.free(bogus).is_err() {
            assert!(a == snapshot);
        } else {
            return;
        }
        let (first, second) = if kani::any() { (x, y) } else { (y, x) };
        for r in [first, second].into_iter().flatten() {
            assert!(a.free(r).is_ok());
        }
        assert!(a == before);
    }
}
