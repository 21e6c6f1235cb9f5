//! The exception syndrome (ESR_EL2) of a trapped guest access, as seL4
//! reports it in a VM fault's FSR and a vCPU fault's HSR.

/// Exception classes the VMM meets.
pub mod ec {
    /// WFI or WFE.
    pub const WFX: u8 = 0x01;
    /// SMC from AArch64.
    pub const SMC64: u8 = 0x17;
    /// Instruction abort from a lower exception level (the guest).
    pub const IABT_LOWER: u8 = 0x20;
    /// Data abort from a lower exception level (the guest).
    pub const DABT_LOWER: u8 = 0x24;
}

/// An ESR_EL2 value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Esr(pub u64);

impl Esr {
    fn bit(self, n: u32) -> bool {
        self.0 >> n & 1 == 1
    }

    /// Exception class, bits 31:26.
    pub(crate) fn ec(self) -> u8 {
        (self.0 >> 26 & 0x3f) as u8
    }

    /// A trapped WFx (EC 0x01) was WFE, not WFI: ISS bit 0, TI.
    pub(crate) fn wfe(self) -> bool {
        self.bit(0)
    }

    /// Instruction length: true for a 32-bit instruction (bit 25).
    pub(crate) fn il(self) -> bool {
        self.bit(25)
    }

    /// The length of the trapped instruction in bytes.
    pub(crate) fn instruction_len(self) -> u64 {
        if self.il() {
            4
        } else {
            2
        }
    }

    /// Data abort: the syndrome below is valid (ISV, bit 24).
    pub(crate) fn isv(self) -> bool {
        self.bit(24)
    }

    /// Data abort: access size as log2 bytes (SAS, bits 23:22).
    pub(crate) fn sas(self) -> u8 {
        (self.0 >> 22 & 3) as u8
    }

    /// Data abort: the load sign-extends (SSE, bit 21).
    pub(crate) fn sse(self) -> bool {
        self.bit(21)
    }

    /// Data abort: the register transferred (SRT, bits 20:16; 31 is xzr).
    pub(crate) fn srt(self) -> u8 {
        (self.0 >> 16 & 0x1f) as u8
    }

    /// Data abort: the register is 64-bit, else 32-bit (SF, bit 15).
    pub(crate) fn sf(self) -> bool {
        self.bit(15)
    }

    /// Data abort: a write (WnR, bit 6).
    pub(crate) fn wnr(self) -> bool {
        self.bit(6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_of_a_known_syndrome() {
        // LDRSH w3, [x1] trapped at stage 2: EC 0x24, IL, ISV, SAS=1, SSE,
        // SRT=3, SF=0, read.
        let esr = Esr((0x24 << 26) | (1 << 25) | (1 << 24) | (1 << 22) | (1 << 21) | (3 << 16));
        assert_eq!(esr.ec(), ec::DABT_LOWER);
        assert!(esr.il() && esr.isv() && esr.sse() && !esr.sf() && !esr.wnr());
        assert_eq!((esr.sas(), esr.srt(), esr.instruction_len()), (1, 3, 4));
        let w = Esr((0x24 << 26) | (1 << 24) | (3 << 22) | (31 << 16) | (1 << 15) | (1 << 6));
        assert!(w.wnr() && w.sf() && !w.il());
        assert_eq!((w.sas(), w.srt(), w.instruction_len()), (3, 31, 2));
    }
}
