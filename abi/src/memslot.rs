//! SET_USER_MEMORY_REGION2's request and flags, and the flags of
//! LOCK_MEMSLOT and UNLOCK_MEMSLOT.

use crate::GmemHandle;

/// Stage-2 writes are tracked (only where the backend supports it).
pub const LOG_DIRTY_PAGES: u32 = 1 << 0;
/// The guest may not write.
pub const READONLY: u32 = 1 << 1;
/// Backed by a guest_memfd file instead of VMM-mapped RAM.
pub const GUEST_MEMFD: u32 = 1 << 2;

/// A SET_USER_MEMORY_REGION2 request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MemoryRegion {
    /// Low 16 bits: slot id; high 16 bits: address-space id.
    pub slot: u32,
    /// LOG_DIRTY_PAGES, READONLY, GUEST_MEMFD.
    pub flags: u32,
    /// Where the slot starts in guest-physical space.
    pub guest_phys_addr: u64,
    /// Its size in bytes; 0 deletes the slot.
    pub memory_size: u64,
    /// Where the backing is mapped in the VMM's address space.
    pub userspace_addr: u64,
    /// Offset into the guest_memfd file.
    pub guest_memfd_offset: u64,
    /// The guest_memfd handle (with GUEST_MEMFD).
    pub guest_memfd: u32,
}

impl MemoryRegion {
    /// The guest_memfd file it names.
    pub fn file(&self) -> GmemHandle {
        GmemHandle(self.guest_memfd)
    }
}

/// Lock for reading (required).
pub const LOCK_READ: u64 = 1 << 0;
/// Lock for writing too.
pub const LOCK_WRITE: u64 = 1 << 1;
/// UNLOCK: every locked slot of the VM instead of one.
pub const UNLOCK_ALL: u64 = 1 << 0;
