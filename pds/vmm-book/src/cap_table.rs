//! The core's CSpace as the backend keeps it: for each core slot, the
//! Microkit object or the virtual frame or page table it names, with the
//! derivation links and stage-2 mappings seL4 would keep.
//!
//! The core's slots are names only (a Microkit PD has no CNode to give it),
//! so this table stands in for one: `TABLE_SLOTS` entries indexed from the
//! base of the range the core is configured with. Every operation is a
//! bounded scan or an index; nothing allocates and nothing panics.

use vmm::caps::{Rights, Slot};

use crate::packed_cap::Packed;
use crate::static_map::Frame;

/// Slots in the core's CSpace (and so in this table): a VM's own run (its
/// VSpace, vCPUs and the few page tables its manifest's layout needs), a
/// mapping and a pin slot per page of guest memory, and its guest_memfd
/// frames, with room to spare.
pub const TABLE_SLOTS: usize = 2048;

/// Words of a bitmap over the table.
const MARK_WORDS: usize = TABLE_SLOTS / 64;

/// What a core slot names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Object {
    /// The VM's stage-2 address space (Microkit's; one per VMM PD).
    VSpace,
    /// The TCB of the Microkit vCPU with this id.
    Tcb(u16),
    /// The vCPU object of the Microkit vCPU with this id.
    VCpu(u16),
    /// A frame of the static layout.
    Frame(Frame),
    /// A page table (virtual: Microkit built the VM's tables).
    PageTable,
}

/// Where a capability was derived from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parent {
    /// Nothing: an original (a retyped object).
    Root,
    /// A RAM frame capability the core was configured with (outside the
    /// table; the backend's stand-in for Microkit's own).
    RamOriginal,
    /// The capability at this table index.
    Index(u16),
}

/// One capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cap {
    /// What it names.
    pub object: Object,
    /// Its rights (frames).
    pub rights: Rights,
    /// Frames: the guest-physical page it maps, if any; page tables: the
    /// page of the address it was installed for.
    pub mapped: Option<u32>,
    /// Its parent in the derivation tree.
    pub parent: Parent,
}

impl Cap {
    /// A new original capability to `object`, unmapped.
    pub const fn original(object: Object) -> Cap {
        Cap { object, rights: Rights::READ_WRITE, mapped: None, parent: Parent::Root }
    }
}

/// The table.
pub struct CapTable {
    base: Slot,
    caps: [Option<Packed>; TABLE_SLOTS],
}

impl CapTable {
    /// An empty table for the core slots `base..base + TABLE_SLOTS`.
    pub const fn new(base: Slot) -> CapTable {
        CapTable { base, caps: [None; TABLE_SLOTS] }
    }

    /// Empties the table in place (a new one would be built on the stack).
    pub fn clear(&mut self) {
        self.caps.iter_mut().for_each(|c| *c = None);
    }

    /// The table index of core slot `slot`, if the table holds it.
    pub fn index(&self, slot: Slot) -> Option<u16> {
        let i = slot.0.checked_sub(self.base.0)?;
        if i < TABLE_SLOTS as u64 {
            u16::try_from(i).ok()
        } else {
            None
        }
    }

    /// The core slot at table index `i`.
    pub fn slot(&self, i: u16) -> Slot {
        Slot(self.base.0 + u64::from(i))
    }

    /// The capability at index `i`.
    pub fn get(&self, i: u16) -> Option<Cap> {
        self.caps.get(usize::from(i)).copied().flatten().map(Packed::unpack)
    }

    /// Records the capability at index `i` as mapped at `page`, or
    /// unmapped; false if there is none.
    pub fn set_mapped(&mut self, i: u16, page: Option<u32>) -> bool {
        self.caps.get_mut(usize::from(i)).and_then(Option::as_mut).is_some_and(|c| c.set_mapped(page))
    }

    /// Puts `cap` at the empty index `i`; false if `i` is taken or outside,
    /// or `cap` is not one the table can hold.
    pub fn put(&mut self, i: u16, cap: Cap) -> bool {
        match (self.caps.get_mut(usize::from(i)), Packed::pack(cap)) {
            (Some(e @ None), Some(p)) => {
                *e = Some(p);
                true
            }
            _ => false,
        }
    }

    /// Empties index `i`; its children now hang from its parent, as in
    /// seL4's derivation tree.
    pub fn remove(&mut self, i: u16) -> Option<Cap> {
        let cap = self.caps.get_mut(usize::from(i))?.take()?;
        self.reparent(Parent::Index(i), cap.parent());
        Some(cap.unpack())
    }

    /// Moves the capability at `from` to the empty index `to`, with its
    /// mapping and its children.
    pub fn relocate(&mut self, from: u16, to: u16) -> bool {
        let Some(cap) = self.get(from) else { return false };
        if !self.put(to, cap) {
            return false;
        }
        if let Some(e) = self.caps.get_mut(usize::from(from)) {
            *e = None;
        }
        self.reparent(Parent::Index(from), Parent::Index(to));
        true
    }

    fn reparent(&mut self, from: Parent, to: Parent) {
        for c in self.caps.iter_mut().flatten() {
            if c.parent() == from {
                // Cannot fail: `to` is a parent some entry held.
                let _ = c.set_parent(to);
            }
        }
    }

    /// Every capability with its index.
    pub fn iter(&self) -> impl Iterator<Item = (u16, Cap)> + '_ {
        self.caps.iter().enumerate().filter_map(|(i, c)| Some((u16::try_from(i).ok()?, c.as_ref()?.unpack())))
    }

    /// The index of the first capability to `object`.
    pub fn find(&self, object: Object) -> Option<u16> {
        self.iter().find(|(_, c)| c.object == object).map(|(i, _)| i)
    }

    /// True if some frame capability maps guest page `page`.
    pub fn page_mapped(&self, page: u32) -> bool {
        self.iter().any(|(_, c)| matches!(c.object, Object::Frame(_)) && c.mapped == Some(page))
    }

    /// Forgets every frame mapping (the VSpace they were in is gone).
    pub fn unmap_all(&mut self) {
        for c in self.caps.iter_mut().flatten() {
            if c.is_mappable() {
                c.set_mapped(None);
            }
        }
    }

    /// Deletes every capability derived, directly or not, from `root`,
    /// keeping `root` itself.
    pub fn revoke(&mut self, root: Root) {
        let mut marked = [0u64; MARK_WORDS];
        let is_marked =
            |m: &[u64; MARK_WORDS], i: u16| m.get(usize::from(i) / 64).is_some_and(|w| w & (1 << (i % 64)) != 0);
        // Mark children, then their children, until nothing changes: the
        // derivation depth is small (the core copies only originals), and
        // each pass is one scan.
        loop {
            let mut changed = false;
            for (i, c) in self.iter() {
                if is_marked(&marked, i) {
                    continue;
                }
                let child = match (c.parent, root) {
                    (Parent::Index(p), Root::Index(r)) if p == r => true,
                    (Parent::Index(p), _) => is_marked(&marked, p),
                    (Parent::RamOriginal, Root::RamOriginal(f)) => c.object == Object::Frame(f),
                    _ => false,
                };
                if child {
                    if let Some(w) = marked.get_mut(usize::from(i) / 64) {
                        *w |= 1 << (i % 64);
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }
        for (w, bits) in marked.iter().enumerate() {
            for b in 0..64 {
                if bits & (1 << b) != 0 {
                    if let Some(e) = self.caps.get_mut(w * 64 + b) {
                        *e = None;
                    }
                }
            }
        }
    }
}

/// The root of a revocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Root {
    /// The capability at a table index.
    Index(u16),
    /// The RAM original of a frame.
    RamOriginal(Frame),
}
