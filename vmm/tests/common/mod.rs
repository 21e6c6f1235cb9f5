//! The world the host tests run in: the core on the seL4 model, with guest
//! RAM mapped into the VMM, three clients and recording arch hooks; plus
//! the checks every test leans on (nothing changed on failure, isolation
//! and accounting invariants after every step).

#![allow(dead_code)]

pub mod exit_guest;

use std::string::String;
use std::vec::Vec;

#[allow(unused_imports)] // not every test binary names an address
pub use vmm::addr::Gpa;
use vmm::caps::{Slot, SlotRange};
use vmm::config::{ClientConfig, RamRegion, VmmConfig};
use vmm::platform::Platform;
use vmm::registry::Owner;
use vmm::{Error, Vmm};
use vmm_abi::limits::{MAX_PAGE_TABLES, PAGE_SIZE};
use vmm_abi::memslot::{MemoryRegion, GUEST_MEMFD};
pub use vmm_abi::GmemHandle;
#[allow(unused_imports)] // not every test binary names a vCPU
pub use vmm_abi::VcpuId;
use vmm_abi::VmId;
use vmm_abi::{ClientId, Errno};
use vmm_model::Model;

/// The VMM's own VSpace.
pub const VMM_VSPACE: Slot = Slot(1);
/// First frame of guest RAM in the VMM's CSpace.
pub const RAM_FRAMES: Slot = Slot(0x1000);
/// Guest RAM pages.
pub const RAM_PAGES: u64 = 512;
/// Where guest RAM is mapped in the VMM.
pub const RAM_VADDR: u64 = 0x4000_0000;
/// The slots the core may allocate.
pub const CSPACE: SlotRange = SlotRange { base: Slot(1 << 20), len: 1 << 22 };
/// Untyped memory for everything the core creates.
pub const UNTYPED: u64 = 64 << 20;

/// A client with a budget of 16 pages.
pub const A: Owner = Owner::Client(ClientId(1));
/// A client with a budget of 4 pages.
pub const B: Owner = Owner::Client(ClientId(2));
/// A privileged client (no memlock limit).
pub const P: Owner = Owner::Client(ClientId(3));
/// A channel with no client configured on it.
pub const STRANGER: Owner = Owner::Client(ClientId(9));

/// A platform that records its calls and whether shared resources are
/// enabled; `fail_add` makes the next add refuse, `refuse_create` and
/// `refuse_run` refuse every creation or RUN, `pinnable` (when set) is the
/// only guest-physical range it can pin, `backable` (when set) the only one
/// it can back memslots in, `cannot_revoke` makes it a platform that cannot
/// take memory back from a guest, and `uart` is the device each new VM gets.
#[derive(Clone, Debug, Default)]
pub struct Hooks {
    /// The registry hooks' calls.
    pub log: Vec<String>,
    /// The platform's own: creations and RUNs it was asked about.
    pub asked: Vec<String>,
    pub enabled: bool,
    pub fail_add: Option<Errno>,
    pub refuse_create: Option<Errno>,
    pub refuse_run: Option<Errno>,
    pub pinnable: Option<std::ops::Range<u64>>,
    pub backable: Option<std::ops::Range<u64>>,
    pub cannot_revoke: bool,
    pub uart: Option<u64>,
    /// The guests' count the platform reads (`None`: it has no clock).
    pub now: Option<u64>,
}

/// Hooks compare by their effect (shared resources enabled), not by the log
/// of attempts: a refused add leaves the effect unchanged.
impl PartialEq for Hooks {
    fn eq(&self, other: &Hooks) -> bool {
        self.enabled == other.enabled
    }
}
impl Eq for Hooks {}

impl Platform for Hooks {
    fn add(&mut self, vm: VmId, count: u32) -> Result<(), Errno> {
        self.log.push(format!("add {} {}", vm.0, count));
        if let Some(e) = self.fail_add.take() {
            return Err(e);
        }
        if count == 1 {
            self.enabled = true;
        }
        Ok(())
    }
    fn remove(&mut self, vm: VmId) {
        self.log.push(format!("remove {}", vm.0));
    }
    fn drop(&mut self, count: u32) {
        self.log.push(format!("drop {count}"));
        if count == 0 {
            self.enabled = false;
        }
    }
    fn vm_created(&mut self, vm: VmId, _owner: Owner, devices: &mut vmm::devices::DeviceMap) -> Result<(), Errno> {
        self.asked.push(format!("created {}", vm.0));
        if let Some(e) = self.refuse_create {
            return Err(e);
        }
        if let Some(base) = self.uart {
            let uart = vmm::devices::Device::Pl011(vmm::devices::pl011::Pl011::new());
            devices.register(Gpa(base), 0x1000, uart).map_err(|e| vmm::Error::from(e).errno())?;
        }
        Ok(())
    }
    fn before_run(&mut self, vm: VmId) -> Result<(), Errno> {
        self.asked.push(format!("run {}", vm.0));
        self.refuse_run.map_or(Ok(()), Err)
    }
    fn can_pin(&self, gpa: Gpa, size: u64) -> bool {
        self.pinnable.as_ref().is_none_or(|r| r.start <= gpa.0 && gpa.0 + size <= r.end)
    }
    fn can_back(&self, region: &MemoryRegion) -> bool {
        let (gpa, size) = (region.guest_phys_addr, region.memory_size);
        self.backable.as_ref().is_none_or(|r| r.start <= gpa && gpa + size <= r.end)
    }
    fn can_revoke(&self) -> bool {
        !self.cannot_revoke
    }
    fn now(&mut self) -> Option<u64> {
        self.now
    }
}

pub type TestVmm = Vmm<Model, Hooks>;

/// The configuration of the test world.
pub fn config() -> VmmConfig {
    let mut ram = heapless::Vec::new();
    ram.push(RamRegion { vmm_vaddr: RAM_VADDR, pages: RAM_PAGES, frames: RAM_FRAMES }).unwrap();
    let mut clients = heapless::Vec::new();
    clients.push(ClientConfig { id: ClientId(1), memlock_pages: 16, privileged: false }).unwrap();
    clients.push(ClientConfig { id: ClientId(2), memlock_pages: 4, privileged: false }).unwrap();
    clients.push(ClientConfig { id: ClientId(3), memlock_pages: 0, privileged: true }).unwrap();
    VmmConfig { cspace: CSPACE, ram, clients, vcpu_limit: 4, dirty_log: true, page_tables: MAX_PAGE_TABLES }
}

/// A model with the VMM's VSpace and guest RAM set up.
pub fn model(untyped: u64) -> Model {
    let mut m = Model::new(untyped + (RAM_PAGES + 2) * PAGE_SIZE * 2);
    m.setup_vspace(VMM_VSPACE).unwrap();
    m.setup_ram(RAM_FRAMES, RAM_PAGES, VMM_VSPACE, RAM_VADDR).unwrap();
    m
}

/// A fresh VMM (boxed: its tables are large).
pub fn world() -> Box<TestVmm> {
    world_with(config(), UNTYPED)
}

/// A fresh VMM with its own configuration and untyped memory.
pub fn world_with(config: VmmConfig, untyped: u64) -> Box<TestVmm> {
    Box::new(Vmm::new(model(untyped), Hooks::default(), config).unwrap())
}

/// A RAM-backed region: slot `id`, `pages` pages at `gpa`, backed from RAM
/// page `ram_page`.
pub fn ram_region(id: u32, gpa: u64, pages: u64, ram_page: u64) -> MemoryRegion {
    MemoryRegion {
        slot: id,
        flags: 0,
        guest_phys_addr: gpa,
        memory_size: pages * PAGE_SIZE,
        userspace_addr: RAM_VADDR + ram_page * PAGE_SIZE,
        ..MemoryRegion::default()
    }
}

/// A guest_memfd-backed region.
pub fn gmem_region(id: u32, gpa: u64, pages: u64, handle: GmemHandle, offset_pages: u64) -> MemoryRegion {
    MemoryRegion {
        slot: id,
        flags: GUEST_MEMFD,
        guest_phys_addr: gpa,
        memory_size: pages * PAGE_SIZE,
        userspace_addr: 0,
        guest_memfd: handle.0,
        guest_memfd_offset: offset_pages * PAGE_SIZE,
    }
}

/// Runs `op`, which must fail with `errno`, and checks that nothing
/// observable changed: capabilities, mappings, objects, untyped memory,
/// registry (usage count, entries, owners, file references), memslots,
/// bindings, charges, slot allocation and the hooks' effect.
pub fn fails_unchanged<T: std::fmt::Debug>(
    v: &mut TestVmm,
    errno: Errno,
    op: impl FnOnce(&mut TestVmm) -> Result<T, Error>,
) {
    let before = v.clone();
    let r = op(v);
    match r {
        Err(e) => assert_eq!(e.errno(), errno, "wrong errno: {e} ({e:?})"),
        Ok(x) => panic!("expected {errno:?}, got Ok({x:?})"),
    }
    assert!(*v == before, "a failed request changed the state");
    // The hooks' calls too: none, but for the one add a refusing hook made.
    let (old, now) = (&before.hooks().log, &v.hooks().log);
    assert_eq!(now.get(..old.len()), Some(&old[..]), "the hook log was rewritten");
    let new_calls = &now[old.len()..];
    let hook_refused = before.hooks().fail_add.is_some() && v.hooks().fail_add.is_none();
    if hook_refused {
        assert!(new_calls.len() == 1 && new_calls[0].starts_with("add "), "hook calls {new_calls:?}");
    } else {
        assert!(new_calls.is_empty(), "a failed request called arch hooks: {new_calls:?}");
    }
    check_invariants(v);
}

/// `op` must fail with `errno`, with exactly the error `want` (several rules
/// share an errno; this names which one refused), and change nothing.
pub fn refused<T: std::fmt::Debug>(
    v: &mut TestVmm,
    errno: Errno,
    want: Error,
    op: impl FnOnce(&mut TestVmm) -> Result<T, Error>,
) {
    fails_unchanged(v, errno, |v| {
        let r = op(v);
        assert_eq!(r.as_ref().err(), Some(&want), "refused for the wrong reason");
        r
    });
}

/// A fresh world with one VM owned by `owner`.
pub fn world_with_vm(owner: Owner) -> (Box<TestVmm>, VmId) {
    let mut v = world();
    let vm = v.create_vm(owner).unwrap();
    (v, vm)
}

/// The VSpace object of VM `id`.
pub fn vm_vspace(v: &TestVmm, id: VmId) -> Option<u64> {
    vmm_model::invariants::vspace_of(v, id)
}

/// Every invariant the tests rely on, checked on the whole state: the
/// core's own ([`vmm_model::invariants`]) and this harness's hooks.
pub fn check_invariants(v: &TestVmm) {
    if let Err(e) = vmm_model::invariants::check_state(v, VMM_VSPACE) {
        panic!("invariant broken: {e}");
    }
    assert_eq!(v.hooks().enabled, v.usage_count() > 0, "shared resources enabled iff a VM exists");
}

/// Which frame objects VM `id`'s guest can reach, by guest-physical address.
pub fn guest_pages(v: &TestVmm, id: VmId) -> std::collections::BTreeMap<u64, (u64, vmm::caps::Rights)> {
    vm_vspace(v, id).map(|vs| v.kernel().pages_in(vs)).unwrap_or_default()
}

/// What a VM is made of and nobody else may touch: its registry entry
/// (memslots, devices, vCPU states), every capability in its own run of
/// slots and in its memslots' mapping slots with the object it names (its
/// VSpace with its pages and tables, its TCBs with registers and run state,
/// its vCPU objects with injected and acknowledged interrupts), and every
/// mapping in its VSpace.
#[derive(Debug, PartialEq)]
pub struct VmView {
    pub entry: vmm::registry::Entry<vmm::vm::Vm>,
    pub caps: std::collections::BTreeMap<u64, (vmm_model::Cap, vmm_model::Object)>,
    pub pages: std::collections::BTreeMap<u64, (u64, vmm::caps::Rights)>,
}

/// The view of VM `vm` (see [`VmView`]).
pub fn view(v: &TestVmm, vm: VmId) -> VmView {
    let entry = v.registry().entry(vm).unwrap().clone();
    let m = v.kernel();
    let mut caps = std::collections::BTreeMap::new();
    let mut take = |s: Slot| {
        if let Some(c) = m.cap(s) {
            caps.insert(s.0, (c.clone(), m.object(c.obj).unwrap().clone()));
        }
    };
    for i in 0..entry.vm().fixed().len {
        take(entry.vm().fixed().get(i).unwrap());
    }
    for slot in entry.vm().memslots().iter() {
        for i in 0..slot.map_caps().len {
            take(slot.map_caps().get(i).unwrap());
        }
    }
    VmView { entry, caps, pages: guest_pages(v, vm) }
}

/// Every field of a memslot, for tests that check a change touched only
/// one of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotView {
    pub id: vmm_abi::MemslotId,
    pub flags: u32,
    pub gpa: Gpa,
    pub size: u64,
    pub uaddr: u64,
    pub backing: vmm::vm::memslots::Backing,
    pub map_caps: SlotRange,
    pub lock: Option<vmm::vm::memslots::SlotLock>,
}

/// The fields of `s`.
pub fn slot_view(s: &vmm::vm::memslots::Memslot) -> SlotView {
    SlotView {
        id: s.id(),
        flags: s.flags(),
        gpa: s.gpa(),
        size: s.size(),
        uaddr: s.uaddr(),
        backing: s.backing(),
        map_caps: s.map_caps(),
        lock: s.lock(),
    }
}
