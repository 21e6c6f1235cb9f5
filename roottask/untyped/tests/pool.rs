//! The pool against a model of seL4's untyped rules (seL4 reference
//! manual, "Kernel Objects: Untyped Memory"; `decodeUntypedInvocation` and
//! `resetUntypedCap` in seL4 16.0.0): a retype aligns the untyped's
//! watermark up to the object's size and fails with NotEnoughMemory past
//! the end; an untyped with no children left starts again from its
//! beginning; a revoke deletes every descendant. The model, not the pool,
//! places every object, so any disagreement shows up as an overlap or a
//! refused retype.

use std::collections::BTreeMap;

use vmm_untyped::{Lease, Made, Pool, PoolError, Retype, Untyped, Usage, CHUNK_BITS};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SeL4Error {
    NotEnoughMemory,
    DeleteFirst,
    InvalidCapability,
}

#[derive(Debug, Clone)]
struct Cap {
    paddr: u64,
    size_bits: u8,
    parent: Option<u64>,
    /// Untypeds only: the watermark.
    free: u64,
    untyped: bool,
}

/// The kernel: a CNode of untyped and object capabilities.
#[derive(Default)]
struct Kernel {
    caps: BTreeMap<u64, Cap>,
    /// Fails the next call of this many calls from now (0: none).
    fail_in: u32,
    calls: u32,
}

impl Kernel {
    fn boot(untypeds: &[(u64, u64, u8)]) -> (Kernel, Vec<Untyped>) {
        let mut k = Kernel::default();
        for &(cptr, paddr, size_bits) in untypeds {
            assert_eq!(paddr % (1 << size_bits), 0, "seL4 aligns boot untypeds to their size");
            k.caps.insert(cptr, Cap { paddr, size_bits, parent: None, free: 0, untyped: true });
        }
        let list = untypeds.iter().map(|&(cptr, _, size_bits)| Untyped { cptr, size_bits }).collect();
        (k, list)
    }

    fn children(&self, cptr: u64) -> Vec<u64> {
        self.caps.iter().filter(|(_, c)| c.parent == Some(cptr)).map(|(&s, _)| s).collect()
    }

    fn retype(&mut self, parent: u64, size_bits: u8, dest: u64, untyped: bool) -> Result<(), SeL4Error> {
        self.calls += 1;
        if self.fail_in > 0 {
            self.fail_in -= 1;
            if self.fail_in == 0 {
                return Err(SeL4Error::InvalidCapability);
            }
        }
        if self.caps.contains_key(&dest) {
            return Err(SeL4Error::DeleteFirst);
        }
        let no_children = self.children(parent).is_empty();
        let p = self.caps.get_mut(&parent).filter(|c| c.untyped).ok_or(SeL4Error::InvalidCapability)?;
        if no_children {
            p.free = 0;
        }
        let size = 1u64 << size_bits;
        let at = p.free.next_multiple_of(size);
        if at + size > 1 << p.size_bits {
            return Err(SeL4Error::NotEnoughMemory);
        }
        p.free = at + size;
        let paddr = p.paddr + at;
        self.caps.insert(dest, Cap { paddr, size_bits, parent: Some(parent), free: 0, untyped });
        Ok(())
    }

    fn delete(&mut self, cptr: u64) {
        for c in self.children(cptr) {
            self.delete(c);
        }
        self.caps.remove(&cptr);
    }

    /// Live objects (not untypeds) must not overlap.
    fn assert_disjoint(&self) {
        let mut objects: Vec<(u64, u64)> =
            self.caps.values().filter(|c| !c.untyped).map(|c| (c.paddr, c.paddr + (1 << c.size_bits))).collect();
        objects.sort();
        for w in objects.windows(2) {
            assert!(w[0].1 <= w[1].0, "objects overlap: {w:x?}");
        }
    }

    /// What the kernel could still make objects from, for untypeds the pool
    /// uses: a leaf untyped (a chunk) with no children left is whole again.
    fn available(&self, pool_untypeds: &[u64]) -> u64 {
        pool_untypeds
            .iter()
            .filter_map(|s| self.caps.get(s).map(|c| (s, c)))
            .map(|(s, c)| {
                let kids = self.children(*s);
                let free = if kids.is_empty() { 0 } else { c.free };
                (1u64 << c.size_bits) - free
            })
            .sum()
    }
}

impl Retype for Kernel {
    type Error = SeL4Error;

    fn retype_untyped(&mut self, parent: u64, size_bits: u8, dest: u64) -> Result<(), SeL4Error> {
        self.retype(parent, size_bits, dest, true)
    }

    fn revoke(&mut self, cptr: u64) -> Result<(), SeL4Error> {
        self.calls += 1;
        if !self.caps.contains_key(&cptr) {
            return Err(SeL4Error::InvalidCapability);
        }
        for c in self.children(cptr) {
            self.delete(c);
        }
        Ok(())
    }
}

const MIB: u64 = 1 << 20;
const SLOTS: std::ops::Range<u64> = 1000..1100;
type TestPool = Pool<128, 8>;

/// A board's worth of untypeds in miniature: an 8 MiB one, a 4 MiB one and
/// small ones of odd sizes, as seL4's boot splits memory around the kernel.
fn boot() -> (Kernel, TestPool) {
    let (k, list) =
        Kernel::boot(&[(10, 0x4080_0000, 23), (11, 0x4040_0000, 22), (12, 0x4001_0000, 16), (13, 0x4000_1000, 12)]);
    let pool = TestPool::new::<SeL4Error>(list, SLOTS).unwrap();
    (k, pool)
}

/// Where the objects' slots start, clear of the untypeds' and the chunks'.
const OBJECTS: u64 = 1 << 20;

/// Makes one object as the root task does: reserve, retype, commit; `n`
/// names its slot.
fn make(pool: &mut TestPool, k: &mut Kernel, size_bits: u8, n: u64) -> Result<Made, PoolError<SeL4Error>> {
    let lease: Lease = pool.reserve(size_bits, k)?;
    k.retype(lease.untyped(), size_bits, OBJECTS + n, false).map_err(PoolError::Kernel)?;
    Ok(pool.commit(lease))
}

/// Deletes the object `make` put in slot `n`.
fn delete(k: &mut Kernel, n: u64) {
    k.delete(OBJECTS + n);
}

/// Every untyped the pool may make objects from: the small boot ones and
/// every chunk cut so far (slots from SLOTS), but not the cut sources.
fn pool_untypeds(k: &Kernel) -> Vec<u64> {
    let mut v = vec![12, 13];
    v.extend(k.caps.iter().filter(|(s, c)| c.untyped && SLOTS.contains(s)).map(|(&s, _)| s));
    v
}

fn kernel_available(k: &Kernel) -> u64 {
    // Sources: what is not yet cut into chunks.
    let sources: u64 = [10u64, 11].iter().map(|s| (1u64 << k.caps[s].size_bits) - k.caps[s].free).sum();
    sources + k.available(&pool_untypeds(k))
}

#[test]
fn a_new_pool_holds_all_its_untypeds_and_nothing_is_made() {
    let (k, pool) = boot();
    let total = 8 * MIB + 4 * MIB + (1 << 16) + (1 << 12);
    assert_eq!(pool.usage(), Usage { total, available: total, live: 0 });
    assert_eq!(kernel_available(&k), total);
    assert_eq!(pool.free_slots(), 100);
}

#[test]
fn objects_of_each_size_come_from_disjoint_memory_and_are_counted() {
    let (mut k, mut pool) = boot();
    let mut live = 0;
    for (n, bits) in (1..).zip([12u8, 13, 11, 12, 4, 6, 13, 12, 21]) {
        make(&mut pool, &mut k, bits, n).unwrap();
        live += 1u64 << bits;
        k.assert_disjoint();
        assert_eq!(pool.usage().live, live);
        assert_eq!(pool.usage().available, kernel_available(&k));
    }
}

#[test]
fn small_objects_use_the_small_untypeds_before_cutting_a_chunk() {
    let (mut k, mut pool) = boot();
    // The 4 KiB boot untyped is the smallest chunk that fits a frame.
    let made = make(&mut pool, &mut k, 12, 1).unwrap();
    assert_eq!(k.caps[&(OBJECTS + 1)].parent, Some(13));
    assert_eq!(pool.free_slots(), 100, "no chunk was cut");
    pool.release(made, &mut k).unwrap();
}

#[test]
fn releasing_every_object_makes_all_memory_available_again() {
    let (mut k, mut pool) = boot();
    let before = pool.usage();
    let mut made = Vec::new();
    for i in 0..600u64 {
        let bits = [12u8, 13, 11, 6][(i % 4) as usize];
        made.push((i + 1, make(&mut pool, &mut k, bits, i + 1).unwrap()));
    }
    k.assert_disjoint();
    for (slot, m) in made {
        delete(&mut k, slot);
        pool.release(m, &mut k).unwrap();
    }
    assert_eq!(pool.usage(), before);
    assert_eq!(kernel_available(&k), before.available);
}

#[test]
fn a_thousand_cycles_leak_nothing() {
    let (mut k, mut pool) = boot();
    // The first cycle cuts the chunks it needs; every later one finds them.
    let cycle = |pool: &mut TestPool, k: &mut Kernel| {
        let mut made = Vec::new();
        for (i, bits) in [13u8, 12, 12, 12, 11, 12].into_iter().enumerate() {
            made.push((i as u64 + 1, make(pool, k, bits, i as u64 + 1).unwrap()));
        }
        for _ in 0..64 {
            let slot = 100 + made.len() as u64;
            made.push((slot, make(pool, k, 12, slot).unwrap()));
        }
        for (slot, m) in made.into_iter().rev() {
            delete(k, slot);
            pool.release(m, k).unwrap();
        }
    };
    let before = (pool.usage(), pool.free_slots());
    for _ in 0..1000 {
        cycle(&mut pool, &mut k);
    }
    let after = (pool.usage(), pool.free_slots());
    assert_eq!(after.0, before.0);
    assert_eq!(after.0.available, kernel_available(&k));
    assert!(after.1 < before.1, "the first cycle cut chunks, kept for the next ones");
    let slots_after_first = after.1;
    cycle(&mut pool, &mut k);
    assert_eq!(pool.free_slots(), slots_after_first, "later cycles cut none");
}

#[test]
fn lasting_objects_keep_no_released_memory_from_coming_back() {
    let (mut k, mut pool) = boot();
    // Made at start and never released, of the same size as what cycles.
    for n in 0..20 {
        let lease = pool.reserve_lasting(12, &mut k).unwrap();
        k.retype(lease.untyped(), 12, OBJECTS + 10_000 + n, false).unwrap();
        let _ = pool.commit(lease);
    }
    let before = pool.usage();
    for _ in 0..50 {
        let made: Vec<_> = (0..40).map(|n| (n, make(&mut pool, &mut k, 12, n).unwrap())).collect();
        for (n, m) in made {
            delete(&mut k, n);
            pool.release(m, &mut k).unwrap();
        }
    }
    assert_eq!(pool.usage(), before);
    assert_eq!(before.live, 20 << 12);
    assert_eq!(kernel_available(&k), before.available);
    k.assert_disjoint();
}

#[test]
fn a_chunk_with_a_live_object_keeps_its_released_neighbours_until_it_empties() {
    let (mut k, mut pool) = boot();
    let a = make(&mut pool, &mut k, 13, 1).unwrap();
    let b = make(&mut pool, &mut k, 13, 2).unwrap();
    let full = pool.usage().available;
    delete(&mut k, 1);
    pool.release(a, &mut k).unwrap();
    let u = pool.usage();
    assert_eq!((u.available, u.live), (full, 1 << 13), "the first object's memory waits for its chunk");
    assert_eq!(u.total - u.available - u.live, 1 << 13);
    assert_eq!(u.available, kernel_available(&k));
    delete(&mut k, 2);
    pool.release(b, &mut k).unwrap();
    assert_eq!(pool.usage().available, pool.usage().total);
}

#[test]
fn running_out_is_no_memory_and_changes_nothing() {
    let (mut k, list) = Kernel::boot(&[(10, 0x4000_0000, 22)]);
    let mut pool = TestPool::new::<SeL4Error>(list, SLOTS).unwrap();
    for i in 0..1024 {
        make(&mut pool, &mut k, 12, i + 1).unwrap();
    }
    let (usage, slots, calls) = (pool.usage(), pool.free_slots(), k.calls);
    assert_eq!(usage.available, 0);
    assert_eq!(make(&mut pool, &mut k, 12, 5000), Err(PoolError::NoMemory));
    assert_eq!(make(&mut pool, &mut k, 4, 5000), Err(PoolError::NoMemory));
    assert_eq!((pool.usage(), pool.free_slots(), k.calls), (usage, slots, calls));
}

#[test]
fn no_slot_for_another_chunk_is_its_own_error_and_changes_nothing() {
    let (mut k, list) = Kernel::boot(&[(10, 0x4000_0000, 23)]);
    let mut pool = TestPool::new::<SeL4Error>(list, 1000..1001).unwrap();
    for i in 0..512 {
        make(&mut pool, &mut k, 12, i + 1).unwrap();
    }
    let (usage, calls) = (pool.usage(), k.calls);
    assert_eq!(make(&mut pool, &mut k, 12, 5000), Err(PoolError::NoChunkSlot));
    assert_eq!((pool.usage(), pool.free_slots(), k.calls), (usage, 0, calls));
}

#[test]
fn sizes_outside_what_a_chunk_holds_are_refused() {
    let (mut k, mut pool) = boot();
    let before = pool.usage();
    assert_eq!(pool.reserve(3, &mut k), Err(PoolError::BadSize));
    assert_eq!(pool.reserve(CHUNK_BITS + 1, &mut k), Err(PoolError::BadSize));
    assert_eq!((pool.usage(), k.calls), (before, 0));
}

#[test]
fn a_lease_never_committed_leaves_the_usage_as_it_was() {
    let (mut k, mut pool) = boot();
    make(&mut pool, &mut k, 12, 1).unwrap(); // fills the 4 KiB untyped
    let before = pool.usage();
    // This reservation cuts a chunk; the object's retype then fails.
    let lease = pool.reserve_lasting(12, &mut k).unwrap();
    k.fail_in = 1;
    assert!(k.retype(lease.untyped(), 12, OBJECTS + 2, false).is_err());
    assert_eq!(pool.usage(), before);
    assert_eq!(kernel_available(&k), before.available);
}

#[test]
fn a_refused_cut_is_the_kernel_s_error_and_changes_nothing() {
    let (mut k, mut pool) = boot();
    make(&mut pool, &mut k, 16, 1).unwrap(); // the 64 KiB untyped
    make(&mut pool, &mut k, 12, 2).unwrap(); // the 4 KiB one
    let (usage, slots) = (pool.usage(), pool.free_slots());
    k.fail_in = 1;
    assert_eq!(pool.reserve(12, &mut k), Err(PoolError::Kernel(SeL4Error::InvalidCapability)));
    assert_eq!((pool.usage(), pool.free_slots()), (usage, slots));
    // The same request succeeds once the kernel does.
    make(&mut pool, &mut k, 12, 3).unwrap();
}

#[test]
fn a_refused_revoke_keeps_the_chunk_unavailable_and_says_why() {
    let (mut k, mut pool) = boot();
    let m = make(&mut pool, &mut k, 12, 1).unwrap();
    delete(&mut k, 1);
    let before = pool.usage();
    k.fail_in = 0;
    // Make the revoke fail: remove the chunk's capability from the kernel.
    let chunk = 13;
    let saved = k.caps.remove(&chunk).unwrap();
    assert_eq!(pool.release(m, &mut k), Err(PoolError::Kernel(SeL4Error::InvalidCapability)));
    k.caps.insert(chunk, saved);
    let after = pool.usage();
    assert_eq!((after.available, after.live), (before.available, 0));
}

#[test]
fn too_many_untypeds_are_refused_at_start() {
    let list: Vec<Untyped> = (0..9).map(|i| Untyped { cptr: i, size_bits: 22 }).collect();
    assert_eq!(TestPool::new::<SeL4Error>(list, SLOTS).unwrap_err(), PoolError::TooManyUntypeds);
    let list = [Untyped { cptr: 1, size_bits: 64 }];
    assert_eq!(TestPool::new::<SeL4Error>(list, SLOTS).unwrap_err(), PoolError::TooLarge);
    let small: Vec<Untyped> = (0..129).map(|i| Untyped { cptr: i, size_bits: 12 }).collect();
    assert_eq!(TestPool::new::<SeL4Error>(small, SLOTS).unwrap_err(), PoolError::TooManyUntypeds);
}

/// Random makes and releases of every size: the kernel never refuses a
/// retype the pool planned, objects never overlap, and the pool's count of
/// available memory is the kernel's.
#[test]
fn random_makes_and_releases_agree_with_the_kernel() {
    for seed in 1..=20u64 {
        let (mut k, mut pool) = boot();
        let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut live: Vec<(u64, Made)> = Vec::new();
        let mut dest = 1;
        for step in 0..3000 {
            if live.is_empty() || next() % 3 != 0 {
                let bits = [4u8, 6, 11, 12, 12, 12, 13, 16][(next() % 8) as usize];
                match make(&mut pool, &mut k, bits, dest) {
                    Ok(m) => live.push((dest, m)),
                    Err(PoolError::NoMemory) => {}
                    Err(e) => panic!("seed {seed}: {e:?}"),
                }
                dest += 1;
            } else {
                let i = (next() as usize) % live.len();
                let (slot, m) = live.swap_remove(i);
                delete(&mut k, slot);
                pool.release(m, &mut k).unwrap();
            }
            if step % 16 == 0 {
                k.assert_disjoint();
                assert_eq!(pool.usage().available, kernel_available(&k), "seed {seed}");
            }
        }
        for (slot, m) in live {
            delete(&mut k, slot);
            pool.release(m, &mut k).unwrap();
        }
        assert_eq!(pool.usage().available, pool.usage().total, "seed {seed}");
    }
}
