//! Capacities and the static configuration a VMM instance starts from.
//!
//! Every table in the core has a fixed capacity named here; exceeding one is
//! ENOSPC (rule 9.4) unless a rule says otherwise. The
//! configuration itself comes from the system description (the boot manifest
//! on Microkit; the test harness on the host).

use heapless::Vec;

use crate::caps::{page_aligned, Slot, SlotRange, PAGE_SIZE};

/// VMs per VMM instance, counting destroyed VMs still pinned by an open
/// guest_memfd file: the default capacity of a [`crate::Vmm`], which a
/// deployment may lower.
pub const MAX_VMS: usize = 4;
/// vCPUs per VM (an upper bound for [`VmmConfig::vcpu_limit`]).
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
/// Clients with a protected-call channel to this VMM.
pub(crate) const MAX_CLIENTS: usize = 8;
/// Guest RAM regions mapped into the VMM.
pub const MAX_RAM_REGIONS: usize = 4;
/// Stage-2 page tables per VM (each level-3 table maps 2 MiB).
pub const MAX_PAGE_TABLES: u64 = 1024;
/// Guest-physical address bits (stage 2 with a concatenated level-1 root).
pub(crate) const GUEST_PHYS_BITS: u32 = 40;
/// One past the highest guest-physical address.
pub const GUEST_PHYS_LIMIT: u64 = 1 << GUEST_PHYS_BITS;
/// Virtual interrupt lines are `MIN_IRQ..MAX_IRQ`: PPIs and SPIs of a GICv2/3
/// (SGIs are not lines).
pub const MIN_IRQ: u32 = 16;
/// One past the highest virtual interrupt line.
pub const MAX_IRQ: u32 = 1020;

/// A client, named by the Microkit channel its requests arrive on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientId(pub u32);

/// Guest RAM the VMM has mapped into its own address space: `pages` frames
/// whose capabilities sit in consecutive slots from `frames`, mapped at
/// `vmm_vaddr` onwards. Memslots that are not guest_memfd point into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RamRegion {
    /// Where the region starts in the VMM's address space.
    pub vmm_vaddr: u64,
    /// Its size in pages.
    pub pages: u64,
    /// The slot of the frame capability of its first page.
    pub frames: Slot,
}

impl RamRegion {
    /// One past the region's last VMM address.
    pub(crate) fn end(&self) -> u64 {
        self.vmm_vaddr.saturating_add(self.pages.saturating_mul(PAGE_SIZE))
    }

    /// The frame capability slot behind VMM address `vaddr`, if inside.
    pub(crate) fn frame_at(&self, vaddr: u64) -> Option<Slot> {
        if vaddr < self.vmm_vaddr || vaddr >= self.end() {
            return None;
        }
        self.frames.offset((vaddr - self.vmm_vaddr) / PAGE_SIZE)
    }
}

/// A client's memlock allowance, the RLIMIT_MEMLOCK / CAP_IPC_LOCK of this
/// world.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientConfig {
    /// The channel the client calls on.
    pub id: ClientId,
    /// Pages the client may have locked at once.
    pub memlock_pages: u64,
    /// A privileged client has no memlock limit.
    pub privileged: bool,
}

/// What a VMM instance is given at initialisation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VmmConfig {
    /// Empty CSpace slots the VMM may allocate from.
    pub cspace: SlotRange,
    /// Guest RAM mapped into the VMM.
    pub ram: Vec<RamRegion, MAX_RAM_REGIONS>,
    /// Clients and their budgets.
    pub clients: Vec<ClientConfig, MAX_CLIENTS>,
    /// vCPU ids of each VM are `0..vcpu_limit` (at most [`MAX_VCPUS`]).
    pub vcpu_limit: u32,
    /// Whether the backend supports dirty-page logging (LOG_DIRTY_PAGES).
    pub dirty_log: bool,
    /// Stage-2 page tables each VM may have (1 to [`MAX_PAGE_TABLES`]):
    /// their slots are reserved when the VM is created, so a system whose
    /// guests use little of the guest-physical space reserves little.
    pub page_tables: u64,
}

crate::errors! {
    /// Why a configuration was refused at initialisation.
    pub enum ConfigError {
        /// A RAM region is empty, unaligned, wraps or overlaps another.
        BadRamRegion => EINVAL, "guest RAM region empty, unaligned, wrapping or overlapping another",
        /// Two clients share a channel.
        DuplicateClient => EINVAL, "two clients on the same channel",
        /// The vCPU limit is 0 or above MAX_VCPUS.
        BadVcpuLimit => EINVAL, "vCPU limit must be 1 to MAX_VCPUS",
        /// Page tables per VM not in 1..=MAX_PAGE_TABLES.
        BadPageTables => EINVAL, "page tables per VM must be 1 to MAX_PAGE_TABLES",
        /// The CSpace range is empty or wraps.
        BadCSpace => EINVAL, "CSpace range empty or wrapping",
    }
}

impl VmmConfig {
    /// Slots in each VM's own run: its VSpace, a TCB and a vCPU object per
    /// vCPU id, and its page tables.
    pub fn vm_slots(&self) -> u64 {
        1 + 2 * MAX_VCPUS as u64 + self.page_tables
    }

    /// Checks the configuration once, so the operations can rely on it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.cspace.len == 0 || self.cspace.base.offset(self.cspace.len).is_none() {
            return Err(ConfigError::BadCSpace);
        }
        if self.vcpu_limit == 0 || self.vcpu_limit as usize > MAX_VCPUS {
            return Err(ConfigError::BadVcpuLimit);
        }
        if !(1..=MAX_PAGE_TABLES).contains(&self.page_tables) {
            return Err(ConfigError::BadPageTables);
        }
        for (i, r) in self.ram.iter().enumerate() {
            let size = r.pages.checked_mul(PAGE_SIZE).ok_or(ConfigError::BadRamRegion)?;
            let wraps = r.vmm_vaddr.checked_add(size).is_none() || r.frames.offset(r.pages).is_none();
            if r.pages == 0 || !page_aligned(r.vmm_vaddr) || wraps {
                return Err(ConfigError::BadRamRegion);
            }
            let overlap = self.ram.iter().skip(i + 1).any(|o| r.vmm_vaddr < o.end() && o.vmm_vaddr < r.end());
            if overlap {
                return Err(ConfigError::BadRamRegion);
            }
        }
        for (i, c) in self.clients.iter().enumerate() {
            if self.clients.iter().skip(i + 1).any(|o| o.id == c.id) {
                return Err(ConfigError::DuplicateClient);
            }
        }
        Ok(())
    }

    /// The client configured on channel `id`.
    pub(crate) fn client(&self, id: ClientId) -> Option<&ClientConfig> {
        self.clients.iter().find(|c| c.id == id)
    }

    /// The RAM region holding `[vaddr, vaddr + size)` entirely, if any.
    pub(crate) fn ram_containing(&self, vaddr: u64, size: u64) -> Option<&RamRegion> {
        let end = vaddr.checked_add(size)?;
        self.ram.iter().find(|r| vaddr >= r.vmm_vaddr && end <= r.end())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> VmmConfig {
        VmmConfig {
            cspace: SlotRange { base: Slot(100), len: 1000 },
            ram: Vec::new(),
            clients: Vec::new(),
            vcpu_limit: 1,
            dirty_log: false,
            page_tables: 3,
        }
    }

    #[test]
    fn page_tables_must_be_one_to_the_limit_and_size_the_vms_run() {
        assert_eq!(good().validate(), Ok(()));
        assert_eq!(good().vm_slots(), 1 + 2 * MAX_VCPUS as u64 + 3);
        for n in [0, MAX_PAGE_TABLES + 1, u64::MAX] {
            let c = VmmConfig { page_tables: n, ..good() };
            assert_eq!(c.validate(), Err(ConfigError::BadPageTables), "{n}");
        }
        assert_eq!(VmmConfig { page_tables: MAX_PAGE_TABLES, ..good() }.validate(), Ok(()));
    }

    #[test]
    fn the_other_limits_are_checked_too() {
        assert_eq!(VmmConfig { vcpu_limit: 0, ..good() }.validate(), Err(ConfigError::BadVcpuLimit));
        let c = VmmConfig { cspace: SlotRange { base: Slot(u64::MAX), len: 2 }, ..good() };
        assert_eq!(c.validate(), Err(ConfigError::BadCSpace));
    }
}
