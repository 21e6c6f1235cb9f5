//! What the bare-metal AArch64 guests (`guest`, `bench-guest`) share: the
//! entry at EL1 with the MMU off, a polled PL011 and PSCI calls through
//! `hvc #0`.
//!
//! With the MMU off every data access is to Device memory: the code must not
//! make unaligned accesses (the target has `+strict-align`) nor use atomics.

#![no_std]

use core::arch::asm;
use core::ptr;

use board::{pl011, psci};

/// The guest's initial stack pointer: the top of its shared RAM.
pub const STACK_TOP: u64 = board::GUEST_STACK_TOP;

/// The guest's entry, `_start` in `.text.entry` (which the link script
/// places at the base of guest RAM): enables FP/SIMD at EL1 (the compiler
/// may use it), sets the stack to [`STACK_TOP`], zeroes `.bss`
/// (`__bss_start`..`__bss_end` from the link script), then calls `$main`,
/// an `extern "C" fn` that does not return, with x0 as the VMM set it.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        core::arch::global_asm!(
            r#"
    .section .text.entry, "ax"
    .global _start
_start:
    mov x1, #(3 << 20)
    msr cpacr_el1, x1
    isb
    ldr x1, ={stack_top}
    mov sp, x1
    ldr x1, =__bss_start
    ldr x2, =__bss_end
1:  cmp x1, x2
    b.hs 2f
    str xzr, [x1], #8
    b 1b
2:  bl {main}
3:  wfe
    b 3b
"#,
            stack_top = const $crate::STACK_TOP,
            main = sym $main,
        );
    };
}

/// A PL011 at `base`, written by polling its flag register.
#[derive(Clone, Copy)]
pub struct Pl011 {
    base: u64,
}

impl Pl011 {
    /// The PL011 whose registers are at `base` in the guest's address space.
    pub const fn new(base: u64) -> Pl011 {
        Pl011 { base }
    }

    /// Waits for room in the transmit FIFO and writes `c`.
    pub fn putc(self, c: u8) {
        // SAFETY: `base` is a PL011 the board table maps (or the VMM
        // emulates) for this guest; the guest has no other use for it.
        unsafe {
            while ptr::read_volatile((self.base + pl011::FR) as *const u32) & pl011::FR_TXFF != 0 {}
            ptr::write_volatile((self.base + pl011::DR) as *mut u32, u32::from(c));
        }
    }
}

/// A PSCI call through `hvc #0` that returns: x0 in and out. x7 stays 0 so
/// that seL4 does not take the call for one of its own system calls (it
/// reads the number from x7).
pub fn psci_call(function: u64) -> u64 {
    let mut x0 = function;
    // SAFETY: a hypervisor call; the VMM answers in x0 and resumes after it.
    unsafe {
        asm!("hvc #0", inout("x0") x0, in("x7") 0u64, options(nomem, nostack));
    }
    x0
}

/// PSCI SYSTEM_OFF through `hvc #0` (x7 = 0, as above). The VMM does not
/// resume the vCPU; if it did, this returns, for the caller to say so.
pub fn system_off() {
    // SAFETY: a hypervisor call with no memory effects on this side.
    unsafe {
        asm!("hvc #0", in("x0") psci::SYSTEM_OFF, in("x7") 0u64, options(nomem, nostack));
    }
}

/// Waits for events for ever.
pub fn halt() -> ! {
    loop {
        // SAFETY: waits for an event; no memory effects.
        unsafe { asm!("wfe", options(nomem, nostack)) };
    }
}
