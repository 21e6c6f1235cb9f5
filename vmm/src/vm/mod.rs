//! A VM: its stage 2, its vCPUs, its memslots and its VM-wide state.
//!
//! Each VM owns one run of CSpace slots, reserved when it is created, laid
//! out as: the VSpace, then a TCB and a vCPU object per vCPU id, then the
//! page tables of its stage 2. Memslots own further runs (one slot per page
//! for the capability that maps it, and one per page for pins while
//! locked).
//!
//! Creating and destroying VMs (section 1 of the rules).

pub(crate) mod boot;
pub mod guest_memfd;
pub mod lock;
pub mod memslots;
mod sorted;
pub(crate) mod stage2;
pub(crate) mod vcpu;

use crate::arch::aarch64::irq::Lines;
use crate::caps::{ObjectType, Slot, SlotRange, TcbCap, VCpuCap, VSpaceCap};
use crate::devices::DeviceMap;
use crate::error::Error;
use crate::kernel::{During, Invocation, Kernel, Refused};
use crate::platform::Platform;
use crate::registry::{Caller, RegistryError};
use crate::Vmm;
use memslots::MemslotTable;
use stage2::Stage2;
pub use vcpu::{Idle, Vcpu, VcpuState};
use vmm_abi::limits::MAX_VCPUS;
use vmm_abi::{VcpuId, VmId};

const VCPU_BASE: u64 = 1;
const TABLE_BASE: u64 = 1 + 2 * MAX_VCPUS as u64;

crate::errors! {
    /// Why a vCPU or VM-wide request was refused.
    pub enum VmError {
        /// vCPU id at or above the VM's limit.
        VcpuIdOutOfRange => EINVAL, "vCPU id at or above the VM's vCPU limit",
        /// vCPU already created.
        VcpuExists => EEXIST, "vCPU already created",
        /// vCPU not created.
        NoSuchVcpu => ENOENT, "no such vCPU",
        /// vCPU already running.
        VcpuRunning => EBUSY, "vCPU already running",
        /// Unknown register number.
        BadRegister => EINVAL, "unknown register",
        /// Interrupt line out of range or bad level.
        BadIrq => EINVAL, "interrupt line out of range or level not 0 or 1",
        /// Every list register of the target vCPU holds an interrupt the
        /// guest has not taken yet.
        ListRegistersFull => EAGAIN, "every list register is in use; try again",
        /// Unknown VM-wide capability or argument.
        BadCapability => EINVAL, "unknown VM capability or non-zero argument",
    }
}

/// One VM.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Vm {
    /// The VM's own run of slots.
    pub(crate) fixed: SlotRange,
    /// Its stage-2 address space.
    pub(crate) stage2: Stage2,
    /// Its vCPUs by id.
    pub(crate) vcpus: [Vcpu; MAX_VCPUS],
    /// Its memory map.
    pub(crate) memslots: MemslotTable,
    /// [`CAP_MEM_TAGGING`] enabled.
    pub(crate) mem_tagging: bool,
    /// The level of each of its interrupt lines.
    pub(crate) lines: Lines,
    /// Emulated devices (a virtual GIC's frames among them; its model is
    /// the VMM's, beside the registry).
    pub(crate) devices: DeviceMap,
    /// Where the VM starts: the first vCPU run and the entry and x0 of its
    /// latest RUN. SYSTEM_RESET restarts it there.
    pub(crate) boot: Option<Boot>,
}

/// The VM's entry: its boot vCPU (the first run) and that vCPU's latest RUN.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Boot {
    /// The vCPU that ran first.
    pub(crate) vcpu: VcpuId,
    /// Its entry point.
    pub(crate) entry: u64,
    /// Its x0.
    pub(crate) arg: u64,
}

impl Vm {
    /// Whether the guest may use memory tagging.
    pub fn mem_tagging(&self) -> bool {
        self.mem_tagging
    }

    /// Its emulated devices.
    pub fn devices(&self) -> &DeviceMap {
        &self.devices
    }

    /// A VM in the run `fixed` (whose first slot holds its VSpace, and
    /// whose last `page_tables` slots are for its page tables).
    pub(crate) fn new(fixed: SlotRange, page_tables: u64) -> Vm {
        Vm {
            fixed,
            stage2: Stage2 {
                vspace: VSpaceCap(fixed.base),
                tables: SlotRange { base: Slot(fixed.base.0.saturating_add(TABLE_BASE)), len: page_tables },
                used: 0,
            },
            vcpus: core::array::from_fn(|i| {
                let i = i as u64;
                let slot = |n: u64| Slot(fixed.base.0.saturating_add(n));
                Vcpu::new(TcbCap(slot(VCPU_BASE + 2 * i)), VCpuCap(slot(VCPU_BASE + 2 * i + 1)))
            }),
            memslots: MemslotTable::default(),
            mem_tagging: false,
            lines: Lines::default(),
            devices: DeviceMap::default(),
            boot: None,
        }
    }

    /// The VSpace.
    /// The VM's own run of slots: its VSpace, vCPUs and page tables.
    pub fn fixed(&self) -> SlotRange {
        self.fixed
    }

    /// Its memory map.
    pub fn memslots(&self) -> &MemslotTable {
        &self.memslots
    }

    /// Its stage-2 address space.
    pub fn vspace(&self) -> VSpaceCap {
        self.stage2.vspace
    }

    /// vCPU `id`, created or not (None for ids at or above `MAX_VCPUS`).
    pub(crate) fn vcpu(&self, id: VcpuId) -> Option<&Vcpu> {
        self.vcpus.get(id.index()?)
    }

    pub(crate) fn vcpu_mut(&mut self, id: VcpuId) -> Option<&mut Vcpu> {
        self.vcpus.get_mut(id.index()?)
    }

    /// Every vCPU slot with its id, created or not.
    pub fn vcpus(&self) -> impl Iterator<Item = (VcpuId, &Vcpu)> {
        (0..).map(VcpuId).zip(self.vcpus.iter())
    }

    /// The TCB and vCPU capabilities of vCPU `id`.
    pub fn vcpu_caps(&self, id: VcpuId) -> Option<(TcbCap, VCpuCap)> {
        self.vcpu(id).map(Vcpu::caps)
    }

    /// The state of vCPU `id` (Absent for ids out of range).
    pub fn vcpu_state(&self, id: VcpuId) -> VcpuState {
        self.vcpu(id).map_or(VcpuState::Absent, Vcpu::state)
    }

    /// Sets the state of vCPU `id` (ignored for ids out of range).
    pub(crate) fn set_vcpu_state(&mut self, id: VcpuId, state: VcpuState) {
        if let Some(v) = self.vcpu_mut(id) {
            v.set_state(state);
        }
    }

    /// True if any memslot is locked.
    pub(crate) fn has_locked_slots(&self) -> bool {
        self.memslots.iter().any(|s| s.lock.is_some())
    }

    /// The level of interrupt line `irq`.
    pub fn irq_level(&self, irq: u32) -> bool {
        self.lines.level(irq)
    }
}

impl<K: Kernel, A: Platform, const VMS: usize> Vmm<K, A, VMS> {
    /// Creates a VM owned by `caller`. A client can only ever create a VM it
    /// owns; internal VMs are created by the VMM itself with
    /// `Owner::Internal`.
    pub fn create_vm(&mut self, caller: Caller) -> Result<VmId, Error> {
        self.check_caller(caller)?;
        if !self.registry.has_room() {
            return Err(RegistryError::Full.into());
        }
        let id = self.registry.next_free_id()?;
        let fixed = self.cspace.alloc(self.config.vm_slots())?;
        if let Err(e) = self.kernel.untyped_retype(ObjectType::VSpace, fixed.base).during(Invocation::UntypedRetype) {
            self.release_fixed(fixed);
            return Err(e.into());
        }
        let mut vm = Vm::new(fixed, self.config.page_tables);
        let added = match self.hooks.vm_created(id, caller, &mut vm.devices) {
            Ok(()) => self.registry.add(&mut self.hooks, id, caller, vm).map_err(|(e, _vm)| e),
            Err(e) => Err(e),
        };
        if let Err(e) = added {
            // The platform refused: a failed add hook is undone inline by
            // the registry; here only the VSpace and the slots go back.
            let _ = self.kernel.cnode_delete(fixed.base);
            self.release_fixed(fixed);
            return Err(Error::Platform(e));
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
        self.gics.remove(id);
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
        let mut first: Option<Refused> = None;
        let mut note = |r: Result<(), Refused>| {
            if let Err(e) = r {
                first.get_or_insert(e);
            }
        };
        for v in vm.vcpus.iter_mut().filter(|v| v.state == VcpuState::Running) {
            note(k.tcb_suspend(v.caps().0).during(Invocation::TcbSuspend));
            v.set_state(VcpuState::Stopped);
        }
        for slot in vm.memslots.iter() {
            note(memslots::unmap_slot(k, slot));
            if let Some(lock) = slot.lock {
                for i in 0..lock.pins.len {
                    if let Some(pin) = lock.pins.get(i) {
                        note(k.frame_unmap(crate::caps::FrameCap(pin)).during(Invocation::PageUnmap));
                    }
                }
            }
        }
        while let Some(slot) = vm.memslots.remove(0) {
            if let Some(lock) = slot.lock {
                for i in 0..lock.pins.len {
                    if let Some(pin) = lock.pins.get(i) {
                        note(k.cnode_delete(pin).during(Invocation::CNodeDelete));
                    }
                }
                self.charges.uncharge(owner, slot.pages());
                let _ = self.cspace.free(lock.pins);
            }
            if let crate::vm::memslots::Backing::Gmem { file: Some(h), .. } = slot.backing {
                if let Some(f) = self.gmem.get_mut(h) {
                    f.unbind(slot.id);
                }
            }
            let _ = self.cspace.free(slot.map_caps);
        }
        for v in vm.vcpus.iter_mut().filter(|v| v.state == VcpuState::Stopped) {
            let (tcb, vc) = v.caps();
            note(k.cnode_delete(tcb.slot()).during(Invocation::CNodeDelete));
            note(k.cnode_delete(vc.slot()).during(Invocation::CNodeDelete));
            v.set_state(VcpuState::Absent);
        }
        vm.stage2.rollback(k, 0);
        note(k.cnode_delete(vm.fixed.base).during(Invocation::CNodeDelete));
        let _ = self.cspace.free(vm.fixed);
        vm.fixed.len = 0;
        first.map_or(Ok(()), |e| Err(e.into()))
    }
}
