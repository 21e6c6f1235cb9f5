//! The Microkit backend of the core's [`Kernel`] trait.
//!
//! Microkit creates a VM's objects at build time: one VSpace (the VM's
//! stage 2, of which the VMM holds no capability) and, per `<vcpu>`, a TCB and
//! a vCPU object, already bound together and to that VSpace, at the slots of
//! [`VmVcpu`]. The core instead asks for objects by retyping untyped memory
//! into slots it allocates. This backend connects the two: the core's slots
//! are names only, and retyping a VSpace, TCB or vCPU into one binds it to the
//! matching Microkit object, as long as one is left. From then on TCB and vCPU
//! calls on that slot are real seL4 invocations on Microkit's capability.
//!
//! Everything that needs a frame, page-table or untyped capability (which a
//! Microkit PD never holds) fails with [`KernelError::Unsupported`], never
//! silently.

use vmm::caps::{FrameCap, ObjectType, PageTableCap, Rights, Slot, TcbCap, VCpuCap, VSpaceCap};
use vmm::kernel::{Kernel, KernelError};
use vmm::regs::{TcbReg, VcpuReg};

use crate::vcpu_caps::VmVcpu;

/// A Microkit object a core slot is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Object {
    /// The VM's stage-2 address space.
    VSpace,
    /// The TCB of a Microkit vCPU.
    Tcb(VmVcpu),
    /// The vCPU object of a Microkit vCPU.
    VCpu(VmVcpu),
}

/// At most the VSpace plus a TCB and a vCPU per Microkit vCPU.
const MAX_BINDINGS: usize = 1 + 2 * vmm::config::MAX_VCPUS;

/// The Microkit backend.
pub struct MicrokitKernel {
    /// The Microkit vCPUs of the VM: ids `0..vcpus`.
    vcpus: u64,
    /// Which core slot names which Microkit object.
    bindings: [Option<(Slot, Object)>; MAX_BINDINGS],
}

/// seL4's error as the core's.
fn kerr(e: sel4::Error) -> KernelError {
    match e {
        sel4::Error::InvalidArgument | sel4::Error::RangeError | sel4::Error::TruncatedMessage => {
            KernelError::InvalidArgument
        }
        sel4::Error::InvalidCapability | sel4::Error::FailedLookup => KernelError::InvalidCapability,
        sel4::Error::IllegalOperation => KernelError::IllegalOperation,
        sel4::Error::AlignmentError => KernelError::AlignmentError,
        sel4::Error::DeleteFirst => KernelError::DeleteFirst,
        sel4::Error::RevokeFirst => KernelError::RevokeFirst,
        sel4::Error::NotEnoughMemory => KernelError::NotEnoughMemory,
    }
}

/// The core's vCPU register as seL4's.
fn vcpu_reg(r: VcpuReg) -> Result<sel4::VCpuReg, KernelError> {
    Ok(match r {
        VcpuReg::Sctlr => sel4::VCpuReg::SCTLR,
        VcpuReg::Ttbr0 => sel4::VCpuReg::TTBR0,
        VcpuReg::Ttbr1 => sel4::VCpuReg::TTBR1,
        VcpuReg::Tcr => sel4::VCpuReg::TCR,
        VcpuReg::Mair => sel4::VCpuReg::MAIR,
        VcpuReg::Vbar => sel4::VCpuReg::VBAR,
        VcpuReg::ElrEl1 => sel4::VCpuReg::ELR_EL1,
        VcpuReg::SpsrEl1 => sel4::VCpuReg::SPSR_EL1,
        VcpuReg::CntvCtl => sel4::VCpuReg::CNTV_CTL,
        VcpuReg::CntvCval => sel4::VCpuReg::CNTV_CVAL,
        VcpuReg::SpEl1 => sel4::VCpuReg::SP_EL1,
        // seL4 keeps VMPIDR_EL2 in the vCPU object only on multi-core
        // kernels; Microkit's are single-core.
        VcpuReg::Vmpidr => return Err(KernelError::Unsupported),
    })
}

/// The register `r` in seL4's saved user context.
fn context_reg(ctx: &mut sel4::UserContext, r: TcbReg) -> Result<&mut u64, KernelError> {
    Ok(match r {
        TcbReg::Pc => ctx.pc_mut(),
        TcbReg::Sp => ctx.sp_mut(),
        TcbReg::Spsr => ctx.spsr_mut(),
        // gpr_mut panics above 30 (x31 is not a register).
        TcbReg::X(n) if n <= 30 => ctx.gpr_mut(usize::from(n)),
        TcbReg::X(_) => return Err(KernelError::InvalidArgument),
    })
}

impl MicrokitKernel {
    /// A backend for a VM with Microkit vCPUs `0..vcpus`.
    pub fn new(vcpus: u64) -> MicrokitKernel {
        MicrokitKernel { vcpus, bindings: [None; MAX_BINDINGS] }
    }

    fn lookup(&self, slot: Slot) -> Option<Object> {
        self.bindings.iter().flatten().find(|(s, _)| *s == slot).map(|(_, o)| *o)
    }

    fn is_bound(&self, o: Object) -> bool {
        self.bindings.iter().flatten().any(|(_, b)| *b == o)
    }

    fn bind(&mut self, slot: Slot, o: Object) -> Result<(), KernelError> {
        let free = self.bindings.iter_mut().find(|b| b.is_none()).ok_or(KernelError::NotEnoughMemory)?;
        *free = Some((slot, o));
        Ok(())
    }

    fn unbind(&mut self, slot: Slot) -> Option<Object> {
        let b = self.bindings.iter_mut().find(|b| b.is_some_and(|(s, _)| s == slot))?;
        b.take().map(|(_, o)| o)
    }

    /// The first Microkit vCPU whose TCB (or vCPU object) no slot names.
    fn free_vcpu(&self, object: fn(VmVcpu) -> Object) -> Option<VmVcpu> {
        (0..self.vcpus).filter_map(VmVcpu::new).find(|v| !self.is_bound(object(*v)))
    }

    fn tcb(&self, tcb: TcbCap) -> Result<VmVcpu, KernelError> {
        match self.lookup(tcb.slot()) {
            Some(Object::Tcb(v)) => Ok(v),
            _ => Err(KernelError::InvalidCapability),
        }
    }

    fn vcpu(&self, vcpu: VCpuCap) -> Result<VmVcpu, KernelError> {
        match self.lookup(vcpu.slot()) {
            Some(Object::VCpu(v)) => Ok(v),
            _ => Err(KernelError::InvalidCapability),
        }
    }

    /// The core slot naming the TCB of Microkit vCPU `v`, if any: how a
    /// fault from `Child(v)` is traced back to the core's VM and vCPU.
    pub fn tcb_slot_of(&self, v: VmVcpu) -> Option<Slot> {
        self.bindings.iter().flatten().find(|(_, o)| *o == Object::Tcb(v)).map(|(s, _)| *s)
    }
}

impl Kernel for MicrokitKernel {
    fn untyped_retype(&mut self, ty: ObjectType, dest: Slot) -> Result<(), KernelError> {
        if self.lookup(dest).is_some() {
            return Err(KernelError::DeleteFirst);
        }
        let object = match ty {
            // One VM per Microkit PD: its VSpace is the only one there is.
            ObjectType::VSpace if !self.is_bound(Object::VSpace) => Object::VSpace,
            ObjectType::Tcb => Object::Tcb(self.free_vcpu(Object::Tcb).ok_or(KernelError::Unsupported)?),
            ObjectType::VCpu => Object::VCpu(self.free_vcpu(Object::VCpu).ok_or(KernelError::Unsupported)?),
            ObjectType::VSpace | ObjectType::Frame | ObjectType::PageTable => return Err(KernelError::Unsupported),
        };
        if let Object::Tcb(v) = object {
            // A new TCB is suspended with every register 0: make the reused
            // one so.
            v.tcb().tcb_suspend().map_err(kerr)?;
            let mut zero = sel4::UserContext::default();
            v.tcb().tcb_write_all_registers(false, &mut zero).map_err(kerr)?;
        }
        self.bind(dest, object)
    }

    fn cnode_copy(&mut self, _dest: Slot, _src: Slot, _mask: Rights) -> Result<(), KernelError> {
        // Copies are how the core shares frames; Microkit gives no frame
        // capabilities, and the VM's TCB and vCPU are never shared.
        Err(KernelError::Unsupported)
    }

    fn cnode_move(&mut self, dest: Slot, src: Slot) -> Result<(), KernelError> {
        if self.lookup(dest).is_some() {
            return Err(KernelError::DeleteFirst);
        }
        let object = self.unbind(src).ok_or(KernelError::InvalidCapability)?;
        self.bind(dest, object)
    }

    fn cnode_delete(&mut self, slot: Slot) -> Result<(), KernelError> {
        match self.unbind(slot) {
            // Deleting the last TCB capability would stop the thread for
            // good; Microkit's stays, stopped, for the next retype.
            Some(Object::Tcb(v)) => v.tcb().tcb_suspend().map_err(kerr),
            _ => Ok(()),
        }
    }

    fn cnode_revoke(&mut self, _slot: Slot) -> Result<(), KernelError> {
        // No capability is ever derived here (copies are unsupported), so
        // there is nothing to revoke.
        Ok(())
    }

    fn frame_map(&mut self, _: FrameCap, _: VSpaceCap, _: u64, _: Rights) -> Result<(), KernelError> {
        Err(KernelError::Unsupported)
    }

    fn frame_unmap(&mut self, _: FrameCap) -> Result<(), KernelError> {
        Err(KernelError::Unsupported)
    }

    fn page_table_map(&mut self, _: PageTableCap, _: VSpaceCap, _: u64) -> Result<(), KernelError> {
        Err(KernelError::Unsupported)
    }

    fn tcb_bind(&mut self, tcb: TcbCap, vcpu: VCpuCap, vspace: VSpaceCap) -> Result<(), KernelError> {
        let (t, v) = (self.tcb(tcb)?, self.vcpu(vcpu)?);
        if self.lookup(vspace.slot()) != Some(Object::VSpace) {
            return Err(KernelError::InvalidCapability);
        }
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
        self.tcb(tcb)?.tcb().tcb_resume().map_err(kerr)
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
