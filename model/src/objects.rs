//! The kernel objects and capabilities of the model.

use std::collections::BTreeMap;
use std::vec::Vec;

use vmm::arch::aarch64::regs::{TcbReg, VcpuReg};
use vmm::caps::{ObjectType, Rights};
use vmm::kernel::Virq;

/// Identifier of a kernel object (its "physical address" in the model).
pub type ObjId = u64;

/// Where a frame capability is mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mapping {
    /// The VSpace object.
    pub vspace: ObjId,
    /// The virtual (or guest-physical) address.
    pub vaddr: u64,
    /// The rights of the mapping.
    pub rights: Rights,
}

/// A capability in a slot.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Cap {
    /// Unique for the model's lifetime: the node in the derivation tree.
    pub id: u64,
    /// The capability this one was derived from.
    pub parent: Option<u64>,
    /// The object it names.
    pub obj: ObjId,
    /// Its rights (only ever shrink along the tree).
    pub rights: Rights,
    /// A frame capability's single mapping.
    pub mapping: Option<Mapping>,
}

/// A kernel object.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Object {
    /// A 4 KiB frame; `data` stands for its contents (0 when zeroed).
    Frame {
        /// Contents.
        data: u64,
    },
    /// A page table, installed in a VSpace at (level, index) or not.
    PageTable {
        /// Where it is installed.
        installed: Option<(ObjId, u8, u64)>,
    },
    /// A VSpace.
    VSpace {
        /// Mapped pages: address to the slot of the frame capability.
        pages: BTreeMap<u64, u64>,
        /// Installed tables: (level, index) to the table object.
        tables: BTreeMap<(u8, u64), ObjId>,
        /// False for a VSpace whose tables all exist (the VMM's own, set up
        /// by the system).
        needs_tables: bool,
    },
    /// A TCB.
    Tcb {
        /// Registers written so far (others read as 0).
        regs: BTreeMap<TcbReg, u64>,
        /// Resumed and not suspended.
        running: bool,
        /// Bound vCPU and VSpace objects.
        bound: Option<(ObjId, ObjId)>,
    },
    /// A vCPU.
    VCpu {
        /// Registers written so far.
        regs: BTreeMap<VcpuReg, u64>,
        /// Interrupts injected, in order, with their list registers.
        injected: Vec<(Virq, u8)>,
        /// Virtual PPIs acknowledged, in order.
        acked: Vec<u16>,
    },
}

impl Object {
    /// A fresh object of type `ty`.
    pub(crate) fn new(ty: ObjectType) -> Object {
        match ty {
            ObjectType::Frame => Object::Frame { data: 0 },
            ObjectType::PageTable => Object::PageTable { installed: None },
            ObjectType::VSpace => {
                Object::VSpace { pages: BTreeMap::new(), tables: BTreeMap::new(), needs_tables: true }
            }
            ObjectType::Tcb => Object::Tcb { regs: BTreeMap::new(), running: false, bound: None },
            ObjectType::VCpu => Object::VCpu { regs: BTreeMap::new(), injected: Vec::new(), acked: Vec::new() },
        }
    }

    /// Its type.
    pub(crate) fn ty(&self) -> ObjectType {
        match self {
            Object::Frame { .. } => ObjectType::Frame,
            Object::PageTable { .. } => ObjectType::PageTable,
            Object::VSpace { .. } => ObjectType::VSpace,
            Object::Tcb { .. } => ObjectType::Tcb,
            Object::VCpu { .. } => ObjectType::VCpu,
        }
    }
}
