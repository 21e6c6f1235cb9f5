//! The book under the core: the VMM's own operations, over a host kernel
//! whose memory calls are the book's (as on Microkit) and whose TCB and
//! vCPU calls only keep registers, on the layout of the default system's
//! vm1 (and vm0). What the Microkit backend decides, decided here.

use vmm::addr::Gpa;
use vmm::arch::aarch64::regs::{TcbReg, VcpuReg};
use vmm::caps::{FrameCap, ObjectType, PageTableCap, Rights, Slot, TcbCap, VCpuCap, VSpaceCap};
use vmm::config::VmmConfig;
use vmm::kernel::{Kernel, KernelError, Virq};
use vmm::platform::NoHooks;
use vmm::registry::Owner;
use vmm::{FaultOutcome, Vmm};
use vmm_abi::manifest::{
    Dev, File, Manifest, Ram, SlotEntry, DEV_PL011, SLOT_GMEM, SLOT_LOCKABLE, SLOT_READONLY, VM_INTERNAL,
};
use vmm_abi::memslot::{MemoryRegion, GUEST_MEMFD, LOCK_READ, LOCK_WRITE};
use vmm_abi::{ClientId, Errno, GmemHandle, VcpuId, VmId};
use vmm_book::{Book, CapTable, StaticMap, CORE_SLOTS, RAM_FRAME_SLOTS, TABLE_SLOTS};
use zerocopy::little_endian::{U32, U64};

const RAM_GPA: u64 = 0x4000_0000;
const RAM_VMM: u64 = 0x2000_0000;
const RAM_SIZE: u64 = 0x20_0000;
const HALF: u64 = RAM_SIZE / 2;
const PRIVATE_GPA: u64 = 0x5000_0000;
const PRIVATE_SIZE: u64 = 0x1_0000;
const NOWHERE: u64 = 0x6000_0000;
const CLIENT: ClientId = ClientId(0);
const ME: Owner = Owner::Client(CLIENT);

/// A kernel for the host: memory through the book, registers kept.
struct HostKernel {
    book: Book<'static>,
    regs: [[u64; 34]; 2],
}

fn reg_index(r: TcbReg) -> usize {
    match r {
        TcbReg::X(n) => usize::from(n).min(30),
        TcbReg::Pc => 31,
        TcbReg::Sp => 32,
        TcbReg::Spsr => 33,
    }
}

impl HostKernel {
    fn regs(&mut self, tcb: TcbCap) -> Result<&mut [u64; 34], KernelError> {
        let v = self.book.tcb(tcb.slot())?;
        self.regs.get_mut(v as usize).ok_or(KernelError::InvalidCapability)
    }
}

impl Kernel for HostKernel {
    fn untyped_retype(&mut self, ty: ObjectType, dest: Slot) -> Result<(), KernelError> {
        self.book.retype(ty, dest).map(|_| ())
    }
    fn cnode_copy(&mut self, dest: Slot, src: Slot, mask: Rights) -> Result<(), KernelError> {
        self.book.copy(dest, src, mask)
    }
    fn cnode_move(&mut self, dest: Slot, src: Slot) -> Result<(), KernelError> {
        self.book.move_cap(dest, src)
    }
    fn cnode_delete(&mut self, slot: Slot) -> Result<(), KernelError> {
        self.book.delete(slot).map(|_| ())
    }
    fn cnode_revoke(&mut self, slot: Slot) -> Result<(), KernelError> {
        self.book.revoke(slot)
    }
    fn frame_map(&mut self, frame: FrameCap, vspace: VSpaceCap, vaddr: u64, rights: Rights) -> Result<(), KernelError> {
        self.book.frame_map(frame.slot(), vspace.slot(), vaddr, rights)
    }
    fn frame_unmap(&mut self, frame: FrameCap) -> Result<(), KernelError> {
        self.book.frame_unmap(frame.slot())
    }
    fn page_table_map(&mut self, pt: PageTableCap, vspace: VSpaceCap, vaddr: u64) -> Result<(), KernelError> {
        self.book.page_table_map(pt.slot(), vspace.slot(), vaddr)
    }
    fn tcb_bind(&mut self, tcb: TcbCap, vcpu: VCpuCap, vspace: VSpaceCap) -> Result<(), KernelError> {
        self.book.bind(tcb.slot(), vcpu.slot(), vspace.slot())
    }
    fn tcb_read_register(&mut self, tcb: TcbCap, reg: TcbReg) -> Result<u64, KernelError> {
        Ok(self.regs(tcb)?[reg_index(reg)])
    }
    fn tcb_write_register(&mut self, tcb: TcbCap, reg: TcbReg, value: u64) -> Result<(), KernelError> {
        self.regs(tcb)?[reg_index(reg)] = value;
        Ok(())
    }
    fn tcb_resume(&mut self, tcb: TcbCap) -> Result<(), KernelError> {
        self.book.tcb(tcb.slot())?;
        self.book.resumed();
        Ok(())
    }
    fn tcb_suspend(&mut self, tcb: TcbCap) -> Result<(), KernelError> {
        self.book.tcb(tcb.slot()).map(|_| ())
    }
    fn vcpu_read_reg(&mut self, vcpu: VCpuCap, _: VcpuReg) -> Result<u64, KernelError> {
        self.book.vcpu(vcpu.slot()).map(|_| 0)
    }
    fn vcpu_write_reg(&mut self, vcpu: VCpuCap, _: VcpuReg, _: u64) -> Result<(), KernelError> {
        self.book.vcpu(vcpu.slot()).map(|_| ())
    }
    fn vcpu_inject_irq(&mut self, vcpu: VCpuCap, _: Virq, _: u8) -> Result<(), KernelError> {
        self.book.vcpu(vcpu.slot()).map(|_| ())
    }
    fn vcpu_ack_vppi(&mut self, vcpu: VCpuCap, _: u16) -> Result<(), KernelError> {
        self.book.vcpu(vcpu.slot()).map(|_| ())
    }
}

fn slot(id: u32, flags: u32, gpa: u64, size: u64, source: u64) -> SlotEntry {
    SlotEntry {
        id: U32::new(id),
        flags: U32::new(flags),
        gpa: U64::new(gpa),
        size: U64::new(size),
        source: U64::new(source),
        file: U32::new(0),
        pad: U32::new(0),
    }
}

/// vm1's manifest (`internal`: vm0's shape instead), through the format.
fn manifest(internal: bool) -> Manifest {
    let mut m = Manifest { vcpus: 1, entry: RAM_GPA, memlock_pages: HALF / 0x1000, ..Manifest::default() };
    if internal {
        m.vm_flags = VM_INTERNAL;
    }
    m.ram.push(Ram { vmm_vaddr: U64::new(RAM_VMM), size: U64::new(RAM_SIZE), gpa: U64::new(RAM_GPA) }).unwrap();
    m.files.push(File { size: U64::new(PRIVATE_SIZE), gpa: U64::new(PRIVATE_GPA) }).unwrap();
    m.slots.push(slot(0, SLOT_LOCKABLE, RAM_GPA, HALF, RAM_VMM)).unwrap();
    m.slots.push(slot(2, SLOT_LOCKABLE, RAM_GPA + HALF, HALF, RAM_VMM + HALF)).unwrap();
    m.slots.push(slot(1, SLOT_GMEM, PRIVATE_GPA, PRIVATE_SIZE, 0)).unwrap();
    let uart = Dev { kind: U32::new(DEV_PL011), irq: U32::new(0), base: U64::new(0x900_0000), size: U64::new(0x1000) };
    m.devices.push(uart).unwrap();
    let mut buf = [0u8; 4096];
    let n = m.encode(&mut buf).unwrap();
    Manifest::parse(&buf[..n]).unwrap()
}

/// Runs `f` where a VMM fits: the core and the book are large values, too
/// large for a test thread's default stack in a debug build.
fn on_a_big_stack(f: fn()) {
    std::thread::Builder::new().stack_size(64 << 20).spawn(f).unwrap().join().unwrap();
}

/// A capability table for one book, kept for the test's lifetime as the
/// PD keeps its own in a static.
fn table() -> &'static mut CapTable {
    Box::leak(Box::new(CapTable::new(CORE_SLOTS.base)))
}

fn vmm_for(m: &Manifest) -> Vmm<HostKernel, NoHooks> {
    let config = VmmConfig::from_manifest(m, CORE_SLOTS, RAM_FRAME_SLOTS).unwrap();
    let book = Book::new(u64::from(m.vcpus), StaticMap::new(m, RAM_FRAME_SLOTS).unwrap(), table());
    Vmm::new(HostKernel { book, regs: [[0; 34]; 2] }, NoHooks, config).unwrap()
}

fn errno<T: std::fmt::Debug>(r: Result<T, vmm::Error>) -> Errno {
    r.expect_err("expected a refusal").errno()
}

fn ram_region(id: u32, gpa: u64, size: u64, uaddr: u64) -> MemoryRegion {
    MemoryRegion { slot: id, guest_phys_addr: gpa, memory_size: size, userspace_addr: uaddr, ..Default::default() }
}

/// vmctl's first act: the VM as the manifest describes it, locked and
/// running; returns the VM and its guest_memfd.
fn set_up(vmm: &mut Vmm<HostKernel, NoHooks>, lock: bool) -> (VmId, GmemHandle) {
    let vm = vmm.create_vm(ME).unwrap();
    vmm.create_vcpu(ME, vm, VcpuId(0)).unwrap();
    vmm.set_memory_region(ME, vm, &ram_region(0, RAM_GPA, HALF, RAM_VMM)).unwrap();
    vmm.set_memory_region(ME, vm, &ram_region(2, RAM_GPA + HALF, HALF, RAM_VMM + HALF)).unwrap();
    let fd = vmm.create_guest_memfd(ME, vm, PRIVATE_SIZE, 0).unwrap();
    let gmem = MemoryRegion {
        slot: 1,
        flags: GUEST_MEMFD,
        guest_phys_addr: PRIVATE_GPA,
        memory_size: PRIVATE_SIZE,
        guest_memfd: fd.0,
        ..Default::default()
    };
    vmm.set_memory_region(ME, vm, &gmem).unwrap();
    if lock {
        vmm.lock_memslot(ME, vm, 2, LOCK_READ | LOCK_WRITE).unwrap();
    }
    (vm, fd)
}

#[test]
fn the_internal_vm_builds_from_its_manifest_and_starts() {
    on_a_big_stack(the_internal_vm_builds_from_its_manifest_and_starts_body);
}

fn the_internal_vm_builds_from_its_manifest_and_starts_body() {
    let m = manifest(true);
    let mut vmm = vmm_for(&m);
    let id = vmm.build_from_manifest(&m, Owner::Internal, Some(0)).unwrap();
    assert_eq!(vmm.vcpu_by_tcb(vmm.kernel().book.tcb_slot_of(0).unwrap()), Some((id, VcpuId(0))));
    // Its guest_memfd was created before the vCPU ran; a second VM cannot
    // have Microkit's one VSpace.
    assert_eq!(errno(vmm.create_vm(Owner::Internal)), Errno::EOPNOTSUPP);
}

#[test]
fn the_client_scenario_runs_and_leaves_nothing_behind() {
    on_a_big_stack(the_client_scenario_runs_and_leaves_nothing_behind_body);
}

fn the_client_scenario_runs_and_leaves_nothing_behind_body() {
    let m = manifest(false);
    let mut vmm = vmm_for(&m);
    let (vm, fd) = set_up(&mut vmm, true);
    // The lock mapped the 256 pages of slot 2, each where Microkit did.
    assert_eq!(vmm.kernel().book.frames_mapped(), 256);
    assert_eq!(errno(vmm.lock_memslot(ME, vm, 0, LOCK_READ)), Errno::ENOMEM);
    assert_eq!(errno(vmm.lock_memslot(ME, vm, 1, LOCK_READ)), Errno::EINVAL);
    vmm.run_vcpu(ME, vm, VcpuId(0), RAM_GPA, 0).unwrap();
    // Guest faults in described slots map (the guest had them already).
    assert_eq!(vmm.stage2_fault(vm, Gpa(RAM_GPA + 0x3000), true).unwrap(), FaultOutcome::Mapped);
    assert_eq!(vmm.stage2_fault(vm, Gpa(PRIVATE_GPA + 0x8000), true).unwrap(), FaultOutcome::Mapped);
    assert_eq!(vmm.stage2_fault(vm, Gpa(NOWHERE), false).unwrap(), FaultOutcome::Unmapped);
    vmm.destroy_vm(ME, vm).unwrap();
    vmm.close_guest_memfd(ME, fd).unwrap();
    assert_eq!(vmm.kernel().book.caps_held(), 0, "every capability went with the VM and its file");

    // Re-created: the guest has run, so a new guest_memfd cannot be zeroed.
    let vm = vmm.create_vm(ME).unwrap();
    vmm.create_vcpu(ME, vm, VcpuId(0)).unwrap();
    vmm.set_memory_region(ME, vm, &ram_region(2, RAM_GPA + HALF, HALF, RAM_VMM + HALF)).unwrap();
    assert_eq!(errno(vmm.create_guest_memfd(ME, vm, PRIVATE_SIZE, 0)), Errno::EOPNOTSUPP);
    // A READ lock would map the writable slot read-only, which Microkit's
    // mapping does not allow: the book refuses, and the core undoes the lock.
    assert_eq!(errno(vmm.lock_memslot(ME, vm, 2, LOCK_READ)), Errno::EOPNOTSUPP);
    vmm.lock_memslot(ME, vm, 2, LOCK_READ | LOCK_WRITE).unwrap();
    vmm.unlock_memslot(ME, vm, 2, 0).unwrap();
    // Unlocking keeps the pages mapped, through the slot's own capabilities.
    assert_eq!(vmm.kernel().book.frames_mapped(), 256);
    vmm.destroy_vm(ME, vm).unwrap();
    assert_eq!(vmm.kernel().book.caps_held(), 0);
}

#[test]
fn mappings_the_manifest_does_not_describe_are_unsupported_and_change_nothing() {
    on_a_big_stack(mappings_the_manifest_does_not_describe_are_unsupported_and_change_nothing_body);
}

fn mappings_the_manifest_does_not_describe_are_unsupported_and_change_nothing_body() {
    let m = manifest(false);
    let mut vmm = vmm_for(&m);
    let (vm, _) = set_up(&mut vmm, false);
    let held = vmm.kernel().book.caps_held();
    // RAM where Microkit mapped none.
    vmm.set_memory_region(ME, vm, &ram_region(3, NOWHERE, 0x1000, RAM_VMM)).unwrap();
    assert_eq!(errno(vmm.lock_memslot(ME, vm, 3, LOCK_READ)), Errno::EOPNOTSUPP);
    assert_eq!(vmm.stage2_fault(vm, Gpa(NOWHERE), false).map_err(|e| e.errno()), Err(Errno::EOPNOTSUPP));
    // Slot 2 moved where the manifest has none: its pages cannot map.
    let moved = ram_region(2, NOWHERE + 0x10_0000, HALF, RAM_VMM + HALF);
    vmm.set_memory_region(ME, vm, &moved).unwrap();
    assert_eq!(errno(vmm.lock_memslot(ME, vm, 2, LOCK_READ)), Errno::EOPNOTSUPP);
    // A RAM slot backed by other pages than Microkit mapped at its address.
    vmm.set_memory_region(ME, vm, &ram_region(0, 0, 0, 0)).unwrap();
    vmm.set_memory_region(ME, vm, &ram_region(4, RAM_GPA, 0x1000, RAM_VMM + 0x1000)).unwrap();
    assert_eq!(errno(vmm.lock_memslot(ME, vm, 4, LOCK_READ)), Errno::EOPNOTSUPP);
    assert_eq!(vmm.kernel().book.caps_held(), held, "the refused locks left nothing behind");
    assert_eq!(vmm.kernel().book.frames_mapped(), 0);
}

#[test]
fn rights_beyond_a_read_only_manifest_slot_are_unsupported() {
    on_a_big_stack(rights_beyond_a_read_only_manifest_slot_are_unsupported_body);
}

fn rights_beyond_a_read_only_manifest_slot_are_unsupported_body() {
    let mut m = manifest(false);
    m.slots[0].flags = U32::new(SLOT_READONLY);
    let mut vmm = vmm_for(&m);
    let vm = vmm.create_vm(ME).unwrap();
    vmm.set_memory_region(ME, vm, &ram_region(0, RAM_GPA, HALF, RAM_VMM)).unwrap();
    // The client's slot is writable, the manifest's read-only: a write
    // fault cannot map, a read fault can.
    assert_eq!(vmm.stage2_fault(vm, Gpa(RAM_GPA), true).map_err(|e| e.errno()), Err(Errno::EOPNOTSUPP));
    assert_eq!(vmm.stage2_fault(vm, Gpa(RAM_GPA + 0x1000), false).map_err(|e| e.errno()), Err(Errno::EOPNOTSUPP));
    // A lock maps with the lock's rights: READ fits, READ|WRITE does not.
    assert_eq!(errno(vmm.lock_memslot(ME, vm, 0, LOCK_READ | LOCK_WRITE)), Errno::EOPNOTSUPP);
    assert_eq!(vmm.kernel().book.frames_mapped(), 0);
    vmm.lock_memslot(ME, vm, 0, LOCK_READ).unwrap();
    assert_eq!(vmm.kernel().book.frames_mapped(), 256);
}

#[test]
fn the_book_keeps_the_rules_of_sel4_for_frames() {
    on_a_big_stack(the_book_keeps_the_rules_of_sel4_for_frames_body);
}

fn the_book_keeps_the_rules_of_sel4_for_frames_body() {
    let m = manifest(false);
    let mut book = Book::new(1, StaticMap::new(&m, RAM_FRAME_SLOTS).unwrap(), table());
    let s = |i: u64| Slot(CORE_SLOTS.base.0 + i);
    book.retype(ObjectType::VSpace, s(0)).unwrap();
    assert_eq!(book.retype(ObjectType::VSpace, s(1)), Err(KernelError::Unsupported));
    assert_eq!(book.retype(ObjectType::Tcb, s(0)), Err(KernelError::DeleteFirst));
    book.retype(ObjectType::Tcb, s(1)).unwrap();
    assert_eq!(book.retype(ObjectType::Tcb, s(2)), Err(KernelError::Unsupported), "one Microkit vCPU");
    // The private pool: 16 pages, then no more.
    for i in 0..16 {
        book.retype(ObjectType::Frame, s(10 + i)).unwrap();
    }
    assert_eq!(book.retype(ObjectType::Frame, s(30)), Err(KernelError::Unsupported));
    // A copy maps where Microkit mapped its page, once.
    book.copy(s(40), s(10), Rights::READ_WRITE).unwrap();
    assert_eq!(book.frame_map(s(40), s(0), PRIVATE_GPA + 0x1000, Rights::READ), Err(KernelError::Unsupported));
    book.frame_map(s(40), s(0), PRIVATE_GPA, Rights::READ_WRITE).unwrap();
    // Fewer rights than Microkit mapped: a mapping the book cannot make.
    assert_eq!(book.frame_map(s(40), s(0), PRIVATE_GPA, Rights::READ), Err(KernelError::Unsupported));
    book.copy(s(41), s(10), Rights::READ_WRITE).unwrap();
    assert_eq!(book.frame_map(s(41), s(0), PRIVATE_GPA, Rights::READ_WRITE), Err(KernelError::DeleteFirst));
    assert_eq!(book.frame_map(s(40), s(0), PRIVATE_GPA + 1, Rights::READ), Err(KernelError::AlignmentError));
    // Moving keeps the mapping; revoking the original takes every copy.
    book.move_cap(s(42), s(40)).unwrap();
    assert_eq!(book.frames_mapped(), 1);
    book.revoke(s(10)).unwrap();
    assert_eq!(book.frames_mapped(), 0);
    assert_eq!(book.delete(s(41)), Ok(None), "revoked with the rest");
    // RAM originals: copied and revoked, never moved, deleted or mapped.
    book.copy(s(50), RAM_FRAME_SLOTS, Rights::READ_WRITE).unwrap();
    assert_eq!(book.frame_map(RAM_FRAME_SLOTS, s(0), RAM_GPA, Rights::READ), Err(KernelError::Unsupported));
    assert_eq!(book.move_cap(s(51), RAM_FRAME_SLOTS), Err(KernelError::Unsupported));
    assert_eq!(book.delete(RAM_FRAME_SLOTS), Err(KernelError::Unsupported));
    book.frame_map(s(50), s(0), RAM_GPA, Rights::READ_WRITE).unwrap();
    book.revoke(RAM_FRAME_SLOTS).unwrap();
    assert_eq!(book.frames_mapped(), 0);
    // Page tables only where Microkit built them.
    book.retype(ObjectType::PageTable, s(60)).unwrap();
    assert_eq!(book.page_table_map(s(60), s(0), NOWHERE), Err(KernelError::Unsupported));
    book.page_table_map(s(60), s(0), RAM_GPA).unwrap();
    // Slots outside the core's range are no capability.
    assert_eq!(book.copy(Slot(5), s(11), Rights::READ), Err(KernelError::InvalidCapability));
    // Names past the table are empty slots that hold nothing: deleting one
    // succeeds, nothing can be put there, and nothing is read from there.
    let past = s(TABLE_SLOTS as u64);
    assert!(CORE_SLOTS.contains(past));
    assert_eq!(book.delete(past), Ok(None));
    assert_eq!(book.copy(past, s(10), Rights::READ_WRITE), Err(KernelError::NotEnoughMemory));
    assert_eq!(book.copy(past, RAM_FRAME_SLOTS, Rights::READ_WRITE), Err(KernelError::NotEnoughMemory));
    assert_eq!(book.retype(ObjectType::Frame, past), Err(KernelError::NotEnoughMemory));
    assert_eq!(book.copy(s(12), past, Rights::READ), Err(KernelError::InvalidCapability));
    // After a vCPU ran, no frame is new.
    book.delete(s(11)).unwrap();
    book.resumed();
    assert_eq!(book.retype(ObjectType::Frame, s(11)), Err(KernelError::Unsupported));
}

#[test]
fn only_ram_the_manifest_marks_lockable_can_be_locked() {
    // Both halves of RAM lockable, as in vm1's manifest.
    let map = StaticMap::new(&manifest(false), RAM_FRAME_SLOTS).unwrap();
    assert!(map.lockable(RAM_GPA, 2 * HALF), "a range across two lockable slots");
    // The lower half as a region in 2 MiB pages would be: not lockable.
    let mut m = manifest(false);
    m.slots[0].flags = U32::new(0);
    let map = StaticMap::new(&m, RAM_FRAME_SLOTS).unwrap();
    for (gpa, size) in [(RAM_GPA + HALF, HALF), (RAM_GPA + HALF + 0x1000, 0x1000)] {
        assert!(map.lockable(gpa, size), "{gpa:#x}+{size:#x}");
    }
    let refused = [
        (RAM_GPA, HALF),                   // the slot not marked lockable
        (RAM_GPA + HALF - 0x1000, 0x2000), // straddles into it
        (PRIVATE_GPA, PRIVATE_SIZE),       // guest_memfd
        (0x6000_0000, 0x1000),             // no slot
        (u64::MAX - 0xfff, 0x2000),        // wraps
    ];
    for (gpa, size) in refused {
        assert!(!map.lockable(gpa, size), "{gpa:#x}+{size:#x}");
    }
}

#[test]
fn the_layout_backs_only_what_microkit_mapped() {
    let m = manifest(false);
    let map = StaticMap::new(&m, RAM_FRAME_SLOTS).unwrap();
    let rw = Rights::READ_WRITE;
    assert!(map.backs(RAM_GPA, HALF, RAM_VMM, false, rw));
    assert!(map.backs(RAM_GPA + 0x1000, 0x1000, RAM_VMM + 0x1000, false, rw), "part of a slot");
    assert!(!map.backs(RAM_GPA, HALF, RAM_VMM, false, Rights::READ), "Microkit mapped it writable");
    assert!(!map.backs(RAM_GPA + 0x1000, HALF, RAM_VMM + 0x1000, false, rw), "past the slot's end");
    assert!(!map.backs(RAM_GPA, 0x1000, RAM_VMM + 0x1000, false, rw), "another backing");
    assert!(!map.backs(RAM_GPA, 0x1000, RAM_VMM, true, rw), "RAM, not guest_memfd");
    assert!(map.backs(PRIVATE_GPA, PRIVATE_SIZE, 0, true, rw));
    assert!(!map.backs(PRIVATE_GPA, 0x1000, 0x1000, true, rw), "another file offset");
    assert!(!map.backs(u64::MAX - 0xfff, 0x1000, 0, true, rw));
}
