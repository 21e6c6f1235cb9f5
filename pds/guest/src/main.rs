//! A bare-metal AArch64 guest, entered at EL1 with the MMU off.
//!
//! It prints through the PL011 the VMM emulates (every access traps), writes
//! and reads back a pattern in its private region and in its shared RAM,
//! reports both on the UART and switches off with PSCI SYSTEM_OFF (`hvc #0`).
//! x0 at entry selects the mode ([`board::guest_mode`]): FAULT ends with an
//! access outside every memslot instead, so its VMM stops this VM alone.
//!
//! With the MMU off every data access is to Device memory: the code must not
//! make unaligned accesses (the target has `+strict-align`) nor use atomics.

#![no_std]
#![no_main]

use core::arch::{asm, global_asm};
use core::fmt::{self, Write};
use core::ptr;

use board::{guest_mode, pl011, psci};

// Entry: x0 holds the mode and is passed on untouched. Enables FP/SIMD at
// EL1 (the compiler may use it), sets the stack to the top of shared RAM,
// zeroes .bss, then calls `guest_main(mode)`.
global_asm!(
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
    stack_top = const board::GUEST_STACK_TOP,
    main = sym guest_main,
);

/// The emulated PL011.
struct Uart;

impl Uart {
    fn putc(&mut self, c: u8) {
        let base = board::GUEST_UART_BASE;
        // SAFETY: the board table's UART address; the VMM emulates it.
        unsafe {
            while ptr::read_volatile((base + pl011::FR) as *const u32) & pl011::FR_TXFF != 0 {}
            ptr::write_volatile((base + pl011::DR) as *mut u32, u32::from(c));
        }
    }
}

impl Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.bytes() {
            self.putc(c);
        }
        Ok(())
    }
}

macro_rules! println {
    ($($arg:tt)*) => {{
        let _ = writeln!(Uart, $($arg)*);
    }};
}

/// The pattern word for address `a`: differs at every address and in every
/// byte, so a stuck, shifted or aliased word shows.
fn pattern(a: u64) -> u64 {
    a ^ 0xa5a5_5a5a_0f0f_f0f0
}

/// Writes the pattern over `[base, base + size)`, reads it back, and returns
/// the first address that read back wrong.
fn check_memory(base: u64, size: u64) -> Result<(), u64> {
    let mut a = base;
    while a < base + size {
        // SAFETY: the caller names a region mapped into this VM.
        unsafe { ptr::write_volatile(a as *mut u64, pattern(a)) };
        a += 8;
    }
    let mut a = base;
    while a < base + size {
        // SAFETY: as above.
        if unsafe { ptr::read_volatile(a as *const u64) } != pattern(a) {
            return Err(a);
        }
        a += 8;
    }
    Ok(())
}

fn report(what: &str, base: u64, size: u64) -> bool {
    match check_memory(base, size) {
        Ok(()) => {
            println!("guest: {what} memory {:#x}..{:#x}: pattern ok", base, base + size);
            true
        }
        Err(at) => {
            println!("guest: {what} memory {:#x}..{:#x}: pattern FAILED at {:#x}", base, base + size, at);
            false
        }
    }
}

/// A PSCI call through `hvc #0` that returns: x0 in and out. x7 stays 0 so
/// that seL4 does not take the call for one of its own system calls (it
/// reads the number from x7).
fn psci_call(function: u64) -> u64 {
    let mut x0 = function;
    // SAFETY: a hypervisor call; the VMM answers in x0 and resumes after it.
    unsafe {
        asm!("hvc #0", inout("x0") x0, in("x7") 0u64, options(nomem, nostack));
    }
    x0
}

/// PSCI SYSTEM_OFF through `hvc #0` (x7 = 0, as above).
fn system_off() -> ! {
    // SAFETY: a hypervisor call; the VMM does not resume this vCPU.
    unsafe {
        asm!("hvc #0", in("x0") psci::SYSTEM_OFF, in("x7") 0u64, options(nomem, nostack));
    }
    println!("guest: ERROR: SYSTEM_OFF returned");
    loop {
        // SAFETY: waits for an event; no memory effects.
        unsafe { asm!("wfe", options(nomem, nostack)) };
    }
}

extern "C" fn guest_main(mode: u64) -> ! {
    println!("guest: hello from EL1, mode {mode}");
    let v = psci_call(psci::VERSION);
    println!("guest: PSCI version {}.{}", v >> 16, v & 0xffff);
    let private = report("private", board::GUEST_PRIVATE_BASE, board::GUEST_PRIVATE_SIZE);
    let shared = report("shared", board::GUEST_SHARED_TEST_BASE, board::GUEST_SHARED_TEST_SIZE);
    println!("guest: memory checks {}", if private && shared { "passed" } else { "FAILED" });
    if mode == guest_mode::FAULT {
        let addr = board::GUEST_UNMAPPED_ADDR;
        println!("guest: touching {addr:#x}, outside every memslot");
        // SAFETY: deliberately unmapped; the VMM stops this VM here.
        let v = unsafe { ptr::read_volatile(addr as *const u64) };
        println!("guest: ERROR: the access outside every memslot returned {v:#x}");
    }
    println!("guest: PSCI SYSTEM_OFF");
    system_off()
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    println!("guest: panic: {info}");
    system_off()
}
