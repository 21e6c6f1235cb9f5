//! AArch64: the seL4 fault messages a VMM receives for its VM, the exception
//! syndrome, MMIO access decoding and extension, PSCI, virtual interrupts, the register names,
//! what the VMM does with each guest exit, the virtual GIC's register model,
//! that model wired into a VM's exits (`gic`), and a waiting vCPU (`idle`).

pub mod esr;
pub(crate) mod exit;
pub mod fault;
pub(crate) mod gic;
pub(crate) mod idle;
pub(crate) mod irq;
pub mod mmio;
pub mod psci;
pub mod regs;
pub mod vgic;
