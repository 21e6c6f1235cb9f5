//! What must hold after every step, whatever the scenario says: the model
//! is consistent, and no guest_memfd frame is mapped anywhere but into its
//! own VM's stage 2 (never into the VMM, never into another VM).

use vmm::registry::Presence;

use super::system::Instance;
use crate::world::VMM_VSPACE;

/// The first broken invariant of `inst`, if any.
pub fn broken(inst: &Instance) -> Option<String> {
    let v = &inst.vmm;
    let k = v.kernel();
    if let Err(e) = k.check_consistency() {
        return Some(format!("{}: the seL4 model is inconsistent: {e}", inst.vmm_name));
    }
    let vmm_vspace = k.object_at(VMM_VSPACE);
    for f in v.gmem().iter() {
        let own = v
            .registry()
            .entry(f.vm)
            .filter(|e| e.presence == Presence::Listed && e.vm.fixed.len != 0)
            .and_then(|e| k.object_at(e.vm.vspace().slot()));
        for i in 0..f.frames.len {
            let Some(frame) = f.frames.get(i).and_then(|s| k.object_at(s)) else {
                return Some(format!("{}: page {i} of guest_memfd {} has no frame", inst.vmm_name, f.handle));
            };
            for m in k.mappings_of(frame) {
                if Some(m.vspace) == vmm_vspace {
                    return Some(format!(
                        "{}: page {i} of guest_memfd {} is mapped into the VMM",
                        inst.vmm_name, f.handle
                    ));
                }
                if Some(m.vspace) != own {
                    return Some(format!(
                        "{}: page {i} of guest_memfd {} is mapped outside its VM {}",
                        inst.vmm_name, f.handle, f.vm.0
                    ));
                }
            }
        }
    }
    None
}
