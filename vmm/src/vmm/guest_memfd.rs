//! CREATE_GUEST_MEMFD and CLOSE (SEMANTICS.md section 4).
//!
//! A file's frames are created from untyped memory, so they start zeroed,
//! and are held only by the file; memslots that bind the file map copies of
//! them into the VM's stage 2 and nowhere else. Closing revokes each frame
//! capability, which deletes every copy and so every guest mapping, then
//! deletes the frames themselves: their memory goes back to the untyped
//! pool and is zeroed again before any other file can have it. The file
//! holds a reference on its VM (rule 1.6), put when it closes.

use super::Vmm;
use crate::caps::{ObjectType, SlotRange, PAGE_SIZE};
use crate::error::Error;
use crate::gmem::{GmemError, GmemFile};
use crate::kernel::Kernel;
use crate::memslot::Backing;
use crate::registry::{ArchHooks, Caller, Presence, RegistryError, VmId};

/// Deletes the first `n` frames of `frames`.
fn delete_frames<K: Kernel>(k: &mut K, frames: SlotRange, n: u64) {
    for i in 0..n {
        if let Some(s) = frames.get(i) {
            let _ = k.cnode_delete(s);
        }
    }
}

impl<K: Kernel, A: ArchHooks> Vmm<K, A> {
    /// CREATE_GUEST_MEMFD(size, flags) for VM `id`; returns the handle.
    pub fn create_guest_memfd(&mut self, caller: Caller, id: VmId, size: u64, flags: u64) -> Result<u32, Error> {
        let entry = self.registry.get_mut(caller, id)?;
        let handle = self.gmem.check_create(size, flags)?;
        let refs = entry.file_refs.checked_add(1).ok_or(GmemError::TooManyFiles)?;
        let pages = size / PAGE_SIZE;
        let frames = self.cspace.alloc(pages)?;
        for i in 0..pages {
            let Some(slot) = frames.get(i) else { continue };
            if let Err(e) = self.kernel.untyped_retype(ObjectType::Frame, slot) {
                delete_frames(&mut self.kernel, frames, i);
                let _ = self.cspace.free(frames);
                return Err(e.into());
            }
        }
        let file = GmemFile { handle, vm: id, size, frames, bindings: heapless::Vec::new() };
        if let Err(e) = self.gmem.insert(file) {
            delete_frames(&mut self.kernel, frames, pages);
            let _ = self.cspace.free(frames);
            return Err(e.into());
        }
        entry.file_refs = refs;
        Ok(handle)
    }

    /// CLOSE(handle): unbind every slot, revoke every guest mapping, free
    /// the frames, then put the VM reference (dropping a destroyed VM).
    pub fn close_guest_memfd(&mut self, caller: Caller, handle: u32) -> Result<(), Error> {
        let vm_id = self.gmem.get(handle).ok_or(GmemError::BadHandle)?.vm;
        let entry = self.registry.entry_mut(vm_id).ok_or(RegistryError::NoSuchVm)?;
        if entry.owner != caller {
            return Err(RegistryError::NotOwner.into());
        }
        let Some(file) = self.gmem.remove(handle) else {
            return Err(GmemError::BadHandle.into());
        };
        for slot in entry.vm.memslots.iter_mut() {
            if let Backing::Gmem { file: f @ Some(_), .. } = &mut slot.backing {
                if *f == Some(handle) {
                    *f = None;
                }
            }
        }
        let k = &mut self.kernel;
        let mut first = Ok(());
        for i in 0..file.frames.len {
            let Some(s) = file.frames.get(i) else {
                continue;
            };
            let r = k.cnode_revoke(s).and_then(|()| k.cnode_delete(s));
            if first.is_ok() {
                first = r;
            }
        }
        let _ = self.cspace.free(file.frames);
        entry.file_refs = entry.file_refs.saturating_sub(1);
        let dropped =
            if entry.file_refs == 0 && entry.presence == Presence::Removed { self.drop_vm(vm_id) } else { Ok(()) };
        first?;
        dropped
    }

    /// The VM a guest_memfd handle belongs to.
    pub fn guest_memfd_vm(&self, handle: u32) -> Option<VmId> {
        self.gmem.get(handle).map(|f| f.vm)
    }
}
