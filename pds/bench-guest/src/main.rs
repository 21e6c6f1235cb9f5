//! The exit round-trip benchmark's guest: a bare-metal
//! AArch64 program entered at EL1 with the MMU off.
//!
//! It times [`EXITS`] loads from the emulated PL011's flag register (each a
//! stage-2 fault the VMM emulates) and [`EXITS`] `hvc`s (PSCI_VERSION, each
//! an UnknownSyscall fault the VMM answers in its reply), reading the
//! virtual counter before and after each loop ([`timed`]), and reports the
//! counter ticks of each loop ([`report`]), then switches off with PSCI
//! SYSTEM_OFF.
//!
//! The report goes to the board's physical PL011, which the benchmark's
//! system descriptions map into this VM, and not through the emulated one:
//! a release build's PDs cannot print (Microkit's debug console exists only
//! in debug kernels), so an exit the VMM prints would report nothing in
//! release. Writing to a mapped device does not exit, so the report costs
//! both VMMs the same: nothing.
//!
//! Its entry and PSCI calls are `guest-rt`'s; with the MMU off, the code
//! must not make unaligned accesses nor use atomics.

#![no_std]
#![no_main]

mod report;
mod timed;

use core::fmt::Write;

use report::Report;

/// Exits per timed loop.
const EXITS: u64 = 100_000;

/// Exits of each kind made once before the timed loops, so that nothing
/// done only on a first exit (of either VMM, or of seL4) is timed.
const WARM_UP: u64 = 100;

guest_rt::entry!(bench_main);

macro_rules! println {
    ($($arg:tt)*) => {{
        let _ = writeln!(Report, $($arg)*);
    }};
}

extern "C" fn bench_main() -> ! {
    // The parser turns ticks into instructions with this frequency.
    println!("bench: counter frequency {} Hz", timed::counter_frequency());
    let _ = timed::mmio_loads(WARM_UP);
    let _ = timed::hvcs(WARM_UP);
    let mmio = timed::mmio_loads(EXITS);
    println!("bench: mmio {} exits {} ticks value {:#x}", mmio.exits, mmio.ticks, mmio.last);
    let hvc = timed::hvcs(EXITS);
    println!("bench: hvc {} exits {} ticks x0 {:#x}", hvc.exits, hvc.ticks, hvc.last);
    println!("bench: done");
    system_off()
}

/// PSCI SYSTEM_OFF, which neither VMM returns from.
fn system_off() -> ! {
    guest_rt::system_off();
    println!("bench: ERROR: SYSTEM_OFF returned");
    guest_rt::halt()
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    println!("bench: ERROR: panic: {info}");
    system_off()
}
