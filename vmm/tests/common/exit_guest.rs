//! The guest layout the exit tests run on (`exits.rs`, `exit_fuzz.rs`): a
//! RAM slot, a READONLY slot and a PL011 where QEMU's virt board has it.

use vmm::addr::Gpa;
use vmm::devices::pl011::{self, Pl011};
use vmm::devices::Device;
use vmm::registry::Owner;
use vmm_abi::memslot::READONLY;
use vmm_abi::{VcpuId, VmId};

use super::{check_invariants, ram_region, TestVmm};

/// Guest RAM: a memslot of `SLOT_PAGES` pages.
pub const RAM_GPA: u64 = 0x4000_0000;
pub const SLOT_PAGES: u64 = 16;
/// A READONLY memslot, backed by the RAM pages after the RAM slot's.
pub const ROM_GPA: u64 = 0x5000_0000;
pub const ROM_PAGES: u64 = 4;
/// The PL011, where QEMU's virt board has it.
pub const UART: u64 = 0x0900_0000;

/// A VM of `owner` with vCPUs `0..vcpus` created and vCPU 0 running at
/// `RAM_GPA` with `boot_arg` in x0 (its boot vCPU); a RAM slot (slot 0)
/// backed from RAM page `ram`, a READONLY slot (slot 1) backed from the
/// pages after it, and a PL011 at `UART`.
pub fn guest(v: &mut TestVmm, owner: Owner, ram: u64, vcpus: u32, boot_arg: u64) -> VmId {
    let vm = v.create_vm(owner).unwrap();
    for i in 0..vcpus {
        v.create_vcpu(owner, vm, VcpuId(i)).unwrap();
    }
    v.set_memory_region(owner, vm, &ram_region(0, RAM_GPA, SLOT_PAGES, ram)).unwrap();
    let mut rom = ram_region(1, ROM_GPA, ROM_PAGES, ram + SLOT_PAGES);
    rom.flags = READONLY;
    v.set_memory_region(owner, vm, &rom).unwrap();
    v.register_device(owner, vm, Gpa(UART), pl011::SIZE, Device::Pl011(Pl011::new())).unwrap();
    v.run_vcpu(owner, vm, VcpuId(0), RAM_GPA, boot_arg).unwrap();
    check_invariants(v);
    vm
}
