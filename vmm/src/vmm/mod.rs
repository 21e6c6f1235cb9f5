//! The VMM: the registry, the guest_memfd files, the memlock charges and the
//! kernel, and every operation a client (or the VMM's own initialisation)
//! can ask for.
//!
//! Each operation first finds the VM it names and checks that the caller
//! owns it (ENOENT, then EPERM: authority before arguments, as seL4 looks
//! up a capability before it decodes the rest of an invocation), then
//! validates everything else before it changes anything, then
//! performs its capability operations in an order that can be undone; on
//! failure it undoes exactly what it did (the lesson of seeds 002, 003 and
//! 004) and returns the error. Teardown steps (delete, revoke, unmap,
//! suspend of a capability the VMM holds) cannot fail on seL4; if a backend
//! still refuses one, the teardown goes on and the first refusal is
//! reported.
//!
//! The operations live beside this file, one file per concern.

mod boot;
mod exits;
mod guest_memfd;
mod lifecycle;
mod locking;
mod memory;
mod vcpus;

pub use boot::BootError;
pub use exits::{ExitAction, StopReason};
pub use memory::FaultOutcome;

use crate::config::VmmConfig;
use crate::cspace::SlotAllocator;
use crate::error::Error;
use crate::gmem::GmemTable;
use crate::kernel::Kernel;
use crate::lock::Charges;
use crate::registry::{ArchHooks, Caller, Owner, Registry, RegistryError};
use crate::vm::Vm;

/// One VMM instance.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Vmm<K, A> {
    kernel: K,
    hooks: A,
    config: VmmConfig,
    cspace: SlotAllocator,
    registry: Registry<Vm>,
    gmem: GmemTable,
    charges: Charges,
}

impl<K: Kernel, A: ArchHooks> Vmm<K, A> {
    /// A VMM with no VMs, after checking its configuration.
    pub fn new(kernel: K, hooks: A, config: VmmConfig) -> Result<Self, Error> {
        config.validate()?;
        Ok(Vmm {
            kernel,
            hooks,
            cspace: SlotAllocator::new(config.cspace),
            config,
            registry: Registry::default(),
            gmem: GmemTable::default(),
            charges: Charges::default(),
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
    pub fn registry(&self) -> &Registry<Vm> {
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
