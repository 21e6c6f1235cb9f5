//! AArch64: the seL4 fault messages a VMM receives for its VM, the exception
//! syndrome, MMIO access decoding and extension, PSCI, virtual interrupts, the register names,
//! what the VMM does with each guest exit, and the virtual GIC's register model.

pub mod esr;
pub(crate) mod exit;
pub mod fault;
pub(crate) mod irq;
pub mod mmio;
pub mod psci;
pub mod regs;
pub mod vgic;
