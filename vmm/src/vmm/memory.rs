//! SET_USER_MEMORY_REGION2 and stage-2 faults in memslots (sections 3 and
//! 6.1).
//!
//! Memslots are mapped lazily: creating one reserves a slot per page for
//! the capability that will map it, and the first guest access to a page
//! copies the backing frame's capability there (with the slot's rights) and
//! maps it. Moving a slot, changing its flags or deleting it deletes those
//! copies, which unmaps them, so the next access maps again under the new
//! rules.

use super::Vmm;
use crate::caps::{FrameCap, Rights, Slot, PAGE_SIZE};
use crate::error::Error;
use crate::gmem::GmemError;
use crate::kernel::{Kernel, KernelError};
use crate::memslot::{self, Backing, Change, Env, MemoryRegion, Memslot, MemslotError, GUEST_MEMFD};
use crate::registry::{ArchHooks, Caller, VmId};

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
pub(super) fn unmap_slot<K: Kernel>(k: &mut K, slot: &Memslot) -> Result<(), KernelError> {
    let mut first = Ok(());
    for i in 0..slot.map_caps.len {
        if let Some(s) = slot.map_caps.get(i) {
            let r = k.cnode_delete(s);
            if first.is_ok() {
                first = r;
            }
        }
    }
    first
}

impl<K: Kernel, A: ArchHooks> Vmm<K, A> {
    /// KVM_SET_USER_MEMORY_REGION2 on VM `id`.
    pub fn set_memory_region(&mut self, caller: Caller, id: VmId, req: &MemoryRegion) -> Result<(), Error> {
        let vm = &mut self.registry.get_mut(caller, id)?.vm;
        let change = memslot::classify(&vm.memslots, req, &Env { config: &self.config })?;
        let k = &mut self.kernel;
        match change {
            Change::Nothing => Ok(()),
            Change::Create => {
                // Rule 9: bind before commit, unbind if the commit fails.
                let backing = if req.flags & GUEST_MEMFD != 0 {
                    let file = self.gmem.get_mut(req.guest_memfd).ok_or(GmemError::BadHandle)?;
                    let mut binding = file.check_bind(id, req.guest_memfd_offset, req.memory_size)?;
                    binding.slot = (req.slot & 0xffff) as u16;
                    file.bind(binding)?;
                    Backing::Gmem { file: Some(req.guest_memfd), offset: req.guest_memfd_offset }
                } else {
                    let frames = memslot::ram_frames(&self.config, req).ok_or(MemslotError::NotGuestRam)?;
                    Backing::Ram { frames }
                };
                let unbind = |gmem: &mut crate::gmem::GmemTable| {
                    if let Backing::Gmem { file: Some(h), .. } = backing {
                        if let Some(f) = gmem.get_mut(h) {
                            f.unbind((req.slot & 0xffff) as u16);
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
                let slot = Memslot {
                    id: (req.slot & 0xffff) as u16,
                    flags: req.flags,
                    gpa: req.guest_phys_addr,
                    size: req.memory_size,
                    uaddr: req.userspace_addr,
                    backing,
                    map_caps,
                    lock: None,
                };
                if vm.memslots.insert(slot).is_err() {
                    let _ = self.cspace.free(map_caps);
                    unbind(&mut self.gmem);
                    return Err(MemslotError::BadSlotId.into());
                }
                Ok(())
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
                vm.memslots.relocate(i, req.guest_phys_addr, req.flags).ok_or(MemslotError::NoSuchSlot)?;
                Ok(r?)
            }
        }
    }

    /// A stage-2 fault of VM `id` at `gpa`: maps the page if a memslot
    /// covers it and the access is allowed (rule 6.1).
    pub fn stage2_fault(&mut self, id: VmId, gpa: u64, write: bool) -> Result<FaultOutcome, Error> {
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
        let page = (gpa - slot.gpa) / PAGE_SIZE;
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
        let rights = if slot.readonly() { Rights::READ } else { Rights::READ_WRITE };
        let k = &mut self.kernel;
        // A locked page is mapped through its pin: relax its rights in place.
        if let Some(pin) = slot.lock.and_then(|l| l.pins.get(page)) {
            match k.frame_map(FrameCap(pin), vm.stage2.vspace, page_gpa, rights) {
                Err(KernelError::DeleteFirst) => {} // mapped through its map cap
                other => return other.map(|()| FaultOutcome::Mapped).map_err(Error::from),
            }
        }
        let Some(map) = slot.map_caps.get(page) else {
            return Ok(FaultOutcome::Unmapped);
        };
        match k.cnode_copy(map, source, rights) {
            Ok(()) => {}
            // Already mapped here (a permission fault): remap with the rights.
            Err(KernelError::DeleteFirst) => {
                return k
                    .frame_map(FrameCap(map), vm.stage2.vspace, page_gpa, rights)
                    .map(|()| FaultOutcome::Mapped)
                    .map_err(Error::from)
            }
            Err(e) => return Err(e.into()),
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
