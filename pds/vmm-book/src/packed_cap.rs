//! A capability as the table stores it: 12 bytes where [`Cap`] takes 24,
//! so the VMM PD's table of every core slot costs half the memory.

use vmm::caps::Rights;

use crate::cap_table::{Cap, Object, Parent};
use crate::static_map::Frame;

/// What kind of object an entry names; the rest of the name is its `id`.
/// An enum, so that `Option<Packed>` needs no extra byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Kind {
    VSpace,
    Tcb,
    VCpu,
    RamFrame,
    PrivateFrame,
    PageTable,
}

/// `mapped` of an unmapped capability. Never a page: guest-physical
/// addresses are below 2^40, so pages are below 2^28.
const UNMAPPED: u32 = u32::MAX;
/// `parent` of an original.
const PARENT_ROOT: u16 = u16::MAX;
/// `parent` of a copy of a RAM original.
const PARENT_RAM: u16 = u16::MAX - 1;

/// A packed [`Cap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Packed {
    id: u32,
    mapped: u32,
    parent: u16,
    kind: Kind,
    rights: u8,
}

const _: () = assert!(core::mem::size_of::<Option<Packed>>() == 12);

impl Packed {
    /// `cap` packed; `None` if a field is out of the packed range (a page
    /// at or above 2^32 - 1, a parent index at or above 2^16 - 2), which no
    /// capability of the table can have.
    pub(crate) fn pack(cap: Cap) -> Option<Packed> {
        let (kind, id) = match cap.object {
            Object::VSpace => (Kind::VSpace, 0),
            Object::Tcb(n) => (Kind::Tcb, u32::from(n)),
            Object::VCpu(n) => (Kind::VCpu, u32::from(n)),
            Object::Frame(Frame::Ram(n)) => (Kind::RamFrame, n),
            Object::Frame(Frame::Private(n)) => (Kind::PrivateFrame, n),
            Object::PageTable => (Kind::PageTable, 0),
        };
        let mapped = match cap.mapped {
            None => UNMAPPED,
            Some(UNMAPPED) => return None,
            Some(page) => page,
        };
        let parent = match cap.parent {
            Parent::Root => PARENT_ROOT,
            Parent::RamOriginal => PARENT_RAM,
            Parent::Index(i) if i < PARENT_RAM => i,
            Parent::Index(_) => return None,
        };
        let rights = u8::from(cap.rights.read) | u8::from(cap.rights.write) << 1;
        Some(Packed { id, mapped, parent, kind, rights })
    }

    /// The capability.
    pub(crate) fn unpack(self) -> Cap {
        let object = match self.kind {
            Kind::VSpace => Object::VSpace,
            // Packed from a u16.
            Kind::Tcb => Object::Tcb(self.id as u16),
            Kind::VCpu => Object::VCpu(self.id as u16),
            Kind::RamFrame => Object::Frame(Frame::Ram(self.id)),
            Kind::PrivateFrame => Object::Frame(Frame::Private(self.id)),
            Kind::PageTable => Object::PageTable,
        };
        Cap {
            object,
            rights: Rights { read: self.rights & 1 != 0, write: self.rights & 2 != 0 },
            mapped: (self.mapped != UNMAPPED).then_some(self.mapped),
            parent: self.parent(),
        }
    }

    /// Its parent.
    pub(crate) fn parent(self) -> Parent {
        match self.parent {
            PARENT_ROOT => Parent::Root,
            PARENT_RAM => Parent::RamOriginal,
            i => Parent::Index(i),
        }
    }

    /// Gives it parent `to`, packed as [`Packed::pack`] would.
    pub(crate) fn set_parent(&mut self, to: Parent) -> bool {
        match Packed::pack(Cap { parent: to, ..self.unpack() }) {
            Some(p) => {
                *self = p;
                true
            }
            None => false,
        }
    }

    /// Records it mapped at `page`, or unmapped.
    pub(crate) fn set_mapped(&mut self, page: Option<u32>) -> bool {
        match page {
            Some(UNMAPPED) => false,
            Some(p) => {
                self.mapped = p;
                true
            }
            None => {
                self.mapped = UNMAPPED;
                true
            }
        }
    }

    /// True for a frame or page table (what a VSpace maps).
    pub(crate) fn is_mappable(self) -> bool {
        matches!(self.kind, Kind::RamFrame | Kind::PrivateFrame | Kind::PageTable)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_capability_the_table_can_hold_round_trips() {
        let objects = [
            Object::VSpace,
            Object::Tcb(63),
            Object::VCpu(0),
            Object::Frame(Frame::Ram(u32::MAX)),
            Object::Frame(Frame::Private(7)),
            Object::PageTable,
        ];
        let rights = [Rights::READ, Rights::READ_WRITE, Rights { read: false, write: false }];
        let parents = [Parent::Root, Parent::RamOriginal, Parent::Index(0), Parent::Index(PARENT_RAM - 1)];
        for object in objects {
            for rights in rights {
                for mapped in [None, Some(0), Some(UNMAPPED - 1)] {
                    for parent in parents {
                        let cap = Cap { object, rights, mapped, parent };
                        assert_eq!(Packed::pack(cap).map(Packed::unpack), Some(cap));
                    }
                }
            }
        }
    }

    #[test]
    fn what_does_not_fit_is_refused_not_changed() {
        let cap = Cap::original(Object::PageTable);
        assert_eq!(Packed::pack(Cap { mapped: Some(UNMAPPED), ..cap }), None);
        assert_eq!(Packed::pack(Cap { parent: Parent::Index(PARENT_RAM), ..cap }), None);
        let mut p = Packed::pack(cap).unwrap();
        assert!(!p.set_mapped(Some(UNMAPPED)));
        assert!(!p.set_parent(Parent::Index(PARENT_ROOT)));
        assert_eq!(p.unpack(), cap);
    }
}
