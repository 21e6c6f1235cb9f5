//! Untyped memory for the VMM as seL4's root task.
//!
//! A root task starts with the boot information's list of untyped
//! capabilities and makes every object from them. seL4 hands out an
//! untyped's memory with a watermark that only moves forward (each object
//! aligned to its own size), and takes it back all at once: when no object
//! made from an untyped is left (`seL4_CNode_Revoke` on it deletes any that
//! are), its next retype starts again from its beginning. So memory comes
//! back untyped by untyped, never object by object. The pool keeps that
//! exact and cheap:
//!
//! - each untyped of the boot information larger than a chunk ([`CHUNK_BITS`],
//!   2 MiB) is cut into chunks as they are needed; a smaller one is a chunk as
//!   it is;
//! - a chunk serves one object size at a time (its class), so its watermark
//!   moves in steps of that size and no memory is lost to alignment;
//! - the objects made from each chunk are counted; when the last one is
//!   released, the chunk is revoked and can serve any size again;
//! - objects that are never released (the VMM's own, made at start) come
//!   from chunks of their own ([`Pool::reserve_lasting`]), so that they
//!   never keep a chunk of released objects from emptying.
//!
//! A request therefore never fails for lack of memory while a chunk of its
//! size has room, an empty chunk is large enough, or a boot untyped can
//! still be cut. Memory of released objects whose chunk still holds others
//! stays unavailable until that chunk empties ([`Usage`] counts it).
//!
//! The pool makes its seL4 calls through [`Retype`], so it is tested on the
//! host against a model of seL4's untyped rules (`tests/`). `no_std`, no
//! allocator, no panics: fixed tables and bounded scans.

#![no_std]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use core::ops::Range;

/// log2 of a chunk's size: 2 MiB, a large page, so that chunks cut from a
/// boot untyped (which seL4 aligns to its own size) leave no gaps.
pub const CHUNK_BITS: u8 = 21;

/// The smallest object seL4 makes (`seL4_MinUntypedBits`).
pub const MIN_OBJECT_BITS: u8 = 4;

/// An untyped capability of the boot information (device untypeds excluded:
/// the VMM makes no kernel object from device memory).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Untyped {
    /// Its slot in the root CNode.
    pub cptr: u64,
    /// log2 of its size in bytes.
    pub size_bits: u8,
}

/// The two seL4 invocations the pool makes.
pub trait Retype {
    /// The kernel's error.
    type Error;

    /// `seL4_Untyped_Retype` of one untyped object of `2^size_bits` bytes
    /// from the untyped `parent` into the empty root-CNode slot `dest`.
    fn retype_untyped(&mut self, parent: u64, size_bits: u8, dest: u64) -> Result<(), Self::Error>;

    /// `seL4_CNode_Revoke` of the untyped `cptr`: deletes whatever objects
    /// made from it are left, so that its next retype starts from its
    /// beginning.
    fn revoke(&mut self, cptr: u64) -> Result<(), Self::Error>;
}

/// Why the pool refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolError<E> {
    /// More untypeds than the pool has room for (at start).
    TooManyUntypeds,
    /// An untyped of the boot information is larger than 2^63 bytes.
    TooLarge,
    /// No object of the size can be made: every chunk that could serve it
    /// is full and no boot untyped is left to cut.
    NoMemory,
    /// Memory is left, but no slot for another chunk's capability, or no
    /// room in the chunk table.
    NoChunkSlot,
    /// The size is smaller than seL4's smallest object or larger than a
    /// chunk.
    BadSize,
    /// The kernel refused an invocation.
    Kernel(E),
}

/// What the pool holds, in bytes. `total - available - live` is memory of
/// released objects that waits for its chunk to empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Usage {
    /// All untyped memory the pool was given.
    pub total: u64,
    /// What new objects can still be made from.
    pub available: u64,
    /// The objects made and not released.
    pub live: u64,
}

/// Room reserved for one object: the untyped to retype it from. Pass it to
/// [`Pool::commit`] once the retype succeeded; dropping it changes nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct Lease {
    chunk: u16,
    size_bits: u8,
    lasting: bool,
    untyped: u64,
}

impl Lease {
    /// The untyped capability to make the object from.
    pub fn untyped(self) -> u64 {
        self.untyped
    }
}

/// An object made from the pool: what [`Pool::release`] takes back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Made {
    chunk: u16,
}

/// A boot untyped larger than a chunk, cut from its start.
#[derive(Clone, Copy, Debug)]
struct Source {
    cptr: u64,
    size: u64,
    cut: u64,
}

/// A chunk: an untyped serving one object size while it holds objects.
#[derive(Clone, Copy, Debug)]
struct Chunk {
    cptr: u64,
    size: u64,
    /// The object size it serves while `live > 0` or its watermark is not 0.
    class: u8,
    /// Where seL4's next object of `class` goes.
    watermark: u64,
    live: u32,
    /// It serves objects that are never released.
    lasting: bool,
}

impl Chunk {
    fn is_empty(&self) -> bool {
        self.live == 0 && self.watermark == 0
    }

    fn has_room(&self, size_bits: u8, size: u64, lasting: bool) -> bool {
        !self.is_empty()
            && self.class == size_bits
            && self.lasting == lasting
            && self.watermark.saturating_add(size) <= self.size
    }
}

/// The untyped memory of a root task: up to `S` boot untypeds larger than
/// a chunk and up to `N` chunks.
#[derive(Debug)]
pub struct Pool<const N: usize, const S: usize> {
    sources: heapless::Vec<Source, S>,
    chunks: heapless::Vec<Chunk, N>,
    /// Empty root-CNode slots for the chunks cut from sources.
    slots: Range<u64>,
    total: u64,
}

impl<const N: usize, const S: usize> Pool<N, S> {
    /// A pool of `untypeds` (the boot information's, device ones left out),
    /// with the empty root-CNode slots `slots` for the chunks it cuts.
    pub fn new<E>(untypeds: impl IntoIterator<Item = Untyped>, slots: Range<u64>) -> Result<Self, PoolError<E>> {
        let mut pool = Pool { sources: heapless::Vec::new(), chunks: heapless::Vec::new(), slots, total: 0 };
        for u in untypeds {
            let size =
                1u64.checked_shl(u32::from(u.size_bits)).filter(|_| u.size_bits < 64).ok_or(PoolError::TooLarge)?;
            if u.size_bits > CHUNK_BITS {
                pool.sources.push(Source { cptr: u.cptr, size, cut: 0 }).map_err(|_| PoolError::TooManyUntypeds)?;
            } else {
                pool.chunks
                    .push(Chunk { cptr: u.cptr, size, class: 0, watermark: 0, live: 0, lasting: false })
                    .map_err(|_| PoolError::TooManyUntypeds)?;
            }
            pool.total = pool.total.saturating_add(size);
        }
        Ok(pool)
    }

    /// Finds room for one object of `2^size_bits` bytes, cutting a new chunk
    /// from a boot untyped if no chunk has room. Cutting changes what is
    /// available by nothing, so a lease that is never committed leaves the
    /// pool's [`Usage`] as it was.
    pub fn reserve<K: Retype>(&mut self, size_bits: u8, kernel: &mut K) -> Result<Lease, PoolError<K::Error>> {
        self.reserve_for(size_bits, false, kernel)
    }

    /// As [`Pool::reserve`], for an object that will never be released:
    /// it comes from a chunk that holds only such objects.
    pub fn reserve_lasting<K: Retype>(&mut self, size_bits: u8, kernel: &mut K) -> Result<Lease, PoolError<K::Error>> {
        self.reserve_for(size_bits, true, kernel)
    }

    fn reserve_for<K: Retype>(
        &mut self,
        size_bits: u8,
        lasting: bool,
        kernel: &mut K,
    ) -> Result<Lease, PoolError<K::Error>> {
        if !(MIN_OBJECT_BITS..=CHUNK_BITS).contains(&size_bits) {
            return Err(PoolError::BadSize);
        }
        let size = 1u64 << size_bits;
        let lease = |i: usize, c: &Chunk| {
            let chunk = u16::try_from(i).map_err(|_| PoolError::NoChunkSlot)?;
            Ok(Lease { chunk, size_bits, lasting, untyped: c.cptr })
        };
        // A chunk already serving this size first, then the smallest empty
        // chunk that is large enough, so that large ones stay whole.
        if let Some((i, c)) = self.chunks.iter().enumerate().find(|(_, c)| c.has_room(size_bits, size, lasting)) {
            return lease(i, c);
        }
        let empty =
            self.chunks.iter().enumerate().filter(|(_, c)| c.is_empty() && c.size >= size).min_by_key(|(_, c)| c.size);
        if let Some((i, c)) = empty {
            return lease(i, c);
        }
        let i = self.cut(kernel)?;
        let c = self.chunks.get(i).ok_or(PoolError::NoMemory)?;
        lease(i, c)
    }

    /// Records the object made with `lease`: call it once the retype from
    /// `lease.untyped()` succeeded, and only then.
    pub fn commit(&mut self, lease: Lease) -> Made {
        if let Some(c) = self.chunks.get_mut(usize::from(lease.chunk)) {
            let size = 1u64 << lease.size_bits;
            c.class = lease.size_bits;
            c.lasting = lease.lasting;
            c.watermark = c.watermark.saturating_add(size);
            c.live = c.live.saturating_add(1);
        }
        Made { chunk: lease.chunk }
    }

    /// Takes back an object once its capability (and every copy) is
    /// deleted. When it was its chunk's last, the chunk is revoked and
    /// serves any size again. If the revoke fails the chunk keeps its
    /// watermark (its memory stays unavailable) and the error says why.
    pub fn release<K: Retype>(&mut self, made: Made, kernel: &mut K) -> Result<(), PoolError<K::Error>> {
        let Some(c) = self.chunks.get_mut(usize::from(made.chunk)) else {
            return Ok(());
        };
        c.live = c.live.saturating_sub(1);
        if c.live == 0 {
            kernel.revoke(c.cptr).map_err(PoolError::Kernel)?;
            c.watermark = 0;
        }
        Ok(())
    }

    /// What the pool holds.
    pub fn usage(&self) -> Usage {
        let mut u = Usage { total: self.total, ..Usage::default() };
        for s in &self.sources {
            u.available = u.available.saturating_add(s.size.saturating_sub(s.cut));
        }
        for c in &self.chunks {
            u.available = u.available.saturating_add(c.size.saturating_sub(c.watermark));
            u.live = u.live.saturating_add(u64::from(c.live) << c.class);
        }
        u
    }

    /// How many root-CNode slots for chunks are left.
    pub fn free_slots(&self) -> u64 {
        self.slots.end.saturating_sub(self.slots.start)
    }

    /// Cuts one chunk from the first boot untyped with room left; returns
    /// its index.
    fn cut<K: Retype>(&mut self, kernel: &mut K) -> Result<usize, PoolError<K::Error>> {
        let chunk = 1u64 << CHUNK_BITS;
        let Some(s) = self.sources.iter_mut().find(|s| s.size.saturating_sub(s.cut) >= chunk) else {
            return Err(PoolError::NoMemory);
        };
        // A lease names its chunk in 16 bits.
        if self.slots.is_empty() || self.chunks.is_full() || self.chunks.len() > usize::from(u16::MAX) {
            return Err(PoolError::NoChunkSlot);
        }
        let dest = self.slots.start;
        kernel.retype_untyped(s.cptr, CHUNK_BITS, dest).map_err(PoolError::Kernel)?;
        s.cut = s.cut.saturating_add(chunk);
        self.slots.start = self.slots.start.saturating_add(1);
        let i = self.chunks.len();
        self.chunks
            .push(Chunk { cptr: dest, size: chunk, class: 0, watermark: 0, live: 0, lasting: false })
            .map_err(|_| PoolError::NoChunkSlot)?;
        Ok(i)
    }
}

#[cfg(kani)]
mod proofs {
    use super::*;

    /// A kernel whose calls all succeed, or all fail, as the proof says.
    struct Kernel {
        fail: bool,
    }

    impl Retype for Kernel {
        type Error = ();

        fn retype_untyped(&mut self, _: u64, _: u8, _: u64) -> Result<(), ()> {
            if self.fail {
                Err(())
            } else {
                Ok(())
            }
        }

        fn revoke(&mut self, _: u64) -> Result<(), ()> {
            if self.fail {
                Err(())
            } else {
                Ok(())
            }
        }
    }

    /// Whatever objects are reserved, made or not, and whatever the kernel
    /// answers: a refused reserve changes nothing, a commit adds exactly
    /// its object to what is live, the pool never counts more than it was
    /// given, and releasing every object makes all of it available again.
    #[kani::proof]
    #[kani::unwind(6)]
    fn every_byte_is_available_live_or_waiting_and_all_comes_back() {
        // A boot untyped of two chunks, and one smaller than a chunk.
        let list = [Untyped { cptr: 1, size_bits: CHUNK_BITS + 1 }, Untyped { cptr: 2, size_bits: 13 }];
        let Ok(mut pool) = Pool::<4, 2>::new::<()>(list, 100..102) else {
            panic!("the pool refused its untypeds");
        };
        let total = pool.usage().total;
        assert!(pool.usage() == Usage { total, available: total, live: 0 });
        let mut k = Kernel { fail: false };
        let mut made: [Option<Made>; 3] = [None; 3];
        for m in made.iter_mut() {
            k.fail = kani::any();
            let bits: u8 = kani::any();
            let before = pool.usage();
            match pool.reserve(bits, &mut k) {
                Ok(lease) => {
                    assert!((MIN_OBJECT_BITS..=CHUNK_BITS).contains(&bits));
                    if kani::any() {
                        *m = Some(pool.commit(lease));
                        assert!(pool.usage().live == before.live + (1u64 << bits));
                        assert!(pool.usage().available == before.available - (1u64 << bits));
                    } else {
                        assert!(pool.usage() == before);
                    }
                }
                Err(_) => assert!(pool.usage() == before),
            }
            let u = pool.usage();
            assert!(u.total == total && u.available + u.live <= u.total);
        }
        k.fail = false;
        for m in made.iter().flatten() {
            assert!(pool.release(*m, &mut k).is_ok());
        }
        assert!(pool.usage() == Usage { total, available: total, live: 0 });
    }
}
