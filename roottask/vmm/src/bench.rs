//! Figures, in instructions: the root task reads the counter seL4 exports
//! to user level (CNTPCT_EL0), which under QEMU's `-icount shift=0` counts
//! virtual time, one nanosecond per executed instruction (guest, seL4 and
//! root task alike), so that `make bench-roottask` gives the same figures
//! on every run. Without `-icount` they are printed too, and mean nothing.

use vmm_abi::memslot::{MemoryRegion, LOCK_READ, LOCK_WRITE};
use vmm_abi::protocol::Request;
use vmm_abi::{Errno, VcpuId, VmId};
use vmm_trace::world::{region, PRIVILEGED, RAM_GPA, RAM_PAGES, RAM_VADDR};

use crate::exits::{self, Ended};
use crate::guest;
use crate::start::Started;
use vmm::addr::Gpa;
use vmm::devices::pl011::{self, Pl011};
use vmm::devices::Device;
use vmm::registry::Owner;
use vmm::StopReason;

/// VM create and destroy pairs measured.
const VMS: u64 = 100;

/// Exit round trips (HVC or MMIO) measured in one guest run.
const EXITS: u64 = 10_000;

fn now() -> u64 {
    let t: u64;
    // CNTPCT_EL0: the kernel exports it to user level (EXPORT_PCNT_USER).
    unsafe { core::arch::asm!("isb", "mrs {t}, cntpct_el0", t = out(reg) t) };
    t
}

/// Instructions (nanoseconds under `-icount shift=0`) in `ticks` of the
/// counter, at the frequency the board gives it (CNTFRQ_EL0, readable
/// where the count is): 62.5 MHz on QEMU `virt`, 8 MHz on `imx8mp-evk`.
fn instructions(ticks: u64) -> u64 {
    let hz: u64;
    unsafe { core::arch::asm!("mrs {f}, cntfrq_el0", f = out(reg) hz) };
    ticks.saturating_mul(1_000_000_000) / hz.max(1)
}

fn call(started: &mut Started, req: Request) -> Result<u64, Errno> {
    vmm_trace::send(started.core, PRIVILEGED, &req).1
}

fn ram_slot(slot: u32, gpa: u64, pages: u64) -> MemoryRegion {
    region(slot, 0, gpa, pages * 4096, RAM_VADDR, 0)
}

/// Instructions per VM created (with one vCPU) and destroyed.
fn vm_lifecycle(started: &mut Started) -> Result<u64, Errno> {
    let start = now();
    for _ in 0..VMS {
        let vm = VmId(call(started, Request::CreateVm)? as u32);
        call(started, Request::CreateVcpu { vm, vcpu: VcpuId(0) })?;
        call(started, Request::DestroyVm { vm })?;
    }
    Ok(instructions(now() - start) / VMS)
}

/// Instructions per page locking a RAM memslot of `pages` pages.
fn lock(started: &mut Started, pages: u64) -> Result<u64, Errno> {
    let vm = VmId(call(started, Request::CreateVm)? as u32);
    let r = call(started, Request::SetMemoryRegion { vm, region: ram_slot(0, RAM_GPA, pages) }).and_then(|_| {
        let start = now();
        call(started, Request::LockMemslot { vm, slot: 0, flags: LOCK_READ | LOCK_WRITE })?;
        Ok(instructions(now() - start) / pages)
    });
    call(started, Request::DestroyVm { vm })?;
    r
}

/// Instructions per exit round trip of the guest loop at `offset` in
/// guest RAM ([`EXITS`] exits, then the power-off), in a VM whose code slot
/// is locked and to which `devices` has given what the loop reaches.
fn round_trip(
    started: &mut Started,
    offset: u64,
    devices: impl FnOnce(&mut Started, VmId) -> Result<(), Errno>,
) -> Result<u64, Errno> {
    let vm = VmId(call(started, Request::CreateVm)? as u32);
    let r = (|| {
        call(started, Request::CreateVcpu { vm, vcpu: VcpuId(0) })?;
        call(started, Request::SetMemoryRegion { vm, region: ram_slot(0, RAM_GPA, RAM_PAGES) })?;
        call(started, Request::LockMemslot { vm, slot: 0, flags: LOCK_READ | LOCK_WRITE })?;
        devices(started, vm)?;
        let start = now();
        call(started, Request::RunVcpu { vm, vcpu: VcpuId(0), entry: RAM_GPA + offset, arg: 0 })?;
        match exits::run_until_stopped(started.core, started.faults, started.reply) {
            Ended::Stopped(StopReason::SystemOff) => Ok(instructions(now() - start) / EXITS),
            _ => Err(Errno::EIO),
        }
    })();
    call(started, Request::DestroyVm { vm })?;
    r
}

/// Instructions per HVC exit round trip: guest `hvc`, seL4, the root
/// task's fault handling and the core's PSCI, reply.
fn hvc(started: &mut Started) -> Result<u64, Errno> {
    round_trip(started, guest::HVC_LOOP_OFFSET, |_, _| Ok(()))
}

/// Instructions per MMIO exit round trip: a guest load from the emulated
/// PL011, seL4, the root task's fault handling and the core's emulation,
/// the register written and the PC moved, reply.
fn mmio(started: &mut Started) -> Result<u64, Errno> {
    round_trip(started, guest::MMIO_LOOP_OFFSET, |started, vm| {
        let uart = Device::Pl011(Pl011::new());
        let owner = Owner::Client(PRIVILEGED);
        started.core.register_device(owner, vm, Gpa(guest::UART_GPA), pl011::SIZE, uart).map_err(|e| e.errno())
    })
}

/// Measures and prints every figure.
pub fn run(started: &mut Started) {
    let loops = guest::install_hvc_loop(RAM_VADDR, EXITS).and_then(|()| guest::install_mmio_loop(RAM_VADDR, EXITS));
    if let Err(e) = loops {
        sel4::debug_println!("roottask: bench: cannot install the guest loops: {e}");
        return;
    }
    match vm_lifecycle(started) {
        Ok(n) => sel4::debug_println!("bench: VM create + vCPU create + destroy: {n} instructions"),
        Err(e) => sel4::debug_println!("bench: VM create and destroy failed: {}", e.code()),
    }
    // 1 MiB, 16 MiB and all of guest RAM, 256 MiB.
    let mut per_page = [0u64; 3];
    for (figure, pages) in per_page.iter_mut().zip([256u64, 4096, RAM_PAGES]) {
        match lock(started, pages) {
            Ok(n) => {
                *figure = n;
                sel4::debug_println!("bench: LOCK of {} KiB: {n} instructions per page", pages * 4);
            }
            Err(e) => sel4::debug_println!("bench: LOCK of {} KiB failed: {}", pages * 4, e.code()),
        }
    }
    let ratio = |large: u64, small: u64| (large / small.max(1), large * 100 / small.max(1) % 100);
    let [one, sixteen, all] = per_page;
    let (a, b) = ratio(sixteen, one);
    sel4::debug_println!("bench: LOCK per page, 16 MiB against 1 MiB: {a}.{b:02}x");
    let (a, b) = ratio(all, sixteen);
    sel4::debug_println!("bench: LOCK per page, {} MiB against 16 MiB: {a}.{b:02}x", RAM_PAGES / 256);
    match mmio(started) {
        Ok(n) => sel4::debug_println!("bench: MMIO exit round trip: {n} instructions"),
        Err(e) => sel4::debug_println!("bench: MMIO exit round trip failed: {}", e.code()),
    }
    match hvc(started) {
        Ok(n) => sel4::debug_println!("bench: HVC exit round trip: {n} instructions"),
        Err(e) => sel4::debug_println!("bench: HVC exit round trip failed: {}", e.code()),
    }
}
