//! The seL4 invocations the VMM needs, as a trait.
//!
//! Methods are named after the seL4 invocations they stand for, so a reader
//! can check each against the seL4 manual. Every call returns a typed error
//! and nothing panics. Three backends implement it: the executable model
//! (`model`, host and verification only), the Microkit PD (vCPU and TCB calls
//! for real, memory calls checked against the static layout) and the root
//! task with full authority (`roottask/vmm`, every call the invocation it is
//! named after). The trait is shaped for the last:
//!
//! - objects come from untyped memory ([`Kernel::untyped_retype`]), and
//!   running out is [`KernelError::NotEnoughMemory`], never a panic;
//! - stage 2 has three levels here (40-bit guest-physical space, concatenated
//!   level-1 root, then two page-table levels); mapping a frame may find a
//!   table missing, and the call then fails with [`KernelError::MissingLevel2`]
//!   or [`KernelError::MissingLevel3`], and the
//!   caller maps a page table ([`Kernel::page_table_map`]) and retries;
//! - capabilities live in slots the VMM allocates (see `cspace`).

use crate::arch::aarch64::regs::{TcbReg, VcpuReg};
use crate::caps::{FrameCap, ObjectType, PageTableCap, Rights, Slot, TcbCap, VCpuCap, VSpaceCap};

crate::errors! {
    /// Why the kernel refused an invocation (seL4's error codes, plus the
    /// Microkit backend's `Unsupported`).
    pub enum KernelError {
        /// seL4_InvalidArgument.
        InvalidArgument => EIO, "the kernel rejected an argument",
        /// seL4_InvalidCapability: the slot is empty or of the wrong type.
        InvalidCapability => EIO, "no capability of the right type in the slot",
        /// seL4_IllegalOperation.
        IllegalOperation => EIO, "the kernel does not allow that operation",
        /// seL4_AlignmentError.
        AlignmentError => EINVAL, "address not aligned for the object",
        /// seL4_FailedLookup while mapping: the level-2 table (1 GiB of
        /// guest-physical space) on the way to the address is missing.
        MissingLevel2 => EIO, "the level-2 page table for the address is missing",
        /// seL4_FailedLookup while mapping: the level-3 table (2 MiB) on the
        /// way to the address is missing.
        MissingLevel3 => EIO, "the level-3 page table for the address is missing",
        /// seL4_DeleteFirst: the destination slot or address is in use.
        DeleteFirst => EEXIST, "the destination slot or address is already in use",
        /// seL4_RevokeFirst.
        RevokeFirst => EBUSY, "the capability has derived children",
        /// seL4_NotEnoughMemory: untyped memory is exhausted.
        NotEnoughMemory => ENOMEM, "not enough untyped memory",
        /// The backend holds no capability that could perform this (Microkit's
        /// static layout).
        Unsupported => EOPNOTSUPP, "the backend cannot perform this operation",
    }
}

/// A kernel invocation, named as seL4 names it: what a failure was doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Invocation {
    /// `seL4_Untyped_Retype`.
    UntypedRetype,
    /// `seL4_CNode_Copy`.
    CNodeCopy,
    /// `seL4_CNode_Move`.
    CNodeMove,
    /// `seL4_CNode_Delete`.
    CNodeDelete,
    /// `seL4_CNode_Revoke`.
    CNodeRevoke,
    /// `seL4_ARM_Page_Map`.
    PageMap,
    /// `seL4_ARM_Page_Unmap`.
    PageUnmap,
    /// `seL4_ARM_PageTable_Map`.
    PageTableMap,
    /// `seL4_TCB_SetSpace` and `seL4_ARM_VCPU_SetTCB`.
    TcbBind,
    /// `seL4_TCB_ReadRegisters`.
    TcbReadRegisters,
    /// `seL4_TCB_WriteRegisters`.
    TcbWriteRegisters,
    /// `seL4_TCB_Resume`.
    TcbResume,
    /// `seL4_TCB_Suspend`.
    TcbSuspend,
    /// `seL4_ARM_VCPU_ReadRegs`.
    VcpuReadRegs,
    /// `seL4_ARM_VCPU_WriteRegs`.
    VcpuWriteRegs,
    /// `seL4_ARM_VCPU_InjectIRQ`.
    VcpuInjectIrq,
    /// `seL4_ARM_VCPU_AckVPPI`.
    VcpuAckVppi,
}

impl Invocation {
    /// seL4's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Invocation::UntypedRetype => "seL4_Untyped_Retype",
            Invocation::CNodeCopy => "seL4_CNode_Copy",
            Invocation::CNodeMove => "seL4_CNode_Move",
            Invocation::CNodeDelete => "seL4_CNode_Delete",
            Invocation::CNodeRevoke => "seL4_CNode_Revoke",
            Invocation::PageMap => "seL4_ARM_Page_Map",
            Invocation::PageUnmap => "seL4_ARM_Page_Unmap",
            Invocation::PageTableMap => "seL4_ARM_PageTable_Map",
            Invocation::TcbBind => "seL4_TCB_SetSpace/seL4_ARM_VCPU_SetTCB",
            Invocation::TcbReadRegisters => "seL4_TCB_ReadRegisters",
            Invocation::TcbWriteRegisters => "seL4_TCB_WriteRegisters",
            Invocation::TcbResume => "seL4_TCB_Resume",
            Invocation::TcbSuspend => "seL4_TCB_Suspend",
            Invocation::VcpuReadRegs => "seL4_ARM_VCPU_ReadRegs",
            Invocation::VcpuWriteRegs => "seL4_ARM_VCPU_WriteRegs",
            Invocation::VcpuInjectIrq => "seL4_ARM_VCPU_InjectIRQ",
            Invocation::VcpuAckVppi => "seL4_ARM_VCPU_AckVPPI",
        }
    }
}

/// An invocation the kernel refused, and why: how a request or a VM stopped
/// by a failed kernel call reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused {
    /// The invocation.
    pub call: Invocation,
    /// The kernel's error.
    pub error: KernelError,
}

impl core::fmt::Display for Refused {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} failed: {}", self.call.name(), self.error)
    }
}

/// Names the invocation a kernel result came from.
pub(crate) trait During<T> {
    /// `Err(e)` becomes `Err(Refused { call, error: e })`.
    fn during(self, call: Invocation) -> Result<T, Refused>;
}

impl<T> During<T> for Result<T, KernelError> {
    fn during(self, call: Invocation) -> Result<T, Refused> {
        self.map_err(|error| Refused { call, error })
    }
}

/// The seL4 invocations of a VMM.
pub trait Kernel {
    /// `seL4_Untyped_Retype`: creates one object of type `ty` in the empty
    /// slot `dest`. New frames are zeroed.
    fn untyped_retype(&mut self, ty: ObjectType, dest: Slot) -> Result<(), KernelError>;

    /// `seL4_CNode_Copy`: derives a copy of `src` into the empty slot `dest`
    /// with rights `src ∩ mask`. The copy is `src`'s child in the derivation
    /// tree and starts unmapped.
    fn cnode_copy(&mut self, dest: Slot, src: Slot, mask: Rights) -> Result<(), KernelError>;

    /// `seL4_CNode_Move`: moves the capability (and any mapping made through
    /// it) from `src` to the empty slot `dest`.
    fn cnode_move(&mut self, dest: Slot, src: Slot) -> Result<(), KernelError>;

    /// `seL4_CNode_Delete`: empties `slot`; a mapped frame capability is
    /// unmapped first. Deleting an empty slot succeeds.
    fn cnode_delete(&mut self, slot: Slot) -> Result<(), KernelError>;

    /// `seL4_CNode_Revoke`: deletes every capability derived from `slot`,
    /// with their mappings, and keeps `slot` itself.
    fn cnode_revoke(&mut self, slot: Slot) -> Result<(), KernelError>;

    /// `seL4_ARM_Page_Map`: maps `frame` into `vspace` at `vaddr` with
    /// `rights ∩` the capability's rights. A frame capability maps at most
    /// once; a second mapping needs a copy.
    fn frame_map(&mut self, frame: FrameCap, vspace: VSpaceCap, vaddr: u64, rights: Rights) -> Result<(), KernelError>;

    /// `seL4_ARM_Page_Unmap`. Unmapping an unmapped frame succeeds.
    fn frame_unmap(&mut self, frame: FrameCap) -> Result<(), KernelError>;

    /// `seL4_ARM_PageTable_Map`: installs `pt` at the first missing level on
    /// the way to `vaddr`.
    fn page_table_map(&mut self, pt: PageTableCap, vspace: VSpaceCap, vaddr: u64) -> Result<(), KernelError>;

    /// `seL4_TCB_SetSpace` (VSpace part) and `seL4_ARM_VCPU_SetTCB`: makes
    /// `tcb` run in `vspace` with the EL1 state of `vcpu`.
    fn tcb_bind(&mut self, tcb: TcbCap, vcpu: VCpuCap, vspace: VSpaceCap) -> Result<(), KernelError>;

    /// One register of `seL4_TCB_ReadRegisters`.
    fn tcb_read_register(&mut self, tcb: TcbCap, reg: TcbReg) -> Result<u64, KernelError>;

    /// One register of `seL4_TCB_WriteRegisters` (without resuming).
    fn tcb_write_register(&mut self, tcb: TcbCap, reg: TcbReg, value: u64) -> Result<(), KernelError>;

    /// Ends an emulated instruction: writes its result, if it has one
    /// (`dest`: a register and its value), and the PC (`pc`, past the
    /// instruction). On seL4 this is one `seL4_TCB_WriteRegisters` of the
    /// shortest prefix of the context that holds both, after one read of
    /// that prefix (none when only the PC changes). The default writes
    /// register by register, for backends where that costs nothing more.
    fn tcb_write_result(&mut self, tcb: TcbCap, dest: Option<(TcbReg, u64)>, pc: u64) -> Result<(), KernelError> {
        if let Some((reg, value)) = dest {
            self.tcb_write_register(tcb, reg, value)?;
        }
        self.tcb_write_register(tcb, TcbReg::Pc, pc)
    }

    /// `seL4_TCB_Resume`.
    fn tcb_resume(&mut self, tcb: TcbCap) -> Result<(), KernelError>;

    /// `seL4_TCB_Suspend`.
    fn tcb_suspend(&mut self, tcb: TcbCap) -> Result<(), KernelError>;

    /// `seL4_ARM_VCPU_ReadRegs`.
    fn vcpu_read_reg(&mut self, vcpu: VCpuCap, reg: VcpuReg) -> Result<u64, KernelError>;

    /// `seL4_ARM_VCPU_WriteRegs`.
    fn vcpu_write_reg(&mut self, vcpu: VCpuCap, reg: VcpuReg, value: u64) -> Result<(), KernelError>;

    /// `seL4_ARM_VCPU_InjectIRQ` of `virq` into list register `index`. The
    /// core tracks which list registers are in use.
    fn vcpu_inject_irq(&mut self, vcpu: VCpuCap, virq: Virq, index: u8) -> Result<(), KernelError>;

    /// `seL4_ARM_VCPU_AckVPPI`: unmasks a virtual PPI the kernel masked
    /// when it delivered it.
    fn vcpu_ack_vppi(&mut self, vcpu: VCpuCap, irq: u16) -> Result<(), KernelError>;
}

/// What `seL4_ARM_VCPU_InjectIRQ` puts into a list register besides its
/// index: the virtual interrupt id, its priority and its group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Virq {
    /// The virtual interrupt id (the list register's vINTID; seL4 takes 10
    /// bits).
    pub irq: u16,
    /// The list register's priority field: a GIC priority's top five bits.
    pub priority: u8,
    /// Group 1, else group 0.
    pub group1: bool,
}

impl Virq {
    /// Interrupt `irq` at the highest priority, in group 0: what a VM
    /// without a virtual distributor gets (nothing there sets either).
    pub const fn plain(irq: u16) -> Virq {
        Virq { irq, priority: 0, group1: false }
    }
}
