//! The board table (`boards/<board>.mk`) as Rust constants.
//!
//! The build script writes the numbers of `boards/<MICROKIT_BOARD>.mk`
//! (default `qemu_virt_aarch64`) as constants; the guest and the PDs read
//! them from here, so an address is named once, in the table. It needs no
//! seL4 target: its tests run in the host workspace.

#![no_std]

include!(concat!(env!("OUT_DIR"), "/board.rs"));

/// The guest's initial stack pointer: the top of its shared RAM.
pub const GUEST_STACK_TOP: u64 = GUEST_RAM_BASE + GUEST_RAM_SIZE;

/// Where in its shared RAM the guest writes and reads back its test
/// pattern: the second half, clear of the image (at the base) and the stack
/// (at the top, growing down).
pub const GUEST_SHARED_TEST_BASE: u64 = GUEST_RAM_BASE + GUEST_RAM_SIZE / 2;

/// The size of the shared test pattern.
pub const GUEST_SHARED_TEST_SIZE: u64 = 0x1000;

/// PL011 registers the guest uses (offsets from [`GUEST_UART_BASE`]).
pub mod pl011 {
    /// Data register.
    pub const DR: u64 = 0x00;
    /// Flag register.
    pub const FR: u64 = 0x18;
    /// FR: transmit FIFO full.
    pub const FR_TXFF: u32 = 1 << 5;
    /// The size of the register block.
    pub const SIZE: u64 = 0x1000;
}

/// The value of x0 at the guest's entry selects what it does.
pub mod guest_mode {
    /// Print, check private and shared memory, PSCI SYSTEM_OFF.
    pub const NORMAL: u64 = 0;
    /// As NORMAL, then touch [`GUEST_UNMAPPED_ADDR`](super::GUEST_UNMAPPED_ADDR)
    /// instead of switching off: the VMM stops only this VM.
    pub const FAULT: u64 = 1;
}

/// PSCI function ids (SMC32 calling convention, as the guest issues them
/// with `hvc #0`).
pub mod psci {
    /// PSCI_VERSION.
    pub const VERSION: u64 = 0x8400_0000;
    /// SYSTEM_OFF.
    pub const SYSTEM_OFF: u64 = 0x8400_0008;
}
