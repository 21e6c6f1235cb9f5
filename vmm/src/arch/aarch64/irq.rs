//! Virtual interrupts: the lines a VM's owner raises (IRQ_LINE), the
//! virtual PPIs seL4 delivers (the guest's timer), and the list registers of
//! the virtual GIC CPU interface the VMM fills for each vCPU.
//!
//! A virtual PPI is injected into a free list register; the kernel keeps it
//! masked until the guest has taken it (the maintenance exit) and the VMM
//! acknowledges it. With every list register in use it waits, and goes in
//! when one frees.

use crate::error::Error;
use crate::kernel::{During, Invocation, Kernel, Virq};
use crate::platform::Platform;
use crate::registry::Caller;
use crate::vm::{VcpuState, VmError};
use crate::Vmm;
use vmm_abi::limits::{MAX_IRQ, MIN_IRQ};
use vmm_abi::{ClientId, VcpuId, VmId};

use super::exit::{ExitAction, StopReason};
use super::fault::ExitError;
use super::vgic::Line;

/// List registers of the virtual GIC interface the VMM fills (GICv2 and the
/// GICv3 of the boards here have at least four).
pub(crate) const LIST_REGISTERS: u8 = 4;

/// The first PPI; PPIs are interrupt ids 16 to 31.
const PPI_BASE: u16 = 16;

/// One vCPU's virtual interrupts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct VcpuIrqs {
    /// List registers in use, a bit each.
    list_regs: u8,
    /// Virtual PPIs (bit `ppi - 16`) delivered and not yet acknowledged.
    pub(super) ppis_pending: u16,
    /// Virtual PPIs that arrived while every list register was full.
    ppis_waiting: u16,
}

impl VcpuIrqs {
    /// Takes the lowest free list register.
    fn take_list_register(&mut self) -> Option<u8> {
        let free = (0..LIST_REGISTERS).find(|i| self.list_regs >> i & 1 == 0)?;
        self.list_regs |= 1 << free;
        Some(free)
    }

    /// Gives back list register `index` (all of them when the kernel could
    /// not say which).
    fn free_list_register(&mut self, index: Option<u8>) {
        match index {
            Some(i) if i < LIST_REGISTERS => self.list_regs &= !(1 << i),
            Some(_) => {}
            None => self.list_regs = 0,
        }
    }
}

/// The level of each of a VM's interrupt lines, a bit per line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Lines([u64; (MAX_IRQ as usize).div_ceil(64)]);

impl Default for Lines {
    fn default() -> Self {
        Lines([0; (MAX_IRQ as usize).div_ceil(64)])
    }
}

impl Lines {
    /// The level of line `irq`.
    pub(crate) fn level(&self, irq: u32) -> bool {
        self.0.get((irq / 64) as usize).is_some_and(|w| w >> (irq % 64) & 1 == 1)
    }

    /// Sets the level of line `irq`.
    pub(crate) fn set(&mut self, irq: u32, level: bool) {
        if let Some(w) = self.0.get_mut((irq / 64) as usize) {
            let bit = 1u64 << (irq % 64);
            if level {
                *w |= bit;
            } else {
                *w &= !bit;
            }
        }
    }
}

impl<K: Kernel, A: Platform, const VMS: usize> Vmm<K, A, VMS> {
    /// The client's VM the last request stopped while delivering an
    /// interrupt (IRQ_LINE, rule 6.10), and its owner, for the deployment to
    /// tell as it tells of a stop at an exit; each is given once.
    pub fn take_stopped(&mut self) -> Option<(ClientId, VmId)> {
        self.stopped.take()
    }

    /// IRQ_LINE: set line `irq` to `level`. With a virtual GIC the line is
    /// one of its SPIs and the distributor decides where it goes (rule
    /// 6.10); without, a rising edge injects it into vCPU 0 (a level that
    /// stays high is not injected again).
    pub fn irq_line(&mut self, caller: Caller, id: VmId, irq: u32, level: u32) -> Result<(), Error> {
        let vm = &mut self.registry.get_mut(caller, id)?.vm;
        if !(MIN_IRQ..MAX_IRQ).contains(&irq) || level > 1 {
            return Err(VmError::BadIrq.into());
        }
        let high = level == 1;
        if self.gics.get(id).is_some() {
            // The line is set: that is the request, done. Delivering what
            // it made ready is the VM's, as at an exit: an injection the
            // kernel refuses stops the VM, and its owner is to be told.
            if let Some(ExitAction::Stop { notify: Some(owner), .. }) =
                self.spi_level(id, irq, high).map_err(|_| VmError::BadIrq)?
            {
                self.stopped = Some((owner, id));
            }
            return Ok(());
        }
        if high && !vm.lines.level(irq) {
            let line = u16::try_from(irq).map_err(|_| VmError::BadIrq)?;
            let vcpu = vm.vcpu_mut(VcpuId(0)).filter(|v| v.state() != VcpuState::Absent).ok_or(VmError::NoSuchVcpu)?;
            let (_, vc) = vcpu.caps();
            let lr = vcpu.irqs.take_list_register().ok_or(VmError::ListRegistersFull)?;
            if let Err(e) = self.kernel.vcpu_inject_irq(vc, Virq::plain(line), lr).during(Invocation::VcpuInjectIrq) {
                vcpu.irqs.free_list_register(Some(lr));
                return Err(e.into());
            }
        }
        vm.lines.set(irq, high);
        Ok(())
    }

    /// A virtual PPI for vCPU `vcpu`: with a virtual GIC, raised there
    /// (rule 6.10); without, into a free list register, or waiting for one.
    pub(super) fn vppi(&mut self, id: VmId, vcpu: VcpuId, irq: u16) -> ExitAction {
        let Some(bit) = irq.checked_sub(PPI_BASE).filter(|b| *b < 16) else {
            return self.stop_vm(id, StopReason::BadMessage(ExitError::BadPpi));
        };
        let Some(entry) = self.registry.entry_mut(id) else { return self.stop_vm(id, StopReason::NoSuchVcpu) };
        let vm = &mut entry.vm;
        if let Some(model) = self.gics.get_mut(id) {
            let Some(v) = vm.vcpus.get_mut(vcpu.0 as usize) else {
                return self.stop_vm(id, StopReason::NoSuchVcpu);
            };
            let fx = match model.raise(Line::Ppi(vcpu, u32::from(irq))) {
                Ok(fx) => fx,
                Err(_) => return self.stop_vm(id, StopReason::BadMessage(ExitError::BadPpi)),
            };
            // The kernel keeps it masked until acknowledged: at its EOI.
            v.irqs.ppis_pending |= 1 << bit;
            // A running vCPU's timer: the time to wake the VM's waiting
            // vCPUs whose deadline has passed (rule 6.11).
            if let Some(now) = self.hooks.now() {
                if let Err(e) = self.wake_due(id, now) {
                    return self.stop_vm(id, StopReason::Kernel(e));
                }
            }
            return match self.deliver(id, fx) {
                Ok(()) => ExitAction::Resume,
                Err(e) => self.stop_vm(id, StopReason::Kernel(e)),
            };
        }
        let Some(v) = vm.vcpu_mut(vcpu) else {
            return self.stop_vm(id, StopReason::NoSuchVcpu);
        };
        let (_, vc) = v.caps();
        let Some(lr) = v.irqs.take_list_register() else {
            v.irqs.ppis_waiting |= 1 << bit;
            return ExitAction::Resume;
        };
        if let Err(err) = self.kernel.vcpu_inject_irq(vc, Virq::plain(irq), lr).during(Invocation::VcpuInjectIrq) {
            v.irqs.free_list_register(Some(lr));
            return self.stop_vm(id, StopReason::Kernel(err));
        }
        v.irqs.ppis_pending |= 1 << bit;
        ExitAction::Resume
    }

    /// A list register was consumed: free it, acknowledge the PPIs delivered
    /// to this vCPU so the kernel unmasks them, and inject any that waited
    /// for a list register.
    pub(super) fn maintenance(&mut self, id: VmId, vcpu: VcpuId, index: Option<u8>) -> ExitAction {
        let Some(entry) = self.registry.entry_mut(id) else { return self.stop_vm(id, StopReason::NoSuchVcpu) };
        if self.gics.get(id).is_some() {
            return self.gic_maintenance(id, vcpu, index);
        }
        let Some(v) = entry.vm.vcpu_mut(vcpu) else {
            return self.stop_vm(id, StopReason::NoSuchVcpu);
        };
        let (_, vc) = v.caps();
        v.irqs.free_list_register(index);
        for bit in 0..16u16 {
            if v.irqs.ppis_pending >> bit & 1 == 1 {
                if let Err(err) = self.kernel.vcpu_ack_vppi(vc, PPI_BASE + bit).during(Invocation::VcpuAckVppi) {
                    return self.stop_vm(id, StopReason::Kernel(err));
                }
                v.irqs.ppis_pending &= !(1 << bit);
            }
        }
        let waiting = core::mem::take(&mut v.irqs.ppis_waiting);
        for bit in 0..16u16 {
            if waiting >> bit & 1 == 1 {
                if let ExitAction::Stop { reason, notify } = self.vppi(id, vcpu, PPI_BASE + bit) {
                    return ExitAction::Stop { reason, notify };
                }
            }
        }
        ExitAction::Resume
    }

    /// A maintenance exit of a VM with a virtual GIC (rule 6.10): the
    /// model frees list register `index` and says what the guest
    /// completed; a virtual PPI of the kernel's is acknowledged then, and
    /// what is ready now is delivered. With no index the kernel could not
    /// say which: nothing is freed.
    #[inline(never)]
    fn gic_maintenance(&mut self, id: VmId, vcpu: VcpuId, index: Option<u8>) -> ExitAction {
        let Some(lr) = index else { return ExitAction::Resume };
        let Some(entry) = self.registry.entry_mut(id) else { return self.stop_vm(id, StopReason::NoSuchVcpu) };
        let vm = &mut entry.vm;
        let (Some(model), Some(v)) = (self.gics.get_mut(id), vm.vcpus.get_mut(vcpu.0 as usize)) else {
            return self.stop_vm(id, StopReason::NoSuchVcpu);
        };
        let eoi = match model.on_maintenance(vcpu, lr) {
            Ok(eoi) => eoi,
            Err(_) => return self.stop_vm(id, StopReason::BadMessage(ExitError::BadListRegister)),
        };
        let (_, vc) = v.caps();
        let ppi = eoi.intid.and_then(|i| u16::try_from(i).ok()).filter(|i| (PPI_BASE..PPI_BASE + 16).contains(i));
        if let Some(irq) = ppi.filter(|i| v.irqs.ppis_pending >> (i - PPI_BASE) & 1 == 1) {
            if let Err(err) = self.kernel.vcpu_ack_vppi(vc, irq).during(Invocation::VcpuAckVppi) {
                return self.stop_vm(id, StopReason::Kernel(err));
            }
            v.irqs.ppis_pending &= !(1 << (irq - PPI_BASE));
        }
        match self.deliver(id, eoi.effects) {
            Ok(()) => ExitAction::Resume,
            Err(e) => self.stop_vm(id, StopReason::Kernel(e)),
        }
    }
}
