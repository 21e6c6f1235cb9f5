//! The operations and checks of the vGIC fuzz target, shared with the
//! host test that replays its seeds and random inputs under `cargo test`
//! (`vmm/tests/vgic_fuzz.rs`).
//!
//! The input's first byte picks the version and vCPU count; then each
//! 14-byte record is one operation `[op, vcpu, size, offset (3 bytes LE),
//! value (8 bytes LE)]`: an MMIO load or store to the distributor or a
//! redistributor, an ICC_SGI1R_EL1 write, a line set or raised, a list
//! register filled with what `next_for` offers, or a maintenance exit.
//!
//! Nothing may panic, and after every operation: a refused one changed
//! nothing; a load fits its size; no interrupt id is in two list registers
//! (of one vCPU, or for an SPI of any); what `next_for` offers is in none
//! and names a free list register, and with all four in use it offers
//! nothing; the effects name exactly the vCPUs that have an offer; and the
//! offer is the one the guest-visible registers call for (the oracle reads
//! them as a guest would and picks the highest priority).

use vmm::arch::aarch64::vgic::{
    Effects, GicVersion, Line, Pending, VcpuMask, Vgic, VgicError, IRQS, LIST_REGISTERS, REDIST_STRIDE, SPI_BASE,
};
use vmm_abi::VcpuId;

/// Runs one input; panics if the model breaks an invariant.
pub fn run(data: &[u8]) {
    let Some((first, mut rest)) = data.split_first() else { return };
    let version = if first & 1 == 0 { GicVersion::V2 } else { GicVersion::V3 };
    let vcpus = u32::from(first >> 1 & 7) + 1;
    let mut g = Vgic::new(version, vcpus).expect("1 to 8 vCPUs");
    while let Some((rec, after)) = rest.split_first_chunk::<14>() {
        rest = after;
        step(&mut g, rec);
        check(&g);
    }
}

fn step(g: &mut Vgic, rec: &[u8; 14]) {
    let [op, vcpu, size, o0, o1, o2, value @ ..] = *rec;
    let vcpu = VcpuId(u32::from(vcpu % 10));
    let offset = u64::from(u32::from_le_bytes([o0, o1, o2, 0]));
    let value = u64::from_le_bytes(value);
    let size = size % 10;
    let before = g.clone();
    let result: Result<Option<Effects>, VgicError> = match op % 9 {
        0 => g.dist_read(vcpu, offset % (g.dist_size() + 0x100), size).map(|v| fits(v, size)),
        1 => g.dist_write(vcpu, offset % (g.dist_size() + 0x100), size, value).map(Some),
        2 => g.redist_read(offset, size).map(|v| fits(v, size)),
        3 => g.redist_write(offset, size, value).map(Some),
        4 => g.sgi_sysreg(vcpu, value, size & 1 == 1).map(Some),
        5 => g.set_level(line(vcpu, o0), value & 1 == 1).map(Some),
        6 => g.raise(line(vcpu, o0)).map(Some),
        7 => inject(g, vcpu, value).map(|()| None),
        _ => g.on_maintenance(vcpu, size % 5).map(|e| Some(e.effects)),
    };
    match result {
        Err(_) => assert_eq!(*g, before, "a refused operation changed the state"),
        Ok(Some(e)) => assert_eq!(e.kick, ready(g), "effects name the vCPUs with an offer"),
        Ok(None) => {}
    }
    // On GICv2 there are no redistributors and no SGI system register.
    let v3_only = match op % 9 {
        2 | 3 => true,
        4 => vcpu.0 < g.vcpus(),
        _ => false,
    };
    if v3_only && g.version() == GicVersion::V2 {
        assert_eq!(result, Err(VgicError::WrongVersion));
    }
}

/// A line: mostly SPIs and PPIs, sometimes ids that are neither.
fn line(vcpu: VcpuId, b: u8) -> Line {
    let intid = u32::from(b >> 1);
    if b & 1 == 0 {
        Line::Spi(intid + 16)
    } else {
        Line::Ppi(vcpu, intid % 40)
    }
}

/// A load's value fits its size.
fn fits(v: u64, size: u8) -> Option<Effects> {
    assert!(size == 8 || v >> (u32::from(size) * 8) == 0, "{v:#x} wider than {size} bytes");
    None
}

/// Fills a list register as the VMM will; a tampered offer is refused.
fn inject(g: &mut Vgic, vcpu: VcpuId, noise: u64) -> Result<(), VgicError> {
    let Some(p) = g.next_for(vcpu) else { return Ok(()) };
    let tampered = Pending { lr: (p.lr + 1 + (noise as u8 % 3)) % LIST_REGISTERS as u8, ..p };
    assert!(g.load(vcpu, tampered).is_err(), "loaded into a list register it was not offered");
    g.load(vcpu, p)
}

fn ready(g: &Vgic) -> VcpuMask {
    let bits = (0..g.vcpus()).filter(|v| g.next_for(VcpuId(*v)).is_some()).fold(0u8, |a, v| a | 1 << v);
    VcpuMask::from_bits(bits)
}

fn check(g: &Vgic) {
    let lrs = LIST_REGISTERS as u8;
    let mut spis: Vec<u32> = Vec::new();
    for v in (0..g.vcpus()).map(VcpuId) {
        assert_eq!(g.loaded(v, lrs), None, "at most four list registers");
        let ids: Vec<u32> = (0..lrs).filter_map(|lr| g.loaded(v, lr)).collect();
        for (i, id) in ids.iter().enumerate() {
            assert!(!ids[i + 1..].contains(id), "{id} in two list registers of {v:?}");
        }
        spis.extend(ids.iter().filter(|id| **id >= SPI_BASE));
        if let Some(p) = g.next_for(v) {
            assert!(usize::from(p.lr) < LIST_REGISTERS && g.loaded(v, p.lr).is_none(), "offer of a used LR");
            assert!(!ids.contains(&p.intid), "{} offered while in a list register", p.intid);
            let mut elsewhere = (0..g.vcpus()).flat_map(|o| (0..lrs).filter_map(move |lr| g.loaded(VcpuId(o), lr)));
            assert!(p.intid < SPI_BASE || !elsewhere.any(|id| id == p.intid), "SPI offered twice");
            assert_eq!(p.priority & 7, 0, "five priority bits");
        }
        if ids.len() == LIST_REGISTERS {
            assert_eq!(g.next_for(v), None, "an offer with every list register in use");
        } else {
            let offer = g.next_for(v).map(|p| (p.intid, p.priority));
            assert_eq!(offer, oracle(g, v), "the registers call for another offer to {v:?}");
        }
    }
    let mut sorted = spis.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), spis.len(), "an SPI in two vCPUs' list registers");
}

/// What the registers, read as vCPU `v` reads them, say `v` should get
/// next: the lowest (priority, id) of the interrupts pending, enabled, not
/// active (a loaded one reads active), of an enabled group and routed to
/// `v`, if its redistributor is awake.
fn oracle(g: &Vgic, v: VcpuId) -> Option<(u32, u8)> {
    let v3 = g.version() == GicVersion::V3;
    let rd_base = u64::from(v.0) * REDIST_STRIDE;
    // A table register covering `intid`: private ones in the redistributor on GICv3.
    let table = |base: u64, intid: u32, per_reg: u32| -> u64 {
        let off = base + u64::from(intid / per_reg) * 4;
        let word =
            if v3 && intid < SPI_BASE { g.redist_read(rd_base + 0x1_0000 + off, 4) } else { g.dist_read(v, off, 4) };
        word.expect("table registers answer word loads")
    };
    let ctlr = g.dist_read(v, 0, 4).expect("GICD_CTLR");
    if v3 && g.redist_read(rd_base + 0x14, 4).expect("GICR_WAKER") & 0b10 != 0 {
        return None;
    }
    let mut best: Option<(u32, u8)> = None;
    for first in (0..IRQS).step_by(32) {
        let [group, enabled, pending, active] = [0x080, 0x100, 0x200, 0x300].map(|base| table(base, first, 32));
        let group0 = if ctlr & 1 != 0 { !group } else { 0 };
        let group1 = if ctlr & 2 != 0 { group } else { 0 };
        let ready = enabled & pending & !active & (group0 | group1);
        for intid in (first..first + 32).filter(|i| ready >> (i % 32) & 1 == 1) {
            let routed = match (intid < SPI_BASE, v3) {
                (true, _) => true,
                (false, false) if g.vcpus() == 1 => true,
                (false, false) => table(0x800, intid, 4) >> (8 * (intid % 4) + v.0) & 1 == 1,
                (false, true) => {
                    let route = g.dist_read(v, 0x6000 + 8 * u64::from(intid), 8).expect("GICD_IROUTER");
                    route & 1 << 31 != 0 || route == u64::from(v.0)
                }
            };
            let priority = (table(0x400, intid, 4) >> (8 * (intid % 4))) as u8;
            if routed && best.is_none_or(|(_, p)| priority < p) {
                best = Some((intid, priority));
            }
        }
    }
    best
}
