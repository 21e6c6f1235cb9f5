//! vCPU ids: unique, below the core's limit, and exactly the ids the
//! description's vCPU count gives (`0..vcpus`, the ids the core creates).

use std::collections::BTreeMap;

use vmm_abi::limits::MAX_VCPUS;

use super::Ctx;

/// Reports every vCPU id that repeats, is over the limit, or disagrees with
/// the description.
pub fn check(ctx: &mut Ctx) {
    let (desc, sdf) = (ctx.desc, ctx.sdf);
    for vm in &desc.vms {
        let Some((_, xml_vm)) = sdf.vm(&vm.name) else { continue };
        let mut seen: BTreeMap<u64, u32> = BTreeMap::new();
        let mut bad = false;
        for (id, line) in &xml_vm.vcpus {
            if let Some(first) = seen.get(id) {
                let first = ctx.xml_ref(*first);
                ctx.xml_at(*line, format!("vCPU id {id} of {} repeats (first at {first})", vm.name));
                bad = true;
                continue;
            }
            seen.insert(*id, *line);
            if *id >= MAX_VCPUS as u64 {
                ctx.xml_at(
                    *line,
                    format!(
                        "vCPU id {id} of {} is over the limit: ids run from 0 to {} (the core's MAX_VCPUS is {MAX_VCPUS})",
                        vm.name,
                        MAX_VCPUS - 1
                    ),
                );
                bad = true;
            }
        }
        let wanted: Vec<u64> = (0..u64::from(vm.vcpus)).collect();
        let have: Vec<u64> = seen.keys().copied().collect();
        let described_ok = vm.vcpus >= 1 && vm.vcpus as usize <= MAX_VCPUS;
        if !bad && described_ok && have != wanted {
            let list = |ids: &[u64]| {
                if ids.is_empty() {
                    "none".to_string()
                } else {
                    ids.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
                }
            };
            ctx.xml_at(
                xml_vm.line,
                format!(
                    "{}'s vCPU ids in system.xml are {}; the description's vcpus = {} needs exactly {}",
                    vm.name,
                    list(&have),
                    vm.vcpus,
                    list(&wanted)
                ),
            );
        }
    }
}
