//! PSCI (0.2 and later) over HVC and SMC: the calls a guest needs to start
//! and stop its CPUs and the machine, decoded from the guest's registers and
//! carried out on its vCPUs.

use crate::addr::Gpa;
use crate::caps::{TcbCap, VCpuCap};
use crate::kernel::{During, Invocation, Kernel, Refused};
use crate::platform::Platform;
use crate::vm::VcpuState;
use crate::Vmm;
use vmm_abi::{VcpuId, VmId};

use super::exit::{ExitAction, StopReason};
use super::regs::{TcbReg, VcpuReg, SCTLR_EL1_RESET, SPSR_EL1H_MASKED};

/// PSCI function ids (SMC32 and, where there is one, SMC64).
pub mod fid {
    /// PSCI_VERSION.
    pub(crate) const VERSION: u32 = 0x8400_0000;
    /// CPU_SUSPEND, 32-bit.
    pub(crate) const CPU_SUSPEND_32: u32 = 0x8400_0001;
    /// CPU_SUSPEND, 64-bit.
    pub(crate) const CPU_SUSPEND_64: u32 = 0xc400_0001;
    /// AFFINITY_INFO, 32-bit.
    pub(crate) const AFFINITY_INFO_32: u32 = 0x8400_0004;
    /// AFFINITY_INFO, 64-bit.
    pub(crate) const AFFINITY_INFO_64: u32 = 0xc400_0004;
    /// CPU_OFF.
    pub(crate) const CPU_OFF: u32 = 0x8400_0002;
    /// CPU_ON, 32-bit.
    pub(crate) const CPU_ON_32: u32 = 0x8400_0003;
    /// CPU_ON, 64-bit.
    pub(crate) const CPU_ON_64: u32 = 0xc400_0003;
    /// SYSTEM_OFF.
    pub(crate) const SYSTEM_OFF: u32 = 0x8400_0008;
    /// SYSTEM_RESET.
    pub(crate) const SYSTEM_RESET: u32 = 0x8400_0009;
    /// PSCI_FEATURES.
    pub(crate) const FEATURES: u32 = 0x8400_000a;
}

/// Return codes, as the 64-bit value a guest reads in x0.
pub mod ret {
    /// Success.
    pub(crate) const SUCCESS: u64 = 0;
    /// NOT_SUPPORTED (-1).
    pub const NOT_SUPPORTED: u64 = -1i64 as u64;
    /// INVALID_PARAMETERS (-2).
    pub(crate) const INVALID_PARAMETERS: u64 = -2i64 as u64;
    /// INTERNAL_FAILURE (-6).
    pub(crate) const INTERNAL_FAILURE: u64 = -6i64 as u64;
    /// ALREADY_ON (-4).
    pub(crate) const ALREADY_ON: u64 = -4i64 as u64;
    /// INVALID_ADDRESS (-9).
    pub(crate) const INVALID_ADDRESS: u64 = -9i64 as u64;
}

/// The version this VMM implements: 1.1.
pub const VERSION_1_1: u64 = 0x0001_0001;

/// Every function this VMM implements (PSCI_FEATURES answers 0 for these):
/// those PSCI 1.1 makes mandatory.
pub(crate) const IMPLEMENTED: [u32; 11] = [
    fid::VERSION,
    fid::CPU_SUSPEND_32,
    fid::CPU_SUSPEND_64,
    fid::CPU_OFF,
    fid::CPU_ON_32,
    fid::CPU_ON_64,
    fid::AFFINITY_INFO_32,
    fid::AFFINITY_INFO_64,
    fid::SYSTEM_OFF,
    fid::SYSTEM_RESET,
    fid::FEATURES,
];

/// AFFINITY_INFO: the target is on.
pub(crate) const AFFINITY_ON: u64 = 0;
/// AFFINITY_INFO: the target is off.
pub(crate) const AFFINITY_OFF: u64 = 1;

/// A PSCI call, from x0-x3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Call {
    /// PSCI_VERSION.
    Version,
    /// PSCI_FEATURES(function id).
    Features(u64),
    /// CPU_ON(target MPIDR, entry point, context id).
    CpuOn {
        /// The target's MPIDR affinity.
        target: u64,
        /// Where it starts.
        entry: u64,
        /// Its x0.
        context: u64,
    },
    /// CPU_OFF.
    CpuOff,
    /// CPU_SUSPEND: returns at once, as a wake-up before the state was
    /// entered may (the vCPU does not sleep; the VMM has nothing to save).
    CpuSuspend,
    /// AFFINITY_INFO(target MPIDR, lowest affinity level).
    AffinityInfo {
        /// The target's MPIDR affinity.
        target: u64,
        /// Only level 0 (one vCPU) is answered.
        level: u64,
    },
    /// SYSTEM_OFF.
    SystemOff,
    /// SYSTEM_RESET.
    SystemReset,
    /// Anything else: NOT_SUPPORTED in x0.
    Unsupported,
}

impl Call {
    /// Decodes a call from the guest's x0-x3. The function id is w0; an
    /// SMC32 call's arguments are 32-bit.
    pub(crate) fn decode(x: [u64; 4]) -> Call {
        let [x0, x1, x2, x3] = x;
        let narrow = |v: u64| v & 0xffff_ffff;
        // A function id with bits above w0 set names no PSCI function.
        let Ok(function) = u32::try_from(x0) else { return Call::Unsupported };
        match function {
            fid::VERSION => Call::Version,
            fid::FEATURES => Call::Features(narrow(x1)),
            fid::CPU_ON_32 => Call::CpuOn { target: narrow(x1), entry: narrow(x2), context: narrow(x3) },
            fid::CPU_ON_64 => Call::CpuOn { target: x1, entry: x2, context: x3 },
            fid::CPU_OFF => Call::CpuOff,
            fid::CPU_SUSPEND_32 | fid::CPU_SUSPEND_64 => Call::CpuSuspend,
            fid::AFFINITY_INFO_32 => Call::AffinityInfo { target: narrow(x1), level: narrow(x2) },
            fid::AFFINITY_INFO_64 => Call::AffinityInfo { target: x1, level: x2 },
            fid::SYSTEM_OFF => Call::SystemOff,
            fid::SYSTEM_RESET => Call::SystemReset,
            _ => Call::Unsupported,
        }
    }
}

/// PSCI_FEATURES: 0 for an implemented function, else NOT_SUPPORTED.
pub(crate) fn features(function: u64) -> u64 {
    let implemented = u32::try_from(function).is_ok_and(|f| IMPLEMENTED.contains(&f));
    if implemented {
        ret::SUCCESS
    } else {
        ret::NOT_SUPPORTED
    }
}

/// What a PSCI call comes to.
pub(super) enum Psci {
    /// Return this in x0 and move past the call.
    Return(u64),
    /// The calling vCPU is off.
    Off,
    /// The VM is off.
    SystemOff,
    /// Restart the boot vCPU at its entry with x0.
    Reset { vcpu: VcpuId, entry: u64, arg: u64 },
}

impl<K: Kernel, A: Platform, const VMS: usize> Vmm<K, A, VMS> {
    /// SYSTEM_RESET from the boot vCPU: its entry state goes into its TCB
    /// and vCPU, and an empty reply (seL4 then takes no registers from the
    /// reply) resumes it there.
    #[cold]
    pub(super) fn restart_self(&mut self, id: VmId, vcpu: VcpuId, entry: u64, arg: u64) -> ExitAction {
        let Some(caps) = self.registry.entry(id).and_then(|e| e.vm.vcpu_caps(vcpu)) else {
            return self.stop_vm(id, StopReason::NoSuchVcpu);
        };
        match self.start_at(caps, entry, arg, false) {
            Ok(()) => ExitAction::Resume,
            Err(e) => self.stop_vm(id, StopReason::Kernel(e)),
        }
    }

    /// SYSTEM_RESET from a vCPU other than the boot one: it parks, the boot
    /// vCPU restarts.
    #[cold]
    pub(super) fn restart_other(&mut self, id: VmId, caller: VcpuId, boot: VcpuId, entry: u64, arg: u64) -> ExitAction {
        let Some(caps) = self.registry.entry(id).and_then(|e| e.vm.vcpu_caps(boot)) else {
            return self.stop_vm(id, StopReason::NoSuchVcpu);
        };
        if let Some((tcb, _)) = self.registry.entry(id).and_then(|e| e.vm.vcpu_caps(caller)) {
            let _ = self.kernel.tcb_suspend(tcb);
        }
        self.vcpu_stopped(id, caller);
        match self.start_at(caps, entry, arg, true) {
            Ok(()) => {
                if let Some(e) = self.registry.entry_mut(id) {
                    e.vm.set_vcpu_state(boot, VcpuState::Running);
                }
                ExitAction::Park
            }
            Err(e) => self.stop_vm(id, StopReason::Kernel(e)),
        }
    }

    /// Sets a vCPU to enter at EL1h at `entry` with `arg` in x0, with its
    /// MMU and caches off (SCTLR_EL1 at its reset value), as PSCI CPU_ON
    /// and a reset promise the entry code.
    fn start_at(&mut self, (tcb, vcpu): (TcbCap, VCpuCap), entry: u64, arg: u64, resume: bool) -> Result<(), Refused> {
        let k = &mut self.kernel;
        k.vcpu_write_reg(vcpu, VcpuReg::Sctlr, SCTLR_EL1_RESET).during(Invocation::VcpuWriteRegs)?;
        let write = |k: &mut K, reg, value| k.tcb_write_register(tcb, reg, value).during(Invocation::TcbWriteRegisters);
        write(k, TcbReg::Spsr, SPSR_EL1H_MASKED)?;
        write(k, TcbReg::X(0), arg)?;
        write(k, TcbReg::Pc, entry)?;
        if resume {
            k.tcb_resume(tcb).during(Invocation::TcbResume)?;
        }
        Ok(())
    }

    /// Carries out a PSCI call of vCPU `vcpu`.
    #[inline]
    pub(super) fn psci(&mut self, id: VmId, vcpu: VcpuId, call: Call) -> Psci {
        match call {
            Call::Version => Psci::Return(VERSION_1_1),
            Call::Features(f) => Psci::Return(features(f)),
            Call::Unsupported => Psci::Return(ret::NOT_SUPPORTED),
            Call::CpuOff => self.cpu_off(id, vcpu),
            Call::CpuSuspend => Psci::Return(ret::SUCCESS),
            Call::AffinityInfo { target, level } => Psci::Return(self.affinity_info(id, target, level)),
            Call::SystemOff => Psci::SystemOff,
            Call::SystemReset => self.system_reset(id, vcpu),
            Call::CpuOn { target, entry, context } => Psci::Return(self.cpu_on(id, target, entry, context)),
        }
    }

    /// PSCI CPU_OFF: the calling vCPU stops.
    #[cold]
    fn cpu_off(&mut self, id: VmId, vcpu: VcpuId) -> Psci {
        if let Some((tcb, _)) = self.registry.entry(id).and_then(|e| e.vm.vcpu_caps(vcpu)) {
            let _ = self.kernel.tcb_suspend(tcb);
        }
        self.vcpu_stopped(id, vcpu);
        Psci::Off
    }

    /// PSCI SYSTEM_RESET: every other vCPU stops; the boot vCPU starts
    /// again.
    #[cold]
    fn system_reset(&mut self, id: VmId, vcpu: VcpuId) -> Psci {
        let Some(vm) = self.registry.entry_mut(id).map(|e| &mut e.vm) else {
            return Psci::Return(ret::NOT_SUPPORTED);
        };
        let Some(boot) = vm.boot else { return Psci::Return(ret::NOT_SUPPORTED) };
        for (other, v) in (0..).map(VcpuId).zip(vm.vcpus.iter_mut()) {
            if other != vcpu && other != boot.vcpu && v.state == VcpuState::Running {
                let _ = self.kernel.tcb_suspend(v.caps().0);
                v.set_state(VcpuState::Stopped);
            }
        }
        Psci::Reset { vcpu: boot.vcpu, entry: boot.entry, arg: boot.arg }
    }

    /// PSCI AFFINITY_INFO at level 0: is the vCPU whose id is the MPIDR's
    /// Aff0 on?
    fn affinity_info(&self, id: VmId, target: u64, level: u64) -> u64 {
        let Some(e) = self.registry.entry(id) else { return ret::INVALID_PARAMETERS };
        let valid = level == 0 && target >> 8 == 0 && target < u64::from(self.config.vcpu_limit);
        match (valid, e.vm.vcpu_state(VcpuId(target as u32))) {
            (false, _) | (true, VcpuState::Absent) => ret::INVALID_PARAMETERS,
            (true, VcpuState::Running) => AFFINITY_ON,
            (true, VcpuState::Stopped) => AFFINITY_OFF,
        }
    }

    /// PSCI CPU_ON: the target is the vCPU whose id is the MPIDR's Aff0.
    fn cpu_on(&mut self, id: VmId, target: u64, entry: u64, context: u64) -> u64 {
        let Some(e) = self.registry.entry(id) else { return ret::INVALID_PARAMETERS };
        let Ok(t) = u32::try_from(target) else { return ret::INVALID_PARAMETERS };
        if target >> 8 != 0 || t >= self.config.vcpu_limit {
            return ret::INVALID_PARAMETERS;
        }
        let t = VcpuId(t);
        match e.vm.vcpu_state(t) {
            VcpuState::Absent => return ret::INVALID_PARAMETERS,
            VcpuState::Running => return ret::ALREADY_ON,
            VcpuState::Stopped => {}
        }
        if e.vm.memslots.find_gpa(Gpa(entry)).is_none() {
            return ret::INVALID_ADDRESS;
        }
        let Some(caps) = e.vm.vcpu_caps(t) else { return ret::INVALID_PARAMETERS };
        match self.start_at(caps, entry, context, true) {
            Ok(()) => {
                if let Some(e) = self.registry.entry_mut(id) {
                    e.vm.set_vcpu_state(t, VcpuState::Running);
                }
                ret::SUCCESS
            }
            Err(_) => ret::INTERNAL_FAILURE,
        }
    }
}
