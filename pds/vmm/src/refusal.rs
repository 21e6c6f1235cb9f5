//! Why a VMM refuses to start. It then says so on the debug console, once,
//! and answers every request with EIO; its VM never runs.

use vmm_abi::manifest::ManifestError;
use vmm_book::LayoutError;

use crate::boot_manifest::Refused;
use crate::guest_image::ImageError;

/// Why this VMM does not start.
#[derive(Clone, Copy, Debug)]
pub enum Refusal {
    /// The boot manifest is missing, invalid or of another system.
    Manifest(Refused),
    /// The manifest's configuration does not fit the core.
    Config(ManifestError),
    /// The manifest's layout does not fit the backend.
    Layout(LayoutError),
    /// The core refused the configuration.
    Core(vmm::Error),
    /// The guest image could not be put in place.
    Image(ImageError),
    /// The guest image's entry point is not the manifest's.
    Entry {
        /// The image's.
        image: u64,
        /// The manifest's.
        manifest: u64,
    },
}

impl core::fmt::Display for Refusal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Refusal::Manifest(r) => write!(f, "{r}"),
            Refusal::Config(e) => write!(f, "the boot manifest's configuration is refused: {e}"),
            Refusal::Layout(e) => write!(f, "the boot manifest's layout cannot be served: {e}"),
            Refusal::Core(e) => write!(f, "the core refused the configuration: {e}"),
            Refusal::Image(e) => write!(f, "{e}"),
            Refusal::Entry { image, manifest } => {
                write!(f, "the guest image enters at {image:#x}, the boot manifest at {manifest:#x}")
            }
        }
    }
}
