//! The guest image in the VM's shared RAM.
//!
//! The VMM embeds its guest (the build chooses: the test guest's ELF, or a
//! Linux guest's kernel Image, device tree and initramfs) and copies it into
//! the RAM at initialisation, and again before the first run of a VM other
//! than the one that last ran (a re-created VM gets the image fresh, not
//! what the previous guest left of it). Each time it cleans the data cache over
//! what it wrote, through its own VSpace capability ([`crate::cache`]):
//! the guest starts with its MMU and caches off and reads memory, not the
//! VMM's dirty cache lines.

use vmm_abi::VmId;

use crate::cache;
use guest_loader::{self as loader, GuestRam, Inflater, Kernel, LinuxImages, LinuxPlaces, LoadError};

/// What the build embedded. A build constructs one of the two, so the
/// other is dead code in it.
#[allow(dead_code)]
enum Payload {
    /// The test guest, built for aarch64-unknown-none and linked at guest
    /// RAM's base.
    Elf(&'static [u8]),
    /// A Linux guest.
    Linux(LinuxImages),
}

// `PAYLOAD`, written by the build script from `VMM_GUEST_ELF` or
// `VMM_LINUX_DIR`.
include!(concat!(env!("OUT_DIR"), "/payload.rs"));

/// Why the image could not be put in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageError {
    /// The image does not fit the RAM, or is no AArch64 executable.
    Load(LoadError),
    /// The boot manifest describes a Linux guest and the build embedded
    /// the test guest, or the other way round.
    Kind {
        /// True if the manifest's guest is Linux.
        manifest_linux: bool,
    },
    /// seL4 refused to clean the data cache.
    Clean(sel4::Error),
}

impl core::fmt::Display for ImageError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ImageError::Load(e) => write!(f, "guest image refused: {e}"),
            ImageError::Kind { manifest_linux: true } => {
                f.write_str("the boot manifest describes a Linux guest; this VMM embeds the test guest")
            }
            ImageError::Kind { manifest_linux: false } => {
                f.write_str("the boot manifest describes the test guest; this VMM embeds a Linux guest")
            }
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
    /// The VMM addresses written and cleaned: from the first to the last.
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
    /// Where a Linux guest's images go; `None` for the test guest.
    linux: Option<LinuxPlaces>,
    /// The inflater of a compressed kernel Image.
    inflater: &'static mut Inflater,
    state: State,
}

impl GuestImage {
    /// The RAM mapped at `vaddr` (`size` bytes) in this PD and at `gpa` in
    /// the VM, for a Linux guest whose images go at `linux` or (`None`) the
    /// test guest, inflating a compressed Image with `inflater`; nothing is
    /// loaded yet ([`GuestImage::load`] refuses the other kind of guest
    /// than the build embedded).
    pub fn new(
        vaddr: u64,
        size: u64,
        gpa: u64,
        linux: Option<LinuxPlaces>,
        inflater: &'static mut Inflater,
    ) -> GuestImage {
        GuestImage { vaddr, size, gpa, linux, inflater, state: State::Fresh }
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
        let (entry, bytes, written) = match (&PAYLOAD, &self.linux) {
            (Payload::Elf(image), None) => {
                let loaded = loader::load(image, &mut ram).map_err(ImageError::Load)?;
                (loaded.entry, image.len(), [0..loaded.written, 0..0, 0..0])
            }
            (Payload::Linux(images), Some(at)) => {
                let written = loader::load_linux(images, at, &mut ram, self.inflater).map_err(ImageError::Load)?;
                (at.entry, images.image.embedded_len() + images.dtb.len() + images.initrd.len(), written)
            }
            (Payload::Linux(_), None) => return Err(ImageError::Kind { manifest_linux: false }),
            (Payload::Elf(_), Some(_)) => return Err(ImageError::Kind { manifest_linux: true }),
        };
        for r in written.iter().filter(|r| !r.is_empty()) {
            cache::clean_data(vaddr + r.start, vaddr + r.end).map_err(ImageError::Clean)?;
        }
        let first = written.iter().filter(|r| !r.is_empty()).map(|r| r.start).min().unwrap_or(0);
        let last = written.iter().map(|r| r.end).max().unwrap_or(0);
        self.state = State::Fresh;
        Ok(Loaded { entry, image_bytes: bytes, cleaned: ((vaddr + first) as u64, (vaddr + last) as u64) })
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
