//! Memslot lock/unlock flags and memlock accounting.
//!
//! Each client may have at most its configured number of pages locked at
//! once (the RLIMIT_MEMLOCK of this world); a privileged client has no limit
//! (CAP_IPC_LOCK). The VMM's own internal VMs are charged to `Internal`,
//! which is privileged. The budget is checked before anything is pinned, and
//! the charge is taken only once the lock has fully succeeded, so a failed
//! lock charges nothing (the seed pinned first and accounted last, leaving a
//! window where a failure after pinning had to unwind by hand).
//!
//! Memslot lock and unlock (section 5 of the rules).
//!
//! Locking pins every page: the VMM derives a capability to each backing
//! frame into a run of pin slots held for the lock's lifetime, and maps each
//! page at stage 2 through its pin (4 KiB pages, read-only or read-write as
//! the lock asks). A page the guest had already faulted in stays mapped
//! through its mapping capability, and is mapped again with the lock's
//! rights: after a READ lock no page of the slot is writable at stage 2.
//!
//! Outside a lock every page of a slot is mapped with the slot's rights
//! (read-only for a READONLY slot, else read-write). That is what lets a
//! failed lock be undone exactly: deleting its pins unmaps what it mapped,
//! and the pages it mapped again get the slot's rights back.
//!
//! Unlocking unpins and uncharges but keeps the stage-2 mappings: each pin
//! that maps its page is moved into the page's mapping slot, and the others
//! are deleted; the pages of a writable slot that a READ lock mapped
//! read-only are read-write again.
//!
//! guest_memfd slots are not locked (EINVAL): their frames are held by the
//! file and never move, so there is nothing to pin, and closing the file
//! must be able to take every mapping of them away.

use heapless::Vec;

use crate::caps::{FrameCap, Rights, Slot, SlotRange, VSpaceCap};
use crate::config::{VmmConfig, MAX_CLIENTS};
use crate::error::Error;
use crate::kernel::{During, Invocation, Kernel, KernelError, Refused};
use crate::platform::Platform;
use crate::registry::{Caller, Owner};
use crate::vm::memslots::{Backing, Memslot, SlotLock};
use crate::Vmm;
use vmm_abi::limits::PAGE_SIZE;
use vmm_abi::memslot::{LOCK_READ, LOCK_WRITE, LOG_DIRTY_PAGES, UNLOCK_ALL};
use vmm_abi::{ClientId, MemslotId, VmId};

/// Every lock flag.
pub(crate) const LOCK_FLAGS: u64 = LOCK_READ | LOCK_WRITE;
crate::errors! {
    /// Why a lock or unlock request was refused.
    pub enum LockError {
        /// No READ bit, or unknown bits.
        BadFlags => EINVAL, "lock flags must have READ and only READ|WRITE",
        /// No memslot with that id.
        NoSuchSlot => EINVAL, "no such memslot",
        /// guest_memfd slots are not locked: their frames are already held
        /// by the file and never move.
        GmemSlot => EINVAL, "guest_memfd memslots cannot be locked",
        /// WRITE on a READONLY or dirty-logging slot.
        WriteNotAllowed => EPERM, "WRITE lock on a read-only or dirty-logging memslot",
        /// The slot is already locked.
        AlreadyLocked => EBUSY, "the memslot is already locked",
        /// Locking would exceed the client's memlock budget.
        OverBudget => ENOMEM, "memlock budget exceeded",
        /// Unlocking a slot that is not locked.
        NotLocked => EINVAL, "the memslot is not locked",
        /// The platform cannot pin this memory in 4 KiB pages.
        CannotPin => EOPNOTSUPP, "the platform cannot pin this memory in 4 KiB pages",
        /// A READ lock would map a writable slot read-only, and the platform
        /// cannot take rights back from a guest.
        CannotRevoke => EOPNOTSUPP, "the platform cannot map a writable slot read-only for a READ lock",
        /// The VM-wide capability cannot be enabled while a slot is locked.
        SlotsLocked => EPERM, "a memslot is locked",
    }
}

/// Pages currently locked, per owner.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Charges {
    clients: Vec<(ClientId, u64), MAX_CLIENTS>,
    internal: u64,
}

impl Charges {
    /// Pages `owner` has locked.
    pub fn charged(&self, owner: Owner) -> u64 {
        match owner {
            Owner::Internal => self.internal,
            Owner::Client(c) => self.clients.iter().find(|(id, _)| *id == c).map_or(0, |(_, n)| *n),
        }
    }

    /// Checks that `owner` may lock `pages` more (rule 5.3).
    pub(crate) fn check(&self, config: &VmmConfig, owner: Owner, pages: u64) -> Result<(), LockError> {
        let Some(limit) = charge_limit(config, owner) else { return Ok(()) };
        match self.charged(owner).checked_add(pages) {
            Some(total) if total <= limit => Ok(()),
            _ => Err(LockError::OverBudget),
        }
    }

    /// Adds `pages` to `owner`'s charge.
    pub(crate) fn charge(&mut self, owner: Owner, pages: u64) -> Result<(), LockError> {
        match owner {
            Owner::Internal => {
                self.internal = self.internal.checked_add(pages).ok_or(LockError::OverBudget)?;
            }
            Owner::Client(c) => match self.clients.iter_mut().find(|(id, _)| *id == c) {
                Some((_, n)) => *n = n.checked_add(pages).ok_or(LockError::OverBudget)?,
                None => self.clients.push((c, pages)).map_err(|_| LockError::OverBudget)?,
            },
        }
        Ok(())
    }

    /// Takes `pages` off `owner`'s charge; an entry that reaches 0 is
    /// forgotten so that charging and uncharging restores the state exactly.
    pub(crate) fn uncharge(&mut self, owner: Owner, pages: u64) {
        match owner {
            Owner::Internal => self.internal = self.internal.saturating_sub(pages),
            Owner::Client(c) => {
                if let Some((_, n)) = self.clients.iter_mut().find(|(id, _)| *id == c) {
                    *n = n.saturating_sub(pages);
                }
                self.clients.retain(|(_, n)| *n != 0);
            }
        }
    }
}

/// The most pages `owner` may have locked at once: none for the VMM's own
/// VMs and a privileged client (`None`), 0 for an unknown client.
pub fn charge_limit(config: &VmmConfig, owner: Owner) -> Option<u64> {
    match owner {
        Owner::Internal => None,
        Owner::Client(c) => match config.client(c) {
            Some(cfg) if cfg.privileged => None,
            Some(cfg) => Some(cfg.memlock_pages),
            None => Some(0),
        },
    }
}

/// Checks LOCK flags (rule 5.1).
pub(crate) fn check_lock_flags(flags: u64) -> Result<bool, LockError> {
    if flags & LOCK_READ == 0 || flags & !LOCK_FLAGS != 0 {
        return Err(LockError::BadFlags);
    }
    Ok(flags & LOCK_WRITE != 0)
}

/// Undoes the first `n` pages of a lock that failed: deletes their pins
/// (unmapping the pages mapped through them) and gives each page mapped
/// through its mapping capability the slot's rights back. Outside a lock
/// those are the rights every mapping of the slot has, so this restores
/// them exactly; an empty mapping slot refuses the call and nothing
/// changes.
fn abandon<K: Kernel>(k: &mut K, vspace: VSpaceCap, slot: &Memslot, pins: SlotRange, n: u64) {
    for i in 0..n {
        if let Some(p) = pins.get(i) {
            let _ = k.cnode_delete(p);
        }
        if let Some(map) = slot.map_caps.get(i) {
            let _ = k.frame_map(FrameCap(map), vspace, (slot.gpa + i * PAGE_SIZE).0, slot.rights());
        }
    }
}

/// Moves each mapping pin into its page's mapping slot and deletes the rest.
/// A READ lock of a writable slot mapped its pages read-only: each goes
/// back to read-write, so that outside a lock every mapping has the slot's
/// rights (which [`abandon`] relies on).
fn unpin<K: Kernel>(k: &mut K, vspace: VSpaceCap, slot: &Memslot, lock: SlotLock) -> Result<(), Refused> {
    let relax = !lock.write && !slot.readonly();
    let mut first = Ok(());
    for i in 0..lock.pins.len {
        let (Some(pin), Some(map)) = (lock.pins.get(i), slot.map_caps.get(i)) else {
            continue;
        };
        let r = match k.cnode_move(map, pin) {
            // The page is mapped through its mapping capability already.
            Err(KernelError::DeleteFirst) => k.cnode_delete(pin).during(Invocation::CNodeDelete),
            other => other.during(Invocation::CNodeMove),
        }
        .and_then(|()| {
            if relax {
                k.frame_map(FrameCap(map), vspace, (slot.gpa + i * PAGE_SIZE).0, Rights::READ_WRITE)
                    .during(Invocation::PageMap)
            } else {
                Ok(())
            }
        });
        if first.is_ok() {
            first = r;
        }
    }
    first
}

/// A LOCK that passed every check: what it pins and how.
struct LockTarget {
    /// The slot's index in the VM's table.
    idx: usize,
    /// The slot as it is.
    slot: Memslot,
    /// Its first RAM frame (the others follow).
    frames: Slot,
    /// A READ|WRITE lock.
    write: bool,
    /// Whom it is charged to.
    owner: crate::registry::Owner,
}

impl<K: Kernel, A: Platform, const VMS: usize> Vmm<K, A, VMS> {
    /// The checks of LOCK (rules 5.1-5.3), in order, then the platform's
    /// (rule 8.2).
    fn check_lock(&self, caller: Caller, id: VmId, slot_id: u32, flags: u64) -> Result<LockTarget, Error> {
        let entry = self.registry.get(caller, id)?;
        let write = check_lock_flags(flags)?;
        let vm = &entry.vm;
        let idx = MemslotId::of_request(slot_id).and_then(|s| vm.memslots.index_of(s)).ok_or(LockError::NoSuchSlot)?;
        let slot = *vm.memslots.get(idx).ok_or(LockError::NoSuchSlot)?;
        let Backing::Ram { frames } = slot.backing else {
            return Err(LockError::GmemSlot.into());
        };
        if write && (slot.readonly() || slot.flags & LOG_DIRTY_PAGES != 0) {
            return Err(LockError::WriteNotAllowed.into());
        }
        if slot.lock.is_some() {
            return Err(LockError::AlreadyLocked.into());
        }
        self.charges.check(&self.config, entry.owner, slot.pages())?;
        if !self.hooks.can_pin(slot.gpa, slot.size) {
            return Err(LockError::CannotPin.into());
        }
        if !write && !slot.readonly() && !self.hooks.can_revoke() {
            return Err(LockError::CannotRevoke.into());
        }
        Ok(LockTarget { idx, slot, frames, write, owner: entry.owner })
    }

    /// LOCK(slot, READ[|WRITE]).
    pub fn lock_memslot(&mut self, caller: Caller, id: VmId, slot_id: u32, flags: u64) -> Result<(), Error> {
        let LockTarget { idx, slot, frames, write, owner } = self.check_lock(caller, id, slot_id, flags)?;
        let vm = &mut self.registry.get_mut(caller, id)?.vm;
        let pages = slot.pages();
        let pins = self.cspace.alloc(pages)?;
        // Pins carry what the slot allows, so that a later write fault (or
        // the mapping an unlock hands over) can relax a READ lock's mapping;
        // the lock's flags only set the rights of the initial mapping.
        let pin_rights = slot.rights();
        let rights = if write { Rights::READ_WRITE } else { Rights::READ };
        let k = &mut self.kernel;
        let vspace = vm.stage2.vspace;
        let mark = vm.stage2.mark();
        for i in 0..pages {
            let (Some(pin), Some(frame)) = (pins.get(i), frames.offset(i)) else {
                continue;
            };
            let gpa = slot.gpa + i * PAGE_SIZE;
            let r = k.cnode_copy(pin, frame, pin_rights).during(Invocation::CNodeCopy).and_then(|()| {
                match vm.stage2.map(k, FrameCap(pin), gpa, rights) {
                    // Mapped through its mapping capability already: map it
                    // again with the lock's rights, so that after a READ
                    // lock no page of the slot is writable (rule 5.4).
                    Err(Refused { error: KernelError::DeleteFirst, .. }) => match slot.map_caps.get(i) {
                        Some(map) => k.frame_map(FrameCap(map), vspace, gpa.0, rights).during(Invocation::PageMap),
                        None => Ok(()),
                    },
                    other => other,
                }
            });
            if let Err(e) = r {
                abandon(k, vspace, &slot, pins, i + 1);
                vm.stage2.rollback(k, mark);
                let _ = self.cspace.free(pins);
                return Err(e.into());
            }
        }
        if let Err(e) = self.charges.charge(owner, pages) {
            abandon(k, vspace, &slot, pins, pages);
            vm.stage2.rollback(k, mark);
            let _ = self.cspace.free(pins);
            return Err(e.into());
        }
        if let Some(s) = vm.memslots.get_mut(idx) {
            s.lock = Some(SlotLock { write, pins });
        }
        Ok(())
    }

    /// UNLOCK(slot), or every locked slot with [`UNLOCK_ALL`].
    pub fn unlock_memslot(&mut self, caller: Caller, id: VmId, slot_id: u32, flags: u64) -> Result<(), Error> {
        let vm = &mut self.registry.get_mut(caller, id)?.vm;
        if flags & !UNLOCK_ALL != 0 {
            return Err(LockError::BadFlags.into());
        }
        if flags & UNLOCK_ALL != 0 {
            return self.unlock_all(id);
        }
        let idx = MemslotId::of_request(slot_id).and_then(|s| vm.memslots.index_of(s)).ok_or(LockError::NoSuchSlot)?;
        if vm.memslots.get(idx).is_some_and(|s| s.lock.is_none()) {
            return Err(LockError::NotLocked.into());
        }
        self.unlock_index(id, idx)
    }

    /// Unlocks every locked slot of `id`, going on past errors and
    /// returning the last one (rule 5.7).
    fn unlock_all(&mut self, id: VmId) -> Result<(), Error> {
        let mut last = Ok(());
        let n = self.registry.entry(id).map_or(0, |e| e.vm.memslots.len());
        for idx in 0..n {
            let locked = self.registry.entry(id).and_then(|e| e.vm.memslots.get(idx)).is_some_and(|s| s.lock.is_some());
            if locked {
                if let Err(e) = self.unlock_index(id, idx) {
                    last = Err(e);
                }
            }
        }
        last
    }

    fn unlock_index(&mut self, id: VmId, idx: usize) -> Result<(), Error> {
        let Some(entry) = self.registry.entry_mut(id) else {
            return Err(LockError::NoSuchSlot.into());
        };
        let owner = entry.owner;
        let vspace = entry.vm.stage2.vspace;
        let Some(slot) = entry.vm.memslots.get_mut(idx) else {
            return Err(LockError::NoSuchSlot.into());
        };
        let Some(lock) = slot.lock.take() else {
            return Err(LockError::NotLocked.into());
        };
        let r = unpin(&mut self.kernel, vspace, slot, lock);
        self.charges.uncharge(owner, slot.pages());
        let _ = self.cspace.free(lock.pins);
        Ok(r?)
    }
}
