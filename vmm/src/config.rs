//! The static configuration a VMM instance starts from.
//!
//! Every table in the core has a fixed capacity, named in
//! [`vmm_abi::limits`]. The configuration itself comes from the system
//! description (the boot manifest on Microkit; the test harness on the
//! host).

use heapless::Vec;

use crate::caps::{Slot, SlotRange};
use vmm_abi::limits::{page_aligned, MAX_PAGE_TABLES, MAX_RAM_REGIONS, MAX_VCPUS, PAGE_SIZE};
use vmm_abi::manifest::{Manifest, ManifestError, CLIENT_PRIVILEGED};
use vmm_abi::ClientId;

/// Clients with a protected-call channel to this VMM.
pub(crate) const MAX_CLIENTS: usize = 8;

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

impl VmmConfig {
    /// The VMM configuration a boot manifest describes, given the CSpace the
    /// backend hands the core and the slot of the first guest RAM frame
    /// (frames of successive RAM records follow each other).
    pub fn from_manifest(m: &Manifest, cspace: SlotRange, first_frame: Slot) -> Result<VmmConfig, ManifestError> {
        let mut ram = Vec::new();
        let mut frame = first_frame;
        for r in &m.ram {
            let pages = r.size.get() / PAGE_SIZE;
            ram.push(RamRegion { vmm_vaddr: r.vmm_vaddr.get(), pages, frames: frame })
                .map_err(|_| ManifestError::TooMany)?;
            frame = frame.offset(pages).ok_or(ManifestError::BadRecord)?;
        }
        let mut clients = Vec::new();
        if !m.internal() {
            let client = ClientConfig {
                id: ClientId(m.client_channel),
                memlock_pages: m.memlock_pages,
                privileged: m.client_flags & CLIENT_PRIVILEGED != 0,
            };
            clients.push(client).map_err(|_| ManifestError::TooMany)?;
        }
        let page_tables = page_tables(m);
        Ok(VmmConfig { cspace, ram, clients, vcpu_limit: m.vcpus, dirty_log: false, page_tables })
    }
}

/// The stage-2 page tables the VM's memslots need, at most
/// [`MAX_PAGE_TABLES`]: a level-2 table per 1 GiB and a level-3 table
/// per 2 MiB of guest-physical space they touch, each counted once.
fn page_tables(m: &Manifest) -> u64 {
    let mut n = 0u64;
    for shift in [30u32, 21] {
        for (i, s) in m.slots.iter().enumerate() {
            let end = s.gpa.get().checked_add(s.size.get()).filter(|_| s.size.get() != 0);
            let Some(last) = end.and_then(|e| e.checked_sub(1)) else { continue };
            let (first, last) = (s.gpa.get() >> shift, last >> shift);
            // Tables an earlier slot already needs are not counted again.
            let earlier = |t: u64| {
                m.slots.iter().take(i).any(|o| {
                    let end = o.gpa.get().saturating_add(o.size.get()).saturating_sub(1);
                    o.size.get() != 0 && o.gpa.get() >> shift <= t && t <= end >> shift
                })
            };
            let mut t = first;
            while t <= last && n < MAX_PAGE_TABLES {
                if !earlier(t) {
                    n += 1;
                }
                t += 1;
            }
        }
    }
    n.clamp(1, MAX_PAGE_TABLES)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmm_abi::manifest::{File, Ram, SlotEntry, SLOT_GMEM, SLOT_LOCKABLE};
    use zerocopy::little_endian::{U32, U64};

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

    /// A client's VM: 2 MiB of RAM at 1 GiB, and 1 MiB of private memory at
    /// 1.25 GiB.
    fn sample() -> Manifest {
        let mut m =
            Manifest { vcpus: 1, entry: 0x4000_0000, client_channel: 3, memlock_pages: 64, ..Manifest::default() };
        m.ram
            .push(Ram { vmm_vaddr: U64::new(0x2000_0000), size: U64::new(0x20_0000), gpa: U64::new(0x4000_0000) })
            .unwrap();
        m.files.push(File { size: U64::new(0x10_0000), gpa: U64::new(0x5000_0000) }).unwrap();
        let ram_slot = SlotEntry {
            id: U32::new(0),
            flags: U32::new(SLOT_LOCKABLE),
            gpa: U64::new(0x4000_0000),
            size: U64::new(0x20_0000),
            source: U64::new(0x2000_0000),
            file: U32::new(0),
            pad: U32::new(0),
        };
        m.slots.push(ram_slot).unwrap();
        let gmem_slot = SlotEntry {
            id: U32::new(1),
            flags: U32::new(SLOT_GMEM),
            gpa: U64::new(0x5000_0000),
            size: U64::new(0x10_0000),
            source: U64::new(0),
            ..ram_slot
        };
        m.slots.push(gmem_slot).unwrap();
        m
    }

    #[test]
    fn config_follows_the_manifest() {
        let c = VmmConfig::from_manifest(&sample(), SlotRange { base: Slot(100), len: 1000 }, Slot(10)).unwrap();
        assert_eq!(c.ram[0], RamRegion { vmm_vaddr: 0x2000_0000, pages: 512, frames: Slot(10) });
        assert_eq!(c.clients[0], ClientConfig { id: ClientId(3), memlock_pages: 64, privileged: false });
        assert_eq!(c.vcpu_limit, 1);
        // RAM at 1 GiB and private memory at 1.25 GiB: one level-2 table
        // for the gigabyte both are in, one level-3 table for each.
        assert_eq!(c.page_tables, 3);
        assert_eq!(c.vm_slots(), 1 + 2 * MAX_VCPUS as u64 + 3);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn page_tables_count_each_table_once_and_stop_at_the_limit() {
        let mut m = sample();
        // A slot in the same 2 MiB as RAM's last page needs no new table;
        // one in another gigabyte needs a level-2 and a level-3 table; an
        // empty slot needs none.
        let near = SlotEntry { id: U32::new(2), gpa: U64::new(0x401f_f000), size: U64::new(0x1000), ..m.slots[0] };
        let far = SlotEntry { id: U32::new(3), gpa: U64::new(0x8000_0000), ..near };
        let empty = SlotEntry { id: U32::new(4), size: U64::new(0), ..far };
        for s in [near, far, empty] {
            m.slots.push(s).unwrap();
        }
        assert_eq!(page_tables(&m), 5);
        // Guest-physical space wider than the limit covers is counted up to
        // it: mapping there fails for want of tables (ENOMEM), not here.
        m.slots[3].size = U64::new(1 << 39);
        assert_eq!(page_tables(&m), MAX_PAGE_TABLES);
    }
}
