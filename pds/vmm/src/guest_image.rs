//! The guest image in the VM's shared RAM.
//!
//! The VMM embeds the guest ELF and copies it into the RAM at
//! initialisation, and again before the first run of a VM other than the
//! one that last ran (a re-created VM gets the image fresh, not what the
//! previous guest left of it). Each time it cleans the data cache over
//! what it wrote, through its own VSpace capability ([`crate::cache`]):
//! the guest starts with its MMU and caches off and reads memory, not the
//! VMM's dirty cache lines.

use vmm_abi::VmId;

use crate::cache;
use crate::loader::{self, GuestRam, LoadError};

/// The guest, built for aarch64-unknown-none and linked at guest RAM's base.
static IMAGE: &[u8] = include_bytes!(env!("VMM_GUEST_ELF", "VMM_GUEST_ELF must name the guest ELF"));

/// Why the image could not be put in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageError {
    /// The image does not fit the RAM, or is no AArch64 executable.
    Load(LoadError),
    /// seL4 refused to clean the data cache.
    Clean(sel4::Error),
}

impl core::fmt::Display for ImageError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ImageError::Load(e) => write!(f, "guest image refused: {e}"),
            ImageError::Clean(e) => write!(f, "cannot clean the data cache over the guest image: {e}"),
        }
    }
}

/// What a load did.
#[derive(Clone, Copy, Debug)]
pub struct Loaded {
    /// The image's entry point (guest-physical).
    pub entry: u64,
    /// The bytes of the image file.
    pub image_bytes: usize,
    /// The VMM addresses written and cleaned.
    pub cleaned: (u64, u64),
}

/// Whose first run the RAM's contents are for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// As loaded: no VM has run since.
    Fresh,
    /// The VM that has run since the last load.
    RanBy(VmId),
}

/// The VM's shared RAM and the image in it.
pub struct GuestImage {
    /// Where the RAM is mapped in this PD.
    vaddr: u64,
    /// Its size.
    size: u64,
    /// Where the VM sees it.
    gpa: u64,
    state: State,
}

impl GuestImage {
    /// The RAM mapped at `vaddr` (`size` bytes) in this PD and at `gpa` in
    /// the VM; nothing is loaded yet.
    pub fn new(vaddr: u64, size: u64, gpa: u64) -> GuestImage {
        GuestImage { vaddr, size, gpa, state: State::Fresh }
    }

    /// Copies the image into the RAM and cleans the data cache over it.
    pub fn load(&mut self) -> Result<Loaded, ImageError> {
        let (Ok(vaddr), Ok(size)) = (usize::try_from(self.vaddr), usize::try_from(self.size)) else {
            return Err(ImageError::Load(LoadError::OutsideRam));
        };
        // SAFETY: system.xml maps the VM's shared RAM here, read-write, in
        // this PD alone among PDs (the boot manifest, checked against
        // Microkit's setvars, says the same), and this PD's code touches it
        // nowhere else; the VM does not run while this slice lives.
        let ram = unsafe { core::slice::from_raw_parts_mut(vaddr as *mut u8, size) };
        let mut ram = GuestRam { base: self.gpa, ram };
        let loaded = loader::load(IMAGE, &mut ram).map_err(ImageError::Load)?;
        let end = vaddr.saturating_add(loaded.written);
        cache::clean_data(vaddr, end).map_err(ImageError::Clean)?;
        self.state = State::Fresh;
        Ok(Loaded { entry: loaded.entry, image_bytes: IMAGE.len(), cleaned: (self.vaddr, end as u64) })
    }

    /// True if the RAM must be loaded again before `vm` first runs: another
    /// VM has run since the last load.
    pub fn stale_for(&self, vm: VmId) -> bool {
        matches!(self.state, State::RanBy(v) if v != vm)
    }

    /// Records that `vm` has started.
    pub fn started(&mut self, vm: VmId) {
        self.state = State::RanBy(vm);
    }
}
