//! Everything the description names exists in system.xml, where it says:
//! each VM under its VMM PD, each client PD, each region with the size the
//! description gives it.

use super::Ctx;
use crate::num::hex;

/// Reports every name that does not resolve.
pub fn check(ctx: &mut Ctx) {
    let (desc, sdf) = (ctx.desc, ctx.sdf);
    for vm in &desc.vms {
        if sdf.pd(&vm.vmm).is_none() {
            ctx.desc_at(vm.line, format!("{}: system.xml has no protection domain {}", vm.name, vm.vmm));
        }
        match sdf.vm(&vm.name) {
            None => ctx.desc_at(vm.line, format!("{}: system.xml has no virtual machine {}", vm.name, vm.name)),
            Some((pd, xml_vm)) if pd.name != vm.vmm => ctx.xml_at(
                xml_vm.line,
                format!(
                    "virtual machine {} belongs to PD {}, but the description makes {} its VMM ({})",
                    vm.name,
                    pd.name,
                    vm.vmm,
                    ctx.desc_ref(vm.line)
                ),
            ),
            Some(_) => {}
        }
        if let Some(c) = vm.client() {
            if sdf.pd(&c.pd).is_none() {
                ctx.desc_at(
                    c.line,
                    format!("client {} of {}: system.xml has no protection domain {}", c.pd, vm.name, c.pd),
                );
            }
        }
        let regions = vm.ram.iter().map(|r| ("ram", &r.region, r.size, r.line));
        let regions = regions.chain(vm.private.iter().map(|p| ("private", &p.region, p.size, p.line)));
        for (kind, name, size, line) in regions {
            match sdf.region(name) {
                None => ctx.desc_at(line, format!("{kind} {name}: system.xml has no memory region {name}")),
                Some(r) if r.size != size => ctx.desc_at(
                    line,
                    format!(
                        "{kind} {name}: size {} differs from the memory region's {} ({})",
                        hex(size),
                        hex(r.size),
                        ctx.xml_ref(r.line)
                    ),
                ),
                Some(_) => {}
            }
        }
    }
}
