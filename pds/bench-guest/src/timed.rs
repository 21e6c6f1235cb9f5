//! The timed loops. Each is one `asm!` block, so that nothing the compiler
//! schedules falls between the counter reads and the loop: the counter is
//! read after an `isb` (CNTVCT_EL0 reads are not ordered with the
//! instructions around them otherwise), the loop runs, and the counter is
//! read again after another `isb`. Registers are pinned where a VMM's
//! treatment of them matters, so that every build times the same loop.

use core::arch::asm;

use board::{pl011, psci};

/// What a timed loop measured.
#[derive(Clone, Copy, Debug)]
pub struct Timed {
    /// Exits made.
    pub exits: u64,
    /// Virtual counter ticks from before the first to after the last.
    pub ticks: u64,
    /// What the last exit returned (the register loaded, or x0).
    pub last: u64,
}

/// CNTFRQ_EL0: the virtual counter's frequency in Hz.
pub fn counter_frequency() -> u64 {
    let f: u64;
    // SAFETY: reads a system register readable at EL1; no memory effects.
    unsafe { asm!("mrs {f}, cntfrq_el0", f = out(reg) f, options(nomem, nostack)) };
    f
}

/// Times `n` (at least 1) 32-bit loads from the emulated PL011's flag
/// register into w1: each is a stage-2 fault that the VMM emulates (write
/// x1, move the PC past the load) before it resumes the vCPU.
pub fn mmio_loads(n: u64) -> Timed {
    // The loop counts down to 0; 0 would wrap and run 2^64 times.
    let n = n.max(1);
    let (t0, t1, last): (u64, u64, u64);
    // SAFETY: reads the emulated UART's flag register, which has no effect
    // on the guest's memory; writes only the declared registers.
    unsafe {
        asm!(
            "isb",
            "mrs {t0}, cntvct_el0",
            "2:",
            "ldr w1, [{fr}]",
            "subs {n}, {n}, #1",
            "b.ne 2b",
            "isb",
            "mrs {t1}, cntvct_el0",
            fr = in(reg) board::GUEST_UART_BASE + pl011::FR,
            n = inout(reg) n => _,
            t0 = out(reg) t0,
            t1 = out(reg) t1,
            out("x1") last,
            options(nostack),
        );
    }
    Timed { exits: n, ticks: t1.wrapping_sub(t0), last }
}

/// Times `n` (at least 1) PSCI_VERSION calls through `hvc #0`: each is an
/// UnknownSyscall fault that the VMM answers with the registers of its
/// reply (x0 the version, the PC past the call).
///
/// x7 is set to 0 before every call so that seL4 never takes the call for
/// one of its own system calls (it reads the number from x7), whatever a
/// VMM returned in x7. The count, the function id and the counter values
/// live in x20-x23, which an SMC Calling Convention call preserves; x0-x17
/// are treated as clobbered, as the convention allows.
pub fn hvcs(n: u64) -> Timed {
    let n = n.max(1);
    let (t0, t1, last): (u64, u64, u64);
    // SAFETY: a hypervisor call that the VMM answers in x0 and resumes
    // after; no guest memory is touched.
    unsafe {
        asm!(
            "isb",
            "mrs x22, cntvct_el0",
            "2:",
            "mov x0, x21",
            "mov x7, xzr",
            "hvc #0",
            "subs x20, x20, #1",
            "b.ne 2b",
            "isb",
            "mrs x23, cntvct_el0",
            inout("x20") n => _,
            in("x21") psci::VERSION,
            out("x22") t0,
            out("x23") t1,
            out("x0") last,
            clobber_abi("C"),
            options(nostack),
        );
    }
    Timed { exits: n, ticks: t1.wrapping_sub(t0), last }
}
