//! Memslots: the guest-physical memory map of a VM, with
//! KVM_SET_USER_MEMORY_REGION2 semantics (section 3 of the rules).
//!
//! This module holds the table and the pure validation of a request; the
//! effects (mappings, bindings, capability slots) are applied by the VMM,
//! which first asks [`classify`] what a request would do. Checks run in the
//! order section 3 of the rules gives, so the same bad request always gets
//! the same errno.
//!
//! The table is kept sorted by guest-physical address and slots never
//! overlap, so the slot containing an address is found by binary search
//! (O(log n)).
//!
//! Choices left open by the rules:
//! - toggling GUEST_MEMFD on an existing slot is EINVAL: a slot is bound to
//!   its file only when it is created;
//! - a move may change flags other than READONLY at the same time, as KVM's
//!   KVM_MR_MOVE does;
//! - a delete (size 0) skips the guest-RAM check of `userspace_addr`, as
//!   `access_ok(addr, 0)` does in KVM.
//!
//! SET_USER_MEMORY_REGION2 and stage-2 faults in memslots (sections 3 and
//! 6.1).
//!
//! Memslots are mapped lazily: creating one reserves a slot per page for
//! the capability that will map it, and the first guest access to a page
//! copies the backing frame's capability there (with the slot's rights) and
//! maps it. Moving a slot, changing its flags or deleting it deletes those
//! copies, which unmaps them, so the next access maps again under the new
//! rules.

use heapless::Vec;

use crate::addr::Gpa;
use crate::caps::{FrameCap, Rights, Slot, SlotRange};
use crate::config::{RamRegion, VmmConfig};
use crate::error::Error;
use crate::kernel::{During, Invocation, Kernel, KernelError, Refused};
use crate::platform::Platform;
use crate::registry::Caller;
use crate::vm::guest_memfd::GmemError;
use crate::vm::sorted::insert_at;
use crate::Vmm;
use vmm_abi::limits::{page_aligned, GUEST_PHYS_LIMIT, MAX_MEMSLOTS, PAGE_SIZE};
use vmm_abi::memslot::{MemoryRegion, GUEST_MEMFD, LOG_DIRTY_PAGES, READONLY};
use vmm_abi::{GmemHandle, MemslotId, VmId};

/// Every flag this VMM knows.
pub(crate) const KNOWN_FLAGS: u32 = LOG_DIRTY_PAGES | READONLY | GUEST_MEMFD;

/// Whether a slot is locked, how, and the run of slots holding its pins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SlotLock {
    /// Locked READ|WRITE (stage-2 read-write) rather than READ only.
    pub(crate) write: bool,
    /// One pinning frame capability per page.
    pub(crate) pins: SlotRange,
}

impl SlotLock {
    /// One pinning frame capability per page.
    pub fn pins(&self) -> SlotRange {
        self.pins
    }
}

/// What backs a memslot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backing {
    /// VMM-mapped guest RAM: page `i` is the frame in slot `frames + i`.
    Ram {
        /// Frame capability of the slot's first page.
        frames: Slot,
    },
    /// A guest_memfd file range; `file` is `None` once the file is closed.
    Gmem {
        /// The file's handle while it is open.
        file: Option<GmemHandle>,
        /// Byte offset of the slot's first page in the file.
        offset: u64,
    },
}

/// One memslot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Memslot {
    /// Slot id (address space 0).
    pub(crate) id: MemslotId,
    /// Its flags.
    pub(crate) flags: u32,
    /// Guest-physical base.
    pub(crate) gpa: Gpa,
    /// Size in bytes, a non-zero multiple of the page size.
    pub(crate) size: u64,
    /// VMM address of the backing (0 for a guest_memfd slot that gave none).
    pub(crate) uaddr: u64,
    /// What backs it.
    pub(crate) backing: Backing,
    /// One slot per page for the capability that maps it at stage 2.
    pub(crate) map_caps: SlotRange,
    /// Set while the slot is locked.
    pub(crate) lock: Option<SlotLock>,
}

impl Memslot {
    /// The unlocked slot that `req` creates, backed by `backing` and mapped
    /// through the capabilities in `map_caps`. The table it goes into checks
    /// that it overlaps no other.
    pub fn new(req: &MemoryRegion, backing: Backing, map_caps: SlotRange) -> Memslot {
        Memslot {
            id: MemslotId::of_region(req),
            flags: req.flags,
            gpa: Gpa(req.guest_phys_addr),
            size: req.memory_size,
            uaddr: req.userspace_addr,
            backing,
            map_caps,
            lock: None,
        }
    }

    /// Its flags.
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// Its guest-physical base.
    pub fn gpa(&self) -> Gpa {
        self.gpa
    }

    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The VMM address of its backing.
    pub fn uaddr(&self) -> u64 {
        self.uaddr
    }

    /// What backs it.
    pub fn backing(&self) -> Backing {
        self.backing
    }

    /// Its id.
    pub fn id(&self) -> MemslotId {
        self.id
    }

    /// One slot per page for the capability that maps it at stage 2.
    pub fn map_caps(&self) -> SlotRange {
        self.map_caps
    }

    /// Its lock, while it is locked.
    pub fn lock(&self) -> Option<SlotLock> {
        self.lock
    }

    /// A copy of this slot with `lock` in place of its lock, to compare two
    /// slots apart from their locks.
    pub fn with_lock(mut self, lock: Option<SlotLock>) -> Memslot {
        self.lock = lock;
        self
    }

    /// Pages in the slot.
    pub fn pages(&self) -> u64 {
        self.size / PAGE_SIZE
    }

    /// One past the last guest-physical address.
    pub fn end(&self) -> Gpa {
        Gpa(self.gpa.0.saturating_add(self.size))
    }

    /// True if `gpa` lies in `[gpa, gpa + size)`.
    pub fn contains(&self, gpa: Gpa) -> bool {
        gpa >= self.gpa && gpa < self.end()
    }

    /// True for a slot the guest may not write.
    pub fn readonly(&self) -> bool {
        self.flags & READONLY != 0
    }

    /// The stage-2 rights its pages have outside a lock: what the slot
    /// allows (rule 3.11).
    pub fn rights(&self) -> Rights {
        if self.readonly() {
            Rights::READ
        } else {
            Rights::READ_WRITE
        }
    }
}

crate::errors! {
    /// Why a SET_USER_MEMORY_REGION2 request was refused.
    pub enum MemslotError {
        /// Unknown flag bits, LOG_DIRTY_PAGES without backend support, or
        /// GUEST_MEMFD with READONLY or LOG_DIRTY_PAGES.
        BadFlags => EINVAL, "unknown or incompatible memslot flags",
        /// memory_size, guest_phys_addr or userspace_addr not page-aligned.
        Unaligned => EINVAL, "memory_size, guest_phys_addr and userspace_addr must be page-aligned",
        /// The backing is not inside guest RAM the VMM has mapped.
        NotGuestRam => EINVAL, "userspace_addr..+memory_size is not guest RAM mapped by the VMM",
        /// guest_memfd_offset unaligned, or offset + size wraps.
        BadGmemOffset => EINVAL, "guest_memfd_offset unaligned or offset + size wraps",
        /// Address-space id not 0.
        BadAddressSpace => EINVAL, "address-space id must be 0",
        /// Slot id at or above the limit.
        BadSlotId => EINVAL, "slot id at or above the memslot limit",
        /// guest_phys_addr + memory_size wraps or leaves guest-physical space.
        OutOfGuestRange => EINVAL, "guest-physical range wraps or leaves the guest's address space",
        /// Deleting a slot that does not exist.
        NoSuchSlot => EINVAL, "no such memslot",
        /// A guest_memfd slot can only be deleted.
        GmemSlotChange => EINVAL, "a guest_memfd memslot can only be deleted",
        /// Changing userspace_addr, size, READONLY or GUEST_MEMFD.
        IllegalChange => EINVAL, "userspace_addr, size, READONLY and GUEST_MEMFD cannot change",
        /// The new range overlaps another slot.
        Overlap => EEXIST, "the range overlaps another memslot",
        /// The slot is locked.
        Locked => EBUSY, "the memslot is locked",
        /// The platform cannot give the guest this memory as asked.
        NotBacked => EOPNOTSUPP, "the platform cannot give the guest this memory with these rights",
        /// The platform cannot take memory back from the guest.
        CannotRevoke => EOPNOTSUPP, "the platform cannot take memory back from a guest while its VM exists",
    }
}

/// What a valid request does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// Create slot `id`.
    Create,
    /// Delete the slot at table index.
    Delete(usize),
    /// Move the slot at table index to a new guest-physical address.
    Move(usize),
    /// Change only the flags of the slot at table index.
    Flags(usize),
    /// Identical to the existing slot: nothing to do.
    Nothing,
}

/// The memslots of one VM, sorted by guest-physical address, at most `N`
/// of them (a VM's table holds [`MAX_MEMSLOTS`]; the capacity is a
/// parameter so that the lookup can be measured at KVM's 509 slots).
///
/// `starts` repeats each slot's base address, in the same order, so that
/// the binary search of a lookup walks 8-byte keys (4 KiB for 509 slots,
/// inside the L1 cache) rather than whole slot records. Only `insert` and
/// `remove` change the order, and they keep the two in step.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct MemslotTable<const N: usize = MAX_MEMSLOTS> {
    slots: Vec<Memslot, N>,
    starts: Vec<Gpa, N>,
}

impl<const N: usize> MemslotTable<N> {
    /// The slot containing `gpa`, by binary search.
    pub fn find_gpa(&self, gpa: Gpa) -> Option<&Memslot> {
        // The last slot starting at or below gpa is the only candidate.
        let i = self.starts.partition_point(|s| *s <= gpa);
        let s = self.slots.get(i.checked_sub(1)?)?;
        s.contains(gpa).then_some(s)
    }

    /// Table index of slot `id`.
    pub fn index_of(&self, id: MemslotId) -> Option<usize> {
        self.slots.iter().position(|s| s.id == id)
    }

    /// The slot at table index `i`.
    pub fn get(&self, i: usize) -> Option<&Memslot> {
        self.slots.get(i)
    }

    /// Mutable access to the slot at table index `i`. Callers must not
    /// change its address or size (that would break the order).
    pub(crate) fn get_mut(&mut self, i: usize) -> Option<&mut Memslot> {
        self.slots.get_mut(i)
    }

    /// Every slot, in guest-physical order.
    pub fn iter(&self) -> impl Iterator<Item = &Memslot> {
        self.slots.iter()
    }

    /// Mutable iteration (addresses must stay as they are).
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Memslot> {
        self.slots.iter_mut()
    }

    /// Number of slots.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// True if `[gpa, gpa + size)` overlaps a slot other than `except`.
    pub(crate) fn overlaps(&self, gpa: Gpa, size: u64, except: Option<MemslotId>) -> bool {
        let end = Gpa(gpa.0.saturating_add(size));
        // Slots are sorted and disjoint: only the last one starting before
        // `end` can reach into the range, but it may be `except`, so look at
        // the one before it too.
        let i = self.starts.partition_point(|s| *s < end);
        let lo = i.saturating_sub(2);
        #[cfg(not(planted = "memslot_overlap"))]
        let meets = |s: &Memslot| s.gpa < end && gpa < s.end();
        // A bug planted for the proofs to find: adjacent slots overlap.
        #[cfg(planted = "memslot_overlap")]
        let meets = |s: &Memslot| s.gpa <= end && gpa <= s.end();
        self.slots.get(lo..i).unwrap_or(&[]).iter().any(|s| Some(s.id) != except && meets(s))
    }

    /// Inserts a slot that overlaps none (checked by the caller).
    pub fn insert(&mut self, slot: Memslot) -> Result<(), Memslot> {
        if self.slots.is_full() || self.starts.is_full() {
            return Err(slot);
        }
        let i = self.starts.partition_point(|s| *s < slot.gpa);
        let gpa = slot.gpa;
        // Neither is full: neither insertion fails.
        insert_at(&mut self.slots, i, slot)?;
        insert_at(&mut self.starts, i, gpa).map_err(|_| slot)
    }

    /// Removes the slot at table index `i`.
    pub(crate) fn remove(&mut self, i: usize) -> Option<Memslot> {
        (i < self.slots.len() && i < self.starts.len()).then(|| {
            self.starts.remove(i);
            self.slots.remove(i)
        })
    }

    /// Moves the slot at index `i` to `gpa` (free, checked by the caller),
    /// keeping the order.
    pub(crate) fn relocate(&mut self, i: usize, gpa: Gpa, flags: u32) -> Option<()> {
        let mut s = self.remove(i)?;
        s.gpa = gpa;
        s.flags = flags;
        self.insert(s).ok()
    }
}

/// The environment a request is checked against.
pub(crate) struct Env<'a> {
    /// The VMM configuration (guest RAM, dirty-log support).
    pub(crate) config: &'a VmmConfig,
}

/// Validates `req` against `table` in the order of rules 3.1-3.8 and says what it
/// would do. Binding checks of a GUEST_MEMFD create (rule 3.9) are the
/// guest_memfd module's.
pub(crate) fn classify(table: &MemslotTable, req: &MemoryRegion, env: &Env<'_>) -> Result<Change, MemslotError> {
    // 1. Flags.
    let gmem = req.flags & GUEST_MEMFD != 0;
    let unknown = req.flags & !KNOWN_FLAGS != 0;
    let dirty_unsupported = req.flags & LOG_DIRTY_PAGES != 0 && !env.config.dirty_log;
    if unknown || dirty_unsupported || (gmem && req.flags & (READONLY | LOG_DIRTY_PAGES) != 0) {
        return Err(MemslotError::BadFlags);
    }
    // 2. Alignment and backing.
    if !page_aligned(req.memory_size) || !page_aligned(req.guest_phys_addr) || !page_aligned(req.userspace_addr) {
        return Err(MemslotError::Unaligned);
    }
    let shared_view_optional = gmem && req.userspace_addr == 0;
    if req.memory_size != 0
        && !shared_view_optional
        && env.config.ram_containing(req.userspace_addr, req.memory_size).is_none()
    {
        return Err(MemslotError::NotGuestRam);
    }
    // 3. guest_memfd offset.
    if gmem && (!page_aligned(req.guest_memfd_offset) || req.guest_memfd_offset.checked_add(req.memory_size).is_none())
    {
        return Err(MemslotError::BadGmemOffset);
    }
    // 4. Address space, slot id, guest-physical range.
    if req.slot >> 16 != 0 {
        return Err(MemslotError::BadAddressSpace);
    }
    let id = MemslotId::of_region(req);
    if usize::from(id.0) >= MAX_MEMSLOTS {
        return Err(MemslotError::BadSlotId);
    }
    match req.guest_phys_addr.checked_add(req.memory_size) {
        Some(end) if end <= GUEST_PHYS_LIMIT => {}
        _ => return Err(MemslotError::OutOfGuestRange),
    }
    let existing = table.index_of(id);
    // 5. Delete.
    if req.memory_size == 0 {
        let i = existing.ok_or(MemslotError::NoSuchSlot)?;
        if table.get(i).is_some_and(|s| s.lock.is_some()) {
            return Err(MemslotError::Locked);
        }
        return Ok(Change::Delete(i));
    }
    // 6. Change of an existing slot.
    let change = match existing.and_then(|i| table.get(i).map(|s| (i, s))) {
        None => Change::Create,
        Some((i, old)) => {
            if old.flags & GUEST_MEMFD != 0 {
                return Err(MemslotError::GmemSlotChange);
            }
            let toggles = (old.flags ^ req.flags) & (READONLY | GUEST_MEMFD) != 0;
            if req.userspace_addr != old.uaddr || req.memory_size != old.size || toggles {
                return Err(MemslotError::IllegalChange);
            }
            if Gpa(req.guest_phys_addr) != old.gpa {
                Change::Move(i)
            } else if req.flags != old.flags {
                Change::Flags(i)
            } else {
                return Ok(Change::Nothing);
            }
        }
    };
    // 7. Overlap on create or move (half-open ranges).
    if matches!(change, Change::Create | Change::Move(_))
        && table.overlaps(Gpa(req.guest_phys_addr), req.memory_size, Some(id).filter(|_| existing.is_some()))
    {
        return Err(MemslotError::Overlap);
    }
    // 8. Locked slots do not change.
    if let Change::Move(i) | Change::Flags(i) = change {
        if table.get(i).is_some_and(|s| s.lock.is_some()) {
            return Err(MemslotError::Locked);
        }
    }
    Ok(change)
}

/// The RAM frame slot backing a RAM memslot created from `req`.
pub(crate) fn ram_frames(config: &VmmConfig, req: &MemoryRegion) -> Option<Slot> {
    let region: &RamRegion = config.ram_containing(req.userspace_addr, req.memory_size)?;
    region.frame_at(req.userspace_addr)
}

/// What became of a stage-2 fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultOutcome {
    /// The page is now mapped; resume the vCPU.
    Mapped,
    /// A write to a READONLY slot: stop the VM.
    ReadOnlyWrite,
    /// No memslot contains the address: stop the VM (or emulate a device).
    Unmapped,
    /// The slot's guest_memfd file has been closed: stop the VM.
    NoBacking,
}

/// Deletes the mapping capabilities of every page of `slot` (unmapping
/// them). Pins of a locked slot are left alone.
pub(super) fn unmap_slot<K: Kernel>(k: &mut K, slot: &Memslot) -> Result<(), Refused> {
    let mut first = Ok(());
    for i in 0..slot.map_caps.len {
        if let Some(s) = slot.map_caps.get(i) {
            let r = k.cnode_delete(s).during(Invocation::CNodeDelete);
            if first.is_ok() {
                first = r;
            }
        }
    }
    first
}

impl<K: Kernel, A: Platform, const VMS: usize> Vmm<K, A, VMS> {
    /// KVM_SET_USER_MEMORY_REGION2 on VM `id`.
    pub fn set_memory_region(&mut self, caller: Caller, id: VmId, req: &MemoryRegion) -> Result<(), Error> {
        let vm = &mut self.registry.get_mut(caller, id)?.vm;
        let change = classify(&vm.memslots, req, &Env { config: &self.config })?;
        let k = &mut self.kernel;
        match change {
            Change::Nothing => Ok(()),
            Change::Create => {
                let (backing, binding) = if req.flags & GUEST_MEMFD != 0 {
                    let file = self.gmem.get(req.file()).ok_or(GmemError::BadHandle)?;
                    let mut binding = file.check_bind(id, req.guest_memfd_offset, req.memory_size)?;
                    binding.slot = MemslotId::of_region(req);
                    (Backing::Gmem { file: Some(req.file()), offset: req.guest_memfd_offset }, Some(binding))
                } else {
                    let frames = ram_frames(&self.config, req).ok_or(MemslotError::NotGuestRam)?;
                    (Backing::Ram { frames }, None)
                };
                // Rule 8.6: after every check of the core's.
                if !self.hooks.can_back(req) {
                    return Err(MemslotError::NotBacked.into());
                }
                // Rule 3.9: bind before commit, unbind if the commit fails.
                if let Some(b) = binding {
                    self.gmem.get_mut(req.file()).ok_or(GmemError::BadHandle)?.bind(b)?;
                }
                let unbind = |gmem: &mut crate::vm::guest_memfd::GmemTable| {
                    if let Backing::Gmem { file: Some(h), .. } = backing {
                        if let Some(f) = gmem.get_mut(h) {
                            f.unbind(MemslotId::of_region(req));
                        }
                    }
                };
                let map_caps = match self.cspace.alloc(req.memory_size / PAGE_SIZE) {
                    Ok(r) => r,
                    Err(e) => {
                        unbind(&mut self.gmem);
                        return Err(e.into());
                    }
                };
                let slot = Memslot::new(req, backing, map_caps);
                if vm.memslots.insert(slot).is_err() {
                    let _ = self.cspace.free(map_caps);
                    unbind(&mut self.gmem);
                    return Err(MemslotError::BadSlotId.into());
                }
                Ok(())
            }
            Change::Delete(_) | Change::Move(_) | Change::Flags(_) if !self.hooks.can_revoke() => {
                Err(MemslotError::CannotRevoke.into())
            }
            Change::Delete(i) => {
                let Some(slot) = vm.memslots.remove(i) else {
                    return Err(MemslotError::NoSuchSlot.into());
                };
                let r = unmap_slot(k, &slot);
                if let Backing::Gmem { file: Some(h), .. } = slot.backing {
                    if let Some(f) = self.gmem.get_mut(h) {
                        f.unbind(slot.id);
                    }
                }
                let _ = self.cspace.free(slot.map_caps);
                Ok(r?)
            }
            Change::Move(i) | Change::Flags(i) => {
                let Some(slot) = vm.memslots.get(i) else {
                    return Err(MemslotError::NoSuchSlot.into());
                };
                let r = unmap_slot(k, slot);
                vm.memslots.relocate(i, Gpa(req.guest_phys_addr), req.flags).ok_or(MemslotError::NoSuchSlot)?;
                Ok(r?)
            }
        }
    }

    /// A stage-2 fault of VM `id` at `gpa`: maps the page if a memslot
    /// covers it and the access is allowed (rule 6.1).
    pub fn stage2_fault(&mut self, id: VmId, gpa: Gpa, write: bool) -> Result<FaultOutcome, Error> {
        let Some(entry) = self.registry.entry_mut(id) else {
            return Err(crate::registry::RegistryError::NoSuchVm.into());
        };
        let vm = &mut entry.vm;
        let Some(slot) = vm.memslots.find_gpa(gpa).copied() else {
            return Ok(FaultOutcome::Unmapped);
        };
        if write && slot.readonly() {
            return Ok(FaultOutcome::ReadOnlyWrite);
        }
        // Cannot be `None`: the slot contains `gpa`.
        let page = gpa.offset_from(slot.gpa).unwrap_or(0) / PAGE_SIZE;
        let page_gpa = slot.gpa + page * PAGE_SIZE;
        let source: Option<Slot> = match slot.backing {
            Backing::Ram { frames } => frames.offset(page),
            Backing::Gmem { file: Some(h), offset } => {
                self.gmem.get(h).and_then(|f| f.frames.get(offset / PAGE_SIZE + page))
            }
            Backing::Gmem { file: None, .. } => None,
        };
        let Some(source) = source else {
            return Ok(FaultOutcome::NoBacking);
        };
        let rights = slot.rights();
        let k = &mut self.kernel;
        // A locked page is mapped through its pin: relax its rights in place.
        if let Some(pin) = slot.lock.and_then(|l| l.pins.get(page)) {
            match k.frame_map(FrameCap(pin), vm.stage2.vspace, page_gpa.0, rights) {
                Err(KernelError::DeleteFirst) => {} // mapped through its map cap
                other => return Ok(other.during(Invocation::PageMap).map(|()| FaultOutcome::Mapped)?),
            }
        }
        let Some(map) = slot.map_caps.get(page) else {
            return Ok(FaultOutcome::Unmapped);
        };
        match k.cnode_copy(map, source, rights) {
            Ok(()) => {}
            // Already mapped here (a permission fault): remap with the rights.
            Err(KernelError::DeleteFirst) => {
                k.frame_map(FrameCap(map), vm.stage2.vspace, page_gpa.0, rights).during(Invocation::PageMap)?;
                return Ok(FaultOutcome::Mapped);
            }
            Err(error) => return Err(Refused { call: Invocation::CNodeCopy, error }.into()),
        }
        let mark = vm.stage2.mark();
        if let Err(e) = vm.stage2.map(k, FrameCap(map), page_gpa, rights) {
            let _ = k.cnode_delete(map);
            vm.stage2.rollback(k, mark);
            return Err(e.into());
        }
        Ok(FaultOutcome::Mapped)
    }
}

/// Proofs over every input (`cargo kani -p vmm`), on a table of three slots
/// in a small guest-physical space (the code paths do not depend on the
/// capacity, and Kani's cost grows with it).
#[cfg(kani)]
mod proofs {
    use super::*;

    const N: usize = 3;
    /// Pages of the guest-physical space the proof draws from.
    const SPACE: u64 = 16;

    fn any_slot(id: u16) -> Memslot {
        // Small symbolic numbers, widened: no 64-bit division for the
        // solver to take apart.
        let first = u64::from(kani::any::<u8>());
        let pages = u64::from(kani::any::<u8>());
        kani::assume(first < SPACE && pages >= 1 && pages <= SPACE - first);
        Memslot {
            id: MemslotId(id),
            flags: 0,
            gpa: Gpa(first * PAGE_SIZE),
            size: pages * PAGE_SIZE,
            uaddr: 0,
            backing: Backing::Ram { frames: Slot(0) },
            map_caps: SlotRange { base: Slot(0), len: pages },
            lock: None,
        }
    }

    /// Inserting only what `overlaps` lets through keeps the table sorted
    /// and disjoint, `overlaps` agrees with a check of every slot, and
    /// `find_gpa` finds exactly the slot that contains an address.
    #[kani::proof]
    #[kani::unwind(5)]
    fn the_table_stays_sorted_disjoint_and_searchable() {
        let mut t: MemslotTable<N> = MemslotTable::default();
        for id in 0..N as u16 {
            let s = any_slot(id);
            let brute = t.slots.iter().any(|o| o.gpa < s.end() && s.gpa < o.end());
            assert!(t.overlaps(s.gpa, s.size, None) == brute);
            if !brute {
                assert!(t.insert(s).is_ok());
            }
        }
        for w in t.slots.windows(2) {
            if let [a, b] = w {
                assert!(a.end() <= b.gpa);
            }
        }
        assert!(t.slots.len() == t.starts.len());
        for (s, g) in t.slots.iter().zip(t.starts.iter()) {
            assert!(s.gpa == *g);
        }
        let gpa = Gpa(kani::any::<u64>());
        kani::assume(gpa.0 <= (SPACE + 1) * PAGE_SIZE);
        let found = t.find_gpa(gpa).map(|s| s.id);
        let expected = t.slots.iter().find(|s| s.contains(gpa)).map(|s| s.id);
        assert!(found == expected);
    }
}
