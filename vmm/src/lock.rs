//! Memslot lock/unlock flags and memlock accounting (seed 004).
//!
//! Each client may have at most its configured number of pages locked at
//! once (the RLIMIT_MEMLOCK of this world); a privileged client has no limit
//! (CAP_IPC_LOCK). The VMM's own internal VMs are charged to `Internal`,
//! which is privileged. The budget is checked before anything is pinned, and
//! the charge is taken only once the lock has fully succeeded, so a failed
//! lock charges nothing (the seed pinned first and accounted last, leaving a
//! window where a failure after pinning had to unwind by hand).

use heapless::Vec;

use crate::config::{ClientId, VmmConfig, MAX_CLIENTS};
use crate::registry::Owner;

/// Lock for reading (required).
pub const LOCK_READ: u64 = 1 << 0;
/// Lock for writing too.
pub const LOCK_WRITE: u64 = 1 << 1;
/// Every lock flag.
pub const LOCK_FLAGS: u64 = LOCK_READ | LOCK_WRITE;
/// UNLOCK: every locked slot of the VM instead of one.
pub const UNLOCK_ALL: u64 = 1 << 0;

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
    pub fn check(&self, config: &VmmConfig, owner: Owner, pages: u64) -> Result<(), LockError> {
        let limit = match owner {
            Owner::Internal => return Ok(()),
            Owner::Client(c) => match config.client(c) {
                Some(cfg) if cfg.privileged => return Ok(()),
                Some(cfg) => cfg.memlock_pages,
                None => 0,
            },
        };
        match self.charged(owner).checked_add(pages) {
            Some(total) if total <= limit => Ok(()),
            _ => Err(LockError::OverBudget),
        }
    }

    /// Adds `pages` to `owner`'s charge.
    pub fn charge(&mut self, owner: Owner, pages: u64) -> Result<(), LockError> {
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
    pub fn uncharge(&mut self, owner: Owner, pages: u64) {
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

/// Checks LOCK flags (rule 5.1).
pub fn check_lock_flags(flags: u64) -> Result<bool, LockError> {
    if flags & LOCK_READ == 0 || flags & !LOCK_FLAGS != 0 {
        return Err(LockError::BadFlags);
    }
    Ok(flags & LOCK_WRITE != 0)
}
