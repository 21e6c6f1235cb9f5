//! Capability handles, rights and object sizes.
//!
//! A capability is named by the CSpace slot that holds it. Slots are typed
//! newtypes so that a frame capability cannot be passed where a TCB is
//! expected (the `sel4-microkit` style). The core allocates slots from a range
//! it is given (see `cspace`); the backend only ever sees slot numbers.
/// A CSpace slot number (a `seL4_CPtr` in a single-level CSpace).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slot(pub u64);

impl Slot {
    /// The slot `n` places after this one, if it does not wrap.
    pub fn offset(self, n: u64) -> Option<Slot> {
        self.0.checked_add(n).map(Slot)
    }
}

/// A contiguous run of CSpace slots: `[base, base + len)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SlotRange {
    /// The first slot.
    pub base: Slot,
    /// How many slots.
    pub len: u64,
}

impl SlotRange {
    /// The `i`th slot of the range, if `i` is inside it.
    pub fn get(self, i: u64) -> Option<Slot> {
        if i < self.len {
            self.base.offset(i)
        } else {
            None
        }
    }

    /// The slot one past the end.
    pub(crate) fn end(self) -> u64 {
        self.base.0.saturating_add(self.len)
    }

    /// True if `slot` lies in the range.
    pub fn contains(self, slot: Slot) -> bool {
        slot.0 >= self.base.0 && slot.0 < self.end()
    }
}

macro_rules! typed_cap {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub Slot);

        impl $name {
            /// The slot that holds this capability.
            pub const fn slot(self) -> Slot {
                self.0
            }
        }
    };
}

typed_cap!(
    /// A 4 KiB frame capability.
    FrameCap
);
typed_cap!(
    /// A stage-2 address space (the guest's VSpace).
    VSpaceCap
);
typed_cap!(
    /// A page table at any level below the VSpace root.
    PageTableCap
);
typed_cap!(
    /// A thread control block: a vCPU's execution context.
    TcbCap
);
typed_cap!(
    /// A virtual CPU object (the EL1 system register state).
    VCpuCap
);

/// Access rights of a capability or a mapping. Derivation can only shrink
/// them: `derive` is an intersection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rights {
    /// May read.
    pub read: bool,
    /// May write.
    pub write: bool,
}

impl Rights {
    /// Read only.
    pub const READ: Rights = Rights { read: true, write: false };
    /// Read and write.
    pub const READ_WRITE: Rights = Rights { read: true, write: true };

    /// The rights of a capability derived from one with `self` under `mask`.
    pub const fn derive(self, mask: Rights) -> Rights {
        Rights { read: self.read && mask.read, write: self.write && mask.write }
    }

    /// True if every right in `self` is also in `other`.
    pub const fn within(self, other: Rights) -> bool {
        (!self.read || other.read) && (!self.write || other.write)
    }
}

/// Kernel objects the VMM creates from untyped memory, with their sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectType {
    /// A 4 KiB frame.
    Frame,
    /// A page table (any level).
    PageTable,
    /// A stage-2 VSpace root (concatenated level-1 table, 40-bit IPA).
    VSpace,
    /// A thread control block.
    Tcb,
    /// A virtual CPU.
    VCpu,
}

impl ObjectType {
    /// log2 of the object's size in bytes, as seL4 on AArch64 sizes it.
    pub const fn size_bits(self) -> u32 {
        match self {
            ObjectType::Frame | ObjectType::PageTable | ObjectType::VCpu => 12,
            ObjectType::VSpace => 13,
            ObjectType::Tcb => 11,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derive_never_grows_rights() {
        let all = [
            Rights { read: false, write: false },
            Rights::READ,
            Rights::READ_WRITE,
            Rights { read: false, write: true },
        ];
        for a in all {
            for m in all {
                let d = a.derive(m);
                assert!(d.within(a) && d.within(m), "{a:?} under {m:?} gave {d:?}");
            }
        }
        assert_eq!(Rights::READ_WRITE.derive(Rights::READ), Rights::READ);
    }

    #[test]
    fn slot_range_bounds() {
        let r = SlotRange { base: Slot(10), len: 3 };
        assert_eq!(r.get(0), Some(Slot(10)));
        assert_eq!(r.get(2), Some(Slot(12)));
        assert_eq!(r.get(3), None);
        assert!(r.contains(Slot(12)) && !r.contains(Slot(13)) && !r.contains(Slot(9)));
        assert_eq!(Slot(u64::MAX).offset(1), None);
    }
}
