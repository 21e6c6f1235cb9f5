//! The lifecycle check's guest: four instructions at the start of guest
//! RAM that power the VM off through PSCI, as a guest's last act does.

use sel4::init_thread::slot;

/// `movz x0, #0x0008; movk x0, #0x8400, lsl #16; hvc #0; b .`: x0 =
/// PSCI SYSTEM_OFF (0x8400_0008), then the call, then nothing (it never
/// returns).
const CODE: [u32; 4] = [0xd280_0100, 0xf2b0_8000, 0xd400_0002, 0x1400_0000];

/// Writes the guest at `vaddr` (guest RAM as the root task maps it) and
/// cleans the data cache over it: the guest starts with its MMU and caches
/// off, so it reads memory, not the root task's cached writes.
pub fn install(vaddr: u64) -> Result<(), sel4::Error> {
    for (i, word) in (0u64..).zip(CODE) {
        // The frames behind `vaddr` are mapped writable into the root
        // task at start and stay mapped; nothing else aliases them here.
        unsafe { core::ptr::write_volatile((vaddr + 4 * i) as *mut u32, word) };
    }
    let end = vaddr + 4 * CODE.len() as u64;
    let err =
        sel4::with_ipc_buffer_mut(|b| b.inner_mut().seL4_ARM_VSpace_Clean_Data(slot::VSPACE.cptr_bits(), vaddr, end));
    sel4::Error::from_sys(err).map_or(Ok(()), Err)
}
