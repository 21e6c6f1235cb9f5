//! guest_memfd files: guest-private memory and its bindings (KVM's guest_memfd).
//!
//! A file is a run of frame capabilities the VMM created from untyped memory
//! (so they start zeroed) and never maps anywhere but into its VM's stage 2,
//! where a GUEST_MEMFD memslot binds a range of it. This module keeps the
//! table of open files and their bindings; the VMM performs the capability
//! operations.
//!
//! Corrected behaviour from the review of the KVM proposal: ranges are half-open
//! (`[offset, offset + size)`, the end exclusive), and a failed bind takes
//! nothing (there is no reference to leak: the file's reference is on the
//! VM, taken at creation and put at close). A size of 0 is refused.
//!
//! CREATE_GUEST_MEMFD and CLOSE (section 4 of the rules).
//!
//! A file's frames are created from untyped memory, so they start zeroed,
//! and are held only by the file; memslots that bind the file map copies of
//! them into the VM's stage 2 and nowhere else. Closing revokes each frame
//! capability, which deletes every copy and so every guest mapping, then
//! deletes the frames themselves: their memory goes back to the untyped
//! pool and is zeroed again before any other file can have it. The file
//! holds a reference on its VM (rule 1.6), put when it closes.

use heapless::Vec;

use crate::caps::{ObjectType, SlotRange};
use crate::error::Error;
use crate::kernel::{During, Invocation, Kernel};
use crate::platform::Platform;
use crate::registry::{Caller, Presence, RegistryError};
use crate::vm::memslots::Backing;
use crate::vm::sorted::insert_at;
use crate::Vmm;
use vmm_abi::limits::{page_aligned, MAX_BINDINGS, MAX_GMEM_FILES, PAGE_SIZE};
use vmm_abi::{GmemHandle, MemslotId, VmId};

crate::errors! {
    /// Why a guest_memfd operation failed.
    pub enum GmemError {
        /// Flags other than 0.
        BadFlags => EINVAL, "guest_memfd flags must be 0",
        /// Size 0 or not page-aligned.
        BadSize => EINVAL, "guest_memfd size must be a non-zero multiple of the page size",
        /// No open file has that handle.
        BadHandle => EBADF, "no open guest_memfd with that handle",
        /// The file belongs to another VM.
        OtherVm => EINVAL, "the guest_memfd belongs to another VM",
        /// Offset unaligned or the range runs past the end of the file.
        BadRange => EINVAL, "offset unaligned or range past the end of the guest_memfd",
        /// Some page of the range is already bound.
        AlreadyBound => EINVAL, "part of the range is already bound to a memslot",
        /// The file table is full.
        TooManyFiles => ENOSPC, "too many open guest_memfd files",
        /// The file has as many bindings as it can hold.
        TooManyBindings => ENOSPC, "too many memslots bound to this guest_memfd",
        /// Every handle number is in use.
        NoFreeHandle => ENOSPC, "no free guest_memfd handle",
        /// The file backs a memslot of a VM that exists, and the platform
        /// cannot take its frames back from the guest.
        CannotRevoke => EOPNOTSUPP, "the guest_memfd is bound and the platform cannot take its memory back",
    }
}

/// A bound range of a file: pages `[first, first + pages)` back memslot `slot`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Binding {
    /// First page of the range in the file.
    pub first: u64,
    /// Pages in the range.
    pub pages: u64,
    /// The memslot id it backs.
    pub slot: MemslotId,
}

impl Binding {
    fn end(&self) -> u64 {
        self.first.saturating_add(self.pages)
    }
}

/// An open guest_memfd file.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GmemFile {
    /// Its handle (the fd).
    pub(crate) handle: GmemHandle,
    /// The VM it belongs to and pins.
    pub(crate) vm: VmId,
    /// Size in bytes.
    pub(crate) size: u64,
    /// Page `i` is the frame capability in slot `frames.base + i`.
    pub(crate) frames: SlotRange,
    /// Bound ranges, sorted by first page, disjoint.
    pub(crate) bindings: Vec<Binding, MAX_BINDINGS>,
}

impl GmemFile {
    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Its bound ranges, sorted by first page.
    pub fn bindings(&self) -> &[Binding] {
        &self.bindings
    }

    /// Its handle.
    pub fn handle(&self) -> GmemHandle {
        self.handle
    }

    /// The VM it belongs to.
    pub fn vm(&self) -> VmId {
        self.vm
    }

    /// Its frames: page `i` is the capability in slot `frames().base + i`.
    pub fn frames(&self) -> SlotRange {
        self.frames
    }

    /// Pages in the file.
    pub fn pages(&self) -> u64 {
        self.size / PAGE_SIZE
    }

    /// Checks that `[offset, offset + size)` can be bound (rule 4.3).
    pub(crate) fn check_bind(&self, vm: VmId, offset: u64, size: u64) -> Result<Binding, GmemError> {
        if self.vm != vm {
            return Err(GmemError::OtherVm);
        }
        let end = offset.checked_add(size).ok_or(GmemError::BadRange)?;
        if !page_aligned(offset) || !page_aligned(size) || end > self.size || size == 0 {
            return Err(GmemError::BadRange);
        }
        let b = Binding { first: offset / PAGE_SIZE, pages: size / PAGE_SIZE, slot: MemslotId(0) };
        // Bindings are sorted and disjoint: only the last one starting before
        // our end can overlap us.
        let i = self.bindings.partition_point(|x| x.first < b.end());
        if i > 0 && self.bindings.get(i - 1).is_some_and(|x| x.end() > b.first) {
            return Err(GmemError::AlreadyBound);
        }
        if self.bindings.is_full() {
            return Err(GmemError::TooManyBindings);
        }
        Ok(b)
    }

    /// Records a binding checked by [`GmemFile::check_bind`].
    pub(crate) fn bind(&mut self, b: Binding) -> Result<(), GmemError> {
        let i = self.bindings.partition_point(|x| x.first < b.first);
        insert_at(&mut self.bindings, i, b).map_err(|_| GmemError::TooManyBindings)
    }

    /// Clears the binding of memslot `slot` (rule 4.4); no binding is fine.
    pub(crate) fn unbind(&mut self, slot: MemslotId) {
        self.bindings.retain(|b| b.slot != slot);
    }
}

/// The open guest_memfd files of a VMM instance.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GmemTable {
    files: Vec<GmemFile, MAX_GMEM_FILES>,
    next_handle: u32,
}

impl Default for GmemTable {
    fn default() -> Self {
        GmemTable { files: Vec::new(), next_handle: 1 }
    }
}

impl GmemTable {
    /// Checks a CREATE_GUEST_MEMFD request and picks the handle it would get.
    pub(crate) fn check_create(&self, size: u64, flags: u64) -> Result<GmemHandle, GmemError> {
        if flags != 0 {
            return Err(GmemError::BadFlags);
        }
        if size == 0 || !page_aligned(size) {
            return Err(GmemError::BadSize);
        }
        if self.files.is_full() {
            return Err(GmemError::TooManyFiles);
        }
        let mut h = self.next_handle;
        for _ in 0..=MAX_GMEM_FILES {
            if h != 0 && self.get(GmemHandle(h)).is_none() {
                return Ok(GmemHandle(h));
            }
            h = h.wrapping_add(1);
        }
        Err(GmemError::NoFreeHandle)
    }

    /// Adds a file checked by [`GmemTable::check_create`].
    pub(crate) fn insert(&mut self, file: GmemFile) -> Result<(), GmemError> {
        let next = file.handle.0.wrapping_add(1);
        self.files.push(file).map_err(|_| GmemError::TooManyFiles)?;
        self.next_handle = next;
        Ok(())
    }

    /// The open file `handle`.
    pub fn get(&self, handle: GmemHandle) -> Option<&GmemFile> {
        self.files.iter().find(|f| f.handle == handle)
    }

    /// Mutable access to the open file `handle`.
    pub(crate) fn get_mut(&mut self, handle: GmemHandle) -> Option<&mut GmemFile> {
        self.files.iter_mut().find(|f| f.handle == handle)
    }

    /// Forgets the file `handle`.
    pub(crate) fn remove(&mut self, handle: GmemHandle) -> Option<GmemFile> {
        let i = self.files.iter().position(|f| f.handle == handle)?;
        Some(self.files.swap_remove(i))
    }

    /// Every open file.
    pub fn iter(&self) -> impl Iterator<Item = &GmemFile> {
        self.files.iter()
    }
}

/// Deletes the first `n` frames of `frames`.
fn delete_frames<K: Kernel>(k: &mut K, frames: SlotRange, n: u64) {
    for i in 0..n {
        if let Some(s) = frames.get(i) {
            let _ = k.cnode_delete(s);
        }
    }
}

impl<K: Kernel, A: Platform, const VMS: usize> Vmm<K, A, VMS> {
    /// CREATE_GUEST_MEMFD(size, flags) for VM `id`; returns the handle.
    pub fn create_guest_memfd(&mut self, caller: Caller, id: VmId, size: u64, flags: u64) -> Result<GmemHandle, Error> {
        let entry = self.registry.get_mut(caller, id)?;
        let handle = self.gmem.check_create(size, flags)?;
        let refs = entry.file_refs.checked_add(1).ok_or(GmemError::TooManyFiles)?;
        let pages = size / PAGE_SIZE;
        let frames = self.cspace.alloc(pages)?;
        for i in 0..pages {
            let Some(slot) = frames.get(i) else { continue };
            if let Err(e) = self.kernel.untyped_retype(ObjectType::Frame, slot).during(Invocation::UntypedRetype) {
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
    pub fn close_guest_memfd(&mut self, caller: Caller, handle: GmemHandle) -> Result<(), Error> {
        let vm_id = self.gmem.get(handle).ok_or(GmemError::BadHandle)?.vm;
        let entry = self.registry.entry_mut(vm_id).ok_or(RegistryError::NoSuchVm)?;
        if entry.owner != caller {
            return Err(RegistryError::NotOwner.into());
        }
        // Rule 8.6. A file's bindings go with its VM's memslots, so a bound
        // file's VM exists.
        let bound = self.gmem.get(handle).is_some_and(|f| !f.bindings.is_empty());
        if bound && !self.hooks.can_revoke() {
            return Err(GmemError::CannotRevoke.into());
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
            let r = k
                .cnode_revoke(s)
                .during(Invocation::CNodeRevoke)
                .and_then(|()| k.cnode_delete(s).during(Invocation::CNodeDelete));
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
    pub fn guest_memfd_vm(&self, handle: GmemHandle) -> Option<VmId> {
        self.gmem.get(handle).map(|f| f.vm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caps::Slot;

    fn file(pages: u64) -> GmemFile {
        GmemFile {
            handle: GmemHandle(1),
            vm: VmId(1),
            size: pages * PAGE_SIZE,
            frames: SlotRange { base: Slot(0), len: pages },
            bindings: Vec::new(),
        }
    }

    #[test]
    fn ranges_are_half_open() {
        let mut f = file(8);
        let mut b = f.check_bind(VmId(1), 0, 4 * PAGE_SIZE).unwrap();
        b.slot = MemslotId(1);
        f.bind(b).unwrap();
        // Starts exactly at the previous end: allowed.
        let mut c = f.check_bind(VmId(1), 4 * PAGE_SIZE, 4 * PAGE_SIZE).unwrap();
        c.slot = MemslotId(2);
        f.bind(c).unwrap();
        f.unbind(MemslotId(1));
        // Ends exactly where binding 2 starts: allowed.
        assert!(f.check_bind(VmId(1), 0, 4 * PAGE_SIZE).is_ok());
        assert_eq!(f.check_bind(VmId(1), 3 * PAGE_SIZE, 2 * PAGE_SIZE), Err(GmemError::AlreadyBound));
        assert_eq!(f.check_bind(VmId(1), 7 * PAGE_SIZE, PAGE_SIZE), Err(GmemError::AlreadyBound));
    }

    #[test]
    fn bind_range_checks() {
        let f = file(4);
        assert_eq!(f.check_bind(VmId(2), 0, PAGE_SIZE), Err(GmemError::OtherVm));
        assert_eq!(f.check_bind(VmId(1), 1, PAGE_SIZE), Err(GmemError::BadRange));
        assert_eq!(f.check_bind(VmId(1), PAGE_SIZE, 4 * PAGE_SIZE), Err(GmemError::BadRange));
        assert_eq!(f.check_bind(VmId(1), u64::MAX - 4095, PAGE_SIZE), Err(GmemError::BadRange));
        assert!(f.check_bind(VmId(1), 0, 4 * PAGE_SIZE).is_ok(), "the whole file, end exclusive");
    }

    #[test]
    fn create_checks() {
        let t = GmemTable::default();
        assert_eq!(t.check_create(PAGE_SIZE, 1), Err(GmemError::BadFlags));
        assert_eq!(t.check_create(0, 0), Err(GmemError::BadSize));
        assert_eq!(t.check_create(PAGE_SIZE + 1, 0), Err(GmemError::BadSize));
        assert_eq!(t.check_create(PAGE_SIZE, 0), Ok(GmemHandle(1)));
    }
}

/// Proofs over every input (`cargo kani -p vmm`), on a file of eight pages
/// and three bind requests.
#[cfg(kani)]
mod proofs {
    use super::*;
    use crate::caps::Slot;

    /// A range is bound exactly when it is page-aligned, non-empty, inside
    /// the file and disjoint from every range bound before (rule 4.3); the
    /// bindings stay sorted and disjoint.
    #[kani::proof]
    #[kani::unwind(5)]
    fn a_range_is_bound_only_where_no_other_is() {
        let mut f = GmemFile {
            handle: GmemHandle(1),
            vm: VmId(0),
            size: 8 * PAGE_SIZE,
            frames: SlotRange { base: Slot(0), len: 8 },
            bindings: Vec::new(),
        };
        for slot in 0..3u16 {
            // 16-bit symbolic numbers, widened: past the file's end and
            // unaligned too, with no 64-bit arithmetic for the solver.
            let offset = u64::from(kani::any::<u16>());
            let size = u64::from(kani::any::<u16>());
            kani::assume(offset <= 10 * PAGE_SIZE && size <= 10 * PAGE_SIZE);
            let fits = page_aligned(offset) && page_aligned(size) && size > 0 && offset + size <= f.size;
            let (first, end) = (offset / PAGE_SIZE, (offset + size) / PAGE_SIZE);
            let free = f.bindings.iter().all(|b| b.first + b.pages <= first || end <= b.first);
            match f.check_bind(VmId(0), offset, size) {
                Ok(b) => {
                    assert!(fits && free);
                    assert!(f.bind(Binding { slot: MemslotId(slot), ..b }).is_ok());
                }
                Err(_) => assert!(!(fits && free)),
            }
        }
        for w in f.bindings.windows(2) {
            if let [a, b] = w {
                assert!(a.first + a.pages <= b.first);
            }
        }
        assert!(f.check_bind(VmId(1), 0, PAGE_SIZE) == Err(GmemError::OtherVm));
    }
}
