//! Guest exits: the seL4 fault messages a VMM receives for its VM, decoded
//! into a typed [`Exit`], and the emulation behind them (MMIO accesses,
//! PSCI). Decoding validates every field and never panics: a message that
//! does not make sense is an [`ExitError`], and the VMM stops that VM.
//!
//! Labels and message layouts are those of seL4 16.0.0 on AArch64 with MCS
//! (Microkit's kernels):
//!
//! | fault | label | message registers |
//! |---|---|---|
//! | UnknownSyscall (a guest `hvc`) | 2 | x0-x7, FaultIP, SP, LR, SPSR, syscall |
//! | UserException | 3 | FaultIP, SP, SPSR, number, code |
//! | VMFault (stage 2) | 6 | IP, address, prefetch, FSR (ESR_EL2) |
//! | VGICMaintenance | 7 | list register index or -1 |
//! | VCPUFault (`smc`, `wfi`, traps) | 8 | HSR (ESR_EL2) |
//! | VPPIEvent | 9 | the PPI |

use super::esr::{ec, Esr};
use crate::addr::Gpa;

/// Fault labels (seL4 with MCS on AArch64).
pub mod label {
    /// A syscall number seL4 does not know: a guest `hvc`.
    pub const UNKNOWN_SYSCALL: u64 = 2;
    /// An exception the kernel passes on.
    pub(crate) const USER_EXCEPTION: u64 = 3;
    /// A stage-2 translation or permission fault.
    pub const VM_FAULT: u64 = 6;
    /// A vGIC maintenance interrupt.
    pub(crate) const VGIC_MAINTENANCE: u64 = 7;
    /// A trapped vCPU instruction.
    pub const VCPU_FAULT: u64 = 8;
    /// A virtual PPI (the virtual timer).
    pub(crate) const VPPI_EVENT: u64 = 9;
}

/// Message registers of the longest fault message (UnknownSyscall).
pub(crate) const MAX_FAULT_MRS: usize = 13;

/// Registers in the reply to an `hvc` (an UnknownSyscall fault): x0-x7 and
/// the PC. seL4 copies as many registers as the reply carries, in the order
/// x0-x7, PC, SP, ELR, SPSR, so a reply of nine leaves the last three as
/// they are; the VMM never changes them.
pub const HVC_REPLY_REGS: usize = 9;

/// A guest `hvc`, with the registers a reply can give back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HvcCall {
    /// x0-x7 (SMCCC arguments and results).
    pub x: [u64; 8],
    /// The address of the `hvc`.
    pub pc: u64,
}

impl HvcCall {
    /// The reply that returns `x0` and resumes after the `hvc`, in seL4's
    /// order: x0-x7, PC.
    pub fn returning(&self, x0: u64) -> [u64; HVC_REPLY_REGS] {
        let [_, x1, x2, x3, x4, x5, x6, x7] = self.x;
        [x0, x1, x2, x3, x4, x5, x6, x7, self.pc.wrapping_add(4)]
    }
}

/// A decoded guest exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// A data access faulted at stage 2.
    DataAbort {
        /// The faulting instruction.
        pc: u64,
        /// The guest-physical address.
        gpa: Gpa,
        /// The syndrome.
        esr: Esr,
    },
    /// An instruction fetch faulted at stage 2.
    InstructionAbort {
        /// The faulting instruction.
        pc: u64,
        /// The guest-physical address.
        gpa: Gpa,
        /// The syndrome.
        esr: Esr,
    },
    /// `hvc`.
    Hvc(HvcCall),
    /// `smc` (arguments are read from the TCB).
    Smc {
        /// The syndrome.
        esr: Esr,
    },
    /// `wfi` or `wfe`.
    Wfx {
        /// The syndrome.
        esr: Esr,
    },
    /// Any other trapped instruction.
    Trap {
        /// The syndrome.
        esr: Esr,
    },
    /// The virtual timer (or another PPI) fired.
    Vppi {
        /// The PPI, 16-31.
        irq: u16,
    },
    /// A list register was consumed.
    VgicMaintenance {
        /// Which one, if the kernel knows.
        index: Option<u8>,
    },
    /// An exception seL4 passed on from the guest.
    UserException {
        /// Where.
        pc: u64,
        /// The exception number.
        number: u64,
        /// Its code.
        code: u64,
    },
}

crate::errors! {
    /// Why a fault message could not be decoded.
    pub enum ExitError {
        /// A label the VMM does not handle (or a fault no VM should raise).
        UnknownLabel => EINVAL, "unknown fault label",
        /// Fewer message registers than the label needs.
        Truncated => EINVAL, "fault message shorter than its label needs",
        /// The prefetch flag is neither 0 nor 1, or disagrees with the syndrome.
        BadPrefetch => EINVAL, "prefetch flag disagrees with the syndrome",
        /// The syndrome's class does not fit the fault.
        BadClass => EINVAL, "exception class does not fit the fault",
        /// A PPI outside 16-31.
        BadPpi => EINVAL, "virtual PPI out of range",
        /// A list register index out of range.
        BadListRegister => EINVAL, "vGIC list register index out of range",
    }
}

/// The `i`th message register.
fn mr(mrs: &[u64], i: usize) -> Result<u64, ExitError> {
    mrs.get(i).copied().ok_or(ExitError::Truncated)
}

/// Decodes a fault message: `label` from the message info, `mrs` the
/// message registers it carried.
pub fn decode(label: u64, mrs: &[u64]) -> Result<Exit, ExitError> {
    match label {
        label::VM_FAULT => {
            let (pc, gpa, prefetch, esr) = (mr(mrs, 0)?, mr(mrs, 1)?, mr(mrs, 2)?, Esr(mr(mrs, 3)?));
            match (prefetch, esr.ec()) {
                (0, ec::DABT_LOWER) => Ok(Exit::DataAbort { pc, gpa: Gpa(gpa), esr }),
                (1, ec::IABT_LOWER) => Ok(Exit::InstructionAbort { pc, gpa: Gpa(gpa), esr }),
                (0 | 1, _) => Err(ExitError::BadClass),
                _ => Err(ExitError::BadPrefetch),
            }
        }
        label::UNKNOWN_SYSCALL => {
            // MRs 9-11 are SP, ELR and SPSR, which the VMM leaves alone; MR
            // 12 is the syscall number (the guest's x7). Nothing to check,
            // but a message without them is truncated.
            let Some(&[x0, x1, x2, x3, x4, x5, x6, x7, pc, _, _, _, _]) = mrs.get(..MAX_FAULT_MRS) else {
                return Err(ExitError::Truncated);
            };
            Ok(Exit::Hvc(HvcCall { x: [x0, x1, x2, x3, x4, x5, x6, x7], pc }))
        }
        label::VCPU_FAULT => {
            let esr = Esr(mr(mrs, 0)?);
            Ok(match esr.ec() {
                ec::SMC64 => Exit::Smc { esr },
                ec::WFX => Exit::Wfx { esr },
                ec::DABT_LOWER | ec::IABT_LOWER => return Err(ExitError::BadClass),
                _ => Exit::Trap { esr },
            })
        }
        label::VPPI_EVENT => {
            let irq = mr(mrs, 0)?;
            match u16::try_from(irq) {
                Ok(ppi @ 16..=31) => Ok(Exit::Vppi { irq: ppi }),
                _ => Err(ExitError::BadPpi),
            }
        }
        label::VGIC_MAINTENANCE => match mr(mrs, 0)? {
            u64::MAX => Ok(Exit::VgicMaintenance { index: None }),
            i => u8::try_from(i)
                .ok()
                .filter(|i| *i < 64)
                .map(|i| Exit::VgicMaintenance { index: Some(i) })
                .ok_or(ExitError::BadListRegister),
        },
        label::USER_EXCEPTION => Ok(Exit::UserException { pc: mr(mrs, 0)?, number: mr(mrs, 3)?, code: mr(mrs, 4)? }),
        _ => Err(ExitError::UnknownLabel),
    }
}

/// Proofs over every input (`cargo kani -p vmm`).
#[cfg(kani)]
mod proofs {
    use super::*;

    /// Any label and any message of up to [`MAX_FAULT_MRS`] words decodes
    /// to an exit or an error, without a panic, and a decoded exit is one
    /// the architecture allows: a stage-2 abort carries the syndrome class
    /// of its kind, a PPI is 16-31, a list register index below 64.
    #[kani::proof]
    #[kani::unwind(15)]
    fn decoding_is_total_and_rejects_what_the_architecture_forbids() {
        let label: u64 = kani::any();
        let words: [u64; MAX_FAULT_MRS] = kani::any();
        let len: usize = kani::any();
        kani::assume(len <= MAX_FAULT_MRS);
        match decode(label, words.get(..len).unwrap_or(&[])) {
            Ok(Exit::DataAbort { esr, .. }) => assert!(esr.ec() == ec::DABT_LOWER),
            Ok(Exit::InstructionAbort { esr, .. }) => assert!(esr.ec() == ec::IABT_LOWER),
            Ok(Exit::Smc { esr }) => assert!(esr.ec() == ec::SMC64),
            Ok(Exit::Wfx { esr }) => assert!(esr.ec() == ec::WFX),
            Ok(Exit::Trap { esr }) => assert!(esr.ec() != ec::DABT_LOWER && esr.ec() != ec::IABT_LOWER),
            Ok(Exit::Vppi { irq }) => assert!((16..=31).contains(&irq)),
            Ok(Exit::VgicMaintenance { index }) => assert!(index.is_none_or(|i| i < 64)),
            Ok(Exit::Hvc(_)) => assert!(len >= MAX_FAULT_MRS),
            Ok(Exit::UserException { .. }) | Err(_) => {}
        }
    }
}
