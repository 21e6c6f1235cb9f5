//! The book: every core slot the backend serves, and each operation the
//! core asks for, decided against the static layout. It makes no seL4
//! call; the backend makes the invocations a decision needs (a TCB to
//! suspend, a vCPU to resume) around it.

use vmm::caps::{ObjectType, Rights, Slot, SlotRange};
use vmm::kernel::KernelError;
use vmm_abi::limits::{page_aligned, GUEST_PHYS_LIMIT, PAGE_BITS};

use crate::cap_table::{Cap, CapTable, Object, Parent, Root};
use crate::static_map::{Frame, StaticMap, MAX_PRIVATE_PAGES};

/// The core's CSpace: names the backend binds, far above every slot number
/// Microkit gives a PD (all below 2^10), so none can be taken for a real
/// capability. The table holds the first [`crate::TABLE_SLOTS`]; a name past them
/// is an empty slot that never holds a capability (a copy into it is
/// refused with ENOMEM, as a full CNode refuses one). Those names are for
/// the pages of large RAM memslots: each page of a memslot has a name for
/// its mapping, used only when the guest faults on the page or it is
/// locked, and neither happens to RAM Microkit maps in 2 MiB pages (a
/// Linux guest's 256 MiB take 65,536 names).
pub const CORE_SLOTS: SlotRange = SlotRange { base: Slot(1 << 32), len: CORE_NAMES };

/// Names in the core's CSpace: 4 GiB of memslots in 4 KiB pages.
const CORE_NAMES: u64 = 1 << 20;

/// The names of the RAM frames, page `i` of the manifest's shared RAM at
/// `RAM_FRAME_SLOTS + i`; clear of [`CORE_SLOTS`].
pub const RAM_FRAME_SLOTS: Slot = Slot(1 << 33);

/// Words of a bitmap over the private pool.
const POOL_WORDS: usize = (MAX_PRIVATE_PAGES / 64) as usize;

/// The book of one VMM.
pub struct Book<'t> {
    /// The Microkit vCPUs of the VM: ids `0..vcpus`.
    vcpus: u64,
    /// The static layout, from the manifest.
    map: StaticMap,
    /// The core's slots: a table the deployment places (a static on
    /// Microkit), not a value on the stack.
    caps: &'t mut CapTable,
    /// Set when a vCPU has been resumed: from then on a guest may have
    /// written any private page.
    guest_ran: bool,
}

impl<'t> Book<'t> {
    /// The book of a VM with Microkit vCPUs `0..vcpus` and the static
    /// layout `map` (whose RAM frames are named from [`RAM_FRAME_SLOTS`]),
    /// keeping the core's slots in `caps`, which it empties.
    pub fn new(vcpus: u64, map: StaticMap, caps: &'t mut CapTable) -> Book<'t> {
        caps.clear();
        Book { vcpus, map, caps, guest_ran: false }
    }

    /// Capabilities held in the core's slots (the RAM originals aside).
    pub fn caps_held(&self) -> usize {
        self.caps.iter().count()
    }

    /// Frame capabilities recorded as mapped.
    pub fn frames_mapped(&self) -> usize {
        self.caps.iter().filter(|(_, c)| matches!(c.object, Object::Frame(_)) && c.mapped.is_some()).count()
    }

    /// The core slot naming the TCB of Microkit vCPU `vcpu`, if any.
    pub fn tcb_slot_of(&self, vcpu: u64) -> Option<Slot> {
        let vcpu = u16::try_from(vcpu).ok()?;
        self.caps.find(Object::Tcb(vcpu)).map(|i| self.caps.slot(i))
    }

    /// The Microkit vCPU whose TCB `slot` names.
    pub fn tcb(&self, slot: Slot) -> Result<u64, KernelError> {
        match self.occupied(slot)?.1.object {
            Object::Tcb(v) => Ok(u64::from(v)),
            _ => Err(KernelError::InvalidCapability),
        }
    }

    /// The Microkit vCPU whose vCPU object `slot` names.
    pub fn vcpu(&self, slot: Slot) -> Result<u64, KernelError> {
        match self.occupied(slot)?.1.object {
            Object::VCpu(v) => Ok(u64::from(v)),
            _ => Err(KernelError::InvalidCapability),
        }
    }

    /// Succeeds if `slot` names the VM's VSpace.
    pub fn vspace(&self, slot: Slot) -> Result<(), KernelError> {
        match self.occupied(slot)?.1.object {
            Object::VSpace => Ok(()),
            _ => Err(KernelError::InvalidCapability),
        }
    }

    /// Records that a vCPU was resumed.
    pub fn resumed(&mut self) {
        self.guest_ran = true;
    }

    /// The table index of `slot`, which must hold a capability.
    fn occupied(&self, slot: Slot) -> Result<(u16, Cap), KernelError> {
        let i = self.caps.index(slot).ok_or(KernelError::InvalidCapability)?;
        self.caps.get(i).map(|c| (i, c)).ok_or(KernelError::InvalidCapability)
    }

    /// The table index of `slot`, which must be empty.
    fn empty(&self, slot: Slot) -> Result<u16, KernelError> {
        let Some(i) = self.caps.index(slot) else {
            return Err(if CORE_SLOTS.contains(slot) {
                KernelError::NotEnoughMemory
            } else {
                KernelError::InvalidCapability
            });
        };
        match self.caps.get(i) {
            Some(_) => Err(KernelError::DeleteFirst),
            None => Ok(i),
        }
    }

    /// The first Microkit vCPU whose TCB (or vCPU object) no slot names.
    fn free_vcpu(&self, object: fn(u16) -> Object) -> Option<u16> {
        (0..self.vcpus).filter_map(|v| u16::try_from(v).ok()).find(|v| self.caps.find(object(*v)).is_none())
    }

    /// The lowest page of the private pool that no capability names.
    fn free_private_page(&self) -> Option<u32> {
        let mut used = [0u64; POOL_WORDS];
        for (_, c) in self.caps.iter() {
            if let Object::Frame(Frame::Private(p)) = c.object {
                if let Some(w) = used.get_mut(p as usize / 64) {
                    *w |= 1 << (p % 64);
                }
            }
        }
        (0..self.map.private_pages())
            .find(|p| used.get(*p as usize / 64).is_some_and(|w| w & (1 << (p % 64)) == 0))
            .and_then(|p| u32::try_from(p).ok())
    }

    /// `seL4_Untyped_Retype` of one `ty` into `dest`: binds the slot and
    /// returns what it now names. A TCB must then be reset by the caller
    /// (and the slot deleted again if that fails).
    pub fn retype(&mut self, ty: ObjectType, dest: Slot) -> Result<Object, KernelError> {
        let i = self.empty(dest)?;
        let object = match ty {
            // One VM per Microkit PD: its VSpace is the only one there is.
            ObjectType::VSpace if self.caps.find(Object::VSpace).is_none() => Object::VSpace,
            ObjectType::VSpace => return Err(KernelError::Unsupported),
            ObjectType::Tcb => Object::Tcb(self.free_vcpu(Object::Tcb).ok_or(KernelError::Unsupported)?),
            ObjectType::VCpu => Object::VCpu(self.free_vcpu(Object::VCpu).ok_or(KernelError::Unsupported)?),
            // A new frame is zeroed; the VMM cannot zero private memory.
            ObjectType::Frame if self.guest_ran => return Err(KernelError::Unsupported),
            ObjectType::Frame => {
                Object::Frame(Frame::Private(self.free_private_page().ok_or(KernelError::Unsupported)?))
            }
            ObjectType::PageTable => Object::PageTable,
        };
        if self.caps.put(i, Cap::original(object)) {
            Ok(object)
        } else {
            Err(KernelError::DeleteFirst)
        }
    }

    /// `seL4_CNode_Copy` of a frame.
    pub fn copy(&mut self, dest: Slot, src: Slot, mask: Rights) -> Result<(), KernelError> {
        let (frame, rights, parent) = match self.map.ram_frame(src) {
            Some(f) => (f, Rights::READ_WRITE, Parent::RamOriginal),
            None => match self.occupied(src)? {
                (si, Cap { object: Object::Frame(f), rights, .. }) => (f, rights, Parent::Index(si)),
                // The VM's VSpace, TCBs and vCPU objects are never shared,
                // and page tables are not copied.
                _ => return Err(KernelError::Unsupported),
            },
        };
        let di = self.empty(dest)?;
        let cap = Cap { object: Object::Frame(frame), rights: rights.derive(mask), mapped: None, parent };
        if self.caps.put(di, cap) {
            Ok(())
        } else {
            Err(KernelError::DeleteFirst)
        }
    }

    /// `seL4_CNode_Move`.
    pub fn move_cap(&mut self, dest: Slot, src: Slot) -> Result<(), KernelError> {
        if self.map.ram_frame(src).is_some() {
            return Err(KernelError::Unsupported);
        }
        let (si, _) = self.occupied(src)?;
        let di = self.empty(dest)?;
        if self.caps.relocate(si, di) {
            Ok(())
        } else {
            Err(KernelError::DeleteFirst)
        }
    }

    /// `seL4_CNode_Delete`: returns what the slot named, if anything, for
    /// the caller's part (a TCB to suspend).
    pub fn delete(&mut self, slot: Slot) -> Result<Option<Object>, KernelError> {
        if self.map.ram_frame(slot).is_some() {
            return Err(KernelError::Unsupported);
        }
        let i = match self.caps.index(slot) {
            Some(i) => i,
            // A name past the table: always empty, and deleting an empty
            // slot succeeds.
            None if CORE_SLOTS.contains(slot) => return Ok(None),
            None => return Err(KernelError::InvalidCapability),
        };
        let gone = self.caps.remove(i).map(|c| c.object);
        if gone == Some(Object::VSpace) {
            // The VSpace goes, and every mapping in it.
            self.caps.unmap_all();
        }
        Ok(gone)
    }

    /// `seL4_CNode_Revoke`.
    pub fn revoke(&mut self, slot: Slot) -> Result<(), KernelError> {
        if let Some(f) = self.map.ram_frame(slot) {
            self.caps.revoke(Root::RamOriginal(f));
            return Ok(());
        }
        let (i, _) = self.occupied(slot)?;
        self.caps.revoke(Root::Index(i));
        Ok(())
    }

    /// `seL4_ARM_Page_Map`: succeeds only for a mapping the manifest
    /// allows (Microkit made it), and records it.
    pub fn frame_map(&mut self, frame: Slot, vspace: Slot, vaddr: u64, rights: Rights) -> Result<(), KernelError> {
        self.vspace(vspace)?;
        if self.map.ram_frame(frame).is_some() {
            // Microkit's own capability: the core maps copies.
            return Err(KernelError::Unsupported);
        }
        let (i, cap) = self.occupied(frame)?;
        let Object::Frame(f) = cap.object else {
            return Err(KernelError::InvalidCapability);
        };
        if !page_aligned(vaddr) {
            return Err(KernelError::AlignmentError);
        }
        let page = u32::try_from(vaddr >> PAGE_BITS).map_err(|_| KernelError::InvalidArgument)?;
        if !self.map.allows(f, vaddr, rights) {
            return Err(KernelError::Unsupported);
        }
        match cap.mapped {
            // Remapping at the same place with the rights Microkit gave it
            // (`allows` admits no others): nothing changes.
            Some(p) if p == page => return Ok(()),
            Some(_) => return Err(KernelError::InvalidArgument),
            None => {}
        }
        if self.caps.page_mapped(page) {
            return Err(KernelError::DeleteFirst);
        }
        match self.caps.set_mapped(i, Some(page)) {
            true => Ok(()),
            false => Err(KernelError::InvalidCapability),
        }
    }

    /// `seL4_ARM_Page_Unmap`: records the unmapping.
    pub fn frame_unmap(&mut self, frame: Slot) -> Result<(), KernelError> {
        if self.map.ram_frame(frame).is_some() {
            return Err(KernelError::Unsupported);
        }
        let (i, cap) = self.occupied(frame)?;
        if !matches!(cap.object, Object::Frame(_)) {
            return Err(KernelError::InvalidCapability);
        }
        match self.caps.set_mapped(i, None) {
            true => Ok(()),
            false => Err(KernelError::InvalidCapability),
        }
    }

    /// `seL4_ARM_PageTable_Map`: succeeds where Microkit built the tables.
    pub fn page_table_map(&mut self, pt: Slot, vspace: Slot, vaddr: u64) -> Result<(), KernelError> {
        self.vspace(vspace)?;
        let (i, cap) = self.occupied(pt)?;
        if cap.object != Object::PageTable || cap.mapped.is_some() {
            return Err(KernelError::InvalidCapability);
        }
        if vaddr >= GUEST_PHYS_LIMIT {
            return Err(KernelError::InvalidArgument);
        }
        if !self.map.has_tables_for(vaddr) {
            return Err(KernelError::Unsupported);
        }
        let page = u32::try_from(vaddr >> PAGE_BITS).map_err(|_| KernelError::InvalidArgument)?;
        match self.caps.set_mapped(i, Some(page)) {
            true => Ok(()),
            false => Err(KernelError::InvalidCapability),
        }
    }

    /// `seL4_TCB_SetSpace` + `seL4_ARM_VCPU_SetTCB`: succeeds only for the
    /// binding Microkit made (TCB n, vCPU n, the VM's VSpace).
    pub fn bind(&self, tcb: Slot, vcpu: Slot, vspace: Slot) -> Result<(), KernelError> {
        let (t, v) = (self.tcb(tcb)?, self.vcpu(vcpu)?);
        self.vspace(vspace)?;
        if t == v {
            Ok(())
        } else {
            Err(KernelError::Unsupported)
        }
    }
}
