//! The PL011 (QEMU `virt`'s UART), as [`Serial`](super::Serial) drives it.

use super::Regs;
use vmm::devices::pl011::reg::{CR, DR, FR, ICR, IMSC};
use vmm::devices::pl011::{CR_RXE, CR_TXE, CR_UARTEN, FR_RXFE, FR_TXFF};

/// The receive-timeout interrupt, which the core's model (one byte a
/// trigger) has no use for and a real UART raises for bytes below its
/// FIFO's trigger level.
const INT_RT: u32 = 1 << 6;
/// Receive and receive-timeout interrupts.
const INT_RX: u32 = vmm::devices::pl011::INT_RX as u32 | INT_RT;

fn read(r: &Regs, reg: u64) -> u32 {
    r.read(reg as usize)
}

fn write(r: &Regs, reg: u64, value: u32) {
    r.write(reg as usize, value)
}

/// Receiver, transmitter and receive interrupts on.
pub(super) fn start(r: &Regs) {
    write(r, CR, read(r, CR) | (CR_UARTEN | CR_TXE | CR_RXE) as u32);
    write(r, IMSC, read(r, IMSC) | INT_RX);
}

pub(super) fn receive(r: &Regs) -> Option<u8> {
    if u64::from(read(r, FR)) & FR_RXFE != 0 {
        return None;
    }
    Some(read(r, DR) as u8)
}

pub(super) fn clear(r: &Regs) {
    write(r, ICR, INT_RX);
}

pub(super) fn receiving(r: &Regs, on: bool) {
    let imsc = read(r, IMSC);
    write(r, IMSC, if on { imsc | INT_RX } else { imsc & !INT_RX });
}

pub(super) fn send(r: &Regs, b: u8) {
    while u64::from(read(r, FR)) & FR_TXFF != 0 {}
    write(r, DR, u32::from(b));
}
