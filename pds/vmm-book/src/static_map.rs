//! The VM's memory as Microkit mapped it, read from the boot manifest: which
//! frame the core can name sits at which guest-physical address, and which
//! mappings the manifest's memslots allow.
//!
//! The core names two kinds of frame:
//! - *RAM frames*: page `i` of the VM's shared RAM, counted over the
//!   manifest's RAM records in order, in the core slot `ram_frames + i`
//!   (the slots [`vmm::config::VmmConfig::from_manifest`] gives the core). Microkit
//!   mapped page `i` of record `r` at `r.gpa + i * 4 KiB`.
//! - *private frames*: page `p` of the VM's private regions (its
//!   guest_memfd backing), counted over the manifest's file records in
//!   order. The core creates them by retyping; the backend hands out the
//!   pages of this pool. Microkit mapped page `p` of file `f` at
//!   `f.gpa + p * 4 KiB`, into the VM only.

use heapless::Vec;

use vmm::caps::{Rights, Slot};
use vmm_abi::limits::{MAX_GMEM_FILES, MAX_RAM_REGIONS, PAGE_SIZE};
use vmm_abi::manifest::{Manifest, MAX_SLOTS, SLOT_GMEM, SLOT_LOCKABLE, SLOT_READONLY};

/// Private pages the backend can account for (16 MiB).
pub const MAX_PRIVATE_PAGES: u64 = 4096;

/// Guest-physical bits translated by one level-3 page table (2 MiB).
const L3_BLOCK: u64 = 1 << 21;

/// A frame the core can name, by where it lies in the static layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// Page `i` of the shared RAM (over all RAM records).
    Ram(u32),
    /// Page `p` of the private pool (over all file records).
    Private(u32),
}

/// A run of pages of one record: where the VM sees it, where its pages
/// start in the frame numbering, how many there are.
#[derive(Clone, Copy, Debug)]
struct Area {
    gpa: u64,
    first: u64,
    pages: u64,
    /// RAM: the VMM address of the first page; private: 0.
    vmm_vaddr: u64,
}

impl Area {
    /// The page `page` of the numbering, as an index into this area.
    fn index(&self, page: u64) -> Option<u64> {
        page.checked_sub(self.first).filter(|i| *i < self.pages)
    }
}

/// A memslot of the manifest: what the VM may be given at `[gpa, gpa + size)`.
#[derive(Clone, Copy, Debug)]
struct SlotArea {
    gpa: u64,
    size: u64,
    /// RAM slots: the VMM address backing `gpa`; guest_memfd slots: the
    /// offset in the file.
    source: u64,
    /// guest_memfd slots: the file record; RAM slots: `None`.
    file: Option<usize>,
    /// The most the slot gives the guest.
    rights: Rights,
    /// The manifest marks it lockable: its region uses 4 KiB pages.
    lockable: bool,
}

impl SlotArea {
    fn contains(&self, gpa: u64) -> bool {
        gpa >= self.gpa && gpa - self.gpa < self.size
    }
}

/// Why a manifest's layout cannot be served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// Its private regions hold more pages than the backend accounts for.
    TooManyPrivatePages,
    /// A page count or address does not fit the numbering.
    Overflow,
}

impl core::fmt::Display for LayoutError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LayoutError::TooManyPrivatePages => {
                write!(f, "its private regions exceed the {MAX_PRIVATE_PAGES} pages the backend accounts for")
            }
            LayoutError::Overflow => f.write_str("a region's page count or address overflows"),
        }
    }
}

/// The static layout of one VM.
#[derive(Clone, Debug)]
pub struct StaticMap {
    ram: Vec<Area, MAX_RAM_REGIONS>,
    files: Vec<Area, MAX_GMEM_FILES>,
    slots: Vec<SlotArea, MAX_SLOTS>,
    ram_frames: Slot,
    ram_pages: u64,
    private_pages: u64,
}

impl StaticMap {
    /// The layout `m` describes; the core names RAM page `i` by the slot
    /// `ram_frames + i`.
    pub fn new(m: &Manifest, ram_frames: Slot) -> Result<StaticMap, LayoutError> {
        let mut map = StaticMap {
            ram: Vec::new(),
            files: Vec::new(),
            slots: Vec::new(),
            ram_frames,
            ram_pages: 0,
            private_pages: 0,
        };
        for r in &m.ram {
            let pages = r.size.get() / PAGE_SIZE;
            let area = Area { gpa: r.gpa.get(), first: map.ram_pages, pages, vmm_vaddr: r.vmm_vaddr.get() };
            map.ram_pages = map.ram_pages.checked_add(pages).ok_or(LayoutError::Overflow)?;
            // Cannot fail: the manifest holds at most as many records.
            let _ = map.ram.push(area);
        }
        if ram_frames.offset(map.ram_pages).is_none() || u32::try_from(map.ram_pages).is_err() {
            return Err(LayoutError::Overflow);
        }
        for f in &m.files {
            let pages = f.size.get() / PAGE_SIZE;
            let area = Area { gpa: f.gpa.get(), first: map.private_pages, pages, vmm_vaddr: 0 };
            map.private_pages = map.private_pages.checked_add(pages).ok_or(LayoutError::Overflow)?;
            let _ = map.files.push(area);
        }
        if map.private_pages > MAX_PRIVATE_PAGES {
            return Err(LayoutError::TooManyPrivatePages);
        }
        for s in &m.slots {
            let flags = s.flags.get();
            let gmem = flags & SLOT_GMEM != 0;
            let rights = if flags & SLOT_READONLY != 0 { Rights::READ } else { Rights::READ_WRITE };
            let area = SlotArea {
                gpa: s.gpa.get(),
                size: s.size.get(),
                source: s.source.get(),
                file: gmem.then_some(s.file.get() as usize),
                rights,
                lockable: !gmem && flags & SLOT_LOCKABLE != 0,
            };
            let _ = map.slots.push(area);
        }
        Ok(map)
    }

    /// The RAM frame the core names by `slot`, if it names one.
    pub fn ram_frame(&self, slot: Slot) -> Option<Frame> {
        let i = slot.0.checked_sub(self.ram_frames.0).filter(|i| *i < self.ram_pages)?;
        u32::try_from(i).ok().map(Frame::Ram)
    }

    /// Pages in the private pool.
    pub fn private_pages(&self) -> u64 {
        self.private_pages
    }

    /// True if a memslot of the manifest gives the guest all of
    /// `[gpa, gpa + size)` from the same backing and with exactly `rights`:
    /// a guest_memfd slot (`gmem`) at file offset `source`, or a RAM slot
    /// backed at VMM address `source`. Microkit mapped nothing else, so
    /// the backend can give nothing else.
    pub fn backs(&self, gpa: u64, size: u64, source: u64, gmem: bool, rights: Rights) -> bool {
        let Some(end) = gpa.checked_add(size) else { return false };
        self.slots.iter().any(|s| {
            s.file.is_some() == gmem
                && s.rights == rights
                && s.gpa <= gpa
                && end <= s.gpa.saturating_add(s.size)
                && s.source.checked_add(gpa - s.gpa) == Some(source)
        })
    }

    /// True if every page of `[gpa, gpa + size)` lies in a RAM slot the
    /// manifest marks lockable (its region uses 4 KiB pages, as a lock's
    /// pins must: rule 5.4). Microkit maps the other regions with 2 MiB
    /// pages, which a 4 KiB pin cannot hold.
    pub fn lockable(&self, gpa: u64, size: u64) -> bool {
        let Some(end) = gpa.checked_add(size) else { return false };
        let mut at = gpa;
        while at < end {
            match self.slots.iter().find(|s| s.lockable && s.contains(at)) {
                Some(s) => at = s.gpa.saturating_add(s.size),
                None => return false,
            }
        }
        true
    }

    /// True if the manifest lets the VM have `frame` at `gpa` with
    /// `rights`: Microkit mapped that frame there, a memslot of the
    /// manifest covers `gpa` with that frame as its backing, and the slot
    /// gives the guest exactly `rights` (Microkit mapped it so; fewer would
    /// be a mapping this backend cannot make).
    pub fn allows(&self, frame: Frame, gpa: u64, rights: Rights) -> bool {
        match frame {
            Frame::Ram(i) => {
                let Some(area) = self.ram.iter().find(|a| a.index(u64::from(i)).is_some()) else {
                    return false;
                };
                let offset = (u64::from(i) - area.first) * PAGE_SIZE;
                let mapped_at = area.gpa.checked_add(offset);
                let vmm_addr = area.vmm_vaddr.checked_add(offset);
                mapped_at == Some(gpa)
                    && self.slots.iter().any(|s| {
                        s.file.is_none()
                            && s.contains(gpa)
                            && s.source.checked_add(gpa - s.gpa) == vmm_addr
                            && rights == s.rights
                    })
            }
            Frame::Private(p) => {
                let Some((f, area)) = self.files.iter().enumerate().find(|(_, a)| a.index(u64::from(p)).is_some())
                else {
                    return false;
                };
                let offset = (u64::from(p) - area.first) * PAGE_SIZE;
                area.gpa.checked_add(offset) == Some(gpa)
                    && self.slots.iter().any(|s| {
                        s.file == Some(f)
                            && s.contains(gpa)
                            && s.source.checked_add(gpa - s.gpa) == Some(offset)
                            && rights == s.rights
                    })
            }
        }
    }

    /// True if a memslot of the manifest lies in the 2 MiB block around
    /// `gpa`, so that Microkit built the page tables that translate it.
    pub fn has_tables_for(&self, gpa: u64) -> bool {
        let block = gpa & !(L3_BLOCK - 1);
        let end = block.saturating_add(L3_BLOCK);
        self.slots.iter().any(|s| s.gpa < end && block < s.gpa.saturating_add(s.size))
    }
}
