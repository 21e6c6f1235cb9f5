//! The Microkit platform: what this deployment adds around the core's
//! requests, as the core's [`Platform`] (called only once a request has
//! passed the core's own checks).
//!
//! - A client's VM gets the boot manifest's devices when it is created (the
//!   internal VM gets them from its manifest build).
//! - A RUN loads the guest image again if another VM has run since it was
//!   loaded: the re-created VM's first run starts from a fresh image.
//! - A LOCK pins only memory the boot manifest marks lockable: Microkit maps
//!   the rest in 2 MiB pages, and a lock pins 4 KiB pages (rule 5.4).
//! - Memory is given and taken only as far as Microkit made it real (rule
//!   8.6): a memslot must be one the boot manifest describes (its backing,
//!   at its address, with its rights), and nothing is taken back from a
//!   guest while its VM exists (no memslot delete, move or re-flagging, no
//!   READ lock of writable memory, no close of a bound guest_memfd).

use sel4_microkit::debug_println;

use vmm::addr::Gpa;
use vmm::caps::Rights;
use vmm::devices::pl011::Pl011;
use vmm::devices::{Device, DeviceMap};
use vmm::platform::Platform;
use vmm::registry::Owner;
use vmm_abi::limits::MAX_DEVICES;
use vmm_abi::manifest::{Dev, DEV_PL011};
use vmm_abi::memslot::{MemoryRegion, GUEST_MEMFD, READONLY};
use vmm_abi::{Errno, VmId};

use vmm_book::StaticMap;

use crate::guest_image::GuestImage;

/// The Microkit platform of one VMM PD.
pub struct MicrokitPlatform {
    pd: &'static str,
    devices: heapless::Vec<Dev, MAX_DEVICES>,
    layout: StaticMap,
    image: GuestImage,
}

impl MicrokitPlatform {
    /// The platform of the PD `pd`: the manifest's devices, its static
    /// layout (which slots are lockable) and the guest image, loaded.
    pub fn new(
        pd: &'static str,
        devices: heapless::Vec<Dev, MAX_DEVICES>,
        layout: StaticMap,
        image: GuestImage,
    ) -> Self {
        MicrokitPlatform { pd, devices, layout, image }
    }
}

impl Platform for MicrokitPlatform {
    fn vm_created(&mut self, vm: VmId, owner: Owner, devices: &mut DeviceMap) -> Result<(), Errno> {
        if owner == Owner::Internal {
            return Ok(());
        }
        for d in &self.devices {
            // A virtual GIC is given to the internal VM only, by its boot
            // manifest; the host tool refuses one on a client's VM.
            if d.kind.get() != DEV_PL011 {
                debug_println!("{}: VM {}: a client's VM cannot have a virtual GIC: refused", self.pd, vm.0);
                return Err(Errno::EOPNOTSUPP);
            }
            let uart = d.interrupt().map_or_else(Pl011::new, Pl011::with_irq);
            if let Err(e) = devices.register(Gpa(d.base.get()), d.size.get(), Device::Pl011(uart)) {
                debug_println!("{}: VM {} cannot have its devices ({e}): refused", self.pd, vm.0);
                return Err(vmm::Error::from(e).errno());
            }
        }
        Ok(())
    }

    fn before_run(&mut self, vm: VmId) -> Result<(), Errno> {
        if self.image.stale_for(vm) {
            match self.image.load() {
                Ok(l) => debug_println!(
                    "{}: guest image reloaded for VM {} ({} bytes); data cache cleaned over {:#x}..{:#x}",
                    self.pd,
                    vm.0,
                    l.image_bytes,
                    l.cleaned.0,
                    l.cleaned.1
                ),
                Err(e) => {
                    debug_println!("{}: cannot reload the guest image for VM {}: {e}", self.pd, vm.0);
                    return Err(Errno::EIO);
                }
            }
        }
        // The image is this VM's from now on, whether or not the RUN then
        // succeeds: nothing else has run on it since it was loaded.
        self.image.started(vm);
        Ok(())
    }

    fn can_pin(&self, gpa: Gpa, size: u64) -> bool {
        let lockable = self.layout.lockable(gpa.0, size);
        if !lockable {
            debug_println!(
                "{}: {gpa:#x}..{:#x} cannot be locked: the boot manifest marks no lockable slot (4 KiB pages) there",
                self.pd,
                gpa.0.saturating_add(size)
            );
        }
        lockable
    }

    fn can_back(&self, r: &MemoryRegion) -> bool {
        let gmem = r.flags & GUEST_MEMFD != 0;
        let rights = if r.flags & READONLY != 0 { Rights::READ } else { Rights::READ_WRITE };
        let source = if gmem { r.guest_memfd_offset } else { r.userspace_addr };
        let backed = self.layout.backs(r.guest_phys_addr, r.memory_size, source, gmem, rights);
        if !backed {
            debug_println!(
                "{}: memslot {} at {:#x}..{:#x} refused: Microkit mapped no such memory{} there",
                self.pd,
                r.slot,
                r.guest_phys_addr,
                r.guest_phys_addr.saturating_add(r.memory_size),
                if rights.write { "" } else { " read-only" }
            );
        }
        backed
    }

    /// Microkit maps a guest's memory when the system is built; the VMM
    /// holds no capability that could unmap it or lower its rights.
    fn can_revoke(&self) -> bool {
        false
    }

    /// The guests' count ([`crate::counter`]).
    fn now(&mut self) -> Option<u64> {
        Some(crate::counter::now())
    }
}
