//! The GICv3 distributor (GICD) and redistributors (GICR), IHI 0069
//! chapter 12, with affinity routing always enabled: GICD_IROUTER routes
//! SPIs, each vCPU's SGIs and PPIs live in its redistributor's SGI_base
//! frame, and SGIs come from ICC_SGI1R_EL1.
//!
//! vCPU `n` has affinity 0.0.0.`n` (Aff0 = `n`): its GICR_TYPER says so,
//! and GICD_IROUTER and ICC_SGI1R_EL1 name it so.

use super::regs::{table_at, table_decoded, Decoded, Kind, Reg, Table, IIDR};
use super::state::Bit;
use super::{all, GicVersion, Vgic, VgicError, DIST_SIZE_V3, REDIST_STRIDE, SPI_BASE};

/// GICD_PIDR2 and GICR_PIDR2: ArchRev 3 in bits 7:4 (Linux checks it in
/// both frames before using them), JEDEC bit and Arm's JEP106 high bits.
const PIDR2: u32 = 0x3b;

/// GICD_CIDR0 to 3 and GICR_CIDR0 to 3, the PrimeCell preamble.
const CIDR: [u32; 4] = [0x0d, 0xf0, 0x05, 0xb1];

/// GICD_IROUTER's fields: Aff3 (39:32), Interrupt_Routing_Mode (31), Aff2,
/// Aff1, Aff0 (23:0); the rest is RES0.
const ROUTER_MASK: u64 = 0xff_80ff_ffff;

/// GICD_IROUTER.Interrupt_Routing_Mode: any participating PE.
const ROUTER_ANY: u64 = 1 << 31;

/// GICR_WAKER.ProcessorSleep (bit 1) and ChildrenAsleep (bit 2).
const PROCESSOR_SLEEP: u32 = 1 << 1;
const CHILDREN_ASLEEP: u32 = 1 << 2;

/// The identification registers at 0xFFD0 to 0xFFFF of a GICD or GICR
/// frame.
fn id_reg(offset: u64) -> Option<Decoded> {
    let base = offset & !3;
    let value = match base {
        0xffe8 => PIDR2,
        0xfff0..=0xfffc => CIDR.get(((base - 0xfff0) / 4) as usize).copied().unwrap_or(0),
        // The other identification registers are IMPLEMENTATION DEFINED.
        0xffd0..=0xffec => 0,
        _ => return None,
    };
    Some(Decoded::word(Reg::Const(value), base))
}

/// The register at `offset` in the distributor frame.
pub(super) fn decode_dist(offset: u64) -> Result<Decoded, VgicError> {
    if offset >= DIST_SIZE_V3 {
        return Err(VgicError::OutOfRange);
    }
    Ok(match offset {
        0x0000..=0x0003 => Decoded::word(Reg::Ctlr, 0x0000),
        0x0004..=0x0007 => Decoded::word(Reg::Typer, 0x0004),
        0x0008..=0x000b => Decoded::word(Reg::Const(IIDR), 0x0008),
        // GICD_IROUTER<n> for n = 32 to 1019; 0x6000-0x60FF is reserved.
        0x6100..=0x7fdf => {
            let n = (offset - 0x6000) / 8;
            Decoded { reg: Reg::Router(n as u32), base: 0x6000 + n * 8, kind: Kind::Double }
        }
        0xffd0..=0xffff => id_reg(offset).unwrap_or(Decoded::reserved(offset)),
        _ => match table_at(offset) {
            // With affinity routing the distributor's registers for
            // INTIDs 0-31 are RES0 (they are in the redistributors), and
            // GICD_ITARGETSR is RES0 altogether.
            Some((t, first, base)) if first >= SPI_BASE && t != Table::Targets => table_decoded(t, first, base),
            // GICD_TYPER2, STATUSR, SETSPI/CLRSPI (no MBIS), IGRPMODR and
            // NSACR (one Security state), SGIR, C/SPENDSGIR (affinity
            // routing): reserved here.
            _ => Decoded::reserved(offset),
        },
    })
}

impl Vgic {
    /// The redistributor at `offset` in the region: its vCPU, the register
    /// and the offset within that redistributor.
    pub(super) fn decode_redist(&self, offset: u64) -> Result<(usize, Decoded, u64), VgicError> {
        if self.version != GicVersion::V3 {
            return Err(VgicError::WrongVersion);
        }
        let v = usize::try_from(offset / REDIST_STRIDE).map_err(|_| VgicError::OutOfRange)?;
        if v >= usize::from(self.vcpus) {
            return Err(VgicError::OutOfRange);
        }
        let off = offset % REDIST_STRIDE;
        let d = match off {
            // RD_base: GICR_CTLR (no LPIs: EnableLPIs, RWP, UWP and the
            // DPG bits all RAZ/WI), GICR_IIDR, GICR_TYPER, GICR_WAKER.
            0x0000..=0x0003 => Decoded::word(Reg::Const(0), 0x0000),
            0x0004..=0x0007 => Decoded::word(Reg::Const(IIDR), 0x0004),
            0x0008..=0x000f => Decoded { reg: Reg::RdTyper, base: 0x0008, kind: Kind::Double },
            0x0014..=0x0017 => Decoded::word(Reg::Waker, 0x0014),
            0xffd0..=0xffff => id_reg(off).unwrap_or(Decoded::reserved(off)),
            _ if off < 0x1_0000 => Decoded::reserved(off),
            // SGI_base: the interrupt tables for INTIDs 0-31 only.
            _ => match table_at(off - 0x1_0000) {
                Some((t, first, base)) if first < SPI_BASE && t != Table::Targets => {
                    table_decoded(t, first, base + 0x1_0000)
                }
                _ => Decoded::reserved(off),
            },
        };
        Ok((v, d, off))
    }

    /// GICR_TYPER of vCPU `v`'s redistributor: Affinity_Value (63:32) is
    /// 0.0.0.`v`, Processor_Number (23:8) is `v`, Last (bit 4) is set on
    /// the last redistributor; no LPIs, VLPIs or DirectLPI.
    pub(super) fn rd_typer(&self, v: usize) -> u64 {
        let v = v as u64;
        let last = v + 1 == u64::from(self.vcpus);
        v << 32 | v << 8 | u64::from(last) << 4
    }

    /// GICR_WAKER: ProcessorSleep as written, ChildrenAsleep following it
    /// at once (the handshake a guest polls for completes immediately).
    pub(super) fn waker(&self, v: usize) -> u32 {
        if self.asleep >> v & 1 == 1 {
            PROCESSOR_SLEEP | CHILDREN_ASLEEP
        } else {
            0
        }
    }

    /// A write to GICR_WAKER; only ProcessorSleep is writable.
    pub(super) fn waker_write(&mut self, v: usize, value: u32) {
        let bit = 1u8 << (v % 8);
        if value & PROCESSOR_SLEEP != 0 {
            self.asleep |= bit;
        } else {
            self.asleep &= !bit;
        }
    }

    /// A write to GICD_IROUTER<intid> (`value` and `mask` in the
    /// register's bit positions); unimplemented SPIs are RAZ/WI.
    pub(super) fn router_write(&mut self, intid: u32, value: u64, mask: u64) {
        if let Some(r) = self.irqs.route_mut(intid) {
            *r = ((*r & !mask) | (value & mask)) & ROUTER_MASK;
        }
    }

    /// Whether GICD_IROUTER routes SPI `intid` to vCPU `v`: any vCPU when
    /// Interrupt_Routing_Mode is set, else the one of that affinity (none
    /// if it does not exist).
    pub(super) fn routes_v3(&self, intid: u32, v: usize) -> bool {
        let route = self.irqs.route(intid);
        route & ROUTER_ANY != 0 || route & !ROUTER_ANY == v as u64
    }

    /// ICC_SGI1R_EL1 (and SGI0R, ASGI1R): INTID in bits 27:24,
    /// TargetList (15:0) naming Aff0 values RS * 16 + bit, with RS in
    /// bits 47:44 and Aff1 (23:16), Aff2 (39:32), Aff3 (55:48) naming the
    /// cluster; IRM (bit 40) targets every PE but the writer. An SGI is
    /// forwarded to a target where it is Group 1 only if `group1` (GICD_CTLR.DS
    /// is 1: SGI1R may raise either group, SGI0R and ASGI1R Group 0 only).
    pub(super) fn sgi_v3(&mut self, v: usize, value: u64, group1: bool) {
        let sgi = (value >> 24 & 0xf) as u32;
        let exist = all(self.vcpus);
        let targets = if value >> 40 & 1 == 1 {
            exist & !(1u8 << (v % 8))
        } else {
            let cluster = value & (0xff << 16 | 0xff << 32 | 0xff << 48);
            let rs = value >> 44 & 0xf;
            // vCPUs are Aff0 0 to 7 of cluster 0.0.0: range 0 only.
            if cluster != 0 || rs != 0 {
                0
            } else {
                (value & 0xff) as u8 & exist
            }
        };
        for t in 0..usize::from(self.vcpus) {
            let in_group = group1 || !self.irqs.bit(t, sgi, Bit::Group);
            if targets >> t & 1 == 1 && in_group {
                self.irqs.set_bit(t, sgi, Bit::Latch, true);
            }
        }
    }
}
