//! What one VMM holds: the capacity of each of its tables, the page size
//! and the guest-physical space it maps, the interrupt lines it models.
//!
//! Exceeding a capacity is ENOSPC unless a rule says otherwise (rule 9.4).
//! Clients and the system description are held to the same numbers as the
//! core, so they are part of the interface.

/// log2 of the only page size the VMM maps at stage 2 (4 KiB).
pub const PAGE_BITS: u32 = 12;
/// The only page size the VMM maps at stage 2.
pub const PAGE_SIZE: u64 = 1 << PAGE_BITS;

/// True if `x` is a multiple of [`PAGE_SIZE`].
pub const fn page_aligned(x: u64) -> bool {
    x & (PAGE_SIZE - 1) == 0
}

/// VMs per VMM instance, counting destroyed VMs still pinned by an open
/// guest_memfd file: the default capacity of the core's `Vmm`, which a
/// deployment may lower.
pub const MAX_VMS: usize = 4;
/// vCPUs per VM (an upper bound for the vCPU limit a VMM is configured with).
pub const MAX_VCPUS: usize = 8;
/// Memslot ids per VM are `0..MAX_MEMSLOTS`. Each costs its record (about
/// 100 bytes) in every VM's table and two runs in the slot allocator, held
/// whether used or not; an embedded system describes a handful of regions
/// per VM, where KVM's 509 would cost 200 KiB per VMM.
pub const MAX_MEMSLOTS: usize = 64;
/// Open guest_memfd files per VMM instance.
pub const MAX_GMEM_FILES: usize = 8;
/// Bindings (memslots backed) per guest_memfd file: fewer than a VM has
/// memslots, so that one file cannot take every slot record.
pub const MAX_BINDINGS: usize = 16;
/// Guest RAM regions mapped into the VMM.
pub const MAX_RAM_REGIONS: usize = 4;
/// Stage-2 page tables per VM (each level-3 table maps 2 MiB).
pub const MAX_PAGE_TABLES: u64 = 1024;
/// Guest-physical address bits (stage 2 with a concatenated level-1 root).
pub const GUEST_PHYS_BITS: u32 = 40;
/// One past the highest guest-physical address.
pub const GUEST_PHYS_LIMIT: u64 = 1 << GUEST_PHYS_BITS;
/// Virtual interrupt lines are `MIN_IRQ..MAX_IRQ`: PPIs and SPIs of a GICv2/3
/// (SGIs are not lines).
pub const MIN_IRQ: u32 = 16;
/// One past the highest virtual interrupt line.
pub const MAX_IRQ: u32 = 1020;
/// Devices per VM.
pub const MAX_DEVICES: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment() {
        assert!(page_aligned(0) && page_aligned(PAGE_SIZE) && !page_aligned(1) && !page_aligned(PAGE_SIZE + 8));
    }
}
