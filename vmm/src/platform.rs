//! What a deployment adds around the core's operations: the architecture's
//! hooks around the registry (KVM's `kvm_arch_add_vm`, `_remove_vm`,
//! `_drop_vm`, rules 1.4 and 1.5), and the platform's own work around a VM's
//! creation, a RUN and a LOCK (rule 8.2). Each backend implements it, so
//! that a protection domain decodes a request once and calls one entry point,
//! [`Vmm::handle`](crate::Vmm::handle).
//!
//! The core's own checks come first: a platform method is called only once
//! the request has passed every check the core makes, and its refusal
//! leaves the state exactly as it was.

use crate::addr::Gpa;
use crate::devices::DeviceMap;
use crate::registry::Owner;
use vmm_abi::memslot::MemoryRegion;
use vmm_abi::{Errno, VmId};

/// The hooks a deployment implements. Each defaults to doing nothing: a
/// platform with no shared resources and nothing to add needs none.
pub trait Platform {
    /// Called with the usage count already incremented; `count == 1` is the
    /// first VM, where shared resources are enabled. An error refuses the VM.
    fn add(&mut self, vm: VmId, count: u32) -> Result<(), Errno> {
        let _ = (vm, count);
        Ok(())
    }

    /// The VM has been unlisted; nothing new can reach it.
    fn remove(&mut self, vm: VmId) {
        let _ = vm;
    }

    /// The VM is fully gone; `count == 0` releases shared resources.
    fn drop(&mut self, count: u32) {
        let _ = count;
    }

    /// A new VM of `owner`, before it is listed: the platform registers
    /// the devices the VM is given (for example the UART of the system
    /// description). An error refuses the VM, which is never listed.
    fn vm_created(&mut self, vm: VmId, owner: Owner, devices: &mut DeviceMap) -> Result<(), Errno> {
        let _ = (vm, owner, devices);
        Ok(())
    }

    /// A RUN of a vCPU of `vm` that passed the core's checks, before the
    /// vCPU is touched (for example: load the guest image again if another
    /// VM ran since it was loaded). An error refuses the RUN.
    fn before_run(&mut self, vm: VmId) -> Result<(), Errno> {
        let _ = vm;
        Ok(())
    }

    /// Whether the guest-physical range `[gpa, gpa + size)` can be pinned in
    /// 4 KiB pages. A LOCK that passed the core's checks of a range that
    /// cannot is refused with `EOPNOTSUPP`.
    fn can_pin(&self, gpa: Gpa, size: u64) -> bool {
        let _ = (gpa, size);
        true
    }

    /// Whether the platform can give the guest exactly the memory `region`
    /// describes: its backing, at its guest-physical address, with its
    /// rights (read-only for a `READONLY` slot) and no more. A platform
    /// whose guests' memory was fixed when the system was built (Microkit)
    /// can only give what it mapped. A memslot create that passed the
    /// core's checks and cannot be given is refused with `EOPNOTSUPP`
    /// (rule 8.6).
    fn can_back(&self, region: &MemoryRegion) -> bool {
        let _ = region;
        true
    }

    /// Whether the platform can take memory back from a guest: unmap a
    /// page, map it again with fewer rights, revoke a guest_memfd's frames.
    /// Where it cannot (Microkit, whose guests keep what the system maps
    /// into them), a request that would do so while the VM exists (deleting,
    /// moving or re-flagging a memslot, a READ lock of a writable slot,
    /// closing a bound guest_memfd) is refused with `EOPNOTSUPP` once it
    /// has passed the core's checks (rule 8.6). Destroying the VM stays
    /// possible: its vCPUs are suspended, so its guest reaches nothing.
    fn can_revoke(&self) -> bool {
        true
    }

    /// The guests' virtual count (`CNTVCT_EL0`) now, if this deployment
    /// can read it. Without it a waiting vCPU has no deadline the VMM can
    /// watch, so WFI never suspends a vCPU (rule 6.11): it returns at once.
    fn now(&mut self) -> Option<u64> {
        None
    }
}

/// A platform with no shared resources and nothing to add.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NoHooks;

impl Platform for NoHooks {}
