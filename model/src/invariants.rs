//! The invariants every state of a VMM keeps, checked against the model: the
//! one home of these checks, used by the tests, the simulator (`vmsys`) and
//! `verification/` alike. Each says what broke, or `Ok`.
//!
//! `vmm_vspace` is the slot of the VMM's own VSpace in the model, which no
//! guest memory may be mapped into.

use std::format;
use std::string::String;
use std::vec::Vec;
use vmm::addr::Gpa;

use vmm::caps::Slot;
use vmm::platform::Platform;
use vmm::registry::{Owner, Presence};
use vmm::vm::lock::charge_limit;
use vmm::Vmm;
use vmm_abi::VmId;

use crate::{Model, ObjId};

/// What broke and where.
pub(crate) type Check = Result<(), String>;

/// The VSpace object of VM `id`, while it has one (a destroyed VM kept for
/// an open file has none).
pub fn vspace_of<A: Platform, const VMS: usize>(v: &Vmm<Model, A, VMS>, id: VmId) -> Option<ObjId> {
    let e = v.registry().entry(id)?;
    (e.vm().fixed().len > 0).then(|| v.kernel().object_at(e.vm().vspace().slot())).flatten()
}

/// guest_memfd frames are mapped only into their own VM's stage 2: never
/// into the VMM, never into another VM.
pub fn private_frames_stay_in_their_vm<A: Platform, const VMS: usize>(
    v: &Vmm<Model, A, VMS>,
    vmm_vspace: Slot,
) -> Check {
    let m = v.kernel();
    let vmm_vs = m.object_at(vmm_vspace);
    for f in v.gmem().iter() {
        let own = vspace_of(v, f.vm());
        for i in 0..f.frames().len {
            let Some(obj) = f.frames().get(i).and_then(|sl| m.object_at(sl)) else {
                return Err(format!("guest_memfd {} lost frame {i}", f.handle()));
            };
            for map in m.mappings_of(obj) {
                if Some(map.vspace) == vmm_vs {
                    return Err(format!("guest_memfd {} frame {i} is mapped into the VMM", f.handle()));
                }
                if Some(map.vspace) != own {
                    return Err(format!("guest_memfd {} frame {i} is mapped outside its VM {}", f.handle(), f.vm().0));
                }
            }
        }
    }
    Ok(())
}

/// The bindings of one guest_memfd never overlap and lie within it.
pub fn bindings_disjoint_and_inside<A: Platform, const VMS: usize>(v: &Vmm<Model, A, VMS>) -> Check {
    for f in v.gmem().iter() {
        let mut end = 0;
        for b in f.bindings() {
            if b.first < end {
                return Err(format!("guest_memfd {} bindings overlap at page {}", f.handle(), b.first));
            }
            end = b.first + b.pages;
            if end > f.pages() {
                return Err(format!("guest_memfd {} has a binding past its end", f.handle()));
            }
        }
    }
    Ok(())
}

/// The memslots of a VM never overlap in guest-physical space, and are kept
/// in address order.
pub fn memslots_disjoint<A: Platform, const VMS: usize>(v: &Vmm<Model, A, VMS>) -> Check {
    for e in v.registry().entries() {
        let mut end = Gpa(0);
        for slot in e.vm().memslots().iter() {
            if slot.gpa() < end {
                return Err(format!("VM {} slot {} overlaps the slot below it", e.id().0, slot.id()));
            }
            end = slot.end();
        }
    }
    Ok(())
}

/// A guest never holds more rights to a page than its slot allows (no
/// mapping outside every slot, no write mapping in a READONLY slot), and
/// outside a lock every mapped page has exactly the slot's rights (rule
/// 5.4: what lets a failed lock be undone exactly).
pub fn guest_rights_within_slots<A: Platform, const VMS: usize>(v: &Vmm<Model, A, VMS>) -> Check {
    for e in v.registry().entries() {
        let Some(vs) = vspace_of(v, e.id()) else { continue };
        for (gpa, (_, rights)) in v.kernel().pages_in(vs) {
            let Some(slot) = e.vm().memslots().find_gpa(Gpa(gpa)) else {
                return Err(format!("VM {} maps {gpa:#x} outside every slot", e.id().0));
            };
            if slot.readonly() && rights.write {
                return Err(format!("VM {} can write read-only {gpa:#x}", e.id().0));
            }
            let slot_rights = slot.rights();
            if slot.lock().is_none() && rights != slot_rights {
                return Err(format!(
                    "VM {} maps unlocked {gpa:#x} with {rights:?}, its slot allows {slot_rights:?}",
                    e.id().0
                ));
            }
        }
    }
    Ok(())
}

/// Each owner's memlock charge equals the pages of its locked slots, and
/// stays within its budget.
pub fn memlock_charges<A: Platform, const VMS: usize>(v: &Vmm<Model, A, VMS>) -> Check {
    let mut locked: Vec<(Owner, u64)> = Vec::new();
    for e in v.registry().entries() {
        for slot in e.vm().memslots().iter() {
            if let Some(l) = slot.lock() {
                if l.pins().len != slot.pages() {
                    return Err(format!(
                        "VM {} slot {} has {} pins for {} pages",
                        e.id().0,
                        slot.id(),
                        l.pins().len,
                        slot.pages()
                    ));
                }
                match locked.iter_mut().find(|(o, _)| *o == e.owner()) {
                    Some((_, n)) => *n += slot.pages(),
                    None => locked.push((e.owner(), slot.pages())),
                }
            }
        }
    }
    let owners = v.config().clients.iter().map(|c| Owner::Client(c.id)).chain([Owner::Internal]);
    for owner in owners.chain(locked.iter().map(|(o, _)| *o)) {
        let want = locked.iter().find(|(o, _)| *o == owner).map_or(0, |(_, n)| *n);
        let got = v.charges().charged(owner);
        if got != want {
            return Err(format!("{owner:?} is charged {got} pages and has {want} locked"));
        }
        if charge_limit(v.config(), owner).is_some_and(|limit| got > limit) {
            return Err(format!("{owner:?} is charged {got} pages, over its budget"));
        }
    }
    Ok(())
}

/// The usage count is the number of VMs added and not dropped, and a
/// removed VM is kept only while an open guest_memfd refers to it.
pub fn usage_count<A: Platform, const VMS: usize>(v: &Vmm<Model, A, VMS>) -> Check {
    let mut added = 0;
    for e in v.registry().entries() {
        added += 1;
        if e.presence() == Presence::Removed && e.file_refs() == 0 {
            return Err(format!("removed VM {} has no open file and was not dropped", e.id().0));
        }
    }
    if v.usage_count() != added {
        return Err(format!("usage count {} with {added} VMs added and not dropped", v.usage_count()));
    }
    Ok(())
}

/// Every state invariant, and the model's own consistency.
pub fn check_state<A: Platform, const VMS: usize>(v: &Vmm<Model, A, VMS>, vmm_vspace: Slot) -> Check {
    v.kernel().check_consistency().map_err(|e| format!("the seL4 model is inconsistent: {e}"))?;
    private_frames_stay_in_their_vm(v, vmm_vspace)?;
    bindings_disjoint_and_inside(v)?;
    memslots_disjoint(v)?;
    guest_rights_within_slots(v)?;
    memlock_charges(v)?;
    usage_count(v)
}
