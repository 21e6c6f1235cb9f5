//! Creating and destroying VMs (SEMANTICS.md section 1).

use super::Vmm;
use crate::caps::{ObjectType, SlotRange};
use crate::error::Error;
use crate::kernel::{Kernel, KernelError};
use crate::registry::{ArchHooks, Caller, RegistryError, VmId};
use crate::vm::{VcpuState, Vm, VM_FIXED_SLOTS};

impl<K: Kernel, A: ArchHooks> Vmm<K, A> {
    /// Creates a VM owned by `caller`. A client can only ever create a VM it
    /// owns; internal VMs are created by the VMM itself with
    /// `Owner::Internal`.
    pub fn create_vm(&mut self, caller: Caller) -> Result<VmId, Error> {
        self.check_caller(caller)?;
        if !self.registry.has_room() {
            return Err(RegistryError::Full.into());
        }
        let id = self.registry.next_free_id()?;
        let fixed = self.cspace.alloc(VM_FIXED_SLOTS)?;
        if let Err(e) = self.kernel.untyped_retype(ObjectType::VSpace, fixed.base) {
            self.release_fixed(fixed);
            return Err(e.into());
        }
        if let Err((e, _vm)) = self.registry.add(&mut self.hooks, id, caller, Vm::new(fixed)) {
            // The hook refused: its own failure is undone inline by the
            // registry; here only the VSpace and the slots go back.
            let _ = self.kernel.cnode_delete(fixed.base);
            self.release_fixed(fixed);
            return Err(Error::Arch(e));
        }
        Ok(id)
    }

    fn release_fixed(&mut self, fixed: SlotRange) {
        let _ = self.cspace.free(fixed);
    }

    /// Destroys a VM: remove (unreachable at once), tear down, then drop
    /// unless an open guest_memfd file still pins it (rule 1.6).
    pub fn destroy_vm(&mut self, caller: Caller, id: VmId) -> Result<(), Error> {
        self.registry.get_mut(caller, id)?;
        self.registry.remove(&mut self.hooks, id)?;
        let teardown = self.teardown(id);
        let dropped = match self.registry.entry(id) {
            Some(e) if e.file_refs == 0 => self.drop_vm(id),
            _ => Ok(()),
        };
        teardown.and(dropped)
    }

    /// Drops the removed VM `id`: the registry forgets it and the drop hook
    /// runs with the decremented count.
    pub(super) fn drop_vm(&mut self, id: VmId) -> Result<(), Error> {
        self.registry.drop_vm(&mut self.hooks, id)?;
        Ok(())
    }

    /// Releases everything a removed VM holds, in rule 1.5's order: stop
    /// vCPUs, tear down stage 2, unlock (unpin and uncharge), delete
    /// memslots, release vCPU, table and VSpace capabilities.
    fn teardown(&mut self, id: VmId) -> Result<(), Error> {
        let Some(entry) = self.registry.entry_mut(id) else {
            return Err(RegistryError::NoSuchVm.into());
        };
        let owner = entry.owner;
        let vm = &mut entry.vm;
        let k = &mut self.kernel;
        let mut first: Option<KernelError> = None;
        let mut note = |r: Result<(), KernelError>| {
            if let Err(e) = r {
                first.get_or_insert(e);
            }
        };
        for vcpu in 0..vm.vcpus.len() as u32 {
            if let (VcpuState::Running, Some((tcb, _))) = (vm.vcpu_state(vcpu), vm.vcpu_caps(vcpu)) {
                note(k.tcb_suspend(tcb));
                vm.set_vcpu_state(vcpu, VcpuState::Stopped);
            }
        }
        for slot in vm.memslots.iter() {
            note(super::memory::unmap_slot(k, slot));
            if let Some(lock) = slot.lock {
                for i in 0..lock.pins.len {
                    if let Some(pin) = lock.pins.get(i) {
                        note(k.frame_unmap(crate::caps::FrameCap(pin)));
                    }
                }
            }
        }
        while let Some(slot) = vm.memslots.remove(0) {
            if let Some(lock) = slot.lock {
                for i in 0..lock.pins.len {
                    if let Some(pin) = lock.pins.get(i) {
                        note(k.cnode_delete(pin));
                    }
                }
                self.charges.uncharge(owner, slot.pages());
                let _ = self.cspace.free(lock.pins);
            }
            if let crate::memslot::Backing::Gmem { file: Some(h), .. } = slot.backing {
                if let Some(f) = self.gmem.get_mut(h) {
                    f.unbind(slot.id);
                }
            }
            let _ = self.cspace.free(slot.map_caps);
        }
        for vcpu in 0..vm.vcpus.len() as u32 {
            if let (VcpuState::Stopped, Some((tcb, vc))) = (vm.vcpu_state(vcpu), vm.vcpu_caps(vcpu)) {
                note(k.cnode_delete(tcb.slot()));
                note(k.cnode_delete(vc.slot()));
                vm.set_vcpu_state(vcpu, VcpuState::Absent);
            }
        }
        vm.stage2.rollback(k, 0);
        note(k.cnode_delete(vm.fixed.base));
        let _ = self.cspace.free(vm.fixed);
        vm.fixed.len = 0;
        first.map_or(Ok(()), |e| Err(e.into()))
    }
}
