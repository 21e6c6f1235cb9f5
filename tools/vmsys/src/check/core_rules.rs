//! The core's own rules on the description: each VM's boot manifest is
//! encoded and decoded with the core's format, and the VM is built on the
//! seL4 model through the same operations a client uses
//! (`Vmm::build_from_manifest`), internal VMs as their VMM builds them at
//! initialisation and client VMs as their client would. Whatever the VMM
//! would refuse at run time is refused here, on the record that broke the
//! rule.

use vmm::registry::Owner;
use vmm::BootError;
use vmm_abi::manifest::Manifest;
use vmm_abi::ClientId;

use super::Ctx;
use crate::description::{Control, Vm};
use crate::{boot_manifest, world};

/// The core's owner for a VM: internal, or its client's channel.
pub fn owner(vm: &Vm) -> Owner {
    match &vm.control {
        Control::Client(c) => Owner::Client(ClientId(c.channel)),
        Control::Internal { .. } | Control::Unclear => Owner::Internal,
    }
}

/// Builds `vm` as its VMM would and reports what the core refuses.
pub fn check(ctx: &mut Ctx, vm: &Vm) {
    let m = match boot_manifest::manifest(vm).and_then(|m| boot_manifest::encode(&m).map(|b| (m, b))) {
        Ok((m, bytes)) => match Manifest::parse(&bytes) {
            // The format round-trips or the VMM could not read it back.
            Ok(parsed) if parsed == m => m,
            Ok(_) => {
                return ctx.desc_at(vm.line, format!("{}: its boot manifest does not read back as written", vm.name))
            }
            Err(e) => return ctx.desc_at(vm.line, format!("{}: the VMM would refuse its boot manifest: {e}", vm.name)),
        },
        Err(e) => return ctx.desc_at(vm.line, format!("{}: {e}", vm.name)),
    };
    let mut v = match world::vmm_for(&m) {
        Ok(v) => v,
        Err(e) => return ctx.desc_at(vm.line, format!("{}: {e}", vm.name)),
    };
    let start = match vm.control {
        Control::Internal { .. } => Some(0),
        _ => None,
    };
    let Err(e) = v.build_from_manifest(&m, owner(vm), start) else { return };
    let (line, what, err) = match e {
        BootError::Vm(err) => (vm.line, "creating the VM".to_string(), err),
        BootError::Vcpu(n, err) => (vm.vcpus_line, format!("vCPU {n}"), err),
        BootError::File(n, err) => (vm.private.get(n).map_or(vm.line, |p| p.line), format!("private region {n}"), err),
        BootError::Slot(n, err) => {
            let line = vm.memslots.get(n).map_or(vm.line, |s| s.line);
            (line, format!("memslot {}", vm.memslots.get(n).map_or(0, |s| s.id)), err)
        }
        BootError::Device(n, err) => (vm.devices.get(n).map_or(vm.line, |d| d.line), format!("device {n}"), err),
        BootError::Start(err) => (vm.entry_line, "starting vCPU 0".to_string(), err),
    };
    ctx.desc_at(line, format!("{}: the VMM refuses {what}: {:?}: {err}", vm.name, err.errno()));
}
