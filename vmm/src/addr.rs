//! Guest-physical addresses, a type of their own: an address in the guest
//! is never passed where a VMM address, a size or an offset belongs.

use core::fmt;
use core::ops::Add;

/// A guest-physical address (seL4's and Arm's intermediate physical
/// address: what the guest's stage 1 produces and stage 2 translates).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Gpa(pub u64);

impl Gpa {
    /// `self + bytes`, or `None` past the end of the 64-bit space.
    pub(crate) const fn checked_add(self, bytes: u64) -> Option<Gpa> {
        match self.0.checked_add(bytes) {
            Some(a) => Some(Gpa(a)),
            None => None,
        }
    }

    /// Bytes from `base` up to `self`, or `None` if `self` is below `base`.
    pub(crate) const fn offset_from(self, base: Gpa) -> Option<u64> {
        self.0.checked_sub(base.0)
    }
}

/// An address `bytes` further on. Callers add offsets inside a range they
/// have checked does not wrap, as with the `u64` it wraps.
impl Add<u64> for Gpa {
    type Output = Gpa;

    fn add(self, bytes: u64) -> Gpa {
        Gpa(self.0 + bytes)
    }
}

impl fmt::LowerHex for Gpa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}

impl fmt::Display for Gpa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}
