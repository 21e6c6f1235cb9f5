//! The board's own UART, when system.xml gives it to this VMM: the console
//! a person types at. Its receive interrupt brings input, which goes to the
//! VM's emulated PL011; the VM's output lines are written to it. QEMU
//! `virt` has a PL011, the i.MX 8M Plus its own UART (`imx`).
//!
//! The kernel's debug printing writes the same UART's transmitter; it never
//! reads it, so the input is this PD's alone.

use core::ptr::{read_volatile, write_volatile};

mod imx;
mod pl011;

/// Which UART the board has.
#[derive(Clone, Copy)]
enum Kind {
    Pl011,
    Imx,
}

/// The board's UART, mapped uncached at `base` in this PD.
pub struct Serial {
    regs: Regs,
    kind: Kind,
}

/// A UART's 4 KiB register block, mapped uncached in this PD.
struct Regs {
    base: usize,
}

impl Regs {
    fn read(&self, reg: usize) -> u32 {
        // SAFETY: system.xml maps the UART's 4 KiB register block at `base`,
        // uncached, in this PD; every offset used is a register in it.
        unsafe { read_volatile((self.base + reg) as *const u32) }
    }

    fn write(&self, reg: usize, value: u32) {
        // SAFETY: as in `read`.
        unsafe { write_volatile((self.base + reg) as *mut u32, value) }
    }
}

impl Serial {
    /// The UART system.xml maps at `vaddr` (0: none), its receiver and its
    /// receive interrupts switched on.
    pub fn new(vaddr: usize) -> Option<Serial> {
        if vaddr == 0 {
            return None;
        }
        let kind = if board::BOARD == "imx8mp_evk" { Kind::Imx } else { Kind::Pl011 };
        let s = Serial { regs: Regs { base: vaddr }, kind };
        match s.kind {
            Kind::Pl011 => pl011::start(&s.regs),
            Kind::Imx => imx::start(&s.regs),
        }
        Some(s)
    }

    /// The next byte received, if one waits.
    pub fn receive(&self) -> Option<u8> {
        match self.kind {
            Kind::Pl011 => pl011::receive(&self.regs),
            Kind::Imx => imx::receive(&self.regs),
        }
    }

    /// Clears the receive interrupts, once their cause (the FIFO) is empty.
    pub fn clear(&self) {
        match self.kind {
            Kind::Pl011 => pl011::clear(&self.regs),
            // Its receive interrupt is a level: it falls with the FIFO.
            Kind::Imx => {}
        }
    }

    /// Masks (false) or unmasks (true) the receive interrupts: masked while
    /// the guest cannot take more, so that input waits in the UART (and,
    /// once its FIFO is full, in whatever feeds the line) instead of being
    /// lost.
    pub fn receiving(&self, on: bool) {
        match self.kind {
            Kind::Pl011 => pl011::receiving(&self.regs, on),
            Kind::Imx => imx::receiving(&self.regs, on),
        }
    }

    /// Writes `bytes`, waiting while the transmit FIFO is full.
    pub fn send(&self, bytes: &[u8]) {
        for &b in bytes {
            match self.kind {
                Kind::Pl011 => pl011::send(&self.regs, b),
                Kind::Imx => imx::send(&self.regs, b),
            }
        }
    }
}
