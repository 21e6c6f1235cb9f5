//! WFI: a vCPU with nothing to do waits without running (rule 6.11).
//!
//! seL4 traps WFI and WFE to the VMM. Resuming at once would make an idle
//! vCPU spin, taking its share of the core from the VM's busy vCPUs, where
//! an idle CPU costs nothing. So a vCPU of a VM with a virtual GIC that
//! executes WFI with no interrupt in, or ready for, its list registers is
//! suspended until:
//! - an interrupt is put into its list registers (an SGI, an SPI routed to
//!   it), or
//! - its virtual timer's deadline (`CNTV_CVAL_EL0`, when `CNTV_CTL_EL0`
//!   enables it unmasked) has passed: seL4 raises a vCPU's timer only while
//!   that vCPU runs, so the VMM watches the deadline itself, at the VM's
//!   WFI and timer exits.
//!
//! The last vCPU of the VM still awake is never suspended: its WFI returns
//! at once, and its exits are what wake the others at their deadlines. WFE,
//! a VM without a virtual GIC, and a platform that cannot read the guests'
//! count ([`Platform::now`]) keep the plain answer: the vCPU resumes past
//! the instruction.

use crate::arch::aarch64::esr::Esr;
use crate::arch::aarch64::regs::VcpuReg;
use crate::caps::TcbCap;
use crate::kernel::{During, Invocation, Kernel, Refused};
use crate::platform::Platform;
use crate::vm::{Idle, VcpuState};
use crate::Vmm;
use vmm_abi::{VcpuId, VmId};

use super::exit::{ExitAction, StopReason};

/// `CNTV_CTL_EL0`: the timer is enabled, and its interrupt masked.
const CNTV_ENABLE: u64 = 1 << 0;
const CNTV_IMASK: u64 = 1 << 1;

/// The deadline a vCPU's virtual timer sets, if it is enabled and unmasked.
pub(crate) fn timer_deadline(ctl: u64, cval: u64) -> Option<u64> {
    (ctl & (CNTV_ENABLE | CNTV_IMASK) == CNTV_ENABLE).then_some(cval)
}

impl<K: Kernel, A: Platform, const VMS: usize> Vmm<K, A, VMS> {
    /// A trapped WFI or WFE of `vcpu` of VM `id`, whose TCB is `tcb`: the PC
    /// moves past it, the VM's vCPUs whose deadline has passed wake, and
    /// this one either resumes or (WFI only) waits.
    pub(super) fn wfx(&mut self, id: VmId, vcpu: VcpuId, tcb: TcbCap, esr: Esr) -> ExitAction {
        if let Err(e) = self.advance(tcb, esr) {
            return self.stop_vm(id, StopReason::Kernel(e));
        }
        // Only a VM with a virtual GIC has vCPUs that wait: without one,
        // there is no clock to read and nobody to wake.
        if self.gics.get(id).is_none() {
            return ExitAction::Resume;
        }
        let Some(now) = self.hooks.now() else { return ExitAction::Resume };
        if let Err(e) = self.wake_due(id, now) {
            return self.stop_vm(id, StopReason::Kernel(e));
        }
        if esr.wfe() || self.gics.get(id).is_none_or(|m| m.busy(vcpu)) {
            return ExitAction::Resume;
        }
        let Some(entry) = self.registry.entry(id) else { return ExitAction::Resume };
        let others_awake =
            entry.vm.vcpus().any(|(v, c)| v != vcpu && c.state() == VcpuState::Running && c.idle == Idle::Awake);
        if !others_awake {
            return ExitAction::Resume;
        }
        let Some((_, vc)) = entry.vm.vcpu(vcpu).map(|v| v.caps()) else { return ExitAction::Resume };
        let k = &mut self.kernel;
        let timer = k
            .vcpu_read_reg(vc, VcpuReg::CntvCtl)
            .and_then(|ctl| Ok(timer_deadline(ctl, k.vcpu_read_reg(vc, VcpuReg::CntvCval)?)))
            .during(Invocation::VcpuReadRegs);
        let deadline = match timer {
            Ok(d) => d,
            Err(e) => return self.stop_vm(id, StopReason::Kernel(e)),
        };
        if deadline.is_some_and(|d| d <= now) {
            return ExitAction::Resume;
        }
        if let Err(e) = self.kernel.tcb_suspend(tcb).during(Invocation::TcbSuspend) {
            return self.stop_vm(id, StopReason::Kernel(e));
        }
        if let Some(v) = self.registry.entry_mut(id).and_then(|e| e.vm.vcpu_mut(vcpu)) {
            v.idle = Idle::Waiting { deadline };
        }
        // No reply: the TCB is suspended, and resumes past the WFI.
        ExitAction::Park
    }

    /// Wakes every waiting vCPU of VM `id` whose deadline is at or before
    /// `now`.
    pub(super) fn wake_due(&mut self, id: VmId, now: u64) -> Result<(), Refused> {
        let Some(entry) = self.registry.entry_mut(id) else { return Ok(()) };
        for v in entry.vm.vcpus.iter_mut() {
            if let Idle::Waiting { deadline: Some(d) } = v.idle {
                if d <= now {
                    self.kernel.tcb_resume(v.caps().0).during(Invocation::TcbResume)?;
                    v.idle = Idle::Awake;
                }
            }
        }
        Ok(())
    }

    /// Wakes vCPU `vcpu` of VM `id` if it waits: an interrupt went into its
    /// list registers.
    pub(super) fn wake(&mut self, id: VmId, vcpu: VcpuId) -> Result<(), Refused> {
        let Some(v) = self.registry.entry_mut(id).and_then(|e| e.vm.vcpu_mut(vcpu)) else { return Ok(()) };
        if v.idle != Idle::Awake {
            self.kernel.tcb_resume(v.caps().0).during(Invocation::TcbResume)?;
            v.idle = Idle::Awake;
        }
        Ok(())
    }
}

#[cfg(kani)]
mod proofs {
    use super::*;

    /// Only an enabled, unmasked timer sets a deadline, and it is its
    /// compare value.
    #[kani::proof]
    fn a_deadline_only_from_an_enabled_unmasked_timer() {
        let (ctl, cval): (u64, u64) = (kani::any(), kani::any());
        let d = timer_deadline(ctl, cval);
        assert_eq!(d.is_some(), ctl & 1 == 1 && ctl & 2 == 0);
        assert!(d.is_none_or(|d| d == cval));
    }
}
