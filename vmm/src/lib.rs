//! The core of a virtual machine monitor for the seL4 Microkit.
//!
//! A VMM protection domain owns its VM's vCPU and address-space capabilities
//! and implements, as operations on capabilities: VM lifecycle, vCPUs,
//! memslots (KVM_SET_USER_MEMORY_REGION2 semantics), memslot lock/unlock with
//! memlock accounting, and guest_memfd private memory. Everything is generic
//! over the [`Kernel`](kernel::Kernel) trait, so the same code runs on seL4
//! and against the executable model of seL4 in crate `vmm-model`.
//!
//! `no_std`, no allocator: every table is a `heapless` collection with a
//! capacity named in [`config`]. No operation panics on any input; each
//! either fully succeeds or leaves every observable state as it was.

#![no_std]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]
#![warn(missing_docs)]

#[cfg(test)]
extern crate std;

pub mod addr;
mod errno;

pub mod arch;
pub mod caps;
pub mod config;
pub mod cspace;
pub mod devices;
mod dispatch;
mod error;
pub mod kernel;
pub mod platform;
pub mod registry;
pub mod vm;

pub use arch::aarch64::exit::{ExitAction, StopReason};
pub use error::Error;
pub use vm::boot::BootError;
pub use vm::memslots::FaultOutcome;

use crate::config::VmmConfig;
use crate::cspace::SlotAllocator;
use vmm_abi::limits::MAX_VMS;

use crate::arch::aarch64::gic::Gics;
use crate::kernel::Kernel;
use crate::platform::Platform;
use crate::registry::{Caller, Owner, Registry, RegistryError};
use crate::vm::guest_memfd::GmemTable;
use crate::vm::lock::Charges;
use crate::vm::Vm;

/// One VMM instance, with room for `VMS` VMs at once (a deployment that
/// runs one VM per VMM, as Microkit does, pays for one).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Vmm<K, A, const VMS: usize = MAX_VMS> {
    kernel: K,
    hooks: A,
    config: VmmConfig,
    cspace: SlotAllocator,
    registry: Registry<Vm, VMS>,
    /// The virtual GICs of the VMs that have one (rule 6.10).
    gics: Gics<VMS>,
    gmem: GmemTable,
    charges: Charges,
    /// A client's VM that a request's delivery of an interrupt stopped
    /// (rule 6.10), whose owner the deployment is yet to tell
    /// ([`Vmm::take_stopped`]).
    stopped: Option<(vmm_abi::ClientId, vmm_abi::VmId)>,
}

impl<K: Kernel, A: Platform, const VMS: usize> Vmm<K, A, VMS> {
    /// A VMM with no VMs, after checking its configuration.
    pub fn new(kernel: K, hooks: A, config: VmmConfig) -> Result<Self, Error> {
        config.validate()?;
        Ok(Vmm {
            kernel,
            hooks,
            cspace: SlotAllocator::new(config.cspace),
            config,
            registry: Registry::default(),
            gics: Gics::default(),
            gmem: GmemTable::default(),
            charges: Charges::default(),
            stopped: None,
        })
    }

    /// The kernel backend.
    pub fn kernel(&self) -> &K {
        &self.kernel
    }

    /// The kernel backend, mutably (tests inject faults through it).
    pub fn kernel_mut(&mut self) -> &mut K {
        &mut self.kernel
    }

    /// The arch hooks.
    pub fn hooks(&self) -> &A {
        &self.hooks
    }

    /// The arch hooks, mutably (a test harness resets its records).
    pub fn hooks_mut(&mut self) -> &mut A {
        &mut self.hooks
    }

    /// The configuration.
    pub fn config(&self) -> &VmmConfig {
        &self.config
    }

    /// The registry.
    pub fn registry(&self) -> &Registry<Vm, VMS> {
        &self.registry
    }

    /// The open guest_memfd files.
    pub fn gmem(&self) -> &GmemTable {
        &self.gmem
    }

    /// Pages locked per owner.
    pub fn charges(&self) -> &Charges {
        &self.charges
    }

    /// The CSpace allocator.
    pub fn cspace(&self) -> &SlotAllocator {
        &self.cspace
    }

    /// VMs added and not dropped.
    pub fn usage_count(&self) -> u32 {
        self.registry.usage_count()
    }

    /// A caller may act only if it is internal or a configured client.
    fn check_caller(&self, caller: Caller) -> Result<(), Error> {
        match caller {
            Owner::Internal => Ok(()),
            Owner::Client(c) if self.config.client(c).is_some() => Ok(()),
            Owner::Client(_) => Err(RegistryError::NotOwner.into()),
        }
    }
}
