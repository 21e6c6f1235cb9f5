//! A trapped data access, from its syndrome: which register, how wide, which
//! way, and what the register holds after a load.
//!
//! A load writes the register architecturally: zero-extended to the
//! register's width, or sign-extended when the syndrome says SSE, and a
//! 32-bit (W) register clears bits 63:32. (The field's reference VMM keeps
//! the register's upper bits on a narrow load; that is not what the
//! hardware does.) Register 31 is xzr: loads into it are discarded, stores
//! from it store 0.

use super::esr::Esr;
use crate::addr::Gpa;

/// A decoded MMIO access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    /// Guest-physical address.
    pub gpa: Gpa,
    /// Bytes: 1, 2, 4 or 8.
    pub size: u8,
    /// A store.
    pub write: bool,
    /// The general register, `None` for xzr.
    pub reg: Option<u8>,
    /// A load sign-extends.
    pub sign_extend: bool,
    /// The register is 64 bits wide (X), else 32 (W).
    pub wide: bool,
}

crate::errors! {
    /// Why an access cannot be emulated.
    pub enum MmioError {
        /// No valid instruction syndrome (ISV clear): the access cannot be
        /// emulated without decoding the instruction.
        NoSyndrome => EFAULT, "no valid instruction syndrome",
        /// A combination of syndrome bits no instruction produces.
        BadSyndrome => EFAULT, "inconsistent instruction syndrome",
    }
}

impl Access {
    /// Decodes the access a data abort at `gpa` with syndrome `esr` made.
    pub fn decode(gpa: Gpa, esr: Esr) -> Result<Access, MmioError> {
        if !esr.isv() {
            return Err(MmioError::NoSyndrome);
        }
        let size = 1u8 << esr.sas();
        let (write, sse, wide) = (esr.wnr(), esr.sse(), esr.sf());
        // A store never sign-extends; an 8-byte access needs an X register
        // and cannot extend; a sign-extending load is narrower than its
        // register.
        let inconsistent = (write && sse) || (size == 8 && (!wide || sse)) || (sse && !wide && size == 4);
        if inconsistent {
            return Err(MmioError::BadSyndrome);
        }
        let reg = Some(esr.srt()).filter(|r| *r != 31);
        Ok(Access { gpa, size, write, reg, sign_extend: sse, wide })
    }

    /// The mask of the accessed bytes.
    pub(crate) fn mask(&self) -> u64 {
        match self.size {
            8 => u64::MAX,
            n => (1u64 << (u32::from(n) * 8)) - 1,
        }
    }

    /// The value a store writes, from the register's contents.
    pub fn store_value(&self, reg_value: u64) -> u64 {
        reg_value & self.mask()
    }

    /// The register's new contents after a load of `raw` from the device.
    pub fn load_result(&self, raw: u64) -> u64 {
        let bits = u32::from(self.size) * 8;
        let mut v = raw & self.mask();
        if self.sign_extend && bits < 64 {
            let shift = 64 - bits;
            v = (((v << shift) as i64) >> shift) as u64;
        }
        if !self.wide {
            v &= 0xffff_ffff;
        }
        // A bug planted for the proofs to find: a 32-bit load into W loses
        // its top byte.
        #[cfg(planted = "mmio_width")]
        if !self.wide && bits == 32 {
            v &= 0x00ff_ffff;
        }
        v
    }
}

/// Proofs over every input (`cargo kani -p vmm`).
#[cfg(kani)]
mod proofs {
    use super::*;

    /// Any syndrome decodes without a panic, and a decoded access is one an
    /// instruction can make: 1, 2, 4 or 8 bytes; no sign-extending store;
    /// an 8-byte access into an X register, unextended.
    #[kani::proof]
    fn decoding_any_syndrome_gives_a_possible_access() {
        let (gpa, esr): (u64, u64) = (kani::any(), kani::any());
        if let Ok(a) = Access::decode(Gpa(gpa), Esr(esr)) {
            assert!(matches!(a.size, 1 | 2 | 4 | 8));
            assert!(!(a.write && a.sign_extend));
            assert!(a.size != 8 || (a.wide && !a.sign_extend));
            assert!(a.gpa == Gpa(gpa));
        }
    }

    /// A load gives the register exactly the accessed bytes, zero-extended,
    /// or sign-extended from the access's top bit when the syndrome says
    /// so, and never more than 32 bits for a W register; a store takes
    /// exactly the accessed bytes of the register.
    #[kani::proof]
    fn loads_extend_and_stores_truncate_as_the_access_says() {
        let (esr, raw, reg): (u64, u64, u64) = (kani::any(), kani::any(), kani::any());
        let Ok(a) = Access::decode(Gpa(0), Esr(esr)) else { return };
        let bits = u32::from(a.size) * 8;
        let mask = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
        assert!(a.store_value(reg) == reg & mask);
        let v = a.load_result(raw);
        let width_mask = if a.wide { u64::MAX } else { 0xffff_ffff };
        assert!(v & mask == raw & mask);
        let top = bits < 64 && raw >> (bits - 1) & 1 == 1;
        let fill = if a.sign_extend && top { !mask } else { 0 };
        assert!(v == ((raw & mask) | fill) & width_mask);
    }
}
