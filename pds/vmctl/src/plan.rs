//! What vmctl asks of its VM, read from the VM's boot manifest: the same
//! description the VMM starts from, so that the client sets exactly the
//! memslots and guest_memfd files the static layout holds.
//!
//! vmctl's VM is the one client-controlled VM among the embedded manifests
//! (this system has one client); a build with none or several is refused
//! with a message rather than guessed at.

use heapless::Vec;

use vmm_abi::limits::{MAX_GMEM_FILES, PAGE_SIZE};
use vmm_abi::manifest::{Manifest, SlotEntry, MAX_SLOTS, SLOT_GMEM, SLOT_LOCKABLE};

/// Why there is no plan.
#[derive(Clone, Copy, Debug)]
pub enum NoPlan {
    /// No embedded manifest describes a client-controlled VM.
    NoClientVm,
    /// Several do: which one is vmctl's?
    SeveralClientVms,
    /// A manifest does not verify.
    Invalid(&'static str, vmm_abi::manifest::ManifestError),
}

impl core::fmt::Display for NoPlan {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NoPlan::NoClientVm => f.write_str("no boot manifest describes a client-controlled VM"),
            NoPlan::SeveralClientVms => f.write_str("several boot manifests describe a client-controlled VM"),
            NoPlan::Invalid(pd, e) => write!(f, "the boot manifest of {pd} is invalid: {e}"),
        }
    }
}

/// The VM as vmctl sets it up.
pub struct Plan {
    /// The VMM PD that manages it.
    pub vmm: &'static str,
    /// Its manifest.
    pub manifest: Manifest,
    /// Its RAM memslots.
    pub ram_slots: Vec<SlotEntry, MAX_SLOTS>,
    /// Its guest_memfd memslots.
    pub gmem_slots: Vec<SlotEntry, MAX_SLOTS>,
    /// The slot vmctl locks: the last lockable one that fits the budget.
    pub lock: Option<SlotEntry>,
    /// A lockable slot that no longer fits the budget once `lock` is
    /// locked, to show the refusal.
    pub over_budget: Option<SlotEntry>,
    /// A RAM slot the manifest does not mark lockable, to show that its
    /// VMM refuses to lock it.
    pub not_lockable: Option<SlotEntry>,
}

/// The pages of a slot.
pub fn pages(s: &SlotEntry) -> u64 {
    s.size.get() / PAGE_SIZE
}

impl Plan {
    /// The plan for the one client-controlled VM of the build.
    pub fn find() -> Result<Plan, NoPlan> {
        let mut found: Option<(&'static str, Manifest)> = None;
        for (pd, bytes) in manifests::all() {
            let m = Manifest::parse(bytes).map_err(|e| NoPlan::Invalid(pd, e))?;
            if m.internal() {
                continue;
            }
            if found.is_some() {
                return Err(NoPlan::SeveralClientVms);
            }
            found = Some((pd, m));
        }
        let (vmm, manifest) = found.ok_or(NoPlan::NoClientVm)?;
        Ok(Plan::new(vmm, manifest))
    }

    fn new(vmm: &'static str, manifest: Manifest) -> Plan {
        let gmem = |s: &&SlotEntry| s.flags.get() & SLOT_GMEM != 0;
        let ram_slots: Vec<SlotEntry, MAX_SLOTS> = manifest.slots.iter().filter(|s| !gmem(s)).copied().collect();
        let gmem_slots: Vec<SlotEntry, MAX_SLOTS> = manifest.slots.iter().filter(gmem).copied().collect();
        let budget = manifest.memlock_pages;
        let lockable = || ram_slots.iter().filter(|s| s.flags.get() & SLOT_LOCKABLE != 0);
        let lock = lockable().filter(|s| pages(s) <= budget).last().copied();
        let left = budget - lock.as_ref().map_or(0, pages);
        let over_budget = lockable().find(|s| Some(**s) != lock && pages(s) > left).copied();
        let not_lockable = ram_slots.iter().find(|s| s.flags.get() & SLOT_LOCKABLE == 0).copied();
        Plan { vmm, manifest, ram_slots, gmem_slots, lock, over_budget, not_lockable }
    }

    /// The sizes of the guest_memfd files to create.
    pub fn files(&self) -> Vec<u64, MAX_GMEM_FILES> {
        self.manifest.files.iter().map(|f| f.size.get()).collect()
    }
}
