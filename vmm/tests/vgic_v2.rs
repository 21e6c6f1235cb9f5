//! The GICv2 model against the architecture (IHI 0048B): reset values,
//! RAZ/WI and read-only registers, byte and word accesses, banking, the
//! set/clear pairs, GICD_SGIR, refused accesses, and delivery through the
//! list registers.

use vmm::arch::aarch64::vgic::{
    Effects, GicVersion, Line, Pending, VcpuMask, Vgic, VgicError, IRQS, LIST_REGISTERS, SPI_BASE,
};
use vmm_abi::VcpuId;

const GICD_CTLR: u64 = 0x000;
const GICD_TYPER: u64 = 0x004;
const GICD_IIDR: u64 = 0x008;
const GICD_IGROUPR: u64 = 0x080;
const GICD_ISENABLER: u64 = 0x100;
const GICD_ICENABLER: u64 = 0x180;
const GICD_ISPENDR: u64 = 0x200;
const GICD_ICPENDR: u64 = 0x280;
const GICD_ISACTIVER: u64 = 0x300;
const GICD_ICACTIVER: u64 = 0x380;
const GICD_IPRIORITYR: u64 = 0x400;
const GICD_ITARGETSR: u64 = 0x800;
const GICD_ICFGR: u64 = 0xc00;
const GICD_SGIR: u64 = 0xf00;
const GICD_CPENDSGIR: u64 = 0xf10;
const GICD_SPENDSGIR: u64 = 0xf20;
const GICD_PIDR2: u64 = 0xfe8;

fn gic(vcpus: u32) -> Vgic {
    Vgic::new(GicVersion::V2, vcpus).unwrap()
}

fn rd(g: &Vgic, vcpu: u32, offset: u64) -> u32 {
    g.dist_read(VcpuId(vcpu), offset, 4).unwrap() as u32
}

fn wr(g: &mut Vgic, vcpu: u32, offset: u64, value: u32) -> Effects {
    g.dist_write(VcpuId(vcpu), offset, 4, u64::from(value)).unwrap()
}

/// Enables the distributor (Group 0) and `intid`, with priority `prio`.
fn enable(g: &mut Vgic, vcpu: u32, intid: u32, prio: u8) {
    wr(g, vcpu, GICD_CTLR, 1);
    let (reg, bit) = (u64::from(intid / 32) * 4, intid % 32);
    wr(g, vcpu, GICD_ISENABLER + reg, 1 << bit);
    g.dist_write(VcpuId(vcpu), GICD_IPRIORITYR + u64::from(intid), 1, u64::from(prio)).unwrap();
}

fn mask(v: &[u32]) -> VcpuMask {
    VcpuMask::from_bits(v.iter().fold(0, |a, i| a | 1 << i))
}

/// Loads what `next_for` offers and returns it.
fn take(g: &mut Vgic, vcpu: u32) -> Pending {
    let p = g.next_for(VcpuId(vcpu)).expect("something to deliver");
    g.load(VcpuId(vcpu), p).unwrap();
    p
}

#[test]
fn reset_values_follow_the_architecture() {
    let g = gic(4);
    assert_eq!(rd(&g, 0, GICD_CTLR), 0);
    // ITLinesNumber 2 (96 interrupts), CPUNumber 3, no Security Extensions.
    assert_eq!(rd(&g, 0, GICD_TYPER), 2 | 3 << 5);
    assert_eq!(IRQS, 96);
    assert_eq!(rd(&g, 0, GICD_IIDR) & 0xfff, 0x43b);
    assert_eq!(rd(&g, 0, GICD_PIDR2) >> 4 & 0xf, 2, "ArchRev says GICv2");
    let cidr: Vec<u32> = (0..4).map(|i| rd(&g, 0, 0xff0 + 4 * i)).collect();
    assert_eq!(cidr, [0x0d, 0xf0, 0x05, 0xb1]);
    // SGIs enabled, PPIs and SPIs disabled.
    assert_eq!(rd(&g, 0, GICD_ISENABLER), 0xffff);
    assert_eq!(rd(&g, 0, GICD_ISENABLER + 4), 0);
    assert_eq!(rd(&g, 0, GICD_ICFGR), 0xaaaa_aaaa, "SGIs are edge-triggered");
    assert_eq!(rd(&g, 0, GICD_ICFGR + 4), 0);
    assert_eq!(rd(&g, 0, GICD_IPRIORITYR + 0x20), 0);
    assert_eq!(rd(&g, 0, GICD_ITARGETSR + 0x20), 0);
    assert_eq!(rd(&g, 0, GICD_IGROUPR), 0);
    assert_eq!(rd(&g, 0, GICD_ISPENDR), 0);
    assert_eq!(rd(&g, 0, GICD_ISACTIVER), 0);
    // GICD_ITARGETSR0-7 read the reading CPU in every byte.
    assert_eq!(rd(&g, 2, GICD_ITARGETSR), 0x0404_0404);
    assert_eq!(rd(&g, 3, GICD_ITARGETSR + 0x1c), 0x0808_0808);
    assert_eq!(g.dist_read(VcpuId(1), GICD_ITARGETSR + 0x1f, 1), Ok(0x02));
}

#[test]
fn vcpu_counts_outside_one_to_max_are_refused() {
    assert_eq!(Vgic::new(GicVersion::V2, 0), Err(VgicError::NoSuchVcpu));
    assert_eq!(Vgic::new(GicVersion::V2, 9), Err(VgicError::NoSuchVcpu));
    assert_eq!(Vgic::new(GicVersion::V3, u32::MAX), Err(VgicError::NoSuchVcpu));
    assert_eq!(gic(8).dist_read(VcpuId(0), GICD_TYPER, 4), Ok(2 | 7 << 5));
}

#[test]
fn ctlr_holds_the_two_group_enables_only() {
    let mut g = gic(1);
    wr(&mut g, 0, GICD_CTLR, u32::MAX);
    assert_eq!(rd(&g, 0, GICD_CTLR), 0b11);
    wr(&mut g, 0, GICD_CTLR, 0b10);
    assert_eq!(rd(&g, 0, GICD_CTLR), 0b10);
}

#[test]
fn reserved_offsets_and_unimplemented_interrupts_are_raz_wi() {
    let mut g = gic(2);
    let before = g.clone();
    // Reserved, NSACR (no Security Extensions), implementation defined.
    for off in [0x00c, 0x040, 0xd00, 0xe00, 0xefc, 0xf04, 0xf30, 0xfc0] {
        assert_eq!(wr(&mut g, 0, off, u32::MAX), Effects::default(), "{off:#x}");
        assert_eq!(rd(&g, 0, off), 0, "{off:#x}");
    }
    // Interrupts 96 and up are not implemented: their bits are RAZ/WI.
    for off in [GICD_ISENABLER + 12, GICD_ISPENDR + 12, GICD_IGROUPR + 0x7c, GICD_ICFGR + 0x18] {
        wr(&mut g, 0, off, u32::MAX);
        assert_eq!(rd(&g, 0, off), 0, "{off:#x}");
    }
    wr(&mut g, 0, GICD_IPRIORITYR + 96, u32::MAX);
    g.dist_write(VcpuId(0), GICD_ITARGETSR + 100, 1, 0xff).unwrap();
    assert_eq!(rd(&g, 0, GICD_IPRIORITYR + 96), 0);
    assert_eq!(rd(&g, 0, GICD_ITARGETSR + 100), 0);
    assert_eq!(g, before, "nothing changed");
}

#[test]
fn read_only_registers_ignore_writes() {
    let mut g = gic(2);
    let before = g.clone();
    for off in [GICD_TYPER, GICD_IIDR, GICD_PIDR2, 0xff0, GICD_ICFGR] {
        let old = rd(&g, 0, off);
        wr(&mut g, 0, off, !old);
        assert_eq!(rd(&g, 0, off), old, "{off:#x}");
    }
    // GICD_ITARGETSR0-7 are read-only.
    wr(&mut g, 1, GICD_ITARGETSR + 0x1c, 0x0101_0101);
    g.dist_write(VcpuId(1), GICD_ITARGETSR + 4, 1, 0x01).unwrap();
    assert_eq!(rd(&g, 1, GICD_ITARGETSR + 0x1c), 0x0202_0202);
    assert_eq!(rd(&g, 1, GICD_ITARGETSR + 4), 0x0202_0202);
    // GICD_SGIR is write-only.
    assert_eq!(rd(&g, 0, GICD_SGIR), 0);
    assert_eq!(g, before);
}

#[test]
fn priority_registers_take_bytes_and_words_and_keep_five_bits() {
    let mut g = gic(2);
    // A byte write changes that interrupt only.
    g.dist_write(VcpuId(0), GICD_IPRIORITYR + 33, 1, 0xff).unwrap();
    assert_eq!(rd(&g, 0, GICD_IPRIORITYR + 32), 0x0000_f800);
    assert_eq!(g.dist_read(VcpuId(0), GICD_IPRIORITYR + 33, 1), Ok(0xf8));
    // A word write sets four; the low three bits of each are RAZ/WI.
    wr(&mut g, 0, GICD_IPRIORITYR + 36, 0x1234_5678);
    assert_eq!(rd(&g, 0, GICD_IPRIORITYR + 36), 0x1030_5078);
    let bytes: Vec<u64> = (36..40).map(|i| g.dist_read(VcpuId(0), GICD_IPRIORITYR + i, 1).unwrap()).collect();
    assert_eq!(bytes, [0x78, 0x50, 0x30, 0x10]);
    // SPI priorities are shared, SGI/PPI priorities banked.
    assert_eq!(rd(&g, 1, GICD_IPRIORITYR + 36), 0x1030_5078);
    g.dist_write(VcpuId(0), GICD_IPRIORITYR + 27, 1, 0xa0).unwrap();
    assert_eq!(g.dist_read(VcpuId(0), GICD_IPRIORITYR + 27, 1), Ok(0xa0));
    assert_eq!(g.dist_read(VcpuId(1), GICD_IPRIORITYR + 27, 1), Ok(0));
}

#[test]
fn target_registers_take_bytes_and_mask_cpus_that_do_not_exist() {
    let mut g = gic(2);
    g.dist_write(VcpuId(0), GICD_ITARGETSR + 34, 1, 0xff).unwrap();
    assert_eq!(rd(&g, 0, GICD_ITARGETSR + 32), 0x0003_0000);
    wr(&mut g, 1, GICD_ITARGETSR + 40, 0x0102_0403);
    assert_eq!(rd(&g, 0, GICD_ITARGETSR + 40), 0x0102_0003);
}

#[test]
fn a_uniprocessor_gic_has_raz_wi_targets_and_sends_every_spi_to_its_cpu() {
    let mut g = gic(1);
    wr(&mut g, 0, GICD_ITARGETSR + 32, 0x0101_0101);
    assert_eq!(rd(&g, 0, GICD_ITARGETSR + 32), 0);
    assert_eq!(rd(&g, 0, GICD_ITARGETSR), 0);
    enable(&mut g, 0, 90, 0);
    assert_eq!(g.raise(Line::Spi(90)).unwrap().kick, mask(&[0]));
    assert_eq!(take(&mut g, 0).intid, 90);
}

#[test]
fn sgi_and_ppi_registers_are_banked_per_vcpu() {
    let mut g = gic(2);
    wr(&mut g, 0, GICD_ISENABLER, 1 << 27 | 1 << 3);
    assert_eq!(rd(&g, 0, GICD_ISENABLER), 0xffff | 1 << 27);
    assert_eq!(rd(&g, 1, GICD_ISENABLER), 0xffff);
    wr(&mut g, 1, GICD_ICENABLER, 1 << 27 | 1 << 5);
    assert_eq!(rd(&g, 0, GICD_ICENABLER), 0xffff | 1 << 27);
    assert_eq!(rd(&g, 1, GICD_ICENABLER), 0xffff & !(1 << 5));
    wr(&mut g, 0, GICD_IGROUPR, 1 << 20);
    assert_eq!(rd(&g, 1, GICD_IGROUPR), 0);
    wr(&mut g, 1, GICD_ICFGR + 4, 0x8000_0000);
    assert_eq!(rd(&g, 1, GICD_ICFGR + 4), 0x8000_0000);
    assert_eq!(rd(&g, 0, GICD_ICFGR + 4), 0);
    // SPIs are shared.
    wr(&mut g, 1, GICD_ISENABLER + 4, 1 << 1);
    assert_eq!(rd(&g, 0, GICD_ISENABLER + 4), 1 << 1);
}

#[test]
fn set_and_clear_registers_come_in_pairs() {
    let mut g = gic(2);
    for (set, clear) in
        [(GICD_ISENABLER, GICD_ICENABLER), (GICD_ISPENDR, GICD_ICPENDR), (GICD_ISACTIVER, GICD_ICACTIVER)]
    {
        let r = 8; // SPIs 64 to 95
        wr(&mut g, 0, set + r, 0xf0f0_0000);
        wr(&mut g, 0, set + r, 0x0000_000f);
        assert_eq!(rd(&g, 1, set + r), 0xf0f0_000f, "{set:#x}");
        assert_eq!(rd(&g, 1, clear + r), 0xf0f0_000f, "{clear:#x} reads the state too");
        wr(&mut g, 1, clear + r, 0x3000_0003);
        assert_eq!(rd(&g, 0, set + r), 0xc0f0_000c, "{clear:#x}");
        wr(&mut g, 1, clear + r, 0);
        assert_eq!(rd(&g, 0, set + r), 0xc0f0_000c, "writing 0 changes nothing");
    }
}

#[test]
fn config_registers_are_two_bits_per_interrupt_with_sgis_fixed() {
    let mut g = gic(1);
    wr(&mut g, 0, GICD_ICFGR, 0);
    assert_eq!(rd(&g, 0, GICD_ICFGR), 0xaaaa_aaaa);
    wr(&mut g, 0, GICD_ICFGR + 8, u32::MAX);
    assert_eq!(rd(&g, 0, GICD_ICFGR + 8), 0xaaaa_aaaa, "the lower bit of each field is RES0");
    wr(&mut g, 0, GICD_ICFGR + 8, 0x0000_0008);
    assert_eq!(rd(&g, 0, GICD_ICFGR + 8), 0x0000_0008);
}

#[test]
fn gicv2_sgi_pending_bits_are_set_through_sgir_and_spendsgir_only() {
    let mut g = gic(2);
    wr(&mut g, 0, GICD_ISPENDR, 0xffff);
    assert_eq!(rd(&g, 0, GICD_ISPENDR), 0, "GICD_ISPENDR0's SGI bits are read-only");
    // GICD_SPENDSGIR: a byte per SGI of source CPUs; 8 is a CPU that does not exist.
    g.dist_write(VcpuId(0), GICD_SPENDSGIR + 5, 1, 0x0a).unwrap();
    assert_eq!(rd(&g, 0, GICD_SPENDSGIR + 4), 0x0000_0200);
    assert_eq!(rd(&g, 0, GICD_CPENDSGIR + 4), 0x0000_0200);
    assert_eq!(rd(&g, 0, GICD_ISPENDR), 1 << 5);
    assert_eq!(rd(&g, 1, GICD_ISPENDR), 0, "banked");
    wr(&mut g, 0, GICD_ICPENDR, 0xffff);
    assert_eq!(rd(&g, 0, GICD_ISPENDR), 1 << 5, "GICD_ICPENDR0's SGI bits are read-only");
    g.dist_write(VcpuId(0), GICD_CPENDSGIR + 5, 1, 0x02).unwrap();
    assert_eq!(rd(&g, 0, GICD_ISPENDR), 0);
}

#[test]
fn sgir_target_filters_and_missing_targets() {
    let sources = |g: &Vgic, target: u32, sgi: u64| g.dist_read(VcpuId(target), GICD_SPENDSGIR + sgi, 1).unwrap();
    // Filter 0: the list; CPUs 3 and 7 do not exist and are dropped.
    let mut g = gic(3);
    wr(&mut g, 1, GICD_SGIR, 0b1000_1101 << 16 | 4);
    assert_eq!([sources(&g, 0, 4), sources(&g, 1, 4), sources(&g, 2, 4)], [0b10, 0, 0b10]);
    // Filter 1: everyone but the writer.
    let mut g = gic(3);
    wr(&mut g, 2, GICD_SGIR, 1 << 24 | 0xff << 16 | 7);
    assert_eq!([sources(&g, 0, 7), sources(&g, 1, 7), sources(&g, 2, 7)], [0b100, 0b100, 0]);
    // Filter 2: the writer only, whatever the list says.
    let mut g = gic(3);
    wr(&mut g, 0, GICD_SGIR, 2 << 24 | 0b110 << 16 | 15);
    assert_eq!([sources(&g, 0, 15), sources(&g, 1, 15), sources(&g, 2, 15)], [1, 0, 0]);
    // Filter 3 is reserved: nothing.
    let mut g = gic(3);
    let before = g.clone();
    wr(&mut g, 0, GICD_SGIR, 3 << 24 | 0xff << 16 | 1);
    assert_eq!(g, before);
    // A list naming no CPU that exists: nothing.
    let mut g = gic(2);
    let before = g.clone();
    wr(&mut g, 0, GICD_SGIR, 0xfc << 16 | 1);
    assert_eq!(g, before);
}

#[test]
fn unaligned_wrongly_sized_and_out_of_range_accesses_are_refused_and_change_nothing() {
    let mut g = gic(2);
    let before = g.clone();
    let v = VcpuId(0);
    assert_eq!(g.dist_read(v, GICD_ISENABLER + 1, 4), Err(VgicError::Unaligned));
    assert_eq!(g.dist_read(v, GICD_IPRIORITYR + 2, 4), Err(VgicError::Unaligned));
    assert_eq!(g.dist_write(v, GICD_CTLR + 2, 4, 1), Err(VgicError::Unaligned));
    assert_eq!(g.dist_read(v, GICD_ISENABLER, 1), Err(VgicError::BadWidth), "not byte-accessible");
    assert_eq!(g.dist_write(v, GICD_CTLR, 1, 1), Err(VgicError::BadWidth));
    assert_eq!(g.dist_write(v, GICD_SGIR, 1, 1), Err(VgicError::BadWidth));
    assert_eq!(g.dist_read(v, GICD_IPRIORITYR, 2), Err(VgicError::BadWidth), "no halfwords");
    assert_eq!(g.dist_read(v, GICD_ISENABLER, 8), Err(VgicError::BadWidth), "no doublewords");
    assert_eq!(g.dist_write(v, GICD_ITARGETSR + 32, 8, u64::MAX), Err(VgicError::BadWidth));
    assert_eq!(g.dist_read(v, GICD_CTLR, 3), Err(VgicError::BadWidth));
    assert_eq!(g.dist_read(v, GICD_CTLR, 0), Err(VgicError::BadWidth));
    assert_eq!(g.dist_read(v, 0x1000, 4), Err(VgicError::OutOfRange));
    assert_eq!(g.dist_write(v, u64::MAX - 3, 4, 0), Err(VgicError::OutOfRange));
    assert_eq!(g.dist_read(VcpuId(2), GICD_CTLR, 4), Err(VgicError::NoSuchVcpu));
    assert_eq!(g.dist_write(VcpuId(u32::MAX), GICD_CTLR, 4, 1), Err(VgicError::NoSuchVcpu));
    assert_eq!(g.redist_read(0, 4), Err(VgicError::WrongVersion));
    assert_eq!(g.sgi_sysreg(v, 1 << 24 | 1, true), Err(VgicError::WrongVersion));
    assert_eq!(g, before);
    // Reserved offsets answer any aligned size.
    assert_eq!(g.dist_read(v, 0xd00, 8), Ok(0));
    assert_eq!(g.dist_read(v, 0xd01, 1), Ok(0));
}

#[test]
fn lines_outside_the_implemented_range_are_refused() {
    let mut g = gic(2);
    let before = g.clone();
    for line in [Line::Spi(IRQS), Line::Spi(31), Line::Spi(1020), Line::Ppi(VcpuId(0), 15), Line::Ppi(VcpuId(0), 32)] {
        assert_eq!(g.set_level(line, true), Err(VgicError::NoSuchIrq), "{line:?}");
        assert_eq!(g.raise(line), Err(VgicError::NoSuchIrq), "{line:?}");
    }
    assert_eq!(g.raise(Line::Ppi(VcpuId(2), 27)), Err(VgicError::NoSuchVcpu));
    assert_eq!(g, before);
}

#[test]
fn nothing_is_delivered_until_distributor_interrupt_and_group_are_enabled() {
    let mut g = gic(1);
    assert!(g.raise(Line::Spi(40)).unwrap().kick.is_empty());
    assert_eq!(g.next_for(VcpuId(0)), None, "disabled distributor and interrupt");
    wr(&mut g, 0, GICD_ISENABLER + 4, 1 << 8);
    assert_eq!(g.next_for(VcpuId(0)), None, "distributor disabled");
    wr(&mut g, 0, GICD_IGROUPR + 4, 1 << 8);
    assert_eq!(wr(&mut g, 0, GICD_CTLR, 1).kick, VcpuMask::default(), "Group 1 not enabled");
    assert_eq!(wr(&mut g, 0, GICD_CTLR, 2).kick, mask(&[0]));
    let p = g.next_for(VcpuId(0)).unwrap();
    assert_eq!((p.intid, p.group1, p.lr), (40, true, 0));
    // Disabling it again withholds it, still pending.
    wr(&mut g, 0, GICD_ICENABLER + 4, 1 << 8);
    assert_eq!(g.next_for(VcpuId(0)), None);
    assert_eq!(rd(&g, 0, GICD_ISPENDR + 4), 1 << 8);
}

#[test]
fn the_highest_priority_goes_first_and_the_lowest_id_among_equals() {
    let mut g = gic(1);
    for (intid, prio) in [(50, 0x80), (41, 0x40), (60, 0x40), (33, 0xa0), (27, 0x48)] {
        enable(&mut g, 0, intid, prio);
    }
    for line in [Line::Spi(50), Line::Spi(60), Line::Spi(41), Line::Spi(33), Line::Ppi(VcpuId(0), 27)] {
        g.raise(line).unwrap();
    }
    let order: Vec<(u32, u8)> = (0..4).map(|_| take(&mut g, 0)).map(|p| (p.intid, p.priority)).collect();
    assert_eq!(order, [(41, 0x40), (60, 0x40), (27, 0x48), (50, 0x80)]);
}

#[test]
fn list_register_overflow_waits_for_the_maintenance_path() {
    let mut g = gic(1);
    let v = VcpuId(0);
    for i in 0..6 {
        enable(&mut g, 0, 40 + i, 0x10 * i as u8);
        g.raise(Line::Spi(40 + i)).unwrap();
    }
    let loaded: Vec<(u32, u8)> = (0..LIST_REGISTERS).map(|_| take(&mut g, 0)).map(|p| (p.intid, p.lr)).collect();
    assert_eq!(loaded, [(40, 0), (41, 1), (42, 2), (43, 3)]);
    assert_eq!(g.next_for(v), None, "every list register in use");
    let e = g.raise(Line::Spi(45)).unwrap();
    assert!(e.kick.is_empty(), "nothing can be delivered now");
    assert_eq!(rd(&g, 0, GICD_ISPENDR + 4), 0b11 << 12, "the rest stays pending");
    // The guest completes list register 2.
    let eoi = g.on_maintenance(v, 2).unwrap();
    assert_eq!(eoi.intid, Some(42));
    assert_eq!(eoi.effects.kick, mask(&[0]));
    assert_eq!(g.loaded(v, 2), None);
    let p = take(&mut g, 0);
    assert_eq!((p.intid, p.lr), (44, 2));
    assert_eq!(g.next_for(v), None);
    // A maintenance exit for a free list register completes nothing.
    g.on_maintenance(v, 2).unwrap();
    let eoi = g.on_maintenance(v, 2).unwrap();
    assert_eq!(eoi.intid, None);
    assert_eq!(g.on_maintenance(v, LIST_REGISTERS as u8), Err(VgicError::NoSuchListRegister));
    assert_eq!(take(&mut g, 0).intid, 45);
}

#[test]
fn loaded_interrupts_read_as_active_and_are_not_offered_twice() {
    let mut g = gic(1);
    enable(&mut g, 0, 40, 0);
    g.raise(Line::Spi(40)).unwrap();
    let p = take(&mut g, 0);
    assert_eq!(rd(&g, 0, GICD_ISPENDR + 4), 0, "taking it cleared the latch");
    assert_eq!(rd(&g, 0, GICD_ISACTIVER + 4), 1 << 8);
    g.raise(Line::Spi(40)).unwrap();
    assert_eq!(rd(&g, 0, GICD_ISPENDR + 4), 1 << 8, "pending and active");
    assert_eq!(g.next_for(VcpuId(0)), None, "not while it is in a list register");
    g.on_maintenance(VcpuId(0), p.lr).unwrap();
    assert_eq!(rd(&g, 0, GICD_ISACTIVER + 4), 0);
    assert_eq!(take(&mut g, 0).intid, 40);
}

#[test]
fn active_interrupts_are_not_forwarded_until_deactivated() {
    let mut g = gic(1);
    enable(&mut g, 0, 40, 0);
    wr(&mut g, 0, GICD_ISACTIVER + 4, 1 << 8);
    g.raise(Line::Spi(40)).unwrap();
    assert_eq!(g.next_for(VcpuId(0)), None);
    assert_eq!(wr(&mut g, 0, GICD_ICACTIVER + 4, 1 << 8).kick, mask(&[0]));
}

#[test]
fn level_interrupts_re_pend_while_asserted_and_edges_do_not() {
    let mut g = gic(1);
    let v = VcpuId(0);
    enable(&mut g, 0, 40, 0);
    enable(&mut g, 0, 41, 0);
    wr(&mut g, 0, GICD_ICFGR + 8, 0b10 << 18); // 41 edge, 40 level
    g.set_level(Line::Spi(40), true).unwrap();
    g.set_level(Line::Spi(41), true).unwrap();
    let (a, b) = (take(&mut g, 0), take(&mut g, 0));
    assert_eq!((a.intid, b.intid), (40, 41));
    // Both lines stay high: after EOI the level one is pending again.
    g.on_maintenance(v, a.lr).unwrap();
    g.on_maintenance(v, b.lr).unwrap();
    let again = take(&mut g, 0);
    assert_eq!(again.intid, 40);
    assert_eq!(g.next_for(v), None, "a held edge is one edge");
    // Lowered while in the list register: not pending after EOI.
    g.set_level(Line::Spi(40), false).unwrap();
    g.on_maintenance(v, again.lr).unwrap();
    assert_eq!(g.next_for(v), None);
    // A new edge on 41.
    g.set_level(Line::Spi(41), false).unwrap();
    assert_eq!(g.set_level(Line::Spi(41), true).unwrap().kick, mask(&[0]));
    assert_eq!(take(&mut g, 0).intid, 41);
}

#[test]
fn clearing_a_level_interrupt_while_asserted_leaves_it_pending() {
    let mut g = gic(1);
    g.set_level(Line::Spi(40), true).unwrap();
    wr(&mut g, 0, GICD_ICPENDR + 4, 1 << 8);
    assert_eq!(rd(&g, 0, GICD_ISPENDR + 4), 1 << 8);
    g.set_level(Line::Spi(40), false).unwrap();
    assert_eq!(rd(&g, 0, GICD_ISPENDR + 4), 0);
    // A latched level interrupt stays pending after the line drops.
    wr(&mut g, 0, GICD_ISPENDR + 4, 1 << 8);
    assert_eq!(rd(&g, 0, GICD_ISPENDR + 4), 1 << 8);
}

#[test]
fn an_sgi_from_two_sources_is_delivered_once_per_source() {
    let mut g = gic(3);
    wr(&mut g, 0, GICD_CTLR, 1);
    wr(&mut g, 1, GICD_SGIR, 1 << 16 | 3);
    let e = wr(&mut g, 2, GICD_SGIR, 1 << 16 | 3);
    assert_eq!(e.kick, mask(&[0]));
    let first = take(&mut g, 0);
    assert_eq!((first.intid, first.source), (3, 1));
    assert_eq!(g.next_for(VcpuId(0)), None, "one SGI id in one list register");
    assert_eq!(g.dist_read(VcpuId(0), GICD_SPENDSGIR + 3, 1), Ok(0b100));
    g.on_maintenance(VcpuId(0), first.lr).unwrap();
    assert_eq!(take(&mut g, 0).source, 2);
    assert_eq!(rd(&g, 0, GICD_ISPENDR), 0);
}

#[test]
fn an_spi_aimed_at_several_vcpus_goes_to_one() {
    let mut g = gic(3);
    enable(&mut g, 0, 40, 0);
    g.dist_write(VcpuId(0), GICD_ITARGETSR + 40, 1, 0b110).unwrap();
    assert_eq!(g.raise(Line::Spi(40)).unwrap().kick, mask(&[1, 2]));
    assert_eq!(g.next_for(VcpuId(0)), None, "not a target");
    take(&mut g, 2);
    assert_eq!(g.next_for(VcpuId(1)), None, "taken by vCPU 2");
    let eoi = g.on_maintenance(VcpuId(2), 0).unwrap();
    assert_eq!((eoi.intid, eoi.effects.kick), (Some(40), VcpuMask::default()));
}

#[test]
fn ppis_go_to_their_own_vcpu() {
    let mut g = gic(2);
    enable(&mut g, 1, 27, 0);
    g.raise(Line::Ppi(VcpuId(0), 27)).unwrap();
    assert_eq!(g.next_for(VcpuId(1)), None, "vCPU 1's PPI 27 is not pending");
    assert_eq!(g.next_for(VcpuId(0)), None, "vCPU 0's PPI 27 is not enabled");
    assert_eq!(g.raise(Line::Ppi(VcpuId(1), 27)).unwrap().kick, mask(&[1]));
    let p = take(&mut g, 1);
    assert_eq!(g.on_maintenance(VcpuId(1), p.lr).unwrap().intid, Some(27));
}

#[test]
fn only_the_current_offer_can_be_loaded() {
    let mut g = gic(2);
    enable(&mut g, 0, 40, 0);
    g.dist_write(VcpuId(0), GICD_ITARGETSR + 40, 1, 1).unwrap();
    g.raise(Line::Spi(40)).unwrap();
    let p = g.next_for(VcpuId(0)).unwrap();
    let before = g.clone();
    assert_eq!(g.load(VcpuId(0), Pending { lr: 1, ..p }), Err(VgicError::Stale));
    assert_eq!(g.load(VcpuId(0), Pending { intid: 41, ..p }), Err(VgicError::Stale));
    assert_eq!(g.load(VcpuId(1), p), Err(VgicError::Stale));
    assert_eq!(g.load(VcpuId(5), p), Err(VgicError::NoSuchVcpu));
    assert_eq!(g, before);
    g.load(VcpuId(0), p).unwrap();
    assert_eq!(g.load(VcpuId(0), p), Err(VgicError::Stale), "not twice");
    assert_eq!(g.loaded(VcpuId(0), p.lr), Some(SPI_BASE + 8));
}

#[test]
fn a_vcpu_mask_lists_its_vcpus() {
    let m = VcpuMask::from_bits(0b1000_0101);
    assert_eq!(m.iter().collect::<Vec<_>>(), [VcpuId(0), VcpuId(2), VcpuId(7)]);
    assert!(m.contains(VcpuId(2)) && !m.contains(VcpuId(1)) && !m.contains(VcpuId(8)));
    assert!(!m.is_empty() && VcpuMask::default().is_empty());
    assert_eq!(m.bits(), 0b1000_0101);
}
