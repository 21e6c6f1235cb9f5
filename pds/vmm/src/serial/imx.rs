//! The i.MX UART (the i.MX 8M Plus's console, UART2), as
//! [`Serial`](super::Serial) drives it. Register names and bits are the
//! i.MX 8M Plus reference manual's (chapter "UART").

use super::Regs;

/// Receiver register: the oldest byte of the receive FIFO.
const URXD: usize = 0x00;
/// Transmitter register.
const UTXD: usize = 0x40;
/// Control register 1.
const UCR1: usize = 0x80;
/// Control register 2.
const UCR2: usize = 0x84;
/// Control register 4.
const UCR4: usize = 0x8c;
/// Status register 2.
const USR2: usize = 0x98;
/// Test register (it holds the FIFO flags).
const UTS: usize = 0xb4;

/// UCR1: the UART enabled.
const UCR1_UARTEN: u32 = 1 << 0;
/// UCR2: receiver enabled.
const UCR2_RXEN: u32 = 1 << 1;
/// UCR2: transmitter enabled.
const UCR2_TXEN: u32 = 1 << 2;
/// UCR4: interrupt while a received byte waits (USR2.RDR), one byte
/// being enough, unlike the FIFO-threshold interrupt of UCR1.RRDYEN.
const UCR4_DREN: u32 = 1 << 0;
/// USR2: a received byte waits.
const USR2_RDR: u32 = 1 << 0;
/// UTS: the transmit FIFO is full.
const UTS_TXFULL: u32 = 1 << 4;

/// Receiver, transmitter and the receive interrupt on (the kernel has set
/// the rest up for its own printing).
pub(super) fn start(r: &Regs) {
    r.write(UCR1, r.read(UCR1) | UCR1_UARTEN);
    r.write(UCR2, r.read(UCR2) | UCR2_RXEN | UCR2_TXEN);
    r.write(UCR4, r.read(UCR4) | UCR4_DREN);
}

pub(super) fn receive(r: &Regs) -> Option<u8> {
    if r.read(USR2) & USR2_RDR == 0 {
        return None;
    }
    Some(r.read(URXD) as u8)
}

pub(super) fn receiving(r: &Regs, on: bool) {
    let ucr4 = r.read(UCR4);
    r.write(UCR4, if on { ucr4 | UCR4_DREN } else { ucr4 & !UCR4_DREN });
}

pub(super) fn send(r: &Regs, b: u8) {
    while r.read(UTS) & UTS_TXFULL != 0 {}
    r.write(UTXD, u32::from(b));
}
