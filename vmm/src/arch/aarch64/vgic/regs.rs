//! Register access common to the frames: access size and alignment rules,
//! the interrupt tables every frame shares (GICD_IGROUPR to GICD_ICFGR,
//! the same layout in a GICv2 or GICv3 distributor and a GICv3
//! redistributor's SGI_base frame), and the reads and writes of each
//! register once decoded.

use super::state::Bit;
use super::{all, GicVersion, Vgic, VgicError, IRQS, SGIS, SPI_BASE};

/// GICD_IIDR and GICR_IIDR: Implementer 0x43B (the JEP106 code the GIC
/// architecture uses), ProductID 0x56, variant and revision 0. No product
/// a guest knows errata of.
pub(super) const IIDR: u32 = 0x5600_043b;

/// The priority bits implemented (IPRIORITYR's low bits are RAZ/WI).
pub(super) const PRIORITY_MASK: u8 = 0xf8;

/// Which access sizes a register takes (GIC architecture: every register
/// takes 32-bit accesses; IPRIORITYR, ITARGETSR, CPENDSGIR and SPENDSGIR
/// also bytes; 64-bit registers also 64-bit accesses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// 32-bit only.
    Word,
    /// A byte or 32 bits.
    Byte,
    /// A 64-bit register: 64 bits, or 32 bits to either half.
    Double,
    /// A reserved offset, RAZ/WI to any aligned access.
    Any,
}

/// A table of per-interrupt fields, a register covering the interrupts
/// from its first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Table {
    /// GICD_IGROUPR: a bit each.
    Group,
    /// GICD_ISENABLER: write 1 to enable.
    SetEnable,
    /// GICD_ICENABLER: write 1 to disable.
    ClearEnable,
    /// GICD_ISPENDR: write 1 to latch pending.
    SetPending,
    /// GICD_ICPENDR: write 1 to clear the latch.
    ClearPending,
    /// GICD_ISACTIVER: write 1 to activate.
    SetActive,
    /// GICD_ICACTIVER: write 1 to deactivate.
    ClearActive,
    /// GICD_IPRIORITYR: a byte each.
    Priority,
    /// GICD_ITARGETSR (GICv2): a byte each.
    Targets,
    /// GICD_ICFGR: two bits each, the upper one set for edge-triggered.
    Config,
}

/// A register, decoded from its offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Reg {
    /// GICD_CTLR.
    Ctlr,
    /// GICD_TYPER.
    Typer,
    /// An interrupt table register whose first interrupt is the `u32`.
    Table(Table, u32),
    /// GICD_SGIR (GICv2), write-only.
    Sgir,
    /// GICD_SPENDSGIR (`set`) or GICD_CPENDSGIR: a byte of source vCPUs
    /// for each of four SGIs from `first`.
    SgiPend { set: bool, first: u32 },
    /// GICD_IROUTER<n> (GICv3).
    Router(u32),
    /// GICR_TYPER (GICv3).
    RdTyper,
    /// GICR_WAKER (GICv3).
    Waker,
    /// Read-only, or reserved (0): reads the value, ignores writes.
    Const(u32),
}

/// A decoded access: the register, the offset it starts at, its sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Decoded {
    pub(super) reg: Reg,
    pub(super) base: u64,
    pub(super) kind: Kind,
}

impl Decoded {
    /// A 32-bit register at `base`.
    pub(super) fn word(reg: Reg, base: u64) -> Self {
        Decoded { reg, base, kind: Kind::Word }
    }

    /// A reserved (RAZ/WI) offset.
    pub(super) fn reserved(offset: u64) -> Self {
        Decoded { reg: Reg::Const(0), base: offset & !3, kind: Kind::Any }
    }
}

/// The interrupt table register at `offset` (0x080 to 0xCFF), if any, with
/// the first interrupt it covers and the offset of its first byte.
pub(super) fn table_at(offset: u64) -> Option<(Table, u32, u64)> {
    let (table, start, bits) = match offset {
        0x080..=0x0ff => (Table::Group, 0x080, 1),
        0x100..=0x17f => (Table::SetEnable, 0x100, 1),
        0x180..=0x1ff => (Table::ClearEnable, 0x180, 1),
        0x200..=0x27f => (Table::SetPending, 0x200, 1),
        0x280..=0x2ff => (Table::ClearPending, 0x280, 1),
        0x300..=0x37f => (Table::SetActive, 0x300, 1),
        0x380..=0x3ff => (Table::ClearActive, 0x380, 1),
        0x400..=0x7ff => (Table::Priority, 0x400, 8),
        0x800..=0xbff => (Table::Targets, 0x800, 8),
        0xc00..=0xcff => (Table::Config, 0xc00, 2),
        _ => return None,
    };
    let reg = (offset - start) / 4;
    let first = u32::try_from(reg * (32 / bits)).ok()?;
    Some((table, first, start + reg * 4))
}

/// The decoding of an interrupt table access, with `Targets` given `kind`.
pub(super) fn table_decoded(table: Table, first: u32, base: u64) -> Decoded {
    let kind = match table {
        Table::Priority | Table::Targets => Kind::Byte,
        _ => Kind::Word,
    };
    Decoded { reg: Reg::Table(table, first), base, kind }
}

/// Checks an access of `size` bytes at `offset` against the register's
/// sizes.
fn check(offset: u64, size: u8, kind: Kind) -> Result<(), VgicError> {
    if !matches!(size, 1 | 2 | 4 | 8) {
        return Err(VgicError::BadWidth);
    }
    if !offset.is_multiple_of(u64::from(size)) {
        return Err(VgicError::Unaligned);
    }
    let fits = match kind {
        Kind::Word => size == 4,
        Kind::Byte => size == 1 || size == 4,
        Kind::Double => size == 4 || size == 8,
        Kind::Any => true,
    };
    if fits {
        Ok(())
    } else {
        Err(VgicError::BadWidth)
    }
}

/// The mask of an access's bytes.
fn size_mask(size: u8) -> u64 {
    1u64.checked_shl(u32::from(size) * 8).map_or(u64::MAX, |b| b - 1)
}

/// The shift of an access's bytes within its register.
fn shift(d: &Decoded, offset: u64) -> u32 {
    u32::try_from(offset.saturating_sub(d.base) * 8).unwrap_or(64)
}

impl Vgic {
    /// A load, as `vcpu` sees the register.
    pub(super) fn read_decoded(&self, vcpu: usize, d: Decoded, offset: u64, size: u8) -> Result<u64, VgicError> {
        check(offset, size, d.kind)?;
        let value = self.read_reg(vcpu, d.reg);
        Ok(value.checked_shr(shift(&d, offset)).unwrap_or(0) & size_mask(size))
    }

    /// A store, as `vcpu` sees the register; nothing changes on an error.
    pub(super) fn write_decoded(
        &mut self,
        vcpu: usize,
        d: Decoded,
        offset: u64,
        size: u8,
        value: u64,
    ) -> Result<(), VgicError> {
        check(offset, size, d.kind)?;
        let s = shift(&d, offset);
        let mask = size_mask(size).checked_shl(s).unwrap_or(0);
        self.write_reg(vcpu, d.reg, value.checked_shl(s).unwrap_or(0) & mask, mask);
        Ok(())
    }

    fn read_reg(&self, vcpu: usize, reg: Reg) -> u64 {
        let word = match reg {
            Reg::Ctlr => self.ctlr_value(),
            Reg::Typer => self.typer(),
            Reg::Table(t, first) => self.table_read(vcpu, t, first),
            Reg::Sgir => 0,
            Reg::SgiPend { first, .. } => bytes(|i| self.irqs.sgi_sources(vcpu, first + i)),
            Reg::Router(intid) => return self.irqs.route(intid),
            Reg::RdTyper => return self.rd_typer(vcpu),
            Reg::Waker => self.waker(vcpu),
            Reg::Const(c) => c,
        };
        u64::from(word)
    }

    /// `value` and `mask` are in the register's bit positions; only the
    /// bytes in `mask` were written.
    fn write_reg(&mut self, vcpu: usize, reg: Reg, value: u64, mask: u64) {
        // The low word of a 32-bit register (a 32-bit access to the high
        // half of a 64-bit one keeps its bits above 31).
        let word = value as u32;
        let wmask = mask as u32;
        match reg {
            Reg::Ctlr => self.ctlr = word & 0b11,
            Reg::Table(t, first) => self.table_write(vcpu, t, first, word & wmask, wmask),
            Reg::Sgir => self.sgi_v2(vcpu, word),
            Reg::SgiPend { set, first } => self.sgi_pend_write(vcpu, set, first, word & wmask),
            Reg::Router(intid) => self.router_write(intid, value, mask),
            Reg::Waker => self.waker_write(vcpu, word & wmask),
            Reg::Typer | Reg::RdTyper | Reg::Const(_) => {}
        }
    }

    /// GICD_CTLR: EnableGrp0 and EnableGrp1; on GICv3 also ARE (bit 4) and
    /// DS (bit 6), both RAO/WI; RWP (bit 31) reads 0, writes take effect
    /// at once.
    fn ctlr_value(&self) -> u32 {
        match self.version {
            GicVersion::V2 => self.ctlr,
            GicVersion::V3 => self.ctlr | 1 << 4 | 1 << 6,
        }
    }

    /// GICD_TYPER: ITLinesNumber (bits 4:0) is 32 * (N + 1) interrupts;
    /// GICv2's CPUNumber (7:5) is the vCPU count minus one; GICv3's IDbits
    /// (23:19) says ten-bit INTIDs and CPUNumber is 0 (it counts the PEs
    /// usable without affinity routing, which this GIC does not have). No
    /// Security Extensions, LPIs, MBIS, Aff3 or extended SPIs.
    fn typer(&self) -> u32 {
        let lines = IRQS / 32 - 1;
        match self.version {
            GicVersion::V2 => lines | u32::from(self.vcpus.saturating_sub(1)) << 5,
            GicVersion::V3 => lines | 9 << 19,
        }
    }

    fn table_read(&self, vcpu: usize, t: Table, first: u32) -> u32 {
        if first >= IRQS {
            // The interrupts of this register are not implemented: RAZ/WI.
            return 0;
        }
        let n = first / 32;
        match t {
            Table::Group => self.irqs.word(vcpu, n, Bit::Group),
            Table::SetEnable | Table::ClearEnable => self.irqs.word(vcpu, n, Bit::Enabled),
            Table::SetPending | Table::ClearPending => self.irqs.pending_word(vcpu, n),
            Table::SetActive | Table::ClearActive => self.irqs.word(vcpu, n, Bit::Active) | self.loaded_word(vcpu, n),
            Table::Priority => bytes(|i| self.irqs.priority(vcpu, first + i)),
            Table::Targets if self.vcpus == 1 => 0,
            // GICD_ITARGETSR0 to 7 read, in each byte, the reading CPU.
            Table::Targets if first < SPI_BASE => bytes(|_| 1u8 << vcpu),
            Table::Targets => bytes(|i| self.irqs.targets(first + i)),
            Table::Config => (0..16).fold(0, |acc, i| {
                let edge = self.irqs.bit(vcpu, first + i, Bit::Edge);
                acc | u32::from(edge) << (2 * i + 1)
            }),
        }
    }

    fn table_write(&mut self, vcpu: usize, t: Table, first: u32, value: u32, mask: u32) {
        if first >= IRQS {
            return;
        }
        let n = first / 32;
        // GICv2 SGIs are made pending through GICD_SGIR and GICD_SPENDSGIR,
        // with a source; their GICD_ISPENDR0 and GICD_ICPENDR0 bits are
        // read-only.
        let pend_writable = if self.version == GicVersion::V2 && n == 0 { !0xffff } else { u32::MAX };
        let (bit, set, value) = match t {
            Table::Group => {
                let old = self.irqs.word(vcpu, n, Bit::Group);
                if let Some(w) = self.irqs.word_mut(vcpu, n, Bit::Group) {
                    *w = (old & !mask) | value;
                }
                return;
            }
            Table::SetEnable => (Bit::Enabled, true, value),
            Table::ClearEnable => (Bit::Enabled, false, value),
            Table::SetPending => (Bit::Latch, true, value & pend_writable),
            Table::ClearPending => (Bit::Latch, false, value & pend_writable),
            Table::SetActive => (Bit::Active, true, value),
            Table::ClearActive => (Bit::Active, false, value),
            Table::Priority => {
                for i in 0..4 {
                    if mask >> (8 * i) & 0xff != 0 {
                        if let Some(p) = self.irqs.priority_mut(vcpu, first + i) {
                            *p = (value >> (8 * i)) as u8 & PRIORITY_MASK;
                        }
                    }
                }
                return;
            }
            Table::Targets => {
                // GICD_ITARGETSR0-7 are read-only, all of them on a
                // uniprocessor GIC; bits of CPU interfaces that do not
                // exist are RAZ/WI.
                if first < SPI_BASE || self.vcpus == 1 {
                    return;
                }
                for i in 0..4 {
                    if mask >> (8 * i) & 0xff != 0 {
                        let exist = all(self.vcpus);
                        if let Some(t) = self.irqs.targets_mut(first + i) {
                            *t = (value >> (8 * i)) as u8 & exist;
                        }
                    }
                }
                return;
            }
            Table::Config => {
                for i in 0..16 {
                    // SGIs are always edge-triggered (GICD_ICFGR0 is
                    // read-only); the lower bit of each field is RES0.
                    if first + i >= SGIS && mask >> (2 * i + 1) & 1 == 1 {
                        self.irqs.set_bit(vcpu, first + i, Bit::Edge, value >> (2 * i + 1) & 1 == 1);
                    }
                }
                return;
            }
        };
        if let Some(w) = self.irqs.word_mut(vcpu, n, bit) {
            if set {
                *w |= value;
            } else {
                *w &= !value;
            }
        }
    }

    /// GICD_SPENDSGIR / GICD_CPENDSGIR: set or clear source bits of SGIs
    /// pending on `vcpu`, a byte per SGI (sources that do not exist are
    /// RAZ/WI).
    fn sgi_pend_write(&mut self, vcpu: usize, set: bool, first: u32, value: u32) {
        for i in 0..4 {
            let bits = (value >> (8 * i)) as u8 & all(self.vcpus);
            let old = self.irqs.sgi_sources(vcpu, first + i);
            let new = if set { old | bits } else { old & !bits };
            self.irqs.set_sgi_sources(vcpu, first + i, new);
        }
    }
}

/// A register of four byte fields, field `i` from `f(i)`.
fn bytes(f: impl Fn(u32) -> u8) -> u32 {
    (0..4).fold(0, |acc, i| acc | u32::from(f(i)) << (8 * i))
}
