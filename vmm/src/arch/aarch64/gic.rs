//! A VM's virtual GIC wired into its exits (rule 6.10): the VMM gives a VM
//! the GIC (its frames' windows in the device table, the register model of
//! [`vgic`](super::vgic) beside the VM), the guest's accesses to the
//! frames and its SGI system register go to the model, and what the model
//! makes ready goes into the vCPUs' list registers.
//!
//! The model has a CPU interface for every vCPU the VM may have (the
//! configuration's vCPU limit), created or not: an interrupt routed only to
//! a vCPU not created waits, pending, in the model.

use crate::addr::Gpa;
use crate::arch::aarch64::esr::Esr;
use crate::arch::aarch64::mmio::Access;
use crate::arch::aarch64::regs::TcbReg;
use crate::caps::TcbCap;
use crate::devices::{Device, DeviceError, GicFrame};
use crate::error::Error;
use crate::kernel::{During, Invocation, Kernel, Refused, Virq};
use crate::platform::Platform;
use crate::registry::Caller;
use crate::vm::{Idle, VcpuState};
use crate::Vmm;
use vmm_abi::{VcpuId, VmId};

use super::exit::{Abort, ExitAction, StopReason};
use super::vgic::{Effects, GicVersion, Line, Vgic, VgicError};

/// ICC_SGI1R_EL1 and ICC_SGI0R_EL1 as a trapped MSR's syndrome names them
/// (Op0 3, Op1 0, CRn 12, CRm 11; Op2 5 and 7), with the ISS's Rt and
/// direction bits cleared.
const SGI1R: u64 = iss_sysreg(3, 0, 12, 11, 5);
const SGI0R: u64 = iss_sysreg(3, 0, 12, 11, 7);
/// The ISS bits that name the register (all but Rt, 9:5, and the
/// direction, 0).
const SYSREG_MASK: u64 = 0x3f_fc1e;
/// The exception class of a trapped MSR or MRS.
const EC_SYSREG: u8 = 0x18;

const fn iss_sysreg(op0: u64, op1: u64, crn: u64, crm: u64, op2: u64) -> u64 {
    op0 << 20 | op2 << 17 | op1 << 14 | crn << 10 | crm << 1
}

/// The virtual GICs of the VMs that have one, beside the registry: a VM
/// is the same size with or without one, and is never copied with a model
/// in it (a model is about 1.5 KiB).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Gics<const N: usize>(heapless::Vec<(VmId, Vgic), N>);

impl<const N: usize> Default for Gics<N> {
    fn default() -> Self {
        Gics(heapless::Vec::new())
    }
}

impl<const N: usize> Gics<N> {
    /// VM `id`'s model.
    pub(crate) fn get(&self, id: VmId) -> Option<&Vgic> {
        self.0.iter().find(|(v, _)| *v == id).map(|(_, g)| g)
    }

    /// VM `id`'s model, mutably.
    pub(crate) fn get_mut(&mut self, id: VmId) -> Option<&mut Vgic> {
        self.0.iter_mut().find(|(v, _)| *v == id).map(|(_, g)| g)
    }

    /// Forgets VM `id`'s model (its VM is gone).
    pub(crate) fn remove(&mut self, id: VmId) {
        self.0.retain(|(v, _)| *v != id);
    }
}

impl<K: Kernel, A: Platform, const VMS: usize> Vmm<K, A, VMS> {
    /// Gives VM `id` a virtual GIC of `version`: its distributor at `dist`
    /// and, for a GICv3 only, its redistributors from `redist` (128 KiB a
    /// vCPU, for every vCPU the VM may have). The VMM does this, as it
    /// registers devices (rule 6.9), never a request. A second GIC is
    /// `EEXIST`, redistributors given to a GICv2 or missing from a GICv3
    /// `EINVAL`, frames over another device `EEXIST`; nothing changes then.
    #[inline(never)]
    pub fn register_gic(
        &mut self,
        caller: Caller,
        id: VmId,
        version: GicVersion,
        dist: Gpa,
        redist: Option<Gpa>,
    ) -> Result<(), Error> {
        let vcpus = self.config.vcpu_limit;
        let vm = &mut self.registry.get_mut(caller, id)?.vm;
        if self.gics.get(id).is_some() {
            return Err(DeviceError::GicExists.into());
        }
        let model = Vgic::new(version, vcpus).map_err(|_| DeviceError::GicFrames)?;
        let redist = match (version, redist) {
            (GicVersion::V2, None) => None,
            (GicVersion::V3, Some(r)) => Some(r),
            _ => return Err(DeviceError::GicFrames.into()),
        };
        // Both windows or neither: into a copy first.
        let mut devices = vm.devices.clone();
        devices.register(dist, model.dist_size(), Device::Gic(GicFrame::Distributor))?;
        if let Some(r) = redist {
            devices.register(r, model.redist_size(), Device::Gic(GicFrame::Redistributors))?;
        }
        // Room for every VM the registry holds: cannot be full.
        self.gics.0.push((id, model)).map_err(|_| DeviceError::Full)?;
        vm.devices = devices;
        Ok(())
    }

    /// The virtual GIC of VM `id`, if it has one: its register model.
    pub fn vgic(&self, id: VmId) -> Option<&Vgic> {
        self.registry.entry(id)?;
        self.gics.get(id)
    }

    /// The guest's access `at`, at `offset` in frame `frame` of its virtual
    /// GIC: performed on the model, the PC moved past it, and what it made
    /// ready delivered.
    // Kept out of line: its frame (the model's work) is then on the stack
    // only for an access to the GIC, not for every exit.
    #[inline(never)]
    pub(super) fn gic_mmio(&mut self, at: Abort, frame: GicFrame, offset: u64) -> ExitAction {
        let Abort { id, vcpu, tcb, pc, gpa, esr } = at;
        let access = match Access::decode(gpa, esr) {
            Ok(a) => a,
            Err(error) => return self.stop_vm(id, StopReason::Mmio { gpa, error }),
        };
        let value = match (access.write, access.reg) {
            (true, Some(r)) => {
                match self.kernel.tcb_read_register(tcb, TcbReg::X(r)).during(Invocation::TcbReadRegisters) {
                    Ok(v) => access.store_value(v),
                    Err(e) => return self.stop_vm(id, StopReason::Kernel(e)),
                }
            }
            _ => 0,
        };
        let Some(model) = self.gics.get_mut(id) else {
            return self.stop_vm(id, StopReason::Unmapped { gpa });
        };
        let size = access.size;
        let done = match (frame, access.write) {
            (GicFrame::Distributor, false) => {
                model.dist_read(vcpu, offset, size).map(|raw| (Some(raw), Effects::default()))
            }
            (GicFrame::Distributor, true) => model.dist_write(vcpu, offset, size, value).map(|fx| (None, fx)),
            (GicFrame::Redistributors, false) => {
                model.redist_read(offset, size).map(|raw| (Some(raw), Effects::default()))
            }
            (GicFrame::Redistributors, true) => model.redist_write(offset, size, value).map(|fx| (None, fx)),
        };
        let (loaded, fx) = match done {
            Ok(d) => d,
            Err(error) => return self.stop_vm(id, StopReason::Vgic { gpa, error }),
        };
        let result = loaded.and_then(|raw| access.reg.map(|r| (TcbReg::X(r), access.load_result(raw))));
        let r = self
            .kernel
            .tcb_write_result(tcb, result, pc.wrapping_add(esr.instruction_len()))
            .during(Invocation::TcbWriteRegisters)
            .and_then(|()| self.deliver(id, fx));
        match r {
            Ok(()) => ExitAction::Resume,
            Err(e) => self.stop_vm(id, StopReason::Kernel(e)),
        }
    }

    /// A trapped MSR or MRS of vCPU `vcpu`: a GICv3 guest's write of
    /// ICC_SGI1R_EL1 or ICC_SGI0R_EL1 sends SGIs through the model; `None`
    /// for any other (the VMM does not emulate it).
    #[inline(never)]
    pub(super) fn gic_sysreg(&mut self, id: VmId, vcpu: VcpuId, tcb: TcbCap, esr: Esr) -> Option<ExitAction> {
        let iss = esr.0 & 0x1ff_ffff;
        // A read (direction 1) of a write-only register is not emulated.
        if esr.ec() != EC_SYSREG || iss & 1 == 1 {
            return None;
        }
        let group1 = match iss & SYSREG_MASK {
            SGI1R => true,
            SGI0R => false,
            _ => return None,
        };
        // The caller found the VM; the registers exist on a GICv3 only.
        self.gics.get(id).filter(|m| m.version() == GicVersion::V3)?;
        let rt = (iss >> 5 & 0x1f) as u8;
        let value = match rt {
            31 => Ok(0),
            r => self.kernel.tcb_read_register(tcb, TcbReg::X(r)).during(Invocation::TcbReadRegisters),
        };
        let value = match value {
            Ok(v) => v,
            Err(e) => return Some(self.stop_vm(id, StopReason::Kernel(e))),
        };
        let model = self.gics.get_mut(id)?;
        let fx = match model.sgi_sysreg(vcpu, value, group1) {
            Ok(fx) => fx,
            Err(error) => return Some(self.stop_vm(id, StopReason::Vgic { gpa: Gpa(0), error })),
        };
        let r = self.advance(tcb, esr).and_then(|()| self.deliver(id, fx));
        Some(match r {
            Ok(()) => ExitAction::Resume,
            Err(e) => self.stop_vm(id, StopReason::Kernel(e)),
        })
    }

    /// SPI `irq` of VM `id`'s virtual GIC goes to `level` (IRQ_LINE, or a
    /// device's line) and what that makes ready is delivered. `Err`, and
    /// nothing changed, if the VM has no GIC or `irq` is not one of its
    /// SPIs. A delivery the kernel refuses stops the VM: the level is set
    /// all the same, and the stop is returned for the caller to report.
    #[inline(never)]
    pub(super) fn spi_level(&mut self, id: VmId, irq: u32, level: bool) -> Result<Option<ExitAction>, VgicError> {
        let model = self.gics.get_mut(id).ok_or(VgicError::NoSuchIrq)?;
        let fx = model.set_level(Line::Spi(irq), level)?;
        if let Some(e) = self.registry.entry_mut(id) {
            e.vm.lines.set(irq, level);
        }
        Ok(self.deliver(id, fx).err().map(|e| self.stop_vm(id, StopReason::Kernel(e))))
    }

    /// Puts into the list registers of each vCPU in `fx.kick` what the
    /// model has ready for it, highest priority first, until it has
    /// nothing or every list register is in use. A vCPU not created gets
    /// nothing: its interrupts wait in the model.
    #[inline(never)]
    pub(super) fn deliver(&mut self, id: VmId, fx: Effects) -> Result<(), Refused> {
        let (Some(entry), Some(model)) = (self.registry.entry(id), self.gics.get_mut(id)) else { return Ok(()) };
        let vm = &entry.vm;
        // The waiting vCPUs that got an interrupt, woken after (rule 6.11).
        let mut woken = 0u32;
        for v in fx.kick.iter() {
            let Some(vcpu) = vm.vcpus.get(v.0 as usize).filter(|c| c.state != VcpuState::Absent) else {
                continue;
            };
            let (_, vc) = vcpu.caps();
            // At most one round per list register: each load fills one.
            while let Some(p) = model.next_for(v) {
                let Ok(irq) = u16::try_from(p.intid) else { break };
                let virq = Virq { irq, priority: p.priority >> 3, group1: p.group1 };
                self.kernel.vcpu_inject_irq(vc, virq, p.lr).during(Invocation::VcpuInjectIrq)?;
                if vcpu.idle != Idle::Awake {
                    woken |= 1 << (v.0 % 32);
                }
                if model.load(v, p).is_err() {
                    break;
                }
            }
        }
        while woken != 0 {
            let v = woken.trailing_zeros();
            woken &= woken - 1;
            self.wake(id, VcpuId(v))?;
        }
        Ok(())
    }
}
