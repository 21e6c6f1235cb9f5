//! The root task's backend of the core's [`Kernel`]: every method is the
//! seL4 invocation it is named after, on capabilities the root task made.
//!
//! - Objects come from the untyped pool ([`vmm_untyped::Pool`]): a retype
//!   reserves room, makes the object with `seL4_Untyped_Retype` in the
//!   core's slot of the root CNode, and only then commits; deleting the
//!   slot that holds an object made so gives its memory back to the pool.
//!   Copies own no memory and are not counted.
//! - A new VSpace gets an ASID from the root task's ASID pool
//!   (`seL4_ARM_ASIDPool_Assign`) before the core sees it.
//! - A new TCB gets its own scheduling context (MCS), configured by the
//!   boot information's scheduling control, and a fault endpoint: the root
//!   task's endpoint, badged with the core's slot of the TCB, so that a
//!   fault names its vCPU. Deleting the TCB's slot deletes its scheduling
//!   context too.
//! - Frames and page tables map into the guest's VSpace (its stage 2) and
//!   nowhere else: the core maps only into the VSpaces it made.
//!
//! A failed step undoes the steps before it, so a refused call leaves the
//! capabilities and the pool as they were.

use sel4::cap::{AsidPool, CNode, Endpoint, SchedControl, Tcb};
use sel4::{CapRights, ObjectBlueprint, ObjectBlueprintAArch64, ObjectBlueprintArm, VmAttributes};
use vmm::arch::aarch64::regs::{TcbReg, VcpuReg};
use vmm::caps::{FrameCap, ObjectType, PageTableCap, Rights, Slot, SlotRange, TcbCap, VCpuCap, VSpaceCap};
use vmm::kernel::{Kernel, KernelError, Virq};
use vmm_sel4::{kerr, vcpu_reg, Registers};
use vmm_untyped::{Made, PoolError};

use crate::slots::Private;
use crate::untyped::{Pool, SeL4};

/// The scheduling context each vCPU's TCB gets: seL4's smallest.
const SCHED_CONTEXT_BITS: usize = sel4::sys::seL4_MinSchedContextBits as usize;

/// A vCPU runs below the root task, which must preempt it to handle its
/// faults and the clients' requests.
pub const GUEST_PRIORITY: u64 = 100;

/// log2 of the slots of the guests' empty CNode.
pub const GUEST_CNODE_BITS: usize = 1;

/// Each vCPU's budget and period, in microseconds: the whole of each period,
/// so a vCPU runs until it blocks or a higher priority runs.
const PERIOD_US: u64 = 10_000;

/// What the backend made for one slot of the core's range.
#[derive(Clone, Copy, Debug, Default)]
pub struct Record {
    /// The object whose original capability the slot holds.
    made: Option<Made>,
    /// A TCB's scheduling context: its private slot and its memory.
    sched_context: Option<(u64, Made)>,
}

impl Record {
    /// A slot the backend made nothing in.
    pub const EMPTY: Record = Record { made: None, sched_context: None };
}

/// The root task's capabilities the backend invokes with.
pub struct Authority {
    /// The root task's own TCB: the authority for scheduling parameters.
    pub tcb: Tcb,
    /// The boot information's scheduling control (core 0).
    pub sched_control: SchedControl,
    /// The ASID pool the VSpaces take their ASIDs from.
    pub asid_pool: AsidPool,
    /// The endpoint the vCPUs' faults arrive on, unbadged.
    pub fault_endpoint: Endpoint,
    /// An empty CNode for the vCPUs' threads: a guest invokes nothing.
    pub guest_cnode: CNode,
}

/// The root task's backend of the core's `Kernel`.
pub struct RootKernel {
    pool: &'static mut Pool,
    sel4: SeL4,
    private: Private,
    core: SlotRange,
    records: &'static mut [Record],
    auth: Authority,
    regs: Registers,
}

fn pool_error(e: PoolError<sel4::Error>) -> KernelError {
    match e {
        PoolError::NoMemory | PoolError::NoChunkSlot => KernelError::NotEnoughMemory,
        PoolError::Kernel(e) => kerr(e),
        PoolError::BadSize | PoolError::TooManyUntypeds | PoolError::TooLarge => KernelError::InvalidArgument,
    }
}

/// seL4's object for the core's.
fn blueprint(ty: ObjectType) -> ObjectBlueprint {
    match ty {
        ObjectType::Frame => ObjectBlueprint::Arch(ObjectBlueprintArm::SmallPage),
        ObjectType::PageTable => ObjectBlueprint::Arch(ObjectBlueprintArm::PT),
        ObjectType::VSpace => ObjectBlueprintAArch64::VSpace.into(),
        ObjectType::Tcb => ObjectBlueprint::Tcb,
        ObjectType::VCpu => ObjectBlueprint::Arch(ObjectBlueprintArm::VCpu),
    }
}

fn rights(r: Rights) -> CapRights {
    CapRights::new(false, false, r.read, r.write)
}

/// `seL4_FailedLookup` from a map: which table is missing, from the bits
/// the lookup had left to translate (seL4 reports them as the lookup
/// fault's second word).
fn missing_level() -> KernelError {
    let bits_left = sel4::with_ipc_buffer(|b| b.msg_regs().get(2).copied().unwrap_or(0));
    if bits_left > 21 {
        KernelError::MissingLevel2
    } else {
        KernelError::MissingLevel3
    }
}

fn mapped(r: Result<(), sel4::Error>) -> Result<(), KernelError> {
    match r {
        Err(sel4::Error::FailedLookup) => Err(missing_level()),
        other => other.map_err(kerr),
    }
}

impl RootKernel {
    /// The backend over `pool`, with the core's slots `core` (one record
    /// each in `records`) and its own slots `private`.
    pub fn new(
        pool: &'static mut Pool,
        sel4: SeL4,
        core: SlotRange,
        records: &'static mut [Record],
        private: Private,
        auth: Authority,
    ) -> RootKernel {
        RootKernel { pool, sel4, private, core, records, auth, regs: Registers::default() }
    }

    /// The untyped pool, for the figures.
    pub fn pool(&self) -> &Pool {
        self.pool
    }

    /// Free slots of the backend's own.
    pub fn free_private_slots(&self) -> usize {
        self.private.free()
    }

    /// Slots of `range` that hold a capability, as the kernel has them.
    /// Slow, for the leak figure only.
    pub fn occupied(&mut self, range: SlotRange) -> Result<u64, KernelError> {
        let scratch = self.private.take().ok_or(KernelError::NotEnoughMemory)?;
        let end = range.base.0.saturating_add(range.len);
        let n = (range.base.0..end).filter(|&s| self.holds_cap(s, scratch)).count();
        self.private.give(scratch);
        Ok(n as u64)
    }

    /// Whether `slot` holds a capability: `seL4_DebugCapIdentify` where the
    /// kernel has it.
    #[sel4::sel4_cfg(DEBUG_BUILD)]
    fn holds_cap(&mut self, slot: u64, _scratch: u64) -> bool {
        sel4::cap::Unspecified::from_bits(slot).debug_identify() != 0
    }

    /// Whether `slot` holds a capability: copied to `scratch` if it does (a
    /// copy of an empty slot fails), and the copy deleted.
    #[sel4::sel4_cfg(not(DEBUG_BUILD))]
    fn holds_cap(&mut self, slot: u64, scratch: u64) -> bool {
        let src = self.sel4.slot(slot);
        let held = self.sel4.slot(scratch).copy(&src, CapRights::all()).is_ok();
        if held {
            let _ = self.sel4.slot(scratch).delete();
        }
        held
    }

    /// The core's slots.
    pub fn core_slots(&self) -> SlotRange {
        self.core
    }

    /// The record of a slot of the core's range; the core's other slots
    /// (the RAM frames it is given) hold nothing the backend made.
    fn record(&mut self, slot: Slot) -> Option<&mut Record> {
        let i = slot.0.checked_sub(self.core.base.0).filter(|&i| i < self.core.len)?;
        usize::try_from(i).ok().and_then(|i| self.records.get_mut(i))
    }

    /// Makes one object of `blueprint` in root-CNode slot `dest` from the
    /// pool; nothing is left behind on failure.
    fn make(&mut self, blueprint: ObjectBlueprint, dest: u64) -> Result<Made, KernelError> {
        self.sel4.make(&mut *self.pool, blueprint, dest, false).map_err(pool_error)
    }

    /// Deletes the object in root-CNode slot `slot` made with `made`.
    fn unmake(&mut self, slot: u64, made: Made) {
        let _ = self.sel4.slot(slot).delete();
        let _ = self.pool.release(made, &mut self.sel4);
    }

    /// A TCB's scheduling context, configured and bound, and its badged
    /// fault endpoint.
    fn schedule(&mut self, tcb: u64) -> Result<(u64, Made), KernelError> {
        let sc_slot = self.private.take().ok_or(KernelError::NotEnoughMemory)?;
        let made = match self.make(ObjectBlueprint::SchedContext { size_bits: SCHED_CONTEXT_BITS }, sc_slot) {
            Ok(m) => m,
            Err(e) => {
                self.private.give(sc_slot);
                return Err(e);
            }
        };
        let sc = sel4::cap::SchedContext::from_bits(sc_slot);
        let r = self
            .auth
            .sched_control
            .sched_control_configure_flags(sc, PERIOD_US, PERIOD_US, 0, 0, 0)
            .map_err(kerr)
            .and_then(|()| {
                self.with_fault_endpoint(tcb, |auth, ep| {
                    Tcb::from_bits(tcb).tcb_set_sched_params(auth.tcb, 0, GUEST_PRIORITY, sc, ep)
                })
            });
        match r {
            Ok(()) => Ok((sc_slot, made)),
            Err(e) => {
                self.unmake(sc_slot, made);
                self.private.give(sc_slot);
                Err(e)
            }
        }
    }

    /// Runs `f` with the fault endpoint badged with `badge` in a private
    /// slot, deleted afterwards (seL4 copies a fault endpoint into the TCB).
    fn with_fault_endpoint(
        &mut self,
        badge: u64,
        f: impl FnOnce(&Authority, Endpoint) -> Result<(), sel4::Error>,
    ) -> Result<(), KernelError> {
        let scratch = self.private.take().ok_or(KernelError::NotEnoughMemory)?;
        let src = self.sel4.slot(self.auth.fault_endpoint.bits());
        let r = self
            .sel4
            .slot(scratch)
            .mint(&src, CapRights::all(), badge)
            .and_then(|()| f(&self.auth, Endpoint::from_bits(scratch)));
        let _ = self.sel4.slot(scratch).delete();
        self.private.give(scratch);
        r.map_err(kerr)
    }
}

impl Kernel for RootKernel {
    fn untyped_retype(&mut self, ty: ObjectType, dest: Slot) -> Result<(), KernelError> {
        // Only into the core's range, where the record can be kept; an
        // occupied slot is the kernel's DeleteFirst.
        self.record(dest).ok_or(KernelError::InvalidCapability)?;
        let made = self.make(blueprint(ty), dest.0)?;
        let extra = match ty {
            ObjectType::VSpace => {
                self.auth.asid_pool.asid_pool_assign(sel4::cap::VSpace::from_bits(dest.0)).map(|()| None).map_err(kerr)
            }
            ObjectType::Tcb => self.schedule(dest.0).map(Some),
            _ => Ok(None),
        };
        match extra {
            Ok(sched_context) => {
                if let Some(r) = self.record(dest) {
                    *r = Record { made: Some(made), sched_context };
                }
                Ok(())
            }
            Err(e) => {
                self.unmake(dest.0, made);
                Err(e)
            }
        }
    }

    fn cnode_copy(&mut self, dest: Slot, src: Slot, mask: Rights) -> Result<(), KernelError> {
        let src = self.sel4.slot(src.0);
        self.sel4.slot(dest.0).copy(&src, rights(mask)).map_err(kerr)
    }

    fn cnode_move(&mut self, dest: Slot, src: Slot) -> Result<(), KernelError> {
        let from = self.sel4.slot(src.0);
        self.sel4.slot(dest.0).move_(&from).map_err(kerr)?;
        let record = self.record(src).map(core::mem::take).unwrap_or_default();
        if let Some(r) = self.record(dest) {
            *r = record;
        }
        Ok(())
    }

    fn cnode_delete(&mut self, slot: Slot) -> Result<(), KernelError> {
        self.sel4.slot(slot.0).delete().map_err(kerr)?;
        let record = self.record(slot).map(core::mem::take).unwrap_or_default();
        if let Some((sc, made)) = record.sched_context {
            self.unmake(sc, made);
            self.private.give(sc);
        }
        if let Some(made) = record.made {
            // The object is gone with its last capability: the core deletes
            // copies before their original. A refused revoke leaves the
            // memory unavailable, which the pool's figures show.
            let _ = self.pool.release(made, &mut self.sel4);
        }
        Ok(())
    }

    fn cnode_revoke(&mut self, slot: Slot) -> Result<(), KernelError> {
        self.sel4.slot(slot.0).revoke().map_err(kerr)
    }

    fn frame_map(&mut self, frame: FrameCap, vspace: VSpaceCap, vaddr: u64, r: Rights) -> Result<(), KernelError> {
        let vspace = sel4::cap::VSpace::from_bits(vspace.slot().0);
        let vaddr = usize::try_from(vaddr).map_err(|_| KernelError::InvalidArgument)?;
        mapped(sel4::cap::SmallPage::from_bits(frame.slot().0).frame_map(
            vspace,
            vaddr,
            rights(r),
            VmAttributes::default(),
        ))
    }

    fn frame_unmap(&mut self, frame: FrameCap) -> Result<(), KernelError> {
        sel4::cap::SmallPage::from_bits(frame.slot().0).frame_unmap().map_err(kerr)
    }

    fn page_table_map(&mut self, pt: PageTableCap, vspace: VSpaceCap, vaddr: u64) -> Result<(), KernelError> {
        let vspace = sel4::cap::VSpace::from_bits(vspace.slot().0);
        let vaddr = usize::try_from(vaddr).map_err(|_| KernelError::InvalidArgument)?;
        mapped(sel4::cap::PT::from_bits(pt.slot().0).pt_map(vspace, vaddr, VmAttributes::default()))
    }

    fn tcb_bind(&mut self, tcb: TcbCap, vcpu: VCpuCap, vspace: VSpaceCap) -> Result<(), KernelError> {
        let t = Tcb::from_bits(tcb.slot().0);
        let vspace = sel4::cap::VSpace::from_bits(vspace.slot().0);
        self.with_fault_endpoint(tcb.slot().0, |auth, ep| {
            t.tcb_set_space(ep.cptr(), auth.guest_cnode, sel4::CNodeCapData::skip_high_bits(GUEST_CNODE_BITS), vspace)
        })?;
        sel4::cap::VCpu::from_bits(vcpu.slot().0).vcpu_set_tcb(t).map_err(kerr)
    }

    fn tcb_read_register(&mut self, tcb: TcbCap, reg: TcbReg) -> Result<u64, KernelError> {
        self.regs.read(tcb.slot().0, reg)
    }

    fn tcb_write_register(&mut self, tcb: TcbCap, reg: TcbReg, value: u64) -> Result<(), KernelError> {
        self.regs.write(tcb.slot().0, Some((reg, value)), None)
    }

    fn tcb_write_result(&mut self, tcb: TcbCap, dest: Option<(TcbReg, u64)>, pc: u64) -> Result<(), KernelError> {
        self.regs.write(tcb.slot().0, dest, Some(pc))
    }

    fn tcb_resume(&mut self, tcb: TcbCap) -> Result<(), KernelError> {
        Tcb::from_bits(tcb.slot().0).tcb_resume().map_err(kerr)
    }

    fn tcb_suspend(&mut self, tcb: TcbCap) -> Result<(), KernelError> {
        Tcb::from_bits(tcb.slot().0).tcb_suspend().map_err(kerr)
    }

    fn vcpu_read_reg(&mut self, vcpu: VCpuCap, reg: VcpuReg) -> Result<u64, KernelError> {
        sel4::cap::VCpu::from_bits(vcpu.slot().0).vcpu_read_regs(vcpu_reg(reg)?).map_err(kerr)
    }

    fn vcpu_write_reg(&mut self, vcpu: VCpuCap, reg: VcpuReg, value: u64) -> Result<(), KernelError> {
        sel4::cap::VCpu::from_bits(vcpu.slot().0).vcpu_write_regs(vcpu_reg(reg)?, value).map_err(kerr)
    }

    fn vcpu_inject_irq(&mut self, vcpu: VCpuCap, virq: Virq, index: u8) -> Result<(), KernelError> {
        let group = u8::from(virq.group1);
        sel4::cap::VCpu::from_bits(vcpu.slot().0).vcpu_inject_irq(virq.irq, virq.priority, group, index).map_err(kerr)
    }

    fn vcpu_ack_vppi(&mut self, vcpu: VCpuCap, irq: u16) -> Result<(), KernelError> {
        sel4::cap::VCpu::from_bits(vcpu.slot().0).vcpu_ack_vppi(u64::from(irq)).map_err(kerr)
    }
}
