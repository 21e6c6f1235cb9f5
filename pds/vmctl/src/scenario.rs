//! The scenario, in three acts separated by the VM's stops (the VMM
//! notifies its client when its VM stops):
//!
//! 1. create the VM and its vCPU, set the memslots the manifest describes,
//!    create and bind the guest_memfd files, try to lock a slot the
//!    manifest does not mark lockable (refused), lock one, run the guest in
//!    its normal mode; then send malformed and forbidden requests, and
//!    requests that would take memory back from the running guest (move or
//!    delete a memslot, close a bound guest_memfd), which Microkit cannot
//!    do; each must be refused with its errno and change nothing (the guest
//!    still runs to PSCI SYSTEM_OFF afterwards);
//! 2. when it has switched off: destroy the VM, close its files, re-create
//!    it (the VMM reloads the guest image before its first run) and run it
//!    in the faulting mode, where it touches an address outside every
//!    memslot and only this VM stops (before that, a guest_memfd is refused
//!    because a guest has run, and memory Microkit did not map as asked, a
//!    memslot where it mapped none, a read-only one over writable memory and
//!    a READ lock of writable memory, is refused);
//! 3. when it has stopped: destroy it and print the tally.

use heapless::Vec;
use sel4_microkit::debug_println;

use vmm_abi::limits::MAX_GMEM_FILES;
use vmm_abi::manifest::SlotEntry;
use vmm_abi::memslot::{MemoryRegion, GUEST_MEMFD, LOCK_READ, LOCK_WRITE, READONLY};
use vmm_abi::protocol::{Request, CAP_MEM_TAGGING};
use vmm_abi::{Errno, GmemHandle, VcpuId, VmId};

use crate::checks::{Checks, Want};
use crate::client::{call, call_raw, encode};
use crate::plan::{pages, Plan};

/// A VM id the VMM never handed out.
const NO_SUCH_VM: VmId = VmId(77);
/// A guest_memfd handle the VMM never handed out.
const NO_SUCH_FILE: u32 = 999;
/// A memslot id the manifest does not use.
const SPARE_SLOT: u32 = 3;
/// A memslot flag the VMM does not know.
const UNKNOWN_FLAG: u32 = 1 << 7;
/// A register number that names no register.
const NO_SUCH_REG: u32 = 0x99;
/// A label that names no request.
const NO_SUCH_LABEL: u64 = 0x99;

/// Where the scenario is.
enum Act {
    /// The first VM runs in the normal mode, with these files.
    FirstRun { vm: VmId, files: Vec<u32, MAX_GMEM_FILES> },
    /// The re-created VM runs in the faulting mode.
    SecondRun { vm: VmId },
    /// Over.
    Done,
}

/// The scenario and its tally.
pub struct Scenario {
    c: Checks,
    plan: Plan,
    act: Act,
}

impl Scenario {
    /// Act 1.
    pub fn begin(plan: Plan) -> Scenario {
        let mut s = Scenario { c: Checks::default(), plan, act: Act::Done };
        debug_println!("vmctl: driving the VM of {} over protected calls", s.plan.vmm);
        let Some(vm) = s.create_vm("create the VM") else {
            s.c.summary();
            return s;
        };
        s.create_vcpu(vm);
        s.set_ram_slots(vm);
        let files = s.create_files(vm);
        s.set_gmem_slots(vm, &files);
        s.lock_not_lockable(vm);
        s.lock(vm);
        s.run(vm, board::guest_mode::NORMAL, "normal mode");
        s.malformed(vm, &files);
        s.nothing_taken_back(vm, &files);
        debug_println!("vmctl: waiting for VM {} to switch off", vm.0);
        s.act = Act::FirstRun { vm, files };
        s
    }

    /// The VMM reports that the VM stopped: the next act.
    pub fn vm_stopped(&mut self) {
        match core::mem::replace(&mut self.act, Act::Done) {
            Act::FirstRun { vm, files } => {
                debug_println!("vmctl: the VMM reports that VM {} stopped", vm.0);
                self.second_act(vm, &files);
            }
            Act::SecondRun { vm } => {
                debug_println!("vmctl: the VMM reports that VM {} stopped", vm.0);
                let _ = self.c.check(format_args!("destroy VM {}", vm.0), call(&Request::DestroyVm { vm }), Want::Ok);
                self.c.summary();
            }
            Act::Done => debug_println!("vmctl: the VMM reports a stop, but no VM of vmctl runs"),
        }
    }

    /// Act 2: destroy, re-create, run in the faulting mode.
    fn second_act(&mut self, vm: VmId, files: &[u32]) {
        let c = &mut self.c;
        let _ = c.check(format_args!("destroy VM {}", vm.0), call(&Request::DestroyVm { vm }), Want::Ok);
        let _ = c.check(
            format_args!("create a vCPU of the destroyed VM {}", vm.0),
            call(&Request::CreateVcpu { vm, vcpu: VcpuId(0) }),
            Want::Err(Errno::ENOENT),
        );
        for fd in files {
            let _ = c.check(
                format_args!("close guest_memfd {fd}"),
                call(&Request::CloseGuestMemfd { handle: GmemHandle(*fd) }),
                Want::Ok,
            );
        }
        let Some(vm) = self.create_vm("re-create the VM") else {
            self.c.summary();
            return;
        };
        self.create_vcpu(vm);
        self.readonly_over_writable(vm);
        self.set_ram_slots(vm);
        for size in self.plan.files() {
            // A new guest_memfd must start zeroed; the VMM has no mapping
            // of private memory to zero it with, and a guest has run.
            let _ = self.c.check(
                format_args!("create a guest_memfd of {size:#x} bytes after a guest ran (its pages cannot be zeroed)"),
                call(&Request::CreateGuestMemfd { vm, size, flags: 0 }),
                Want::Err(Errno::EOPNOTSUPP),
            );
        }
        self.unsupported_mapping(vm);
        self.lock_read_only(vm);
        self.lock(vm);
        self.run(vm, board::guest_mode::FAULT, "faulting mode");
        debug_println!("vmctl: waiting for VM {} to stop", vm.0);
        self.act = Act::SecondRun { vm };
    }

    /// A memslot where Microkit mapped no memory: the VMM cannot give the
    /// guest any, so it is refused with EOPNOTSUPP and changes nothing.
    fn unsupported_mapping(&mut self, vm: VmId) {
        let Some(first) = self.plan.ram_slots.first().copied() else { return };
        let gpa = board::GUEST_UNMAPPED_ADDR;
        let region = MemoryRegion {
            slot: SPARE_SLOT,
            guest_phys_addr: gpa,
            memory_size: 0x1000,
            userspace_addr: first.source.get(),
            ..MemoryRegion::default()
        };
        let c = &mut self.c;
        let _ = c.check(
            format_args!("set memslot {SPARE_SLOT}: RAM at {gpa:#x}, where Microkit mapped none"),
            call(&Request::SetMemoryRegion { vm, region }),
            Want::Err(Errno::EOPNOTSUPP),
        );
    }

    /// One of the manifest's slots made read-only, before it is set: Microkit
    /// maps it writable, so the VMM cannot give the guest a read-only view.
    fn readonly_over_writable(&mut self, vm: VmId) {
        let Some(first) = self.plan.ram_slots.first().copied() else { return };
        let readonly = MemoryRegion { flags: READONLY, ..first.region(0) };
        let _ = self.c.check(
            format_args!("set memslot {} read-only, which Microkit maps writable", first.id.get()),
            call(&Request::SetMemoryRegion { vm, region: readonly }),
            Want::Err(Errno::EOPNOTSUPP),
        );
    }

    /// While the VM exists, nothing can be taken back from its guest:
    /// Microkit mapped its memory for good. Moving or deleting a memslot,
    /// a READ lock of writable memory and closing a bound guest_memfd are
    /// each refused with EOPNOTSUPP and change nothing.
    fn nothing_taken_back(&mut self, vm: VmId, files: &[u32]) {
        let c = &mut self.c;
        let plan = &self.plan;
        let other: Option<SlotEntry> = plan.ram_slots.iter().find(|s| Some(**s) != plan.lock).copied();
        if let Some(s) = other {
            let id = s.id.get();
            let moved = MemoryRegion { guest_phys_addr: board::GUEST_UNMAPPED_ADDR, ..s.region(0) };
            let _ = c.check(
                format_args!("move memslot {id} while its VM exists"),
                call(&Request::SetMemoryRegion { vm, region: moved }),
                Want::Err(Errno::EOPNOTSUPP),
            );
            let delete = MemoryRegion { slot: id, ..MemoryRegion::default() };
            let _ = c.check(
                format_args!("delete memslot {id} while its VM exists"),
                call(&Request::SetMemoryRegion { vm, region: delete }),
                Want::Err(Errno::EOPNOTSUPP),
            );
        }
        if let (Some(s), Some(fd)) = (plan.gmem_slots.first(), files.first()) {
            let _ = c.check(
                format_args!("close guest_memfd {fd}, bound to memslot {} of a VM that exists", s.id.get()),
                call(&Request::CloseGuestMemfd { handle: GmemHandle(*fd) }),
                Want::Err(Errno::EOPNOTSUPP),
            );
        }
    }

    /// A READ lock would map writable memory read-only: refused.
    fn lock_read_only(&mut self, vm: VmId) {
        let Some(s) = self.plan.lock else { return };
        let _ = self.c.check(
            format_args!("lock memslot {} READ only, which Microkit maps writable", s.id.get()),
            call(&Request::LockMemslot { vm, slot: s.id.get(), flags: LOCK_READ }),
            Want::Err(Errno::EOPNOTSUPP),
        );
    }

    fn create_vm(&mut self, what: &str) -> Option<VmId> {
        let got = self.c.check(format_args!("{what}"), call(&Request::CreateVm), Want::Ok);
        got.ok().and_then(|id| u32::try_from(id).ok()).map(VmId)
    }

    fn create_vcpu(&mut self, vm: VmId) {
        let _ = self.c.check(
            format_args!("create vCPU 0 of VM {}", vm.0),
            call(&Request::CreateVcpu { vm, vcpu: VcpuId(0) }),
            Want::Ok,
        );
    }

    fn set_ram_slots(&mut self, vm: VmId) {
        for s in self.plan.ram_slots.clone() {
            let region = s.region(0);
            let _ = self.c.check(
                format_args!(
                    "set memslot {}: RAM at {:#x}, {:#x} bytes, from {:#x}",
                    s.id.get(),
                    s.gpa.get(),
                    s.size.get(),
                    s.source.get()
                ),
                call(&Request::SetMemoryRegion { vm, region }),
                Want::Ok,
            );
        }
    }

    fn create_files(&mut self, vm: VmId) -> Vec<u32, MAX_GMEM_FILES> {
        let mut files = Vec::new();
        for size in self.plan.files() {
            let got = self.c.check(
                format_args!("create a guest_memfd of {size:#x} bytes"),
                call(&Request::CreateGuestMemfd { vm, size, flags: 0 }),
                Want::Ok,
            );
            if let Some(fd) = got.ok().and_then(|fd| u32::try_from(fd).ok()) {
                let _ = files.push(fd);
            }
        }
        files
    }

    fn set_gmem_slots(&mut self, vm: VmId, files: &[u32]) {
        for s in self.plan.gmem_slots.clone() {
            let Some(fd) = files.get(s.file.get() as usize).copied() else {
                self.c.fail(format_args!("set memslot {}: its guest_memfd was not created", s.id.get()));
                continue;
            };
            let region = s.region(fd);
            let _ = self.c.check(
                format_args!(
                    "set memslot {}: guest_memfd {fd} at {:#x}, {:#x} bytes, offset {:#x}",
                    s.id.get(),
                    s.gpa.get(),
                    s.size.get(),
                    s.source.get()
                ),
                call(&Request::SetMemoryRegion { vm, region }),
                Want::Ok,
            );
        }
    }

    /// A RAM slot the manifest does not mark lockable (its memory is not
    /// in 4 KiB pages the VMM may pin): refused while the budget still
    /// has room, so that the refusal is the VMM's and not the budget's.
    fn lock_not_lockable(&mut self, vm: VmId) {
        let Some(s) = self.plan.not_lockable else { return };
        let _ = self.c.check(
            format_args!(
                "lock memslot {} ({} pages), which the manifest does not mark lockable",
                s.id.get(),
                pages(&s)
            ),
            call(&Request::LockMemslot { vm, slot: s.id.get(), flags: LOCK_READ }),
            Want::Err(Errno::EOPNOTSUPP),
        );
    }

    fn lock(&mut self, vm: VmId) {
        let Some(s) = self.plan.lock else {
            self.c.fail(format_args!("lock: the manifest has no lockable slot within the budget"));
            return;
        };
        let _ = self.c.check(
            format_args!(
                "lock memslot {} READ|WRITE ({} pages; budget {})",
                s.id.get(),
                pages(&s),
                self.plan.manifest.memlock_pages
            ),
            call(&Request::LockMemslot { vm, slot: s.id.get(), flags: LOCK_READ | LOCK_WRITE }),
            Want::Ok,
        );
    }

    fn run(&mut self, vm: VmId, mode: u64, how: &str) {
        let entry = self.plan.manifest.entry;
        let _ = self.c.check(
            format_args!("run vCPU 0 of VM {} at {entry:#x}, {how}", vm.0),
            call(&Request::RunVcpu { vm, vcpu: VcpuId(0), entry, arg: mode }),
            Want::Ok,
        );
    }

    /// Malformed and forbidden requests while the guest runs: each refused
    /// with its errno, none changing anything.
    fn malformed(&mut self, vm: VmId, files: &[u32]) {
        let c = &mut self.c;
        let plan = &self.plan;
        let entry = plan.manifest.entry;
        let err = Want::Err;

        let _ = c.check(format_args!("unknown label"), call_raw(NO_SUCH_LABEL, &[], 0), err(Errno::EOPNOTSUPP));
        let (l, payload, len) = encode(&Request::RunVcpu { vm, vcpu: VcpuId(0), entry, arg: 0 });
        let short = (len / 8).saturating_sub(1);
        let _ = c.check(
            format_args!("RUN_VCPU with a short payload ({short} of {} words)", len / 8),
            call_raw(l, &payload, short),
            err(Errno::EINVAL),
        );
        let (l, mut payload, len) = encode(&Request::DestroyVm { vm });
        if let Some(pad) = payload.get_mut(4) {
            *pad = 1;
        }
        let _ = c.check(
            format_args!("DESTROY_VM with non-zero padding"),
            call_raw(l, &payload, len.div_ceil(8)),
            err(Errno::EINVAL),
        );
        let _ = c.check(
            format_args!("destroy VM {}, which does not exist", NO_SUCH_VM.0),
            call(&Request::DestroyVm { vm: NO_SUCH_VM }),
            err(Errno::ENOENT),
        );
        let vcpus = plan.manifest.vcpus;
        let _ = c.check(
            format_args!("create vCPU {vcpus}, beyond the VM's {vcpus}"),
            call(&Request::CreateVcpu { vm, vcpu: VcpuId(vcpus) }),
            err(Errno::EINVAL),
        );
        let _ = c.check(
            format_args!("create vCPU 0 again"),
            call(&Request::CreateVcpu { vm, vcpu: VcpuId(0) }),
            err(Errno::EEXIST),
        );
        let _ = c.check(
            format_args!("run vCPU 0 while it runs"),
            call(&Request::RunVcpu { vm, vcpu: VcpuId(0), entry, arg: 0 }),
            err(Errno::EBUSY),
        );

        // Memslots: a spare slot id, against the manifest's slots.
        if let Some(first) = plan.ram_slots.first().copied() {
            let region = |gpa: u64, size: u64, uaddr: u64, flags: u32| MemoryRegion {
                slot: SPARE_SLOT,
                flags,
                guest_phys_addr: gpa,
                memory_size: size,
                userspace_addr: uaddr,
                ..MemoryRegion::default()
            };
            let end = first.gpa.get() + first.size.get();
            let src = first.source.get();
            let away = board::GUEST_UNMAPPED_ADDR;
            let mut set = |what: core::fmt::Arguments<'_>, r: MemoryRegion, want: Errno| {
                let _ = c.check(what, call(&Request::SetMemoryRegion { vm, region: r }), err(want));
            };
            set(
                format_args!("memslot overlapping memslot {} at {:#x}", first.id.get(), end - 0x1000),
                region(end - 0x1000, 0x2000, src, 0),
                Errno::EEXIST,
            );
            set(format_args!("memslot at an unaligned address"), region(away + 0x800, 0x1000, src, 0), Errno::EINVAL);
            set(format_args!("memslot with an unknown flag"), region(away, 0x1000, src, UNKNOWN_FLAG), Errno::EINVAL);
            set(
                format_args!("memslot both guest_memfd and read-only"),
                MemoryRegion {
                    guest_memfd: files.first().copied().unwrap_or(0),
                    ..region(away, 0x1000, 0, GUEST_MEMFD | READONLY)
                },
                Errno::EINVAL,
            );
            let beyond = plan.manifest.ram.iter().map(|r| r.vmm_vaddr.get() + r.size.get()).max().unwrap_or(0);
            set(
                format_args!("memslot backed at {beyond:#x}, outside guest RAM"),
                region(away, 0x1000, beyond, 0),
                Errno::EINVAL,
            );
        }

        // Locks.
        if let Some(locked) = plan.lock {
            let id = locked.id.get();
            let delete = MemoryRegion { slot: id, ..MemoryRegion::default() };
            let _ = c.check(
                format_args!("delete the locked memslot {id}"),
                call(&Request::SetMemoryRegion { vm, region: delete }),
                err(Errno::EBUSY),
            );
            let _ = c.check(
                format_args!("lock memslot {id} again"),
                call(&Request::LockMemslot { vm, slot: id, flags: LOCK_READ }),
                err(Errno::EBUSY),
            );
            let _ = c.check(
                format_args!("enable memory tagging while a slot is locked"),
                call(&Request::EnableCap { vm, cap: CAP_MEM_TAGGING, arg: 0 }),
                err(Errno::EPERM),
            );
        }
        if let Some(s) = plan.over_budget {
            let _ = c.check(
                format_args!("lock memslot {} too ({} pages, beyond the budget)", s.id.get(), pages(&s)),
                call(&Request::LockMemslot { vm, slot: s.id.get(), flags: LOCK_READ }),
                err(Errno::ENOMEM),
            );
        }
        let other: Option<SlotEntry> = plan.ram_slots.iter().find(|s| Some(**s) != plan.lock).copied();
        if let Some(s) = other {
            let _ = c.check(
                format_args!("lock memslot {} without READ", s.id.get()),
                call(&Request::LockMemslot { vm, slot: s.id.get(), flags: LOCK_WRITE }),
                err(Errno::EINVAL),
            );
        }
        if let Some(s) = plan.gmem_slots.first() {
            let _ = c.check(
                format_args!("lock the guest_memfd memslot {}", s.id.get()),
                call(&Request::LockMemslot { vm, slot: s.id.get(), flags: LOCK_READ }),
                err(Errno::EINVAL),
            );
        }

        // guest_memfd files.
        let _ = c.check(
            format_args!("guest_memfd with flags"),
            call(&Request::CreateGuestMemfd { vm, size: 0x1000, flags: 1 }),
            err(Errno::EINVAL),
        );
        let _ = c.check(
            format_args!("guest_memfd of size 0"),
            call(&Request::CreateGuestMemfd { vm, size: 0, flags: 0 }),
            err(Errno::EINVAL),
        );
        let _ = c.check(
            format_args!("close guest_memfd {NO_SUCH_FILE}, which does not exist"),
            call(&Request::CloseGuestMemfd { handle: GmemHandle(NO_SUCH_FILE) }),
            err(Errno::EBADF),
        );
        let _ = c.check(
            format_args!("read register {NO_SUCH_REG:#x}, which does not exist"),
            call(&Request::GetReg { vm, vcpu: VcpuId(0), reg: NO_SUCH_REG }),
            err(Errno::EINVAL),
        );
    }
}
