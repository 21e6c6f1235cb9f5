//! This VMM's boot manifest: found among the embedded ones by the PD's
//! name, verified with the core's `Manifest::parse` (magic, version,
//! length, CRC-32, records), then held against what Microkit patched into
//! this PD from system.xml (where the guest RAM is mapped and how large it
//! is, and the client's channel), so that a manifest of another system is
//! refused before anything uses it.

use vmm_abi::manifest::{Manifest, ManifestError};

/// What system.xml gave this PD, as Microkit patched it in (`setvar_*`).
#[derive(Clone, Copy, Debug)]
pub struct Mapped {
    /// Where the VM's shared RAM is mapped in this PD (0: not mapped).
    pub ram_vaddr: u64,
    /// Its size.
    pub ram_size: u64,
    /// The channel of the client, if system.xml gives this PD one.
    pub client: Option<u32>,
    /// Where the board's UART is mapped in this PD (0: not mapped).
    pub uart_vaddr: usize,
}

/// Why the manifest was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The image embeds no manifest for this PD.
    Missing,
    /// `Manifest::parse` refused it.
    Invalid(ManifestError),
    /// It describes other than one shared RAM region (this VMM maps one).
    RamRecords(usize),
    /// Its RAM is not where, or not as large as, Microkit mapped it.
    RamMismatch {
        /// The manifest's VMM address and size.
        manifest: (u64, u64),
        /// Microkit's.
        mapped: (u64, u64),
    },
    /// It disagrees with system.xml about the client's channel.
    ClientMismatch {
        /// The manifest's (`None`: an internal VM).
        manifest: Option<u32>,
        /// system.xml's.
        mapped: Option<u32>,
    },
}

impl core::fmt::Display for Refused {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Refused::Missing => f.write_str("the image embeds no boot manifest for this PD"),
            Refused::Invalid(e) => write!(f, "the boot manifest is invalid: {e}"),
            Refused::RamRecords(n) => write!(f, "the boot manifest describes {n} RAM regions; this VMM maps one"),
            Refused::RamMismatch { manifest, mapped } => write!(
                f,
                "the boot manifest puts guest RAM at {:#x} ({:#x} bytes) in this PD, system.xml at {:#x} ({:#x} bytes)",
                manifest.0, manifest.1, mapped.0, mapped.1
            ),
            Refused::ClientMismatch { manifest, mapped } => {
                write!(f, "the boot manifest has {}, system.xml {}", Client(manifest), Client(mapped))
            }
        }
    }
}

/// A client channel as the messages say it.
struct Client(Option<u32>);

impl core::fmt::Display for Client {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(c) => write!(f, "a client on channel {c}"),
            None => f.write_str("no client (an internal VM)"),
        }
    }
}

/// The manifest of the PD named `pd`, checked against `mapped`.
pub fn load(pd: &str, mapped: &Mapped) -> Result<Manifest, Refused> {
    let bytes = manifests::of(pd).ok_or(Refused::Missing)?;
    let m = Manifest::parse(bytes).map_err(Refused::Invalid)?;
    let [ram] = m.ram.as_slice() else {
        return Err(Refused::RamRecords(m.ram.len()));
    };
    let ram = (ram.vmm_vaddr.get(), ram.size.get());
    if ram != (mapped.ram_vaddr, mapped.ram_size) {
        return Err(Refused::RamMismatch { manifest: ram, mapped: (mapped.ram_vaddr, mapped.ram_size) });
    }
    let client = (!m.internal()).then_some(m.client_channel);
    if client != mapped.client {
        return Err(Refused::ClientMismatch { manifest: client, mapped: mapped.client });
    }
    Ok(m)
}
