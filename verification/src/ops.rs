//! The operations a sequence is made of: client requests (each as a client)
//! and guest exits (stage-2 faults), with small bounded fields so that
//! generated sequences keep meeting each other's VMs, slots and files.
//!
//! VMs and files are named relative to the caller ("my first VM", "the
//! other client's file", "the internal VM", "one that does not exist") and
//! resolved against the state when the operation is applied, so random
//! sequences mostly act on what the caller owns and still try everything
//! it does not.

use bolero::{TypeGenerator, ValueGenerator};
use vmm::addr::Gpa;
use vmm::registry::{Owner, Presence};
use vmm::FaultOutcome;
use vmm_abi::limits::PAGE_SIZE;
use vmm_abi::memslot::{MemoryRegion, GUEST_MEMFD, LOCK_READ, LOCK_WRITE, READONLY, UNLOCK_ALL};
use vmm_abi::protocol::CAP_MEM_TAGGING;
use vmm_abi::{Errno, GmemHandle, VcpuId, VmId};

use crate::system::{System, C1, C2, RAM_VADDR};

/// Which client asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, TypeGenerator)]
pub enum Who {
    /// Client 1.
    C1,
    /// Client 2.
    C2,
}

impl Who {
    /// The caller.
    pub fn owner(self) -> Owner {
        match self {
            Who::C1 => C1,
            Who::C2 => C2,
        }
    }
}

/// A VM, as the caller names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, TypeGenerator)]
pub enum VmRef {
    /// The caller's first listed VM.
    Own,
    /// The caller's second listed VM.
    OwnSecond,
    /// The other client's first listed VM.
    Other,
    /// The internal VM.
    Internal,
    /// An identifier no VM has.
    Missing,
}

/// A guest_memfd file, as the caller names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, TypeGenerator)]
pub enum FileRef {
    /// The first open file of one of the caller's VMs.
    Own,
    /// The second.
    OwnSecond,
    /// The other client's first file.
    Other,
    /// A handle no file has.
    Missing,
}

/// An identifier no VM ever has in these bounds.
const NO_VM: VmId = VmId(0x7777);
/// A handle no file ever has in these bounds.
const NO_FILE: u32 = 0x7777;

impl Who {
    fn other(self) -> Who {
        match self {
            Who::C1 => Who::C2,
            Who::C2 => Who::C1,
        }
    }
}

/// The listed VMs of `owner`, by id.
fn vms_of(s: &System, owner: Owner) -> Vec<VmId> {
    let mut ids: Vec<VmId> = s
        .vmm
        .registry()
        .entries()
        .filter(|e| e.owner() == owner && e.presence() == Presence::Listed)
        .map(|e| e.id())
        .collect();
    ids.sort();
    ids
}

/// The open files of `owner`'s VMs, by handle.
fn files_of(s: &System, owner: Owner) -> Vec<u32> {
    let mut hs: Vec<u32> = s
        .vmm
        .gmem()
        .iter()
        .filter(|f| s.vmm.registry().entry(f.vm()).is_some_and(|e| e.owner() == owner))
        .map(|f| f.handle().0)
        .collect();
    hs.sort();
    hs
}

impl VmRef {
    /// Mostly the caller's own VM (6 in 10), so random sequences build
    /// something up, and each of the others 1 in 10.
    pub fn weighted() -> impl ValueGenerator<Output = VmRef> {
        (0u8..10).map_gen(|x| match x {
            0..=5 => VmRef::Own,
            6 => VmRef::OwnSecond,
            7 => VmRef::Other,
            8 => VmRef::Internal,
            _ => VmRef::Missing,
        })
    }

    /// The VM this names when `who` asks in state `s`.
    pub fn resolve(self, s: &System, who: Who) -> VmId {
        let pick = |v: Vec<VmId>, i: usize| v.get(i).copied().unwrap_or(NO_VM);
        match self {
            VmRef::Own => pick(vms_of(s, who.owner()), 0),
            VmRef::OwnSecond => pick(vms_of(s, who.owner()), 1),
            VmRef::Other => pick(vms_of(s, who.other().owner()), 0),
            VmRef::Internal => VmId(1),
            VmRef::Missing => NO_VM,
        }
    }
}

impl FileRef {
    /// Mostly the caller's own first file (6 in 10).
    pub fn weighted() -> impl ValueGenerator<Output = FileRef> {
        (0u8..10).map_gen(|x| match x {
            0..=5 => FileRef::Own,
            6 | 7 => FileRef::OwnSecond,
            8 => FileRef::Other,
            _ => FileRef::Missing,
        })
    }

    /// The handle this names when `who` asks in state `s`.
    pub fn resolve(self, s: &System, who: Who) -> u32 {
        let pick = |v: Vec<u32>, i: usize| v.get(i).copied().unwrap_or(NO_FILE);
        match self {
            FileRef::Own => pick(files_of(s, who.owner()), 0),
            FileRef::OwnSecond => pick(files_of(s, who.owner()), 1),
            FileRef::Other => pick(files_of(s, who.other().owner()), 0),
            FileRef::Missing => NO_FILE,
        }
    }
}

/// One step: a client request or a guest exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, TypeGenerator)]
pub enum Op {
    /// CREATE_VM.
    CreateVm { who: Who },
    /// DESTROY_VM.
    DestroyVm { who: Who, vm: VmRef },
    /// CREATE_VCPU.
    CreateVcpu {
        who: Who,
        #[generator(VmRef::weighted())]
        vm: VmRef,
        #[generator(0..=2)]
        vcpu: u32,
    },
    /// RUN_VCPU.
    RunVcpu {
        who: Who,
        #[generator(VmRef::weighted())]
        vm: VmRef,
        #[generator(0..=2)]
        vcpu: u32,
    },
    /// A RAM-backed SET_USER_MEMORY_REGION2 (create, move or flags).
    SetRam {
        who: Who,
        #[generator(VmRef::weighted())]
        vm: VmRef,
        #[generator(0..3)]
        slot: u32,
        #[generator(0..8)]
        gpa_page: u64,
        #[generator(1..=3)]
        pages: u64,
        #[generator(0..8)]
        ram_page: u64,
        readonly: bool,
    },
    /// A guest_memfd-backed SET_USER_MEMORY_REGION2.
    SetGmem {
        who: Who,
        #[generator(VmRef::weighted())]
        vm: VmRef,
        #[generator(0..3)]
        slot: u32,
        #[generator(0..8)]
        gpa_page: u64,
        #[generator(1..=3)]
        pages: u64,
        #[generator(FileRef::weighted())]
        file: FileRef,
        #[generator(0..4)]
        offset_page: u64,
    },
    /// SET_USER_MEMORY_REGION2 with size 0.
    Delete {
        who: Who,
        #[generator(VmRef::weighted())]
        vm: VmRef,
        #[generator(0..3)]
        slot: u32,
    },
    /// CREATE_GUEST_MEMFD.
    CreateGmem {
        who: Who,
        #[generator(VmRef::weighted())]
        vm: VmRef,
        #[generator(0..=4)]
        pages: u64,
    },
    /// CLOSE.
    CloseGmem { who: Who, file: FileRef },
    /// LOCK.
    Lock {
        who: Who,
        #[generator(VmRef::weighted())]
        vm: VmRef,
        #[generator(0..3)]
        slot: u32,
        write: bool,
    },
    /// UNLOCK or UNLOCK_ALL.
    Unlock {
        who: Who,
        #[generator(VmRef::weighted())]
        vm: VmRef,
        #[generator(0..3)]
        slot: u32,
        all: bool,
    },
    /// ENABLE_CAP (memory tagging).
    EnableCap { who: Who, vm: VmRef },
    /// A stage-2 fault of the guest of a VM of `who`.
    Fault {
        who: Who,
        #[generator(VmRef::weighted())]
        vm: VmRef,
        #[generator(0..12)]
        gpa_page: u64,
        write: bool,
    },
}

/// Guest-physical page `p`.
pub fn gpa(p: u64) -> u64 {
    0x8000_0000 + p * PAGE_SIZE
}

impl Op {
    /// Who asks: the client making the request, or whose VM's guest exits.
    pub fn who(&self) -> Who {
        match *self {
            Op::CreateVm { who }
            | Op::DestroyVm { who, .. }
            | Op::CreateVcpu { who, .. }
            | Op::RunVcpu { who, .. }
            | Op::SetRam { who, .. }
            | Op::SetGmem { who, .. }
            | Op::Delete { who, .. }
            | Op::CreateGmem { who, .. }
            | Op::CloseGmem { who, .. }
            | Op::Lock { who, .. }
            | Op::Unlock { who, .. }
            | Op::EnableCap { who, .. }
            | Op::Fault { who, .. } => who,
        }
    }

    /// The client making the request (`None` for a guest exit).
    pub fn caller(&self) -> Option<Owner> {
        match self {
            Op::Fault { .. } => None,
            _ => Some(self.who().owner()),
        }
    }

    fn vm_ref(&self) -> Option<VmRef> {
        match *self {
            Op::DestroyVm { vm, .. }
            | Op::CreateVcpu { vm, .. }
            | Op::RunVcpu { vm, .. }
            | Op::SetRam { vm, .. }
            | Op::SetGmem { vm, .. }
            | Op::Delete { vm, .. }
            | Op::CreateGmem { vm, .. }
            | Op::Lock { vm, .. }
            | Op::Unlock { vm, .. }
            | Op::EnableCap { vm, .. }
            | Op::Fault { vm, .. } => Some(vm),
            Op::CreateVm { .. } | Op::CloseGmem { .. } => None,
        }
    }

    /// The VM the operation names in state `s` (for CLOSE, the file's VM).
    pub fn named_vm(&self, s: &System) -> Option<VmId> {
        match *self {
            Op::CloseGmem { who, file } => s.vmm.guest_memfd_vm(GmemHandle(file.resolve(s, who))),
            _ => self.vm_ref().map(|r| r.resolve(s, self.who())),
        }
    }

    /// Applies the operation. Guest exits report their outcome as a number.
    pub fn apply(&self, s: &mut System) -> Result<u64, Errno> {
        let who = self.who();
        let caller = who.owner();
        let vm = self.vm_ref().map_or(NO_VM, |r| r.resolve(s, who));
        let v = &mut s.vmm;
        let r = match *self {
            Op::CreateVm { .. } => v.create_vm(caller).map(|id| u64::from(id.0)),
            Op::DestroyVm { .. } => v.destroy_vm(caller, vm).map(|()| 0),
            Op::CreateVcpu { vcpu, .. } => v.create_vcpu(caller, vm, VcpuId(vcpu)).map(|()| 0),
            Op::RunVcpu { vcpu, .. } => v.run_vcpu(caller, vm, VcpuId(vcpu), gpa(0), 0).map(|()| 0),
            Op::SetRam { slot, gpa_page, pages, ram_page, readonly, .. } => {
                let region = MemoryRegion {
                    slot,
                    flags: if readonly { READONLY } else { 0 },
                    guest_phys_addr: gpa(gpa_page),
                    memory_size: pages * PAGE_SIZE,
                    userspace_addr: RAM_VADDR + ram_page * PAGE_SIZE,
                    ..MemoryRegion::default()
                };
                v.set_memory_region(caller, vm, &region).map(|()| 0)
            }
            Op::SetGmem { slot, gpa_page, pages, file, offset_page, .. } => {
                let handle = file.resolve(s, who);
                let region = MemoryRegion {
                    slot,
                    flags: GUEST_MEMFD,
                    guest_phys_addr: gpa(gpa_page),
                    memory_size: pages * PAGE_SIZE,
                    guest_memfd: handle,
                    guest_memfd_offset: offset_page * PAGE_SIZE,
                    ..MemoryRegion::default()
                };
                s.vmm.set_memory_region(caller, vm, &region).map(|()| 0)
            }
            Op::Delete { slot, .. } => {
                let region = MemoryRegion { slot, ..MemoryRegion::default() };
                v.set_memory_region(caller, vm, &region).map(|()| 0)
            }
            Op::CreateGmem { pages, .. } => v.create_guest_memfd(caller, vm, pages * PAGE_SIZE, 0).map(u64::from),
            Op::CloseGmem { file, .. } => {
                let handle = GmemHandle(file.resolve(s, who));
                s.vmm.close_guest_memfd(caller, handle).map(|()| 0)
            }
            Op::Lock { slot, write, .. } => {
                let flags = if write { LOCK_READ | LOCK_WRITE } else { LOCK_READ };
                v.lock_memslot(caller, vm, slot, flags).map(|()| 0)
            }
            Op::Unlock { slot, all, .. } => {
                v.unlock_memslot(caller, vm, slot, if all { UNLOCK_ALL } else { 0 }).map(|()| 0)
            }
            Op::EnableCap { .. } => v.enable_cap(caller, vm, CAP_MEM_TAGGING, 0).map(|()| 0),
            Op::Fault { gpa_page, write, .. } => v.stage2_fault(vm, Gpa(gpa(gpa_page)), write).map(|o| match o {
                FaultOutcome::Mapped => 0,
                FaultOutcome::ReadOnlyWrite => 1,
                FaultOutcome::Unmapped => 2,
                FaultOutcome::NoBacking => 3,
            }),
        };
        r.map_err(|e| e.errno())
    }
}

/// Applies `op` as one step: the hooks' record then holds this step's calls.
pub fn step(s: &mut System, op: Op) -> Result<u64, Errno> {
    s.vmm.hooks_mut().calls.clear();
    op.apply(s)
}

/// The actions of the exhaustive check: every kind of request, each in a
/// few shapes chosen to meet (overlapping ranges, a move, a read-only slot,
/// the same file twice, another client's VM and file, the internal VM, a
/// locked slot, faults in RAM, read-only and private pages).
pub fn exhaustive_actions() -> Vec<Op> {
    use FileRef::{Other as OtherFile, Own as MyFile};
    use VmRef::{Internal, Other, Own};
    use Who::{C1 as A, C2 as B};
    let ram = |who, vm, slot, gpa_page, pages, ram_page, readonly| Op::SetRam {
        who,
        vm,
        slot,
        gpa_page,
        pages,
        ram_page,
        readonly,
    };
    let gm = |who, vm, slot, gpa_page, pages, file, offset_page| Op::SetGmem {
        who,
        vm,
        slot,
        gpa_page,
        pages,
        file,
        offset_page,
    };
    vec![
        Op::CreateVm { who: A },
        Op::CreateVm { who: B },
        Op::DestroyVm { who: A, vm: Own },
        Op::DestroyVm { who: B, vm: Own },
        Op::DestroyVm { who: B, vm: Other },
        Op::DestroyVm { who: A, vm: Internal },
        Op::CreateGmem { who: A, vm: Own, pages: 2 },
        Op::CreateGmem { who: B, vm: Own, pages: 1 },
        Op::CloseGmem { who: A, file: MyFile },
        Op::CloseGmem { who: B, file: MyFile },
        Op::CloseGmem { who: B, file: OtherFile },
        ram(A, Own, 0, 0, 2, 0, false),
        ram(A, Own, 0, 4, 2, 0, false),
        ram(A, Own, 1, 1, 1, 2, false),
        ram(A, Own, 1, 2, 1, 2, true),
        ram(B, Own, 0, 0, 2, 0, false),
        ram(B, Other, 2, 6, 1, 3, false),
        ram(A, Internal, 0, 0, 1, 0, false),
        gm(A, Own, 2, 6, 1, MyFile, 0),
        gm(A, Own, 1, 3, 1, MyFile, 1),
        gm(B, Own, 1, 3, 1, OtherFile, 0),
        gm(B, Own, 2, 6, 1, MyFile, 0),
        Op::Delete { who: A, vm: Own, slot: 0 },
        Op::Delete { who: A, vm: Own, slot: 2 },
        Op::Lock { who: A, vm: Own, slot: 0, write: true },
        Op::Lock { who: A, vm: Own, slot: 1, write: true },
        Op::Lock { who: B, vm: Own, slot: 0, write: false },
        Op::Unlock { who: A, vm: Own, slot: 0, all: false },
        Op::Unlock { who: A, vm: Own, slot: 0, all: true },
        Op::EnableCap { who: A, vm: Own },
        Op::Fault { who: A, vm: Own, gpa_page: 0, write: true },
        Op::Fault { who: A, vm: Own, gpa_page: 2, write: true },
        Op::Fault { who: A, vm: Own, gpa_page: 6, write: true },
        Op::Fault { who: B, vm: Own, gpa_page: 3, write: false },
    ]
}
