//! The invariants of `INVARIANTS.md`, as checks. State invariants look at
//! one state; step invariants at a state, the operation applied to it, its
//! result and the state after. Each returns which invariant broke and how.

use std::sync::OnceLock;

use vmm::caps::Slot;
use vmm::registry::{Owner, Presence};
use vmm_abi::protocol::{Request, MAX_PAYLOAD};
use vmm_abi::{Errno, VmId};
use vmm_model::invariants as core_invariants;

use crate::ops::Op;
use crate::system::{HookCall, System, RAM_FRAMES, RAM_PAGES, VMM_VSPACE};

/// What broke, prefixed by the invariant's number.
pub type Check = Result<(), String>;

fn fail(n: u32, msg: impl core::fmt::Display) -> Check {
    Err(format!("I{n}: {msg}"))
}

/// Numbers a check of the core's own ([`vmm_model::invariants`]).
fn numbered(n: u32, check: Result<(), String>) -> Check {
    check.or_else(|e| fail(n, e))
}

/// I1: guest_memfd frames are mapped only into their own VM's VSpace,
/// never into the VMM's or another VM's.
pub fn i1_private_frames_stay_in_their_vm(s: &System) -> Check {
    numbered(1, core_invariants::private_frames_stay_in_their_vm(&s.vmm, VMM_VSPACE))
}

/// I2: the bindings of one guest_memfd never overlap and lie within it.
pub fn i2_bindings_disjoint_and_inside(s: &System) -> Check {
    numbered(2, core_invariants::bindings_disjoint_and_inside(&s.vmm))
}

/// I3: the memslots of a VM never overlap in guest-physical space.
pub fn i3_memslots_disjoint(s: &System) -> Check {
    numbered(3, core_invariants::memslots_disjoint(&s.vmm))
}

/// I4: a guest never holds more rights to a page than its slot allows
/// (no mapping outside every slot, no write mapping in a READONLY slot);
/// outside a lock, exactly the slot's rights.
pub fn i4_guest_rights_within_slots(s: &System) -> Check {
    numbered(4, core_invariants::guest_rights_within_slots(&s.vmm))
}

/// I5: each client's memlock charge equals the pages of its locked slots,
/// and never exceeds its budget.
pub fn i5_memlock_charges(s: &System) -> Check {
    numbered(5, core_invariants::memlock_charges(&s.vmm))
}

/// I6: a locked slot is never changed, moved or deleted; only unlocking
/// (its lock) or destroying its VM (everything) may touch it.
pub fn i6_locked_slots_untouched(before: &System, op: &Op, after: &System) -> Check {
    for e in before.vmm.registry().entries() {
        let destroyed = after.vmm.registry().entry(e.id()).is_none_or(|a| a.presence() != Presence::Listed);
        if destroyed {
            continue;
        }
        let unlocking = matches!(op, Op::Unlock { .. }) && op.named_vm(before) == Some(e.id());
        for slot in e.vm().memslots().iter().filter(|x| x.lock().is_some()) {
            let now =
                after.vmm.registry().entry(e.id()).and_then(|a| {
                    a.vm().memslots().index_of(slot.id()).and_then(|i| a.vm().memslots().get(i)).copied()
                });
            let Some(now) = now else { return fail(6, format!("locked slot {} deleted", slot.id())) };
            let now = if unlocking { now.with_lock(slot.lock()) } else { now };
            if now != *slot {
                return fail(6, format!("locked slot {} changed by {op:?}", slot.id()));
            }
        }
    }
    Ok(())
}

/// I7: a failed request changes no observable state.
pub fn i7_failure_changes_nothing(before: &System, result: &Result<u64, Errno>, after: &System) -> Check {
    if result.is_err() && before != after {
        return fail(7, format!("failed with {result:?} and changed the state"));
    }
    Ok(())
}

/// I8: the usage count equals the VMs added and not dropped, shared
/// resources are enabled exactly while it is non-zero, and within a step
/// the hooks count up and down one at a time: add runs on 0 to 1 and drop
/// on 1 to 0, exactly once each.
pub fn i8_usage_count_and_hooks(before: &System, after: &System) -> Check {
    numbered(8, core_invariants::usage_count(&after.vmm))?;
    if after.vmm.hooks().enabled != (after.vmm.usage_count() > 0) {
        return fail(8, "shared resources enabled state wrong");
    }
    let mut count = before.vmm.usage_count();
    for call in &after.vmm.hooks().calls {
        match *call {
            HookCall::Add(_, c) if c == count + 1 => count = c,
            HookCall::Drop(c) if count > 0 && c == count - 1 => count = c,
            HookCall::Remove(_) => {}
            other => return fail(8, format!("hook call {other:?} with count {count}")),
        }
    }
    if count != after.vmm.usage_count() {
        return fail(8, "hook calls do not account for the usage count");
    }
    Ok(())
}

/// The slots and model state of a system with no client VM and no file.
fn pristine() -> &'static System {
    static FRESH: OnceLock<System> = OnceLock::new();
    FRESH.get_or_init(System::new)
}

/// I9: every capability and mapping belongs to something live (the VMM's
/// own, a listed VM, an open file); once no client VM is left and every
/// file is closed, the kernel state is exactly the initial one.
pub fn i9_nothing_left_behind(s: &System) -> Check {
    let m = s.vmm.kernel();
    let initial = |sl: Slot| sl == VMM_VSPACE || (sl.0 >= RAM_FRAMES.0 && sl.0 < RAM_FRAMES.0 + RAM_PAGES);
    let mut runs = Vec::new();
    let mut vspaces = vec![m.object_at(VMM_VSPACE)];
    for e in s.vmm.registry().entries() {
        if e.presence() == Presence::Removed && (e.vm().fixed().len != 0 || !e.vm().memslots().is_empty()) {
            return fail(9, format!("destroyed VM {} still holds resources", e.id().0));
        }
        runs.push(e.vm().fixed());
        vspaces.push(core_invariants::vspace_of(&s.vmm, e.id()));
        for slot in e.vm().memslots().iter() {
            runs.push(slot.map_caps());
            runs.extend(slot.lock().map(|l| l.pins()));
        }
    }
    runs.extend(s.vmm.gmem().iter().map(|f| f.frames()));
    for sl in m.slots() {
        if !initial(sl) && !runs.iter().any(|r| r.contains(sl)) {
            return fail(9, format!("capability in slot {:#x} belongs to nothing live", sl.0));
        }
        if let Some(map) = m.cap(sl).and_then(|c| c.mapping) {
            if !vspaces.contains(&Some(map.vspace)) {
                return fail(9, format!("slot {:#x} mapped into a dead VSpace", sl.0));
            }
        }
    }
    let only_internal = s.vmm.registry().entries().all(|e| e.owner() == Owner::Internal);
    if only_internal && s.vmm.gmem().iter().next().is_none() {
        let fresh = pristine();
        if m.state() != fresh.vmm.kernel().state() || s.vmm.cspace() != fresh.vmm.cspace() {
            return fail(9, "no client VM or file left, but the kernel state is not the initial one");
        }
    }
    Ok(())
}

/// I10: no client can change a VM it does not own, and no client can create
/// or change an internal VM.
pub fn i10_authority(before: &System, op: &Op, result: &Result<u64, Errno>, after: &System) -> Check {
    let Some(caller) = op.caller() else { return Ok(()) };
    if let Op::CreateVm { .. } = op {
        if let Ok(id) = result {
            let owner = after.vmm.registry().entry(VmId(*id as u32)).map(|e| e.owner());
            if owner != Some(caller) {
                return fail(10, format!("VM {id} created for {caller:?} is owned by {owner:?}"));
            }
        }
    }
    if let Some(vm) = op.named_vm(before) {
        let owned = before.vmm.registry().entry(vm).is_some_and(|e| e.owner() == caller);
        if !owned && result.is_ok() {
            return fail(10, format!("{caller:?} changed VM {} it does not own with {op:?}", vm.0));
        }
    }
    for e in before.vmm.registry().entries().filter(|e| e.owner() == Owner::Internal) {
        if after.vmm.registry().entry(e.id()) != Some(e) {
            return fail(10, format!("client request {op:?} changed internal VM {}", e.id().0));
        }
    }
    Ok(())
}

/// I11: decoding any byte string under any label gives a request or an
/// errno (never a panic), and a decoded request encodes back to the same
/// label and bytes' meaning: it decodes to itself.
pub fn i11_decode(label: u64, bytes: &[u8]) -> Check {
    match Request::decode(label, bytes) {
        Err(Errno::EOPNOTSUPP | Errno::EINVAL) => Ok(()),
        Err(e) => fail(11, format!("decode gave {e:?}")),
        Ok(req) => {
            let mut buf = [0u8; MAX_PAYLOAD];
            let (l, n) = req.encode(&mut buf);
            if l != label || Request::decode(l, buf.get(..n).unwrap_or(&[])) != Ok(req) {
                return fail(11, format!("{req:?} does not round-trip"));
            }
            Ok(())
        }
    }
}

/// Every state invariant.
pub fn check_state(s: &System) -> Check {
    i1_private_frames_stay_in_their_vm(s)?;
    i2_bindings_disjoint_and_inside(s)?;
    i3_memslots_disjoint(s)?;
    i4_guest_rights_within_slots(s)?;
    i5_memlock_charges(s)?;
    i9_nothing_left_behind(s)?;
    s.vmm.kernel().check_consistency().map_err(|e| format!("model: {e}"))
}

/// Every step invariant.
pub fn check_step(before: &System, op: &Op, result: &Result<u64, Errno>, after: &System) -> Check {
    i6_locked_slots_untouched(before, op, after)?;
    i7_failure_changes_nothing(before, result, after)?;
    i8_usage_count_and_hooks(before, after)?;
    i10_authority(before, op, result, after)
}
