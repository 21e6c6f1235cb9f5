// The live state the core's targets start from: a VMM on the seL4 model
// with guest RAM, one client VM with a running vCPU, a RAM slot, a bound
// guest_memfd slot and a PL011. Built once; each input runs on a clone.

use vmm::caps::{Slot, SlotRange};
use vmm::config::{ClientConfig, RamRegion, VmmConfig};
use vmm::devices::pl011::{Console, Pl011};
use vmm::devices::Device;
use vmm::platform::NoHooks;
use vmm::registry::Owner;
use vmm::Vmm;
use vmm_abi::limits::PAGE_SIZE;
use vmm_abi::memslot::{MemoryRegion, GUEST_MEMFD};
use vmm_abi::{ClientId, VcpuId, VmId};
use vmm_model::Model;

pub type World = Vmm<Model, NoHooks>;
pub const CLIENT: ClientId = ClientId(1);
pub const RAM_VADDR: u64 = 0x4000_0000;
pub const UART: u64 = 0x900_0000;
/// The virtual GIC's distributor and redistributors.
pub const GICD: u64 = 0x800_0000;
pub const GICR: u64 = 0x80a_0000;

/// A console that drops what the guest prints (the exit target's; the
/// request target includes this module too and has no use for it).
#[allow(dead_code)]
pub struct Sink;

impl Console for Sink {
    fn put(&mut self, _: u8) {}
}

pub fn world() -> (Box<World>, VmId) {
    // Enough for the world and a few files. Every page the model holds is
    // cloned, checked and dropped once per input: a file of all of it (256
    // pages) and 32 pages of RAM (twice the RAM slot) keep each input's
    // work small enough for thousands of inputs a second.
    let mut m = Model::new(1 << 20);
    m.setup_vspace(Slot(1)).expect("vspace");
    m.setup_ram(Slot(0x1000), 32, Slot(1), RAM_VADDR).expect("ram");
    let mut ram = heapless::Vec::new();
    let _ = ram.push(RamRegion { vmm_vaddr: RAM_VADDR, pages: 32, frames: Slot(0x1000) });
    let mut clients = heapless::Vec::new();
    let _ = clients.push(ClientConfig { id: CLIENT, memlock_pages: 16, privileged: false });
    let _ = clients.push(ClientConfig { id: ClientId(2), memlock_pages: 0, privileged: true });
    let config = VmmConfig {
        cspace: SlotRange { base: Slot(1 << 20), len: 1 << 20 },
        ram,
        clients,
        vcpu_limit: 2,
        dirty_log: true,
        page_tables: vmm_abi::limits::MAX_PAGE_TABLES,
    };
    let mut v = Box::new(Vmm::new(m, NoHooks, config).expect("config"));
    let a = Owner::Client(CLIENT);
    let vm = v.create_vm(a).expect("vm");
    v.create_vcpu(a, vm, VcpuId(0)).expect("vcpu");
    let ram_slot = MemoryRegion {
        slot: 0,
        guest_phys_addr: 0x8000_0000,
        memory_size: 16 * PAGE_SIZE,
        userspace_addr: RAM_VADDR,
        ..MemoryRegion::default()
    };
    v.set_memory_region(a, vm, &ram_slot).expect("ram slot");
    let fd = v.create_guest_memfd(a, vm, 4 * PAGE_SIZE, 0).expect("gmem");
    let private = MemoryRegion {
        slot: 1,
        flags: GUEST_MEMFD,
        guest_phys_addr: 0x9000_0000,
        memory_size: 4 * PAGE_SIZE,
        guest_memfd: fd.0,
        ..MemoryRegion::default()
    };
    v.set_memory_region(a, vm, &private).expect("private slot");
    v.register_device(a, vm, vmm::addr::Gpa(UART), 0x1000, Device::Pl011(Pl011::new())).expect("uart");
    // A GICv3: its distributor, redistributors and SGI register are
    // reached through exits too.
    let (dist, redist) = (vmm::addr::Gpa(GICD), Some(vmm::addr::Gpa(GICR)));
    v.register_gic(a, vm, vmm::arch::aarch64::vgic::GicVersion::V3, dist, redist).expect("gic");
    v.run_vcpu(a, vm, VcpuId(0), 0x8000_0000, 0).expect("run");
    (v, vm)
}
