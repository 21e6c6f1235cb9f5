//! The lifecycle check: VMs made, run and destroyed as a client asks,
//! through the core's one entry point, while the untyped memory available
//! and the free slots are counted before and after.

use vmm_abi::memslot::{GUEST_MEMFD, LOCK_READ, LOCK_WRITE};
use vmm_abi::protocol::Request;
use vmm_abi::{ClientId, Errno, GmemHandle, VcpuId, VmId};

use crate::exits::{self, Ended};
use crate::start::{Core, Started};
use vmm::StopReason;
use vmm_trace::world::{region, CLIENT, RAM_GPA, RAM_VADDR};

/// Cycles of the check.
const CYCLES: u32 = 1000;

/// The sizes of the check's memslots, and where the private one is.
const RAM_SIZE: u64 = 256 * 1024;
const PRIVATE_GPA: u64 = 0x5000_0000;
const PRIVATE_SIZE: u64 = 64 * 1024;

/// One request as a client sends it.
fn call(vmm: &mut Core, client: ClientId, req: Request) -> Result<u64, Errno> {
    vmm_trace::send(vmm, client, &req).1
}

/// Why a cycle failed.
enum Failed {
    /// A request, and its errno.
    Request(&'static str, Errno),
    /// The guest ran but did not power off.
    Run(Ended),
}

/// One cycle: a VM and its vCPU, a guest_memfd bound to a private memslot,
/// a RAM memslot locked (its pages mapped into the guest's stage 2), the
/// guest run until it powers the VM off, then the VM destroyed and the
/// guest_memfd closed.
fn cycle(started: &mut Started) -> Result<StopReason, Failed> {
    let vmm = &mut *started.core;
    let c = CLIENT;
    let vm = VmId(call(vmm, c, Request::CreateVm).map_err(|e| Failed::Request("CREATE_VM", e))? as u32);
    call(vmm, c, Request::CreateVcpu { vm, vcpu: VcpuId(0) }).map_err(|e| Failed::Request("CREATE_VCPU", e))?;
    let gmem = call(vmm, c, Request::CreateGuestMemfd { vm, size: PRIVATE_SIZE, flags: 0 })
        .map_err(|e| Failed::Request("CREATE_GUEST_MEMFD", e))?;
    let handle = GmemHandle(gmem as u32);
    let ram = region(0, 0, RAM_GPA, RAM_SIZE, RAM_VADDR, 0);
    call(vmm, c, Request::SetMemoryRegion { vm, region: ram })
        .map_err(|e| Failed::Request("SET_USER_MEMORY_REGION2 (RAM)", e))?;
    let private = region(1, GUEST_MEMFD, PRIVATE_GPA, PRIVATE_SIZE, RAM_VADDR + RAM_SIZE, handle.0);
    call(vmm, c, Request::SetMemoryRegion { vm, region: private })
        .map_err(|e| Failed::Request("SET_USER_MEMORY_REGION2 (guest_memfd)", e))?;
    call(vmm, c, Request::LockMemslot { vm, slot: 0, flags: LOCK_READ | LOCK_WRITE })
        .map_err(|e| Failed::Request("LOCK", e))?;
    let entry = RAM_GPA;
    call(vmm, c, Request::RunVcpu { vm, vcpu: VcpuId(0), entry, arg: 0 })
        .map_err(|e| Failed::Request("RUN_VCPU", e))?;
    let stopped = match exits::run_until_stopped(vmm, started.faults, started.reply) {
        Ended::Stopped(reason @ StopReason::SystemOff) => reason,
        other => return Err(Failed::Run(other)),
    };
    call(vmm, c, Request::DestroyVm { vm }).map_err(|e| Failed::Request("DESTROY_VM", e))?;
    call(vmm, c, Request::CloseGuestMemfd { handle }).map_err(|e| Failed::Request("CLOSE_GUEST_MEMFD", e))?;
    Ok(stopped)
}

/// What the check compares: untyped memory available, the core's slots
/// that hold no capability as the kernel has them, and the backend's own
/// free slots.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    available: u64,
    empty_core_slots: u64,
    free_own_slots: usize,
}

impl core::fmt::Display for Counts {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} bytes of untyped memory available, {} empty core slots, {} free own slots",
            self.available, self.empty_core_slots, self.free_own_slots
        )
    }
}

/// The counts now.
pub fn counts(vmm: &mut Core) -> Counts {
    let k = vmm.kernel_mut();
    let core = k.core_slots();
    let used = k.occupied(core).unwrap_or(u64::MAX);
    Counts {
        available: k.pool().usage().available,
        empty_core_slots: core.len.saturating_sub(used),
        free_own_slots: k.free_private_slots(),
    }
}

/// Runs the check and prints its figures; gives the VMM back. Its guest
/// is the power-off guest `main` installed.
pub fn run(mut started: Started) -> Started {
    let before = counts(started.core);
    sel4::debug_println!("roottask: before: {before}");
    for i in 0..CYCLES {
        match cycle(&mut started) {
            Ok(reason) if i == 0 => sel4::debug_println!("roottask: cycle 0: the guest ran and stopped: {reason}"),
            Ok(_) => {}
            Err(Failed::Request(what, e)) => {
                sel4::debug_println!("roottask: cycle {i}: {what} failed: errno {}", e.code());
                return started;
            }
            Err(Failed::Run(how)) => {
                sel4::debug_println!("roottask: cycle {i}: the guest did not power off: {how}");
                return started;
            }
        }
    }
    let after = counts(started.core);
    sel4::debug_println!("roottask: after {CYCLES} cycles, each guest run until it powered off: {after}");
    if after == before {
        sel4::debug_println!("roottask: lifecycle check passed: nothing leaked");
    } else {
        sel4::debug_println!("roottask: lifecycle check FAILED: counts differ");
    }
    started
}
