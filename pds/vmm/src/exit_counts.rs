//! The VM's exits by kind, and the instructions this PD spent on them, for
//! the boot figures (`make bench-linux`): built in with the `exit-counts`
//! feature only, so that the exit benchmark's VMM carries none of it.
//!
//! The PD's time is read from `CNTPCT_EL0` around each exit's handling.
//! Under QEMU's `-icount shift=0` the counter counts instructions (one a
//! nanosecond, 16 a tick at 62.5 MHz), so the share is of all instructions
//! executed since the machine started; the kernel's own entry and exit are
//! not the PD's and are not in it.

use vmm::arch::aarch64::fault::{Exit, ExitError};
use vmm_abi::manifest::{Dev, DEV_PL011};

use crate::counter::now;

/// The kinds counted, in the order printed.
const KINDS: [&str; 9] = [
    "mmio pl011",
    "mmio gic",
    "other data abort",
    "vgic sysreg",
    "vgic maintenance",
    "timer",
    "hvc/smc",
    "wfi/wfe",
    "other",
];

/// Exits by kind, and the counter's ticks spent handling them.
pub struct ExitCounts {
    counts: [u64; KINDS.len()],
    ticks: u64,
    /// The PL011's range.
    uart: Option<(u64, u64)>,
    /// The GIC's emulated frames.
    gic: heapless::Vec<(u64, u64), 2>,
}

impl ExitCounts {
    /// Nothing counted yet, for a VM with `devices`.
    pub fn new(devices: &[Dev]) -> ExitCounts {
        let uart = devices
            .iter()
            .find(|d| d.kind.get() == DEV_PL011)
            .map(|d| (d.base.get(), d.base.get().saturating_add(d.size.get())));
        let gic = devices
            .iter()
            .filter(|d| d.kind.get() != DEV_PL011)
            .map(|d| (d.base.get(), d.base.get().saturating_add(d.size.get())))
            .take(2)
            .collect();
        ExitCounts { counts: [0; KINDS.len()], ticks: 0, uart, gic }
    }

    /// The kind of `exit`, an index into the counts.
    pub fn kind(&self, exit: &Result<Exit, ExitError>) -> usize {
        let uart = |gpa: u64| self.uart.is_some_and(|(b, e)| (b..e).contains(&gpa));
        match exit {
            Ok(Exit::DataAbort { gpa, .. }) if uart(gpa.0) => 0,
            Ok(Exit::DataAbort { gpa, .. }) if self.gic.iter().any(|&(b, e)| (b..e).contains(&gpa.0)) => 1,
            Ok(Exit::DataAbort { .. }) => 2,
            Ok(Exit::Trap { .. }) => 3,
            Ok(Exit::VgicMaintenance { .. }) => 4,
            Ok(Exit::Vppi { .. }) => 5,
            Ok(Exit::Hvc(_) | Exit::Smc { .. }) => 6,
            Ok(Exit::Wfx { .. }) => 7,
            _ => 8,
        }
    }

    /// Counts an exit of `kind` whose handling began at `start`.
    pub fn add(&mut self, kind: usize, start: u64) {
        if let Some(c) = self.counts.get_mut(kind) {
            *c += 1;
        }
        self.ticks = self.ticks.wrapping_add(now().wrapping_sub(start));
    }
}

impl core::fmt::Display for ExitCounts {
    /// One line: the counts, and the PD's share of the instructions since
    /// the machine started.
    fn fmt(&self, out: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(out, "exits:")?;
        for (name, n) in KINDS.iter().zip(self.counts) {
            write!(out, " {name} {n},")?;
        }
        let all = now().max(1);
        let total: u64 = self.counts.iter().sum();
        write!(
            out,
            " {total} in all; the VMM's handlers {} of {} counter ticks ({}.{:02}%)",
            self.ticks,
            all,
            self.ticks * 100 / all,
            self.ticks * 10_000 / all % 100
        )
    }
}
