//! The guest layout the exit tests run on (`exits.rs`, `exit_fuzz.rs`): a
//! RAM slot, a READONLY slot and a PL011 where QEMU's virt board has it.

use vmm::addr::Gpa;
use vmm::arch::aarch64::regs::TcbReg;
use vmm::caps::Slot;
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

/// The slot of vCPU `vcpu`'s TCB in VM `vm`.
pub fn tcb(v: &TestVmm, vm: VmId, vcpu: u32) -> Slot {
    v.registry().entry(vm).unwrap().vm().vcpu_caps(VcpuId(vcpu)).unwrap().0.slot()
}

/// The slot of vCPU `vcpu`'s vCPU object in VM `vm`.
pub fn vcpu_obj(v: &TestVmm, vm: VmId, vcpu: u32) -> Slot {
    v.registry().entry(vm).unwrap().vm().vcpu_caps(VcpuId(vcpu)).unwrap().1.slot()
}

/// Register `r` of vCPU `vcpu` of VM `vm`, as the kernel has it.
pub fn reg(v: &TestVmm, vm: VmId, vcpu: u32, r: TcbReg) -> u64 {
    v.kernel().tcb_reg(tcb(v, vm, vcpu), r).unwrap()
}

// seL4 16.0.0's fault labels (MCS, AArch64: `sel4/arch/faults.h`).
pub const UNKNOWN_SYSCALL: u64 = 2;
pub const USER_EXCEPTION: u64 = 3;
pub const VM_FAULT: u64 = 6;
pub const VGIC_MAINTENANCE: u64 = 7;
pub const VCPU_FAULT: u64 = 8;
pub const VPPI_EVENT: u64 = 9;

// ESR_EL2 bits (Arm ARM, ESR_EL2 and the data-abort ISS).
pub const IL: u64 = 1 << 25;
pub const ISV: u64 = 1 << 24;
pub const SSE: u64 = 1 << 21;
pub const SF: u64 = 1 << 15;
pub const WNR: u64 = 1 << 6;

// PL011 registers and bits (PL011 TRM, 3.2 and 3.3).
pub const DR: u64 = 0x000;
pub const FR: u64 = 0x018;
pub const IBRD: u64 = 0x024;
pub const FBRD: u64 = 0x028;
pub const LCR_H: u64 = 0x02c;
pub const CR: u64 = 0x030;
pub const IMSC: u64 = 0x038;
pub const MIS: u64 = 0x040;
pub const ICR: u64 = 0x044;
pub const PERIPH_ID0: u64 = 0xfe0;
pub const FR_RXFE: u64 = 1 << 4;
pub const FR_TXFE: u64 = 1 << 7;
/// IMSC, RIS, MIS and ICR: receive and transmit.
pub const RXIM: u64 = 1 << 4;
pub const TXIM: u64 = 1 << 5;
