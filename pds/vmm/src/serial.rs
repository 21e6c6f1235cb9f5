//! The board's own PL011, when system.xml gives it to this VMM: the console
//! a person types at. Its receive interrupt brings input, which goes to the
//! VM's emulated PL011; the VM's output lines are written to it.
//!
//! The kernel's debug printing writes the same UART's data register; it
//! never reads it, so the input is this PD's alone.

use core::ptr::{read_volatile, write_volatile};

/// PL011 registers (offsets in bytes) and bits.
const DR: usize = 0x00;
const FR: usize = 0x18;
const CR: usize = 0x30;
const IMSC: usize = 0x38;
const ICR: usize = 0x44;
const FR_RXFE: u32 = 1 << 4;
const FR_TXFF: u32 = 1 << 5;
const CR_UARTEN: u32 = 1 << 0;
const CR_TXE: u32 = 1 << 8;
const CR_RXE: u32 = 1 << 9;
/// Receive and receive-timeout interrupts.
const INT_RX: u32 = (1 << 4) | (1 << 6);

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
        s.write(CR, s.read(CR) | CR_UARTEN | CR_TXE | CR_RXE);
        s.write(IMSC, s.read(IMSC) | INT_RX);
        Some(s)
    }

    fn read(&self, reg: usize) -> u32 {
        // SAFETY: system.xml maps the UART's 4 KiB register block at `base`,
        // uncached, in this PD; every offset used is a register in it.
        unsafe { read_volatile((self.base + reg) as *const u32) }
    }

    fn write(&self, reg: usize, value: u32) {
        // SAFETY: as in `read`.
        unsafe { write_volatile((self.base + reg) as *mut u32, value) }
    }

    /// The next byte received, if one waits.
    pub fn receive(&self) -> Option<u8> {
        if self.read(FR) & FR_RXFE != 0 {
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
            while self.read(FR) & FR_TXFF != 0 {}
            self.write(DR, u32::from(b));
        }
    }
}
