//! `vmsys`: the host tool around the VMM core.
//!
//! One description of the VMs (`system.toml`, module [`description`]) is
//! cross-checked against the Microkit system description (`system.xml`,
//! [`sdf`]) and against the core's own rules ([`check`]); it gives each VMM
//! its boot manifest ([`boot_manifest`]); scenarios of client requests and
//! guest exits run against the core on the seL4 model ([`sim`]); and the
//! system can be drawn ([`graph`]). Around the deployments it writes a Linux
//! guest's device tree ([`fdt`]) and initramfs ([`initramfs`]), and the root
//! task's boot image ([`boot_image`]).

pub mod boot_image;
pub mod boot_manifest;
pub mod check;
pub mod description;
pub mod diag;
pub mod fdt;
pub mod graph;
pub mod initramfs;
pub mod inputs;
pub mod num;
pub mod sdf;
pub mod sim;
pub mod trace;
pub mod world;
pub mod zlib;
