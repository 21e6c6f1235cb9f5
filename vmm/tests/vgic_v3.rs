//! The GICv3 model against the architecture (IHI 0069): the distributor
//! with affinity routing, GICD_IROUTER, the redistributors' RD_base and
//! SGI_base frames, GICR_WAKER, SGIs from ICC_SGI1R_EL1, and delivery.

use vmm::arch::aarch64::vgic::{
    Effects, GicVersion, Line, Pending, VcpuMask, Vgic, VgicError, DIST_SIZE_V3, REDIST_STRIDE,
};
use vmm_abi::VcpuId;

const GICD_CTLR: u64 = 0x0000;
const GICD_TYPER: u64 = 0x0004;
const GICD_IIDR: u64 = 0x0008;
const GICD_IGROUPR: u64 = 0x0080;
const GICD_ISENABLER: u64 = 0x0100;
const GICD_ISPENDR: u64 = 0x0200;
const GICD_IPRIORITYR: u64 = 0x0400;
const GICD_ITARGETSR: u64 = 0x0800;
const GICD_ICFGR: u64 = 0x0c00;
const GICD_SGIR: u64 = 0x0f00;
const GICD_IROUTER: u64 = 0x6000;
const GICD_PIDR2: u64 = 0xffe8;

const GICR_CTLR: u64 = 0x0000;
const GICR_IIDR: u64 = 0x0004;
const GICR_TYPER: u64 = 0x0008;
const GICR_WAKER: u64 = 0x0014;
const GICR_PIDR2: u64 = 0xffe8;
const SGI_BASE: u64 = 0x1_0000;
const GICR_IGROUPR0: u64 = SGI_BASE + 0x0080;
const GICR_ISENABLER0: u64 = SGI_BASE + 0x0100;
const GICR_ICENABLER0: u64 = SGI_BASE + 0x0180;
const GICR_ISPENDR0: u64 = SGI_BASE + 0x0200;
const GICR_ICPENDR0: u64 = SGI_BASE + 0x0280;
const GICR_ISACTIVER0: u64 = SGI_BASE + 0x0300;
const GICR_IPRIORITYR: u64 = SGI_BASE + 0x0400;
const GICR_ICFGR0: u64 = SGI_BASE + 0x0c00;
const GICR_ICFGR1: u64 = SGI_BASE + 0x0c04;

fn gic(vcpus: u32) -> Vgic {
    Vgic::new(GicVersion::V3, vcpus).unwrap()
}

fn rd(g: &Vgic, offset: u64) -> u32 {
    g.dist_read(VcpuId(0), offset, 4).unwrap() as u32
}

fn wr(g: &mut Vgic, offset: u64, value: u32) -> Effects {
    g.dist_write(VcpuId(0), offset, 4, u64::from(value)).unwrap()
}

/// Redistributor `vcpu`'s register at `offset`.
fn rrd(g: &Vgic, vcpu: u64, offset: u64) -> u32 {
    g.redist_read(vcpu * REDIST_STRIDE + offset, 4).unwrap() as u32
}

fn rwr(g: &mut Vgic, vcpu: u64, offset: u64, value: u32) -> Effects {
    g.redist_write(vcpu * REDIST_STRIDE + offset, 4, u64::from(value)).unwrap()
}

/// Enables Group 1 and wakes every redistributor, as a guest's GIC driver
/// does first.
fn boot(g: &mut Vgic) {
    wr(g, GICD_CTLR, 0b10);
    for v in 0..u64::from(g.vcpus()) {
        rwr(g, v, GICR_WAKER, 0);
    }
}

/// SPI `intid`: Group 1, enabled, priority `prio`, routed by `route`.
fn spi(g: &mut Vgic, intid: u32, prio: u8, route: u64) {
    let (reg, bit) = (u64::from(intid / 32) * 4, intid % 32);
    let group = rd(g, GICD_IGROUPR + reg);
    wr(g, GICD_IGROUPR + reg, group | 1 << bit);
    wr(g, GICD_ISENABLER + reg, 1 << bit);
    g.dist_write(VcpuId(0), GICD_IPRIORITYR + u64::from(intid), 1, u64::from(prio)).unwrap();
    g.dist_write(VcpuId(0), GICD_IROUTER + 8 * u64::from(intid), 8, route).unwrap();
}

fn mask(v: &[u32]) -> VcpuMask {
    VcpuMask::from_bits(v.iter().fold(0, |a, i| a | 1 << i))
}

fn take(g: &mut Vgic, vcpu: u32) -> Pending {
    let p = g.next_for(VcpuId(vcpu)).expect("something to deliver");
    g.load(VcpuId(vcpu), p).unwrap();
    p
}

/// ICC_SGI1R_EL1 with INTID `sgi` and TargetList `list` in cluster 0.0.0.
fn sgi1r(sgi: u64, list: u64) -> u64 {
    sgi << 24 | list
}

#[test]
fn distributor_reset_values() {
    let g = gic(4);
    // ARE (bit 4) and DS (bit 6) are RAO; both groups disabled.
    assert_eq!(rd(&g, GICD_CTLR), 1 << 4 | 1 << 6);
    // ITLinesNumber 2, IDbits 9 (ten-bit INTIDs), no LPIs, no Security.
    assert_eq!(rd(&g, GICD_TYPER), 2 | 9 << 19);
    assert_eq!(rd(&g, GICD_IIDR) & 0xfff, 0x43b);
    assert_eq!(rd(&g, GICD_PIDR2) >> 4 & 0xf, 3, "ArchRev says GICv3");
    assert_eq!(g.dist_read(VcpuId(0), GICD_IROUTER + 8 * 40, 8), Ok(0), "routed to vCPU 0");
    assert_eq!(g.dist_size(), DIST_SIZE_V3);
    assert_eq!(g.redist_size(), 4 * REDIST_STRIDE);
}

#[test]
fn ctlr_keeps_are_and_ds_set_and_the_group_enables_writable() {
    let mut g = gic(1);
    wr(&mut g, GICD_CTLR, 0);
    assert_eq!(rd(&g, GICD_CTLR), 0x50, "ARE and DS are RAO/WI");
    wr(&mut g, GICD_CTLR, u32::MAX);
    assert_eq!(rd(&g, GICD_CTLR), 0x53, "RWP and E1NWF read 0");
}

#[test]
fn redistributor_reset_values_name_each_vcpu_and_mark_the_last() {
    let g = gic(3);
    for v in 0..3u64 {
        let typer = g.redist_read(v * REDIST_STRIDE + GICR_TYPER, 8).unwrap();
        let last = u64::from(v == 2) << 4;
        assert_eq!(typer, v << 32 | v << 8 | last, "vCPU {v}");
        // The two halves by 32-bit accesses.
        assert_eq!(u64::from(rrd(&g, v, GICR_TYPER)), v << 8 | last);
        assert_eq!(u64::from(rrd(&g, v, GICR_TYPER + 4)), v);
        assert_eq!(rrd(&g, v, GICR_WAKER), 0b110, "ProcessorSleep and ChildrenAsleep");
        assert_eq!(rrd(&g, v, GICR_PIDR2) >> 4 & 0xf, 3);
        assert_eq!(rrd(&g, v, GICR_CTLR), 0);
        assert_eq!(rrd(&g, v, GICR_IIDR), rd(&g, GICD_IIDR));
        assert_eq!(rrd(&g, v, GICR_ISENABLER0), 0xffff, "SGIs enabled");
        assert_eq!(rrd(&g, v, GICR_ICFGR0), 0xaaaa_aaaa);
        assert_eq!(rrd(&g, v, GICR_ICFGR1), 0);
    }
}

#[test]
fn waker_handshake_completes_at_once_and_gates_delivery() {
    let mut g = gic(2);
    wr(&mut g, GICD_CTLR, 0b10);
    rwr(&mut g, 1, GICR_ISENABLER0, 1 << 27);
    rwr(&mut g, 1, GICR_IGROUPR0, 1 << 27);
    assert!(g.raise(Line::Ppi(VcpuId(1), 27)).unwrap().kick.is_empty(), "asleep");
    assert_eq!(g.next_for(VcpuId(1)), None);
    let e = rwr(&mut g, 1, GICR_WAKER, 0);
    assert_eq!(rrd(&g, 1, GICR_WAKER), 0, "ChildrenAsleep follows ProcessorSleep");
    assert_eq!(rrd(&g, 0, GICR_WAKER), 0b110, "each redistributor has its own");
    assert_eq!(e.kick, mask(&[1]));
    rwr(&mut g, 1, GICR_WAKER, u32::MAX);
    assert_eq!(rrd(&g, 1, GICR_WAKER), 0b110, "only ProcessorSleep is writable");
    assert_eq!(g.next_for(VcpuId(1)), None);
}

#[test]
fn distributor_registers_for_sgis_and_ppis_are_raz_wi_with_affinity_routing() {
    let mut g = gic(2);
    boot(&mut g);
    let before = g.clone();
    for off in [GICD_IGROUPR, GICD_ISENABLER, GICD_ISPENDR, GICD_ICFGR + 4, GICD_IPRIORITYR + 28] {
        wr(&mut g, off, u32::MAX);
        assert_eq!(rd(&g, off), 0, "{off:#x}");
    }
    // GICD_ITARGETSR, GICD_SGIR and the SGI pending registers are RES0.
    for off in [GICD_ITARGETSR, GICD_ITARGETSR + 40, GICD_SGIR, 0xf10, 0xf20] {
        wr(&mut g, off, u32::MAX);
        assert_eq!(rd(&g, off), 0, "{off:#x}");
    }
    // GICD_IROUTER<0-31> are reserved, GICD_IROUTER<96+> not implemented.
    g.dist_write(VcpuId(0), GICD_IROUTER + 8 * 5, 8, 1).unwrap();
    g.dist_write(VcpuId(0), GICD_IROUTER + 8 * 96, 8, 1).unwrap();
    assert_eq!(g.dist_read(VcpuId(0), GICD_IROUTER + 8 * 5, 8), Ok(0));
    assert_eq!(g.dist_read(VcpuId(0), GICD_IROUTER + 8 * 96, 8), Ok(0));
    assert_eq!(g, before);
    assert_eq!(rrd(&g, 0, GICR_ISENABLER0), 0xffff, "the redistributor's view is untouched");
}

#[test]
fn irouter_takes_64_bit_and_32_bit_accesses_and_keeps_its_fields() {
    let mut g = gic(2);
    let r = GICD_IROUTER + 8 * 50;
    g.dist_write(VcpuId(0), r, 8, u64::MAX).unwrap();
    assert_eq!(g.dist_read(VcpuId(0), r, 8), Ok(0xff_80ff_ffff), "RES0 bits stay 0");
    g.dist_write(VcpuId(0), r + 4, 4, 0).unwrap();
    assert_eq!(g.dist_read(VcpuId(0), r, 8), Ok(0x80ff_ffff), "the high half alone");
    g.dist_write(VcpuId(0), r, 4, 1).unwrap();
    assert_eq!(g.dist_read(VcpuId(0), r, 4), Ok(1));
    assert_eq!(g.dist_read(VcpuId(0), r + 4, 4), Ok(0));
    assert_eq!(g.dist_read(VcpuId(0), r, 1), Err(VgicError::BadWidth));
    assert_eq!(g.dist_read(VcpuId(0), r + 4, 8), Err(VgicError::Unaligned));
}

#[test]
fn irouter_routes_to_one_vcpu_by_affinity_or_to_any() {
    let mut g = gic(3);
    boot(&mut g);
    spi(&mut g, 40, 0, 2);
    assert_eq!(g.raise(Line::Spi(40)).unwrap().kick, mask(&[2]));
    assert_eq!(take(&mut g, 2).intid, 40);
    // Interrupt_Routing_Mode: any vCPU, the first to take it.
    spi(&mut g, 41, 0, 1 << 31);
    assert_eq!(g.raise(Line::Spi(41)).unwrap().kick, mask(&[0, 1, 2]));
    take(&mut g, 1);
    assert_eq!(g.next_for(VcpuId(0)), None);
    // A vCPU that does not exist, or another cluster: never delivered.
    spi(&mut g, 42, 0, 5);
    spi(&mut g, 43, 0, 1 << 8);
    g.raise(Line::Spi(42)).unwrap();
    let e = g.raise(Line::Spi(43)).unwrap();
    assert!(e.kick.is_empty());
    assert_eq!(rd(&g, GICD_ISPENDR + 4), 0b11 << 10, "pending all the same");
}

#[test]
fn redistributor_registers_are_per_vcpu() {
    let mut g = gic(2);
    rwr(&mut g, 0, GICR_ISENABLER0, 1 << 27 | 1 << 20);
    assert_eq!(rrd(&g, 0, GICR_ISENABLER0), 0xffff | 1 << 27 | 1 << 20);
    assert_eq!(rrd(&g, 1, GICR_ISENABLER0), 0xffff);
    rwr(&mut g, 1, GICR_ICENABLER0, 0xffff);
    assert_eq!(rrd(&g, 1, GICR_ISENABLER0), 0);
    assert_eq!(rrd(&g, 0, GICR_ICENABLER0), 0xffff | 1 << 27 | 1 << 20);
    // GICv3 SGIs can be made pending through GICR_ISPENDR0.
    rwr(&mut g, 1, GICR_ISPENDR0, 1 << 3 | 1 << 30);
    assert_eq!(rrd(&g, 1, GICR_ISPENDR0), 1 << 3 | 1 << 30);
    assert_eq!(rrd(&g, 0, GICR_ISPENDR0), 0);
    rwr(&mut g, 1, GICR_ICPENDR0, 1 << 3);
    assert_eq!(rrd(&g, 1, GICR_ISPENDR0), 1 << 30);
    rwr(&mut g, 0, GICR_ISACTIVER0, 1 << 17);
    assert_eq!(rrd(&g, 1, GICR_ISACTIVER0), 0);
    // Priorities by byte, five bits.
    g.redist_write(REDIST_STRIDE + GICR_IPRIORITYR + 27, 1, 0xff).unwrap();
    assert_eq!(rrd(&g, 1, GICR_IPRIORITYR + 24), 0xf800_0000);
    assert_eq!(rrd(&g, 0, GICR_IPRIORITYR + 24), 0);
    // ICFGR0 is read-only, ICFGR1 writable.
    rwr(&mut g, 0, GICR_ICFGR0, 0);
    rwr(&mut g, 0, GICR_ICFGR1, u32::MAX);
    assert_eq!(rrd(&g, 0, GICR_ICFGR0), 0xaaaa_aaaa);
    assert_eq!(rrd(&g, 0, GICR_ICFGR1), 0xaaaa_aaaa);
    assert_eq!(rrd(&g, 1, GICR_ICFGR1), 0);
}

#[test]
fn redistributor_reserved_read_only_and_refused_accesses() {
    let mut g = gic(2);
    let before = g.clone();
    // SPI registers do not exist in SGI_base; LPI registers are not here.
    for off in [SGI_BASE + 0x104, SGI_BASE + 0x420, SGI_BASE + 0x800, SGI_BASE + 0xc08, 0x0070, 0x0040] {
        rwr(&mut g, 1, off, u32::MAX);
        assert_eq!(rrd(&g, 1, off), 0, "{off:#x}");
    }
    for off in [GICR_CTLR, GICR_IIDR, GICR_TYPER, GICR_PIDR2] {
        let old = rrd(&g, 1, off);
        rwr(&mut g, 1, off, !old);
        assert_eq!(rrd(&g, 1, off), old, "{off:#x}");
    }
    assert_eq!(g.redist_read(2 * REDIST_STRIDE, 4), Err(VgicError::OutOfRange), "no third redistributor");
    assert_eq!(g.redist_write(u64::MAX - 7, 8, 0), Err(VgicError::OutOfRange));
    assert_eq!(g.redist_read(GICR_TYPER + 1, 4), Err(VgicError::Unaligned));
    assert_eq!(g.redist_read(GICR_TYPER, 2), Err(VgicError::BadWidth));
    assert_eq!(g.redist_write(GICR_WAKER, 1, 0), Err(VgicError::BadWidth));
    assert_eq!(g.redist_write(GICR_ISENABLER0, 8, 0), Err(VgicError::BadWidth));
    assert_eq!(g.dist_read(VcpuId(0), DIST_SIZE_V3, 4), Err(VgicError::OutOfRange));
    assert_eq!(g, before);
}

#[test]
fn sgis_from_icc_sgi1r_reach_the_listed_vcpus_that_exist() {
    let pend = |g: &Vgic| (0..3).map(|v| rrd(g, v, GICR_ISPENDR0)).collect::<Vec<_>>();
    let mut g = gic(3);
    // vCPUs 3 and 9 do not exist: dropped.
    g.sgi_sysreg(VcpuId(0), sgi1r(5, 0b10_0000_1010), true).unwrap();
    assert_eq!(pend(&g), [0, 1 << 5, 0]);
    // IRM: everyone but the writer.
    g.sgi_sysreg(VcpuId(1), 1 << 40 | sgi1r(6, 0), true).unwrap();
    assert_eq!(pend(&g), [1 << 6, 1 << 5, 1 << 6]);
    // Another cluster (Aff1, Aff2, Aff3) or range selector: nobody here.
    let before = g.clone();
    for far in [1 << 16, 1 << 32, 1 << 48, 1 << 44] {
        g.sgi_sysreg(VcpuId(0), far | sgi1r(7, 0b111), true).unwrap();
    }
    assert_eq!(g, before);
    assert_eq!(g.sgi_sysreg(VcpuId(3), sgi1r(1, 1), true), Err(VgicError::NoSuchVcpu));
}

#[test]
fn sgi0r_raises_group_0_sgis_only() {
    let mut g = gic(2);
    rwr(&mut g, 1, GICR_IGROUPR0, 1 << 2);
    g.sgi_sysreg(VcpuId(0), sgi1r(2, 0b10), false).unwrap();
    g.sgi_sysreg(VcpuId(0), sgi1r(4, 0b10), false).unwrap();
    assert_eq!(rrd(&g, 1, GICR_ISPENDR0), 1 << 4, "SGI 2 is Group 1");
    g.sgi_sysreg(VcpuId(0), sgi1r(2, 0b10), true).unwrap();
    assert_eq!(rrd(&g, 1, GICR_ISPENDR0), 1 << 4 | 1 << 2);
}

#[test]
fn sgis_are_delivered_through_the_list_registers() {
    let mut g = gic(2);
    boot(&mut g);
    rwr(&mut g, 1, GICR_IGROUPR0, 0xffff);
    let e = g.sgi_sysreg(VcpuId(0), sgi1r(1, 0b10), true).unwrap();
    assert_eq!(e.kick, mask(&[1]));
    let p = take(&mut g, 1);
    assert_eq!((p.intid, p.group1, p.source), (1, true, 0));
    g.sgi_sysreg(VcpuId(0), sgi1r(1, 0b10), true).unwrap();
    assert_eq!(g.next_for(VcpuId(1)), None, "in a list register already");
    assert_eq!(g.on_maintenance(VcpuId(1), p.lr).unwrap().effects.kick, mask(&[1]));
    assert_eq!(take(&mut g, 1).intid, 1);
}

#[test]
fn the_timer_ppi_overflows_and_comes_back_on_maintenance() {
    let mut g = gic(1);
    boot(&mut g);
    let v = VcpuId(0);
    rwr(&mut g, 0, GICR_IGROUPR0, u32::MAX);
    rwr(&mut g, 0, GICR_ISENABLER0, 1 << 27);
    g.redist_write(GICR_IPRIORITYR + 27, 1, 0x80).unwrap();
    for i in 0..4 {
        spi(&mut g, 32 + i, 0x10, 0);
        g.raise(Line::Spi(32 + i)).unwrap();
        take(&mut g, 0);
    }
    assert!(g.raise(Line::Ppi(v, 27)).unwrap().kick.is_empty(), "list registers full");
    assert_eq!(rrd(&g, 0, GICR_ISPENDR0), 1 << 27);
    let eoi = g.on_maintenance(v, 3).unwrap();
    assert_eq!((eoi.intid, eoi.effects.kick), (Some(35), mask(&[0])));
    let p = take(&mut g, 0);
    assert_eq!((p.intid, p.priority, p.lr), (27, 0x80, 3));
    assert_eq!(g.on_maintenance(v, 3).unwrap().intid, Some(27));
}
