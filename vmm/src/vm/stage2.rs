//! A VM's stage-2 address space: its VSpace and the page tables the VMM has
//! created for it.
//!
//! Mapping a frame may find a page table missing; the VMM then creates one
//! from untyped memory, installs it and retries. Tables live in a run of
//! slots reserved when the VM is created, used in order, so undoing a failed
//! request is truncating back to a mark: tables created by a request that
//! failed are deleted with it (a failed request changes nothing). Tables
//! stay for the VM's lifetime otherwise.

use crate::addr::Gpa;
use crate::caps::{FrameCap, ObjectType, PageTableCap, Rights, SlotRange, VSpaceCap};
use crate::kernel::{During, Invocation, Kernel, KernelError, Refused};

/// How many levels can be missing below the root (levels 2 and 3).
const MISSING_LEVELS: usize = 2;

/// A VM's stage-2 translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Stage2 {
    /// The VM's VSpace.
    pub(crate) vspace: VSpaceCap,
    /// Slots reserved for page tables.
    pub(crate) tables: SlotRange,
    /// Tables created so far (the first `used` slots of `tables`).
    pub(crate) used: u64,
}

impl Stage2 {
    /// A mark to roll back to.
    pub(crate) fn mark(&self) -> u64 {
        self.used
    }

    /// Maps `frame` at `gpa`, creating page tables as needed.
    pub(crate) fn map<K: Kernel>(
        &mut self,
        k: &mut K,
        frame: FrameCap,
        gpa: Gpa,
        rights: Rights,
    ) -> Result<(), Refused> {
        for _ in 0..MISSING_LEVELS {
            match k.frame_map(frame, self.vspace, gpa.0, rights) {
                Err(KernelError::MissingLevel2 | KernelError::MissingLevel3) => self.add_table(k, gpa)?,
                other => return other.during(Invocation::PageMap),
            }
        }
        k.frame_map(frame, self.vspace, gpa.0, rights).during(Invocation::PageMap)
    }

    fn add_table<K: Kernel>(&mut self, k: &mut K, gpa: Gpa) -> Result<(), Refused> {
        // The reserved slots are the VM's share of memory for tables: out of
        // them, a table cannot be retyped, as when untyped memory runs out.
        let slot = self
            .tables
            .get(self.used)
            .ok_or(Refused { call: Invocation::UntypedRetype, error: KernelError::NotEnoughMemory })?;
        k.untyped_retype(ObjectType::PageTable, slot).during(Invocation::UntypedRetype)?;
        if let Err(e) = k.page_table_map(PageTableCap(slot), self.vspace, gpa.0).during(Invocation::PageTableMap) {
            // Best effort: the slot was empty before and must be again.
            let _ = k.cnode_delete(slot);
            return Err(e);
        }
        self.used += 1;
        Ok(())
    }

    /// Deletes the tables created since `mark`, newest first.
    pub(crate) fn rollback<K: Kernel>(&mut self, k: &mut K, mark: u64) {
        while self.used > mark {
            self.used -= 1;
            if let Some(slot) = self.tables.get(self.used) {
                let _ = k.cnode_delete(slot);
            }
        }
    }
}
