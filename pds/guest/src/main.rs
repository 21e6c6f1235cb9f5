//! A bare-metal AArch64 guest, entered at EL1 with the MMU off.
//!
//! It prints through the PL011 the VMM emulates (every access traps), writes
//! and reads back a pattern in its private region and in its shared RAM,
//! reports both on the UART and switches off with PSCI SYSTEM_OFF (`hvc #0`).
//! x0 at entry selects the mode ([`board::guest_mode`]): FAULT ends with an
//! access outside every memslot instead, so its VMM stops this VM alone.
//!
//! Its entry, PL011 and PSCI calls are `guest-rt`'s; with the MMU off, the
//! code must not make unaligned accesses nor use atomics.

#![no_std]
#![no_main]

use core::fmt::{self, Write};
use core::ptr;

use board::{guest_mode, psci};
use guest_rt::{psci_call, Pl011};

// x0 at entry holds the mode; the entry passes it on untouched.
guest_rt::entry!(guest_main);

/// The emulated PL011.
struct Uart;

impl Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let uart = Pl011::new(board::GUEST_UART_BASE);
        for c in s.bytes() {
            uart.putc(c);
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

/// PSCI SYSTEM_OFF, which the VMM does not return from.
fn system_off() -> ! {
    guest_rt::system_off();
    println!("guest: ERROR: SYSTEM_OFF returned");
    guest_rt::halt()
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
