//! What the core is given, the same on seL4 and on the host model: one RAM
//! region mapped into the VMM, two clients (one with a memlock budget, one
//! privileged), two vCPUs a VM, 160 page tables a VM.

use vmm::caps::{Slot, SlotRange};
use vmm::config::{ClientConfig, RamRegion, VmmConfig};
use vmm_abi::memslot::MemoryRegion;
use vmm_abi::ClientId;

/// VMs at once.
pub const VMS: usize = 2;

/// The core's slots: enough for a LOCK of all of guest RAM (two a page: the
/// guest's mapping and the pin, and the page tables) beside the VMs' other
/// objects.
pub const CORE_SLOTS: u64 = 2 * RAM_PAGES + 2048;

/// Guest RAM mapped into the VMM, in pages: 256 MiB, what the LOCK figure
/// locks at most.
pub const RAM_PAGES: u64 = 65_536;

/// Where guest RAM is mapped in the VMM's address space (on seL4, the root
/// task's: clear of its image, its IPC buffer and boot information).
pub const RAM_VADDR: u64 = 0x20_0000_0000;

/// Where the guests see guest RAM.
pub const RAM_GPA: u64 = 0x4000_0000;

/// A memslot: `slot` with `flags`, `size` bytes at `gpa`, backed from
/// `vaddr` in the VMM (RAM) or by guest_memfd `gmem` from its start.
pub fn region(slot: u32, flags: u32, gpa: u64, size: u64, vaddr: u64, gmem: u32) -> MemoryRegion {
    MemoryRegion {
        slot,
        flags,
        guest_phys_addr: gpa,
        memory_size: size,
        userspace_addr: vaddr,
        guest_memfd_offset: 0,
        guest_memfd: gmem,
    }
}

/// The client with a memlock budget.
pub const CLIENT: ClientId = ClientId(1);

/// The privileged client.
pub const PRIVILEGED: ClientId = ClientId(2);

/// The first client's memlock budget, in pages.
pub const CLIENT_MEMLOCK_PAGES: u64 = 256;

/// The configuration, with the core's slots `cspace` and guest RAM's frame
/// capabilities from `frames`.
pub fn config(cspace: SlotRange, frames: Slot) -> VmmConfig {
    let mut config = VmmConfig {
        cspace,
        ram: heapless::Vec::new(),
        clients: heapless::Vec::new(),
        vcpu_limit: 2,
        dirty_log: false,
        // A LOCK of all of guest RAM: 128 last-level tables and one above
        // them, and room for the other memslots.
        page_tables: 160,
    };
    // Within the tables' capacities (one region, two of eight clients).
    let _ = config.ram.push(RamRegion { vmm_vaddr: RAM_VADDR, pages: RAM_PAGES, frames });
    let _ = config.clients.push(ClientConfig { id: CLIENT, memlock_pages: CLIENT_MEMLOCK_PAGES, privileged: false });
    let _ = config.clients.push(ClientConfig { id: PRIVILEGED, memlock_pages: 0, privileged: true });
    config
}
