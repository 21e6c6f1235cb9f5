//! The Microkit VMM backend's book of the core's capabilities.
//!
//! A Microkit VMM holds no untyped memory and no frame, page-table or
//! VSpace capability of its VM; the core asks for all of them. The backend
//! (`pds/vmm`, `backend`) answers with this book: it names the objects
//! Microkit made (the VM's VSpace, each vCPU's TCB and vCPU object), and
//! keeps the core's frames and page tables as seL4 would keep them, with
//! every mapping checked against the boot manifest's static layout
//! ([`StaticMap`]). It makes no seL4 call, so it is tested on the host
//! (`tests/`), under the core itself.
//!
//! `no_std`, no allocator, no panics: fixed tables, bounded scans.

#![no_std]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod book;
mod cap_table;
mod packed_cap;
mod static_map;

pub use book::{Book, CORE_SLOTS, RAM_FRAME_SLOTS};
pub use cap_table::{CapTable, Object, TABLE_SLOTS};
pub use static_map::{Frame, LayoutError, StaticMap, MAX_PRIVATE_PAGES};
