//! vCPUs, registers, interrupt lines and the VM-wide capability
//! (section 2 of the rules and rule 5.6).
//!
//! Choices: as everywhere, the VM is looked up and its owner checked first
//! (ENOENT, EPERM), then the arguments; a register number is validated
//! before the vCPU is looked up; IRQ_LINE delivers to vCPU 0, so a
//! rising edge with no vCPU 0 is ENOENT, and only a rising edge injects (a
//! level that stays high is not injected again).

use crate::arch::aarch64::irq::VcpuIrqs;
use crate::arch::aarch64::regs::{Reg, TcbReg, SPSR_EL1H_MASKED};
use crate::caps::{ObjectType, TcbCap, VCpuCap};
use crate::error::Error;
use crate::kernel::{During, Invocation, Kernel};
use crate::platform::Platform;
use crate::registry::Caller;
use crate::vm::lock::LockError;
use crate::vm::{Boot, VmError};
use crate::Vmm;
use vmm_abi::protocol::CAP_MEM_TAGGING;
use vmm_abi::{VcpuId, VmId};

/// Where a vCPU is in its life. This is also its PSCI state: a vCPU that
/// called CPU_OFF, or that a reset stopped, is `Stopped` and CPU_ON starts
/// it again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VcpuState {
    /// Not created.
    Absent,
    /// Created, not running.
    Stopped,
    /// Resumed.
    Running,
}

/// One vCPU: the slots of its TCB and vCPU object (fixed by its id in the
/// VM's run of slots, whether it is created or not), where it is in its
/// life, and its virtual interrupts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Vcpu {
    tcb: TcbCap,
    vcpu: VCpuCap,
    pub(crate) state: VcpuState,
    pub(crate) irqs: VcpuIrqs,
    /// A running vCPU's WFI (rule 6.11).
    pub(crate) idle: Idle,
}

/// Whether a running vCPU waits in WFI, its TCB suspended (rule 6.11).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Idle {
    /// It runs (or is not running at all).
    Awake,
    /// It waits for an interrupt, or until its virtual timer's deadline.
    Waiting {
        /// The guests' count at which its timer fires, if it is set.
        deadline: Option<u64>,
    },
}

impl Vcpu {
    /// A vCPU not yet created, whose objects will be in these slots.
    pub(crate) fn new(tcb: TcbCap, vcpu: VCpuCap) -> Vcpu {
        Vcpu { tcb, vcpu, state: VcpuState::Absent, irqs: VcpuIrqs::default(), idle: Idle::Awake }
    }

    /// Moves it to `state`; only a running vCPU can wait.
    pub(crate) fn set_state(&mut self, state: VcpuState) {
        self.state = state;
        if state != VcpuState::Running {
            self.idle = Idle::Awake;
        }
    }

    /// Its TCB and vCPU object.
    pub(crate) fn caps(&self) -> (TcbCap, VCpuCap) {
        (self.tcb, self.vcpu)
    }

    /// Where it is in its life.
    pub fn state(&self) -> VcpuState {
        self.state
    }
}

impl<K: Kernel, A: Platform, const VMS: usize> Vmm<K, A, VMS> {
    /// CREATE_VCPU: a TCB and a vCPU object, bound to the VM's VSpace, set to
    /// enter at EL1h.
    pub fn create_vcpu(&mut self, caller: Caller, id: VmId, vcpu: VcpuId) -> Result<(), Error> {
        let limit = self.config.vcpu_limit;
        let vm = &mut self.registry.get_mut(caller, id)?.vm;
        if vcpu.0 >= limit {
            return Err(VmError::VcpuIdOutOfRange.into());
        }
        if vm.vcpu_state(vcpu) != VcpuState::Absent {
            return Err(VmError::VcpuExists.into());
        }
        let (tcb, vc) = vm.vcpu_caps(vcpu).ok_or(VmError::VcpuIdOutOfRange)?;
        let vspace = vm.vspace();
        let Some(entry) = self.registry.entry_mut(id) else {
            return Err(VmError::NoSuchVcpu.into());
        };
        let k = &mut self.kernel;
        k.untyped_retype(ObjectType::Tcb, tcb.slot()).during(Invocation::UntypedRetype)?;
        let rest = k
            .untyped_retype(ObjectType::VCpu, vc.slot())
            .during(Invocation::UntypedRetype)
            .and_then(|()| k.tcb_bind(tcb, vc, vspace).during(Invocation::TcbBind))
            .and_then(|()| {
                k.tcb_write_register(tcb, TcbReg::Spsr, SPSR_EL1H_MASKED).during(Invocation::TcbWriteRegisters)
            });
        if let Err(e) = rest {
            let _ = k.cnode_delete(vc.slot());
            let _ = k.cnode_delete(tcb.slot());
            return Err(e.into());
        }
        entry.vm.set_vcpu_state(vcpu, VcpuState::Stopped);
        Ok(())
    }

    /// RUN: restart the vCPU at `entry` with `arg` in x0.
    pub fn run_vcpu(&mut self, caller: Caller, id: VmId, vcpu: VcpuId, entry: u64, arg: u64) -> Result<(), Error> {
        let vm = &mut self.registry.get_mut(caller, id)?.vm;
        match vm.vcpu_state(vcpu) {
            VcpuState::Absent => return Err(VmError::NoSuchVcpu.into()),
            VcpuState::Running => return Err(VmError::VcpuRunning.into()),
            VcpuState::Stopped => {}
        }
        let (tcb, _) = vm.vcpu_caps(vcpu).ok_or(VmError::NoSuchVcpu)?;
        self.hooks.before_run(id).map_err(Error::Platform)?;
        let k = &mut self.kernel;
        let old_pc = k.tcb_read_register(tcb, TcbReg::Pc).during(Invocation::TcbReadRegisters)?;
        let old_x0 = k.tcb_read_register(tcb, TcbReg::X(0)).during(Invocation::TcbReadRegisters)?;
        let r = k
            .tcb_write_register(tcb, TcbReg::Pc, entry)
            .and_then(|()| k.tcb_write_register(tcb, TcbReg::X(0), arg))
            .during(Invocation::TcbWriteRegisters)
            .and_then(|()| k.tcb_resume(tcb).during(Invocation::TcbResume));
        if let Err(e) = r {
            // Put back what the guest would see; these writes cannot fail on
            // a TCB the previous calls accepted.
            let _ = k.tcb_write_register(tcb, TcbReg::Pc, old_pc);
            let _ = k.tcb_write_register(tcb, TcbReg::X(0), old_x0);
            return Err(e.into());
        }
        vm.set_vcpu_state(vcpu, VcpuState::Running);
        if vm.boot.is_none_or(|b| b.vcpu == vcpu) {
            vm.boot = Some(Boot { vcpu, entry, arg });
        }
        Ok(())
    }

    /// STOP: suspend; stopping a stopped vCPU succeeds and does nothing.
    pub fn stop_vcpu(&mut self, caller: Caller, id: VmId, vcpu: VcpuId) -> Result<(), Error> {
        let vm = &mut self.registry.get_mut(caller, id)?.vm;
        match vm.vcpu_state(vcpu) {
            VcpuState::Absent => Err(VmError::NoSuchVcpu.into()),
            VcpuState::Stopped => Ok(()),
            VcpuState::Running => {
                let (tcb, _) = vm.vcpu_caps(vcpu).ok_or(VmError::NoSuchVcpu)?;
                self.kernel.tcb_suspend(tcb).during(Invocation::TcbSuspend)?;
                vm.set_vcpu_state(vcpu, VcpuState::Stopped);
                Ok(())
            }
        }
    }

    /// Marks vCPU `vcpu` of VM `id` stopped after the guest stopped it
    /// (a fault left unanswered, PSCI CPU_OFF or SYSTEM_OFF).
    pub(crate) fn vcpu_stopped(&mut self, id: VmId, vcpu: VcpuId) {
        if let Some(e) = self.registry.entry_mut(id) {
            if e.vm.vcpu_state(vcpu) == VcpuState::Running {
                e.vm.set_vcpu_state(vcpu, VcpuState::Stopped);
            }
        }
    }

    /// GET_REG.
    pub fn get_reg(&mut self, caller: Caller, id: VmId, vcpu: VcpuId, reg: u32) -> Result<u64, Error> {
        let vm = &mut self.registry.get_mut(caller, id)?.vm;
        let reg = Reg::from_wire(reg).ok_or(VmError::BadRegister)?;
        if vm.vcpu_state(vcpu) == VcpuState::Absent {
            return Err(VmError::NoSuchVcpu.into());
        }
        let (tcb, vc) = vm.vcpu_caps(vcpu).ok_or(VmError::NoSuchVcpu)?;
        Ok(match reg {
            Reg::Tcb(r) => self.kernel.tcb_read_register(tcb, r).during(Invocation::TcbReadRegisters)?,
            Reg::Vcpu(r) => self.kernel.vcpu_read_reg(vc, r).during(Invocation::VcpuReadRegs)?,
        })
    }

    /// SET_REG.
    pub fn set_reg(&mut self, caller: Caller, id: VmId, vcpu: VcpuId, reg: u32, value: u64) -> Result<(), Error> {
        let vm = &mut self.registry.get_mut(caller, id)?.vm;
        let reg = Reg::from_wire(reg).ok_or(VmError::BadRegister)?;
        if vm.vcpu_state(vcpu) == VcpuState::Absent {
            return Err(VmError::NoSuchVcpu.into());
        }
        let (tcb, vc) = vm.vcpu_caps(vcpu).ok_or(VmError::NoSuchVcpu)?;
        match reg {
            Reg::Tcb(r) => self.kernel.tcb_write_register(tcb, r, value).during(Invocation::TcbWriteRegisters)?,
            Reg::Vcpu(r) => self.kernel.vcpu_write_reg(vc, r, value).during(Invocation::VcpuWriteRegs)?,
        }
        Ok(())
    }

    /// ENABLE_CAP: the VM-wide memory-tagging capability; refused while any
    /// memslot is locked, because locked pages were prepared without it
    /// (rule 5.6).
    pub fn enable_cap(&mut self, caller: Caller, id: VmId, cap: u32, arg: u64) -> Result<(), Error> {
        let vm = &mut self.registry.get_mut(caller, id)?.vm;
        if cap != CAP_MEM_TAGGING || arg != 0 {
            return Err(VmError::BadCapability.into());
        }
        if vm.has_locked_slots() {
            return Err(LockError::SlotsLocked.into());
        }
        vm.mem_tagging = true;
        Ok(())
    }
}
