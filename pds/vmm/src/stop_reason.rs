//! A VM's stop reason as the log says it.

use vmm::vmm::StopReason;

/// `reason`, printable.
pub struct Why(pub StopReason);

impl core::fmt::Display for Why {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            StopReason::SystemOff => write!(f, "PSCI SYSTEM_OFF"),
            StopReason::Unmapped { gpa } => write!(f, "access outside every memslot at {gpa:#x}"),
            StopReason::ReadOnlyWrite { gpa } => write!(f, "write to a read-only memslot at {gpa:#x}"),
            StopReason::NoBacking { gpa } => write!(f, "access to a closed guest_memfd at {gpa:#x}"),
            StopReason::Mmio { gpa, error } => write!(f, "device access at {gpa:#x} not emulated: {error}"),
            StopReason::BadMessage(e) => write!(f, "fault message not understood: {e}"),
            StopReason::UnhandledTrap { ec } => write!(f, "trapped instruction not emulated (EC {ec:#x})"),
            StopReason::GuestException { pc } => write!(f, "guest exception at {pc:#x}"),
            StopReason::NoSuchVcpu => write!(f, "fault from a vCPU the VM does not have"),
            StopReason::Kernel(e) => write!(f, "kernel refused: {e}"),
            StopReason::Map(e) => write!(f, "mapping failed: {e}"),
        }
    }
}
