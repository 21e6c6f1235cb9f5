//! The Microkit backend of the core's [`Kernel`] trait.
//!
//! On Microkit the system is fixed when the image is built. Microkit
//! creates the VM's stage-2 VSpace and maps into it every memory region
//! system.xml gives the VM, and creates, per `<vcpu>`, a TCB and a vCPU
//! object already bound to each other and to that VSpace. The VMM PD holds
//! capabilities to those TCBs and vCPU objects (the slots of [`VmVcpu`])
//! and to nothing else of its VM: no untyped memory, no frame or page-table
//! capability, no capability to the VM's VSpace. The core, written for a
//! kernel that gives it all of those, asks for objects by retyping untyped
//! memory into slots it allocates. This backend serves it as follows.
//!
//! **Real: seL4 invocations on Microkit's capabilities.**
//! - TCB: read and write registers (`seL4_TCB_ReadRegisters`,
//!   `seL4_TCB_WriteRegisters`), resume, suspend. Retyping a TCB suspends
//!   the Microkit TCB it binds and zeroes its registers (a new TCB's
//!   state); deleting the slot that names it suspends it.
//! - vCPU: read and write registers, inject an interrupt into a list
//!   register, acknowledge a virtual PPI.
//!
//! **Bound: a core slot names a Microkit object, no invocation.**
//! - Retyping a VSpace binds the slot to the VM's VSpace (one per VMM PD:
//!   a second is `Unsupported`); retyping a TCB or vCPU binds it to the
//!   first Microkit vCPU whose TCB (or vCPU object) no slot names (none
//!   left: `Unsupported`). `tcb_bind` succeeds only for the pairing
//!   Microkit made (TCB n, vCPU n, the VM's VSpace), else `Unsupported`.
//!   These slots can be moved and deleted, never copied (`Unsupported`).
//!
//! **Checked against the boot manifest: virtual bookkeeping.** The table
//! in [`cap_table`] keeps frame and page-table capabilities as seL4 would:
//! a copy's rights are its source's under the mask and it is its source's
//! child, a child outlives a deleted parent by hanging from the
//! grandparent, revoke deletes every descendant, a mapping goes with its
//! capability on delete and moves with it on move, a capability maps at
//! most one address. Frames are pages of the static layout
//! ([`static_map`]):
//! - RAM frames are the slots `RAM_FRAME_SLOTS + i` the core is configured
//!   with (page `i` of the manifest's shared RAM). They stand for
//!   Microkit's own capabilities: they can be copied and revoked; moving,
//!   deleting, mapping or unmapping one is `Unsupported`.
//! - Retyping a frame hands out the lowest free page of the VM's private
//!   pool (the manifest's guest_memfd regions, in order); `Unsupported`
//!   when the pool is used up, and once a vCPU of this VMM has been
//!   resumed: seL4 zeroes a new frame, but the VMM has no mapping of
//!   private memory (the VM alone maps it), so a page that a guest may have
//!   written cannot be handed out again as new.
//! - Retyping a page table makes a virtual one.
//! - `frame_map` succeeds only if the manifest allows exactly that mapping
//!   ([`StaticMap::allows`]): the frame is the page Microkit mapped at that
//!   guest-physical address, a memslot of the manifest covers the address
//!   with that page as its backing, and the slot gives the guest at least
//!   the requested rights. Then nothing is invoked (Microkit mapped it) and
//!   the mapping is recorded: a second capability at the same address is
//!   `DeleteFirst`, remapping a capability elsewhere `InvalidArgument`, as
//!   on seL4. Any other mapping is `Unsupported`. `frame_unmap` records the
//!   unmapping.
//! - `page_table_map` succeeds if a manifest memslot lies in the 2 MiB
//!   block around the address (Microkit built the tables there), else
//!   `Unsupported`. The core does not need it here: `frame_map` never
//!   reports a missing table.
//!
//! **What the guest sees.** Its memory is what system.xml maps into it, all
//! of it, from boot, with system.xml's rights. A memslot the client has not
//! set (or has deleted, moved or made read-only), a closed guest_memfd and
//! a read-only lock change what the core records and would map, not what
//! the guest can reach. An access outside every region system.xml maps
//! faults to the VMM: the core stops the VM when no memslot covers it, and
//! a memslot there (one the manifest does not describe) fails to map with
//! `Unsupported`, which also stops the VM: never silently.

mod cap_table;
mod static_map;
mod translate;

use vmm::caps::{
    page_aligned, FrameCap, ObjectType, PageTableCap, Rights, Slot, SlotRange, TcbCap, VCpuCap, VSpaceCap,
};
use vmm::config::GUEST_PHYS_LIMIT;
use vmm::kernel::{Kernel, KernelError};
use vmm::regs::{TcbReg, VcpuReg};

use crate::vcpu_caps::VmVcpu;
use cap_table::{Cap, CapTable, Object, Parent, Root, TABLE_SLOTS};
use static_map::{Frame, MAX_PRIVATE_PAGES};
pub use static_map::{LayoutError, StaticMap};
use translate::{context_reg, kerr, vcpu_reg};

/// The core's CSpace: names the backend binds, far above every slot number
/// Microkit gives a PD (all below 2^10), so none can be taken for a real
/// capability.
pub const CORE_SLOTS: SlotRange = SlotRange { base: Slot(1 << 32), len: TABLE_SLOTS as u64 };

/// The names of the RAM frames, page `i` of the manifest's shared RAM at
/// `RAM_FRAME_SLOTS + i`; clear of [`CORE_SLOTS`].
pub const RAM_FRAME_SLOTS: Slot = Slot(1 << 33);

/// Words of a bitmap over the private pool.
const POOL_WORDS: usize = (MAX_PRIVATE_PAGES / 64) as usize;

/// The Microkit backend of one VMM PD.
pub struct MicrokitKernel {
    /// The Microkit vCPUs of the VM: ids `0..vcpus`.
    vcpus: u64,
    /// The static layout, from the manifest.
    map: StaticMap,
    /// The core's slots.
    caps: CapTable,
    /// Set when a vCPU has been resumed: from then on a guest may have
    /// written any private page.
    guest_ran: bool,
}

impl MicrokitKernel {
    /// A backend for a VM with Microkit vCPUs `0..vcpus` and the static
    /// layout `map` (whose RAM frames are named from [`RAM_FRAME_SLOTS`]).
    pub fn new(vcpus: u64, map: StaticMap) -> MicrokitKernel {
        MicrokitKernel { vcpus, map, caps: CapTable::new(CORE_SLOTS.base), guest_ran: false }
    }

    /// The core slot naming the TCB of Microkit vCPU `v`, if any: how a
    /// fault from `Child(v)` is traced back to the core's VM and vCPU.
    pub fn tcb_slot_of(&self, v: VmVcpu) -> Option<Slot> {
        self.caps.find(Object::Tcb(v)).map(|i| self.caps.slot(i))
    }

    /// The table index of `slot`, which must hold a capability.
    fn occupied(&self, slot: Slot) -> Result<(u16, Cap), KernelError> {
        let i = self.caps.index(slot).ok_or(KernelError::InvalidCapability)?;
        self.caps.get(i).map(|c| (i, c)).ok_or(KernelError::InvalidCapability)
    }

    /// The table index of `slot`, which must be empty.
    fn empty(&self, slot: Slot) -> Result<u16, KernelError> {
        let i = self.caps.index(slot).ok_or(KernelError::InvalidCapability)?;
        match self.caps.get(i) {
            Some(_) => Err(KernelError::DeleteFirst),
            None => Ok(i),
        }
    }

    /// The first Microkit vCPU whose TCB (or vCPU object) no slot names.
    fn free_vcpu(&self, object: fn(VmVcpu) -> Object) -> Option<VmVcpu> {
        (0..self.vcpus).filter_map(VmVcpu::new).find(|v| self.caps.find(object(*v)).is_none())
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

    fn tcb(&self, tcb: TcbCap) -> Result<VmVcpu, KernelError> {
        match self.occupied(tcb.slot())?.1.object {
            Object::Tcb(v) => Ok(v),
            _ => Err(KernelError::InvalidCapability),
        }
    }

    fn vcpu(&self, vcpu: VCpuCap) -> Result<VmVcpu, KernelError> {
        match self.occupied(vcpu.slot())?.1.object {
            Object::VCpu(v) => Ok(v),
            _ => Err(KernelError::InvalidCapability),
        }
    }

    fn vspace(&self, vspace: VSpaceCap) -> Result<(), KernelError> {
        match self.occupied(vspace.slot())?.1.object {
            Object::VSpace => Ok(()),
            _ => Err(KernelError::InvalidCapability),
        }
    }
}

impl Kernel for MicrokitKernel {
    fn untyped_retype(&mut self, ty: ObjectType, dest: Slot) -> Result<(), KernelError> {
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
        if let Object::Tcb(v) = object {
            // A new TCB is suspended with every register 0: make the reused
            // one so.
            v.tcb().tcb_suspend().map_err(kerr)?;
            let mut zero = sel4::UserContext::default();
            v.tcb().tcb_write_all_registers(false, &mut zero).map_err(kerr)?;
        }
        if self.caps.put(i, Cap::original(object)) {
            Ok(())
        } else {
            Err(KernelError::DeleteFirst)
        }
    }

    fn cnode_copy(&mut self, dest: Slot, src: Slot, mask: Rights) -> Result<(), KernelError> {
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

    fn cnode_move(&mut self, dest: Slot, src: Slot) -> Result<(), KernelError> {
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

    fn cnode_delete(&mut self, slot: Slot) -> Result<(), KernelError> {
        if self.map.ram_frame(slot).is_some() {
            return Err(KernelError::Unsupported);
        }
        let i = self.caps.index(slot).ok_or(KernelError::InvalidCapability)?;
        match self.caps.remove(i) {
            // Deleting the last TCB capability would stop the thread for
            // good; Microkit's stays, stopped, for the next retype.
            Some(Cap { object: Object::Tcb(v), .. }) => v.tcb().tcb_suspend().map_err(kerr),
            // The VSpace goes, and every mapping in it.
            Some(Cap { object: Object::VSpace, .. }) => {
                self.caps.unmap_all();
                Ok(())
            }
            // Deleting an empty slot succeeds.
            _ => Ok(()),
        }
    }

    fn cnode_revoke(&mut self, slot: Slot) -> Result<(), KernelError> {
        if let Some(f) = self.map.ram_frame(slot) {
            self.caps.revoke(Root::RamOriginal(f));
            return Ok(());
        }
        let (i, _) = self.occupied(slot)?;
        self.caps.revoke(Root::Index(i));
        Ok(())
    }

    fn frame_map(&mut self, frame: FrameCap, vspace: VSpaceCap, vaddr: u64, rights: Rights) -> Result<(), KernelError> {
        self.vspace(vspace)?;
        if self.map.ram_frame(frame.slot()).is_some() {
            // Microkit's own capability: the core maps copies.
            return Err(KernelError::Unsupported);
        }
        let (i, cap) = self.occupied(frame.slot())?;
        let Object::Frame(f) = cap.object else {
            return Err(KernelError::InvalidCapability);
        };
        if !page_aligned(vaddr) {
            return Err(KernelError::AlignmentError);
        }
        let page = u32::try_from(vaddr >> vmm::caps::PAGE_BITS).map_err(|_| KernelError::InvalidArgument)?;
        if !self.map.allows(f, vaddr, rights) {
            return Err(KernelError::Unsupported);
        }
        match cap.mapped {
            // Remapping at the same place changes only the rights, which
            // Microkit fixed: nothing to record.
            Some(p) if p == page => return Ok(()),
            Some(_) => return Err(KernelError::InvalidArgument),
            None => {}
        }
        if self.caps.page_mapped(page) {
            return Err(KernelError::DeleteFirst);
        }
        match self.caps.get_mut(i) {
            Some(c) => {
                c.mapped = Some(page);
                Ok(())
            }
            None => Err(KernelError::InvalidCapability),
        }
    }

    fn frame_unmap(&mut self, frame: FrameCap) -> Result<(), KernelError> {
        if self.map.ram_frame(frame.slot()).is_some() {
            return Err(KernelError::Unsupported);
        }
        let (i, cap) = self.occupied(frame.slot())?;
        if !matches!(cap.object, Object::Frame(_)) {
            return Err(KernelError::InvalidCapability);
        }
        if let Some(c) = self.caps.get_mut(i) {
            c.mapped = None;
        }
        Ok(())
    }

    fn page_table_map(&mut self, pt: PageTableCap, vspace: VSpaceCap, vaddr: u64) -> Result<(), KernelError> {
        self.vspace(vspace)?;
        let (i, cap) = self.occupied(pt.slot())?;
        if cap.object != Object::PageTable || cap.mapped.is_some() {
            return Err(KernelError::InvalidCapability);
        }
        if vaddr >= GUEST_PHYS_LIMIT {
            return Err(KernelError::InvalidArgument);
        }
        if !self.map.has_tables_for(vaddr) {
            return Err(KernelError::Unsupported);
        }
        let page = u32::try_from(vaddr >> vmm::caps::PAGE_BITS).map_err(|_| KernelError::InvalidArgument)?;
        if let Some(c) = self.caps.get_mut(i) {
            c.mapped = Some(page);
        }
        Ok(())
    }

    fn tcb_bind(&mut self, tcb: TcbCap, vcpu: VCpuCap, vspace: VSpaceCap) -> Result<(), KernelError> {
        let (t, v) = (self.tcb(tcb)?, self.vcpu(vcpu)?);
        self.vspace(vspace)?;
        // Microkit bound each TCB to its own vCPU and the VM's VSpace at
        // build time; any other pairing would need a rebinding it cannot do.
        if t == v {
            Ok(())
        } else {
            Err(KernelError::Unsupported)
        }
    }

    fn tcb_read_register(&mut self, tcb: TcbCap, reg: TcbReg) -> Result<u64, KernelError> {
        let v = self.tcb(tcb)?;
        let mut ctx = v.tcb().tcb_read_all_registers(false).map_err(kerr)?;
        context_reg(&mut ctx, reg).map(|r| *r)
    }

    fn tcb_write_register(&mut self, tcb: TcbCap, reg: TcbReg, value: u64) -> Result<(), KernelError> {
        let v = self.tcb(tcb)?;
        let mut ctx = v.tcb().tcb_read_all_registers(false).map_err(kerr)?;
        *context_reg(&mut ctx, reg)? = value;
        v.tcb().tcb_write_all_registers(false, &mut ctx).map_err(kerr)
    }

    fn tcb_resume(&mut self, tcb: TcbCap) -> Result<(), KernelError> {
        self.tcb(tcb)?.tcb().tcb_resume().map_err(kerr)?;
        self.guest_ran = true;
        Ok(())
    }

    fn tcb_suspend(&mut self, tcb: TcbCap) -> Result<(), KernelError> {
        self.tcb(tcb)?.tcb().tcb_suspend().map_err(kerr)
    }

    fn vcpu_read_reg(&mut self, vcpu: VCpuCap, reg: VcpuReg) -> Result<u64, KernelError> {
        let v = self.vcpu(vcpu)?;
        v.vcpu().vcpu_read_regs(vcpu_reg(reg)?).map_err(kerr)
    }

    fn vcpu_write_reg(&mut self, vcpu: VCpuCap, reg: VcpuReg, value: u64) -> Result<(), KernelError> {
        let v = self.vcpu(vcpu)?;
        v.vcpu().vcpu_write_regs(vcpu_reg(reg)?, value).map_err(kerr)
    }

    fn vcpu_inject_irq(&mut self, vcpu: VCpuCap, irq: u16, index: u8) -> Result<(), KernelError> {
        let v = self.vcpu(vcpu)?;
        // Priority 0, group 0, the list register the core chose.
        v.vcpu().vcpu_inject_irq(irq, 0, 0, index).map_err(kerr)
    }

    fn vcpu_ack_vppi(&mut self, vcpu: VCpuCap, irq: u16) -> Result<(), KernelError> {
        let v = self.vcpu(vcpu)?;
        v.vcpu().vcpu_ack_vppi(u64::from(irq)).map_err(kerr)
    }
}
