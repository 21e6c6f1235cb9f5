//! A PL011 UART, the subset a guest needs to print and poll: the data
//! register, the flag register (transmit FIFO always empty, nothing to
//! receive), the control registers it programs (kept, so they read back),
//! and the ID registers drivers probe. Everything else reads as zero and
//! ignores writes.

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
    pub(crate) const CR: u64 = 0x030;
    /// Interrupt mask set/clear.
    pub(crate) const IMSC: u64 = 0x038;
    /// First ID register (PeriphID0); the eight run to 0xffc.
    pub(crate) const ID_BASE: u64 = 0xfe0;
}

/// FR: receive FIFO empty.
pub const FR_RXFE: u64 = 1 << 4;
/// FR: transmit FIFO empty.
pub const FR_TXFE: u64 = 1 << 7;
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
}

impl Pl011 {
    /// A UART after reset (CR: TX and RX enabled, as firmware leaves it).
    pub fn new() -> Pl011 {
        Pl011 { cr: 0x301, ..Pl011::default() }
    }

    /// A read of `offset` (the value before width masking).
    pub fn read(&self, offset: u64) -> u64 {
        match offset {
            reg::DR => 0,
            reg::FR => FR_TXFE | FR_RXFE,
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
            reg::DR => console.put(value as u8),
            reg::IBRD => self.ibrd = value as u16,
            reg::FBRD => self.fbrd = (value & 0x3f) as u8,
            reg::LCR_H => self.lcr_h = value as u8,
            reg::CR => self.cr = value as u16,
            reg::IMSC => self.imsc = (value & 0x7ff) as u16,
            _ => {}
        }
    }
}
