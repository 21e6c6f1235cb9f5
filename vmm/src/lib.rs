//! The core of a virtual machine monitor for the seL4 Microkit.
//!
//! A VMM protection domain owns its VM's vCPU and address-space capabilities
//! and implements, as operations on capabilities: VM lifecycle, vCPUs,
//! memslots (KVM_SET_USER_MEMORY_REGION2 semantics), memslot lock/unlock with
//! memlock accounting, and guest_memfd private memory. Everything is generic
//! over the [`Kernel`](kernel::Kernel) trait, so the same code runs on seL4
//! and against the executable model of seL4 in [`model`] (feature `model`).
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

#[cfg(any(test, feature = "model"))]
extern crate std;

pub mod errno;

pub mod caps;
pub mod config;
pub mod cspace;
pub mod devices;
pub mod error;
pub mod exits;
pub mod gmem;
pub mod kernel;
pub mod lock;
pub mod manifest;
pub mod memslot;
pub mod protocol;
pub mod registry;
pub mod regs;
pub mod stage2;
pub mod vm;
pub mod vmm;

#[cfg(any(test, feature = "model"))]
pub mod model;

pub use errno::Errno;
pub use error::Error;
pub use vmm::Vmm;
