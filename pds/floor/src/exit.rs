//! The two exits the benchmark times, answered with the least work: the
//! fault message is read from the IPC buffer (before any invocation, which
//! would reuse it), and nothing is decoded that the answer does not need.

use sel4::sys::seL4_Fault_tag;
use sel4::sys::seL4_UnknownSyscall_Msg::{seL4_UnknownSyscall_FaultIP, seL4_UnknownSyscall_X0};
use sel4::sys::seL4_VMFault_Msg::{seL4_VMFault_Addr, seL4_VMFault_FSR, seL4_VMFault_IP};
use sel4_microkit::{with_msg_regs, with_msg_regs_mut};

use vmm::arch::aarch64::psci::{ret, VERSION_1_1};
use vmm::arch::aarch64::regs::TcbReg;
use vmm::devices::pl011::{FR_RXFE, FR_TXFE};

/// The label of a VM fault (seL4's own numbering, from the SDK's headers).
const VM_FAULT: u64 = seL4_Fault_tag::seL4_Fault_VMFault;
/// The label of an UnknownSyscall fault: how seL4 passes on a guest's `hvc`.
const UNKNOWN_SYSCALL: u64 = seL4_Fault_tag::seL4_Fault_UnknownSyscall;

/// The message registers of an UnknownSyscall reply: x0-x7, PC, SP, ELR,
/// SPSR. seL4 copies them into the vCPU's registers and resumes it.
pub const SYSCALL_REPLY_REGS: usize = 12;

/// The emulated register: the flag register of the guest's PL011.
const FLAG_REGISTER: u64 = board::GUEST_UART_BASE + board::pl011::FR;

/// What it reads: both FIFOs empty, as the real VMM's PL011 answers.
const FLAG_VALUE: u64 = FR_TXFE | FR_RXFE;

/// ESR_EL2 fields of a data abort (Arm ARM, ISS encoding for an exception
/// from a Data Abort).
mod esr {
    /// EC, bits 31:26.
    pub const EC_SHIFT: u64 = 26;
    /// EC's width.
    pub const EC_MASK: u64 = 0x3f;
    /// EC of a data abort from a lower exception level.
    pub const EC_DATA_ABORT_LOWER: u64 = 0x24;
    /// IL: a 32-bit instruction.
    pub const IL: u64 = 1 << 25;
    /// ISV: the syndrome (size, register, direction) is valid.
    pub const ISV: u64 = 1 << 24;
    /// SAS, bits 23:22: the access size as log2 of bytes.
    pub const SAS_SHIFT: u64 = 22;
    /// SAS of a 32-bit access.
    pub const SAS_WORD: u64 = 2;
    /// SSE: the load sign-extends.
    pub const SSE: u64 = 1 << 21;
    /// SRT, bits 20:16: the register loaded.
    pub const SRT_SHIFT: u64 = 16;
    /// WnR: a write.
    pub const WNR: u64 = 1 << 6;
}

/// How the vCPU is answered.
pub enum Answer {
    /// Reply with an empty message: the vCPU resumes at its TCB's PC.
    Resume,
    /// Reply with [`SYSCALL_REPLY_REGS`] message registers.
    ResumeWithRegisters,
    /// No reply: the guest switched off (PSCI SYSTEM_OFF), as it does when
    /// it has reported.
    Done,
    /// No reply: the vCPU stays stopped.
    Stop(Why),
}

/// Why the vCPU was left stopped.
pub enum Why {
    /// A fault other than the two the benchmark makes.
    Unexpected { label: u64 },
    /// A data abort other than a 32-bit load from the flag register.
    NotTheLoad { addr: u64, esr: u64 },
    /// seL4 refused a register read or write.
    Kernel(sel4::Error),
}

impl core::fmt::Display for Why {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Why::Unexpected { label } => write!(f, "fault with label {label}, which the floor does not answer"),
            Why::NotTheLoad { addr, esr } => write!(
                f,
                "data abort at {addr:#x} (ESR {esr:#x}) is not a 32-bit load from the flag register at {FLAG_REGISTER:#x}"
            ),
            Why::Kernel(e) => write!(f, "seL4 refused a TCB register access: {e:?}"),
        }
    }
}

/// Answers a fault with label `label` of the vCPU whose TCB is `tcb`;
/// `ctx` holds the registers between the read and the write.
pub fn handle(label: u64, tcb: sel4::cap::Tcb, ctx: &mut sel4::UserContext) -> Answer {
    match label {
        VM_FAULT => load(tcb, ctx),
        UNKNOWN_SYSCALL => hvc(),
        label => Answer::Stop(Why::Unexpected { label }),
    }
}

/// A load from the flag register: reads the vCPU's registers up to the
/// destination, writes the flag value into it and the PC past the load,
/// writes the same registers back. seL4 takes no registers from the reply
/// to a VM fault, so the reply is empty.
///
/// The invocations go through the IPC buffer into `ctx`, which the floor
/// keeps: rust-sel4's by-value `tcb_read_registers` would zero and copy the
/// 288-byte context twice per exit, more than the handler's own work.
fn load(tcb: sel4::cap::Tcb, ctx: &mut sel4::UserContext) -> Answer {
    let (pc, addr, esr) = with_msg_regs(|r| {
        let mr = |i: u64| r.get(i as usize).copied().unwrap_or(0);
        (mr(seL4_VMFault_IP), mr(seL4_VMFault_Addr), mr(seL4_VMFault_FSR))
    });
    let Some(rt) = flag_load(addr, esr) else {
        return Answer::Stop(Why::NotTheLoad { addr, esr });
    };
    // The prefix of seL4's context up to the destination (the zero
    // register, 31: the PC alone).
    let words = u8::try_from(rt).ok().and_then(|r| TcbReg::X(r).context_words()).unwrap_or(1);
    let cptr = tcb.bits();
    let err = sel4::with_ipc_buffer_mut(|b| b.inner_mut().seL4_TCB_ReadRegisters(cptr, 0, 0, words, ctx.inner_mut()));
    if let Some(e) = sel4::Error::from_sys(err) {
        return Answer::Stop(Why::Kernel(e));
    }
    // Register 31 is the zero register here: the load is discarded.
    if rt <= 30 {
        *ctx.gpr_mut(rt) = FLAG_VALUE;
    }
    // IL is set (flag_load checked): a 4-byte instruction.
    *ctx.pc_mut() = pc.wrapping_add(4);
    let err = sel4::with_ipc_buffer_mut(|b| b.inner_mut().seL4_TCB_WriteRegisters(cptr, 0, 0, words, ctx.inner()));
    match sel4::Error::from_sys(err) {
        None => Answer::Resume,
        Some(e) => Answer::Stop(Why::Kernel(e)),
    }
}

/// The destination register of a data abort that is a 32-bit, zero-extending
/// load of a 4-byte instruction from the flag register; None for anything
/// else.
fn flag_load(addr: u64, esr: u64) -> Option<usize> {
    let is_load = (esr >> esr::EC_SHIFT) & esr::EC_MASK == esr::EC_DATA_ABORT_LOWER
        && esr & (esr::IL | esr::ISV | esr::SSE | esr::WNR) == esr::IL | esr::ISV
        && (esr >> esr::SAS_SHIFT) & 3 == esr::SAS_WORD;
    (is_load && addr == FLAG_REGISTER).then_some(((esr >> esr::SRT_SHIFT) & 0x1f) as usize)
}

/// An `hvc`: PSCI_VERSION is answered with the version, SYSTEM_OFF leaves
/// the vCPU stopped; anything else is NOT_SUPPORTED. Only x0 and the PC
/// change: the reply's other registers are already in place, because the
/// reply's message registers are the IPC buffer words the fault message
/// arrived in (x1-x7, SP, ELR, SPSR), which nothing has overwritten.
fn hvc() -> Answer {
    let (x0, pc) = (seL4_UnknownSyscall_X0 as usize, seL4_UnknownSyscall_FaultIP as usize);
    with_msg_regs_mut(|r| {
        let Some(&[call]) = r.get(x0..x0 + 1) else { return Answer::Stop(Why::Unexpected { label: UNKNOWN_SYSCALL }) };
        let value = match call {
            board::psci::VERSION => VERSION_1_1,
            board::psci::SYSTEM_OFF => return Answer::Done,
            _ => ret::NOT_SUPPORTED,
        };
        if let Some(r0) = r.get_mut(x0) {
            *r0 = value;
        }
        // The fault IP is the hvc itself; resume after it.
        if let Some(ip) = r.get_mut(pc) {
            *ip = ip.wrapping_add(4);
        }
        Answer::ResumeWithRegisters
    })
}
