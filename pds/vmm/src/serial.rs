//! The board's own PL011, when system.xml gives it to this VMM: the console
//! a person types at. Its receive interrupt brings input, which goes to the
//! VM's emulated PL011; the VM's output lines are written to it.
//!
//! The kernel's debug printing writes the same UART's data register; it
//! never reads it, so the input is this PD's alone.

use core::ptr::{read_volatile, write_volatile};

use vmm::devices::pl011::reg::{CR, DR, FR, ICR, IMSC};
use vmm::devices::pl011::{CR_RXE, CR_TXE, CR_UARTEN, FR_RXFE, FR_TXFF};

/// The receive-timeout interrupt, which the core's model (one byte a
/// trigger) has no use for and a real UART raises for bytes below its
/// FIFO's trigger level.
const INT_RT: u32 = 1 << 6;
/// Receive and receive-timeout interrupts.
const INT_RX: u32 = vmm::devices::pl011::INT_RX as u32 | INT_RT;

/// The board's UART, mapped uncached at `base` in this PD.
pub struct Serial {
    base: usize,
}

impl Serial {
    /// The UART system.xml maps at `vaddr` (0: none), its receiver and its
    /// receive interrupts switched on.
    pub fn new(vaddr: usize) -> Option<Serial> {
        if vaddr == 0 {
            return None;
        }
        let s = Serial { base: vaddr };
        s.write(CR, s.read(CR) | (CR_UARTEN | CR_TXE | CR_RXE) as u32);
        s.write(IMSC, s.read(IMSC) | INT_RX);
        Some(s)
    }

    fn read(&self, reg: u64) -> u32 {
        // SAFETY: system.xml maps the UART's 4 KiB register block at `base`,
        // uncached, in this PD; every offset used is a register in it.
        unsafe { read_volatile((self.base + reg as usize) as *const u32) }
    }

    fn write(&self, reg: u64, value: u32) {
        // SAFETY: as in `read`.
        unsafe { write_volatile((self.base + reg as usize) as *mut u32, value) }
    }

    /// The next byte received, if one waits.
    pub fn receive(&self) -> Option<u8> {
        if u64::from(self.read(FR)) & FR_RXFE != 0 {
            return None;
        }
        Some(self.read(DR) as u8)
    }

    /// Clears the receive interrupts, once their cause (the FIFO) is empty.
    pub fn clear(&self) {
        self.write(ICR, INT_RX);
    }

    /// Masks (false) or unmasks (true) the receive interrupts: masked while
    /// the guest cannot take more, so that input waits in the UART (and,
    /// once its FIFO is full, in whatever feeds the line) instead of being
    /// lost.
    pub fn receiving(&self, on: bool) {
        let imsc = self.read(IMSC);
        self.write(IMSC, if on { imsc | INT_RX } else { imsc & !INT_RX });
    }

    /// Writes `bytes`, waiting while the transmit FIFO is full.
    pub fn send(&self, bytes: &[u8]) {
        for &b in bytes {
            while u64::from(self.read(FR)) & FR_TXFF != 0 {}
            self.write(DR, u32::from(b));
        }
    }
}
