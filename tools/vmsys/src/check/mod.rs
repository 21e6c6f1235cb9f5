//! `check`: the VM description against system.xml, and against the core's
//! own rules, with one message per violation.
//!
//! The checks, one module each:
//! - [`layout`]: the description on its own (who controls each VM, vCPU
//!   count, regions, memslots, devices, entry point);
//! - [`linux`]: a VM's GIC frames, device interrupts and where a Linux
//!   guest's device tree and initramfs go (part of [`layout`]);
//! - [`presence`]: every VM, VMM, client and region it names exists in
//!   system.xml, where it says;
//! - [`mapping`]: who maps each region (private regions in their VM only,
//!   shared RAM in its VM and its VMM only, at the described addresses),
//!   the rights and page sizes memslots need, device windows left unmapped;
//! - [`control`]: channels (authority is the channel) and priorities;
//! - [`vcpus`]: vCPU ids;
//! - [`core_rules`]: each VM built on the seL4 model through the core's
//!   own operations, as its VMM would build it.
//!
//! The core's rules run only on VMs whose description passed [`layout`],
//! so that one mistake gives one message, not a second one from the core.

pub mod control;
pub mod core_rules;
pub mod layout;
pub mod linux;
pub mod mapping;
pub mod presence;
pub mod vcpus;

use crate::description::Description;
use crate::diag::{sorted, Diag};
use crate::sdf::Sdf;
use crate::world;

/// What the checks share: the two inputs and the messages so far.
pub struct Ctx<'a> {
    /// The VM description.
    pub desc: &'a Description,
    /// The system description.
    pub sdf: &'a Sdf,
    /// Messages so far.
    pub out: Vec<Diag>,
}

impl Ctx<'_> {
    /// A violation at `line` of the description.
    pub fn desc_at(&mut self, line: u32, message: impl Into<String>) {
        self.out.push(Diag::at(&self.desc.file, line, message));
    }

    /// A violation at `line` of system.xml.
    pub fn xml_at(&mut self, line: u32, message: impl Into<String>) {
        self.out.push(Diag::at(&self.sdf.file, line, message));
    }

    /// `system.xml:line`, to point at a second place in a message.
    pub fn xml_ref(&self, line: u32) -> String {
        format!("{}:{line}", self.sdf.file)
    }

    /// `system.toml:line`, likewise.
    pub fn desc_ref(&self, line: u32) -> String {
        format!("{}:{line}", self.desc.file)
    }
}

/// Every violation, sorted by file and line; empty if the system passes.
pub fn check(desc: &Description, sdf: &Sdf) -> Vec<Diag> {
    let mut ctx = Ctx { desc, sdf, out: Vec::new() };
    let clean = layout::check(&mut ctx);
    presence::check(&mut ctx);
    mapping::check(&mut ctx);
    control::check(&mut ctx);
    vcpus::check(&mut ctx);
    let run_core = |mut ctx: Ctx| {
        for (vm, clean) in desc.vms.iter().zip(clean) {
            if clean {
                core_rules::check(&mut ctx, vm);
            }
        }
        ctx.out
    };
    let out = match world::on_big_stack(|| run_core(ctx)) {
        Ok(out) => out,
        Err(e) => vec![Diag::file(&desc.file, e)],
    };
    sorted(out)
}

/// The checks of the description on its own ([`layout`]), for a VM
/// description that names no system.xml (a guest QEMU boots without seL4,
/// for one).
pub fn check_description(desc: &Description) -> Vec<Diag> {
    let none = Sdf { file: String::new(), regions: Vec::new(), pds: Vec::new(), channels: Vec::new() };
    let mut ctx = Ctx { desc, sdf: &none, out: Vec::new() };
    layout::check(&mut ctx);
    sorted(ctx.out)
}

/// `[a, b)` and `[c, d)` share an address.
pub fn overlap(a: u64, b: u64, c: u64, d: u64) -> bool {
    a < d && c < b
}
