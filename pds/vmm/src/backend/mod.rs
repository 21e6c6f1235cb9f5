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
//! **Checked against the boot manifest: virtual bookkeeping.** The book
//! ([`vmm_book::Book`], host-tested under the core) keeps frame and
//! page-table capabilities as seL4 would:
//! a copy's rights are its source's under the mask and it is its source's
//! child, a child outlives a deleted parent by hanging from the
//! grandparent, revoke deletes every descendant, a mapping goes with its
//! capability on delete and moves with it on move, a capability maps at
//! most one address. Frames are pages of the static layout
//! ([`vmm_book::StaticMap`]):
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
//!   (`StaticMap::allows`): the frame is the page Microkit mapped at that
//!   guest-physical address, a memslot of the manifest covers the address
//!   with that page as its backing, and the slot gives the guest exactly
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
//! of it, from boot, with system.xml's rights. So the PD's platform
//! (`crate::platform`) refuses every request that would claim otherwise
//! (rule 8.6): a memslot the manifest does not describe, or with other
//! rights, and, while the VM exists, deleting, moving or re-flagging a
//! memslot, a READ lock of writable memory and closing a bound
//! guest_memfd. The book refuses the same mappings on its own account
//! (`Unsupported`), should a request reach it. What remains: until the
//! client sets the manifest's memslots, the guest can already reach their
//! memory (Microkit mapped it at boot), so the core's record lags the
//! guest's reach then, and never exceeds it.

use vmm::arch::aarch64::regs::{TcbReg, VcpuReg};
use vmm::caps::{FrameCap, ObjectType, PageTableCap, Rights, Slot, TcbCap, VCpuCap, VSpaceCap};
use vmm::kernel::{Kernel, KernelError, Virq};
use vmm_book::{Book, CapTable, Object, StaticMap};

use crate::vcpu_caps::VmVcpu;
use vmm_sel4::{kerr, vcpu_reg, Registers};

/// The Microkit backend of one VMM PD: the book, and the invocations its
/// decisions need.
pub struct MicrokitKernel {
    book: Book<'static>,
    regs: Registers,
}

/// The Microkit vCPU the book names `id`.
fn microkit_vcpu(id: u64) -> Result<VmVcpu, KernelError> {
    VmVcpu::new(id).ok_or(KernelError::InvalidCapability)
}

impl MicrokitKernel {
    /// A backend for a VM with Microkit vCPUs `0..vcpus` and the static
    /// layout `map`, keeping its book of the core's slots in `caps`.
    pub fn new(vcpus: u64, map: StaticMap, caps: &'static mut CapTable) -> MicrokitKernel {
        MicrokitKernel { book: Book::new(vcpus, map, caps), regs: Registers::default() }
    }

    /// The core slot naming the TCB of Microkit vCPU `v`, if any: how a
    /// fault from `Child(v)` is traced back to the core's VM and vCPU.
    pub fn tcb_slot_of(&self, v: VmVcpu) -> Option<Slot> {
        self.book.tcb_slot_of(v.id())
    }

    fn tcb(&self, tcb: TcbCap) -> Result<VmVcpu, KernelError> {
        microkit_vcpu(self.book.tcb(tcb.slot())?)
    }

    fn vcpu(&self, vcpu: VCpuCap) -> Result<VmVcpu, KernelError> {
        microkit_vcpu(self.book.vcpu(vcpu.slot())?)
    }
}

impl Kernel for MicrokitKernel {
    fn untyped_retype(&mut self, ty: ObjectType, dest: Slot) -> Result<(), KernelError> {
        if let Object::Tcb(id) = self.book.retype(ty, dest)? {
            // A new TCB is suspended with every register 0: make the reused
            // one so, or take the binding back.
            let reset = microkit_vcpu(u64::from(id)).and_then(|v| {
                v.tcb().tcb_suspend().map_err(kerr)?;
                let mut zero = sel4::UserContext::default();
                v.tcb().tcb_write_all_registers(false, &mut zero).map_err(kerr)
            });
            if let Err(e) = reset {
                let _ = self.book.delete(dest);
                return Err(e);
            }
        }
        Ok(())
    }

    fn cnode_copy(&mut self, dest: Slot, src: Slot, mask: Rights) -> Result<(), KernelError> {
        self.book.copy(dest, src, mask)
    }

    fn cnode_move(&mut self, dest: Slot, src: Slot) -> Result<(), KernelError> {
        self.book.move_cap(dest, src)
    }

    fn cnode_delete(&mut self, slot: Slot) -> Result<(), KernelError> {
        match self.book.delete(slot)? {
            // Deleting the last TCB capability would stop the thread for
            // good; Microkit's stays, stopped, for the next retype.
            Some(Object::Tcb(id)) => microkit_vcpu(u64::from(id))?.tcb().tcb_suspend().map_err(kerr),
            _ => Ok(()),
        }
    }

    fn cnode_revoke(&mut self, slot: Slot) -> Result<(), KernelError> {
        self.book.revoke(slot)
    }

    fn frame_map(&mut self, frame: FrameCap, vspace: VSpaceCap, vaddr: u64, rights: Rights) -> Result<(), KernelError> {
        self.book.frame_map(frame.slot(), vspace.slot(), vaddr, rights)
    }

    fn frame_unmap(&mut self, frame: FrameCap) -> Result<(), KernelError> {
        self.book.frame_unmap(frame.slot())
    }

    fn page_table_map(&mut self, pt: PageTableCap, vspace: VSpaceCap, vaddr: u64) -> Result<(), KernelError> {
        self.book.page_table_map(pt.slot(), vspace.slot(), vaddr)
    }

    fn tcb_bind(&mut self, tcb: TcbCap, vcpu: VCpuCap, vspace: VSpaceCap) -> Result<(), KernelError> {
        // Microkit bound each TCB to its own vCPU and the VM's VSpace at
        // build time; any other pairing would need a rebinding it cannot do.
        self.book.bind(tcb.slot(), vcpu.slot(), vspace.slot())
    }

    fn tcb_read_register(&mut self, tcb: TcbCap, reg: TcbReg) -> Result<u64, KernelError> {
        let cptr = self.tcb(tcb)?.tcb().bits();
        self.regs.read(cptr, reg)
    }

    fn tcb_write_register(&mut self, tcb: TcbCap, reg: TcbReg, value: u64) -> Result<(), KernelError> {
        let cptr = self.tcb(tcb)?.tcb().bits();
        self.regs.write(cptr, Some((reg, value)), None)
    }

    fn tcb_write_result(&mut self, tcb: TcbCap, dest: Option<(TcbReg, u64)>, pc: u64) -> Result<(), KernelError> {
        let cptr = self.tcb(tcb)?.tcb().bits();
        self.regs.write(cptr, dest, Some(pc))
    }

    fn tcb_resume(&mut self, tcb: TcbCap) -> Result<(), KernelError> {
        self.tcb(tcb)?.tcb().tcb_resume().map_err(kerr)?;
        self.book.resumed();
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

    fn vcpu_inject_irq(&mut self, vcpu: VCpuCap, virq: Virq, index: u8) -> Result<(), KernelError> {
        let v = self.vcpu(vcpu)?;
        let group = u8::from(virq.group1);
        v.vcpu().vcpu_inject_irq(virq.irq, virq.priority, group, index).map_err(kerr)
    }

    fn vcpu_ack_vppi(&mut self, vcpu: VCpuCap, irq: u16) -> Result<(), KernelError> {
        let v = self.vcpu(vcpu)?;
        v.vcpu().vcpu_ack_vppi(u64::from(irq)).map_err(kerr)
    }
}
