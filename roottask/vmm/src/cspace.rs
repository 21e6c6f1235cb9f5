//! The root task's CSpace, made larger than the kernel's root CNode.
//!
//! seL4 gives the root task one CNode of 2^17 slots ([`ROOT_BITS`]),
//! addressed by the low 17 bits of a capability pointer (its guard takes
//! the other 47). That is too few for 256 MiB of guest RAM (65536 frames
//! mapped into the root task) and a LOCK of all of it (two slots a page in
//! the core's range: the guest's mapping and the pin) beside everything
//! else. So at start the root task makes a new root, [`Extended`]: a CNode
//! of two slots whose guard takes 46 bits and whose index takes bit 17,
//!
//! - slot 0: the kernel's root CNode, with no guard: pointers below 2^17
//!   mean what they meant, so every capability the root task already
//!   holds keeps its pointer;
//! - slot 1: a CNode of two slots indexed by bit 16, each holding a new
//!   CNode of 2^16 slots ([`EXTENSION_BITS`], 2 MiB, the largest object the
//!   untyped pool makes): pointers from 2^17 to 2^18 are their slots, in
//!   order, following the kernel's root CNode's last slot,
//!
//! and makes it its CSpace root (`seL4_TCB_SetSpace`). The empty slots at
//! the end of the kernel's root CNode and the two new CNodes are then one
//! range of pointers, which the core's slots take.

use sel4::cap::{CNode, Tcb, VSpace};
use sel4::init_thread::slot;
use sel4::{AbsoluteCPtr, CNodeCapData, CapRights, ObjectBlueprint};

/// log2 of the slots of the kernel's root CNode (the kernel's
/// configuration: `ROOT_CNODE_SIZE_BITS`, 17 in the SDK's kernels).
pub const ROOT_BITS: u32 = 17;

/// log2 of the slots of each new CNode.
pub const EXTENSION_BITS: usize = 16;

/// The new root's guard: what of a pointer's 64 bits neither its index
/// (one bit) nor a CNode below it (17 bits) takes.
const GUARD_BITS: usize = 64 - 1 - ROOT_BITS as usize;

/// The first pointer past the kernel's root CNode: the first new CNode's
/// slot 0.
pub const EXTENSION_BASE: u64 = 1 << ROOT_BITS;

/// One past the last pointer of the extended CSpace.
pub const EXTENSION_END: u64 = 2 << ROOT_BITS;

/// The root task's CSpace root once extended: CNode operations on any slot
/// of either CNode go through it.
#[derive(Clone, Copy)]
pub struct Extended {
    root: CNode,
    /// Whether `root` is the new root (else the kernel's root CNode).
    extended: bool,
}

impl Extended {
    /// The CSpace root as start-up knows it before extending: the
    /// kernel's root CNode alone.
    pub fn initial() -> Extended {
        Extended { root: slot::CNODE.cap(), extended: false }
    }

    /// Slot `s`, as CNode invocations name it.
    pub fn slot(&self, s: u64) -> AbsoluteCPtr {
        self.root.absolute_cptr_from_bits_with_depth(s, sel4::WORD_SIZE)
    }

    /// The CNode that holds slot `s` and `s`'s index in it: what
    /// `seL4_Untyped_Retype` takes as its destination.
    pub fn holder(&self, s: u64) -> (AbsoluteCPtr, u64) {
        if !self.extended {
            return (self.root.absolute_cptr_for_self(), s);
        }
        if s < EXTENSION_BASE {
            return (self.root.absolute_cptr_from_bits_with_depth(0, GUARD_BITS + 1), s);
        }
        // Bits 17 and 16 choose the new root's slot 1 and one of the new
        // CNodes in it.
        let holder = self.root.absolute_cptr_from_bits_with_depth(s >> EXTENSION_BITS, GUARD_BITS + 2);
        (holder, s & ((1 << EXTENSION_BITS) - 1))
    }
}

/// Why the CSpace was not extended.
#[derive(Debug)]
pub struct ExtendError(pub &'static str, pub sel4::Error);

/// Extends the CSpace: the new CNodes and the new root are made by `make`
/// in the kernel's root CNode's slots it gives, `cap` is another slot for
/// the root's own capability with its guard. Afterwards every slot below
/// [`EXTENSION_END`] is a slot of one of the CNodes.
pub fn extend(
    mut make: impl FnMut(ObjectBlueprint) -> Result<u64, ExtendError>,
    cap: u64,
) -> Result<Extended, ExtendError> {
    let kernel_root = Extended::initial();
    let lower = make(ObjectBlueprint::CNode { size_bits: EXTENSION_BITS })?;
    let upper = make(ObjectBlueprint::CNode { size_bits: EXTENSION_BITS })?;
    let pair = make(ObjectBlueprint::CNode { size_bits: 1 })?;
    let root = make(ObjectBlueprint::CNode { size_bits: 1 })?;
    // New CNodes have no guard, as every CNode below the root needs.
    let no_guard = CNodeCapData::new(0, 0).into_word();
    let put = |cnode: u64, i: u64, what: u64, name| {
        CNode::from_bits(cnode)
            .absolute_cptr_from_bits_with_depth(i, 1)
            .mint(&kernel_root.slot(what), CapRights::all(), no_guard)
            .map_err(|e| ExtendError(name, e))
    };
    put(pair, 0, lower, "seL4_CNode_Mint (the first new CNode)")?;
    put(pair, 1, upper, "seL4_CNode_Mint (the second new CNode)")?;
    put(root, 0, slot::CNODE.cptr_bits(), "seL4_CNode_Mint (the kernel's root CNode)")?;
    put(root, 1, pair, "seL4_CNode_Mint (the new CNodes)")?;
    let guard = || CNodeCapData::new(0, GUARD_BITS);
    kernel_root
        .slot(cap)
        .mint(&kernel_root.slot(root), CapRights::all(), guard().into_word())
        .map_err(|e| ExtendError("seL4_CNode_Mint (the new root)", e))?;
    let tcb: Tcb = slot::TCB.cap();
    let vspace: VSpace = slot::VSPACE.cap();
    tcb.tcb_set_space(sel4::init_thread::slot::NULL.cptr(), CNode::from_bits(root), guard(), vspace)
        .map_err(|e| ExtendError("seL4_TCB_SetSpace", e))?;
    Ok(Extended { root: CNode::from_bits(cap), extended: true })
}
