//! A PL011 UART, the subset a guest needs to print, read and take
//! interrupts: the data register, the flag register (the transmit FIFO is
//! always empty: a byte goes to the console at once), a receive FIFO the
//! VMM fills with console input, the transmit and receive interrupts
//! (IMSC, RIS, MIS, ICR) behind the UART's interrupt line, the control
//! registers it programs (kept, so they read back), and the ID registers
//! drivers probe. Everything else reads as zero and ignores writes.
//!
//! The interrupts are QEMU's PL011's, a receive trigger level of one
//! byte: the receive interrupt is raised while the FIFO holds a byte, the
//! transmit interrupt each time a byte is sent, and ICR clears either.

/// What a UART's output goes to: the debug console on seL4, a buffer in
/// tests.
pub trait Console {
    /// One byte the guest transmitted.
    fn put(&mut self, byte: u8);
}

/// Register offsets.
pub mod reg {
    /// Data.
    pub const DR: u64 = 0x000;
    /// Flags.
    pub const FR: u64 = 0x018;
    /// Integer baud rate divisor.
    pub(crate) const IBRD: u64 = 0x024;
    /// Fractional baud rate divisor.
    pub(crate) const FBRD: u64 = 0x028;
    /// Line control.
    pub(crate) const LCR_H: u64 = 0x02c;
    /// Control.
    pub const CR: u64 = 0x030;
    /// Interrupt mask set/clear.
    pub const IMSC: u64 = 0x038;
    /// Raw interrupt status.
    pub const RIS: u64 = 0x03c;
    /// Masked interrupt status.
    pub const MIS: u64 = 0x040;
    /// Interrupt clear.
    pub const ICR: u64 = 0x044;
    /// First ID register (PeriphID0); the eight run to 0xffc.
    pub(crate) const ID_BASE: u64 = 0xfe0;
}

/// FR: receive FIFO empty.
pub const FR_RXFE: u64 = 1 << 4;
/// FR: receive FIFO full.
pub const FR_RXFF: u64 = 1 << 6;
/// Interrupt bits (IMSC, RIS, MIS, ICR): receive.
pub const INT_RX: u16 = 1 << 4;
/// Interrupt bits: transmit.
pub const INT_TX: u16 = 1 << 5;
/// The receive FIFO's depth.
pub const RX_FIFO: usize = 16;
/// FR: transmit FIFO empty.
pub const FR_TXFE: u64 = 1 << 7;
/// FR: transmit FIFO full (never, in this model: a byte written is sent).
pub const FR_TXFF: u64 = 1 << 5;
/// CR: the UART enabled.
pub const CR_UARTEN: u64 = 1 << 0;
/// CR: transmitter enabled.
pub const CR_TXE: u64 = 1 << 8;
/// CR: receiver enabled.
pub const CR_RXE: u64 = 1 << 9;
/// PeriphID0-3 and PCellID0-3: part 0x011, designer ARM (0x41), revision
/// 1, and the PrimeCell id 0xb105f00d, as QEMU's PL011 reports them.
pub(crate) const ID: [u8; 8] = [0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1];
/// The size of the register window.
pub const SIZE: u64 = 0x1000;

/// The UART's state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Pl011 {
    ibrd: u16,
    fbrd: u8,
    lcr_h: u8,
    cr: u16,
    imsc: u16,
    /// Raw interrupt status: [`INT_RX`], [`INT_TX`].
    ris: u16,
    /// The receive FIFO: `rx_len` bytes from `rx_head`, in a ring.
    rx: [u8; RX_FIFO],
    rx_head: u8,
    rx_len: u8,
    /// The interrupt (an SPI of the VM's virtual GIC) its line drives.
    irq: Option<u32>,
}

impl Pl011 {
    /// A UART after reset (CR: TX and RX enabled, as firmware leaves it),
    /// its interrupt line connected to nothing.
    pub fn new() -> Pl011 {
        Pl011 { cr: 0x301, ..Pl011::default() }
    }

    /// A UART after reset whose line drives interrupt `irq`.
    pub fn with_irq(irq: u32) -> Pl011 {
        Pl011 { irq: Some(irq), ..Pl011::new() }
    }

    /// The interrupt its line drives, if connected.
    pub fn irq(&self) -> Option<u32> {
        self.irq
    }

    /// Its interrupt line: an interrupt is raised and not masked.
    pub fn line(&self) -> bool {
        self.ris & self.imsc != 0
    }

    /// Its interrupt and line level now, if the line is connected: taken
    /// before an access, for [`Pl011::moved`] after it.
    pub fn watch(&self) -> Option<(u32, bool)> {
        self.irq.map(|irq| (irq, self.line()))
    }

    /// Its interrupt and new level, if its line moved since `watched`.
    pub fn moved(&self, watched: Option<(u32, bool)>) -> Option<(u32, bool)> {
        watched.filter(|&(_, before)| self.line() != before).map(|(irq, _)| (irq, self.line()))
    }

    /// Takes `byte` of console input into the receive FIFO; false, and the
    /// byte dropped, if the FIFO is full (as the hardware's overrun).
    pub fn receive(&mut self, byte: u8) -> bool {
        if usize::from(self.rx_len) >= RX_FIFO {
            return false;
        }
        let at = (usize::from(self.rx_head) + usize::from(self.rx_len)) % RX_FIFO;
        if let Some(slot) = self.rx.get_mut(at) {
            *slot = byte;
        }
        self.rx_len += 1;
        self.ris |= INT_RX;
        true
    }

    /// A guest's load from `offset`: [`Pl011::read`], except that a load
    /// of the data register takes the byte out of the receive FIFO.
    pub fn load(&mut self, offset: u64) -> u64 {
        if offset != reg::DR || self.rx_len == 0 {
            return self.read(offset);
        }
        let byte = self.rx.get(usize::from(self.rx_head)).copied().unwrap_or(0);
        self.rx_head = ((usize::from(self.rx_head) + 1) % RX_FIFO) as u8;
        self.rx_len -= 1;
        if self.rx_len == 0 {
            self.ris &= !INT_RX;
        }
        u64::from(byte)
    }

    /// A read of `offset` (the value before width masking), without effect.
    pub fn read(&self, offset: u64) -> u64 {
        let rx_empty = if self.rx_len == 0 { FR_RXFE } else { 0 };
        let rx_full = if usize::from(self.rx_len) >= RX_FIFO { FR_RXFF } else { 0 };
        match offset {
            reg::DR => self.rx.get(usize::from(self.rx_head)).copied().filter(|_| self.rx_len > 0).map_or(0, u64::from),
            reg::FR => FR_TXFE | rx_empty | rx_full,
            reg::RIS => u64::from(self.ris),
            reg::MIS => u64::from(self.ris & self.imsc),
            reg::IBRD => u64::from(self.ibrd),
            reg::FBRD => u64::from(self.fbrd),
            reg::LCR_H => u64::from(self.lcr_h),
            reg::CR => u64::from(self.cr),
            reg::IMSC => u64::from(self.imsc),
            o if (reg::ID_BASE..SIZE).contains(&o) && o % 4 == 0 => {
                ID.get(((o - reg::ID_BASE) / 4) as usize).copied().map_or(0, u64::from)
            }
            _ => 0,
        }
    }

    /// A write of `value` to `offset`; transmitted bytes go to `console`.
    pub fn write<C: Console + ?Sized>(&mut self, offset: u64, value: u64, console: &mut C) {
        match offset {
            reg::DR => {
                console.put(value as u8);
                // Sent at once: the transmit FIFO is empty again.
                self.ris |= INT_TX;
            }
            reg::ICR => self.ris &= !(value as u16),
            reg::IBRD => self.ibrd = value as u16,
            reg::FBRD => self.fbrd = (value & 0x3f) as u8,
            reg::LCR_H => self.lcr_h = value as u8,
            reg::CR => self.cr = value as u16,
            reg::IMSC => self.imsc = (value & 0x7ff) as u16,
            _ => {}
        }
    }
}
