//! The GICv2 distributor (GICD), IHI 0048B chapter 4: its register map and
//! GICD_SGIR.

use super::regs::{table_at, table_decoded, Decoded, Kind, Reg, IIDR};
use super::{Vgic, VgicError, DIST_SIZE_V2};

/// GICD_PIDR2 (ICPIDR2): ArchRev 2 in bits 7:4, JEDEC-assigned JEP106 ID
/// bit 3, and the JEP106 identity code's high bits of Arm.
const PIDR2: u32 = 0x2b;

/// The component identification registers GICD_CIDR0 to 3 (0xFF0 on),
/// the PrimeCell preamble.
const CIDR: [u32; 4] = [0x0d, 0xf0, 0x05, 0xb1];

/// The register at `offset` in the distributor frame.
pub(super) fn decode(offset: u64) -> Result<Decoded, VgicError> {
    if offset >= DIST_SIZE_V2 {
        return Err(VgicError::OutOfRange);
    }
    let base = offset & !3;
    Ok(match offset {
        0x000..=0x003 => Decoded::word(Reg::Ctlr, 0x000),
        0x004..=0x007 => Decoded::word(Reg::Typer, 0x004),
        0x008..=0x00b => Decoded::word(Reg::Const(IIDR), 0x008),
        0xf00..=0xf03 => Decoded::word(Reg::Sgir, 0xf00),
        0xf10..=0xf2f => {
            // GICD_CPENDSGIR0-3, then GICD_SPENDSGIR0-3: byte-accessible.
            let set = offset >= 0xf20;
            let first = ((base - 0xf10) % 0x10) as u32;
            Decoded { reg: Reg::SgiPend { set, first }, base, kind: Kind::Byte }
        }
        0xfe8..=0xfeb => Decoded::word(Reg::Const(PIDR2), base),
        0xff0..=0xfff => {
            let c = CIDR.get(((base - 0xff0) / 4) as usize).copied().unwrap_or(0);
            Decoded::word(Reg::Const(c), base)
        }
        // The other identification registers are IMPLEMENTATION DEFINED:
        // 0 here.
        0xfd0..=0xfef => Decoded::word(Reg::Const(0), base),
        _ => match table_at(offset) {
            Some((t, first, base)) => table_decoded(t, first, base),
            None => Decoded::reserved(offset),
        },
    })
}

impl Vgic {
    /// GICD_SGIR: SGIINTID in bits 3:0, CPUTargetList in 23:16,
    /// TargetListFilter in 25:24 (0: the list; 1: every CPU but the
    /// writer; 2: the writer only; 3: reserved, nothing). The SGI becomes
    /// pending on each target from the writer; targets that do not exist
    /// are dropped.
    pub(super) fn sgi_v2(&mut self, vcpu: usize, value: u32) {
        let sgi = value & 0xf;
        let me = 1u8 << (vcpu % 8);
        let targets = match value >> 24 & 0b11 {
            0 => (value >> 16) as u8,
            1 => !me,
            2 => me,
            _ => 0,
        } & super::all(self.vcpus);
        for t in 0..usize::from(self.vcpus) {
            if targets >> t & 1 == 1 {
                let sources = self.irqs.sgi_sources(t, sgi) | me;
                self.irqs.set_sgi_sources(t, sgi, sources);
            }
        }
    }
}
