//! What belongs to one processor architecture. The VMM runs on AArch64
//! only; the architecture-neutral core (VMs, memslots, guest_memfd, locks)
//! lives in [`crate::vm`].

pub mod aarch64;
