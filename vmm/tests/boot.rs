//! Building a VM from the boot manifest applies every run-time rule, and a
//! refused manifest leaves nothing behind.

mod common;

use common::*;
use vmm::arch::aarch64::vgic::GicVersion;
use vmm::registry::Owner;
use vmm::BootError;
use vmm_abi::limits::PAGE_SIZE;
use vmm_abi::manifest::{
    Dev, File, Manifest, Ram, SlotEntry, DEV_GICV2_DIST, DEV_GICV3_DIST, DEV_GICV3_REDIST, DEV_PL011, SLOT_GMEM,
    SLOT_READONLY,
};
use vmm_abi::{Errno, VcpuId};
use zerocopy::little_endian::{U32, U64};

fn slot(id: u32, flags: u32, gpa: u64, pages: u64, source: u64, file: u32) -> SlotEntry {
    SlotEntry {
        id: U32::new(id),
        flags: U32::new(flags),
        gpa: U64::new(gpa),
        size: U64::new(pages * PAGE_SIZE),
        source: U64::new(source),
        file: U32::new(file),
        pad: U32::new(0),
    }
}

fn manifest() -> Manifest {
    let mut m = Manifest { vcpus: 2, entry: 0x4000_0000, ..Manifest::default() };
    m.ram
        .push(Ram { vmm_vaddr: U64::new(RAM_VADDR), size: U64::new(16 * PAGE_SIZE), gpa: U64::new(0x4000_0000) })
        .unwrap();
    m.files.push(File { size: U64::new(4 * PAGE_SIZE), gpa: U64::new(0x5000_0000) }).unwrap();
    m.slots.push(slot(0, 0, 0x4000_0000, 8, RAM_VADDR, 0)).unwrap();
    m.slots.push(slot(1, SLOT_READONLY, 0x4800_0000, 8, RAM_VADDR + 8 * PAGE_SIZE, 0)).unwrap();
    m.slots.push(slot(2, SLOT_GMEM, 0x5000_0000, 4, 0, 0)).unwrap();
    m.devices
        .push(Dev { kind: U32::new(DEV_PL011), irq: U32::new(0), base: U64::new(0x900_0000), size: U64::new(0x1000) })
        .unwrap();
    m
}

#[test]
fn an_internal_vm_is_built_and_started_from_its_manifest() {
    let mut v = world();
    let id = v.build_from_manifest(&manifest(), Owner::Internal, Some(7)).unwrap();
    check_invariants(&v);
    let e = v.registry().entry(id).unwrap();
    assert_eq!(e.owner(), Owner::Internal);
    assert_eq!(e.vm().memslots().len(), 3);
    assert!(e.vm().memslots().find_gpa(Gpa(0x4800_0000)).unwrap().readonly());
    assert_eq!(e.file_refs(), 1);
    let (tcb, _) = e.vm().vcpu_caps(VcpuId(0)).unwrap();
    assert!(v.kernel().tcb_running(tcb.slot()));
    assert_eq!(v.kernel().tcb_reg(tcb.slot(), vmm::arch::aarch64::regs::TcbReg::Pc), Some(0x4000_0000));
    assert_eq!(v.kernel().tcb_reg(tcb.slot(), vmm::arch::aarch64::regs::TcbReg::X(0)), Some(7));
    assert_eq!(e.vm().devices().iter().count(), 1);
}

#[test]
fn a_manifest_breaking_a_memslot_rule_names_the_record_and_leaves_nothing() {
    let fresh = world();
    let mut v = world();
    let mut m = manifest();
    // Record 1 overlaps record 0 by one page: rule 3.7.
    m.slots[1] = slot(1, 0, 0x4000_7000, 2, RAM_VADDR + 8 * PAGE_SIZE, 0);
    let e = v.build_from_manifest(&m, Owner::Internal, Some(0)).unwrap_err();
    assert!(matches!(e, BootError::Slot(1, err) if err.errno() == Errno::EEXIST), "{e}");
    assert_eq!(v.usage_count(), 0);
    assert!(v.registry().entries().next().is_none());
    assert!(v.gmem().iter().next().is_none());
    assert_eq!(v.kernel().state(), fresh.kernel().state());
    assert_eq!(v.cspace(), fresh.cspace());
}

#[test]
fn a_private_slot_past_its_file_is_refused() {
    let mut v = world();
    let mut m = manifest();
    m.slots[2] = slot(2, SLOT_GMEM, 0x5000_0000, 4, PAGE_SIZE, 0);
    let e = v.build_from_manifest(&m, Owner::Internal, None).unwrap_err();
    assert!(matches!(e, BootError::Slot(2, err) if err.errno() == Errno::EINVAL), "{e}");
    assert_eq!(v.usage_count(), 0);
}

/// The redistributors of the test world's vCPU limit (4), 128 KiB each.
const REDIST: u64 = 4 * 0x2_0000;

fn dev(kind: u32, base: u64, size: u64) -> Dev {
    Dev { kind: U32::new(kind), irq: U32::new(0), base: U64::new(base), size: U64::new(size) }
}

/// The manifest's GIC records give the VM its virtual GIC (rule 6.10):
/// a GICv2 distributor, or a GICv3 distributor with its redistributors.
#[test]
fn the_manifests_gic_records_give_the_vm_its_virtual_gic() {
    for (records, version) in [
        (vec![dev(DEV_GICV2_DIST, 0x800_0000, 0x1000)], GicVersion::V2),
        (vec![dev(DEV_GICV3_REDIST, 0x80a_0000, REDIST), dev(DEV_GICV3_DIST, 0x800_0000, 0x1_0000)], GicVersion::V3),
    ] {
        let mut v = world();
        let mut m = manifest();
        for r in records {
            m.devices.push(r).unwrap();
        }
        let id = v.build_from_manifest(&m, Owner::Internal, None).unwrap();
        assert_eq!(v.vgic(id).map(|g| g.version()), Some(version));
        check_invariants(&v);
    }
}

/// A second distributor, redistributors without a GICv3 distributor, or a
/// GICv3 without redistributors: refused, naming the record, and nothing
/// is left behind.
#[test]
fn gic_records_that_do_not_make_one_gic_are_refused() {
    let fresh = world();
    for (records, bad, errno) in [
        (vec![dev(DEV_GICV2_DIST, 0x800_0000, 0x1000), dev(DEV_GICV2_DIST, 0x810_0000, 0x1000)], 2, Errno::EEXIST),
        (vec![dev(DEV_GICV3_REDIST, 0x80a_0000, REDIST)], 1, Errno::EINVAL),
        (vec![dev(DEV_GICV3_DIST, 0x800_0000, 0x1_0000)], 1, Errno::EINVAL),
        (vec![dev(DEV_GICV2_DIST, 0x800_0000, 0x1000), dev(DEV_GICV3_REDIST, 0x80a_0000, REDIST)], 2, Errno::EINVAL),
        // Over the UART.
        (vec![dev(DEV_GICV2_DIST, 0x900_0000, 0x1000)], 1, Errno::EEXIST),
        // Sizes other than the frames the vGIC emulates.
        (vec![dev(DEV_GICV2_DIST, 0x800_0000, 0x2000)], 1, Errno::EINVAL),
        (
            vec![dev(DEV_GICV3_DIST, 0x800_0000, 0x1_0000), dev(DEV_GICV3_REDIST, 0x80a_0000, 0x2_0000)],
            2,
            Errno::EINVAL,
        ),
    ] {
        let mut v = world();
        let mut m = manifest();
        for r in records.clone() {
            m.devices.push(r).unwrap();
        }
        let e = v.build_from_manifest(&m, Owner::Internal, Some(0)).unwrap_err();
        assert!(matches!(e, BootError::Device(n, err) if n == bad && err.errno() == errno), "{records:?}: {e}");
        assert!(v.registry().entries().next().is_none());
        assert_eq!(v.kernel().state(), fresh.kernel().state());
    }
}

/// A PL011 record's interrupt connects the UART's line (rule 6.9).
#[test]
fn a_pl011_records_interrupt_connects_its_line() {
    use vmm::devices::pl011::Pl011;
    use vmm::devices::Device;
    let mut v = world();
    let mut m = manifest();
    m.devices[0].irq = U32::new(33);
    let id = v.build_from_manifest(&m, Owner::Internal, None).unwrap();
    let devices: Vec<Device> = v.registry().entry(id).unwrap().vm().devices().iter().map(|r| r.device).collect();
    assert_eq!(devices, [Device::Pl011(Pl011::with_irq(33))]);
    assert_ne!(Device::Pl011(Pl011::with_irq(33)), Device::Pl011(Pl011::new()), "the line is part of the UART");
}
