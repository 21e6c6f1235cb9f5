//! An executable model of the seL4 objects behind [`Kernel`](vmm::kernel::Kernel).
//!
//! Host tests, the host simulator and `verification/` run the core against
//! it; target builds never include it (it needs `std`). It keeps what the invariants
//! need to observe: CSpace slots, the capability derivation tree, frames,
//! VSpaces and page tables, one mapping per frame capability, rights that
//! only shrink when derived, and revoke removing descendants with their
//! mappings. It answers where each frame is mapped and which capabilities
//! exist.
//!
//! Simplifications, none of which the core can observe through the trait:
//! an object is freed (and its untyped memory returned) when its last
//! capability is deleted, where seL4 waits for the untyped to be revoked;
//! deleting a page table unmaps everything below it. A test can make the
//! `n`th fallible invocation from now fail with [`Model::fail_nth`], to
//! check that every operation undoes what it did. Delete, revoke, unmap,
//! move and suspend of a held capability cannot fail on seL4, so they are
//! counted but never made to fail.

pub mod invariants;
mod invocations;
mod objects;

use std::collections::{BTreeMap, BTreeSet};
use std::vec::Vec;

pub use objects::{Cap, Mapping, ObjId, Object};

use vmm::arch::aarch64::regs::TcbReg;
use vmm::caps::{ObjectType, Rights, Slot};
use vmm::kernel::{KernelError, Virq};

/// The comparable state of the model: everything a test may snapshot.
///
/// Ordered maps keyed by slot: the VMM allocates slots in runs, so a run of
/// pages touches neighbouring entries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct State {
    /// Occupied slots.
    pub caps: BTreeMap<u64, Cap>,
    /// Live objects.
    pub objects: BTreeMap<ObjId, Object>,
    /// Untyped memory left, in bytes.
    pub untyped_free: u64,
}

/// Indexes derived from the capabilities, so that delete, revoke and
/// freeing an object do not scan every capability. Not part of the
/// observable state.
#[derive(Clone, Debug, Default)]
struct Index {
    /// Capabilities naming each object.
    refs: BTreeMap<ObjId, u32>,
    /// Children of each capability in the derivation tree, by id.
    kids: BTreeMap<u64, BTreeSet<u64>>,
    /// The slot of each capability, by id.
    slot_of: BTreeMap<u64, u64>,
}

/// The model kernel.
#[derive(Clone, Debug, Default)]
pub struct Model {
    state: State,
    index: Index,
    next_obj: ObjId,
    next_cap: u64,
    fail: Option<(u64, KernelError)>,
    calls: u64,
}

/// Two models are equal when their observable state is: counters and
/// pending fault injection do not count.
impl PartialEq for Model {
    fn eq(&self, other: &Model) -> bool {
        self.state == other.state
    }
}

impl Eq for Model {}

/// Hashes what equality compares: the observable state.
impl core::hash::Hash for Model {
    fn hash<H: core::hash::Hasher>(&self, h: &mut H) {
        self.state.hash(h);
    }
}

impl Model {
    /// A model with `untyped_bytes` of untyped memory and nothing else.
    pub fn new(untyped_bytes: u64) -> Model {
        Model { state: State { untyped_free: untyped_bytes, ..State::default() }, next_obj: 1, ..Model::default() }
    }

    /// The observable state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Makes the `n`th fallible invocation from now (0 is the next) fail with
    /// `err`.
    pub fn fail_nth(&mut self, n: u64, err: KernelError) {
        self.fail = Some((n, err));
    }

    /// True if a planned failure has not fired yet.
    pub fn failure_pending(&self) -> bool {
        self.fail.is_some()
    }

    /// Counts an invocation that cannot fail on seL4 when given a capability
    /// the caller holds (delete, revoke, unmap, move into an empty slot,
    /// suspend): planned failures never fire on these.
    fn count(&mut self) {
        self.calls += 1;
    }

    /// Counts an invocation that can fail and fires a planned failure.
    fn enter(&mut self) -> Result<(), KernelError> {
        self.calls += 1;
        match self.fail {
            Some((0, e)) => {
                self.fail = None;
                Err(e)
            }
            Some((n, e)) => {
                self.fail = Some((n - 1, e));
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn new_object(&mut self, ty: ObjectType) -> Result<ObjId, KernelError> {
        let bytes = 1u64 << ty.size_bits();
        self.state.untyped_free = self.state.untyped_free.checked_sub(bytes).ok_or(KernelError::NotEnoughMemory)?;
        let id = self.next_obj;
        self.next_obj += 1;
        self.state.objects.insert(id, Object::new(ty));
        Ok(id)
    }

    fn new_cap(&mut self, slot: u64, obj: ObjId, parent: Option<u64>, rights: Rights) {
        let id = self.next_cap;
        self.next_cap += 1;
        self.state.caps.insert(slot, Cap { id, parent, obj, rights, mapping: None });
        *self.index.refs.entry(obj).or_default() += 1;
        self.index.slot_of.insert(id, slot);
        if let Some(p) = parent {
            self.index.kids.entry(p).or_default().insert(id);
        }
    }

    // ---- Set-up, as the system description would have done it. ----

    /// Creates the VMM's own VSpace (all tables present) in `slot`.
    pub fn setup_vspace(&mut self, slot: Slot) -> Result<ObjId, KernelError> {
        let obj = self.new_object(ObjectType::VSpace)?;
        if let Some(Object::VSpace { needs_tables, .. }) = self.state.objects.get_mut(&obj) {
            *needs_tables = false;
        }
        self.new_cap(slot.0, obj, None, Rights::READ_WRITE);
        Ok(obj)
    }

    /// Creates `pages` frames in slots from `first`, mapped read-write into
    /// the VSpace in `vspace` from `vaddr` (guest RAM mapped into the VMM).
    pub fn setup_ram(&mut self, first: Slot, pages: u64, vspace: Slot, vaddr: u64) -> Result<(), KernelError> {
        let vs = self.object_at(vspace).ok_or(KernelError::InvalidCapability)?;
        for i in 0..pages {
            let obj = self.new_object(ObjectType::Frame)?;
            let slot = first.0 + i;
            self.new_cap(slot, obj, None, Rights::READ_WRITE);
            let va = vaddr + i * vmm_abi::limits::PAGE_SIZE;
            self.install_page(slot, vs, va, Rights::READ_WRITE);
        }
        Ok(())
    }

    fn install_page(&mut self, slot: u64, vspace: ObjId, vaddr: u64, rights: Rights) {
        if let Some(c) = self.state.caps.get_mut(&slot) {
            c.mapping = Some(Mapping { vspace, vaddr, rights });
        }
        if let Some(Object::VSpace { pages, .. }) = self.state.objects.get_mut(&vspace) {
            pages.insert(vaddr, slot);
        }
    }

    // ---- Queries for tests and invariants. ----

    /// The capability in `slot`.
    pub fn cap(&self, slot: Slot) -> Option<&Cap> {
        self.state.caps.get(&slot.0)
    }

    /// The object named by the capability in `slot`.
    pub fn object_at(&self, slot: Slot) -> Option<ObjId> {
        self.cap(slot).map(|c| c.obj)
    }

    /// The object `id`.
    pub fn object(&self, id: ObjId) -> Option<&Object> {
        self.state.objects.get(&id)
    }

    /// Every mapping of frame object `obj`.
    pub fn mappings_of(&self, obj: ObjId) -> Vec<Mapping> {
        let mut v: Vec<Mapping> = self.state.caps.values().filter(|c| c.obj == obj).filter_map(|c| c.mapping).collect();
        v.sort();
        v
    }

    /// Every mapping in the VSpace object `vspace`: address to frame object
    /// and rights.
    pub fn pages_in(&self, vspace: ObjId) -> BTreeMap<u64, (ObjId, Rights)> {
        self.state
            .caps
            .values()
            .filter_map(|c| c.mapping.filter(|m| m.vspace == vspace).map(|m| (m.vaddr, (c.obj, m.rights))))
            .collect()
    }

    /// Every slot holding a capability to `obj`.
    pub fn caps_to(&self, obj: ObjId) -> Vec<Slot> {
        let mut v: Vec<Slot> = self.state.caps.iter().filter(|(_, c)| c.obj == obj).map(|(s, _)| Slot(*s)).collect();
        v.sort();
        v
    }

    /// Every occupied slot.
    pub fn slots(&self) -> Vec<Slot> {
        let mut v: Vec<Slot> = self.state.caps.keys().map(|s| Slot(*s)).collect();
        v.sort();
        v
    }

    /// Contents of the frame named in `slot`.
    pub fn read_frame(&self, slot: Slot) -> Option<u64> {
        match self.object(self.object_at(slot)?)? {
            Object::Frame { data } => Some(*data),
            _ => None,
        }
    }

    /// Writes the contents of the frame named in `slot` (a guest or the VMM
    /// storing into it).
    pub fn write_frame(&mut self, slot: Slot, value: u64) -> bool {
        let Some(obj) = self.object_at(slot) else {
            return false;
        };
        match self.state.objects.get_mut(&obj) {
            Some(Object::Frame { data }) => {
                *data = value;
                true
            }
            _ => false,
        }
    }

    /// True if the TCB in `slot` is running.
    pub fn tcb_running(&self, slot: Slot) -> bool {
        matches!(self.object_at(slot).and_then(|o| self.object(o)), Some(Object::Tcb { running: true, .. }))
    }

    /// A TCB register without counting an invocation.
    pub fn tcb_reg(&self, slot: Slot, reg: TcbReg) -> Option<u64> {
        match self.object(self.object_at(slot)?)? {
            Object::Tcb { regs, .. } => Some(regs.get(&reg).copied().unwrap_or(0)),
            _ => None,
        }
    }

    /// Interrupts injected into the vCPU in `slot`.
    pub fn injected(&self, slot: Slot) -> Vec<u16> {
        match self.object_at(slot).and_then(|o| self.object(o)) {
            Some(Object::VCpu { injected, .. }) => injected.iter().map(|(v, _)| v.irq).collect(),
            _ => Vec::new(),
        }
    }

    /// Interrupts injected into the vCPU in `slot`, each with its priority,
    /// group and list register.
    pub fn injected_virqs(&self, slot: Slot) -> Vec<(Virq, u8)> {
        match self.object_at(slot).and_then(|o| self.object(o)) {
            Some(Object::VCpu { injected, .. }) => injected.clone(),
            _ => Vec::new(),
        }
    }

    /// Virtual PPIs acknowledged on the vCPU in `slot`.
    pub fn acked(&self, slot: Slot) -> Vec<u16> {
        match self.object_at(slot).and_then(|o| self.object(o)) {
            Some(Object::VCpu { acked, .. }) => acked.clone(),
            _ => Vec::new(),
        }
    }

    /// Checks the model's own consistency: every mapping is recorded on both
    /// sides, rights never grow along the derivation tree, every capability
    /// names a live object. Returns a description of the first violation.
    pub fn check_consistency(&self) -> Result<(), std::string::String> {
        for (slot, c) in &self.state.caps {
            if !self.state.objects.contains_key(&c.obj) {
                return Err(std::format!("slot {slot} names a dead object"));
            }
            // The parent through the index, which the loop below checks.
            let parent = c.parent.and_then(|p| self.index.slot_of.get(&p)).and_then(|s| self.state.caps.get(s));
            if let Some(p) = parent {
                if !c.rights.within(p.rights) {
                    return Err(std::format!("slot {slot} has more rights than its parent"));
                }
            }
            if let Some(m) = c.mapping {
                if !m.rights.within(c.rights) {
                    return Err(std::format!("slot {slot} is mapped with more rights than it has"));
                }
                match self.state.objects.get(&m.vspace) {
                    Some(Object::VSpace { pages, .. }) if pages.get(&m.vaddr) == Some(slot) => {}
                    _ => return Err(std::format!("slot {slot}'s mapping is not in its VSpace")),
                }
            }
        }
        let mut refs: BTreeMap<ObjId, u32> = BTreeMap::new();
        for c in self.state.caps.values() {
            *refs.entry(c.obj).or_default() += 1;
            if self.index.slot_of.get(&c.id).and_then(|s| self.state.caps.get(s)).map(|x| x.id) != Some(c.id) {
                return Err(std::format!("index has the wrong slot for capability {}", c.id));
            }
            if let Some(p) = c.parent {
                if !self.index.kids.get(&p).is_some_and(|k| k.contains(&c.id)) {
                    return Err(std::format!("index misses capability {} under its parent", c.id));
                }
            }
        }
        if refs != self.index.refs {
            return Err("index counts of capabilities per object disagree".into());
        }
        for (id, o) in &self.state.objects {
            if let Object::VSpace { pages, .. } = o {
                for (va, slot) in pages {
                    let ok = self
                        .state
                        .caps
                        .get(slot)
                        .and_then(|c| c.mapping)
                        .is_some_and(|m| m.vspace == *id && m.vaddr == *va);
                    if !ok {
                        return Err(std::format!("VSpace {id} maps {va:#x} through slot {slot}, which disagrees"));
                    }
                }
            }
        }
        Ok(())
    }
}
