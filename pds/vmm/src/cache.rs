//! Data cache maintenance over memory the VMM wrote for its guest.
//!
//! A guest starts with its MMU off, so its accesses are non-cacheable and
//! go to memory, while the VMM wrote the guest image through its own
//! cacheable mapping: the lines must be cleaned to the point of coherency
//! before the vCPU starts. QEMU does not model caches, so only hardware
//! shows the difference. seL4 does this on a VSpace capability; Microkit
//! gives the VMM its own through `<cspace><cap_vspace slot="1" pd="..."/>`
//! (system.xml), a slot of the root CNode.

/// The root-CNode slot of this PD's own VSpace capability (system.xml).
const OWN_VSPACE_ROOT_SLOT: u64 = 1;

/// A slot of the PD's root CNode as a capability pointer: the root CNode has
/// 2^6 slots and no guard (Microkit's `microkit_cspace_root_slot_to_cptr`).
const fn root_slot_cptr(slot: u64) -> u64 {
    slot << (64 - 6)
}

/// The stride of the clean: seL4 refuses a range that crosses a page, and
/// 4 KiB is the smallest page.
const STRIDE: usize = 0x1000;

/// `seL4_ARM_VSpace_Clean_Data` over `[start, end)` of this PD's address
/// space, one page at a time.
pub fn clean_data(start: usize, end: usize) -> Result<(), sel4::Error> {
    let vspace = root_slot_cptr(OWN_VSPACE_ROOT_SLOT);
    let mut at = start;
    while at < end {
        let next = ((at / STRIDE + 1) * STRIDE).min(end);
        let err =
            sel4::with_ipc_buffer_mut(|b| b.inner_mut().seL4_ARM_VSpace_Clean_Data(vspace, at as u64, next as u64));
        if let Some(e) = sel4::Error::from_sys(err) {
            return Err(e);
        }
        at = next;
    }
    Ok(())
}
