//! Building a VM from the boot manifest.
//!
//! The VM is built through the same operations a client uses (create the
//! VM, its vCPUs, its guest_memfd files, its memslots, its devices and
//! virtual GIC), so
//! every rule the VMM enforces at run time applies to the static layout
//! too: the host tool runs this on the model to refuse a bad description,
//! and the VMM PD runs it at initialisation for its internal VM. A failure
//! names the record that broke a rule and leaves nothing behind.

use crate::addr::Gpa;
use crate::arch::aarch64::vgic::{frame_sizes, GicVersion};
use crate::devices::pl011::Pl011;
use crate::devices::{Device, DeviceError};
use crate::error::Error;
use crate::kernel::Kernel;
use crate::platform::Platform;
use crate::registry::Caller;
use crate::Vmm;
use vmm_abi::manifest::{Manifest, DEV_GICV2_DIST, DEV_GICV3_DIST, DEV_GICV3_REDIST};
use vmm_abi::{GmemHandle, VcpuId, VmId};

/// Which part of the manifest a rule refused, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootError {
    /// Creating the VM.
    Vm(Error),
    /// Creating vCPU `n`.
    Vcpu(u32, Error),
    /// Creating guest_memfd file record `n`.
    File(usize, Error),
    /// Setting memslot record `n`.
    Slot(usize, Error),
    /// Registering device record `n`.
    Device(usize, Error),
    /// Starting the boot vCPU.
    Start(Error),
}

impl core::fmt::Display for BootError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BootError::Vm(e) => write!(f, "creating the VM: {e}"),
            BootError::Vcpu(n, e) => write!(f, "vCPU {n}: {e}"),
            BootError::File(n, e) => write!(f, "guest_memfd {n}: {e}"),
            BootError::Slot(n, e) => write!(f, "memslot record {n}: {e}"),
            BootError::Device(n, e) => write!(f, "device {n}: {e}"),
            BootError::Start(e) => write!(f, "starting vCPU 0: {e}"),
        }
    }
}

impl<K: Kernel, A: Platform, const VMS: usize> Vmm<K, A, VMS> {
    /// Builds the VM `m` describes, owned by `owner`; if `start`, runs
    /// vCPU 0 at the manifest's entry with x0 = `arg`.
    pub fn build_from_manifest(&mut self, m: &Manifest, owner: Caller, start: Option<u64>) -> Result<VmId, BootError> {
        let id = self.create_vm(owner).map_err(BootError::Vm)?;
        let r = self.populate(m, owner, id, start);
        if r.is_err() {
            // Take down what was built: files first would drop the VM after
            // destroy; destroy first keeps it pinned until they close.
            let _ = self.destroy_vm(owner, id);
            let handles: heapless::Vec<GmemHandle, { vmm_abi::limits::MAX_GMEM_FILES }> =
                self.gmem.iter().filter(|f| f.vm == id).map(|f| f.handle).collect();
            for h in handles {
                let _ = self.close_guest_memfd(owner, h);
            }
        }
        r.map(|()| id)
    }

    fn populate(&mut self, m: &Manifest, owner: Caller, id: VmId, start: Option<u64>) -> Result<(), BootError> {
        for v in 0..m.vcpus {
            self.create_vcpu(owner, id, VcpuId(v)).map_err(|e| BootError::Vcpu(v, e))?;
        }
        let mut handles: heapless::Vec<GmemHandle, { vmm_abi::limits::MAX_GMEM_FILES }> = heapless::Vec::new();
        for (n, f) in m.files.iter().enumerate() {
            let h = self.create_guest_memfd(owner, id, f.size.get(), 0).map_err(|e| BootError::File(n, e))?;
            // Cannot fail: the manifest holds at most as many files.
            let _ = handles.push(h);
        }
        for (n, s) in m.slots.iter().enumerate() {
            let handle = if s.is_gmem() { handles.get(s.file.get() as usize).map_or(0, |h| h.0) } else { 0 };
            self.set_memory_region(owner, id, &s.region(handle)).map_err(|e| BootError::Slot(n, e))?;
        }
        // The GIC's frames: its distributor record (the version) and, on a
        // GICv3, its redistributors' record, registered together.
        let mut gic: Option<(usize, GicVersion, Gpa)> = None;
        let mut redist: Option<(usize, Gpa)> = None;
        let refused = |n: usize| BootError::Device(n, DeviceError::GicFrames.into());
        for (n, d) in m.devices.iter().enumerate() {
            let base = Gpa(d.base.get());
            match d.kind.get() {
                DEV_GICV2_DIST if gic.is_none() => gic = Some((n, GicVersion::V2, base)),
                DEV_GICV3_DIST if gic.is_none() => gic = Some((n, GicVersion::V3, base)),
                DEV_GICV3_REDIST if redist.is_none() => redist = Some((n, base)),
                DEV_GICV2_DIST | DEV_GICV3_DIST => return Err(BootError::Device(n, DeviceError::GicExists.into())),
                DEV_GICV3_REDIST => return Err(refused(n)),
                _ => {
                    let uart = d.interrupt().map_or_else(Pl011::new, Pl011::with_irq);
                    self.register_device(owner, id, base, d.size.get(), Device::Pl011(uart))
                        .map_err(|e| BootError::Device(n, e))?
                }
            }
        }
        // Each record's size must be the frame the vGIC emulates.
        let frames = gic.and_then(|(_, version, _)| frame_sizes(version, self.config.vcpu_limit));
        let size_of = |n: usize| m.devices.get(n).map_or(0, |d| d.size.get());
        if let (Some((n, _, _)), Some((dist_size, redist_size))) = (gic, frames) {
            if size_of(n) != dist_size {
                return Err(refused(n));
            }
            if let Some((r, _)) = redist.filter(|(r, _)| size_of(*r) != redist_size) {
                return Err(refused(r));
            }
        }
        match (gic, redist) {
            (Some((n, version, dist)), r) => self
                .register_gic(owner, id, version, dist, r.map(|(_, base)| base))
                .map_err(|e| BootError::Device(n, e))?,
            (None, Some((n, _))) => return Err(refused(n)),
            (None, None) => {}
        }
        if let Some(arg) = start {
            self.run_vcpu(owner, id, VcpuId(0), m.entry, arg).map_err(BootError::Start)?;
        }
        Ok(())
    }
}
