//! The capabilities Microkit gives a VMM over its VM's vCPUs.
//!
//! Microkit 2.3 places, for each `<vcpu id="n">` of the PD's
//! `<virtual_machine>`, the vCPU's TCB at slot 266 + n and its vCPU object at
//! slot 330 + n of the VMM's CSpace (`BASE_VM_TCB_CAP` and `BASE_VCPU_CAP` in
//! the SDK's `microkit.h`); the fault endpoint badge of vCPU n is n, so a
//! fault arrives as `Child(n)`. rust-sel4's `sel4-microkit` wraps neither
//! slot, hence this helper.

/// `BASE_VM_TCB_CAP` of Microkit 2.3's `microkit.h`.
pub const BASE_VM_TCB_SLOT: u64 = 266;
/// `BASE_VCPU_CAP` of Microkit 2.3's `microkit.h`.
pub const BASE_VCPU_SLOT: u64 = 330;
/// The highest vCPU id Microkit accepts (`VCPU_MAX_ID`).
pub const MAX_VCPU_ID: u64 = 61;

/// vCPU `id` of this PD's virtual machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmVcpu {
    id: u64,
}

impl VmVcpu {
    /// vCPU `id`, if Microkit could have declared it.
    pub const fn new(id: u64) -> Option<VmVcpu> {
        if id <= MAX_VCPU_ID {
            Some(VmVcpu { id })
        } else {
            None
        }
    }

    /// Its id.
    pub const fn id(self) -> u64 {
        self.id
    }

    /// The vCPU's TCB.
    pub fn tcb(self) -> sel4::cap::Tcb {
        sel4::cap::Tcb::from_bits(BASE_VM_TCB_SLOT + self.id)
    }

    /// The vCPU object (its EL1 system registers, virtual interrupts).
    pub fn vcpu(self) -> sel4::cap::VCpu {
        sel4::cap::VCpu::from_bits(BASE_VCPU_SLOT + self.id)
    }
}
