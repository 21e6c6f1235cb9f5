//! A VM: its stage 2, its vCPUs, its memslots and its VM-wide state.
//!
//! Each VM owns one run of CSpace slots, reserved when it is created, laid
//! out as: the VSpace, then a TCB and a vCPU object per vCPU id, then the
//! page tables of its stage 2. Memslots own further runs (one slot per page
//! for the capability that maps it, and one per page for pins while
//! locked).

use crate::caps::{Slot, SlotRange, TcbCap, VCpuCap, VSpaceCap};
use crate::config::{MAX_IRQ, MAX_PAGE_TABLES, MAX_VCPUS};
use crate::devices::DeviceMap;
use crate::memslot::MemslotTable;
use crate::stage2::Stage2;

/// Slots in a VM's own run.
pub const VM_FIXED_SLOTS: u64 = 1 + 2 * MAX_VCPUS as u64 + MAX_PAGE_TABLES;
const VCPU_BASE: u64 = 1;
const TABLE_BASE: u64 = 1 + 2 * MAX_VCPUS as u64;

/// List registers of the virtual GIC interface the VMM fills (GICv2 and the
/// GICv3 of the boards here have at least four).
pub const LIST_REGISTERS: u8 = 4;

/// The VM-wide capability that changes how memory must be prepared (the
/// memory tagging of seed 004): cannot be enabled while a slot is locked.
pub const CAP_MEM_TAGGING: u32 = 1;

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

/// Where a vCPU is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VcpuState {
    /// Not created.
    Absent,
    /// Created, not running.
    Stopped,
    /// Resumed.
    Running,
}

/// One VM.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Vm {
    /// The VM's own run of slots.
    pub fixed: SlotRange,
    /// Its stage-2 address space.
    pub stage2: Stage2,
    /// Its vCPUs by id.
    pub vcpus: [VcpuState; MAX_VCPUS],
    /// Its memory map.
    pub memslots: MemslotTable,
    /// [`CAP_MEM_TAGGING`] enabled.
    pub mem_tagging: bool,
    /// Level of each virtual interrupt line, a bit per line.
    pub irq_levels: [u64; (MAX_IRQ as usize).div_ceil(64)],
    /// Emulated devices.
    pub devices: DeviceMap,
    /// Where the VM starts: the first vCPU run and the entry and x0 of its
    /// latest RUN. SYSTEM_RESET restarts it there.
    pub boot: Option<Boot>,
    /// Virtual PPIs (bit `ppi - 16`) delivered to each vCPU and not yet
    /// acknowledged.
    pub ppis_pending: [u16; MAX_VCPUS],
    /// Virtual PPIs that arrived while every list register was full; they
    /// are injected when one frees.
    pub ppis_waiting: [u16; MAX_VCPUS],
    /// List registers in use, a bit each, per vCPU.
    pub list_regs: [u8; MAX_VCPUS],
}

/// The VM's entry: its boot vCPU (the first run) and that vCPU's latest RUN.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Boot {
    /// The vCPU that ran first.
    pub vcpu: u32,
    /// Its entry point.
    pub entry: u64,
    /// Its x0.
    pub arg: u64,
}

impl Vm {
    /// A VM in the run `fixed` (whose first slot holds its VSpace).
    pub fn new(fixed: SlotRange) -> Vm {
        Vm {
            fixed,
            stage2: Stage2 {
                vspace: VSpaceCap(fixed.base),
                tables: SlotRange { base: Slot(fixed.base.0.saturating_add(TABLE_BASE)), len: MAX_PAGE_TABLES },
                used: 0,
            },
            vcpus: [VcpuState::Absent; MAX_VCPUS],
            memslots: MemslotTable::default(),
            mem_tagging: false,
            irq_levels: [0; (MAX_IRQ as usize).div_ceil(64)],
            devices: DeviceMap::default(),
            boot: None,
            ppis_pending: [0; MAX_VCPUS],
            ppis_waiting: [0; MAX_VCPUS],
            list_regs: [0; MAX_VCPUS],
        }
    }

    /// The VSpace.
    pub fn vspace(&self) -> VSpaceCap {
        self.stage2.vspace
    }

    /// The TCB and vCPU slots of vCPU `id`.
    pub fn vcpu_caps(&self, id: u32) -> Option<(TcbCap, VCpuCap)> {
        let i = u64::from(id);
        let tcb = self.fixed.get(VCPU_BASE + 2 * i)?;
        let vcpu = self.fixed.get(VCPU_BASE + 2 * i + 1)?;
        Some((TcbCap(tcb), VCpuCap(vcpu)))
    }

    /// The state of vCPU `id` (Absent for ids out of range).
    pub fn vcpu_state(&self, id: u32) -> VcpuState {
        usize::try_from(id).ok().and_then(|i| self.vcpus.get(i)).copied().unwrap_or(VcpuState::Absent)
    }

    /// Sets the state of vCPU `id` (ignored for ids out of range).
    pub fn set_vcpu_state(&mut self, id: u32, state: VcpuState) {
        if let Some(s) = usize::try_from(id).ok().and_then(|i| self.vcpus.get_mut(i)) {
            *s = state;
        }
    }

    /// Takes the lowest free list register of vCPU `vcpu`.
    pub fn take_list_register(&mut self, vcpu: u32) -> Option<u8> {
        let used = self.list_regs.get_mut(vcpu as usize)?;
        let free = (0..LIST_REGISTERS).find(|i| *used >> i & 1 == 0)?;
        *used |= 1 << free;
        Some(free)
    }

    /// Gives back list register `index` of vCPU `vcpu` (all of them when
    /// the kernel could not say which).
    pub fn free_list_register(&mut self, vcpu: u32, index: Option<u8>) {
        if let Some(used) = self.list_regs.get_mut(vcpu as usize) {
            match index {
                Some(i) if i < LIST_REGISTERS => *used &= !(1 << i),
                Some(_) => {}
                None => *used = 0,
            }
        }
    }

    /// True if any memslot is locked.
    pub fn has_locked_slots(&self) -> bool {
        self.memslots.iter().any(|s| s.lock.is_some())
    }

    /// The level of line `irq`.
    pub fn irq_level(&self, irq: u32) -> bool {
        self.irq_levels.get((irq / 64) as usize).is_some_and(|w| w >> (irq % 64) & 1 == 1)
    }

    /// Sets the level of line `irq`.
    pub fn set_irq_level(&mut self, irq: u32, level: bool) {
        if let Some(w) = self.irq_levels.get_mut((irq / 64) as usize) {
            let bit = 1u64 << (irq % 64);
            if level {
                *w |= bit;
            } else {
                *w &= !bit;
            }
        }
    }
}
