//! The system under verification: one VMM instance on the seL4 model, with
//! two clients and small bounds, and arch hooks that record each call.

use std::vec::Vec;

use vmm::caps::{Slot, SlotRange};
use vmm::config::{ClientConfig, RamRegion, VmmConfig};
use vmm::platform::Platform;
use vmm::registry::Owner;
use vmm::Vmm;
use vmm_abi::limits::PAGE_SIZE;
use vmm_abi::{ClientId, Errno, VmId};
use vmm_model::Model;

/// The VMM's own VSpace.
pub const VMM_VSPACE: Slot = Slot(1);
/// First guest RAM frame.
pub const RAM_FRAMES: Slot = Slot(0x100);
/// Guest RAM pages (the bound "8 pages").
pub const RAM_PAGES: u64 = 8;
/// Guest RAM in the VMM.
pub const RAM_VADDR: u64 = 0x4000_0000;
/// Client 1: a budget of 3 pages.
pub const C1: Owner = Owner::Client(ClientId(1));
/// Client 2: a budget of 2 pages.
pub const C2: Owner = Owner::Client(ClientId(2));
/// Memlock budgets, by client.
pub const BUDGETS: [(Owner, u64); 2] = [(C1, 3), (C2, 2)];

/// A hook call, as recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HookCall {
    /// `add(vm, count)`.
    Add(VmId, u32),
    /// `remove(vm)`.
    Remove(VmId),
    /// `drop(count)`.
    Drop(u32),
}

/// Hooks recording the calls of the current step and whether shared
/// resources are enabled.
#[derive(Clone, Debug, Default)]
pub struct Hooks {
    /// Calls made during the current step (cleared before each step).
    pub calls: Vec<HookCall>,
    /// Shared resources enabled (between add(1) and drop(0)).
    pub enabled: bool,
}

impl PartialEq for Hooks {
    fn eq(&self, other: &Hooks) -> bool {
        self.enabled == other.enabled
    }
}
impl Eq for Hooks {}
impl core::hash::Hash for Hooks {
    fn hash<H: core::hash::Hasher>(&self, h: &mut H) {
        self.enabled.hash(h);
    }
}

impl Platform for Hooks {
    fn add(&mut self, vm: VmId, count: u32) -> Result<(), Errno> {
        self.calls.push(HookCall::Add(vm, count));
        if count == 1 {
            self.enabled = true;
        }
        Ok(())
    }
    fn remove(&mut self, vm: VmId) {
        self.calls.push(HookCall::Remove(vm));
    }
    fn drop(&mut self, count: u32) {
        self.calls.push(HookCall::Drop(count));
        if count == 0 {
            self.enabled = false;
        }
    }
}

/// The core as verified.
pub type Core = Vmm<Model, Hooks>;

/// One VMM instance under verification.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct System {
    /// The core (boxed: its tables are large).
    pub vmm: Box<Core>,
}

/// The configuration under verification.
pub fn config() -> VmmConfig {
    let mut ram = heapless::Vec::new();
    let mut clients = heapless::Vec::new();
    let _ = ram.push(RamRegion { vmm_vaddr: RAM_VADDR, pages: RAM_PAGES, frames: RAM_FRAMES });
    for (owner, budget) in BUDGETS {
        if let Owner::Client(id) = owner {
            let _ = clients.push(ClientConfig { id, memlock_pages: budget, privileged: false });
        }
    }
    VmmConfig {
        cspace: SlotRange { base: Slot(0x1000), len: 1 << 16 },
        ram,
        clients,
        vcpu_limit: 2,
        dirty_log: true,
        page_tables: vmm_abi::limits::MAX_PAGE_TABLES,
    }
}

impl System {
    /// The system at initialisation: guest RAM mapped into the VMM and one
    /// internal VM (id 1) created by the VMM itself.
    pub fn new() -> System {
        let mut m = Model::new(16 << 20);
        let set_up = m.setup_vspace(VMM_VSPACE).and_then(|_| m.setup_ram(RAM_FRAMES, RAM_PAGES, VMM_VSPACE, RAM_VADDR));
        assert!(set_up.is_ok(), "model set-up");
        let mut vmm = Box::new(Vmm::new(m, Hooks::default(), config()).unwrap_or_else(|e| panic!("config: {e}")));
        let internal = vmm.create_vm(Owner::Internal);
        assert_eq!(internal.ok(), Some(VmId(1)), "the internal VM");
        vmm.hooks_mut().calls.clear();
        System { vmm }
    }

    /// Pages of guest RAM.
    pub fn ram_vaddr(page: u64) -> u64 {
        RAM_VADDR + page * PAGE_SIZE
    }
}

impl Default for System {
    fn default() -> Self {
        System::new()
    }
}
