//! Who maps each memory region, where, and with which rights and pages.
//!
//! - A private (guest_memfd) region is mapped into its own VM, once, at
//!   its described address, and into nothing else: no PD (its VMM
//!   included) and no other VM.
//! - Shared guest RAM is mapped into its VM at its described address and
//!   into its VMM at the address the manifest gives (read-write: the VMM
//!   loads the guest image and emulates devices there), and nowhere else.
//! - A memslot's region is mapped with at least the rights the slot gives
//!   the guest, and no write right under a read-only slot (the guest's
//!   writes must fault); a lockable slot's region uses 4 KiB pages.
//! - No other region mapped into a VM overlaps one of its memslots or
//!   covers one of its emulated devices (whose accesses must trap).

use super::{linux, overlap, Ctx};
use crate::description::{Backing, Memslot, Vm};
use crate::num::hex;
use crate::sdf::{Map, Perms, SMALL_PAGE};

/// What holds a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Holder<'a> {
    /// A protection domain.
    Pd(&'a str),
    /// A virtual machine.
    Vm(&'a str),
}

/// What the description says a region is.
#[derive(Clone, Copy)]
enum Role<'a> {
    /// Shared RAM `ram[i]` of `vm`.
    Ram(&'a Vm, usize),
    /// Private region `private[i]` of `vm`.
    Private(&'a Vm, usize),
}

/// Reports every mapping that breaks a rule above, and every required
/// mapping that is missing.
pub fn check(ctx: &mut Ctx) {
    let (desc, sdf) = (ctx.desc, ctx.sdf);
    let mut maps: Vec<(Holder, &Map)> = Vec::new();
    for pd in &sdf.pds {
        maps.extend(pd.maps.iter().map(|m| (Holder::Pd(&pd.name), m)));
        if let Some(vm) = &pd.vm {
            maps.extend(vm.maps.iter().map(|m| (Holder::Vm(&vm.name), m)));
        }
    }
    let role = |mr: &str| {
        desc.vms.iter().find_map(|vm| {
            let ram = vm.ram.iter().position(|r| r.region == mr).map(|i| Role::Ram(vm, i));
            ram.or_else(|| vm.private.iter().position(|p| p.region == mr).map(|i| Role::Private(vm, i)))
        })
    };
    // First map of each described region into its VM, and of each RAM
    // region into its VMM, to report repeats and absences.
    let mut vm_maps: Vec<(&str, &Map)> = Vec::new();
    let mut vmm_maps: Vec<(&str, &Map)> = Vec::new();
    for (holder, m) in &maps {
        match role(&m.mr) {
            Some(Role::Private(vm, i)) => {
                let gpa = vm.private.get(i).map_or(0, |p| p.gpa);
                let what = format!("private region {} (guest_memfd of {})", m.mr, vm.name);
                match holder {
                    Holder::Pd(pd) => ctx.xml_at(
                        m.line,
                        format!("{what} is mapped into PD {pd}: private memory may be mapped into its VM only"),
                    ),
                    Holder::Vm(other) if *other != vm.name => ctx.xml_at(
                        m.line,
                        format!("{what} is mapped into VM {other}: private memory may be mapped into its own VM only"),
                    ),
                    Holder::Vm(_) => own_vm_map(ctx, &mut vm_maps, &format!("private region {}", m.mr), vm, m, gpa),
                }
            }
            Some(Role::Ram(vm, i)) => {
                let (gpa, vmm_vaddr) = vm.ram.get(i).map_or((0, 0), |r| (r.gpa, r.vmm_vaddr));
                let what = format!("shared RAM {} of {}", m.mr, vm.name);
                match holder {
                    Holder::Pd(pd) if *pd == vm.vmm => vmm_map(ctx, &mut vmm_maps, vm, m, vmm_vaddr),
                    // With its VMM absent from system.xml, `presence`
                    // has said so; every map into a PD would repeat it.
                    Holder::Pd(_) if sdf.pd(&vm.vmm).is_none() => {}
                    Holder::Pd(pd) => ctx.xml_at(
                        m.line,
                        format!("{what} is mapped into PD {pd}: guest RAM may be shared with its VMM {} only", vm.vmm),
                    ),
                    Holder::Vm(other) if *other != vm.name => {
                        ctx.xml_at(m.line, format!("{what} is mapped into VM {other}: guest RAM belongs to one VM"))
                    }
                    Holder::Vm(_) => own_vm_map(ctx, &mut vm_maps, &format!("shared RAM {}", m.mr), vm, m, gpa),
                }
            }
            None => {}
        }
    }
    for vm in &desc.vms {
        absent(ctx, vm, &vm_maps, &vmm_maps);
        for s in &vm.memslots {
            memslot(ctx, vm, s, &vm_maps);
        }
        let own: Vec<&Map> = maps.iter().filter(|(h, _)| *h == Holder::Vm(&vm.name)).map(|(_, m)| *m).collect();
        for m in &own {
            others_in_vm(ctx, vm, m);
        }
        gic_cpu_interface(ctx, vm, &own);
    }
}

/// A described region's map into its own VM: at its address, once.
fn own_vm_map<'a>(ctx: &mut Ctx, seen: &mut Vec<(&'a str, &'a Map)>, what: &str, vm: &'a Vm, m: &'a Map, gpa: u64) {
    if let Some((_, first)) = seen.iter().find(|(_, f)| f.mr == m.mr) {
        let first = ctx.xml_ref(first.line);
        ctx.xml_at(m.line, format!("{what} is mapped into {} a second time (first at {first})", vm.name));
        return;
    }
    seen.push((&vm.name, m));
    if m.vaddr != gpa {
        ctx.xml_at(
            m.line,
            format!("{what} is mapped into {} at {}; the description says {}", vm.name, hex(m.vaddr), hex(gpa)),
        );
    }
}

/// Shared RAM's map into its VMM: at the manifest's address, read-write,
/// once.
fn vmm_map<'a>(ctx: &mut Ctx, seen: &mut Vec<(&'a str, &'a Map)>, vm: &'a Vm, m: &'a Map, vmm_vaddr: u64) {
    let what = format!("shared RAM {}", m.mr);
    if let Some((_, first)) = seen.iter().find(|(_, f)| f.mr == m.mr) {
        let first = ctx.xml_ref(first.line);
        ctx.xml_at(m.line, format!("{what} is mapped into {} a second time (first at {first})", vm.vmm));
        return;
    }
    seen.push((&vm.vmm, m));
    if m.vaddr != vmm_vaddr {
        ctx.xml_at(
            m.line,
            format!(
                "{what} is mapped into its VMM {} at {}; the manifest says {}",
                vm.vmm,
                hex(m.vaddr),
                hex(vmm_vaddr)
            ),
        );
    }
    if !(m.perms.read && m.perms.write) {
        ctx.xml_at(
            m.line,
            format!(
                "{what} is mapped into its VMM {} `{}`; the VMM needs `rw` to load the guest and emulate devices",
                vm.vmm, m.perms
            ),
        );
    }
}

/// Described regions that system.xml does not map where they must be.
fn absent(ctx: &mut Ctx, vm: &Vm, vm_maps: &[(&str, &Map)], vmm_maps: &[(&str, &Map)]) {
    let (sdf, vm_exists, vmm_exists) = (ctx.sdf, ctx.sdf.vm(&vm.name).is_some(), ctx.sdf.pd(&vm.vmm).is_some());
    let mapped = |maps: &[(&str, &Map)], holder: &str, mr: &str| maps.iter().any(|(h, m)| *h == holder && m.mr == mr);
    for r in &vm.ram {
        if sdf.region(&r.region).is_none() {
            continue;
        }
        if vm_exists && !mapped(vm_maps, &vm.name, &r.region) {
            ctx.desc_at(r.line, format!("shared RAM {} is not mapped into {}", r.region, vm.name));
        }
        if vmm_exists && !mapped(vmm_maps, &vm.vmm, &r.region) {
            ctx.desc_at(
                r.line,
                format!(
                    "shared RAM {} is not mapped into its VMM {} (the manifest says at {})",
                    r.region,
                    vm.vmm,
                    hex(r.vmm_vaddr)
                ),
            );
        }
    }
    for p in &vm.private {
        if sdf.region(&p.region).is_some() && vm_exists && !mapped(vm_maps, &vm.name, &p.region) {
            ctx.desc_at(p.line, format!("private region {} is not mapped into {}", p.region, vm.name));
        }
    }
}

/// A memslot's rights and page size, from its region's map into the VM.
fn memslot(ctx: &mut Ctx, vm: &Vm, s: &Memslot, vm_maps: &[(&str, &Map)]) {
    // A slot without a region, or a private slot marked read-only, is
    // the layout's to report.
    let private = match vm.backing(s) {
        None => return,
        Some(b) => matches!(b, Backing::Private(_)),
    };
    let name = format!("memslot {} of {}", s.id, vm.name);
    if let Some((_, m)) = vm_maps.iter().find(|(h, m)| *h == vm.name && m.mr == s.region) {
        let need = Perms { read: true, write: !s.readonly, execute: false };
        if (need.write && !m.perms.write) || !m.perms.read {
            let at = ctx.xml_ref(m.line);
            ctx.desc_at(
                s.line,
                format!("{name} needs {} mapped `{need}` into {}; {at} maps it `{}`", s.region, vm.name, m.perms),
            );
        }
        if s.readonly && m.perms.write && !private {
            let at = ctx.xml_ref(m.line);
            ctx.desc_at(
                s.line,
                format!(
                    "{name} is read-only, but {at} maps {} writable into {}: the guest's writes would not fault",
                    s.region, vm.name
                ),
            );
        }
    }
    if s.lockable {
        if let Some(r) = ctx.sdf.region(&s.region) {
            let page = ctx.sdf.page_size(r);
            if page != SMALL_PAGE {
                let how = if r.page_size.is_some() { "" } else { ", Microkit's choice when page_size is omitted" };
                let at = ctx.xml_ref(r.line);
                ctx.desc_at(
                    s.line,
                    format!(
                        "{name} is lockable, but {} uses {}-byte pages ({at}{how}): locking needs 4 KiB pages",
                        s.region,
                        hex(page)
                    ),
                );
            }
        }
    }
}

/// A map into `vm` of a region the description does not give this VM must
/// not overlap a memslot; no map may cover an emulated device.
fn others_in_vm(ctx: &mut Ctx, vm: &Vm, m: &Map) {
    let Some(size) = ctx.sdf.region(&m.mr).map(|r| r.size) else { return };
    let Some(end) = m.vaddr.checked_add(size) else { return };
    let described = vm.ram.iter().any(|r| r.region == m.mr) || vm.private.iter().any(|p| p.region == m.mr);
    let elsewhere = ctx
        .desc
        .vms
        .iter()
        .any(|o| o.ram.iter().any(|r| r.region == m.mr) || o.private.iter().any(|p| p.region == m.mr));
    if !described && !elsewhere {
        for s in &vm.memslots {
            let Some(s_end) = s.end() else { continue };
            if overlap(m.vaddr, end, s.gpa, s_end) {
                let at = ctx.desc_ref(s.line);
                ctx.xml_at(
                    m.line,
                    format!(
                        "region {} mapped into {} at [{}, {}) overlaps memslot {} [{}, {}) ({at})",
                        m.mr,
                        vm.name,
                        hex(m.vaddr),
                        hex(end),
                        s.id,
                        hex(s.gpa),
                        hex(s_end)
                    ),
                );
            }
        }
    }
    for (what, base, size, line) in emulated(vm) {
        let Some(d_end) = base.checked_add(size) else { continue };
        // A device inside a memslot is the layout's to report.
        let in_slot = vm.memslots.iter().any(|s| s.end().is_some_and(|e| overlap(base, d_end, s.gpa, e)));
        if !in_slot && overlap(m.vaddr, end, base, d_end) {
            let at = ctx.desc_ref(line);
            ctx.xml_at(
                m.line,
                format!(
                    "region {} mapped into {} at [{}, {}) covers the {what} at {} ({at}): its accesses would not trap \
                     to the VMM",
                    m.mr,
                    vm.name,
                    hex(m.vaddr),
                    hex(end),
                    hex(base)
                ),
            );
        }
    }
}

/// The windows the VMM emulates in `vm`: its devices, and its GIC's
/// distributor and redistributors (not a GICv2's CPU interface, which is
/// the hardware's).
fn emulated(vm: &Vm) -> Vec<(String, u64, u64, u32)> {
    let mut out: Vec<_> = vm.devices.iter().map(|d| (d.kind.to_string(), d.base, d.size, d.line)).collect();
    if let Some(gic) = &vm.gic {
        for (window, base, size) in linux::windows(gic, vm.vcpus).unwrap_or_default() {
            if window.emulated() {
                out.push((format!("GIC {window}"), base, size, gic.line));
            }
        }
    }
    out
}

/// A GICv2's CPU interface must be mapped into its VM: the board's virtual
/// CPU interface (GICV) is what the guest finds there.
fn gic_cpu_interface(ctx: &mut Ctx, vm: &Vm, own: &[&Map]) {
    let Some((cpu, line)) = vm.gic.as_ref().and_then(|g| Some((g.cpu?, g.line))) else { return };
    let covered = own.iter().any(|m| {
        let size = ctx.sdf.region(&m.mr).map_or(0, |r| r.size);
        m.vaddr <= cpu && m.vaddr.saturating_add(size) >= cpu.saturating_add(linux::GICC_SIZE)
    });
    if !covered {
        ctx.desc_at(
            line,
            format!(
                "{}: nothing is mapped into it at its GIC CPU interface {}: map the board's virtual CPU interface \
                 (GICV) there",
                vm.name,
                hex(cpu)
            ),
        );
    }
}
