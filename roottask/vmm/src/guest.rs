//! The root task's guests, written into guest RAM: the lifecycle check's,
//! four instructions at its start that power the VM off through PSCI, as a
//! guest's last act does; and the benchmark's: a loop of PSCI_VERSION
//! calls, one HVC exit each, and a loop of loads from an emulated PL011's
//! flag register, one MMIO exit each, each before the same power-off.

use sel4::init_thread::slot;

/// `movz x0, #0x0008; movk x0, #0x8400, lsl #16; hvc #0; b .`: x0 =
/// PSCI SYSTEM_OFF (0x8400_0008), then the call, then nothing (it never
/// returns).
const POWER_OFF: [u32; 4] = [0xd280_0100, 0xf2b0_8000, 0xd400_0002, 0x1400_0000];

/// Where the HVC loop starts in guest RAM, clear of the power-off guest.
pub const HVC_LOOP_OFFSET: u64 = 0x1000;

/// Where the MMIO loop starts in guest RAM.
pub const MMIO_LOOP_OFFSET: u64 = 0x3000;

/// Where the MMIO loop's PL011 is: QEMU virt's address, outside RAM.
pub const UART_GPA: u64 = 0x0900_0000;

/// Where the probes start in guest RAM: [`PROBE_READ`], [`PROBE_WRITE`]
/// and [`PROBE_FILL`] bytes past it.
pub const PROBES_OFFSET: u64 = 0x2000;
/// Reads the word at x0 into x3, then powers off.
pub const PROBE_READ: u64 = 0;
/// Reads the word at x0 into x3, writes it back, then powers off.
pub const PROBE_WRITE: u64 = 0x100;
/// Writes 0xbeef to the word at x0, then powers off.
pub const PROBE_FILL: u64 = 0x200;

/// `ldr x3, [x0]`.
const LDR_X3_X0: u32 = 0xf940_0003;
/// `str x3, [x0]`.
const STR_X3_X0: u32 = 0xf900_0003;
/// `movz x3, #0xbeef`.
const MOVZ_X3_BEEF: u32 = 0xd297_dde3;

/// Writes the power-off guest at `vaddr` (guest RAM as the root task maps
/// it), and the probes after it.
pub fn install(vaddr: u64) -> Result<(), sel4::Error> {
    write(vaddr, &POWER_OFF)?;
    let [a, b, c, d] = POWER_OFF;
    let probes = vaddr + PROBES_OFFSET;
    write(probes + PROBE_READ, &[LDR_X3_X0, a, b, c, d])?;
    write(probes + PROBE_WRITE, &[LDR_X3_X0, STR_X3_X0, a, b, c, d])?;
    write(probes + PROBE_FILL, &[MOVZ_X3_BEEF, STR_X3_X0, a, b, c, d])
}

/// Writes the HVC loop at `vaddr + HVC_LOOP_OFFSET`: `count` (at most
/// 65535) PSCI_VERSION calls, then SYSTEM_OFF. The count is in x19, which
/// the calls leave alone (SMCCC preserves x4 and above).
pub fn install_hvc_loop(vaddr: u64, count: u64) -> Result<(), sel4::Error> {
    let count = u32::try_from(count.min(0xffff)).unwrap_or(0xffff);
    let code = [
        0xd280_0013 | (count << 5), // movz x19, #count
        0xd280_0000,                // movz x0, #0
        0xf2b0_8000,                // movk x0, #0x8400, lsl #16: PSCI_VERSION
        0xd400_0002,                // hvc #0
        0xf100_0673,                // subs x19, x19, #1
        0x54ff_ff81,                // b.ne the movz x0 above
        0xd280_0100,                // movz x0, #0x0008
        0xf2b0_8000,                // movk x0, #0x8400, lsl #16: SYSTEM_OFF
        0xd400_0002,                // hvc #0
        0x1400_0000,                // b .
    ];
    write(vaddr + HVC_LOOP_OFFSET, &code)
}

/// Writes the MMIO loop at `vaddr + MMIO_LOOP_OFFSET`: `count` (at most
/// 65535) 32-bit loads from the flag register (UARTFR, 0x18) of the PL011
/// at [`UART_GPA`], which has no effect, then SYSTEM_OFF: the load the
/// Microkit exit benchmark's guest makes.
pub fn install_mmio_loop(vaddr: u64, count: u64) -> Result<(), sel4::Error> {
    let count = u32::try_from(count.min(0xffff)).unwrap_or(0xffff);
    let code = [
        0xd280_0013 | (count << 5), // movz x19, #count
        0xd2a1_2001,                // movz x1, #0x0900, lsl #16: UART_GPA
        0xb940_1822,                // ldr w2, [x1, #0x18]: UARTFR
        0xf100_0673,                // subs x19, x19, #1
        0x54ff_ffc1,                // b.ne the ldr above
        0xd280_0100,                // movz x0, #0x0008
        0xf2b0_8000,                // movk x0, #0x8400, lsl #16: SYSTEM_OFF
        0xd400_0002,                // hvc #0
        0x1400_0000,                // b .
    ];
    write(vaddr + MMIO_LOOP_OFFSET, &code)
}

/// Writes `code` at `vaddr` and cleans the data cache over it: the guest
/// starts with its MMU and caches off, so it reads memory, not the root
/// task's cached writes.
fn write(vaddr: u64, code: &[u32]) -> Result<(), sel4::Error> {
    for (i, word) in (0u64..).zip(code) {
        // The frames behind `vaddr` are mapped writable into the root task
        // at start and stay mapped; nothing else aliases them here.
        unsafe { core::ptr::write_volatile((vaddr + 4 * i) as *mut u32, *word) };
    }
    let end = vaddr + 4 * code.len() as u64;
    let err =
        sel4::with_ipc_buffer_mut(|b| b.inner_mut().seL4_ARM_VSpace_Clean_Data(slot::VSPACE.cptr_bits(), vaddr, end));
    sel4::Error::from_sys(err).map_or(Ok(()), Err)
}
