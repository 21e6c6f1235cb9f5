//! The VMM's interface to its clients: the request protocol (operation
//! labels, payload layouts, decoding and encoding, the response), the ids
//! and flags requests carry, and the errno every refusal is.
//!
//! A client needs this crate only; the core (crate `vmm`) implements what
//! it describes. `no_std`, no allocator, and no decoding panics on any
//! input. Rules are cited by number from the project's `docs/RULES.md`.

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

mod errno;
mod ids;
pub mod limits;
pub mod manifest;
pub mod memslot;
pub mod protocol;
pub mod wire;

pub use errno::Errno;
pub use ids::{ClientId, GmemHandle, MemslotId, VcpuId, VmId};
