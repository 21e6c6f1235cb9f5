//! The description on its own: each VM's control, vCPU count, regions,
//! memslots, devices and entry point, before system.xml is consulted (a
//! VM's GIC, interrupts and Linux boot addresses: [`super::linux`]).

use std::collections::BTreeMap;

use vmm_abi::limits::{page_aligned, MAX_VCPUS};

use super::{overlap, Ctx};
use crate::boot_manifest;
use crate::description::{Backing, Budget, Control, Vm};
use crate::num::hex;

/// Checks every VM; returns, per VM, whether its description had no
/// problem of its own (the core's rules run only on those).
pub fn check(ctx: &mut Ctx) -> Vec<bool> {
    let desc = ctx.desc;
    let mut clean = Vec::new();
    let mut names: BTreeMap<&str, u32> = BTreeMap::new();
    let mut vmms: BTreeMap<&str, (&str, u32)> = BTreeMap::new();
    let mut regions: BTreeMap<&str, u32> = BTreeMap::new();
    for vm in &desc.vms {
        let before = ctx.out.len();
        if let Some(first) = names.insert(&vm.name, vm.line) {
            ctx.desc_at(vm.line, format!("VM {} is described twice (first at line {first})", vm.name));
        }
        if let Some((other, line)) = vmms.insert(&vm.vmm, (&vm.name, vm.line)) {
            ctx.desc_at(
                vm.line,
                format!(
                    "{} already manages {other} (line {line}): a Microkit PD manages at most one VM, \
                     so each VM needs its own VMM PD",
                    vm.vmm
                ),
            );
        }
        for (region, line) in
            vm.ram.iter().map(|r| (&r.region, r.line)).chain(vm.private.iter().map(|p| (&p.region, p.line)))
        {
            if let Some(first) = regions.insert(region, line) {
                ctx.desc_at(
                    line,
                    format!("region {region} is already described at line {first}: a region backs one VM, once"),
                );
            }
        }
        control(ctx, vm);
        if vm.vcpus == 0 || vm.vcpus as usize > MAX_VCPUS {
            ctx.desc_at(
                vm.vcpus_line,
                format!("{}: vcpus = {} is outside 1..={MAX_VCPUS} (the core's MAX_VCPUS)", vm.name, vm.vcpus),
            );
        }
        regions_aligned(ctx, vm);
        memslots(ctx, vm);
        entry(ctx, vm);
        devices(ctx, vm);
        super::linux::check(ctx, vm);
        if let Err(e) = boot_manifest::manifest(vm) {
            // Only capacity and wrap-around problems are left to report
            // here: the others were reported above.
            if ctx.out.len() == before {
                ctx.desc_at(vm.line, format!("{}: {e}", vm.name));
            }
        }
        clean.push(ctx.out.len() == before);
    }
    clean
}

fn control(ctx: &mut Ctx, vm: &Vm) {
    match &vm.control {
        Control::Unclear => ctx.desc_at(
            vm.line,
            format!(
                "{}: a VM is either internal (`internal = true`) or controlled by a client ([vm.client]); \
                 say exactly one",
                vm.name
            ),
        ),
        Control::Client(c) if c.budget == Budget::Unclear => ctx.desc_at(
            c.line,
            format!("client {} of {}: give either `memlock_pages` or `privileged = true`", c.pd, vm.name),
        ),
        _ => {}
    }
}

fn regions_aligned(ctx: &mut Ctx, vm: &Vm) {
    let mut bad = Vec::new();
    for r in &vm.ram {
        for (what, x) in [("gpa", r.gpa), ("vmm_vaddr", r.vmm_vaddr), ("size", r.size)] {
            bad.push((r.line, "ram", &r.region, what, x));
        }
    }
    for p in &vm.private {
        for (what, x) in [("gpa", p.gpa), ("size", p.size)] {
            bad.push((p.line, "private", &p.region, what, x));
        }
    }
    for (line, kind, region, what, x) in bad {
        let zero_size = what == "size" && x == 0;
        if !page_aligned(x) || zero_size {
            let need = if what == "size" { "a non-zero multiple of 4 KiB" } else { "4 KiB aligned" };
            ctx.desc_at(line, format!("{kind} {region}: {what} {} must be {need}", hex(x)));
        }
    }
}

fn memslots(ctx: &mut Ctx, vm: &Vm) {
    let mut ids: BTreeMap<u32, u32> = BTreeMap::new();
    for (i, s) in vm.memslots.iter().enumerate() {
        let name = format!("memslot {} of {}", s.id, vm.name);
        if let Some(first) = ids.insert(s.id, s.line) {
            ctx.desc_at(s.line, format!("memslot id {} of {} repeats (first at line {first})", s.id, vm.name));
        }
        let (region_gpa, region_size, private) = match vm.backing(s) {
            Some(Backing::Ram(r)) => match vm.ram.get(r) {
                Some(r) => (r.gpa, r.size, false),
                None => continue,
            },
            Some(Backing::Private(p)) => match vm.private.get(p) {
                Some(p) => (p.gpa, p.size, true),
                None => continue,
            },
            None => {
                ctx.desc_at(
                    s.line,
                    format!("{name}: `{}` is neither a ram nor a private region of {}", s.region, vm.name),
                );
                continue;
            }
        };
        match s.offset.checked_add(s.size) {
            Some(end) if end <= region_size => {}
            _ => ctx.desc_at(
                s.line,
                format!(
                    "{name} covers offsets {}..{} of {}, which is {} bytes",
                    hex(s.offset),
                    s.offset.checked_add(s.size).map_or_else(|| "2^64".to_string(), hex),
                    s.region,
                    hex(region_size)
                ),
            ),
        }
        // The slot's guest-physical base is where the region's byte at
        // `offset` appears in the VM, or the slot maps other memory than
        // the VM sees there.
        match region_gpa.checked_add(s.offset) {
            Some(at) if at == s.gpa => {}
            at => ctx.desc_at(
                s.line,
                format!(
                    "{name} is at gpa {}, but offset {} of {} is at gpa {} in the VM",
                    hex(s.gpa),
                    hex(s.offset),
                    s.region,
                    at.map_or_else(|| "past 2^64".to_string(), hex)
                ),
            ),
        }
        if private && s.lockable {
            ctx.desc_at(
                s.line,
                format!(
                    "{name} is lockable, but it is backed by private region {}: guest_memfd slots cannot be \
                     locked (the VMM answers EINVAL)",
                    s.region
                ),
            );
        }
        if private && s.readonly {
            ctx.desc_at(
                s.line,
                format!(
                    "{name} is read-only, but it is backed by private region {}: a guest_memfd slot cannot be \
                     read-only (GUEST_MEMFD with READONLY is EINVAL)",
                    s.region
                ),
            );
        }
        let Some(end) = s.end() else { continue };
        for o in vm.memslots.iter().take(i) {
            let Some(o_end) = o.end() else { continue };
            if overlap(s.gpa, end, o.gpa, o_end) {
                ctx.desc_at(
                    s.line,
                    format!(
                        "{name} [{}, {}) overlaps memslot {} [{}, {}) (line {})",
                        hex(s.gpa),
                        hex(end),
                        o.id,
                        hex(o.gpa),
                        hex(o_end),
                        o.line
                    ),
                );
            }
        }
    }
}

fn entry(ctx: &mut Ctx, vm: &Vm) {
    let in_ram = vm.memslots.iter().any(|s| {
        matches!(vm.backing(s), Some(Backing::Ram(_))) && s.end().is_some_and(|e| vm.entry >= s.gpa && vm.entry < e)
    });
    if !in_ram {
        ctx.desc_at(
            vm.entry_line,
            format!(
                "{}: entry {} is outside every RAM memslot: the VMM loads the guest image into shared RAM",
                vm.name,
                hex(vm.entry)
            ),
        );
    }
}

fn devices(ctx: &mut Ctx, vm: &Vm) {
    for d in &vm.devices {
        let Some(d_end) = d.base.checked_add(d.size) else { continue };
        for s in &vm.memslots {
            let Some(s_end) = s.end() else { continue };
            if overlap(d.base, d_end, s.gpa, s_end) {
                ctx.desc_at(
                    d.line,
                    format!(
                        "{} of {} at [{}, {}) overlaps memslot {} (line {}): the VMM would map memory there \
                         and the device would never see an access",
                        d.kind,
                        vm.name,
                        hex(d.base),
                        hex(d_end),
                        s.id,
                        s.line
                    ),
                );
            }
        }
    }
}
