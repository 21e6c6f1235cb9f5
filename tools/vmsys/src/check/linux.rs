//! What a VM's device tree will state, checked before it is written: the
//! virtual GIC's frames, the devices' interrupts, and where the VMM puts a
//! Linux guest's device tree and initramfs.
//!
//! The frame sizes and the interrupt ids implemented are the core vGIC's
//! own (`vmm::arch::aarch64::vgic`), so the description cannot promise the
//! guest a GIC the VMM does not emulate.

use vmm::arch::aarch64::vgic::{frame_sizes, GicVersion, IRQS, SPI_BASE};

use super::{overlap, Ctx};
use crate::description::{Backing, Gic, Vm};
use crate::num::hex;

/// Size of the GICv2 CPU interface the guest is told of (GICC, through
/// GICC_DIR at 0x1000).
pub const GICC_SIZE: u64 = 0x2000;

/// Largest device tree Linux takes (arm64 booting.rst: at most 2 MiB).
pub const DTB_MAX: u64 = 2 << 20;

/// The GIC architecture version of `gic`, if it is one the vGIC emulates.
pub fn version(gic: &Gic) -> Option<GicVersion> {
    match gic.version {
        2 => Some(GicVersion::V2),
        3 => Some(GicVersion::V3),
        _ => None,
    }
}

/// One of a GIC's guest-physical windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// The distributor, which the VMM emulates.
    Distributor,
    /// A GICv2's CPU interface: the hardware's virtual one, mapped there.
    CpuInterface,
    /// A GICv3's redistributors, which the VMM emulates.
    Redistributors,
}

impl Window {
    /// Whether the VMM emulates it (its accesses must trap).
    pub fn emulated(self) -> bool {
        self != Window::CpuInterface
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Window::Distributor => "distributor",
            Window::CpuInterface => "CPU interface",
            Window::Redistributors => "redistributors",
        })
    }
}

/// The guest-physical windows of `gic` for `vcpus` vCPUs: the distributor,
/// and the CPU interface (GICv2) or the redistributors (GICv3), each with
/// its base and size. `None` if the version or the count is not one the
/// vGIC takes.
pub fn windows(gic: &Gic, vcpus: u32) -> Option<Vec<(Window, u64, u64)>> {
    let version = version(gic)?;
    let (dist_size, redist_size) = frame_sizes(version, vcpus)?;
    let second = match version {
        GicVersion::V2 => (Window::CpuInterface, gic.cpu?, GICC_SIZE),
        GicVersion::V3 => (Window::Redistributors, gic.redist?, redist_size),
    };
    Some(vec![(Window::Distributor, gic.dist, dist_size), second])
}

/// Checks one VM's GIC, device interrupts and Linux boot addresses.
pub fn check(ctx: &mut Ctx, vm: &Vm) {
    if let Some(gic) = &vm.gic {
        check_gic(ctx, vm, gic);
        if let Some(c) = vm.client() {
            ctx.desc_at(
                gic.line,
                format!(
                    "{}: a client's VM (client {}) cannot have a virtual GIC: the VMM gives one to its internal VM \
                     only, from the boot manifest",
                    vm.name, c.pd
                ),
            );
        }
    }
    for d in &vm.devices {
        match (d.irq, &vm.gic) {
            (None, _) => {}
            (Some(_), None) => ctx.desc_at(
                d.line,
                format!("{} of {} has an interrupt but {} has no [vm.gic] to deliver it", d.kind, vm.name, vm.name),
            ),
            (Some(irq), Some(_)) if !(SPI_BASE..IRQS).contains(&irq) => ctx.desc_at(
                d.line,
                format!("{} of {}: irq {irq} is not an SPI the vGIC implements ({SPI_BASE}..{IRQS})", d.kind, vm.name),
            ),
            _ => {}
        }
    }
    let Some(linux) = &vm.linux else { return };
    if vm.gic.is_none() {
        ctx.desc_at(
            linux.line,
            format!("{} boots Linux but has no [vm.gic]: Linux needs an interrupt controller", vm.name),
        );
    }
    for (what, at, align) in [("dtb", linux.dtb, 8), ("initrd", linux.initrd, 4096)] {
        if at % align != 0 {
            ctx.desc_at(linux.line, format!("{}: {what} {} must be {align}-byte aligned", vm.name, hex(at)));
        }
        if ram_slot_end(vm, at).is_none() {
            ctx.desc_at(linux.line, format!("{}: {what} {} is outside every RAM memslot", vm.name, hex(at)));
        }
    }
    if overlap(linux.dtb, linux.dtb.saturating_add(DTB_MAX), linux.initrd, linux.initrd.saturating_add(1)) {
        ctx.desc_at(
            linux.line,
            format!(
                "{}: initrd {} is within the 2 MiB after dtb {} that the device tree may take",
                vm.name,
                hex(linux.initrd),
                hex(linux.dtb)
            ),
        );
    }
}

fn check_gic(ctx: &mut Ctx, vm: &Vm, gic: &Gic) {
    let Some(v) = version(gic) else {
        ctx.desc_at(gic.line, format!("{}: GIC version {} is not 2 or 3", vm.name, gic.version));
        return;
    };
    let (needs, other) = match v {
        GicVersion::V2 => (("cpu", gic.cpu.is_some()), ("redist", gic.redist.is_some())),
        GicVersion::V3 => (("redist", gic.redist.is_some()), ("cpu", gic.cpu.is_some())),
    };
    if !needs.1 {
        ctx.desc_at(gic.line, format!("{}: a GICv{} needs `{}`", vm.name, gic.version, needs.0));
    }
    if other.1 {
        ctx.desc_at(gic.line, format!("{}: a GICv{} has no `{}`", vm.name, gic.version, other.0));
    }
    let Some(windows) = windows(gic, vm.vcpus) else { return };
    for (i, &(name, base, size)) in windows.iter().enumerate() {
        if base % 0x1000 != 0 {
            ctx.desc_at(gic.line, format!("{}: the GIC {name} at {} must be 4 KiB aligned", vm.name, hex(base)));
        }
        let Some(end) = base.checked_add(size) else { continue };
        let slots = vm.memslots.iter().filter_map(|s| Some((format!("memslot {}", s.id), s.gpa, s.end()?)));
        let devices = vm.devices.iter().filter_map(|d| Some((d.kind.to_string(), d.base, d.base.checked_add(d.size)?)));
        let gic_parts = windows.iter().take(i).map(|&(n, b, s)| (format!("the GIC {n}"), b, b.saturating_add(s)));
        for (what, b, e) in slots.chain(devices).chain(gic_parts) {
            if overlap(base, end, b, e) {
                ctx.desc_at(
                    gic.line,
                    format!(
                        "{}: the GIC {name} [{}, {}) overlaps {what} [{}, {})",
                        vm.name,
                        hex(base),
                        hex(end),
                        hex(b),
                        hex(e)
                    ),
                );
            }
        }
    }
}

/// The end of the RAM memslot holding `gpa`, if one does.
pub fn ram_slot_end(vm: &Vm, gpa: u64) -> Option<u64> {
    vm.memslots
        .iter()
        .filter(|s| matches!(vm.backing(s), Some(Backing::Ram(_))))
        .find_map(|s| s.end().filter(|&e| gpa >= s.gpa && gpa < e))
}
