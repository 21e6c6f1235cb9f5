//! Enforcement, checked from inside the guest: each check builds a VM,
//! runs one of the guest's probes (`guest`) against its memory, and holds
//! the way the probe ended (powered off, or stopped by the VMM and why), the
//! faults it took and what it read to what the rules say. A probe that
//! powers off where the rules say its access faults would mean a mapping
//! the kernel kept; one that faults where they say it reads would mean one
//! it never made.

use vmm::addr::Gpa;
use vmm::registry::Owner;
use vmm::StopReason;
use vmm_abi::memslot::{MemoryRegion, GUEST_MEMFD, LOCK_READ, LOCK_WRITE, READONLY, UNLOCK_ALL};
use vmm_abi::protocol::Request;
use vmm_abi::{Errno, GmemHandle, VcpuId, VmId};
use vmm_trace::world::{CLIENT, PRIVILEGED, RAM_VADDR};

use crate::exits::{self, Ended};
use crate::guest::{PROBES_OFFSET, PROBE_FILL, PROBE_READ, PROBE_WRITE};
use crate::start::Started;

/// Guest RAM's first 64 KiB, with the guest's code, at this address.
const CODE_GPA: u64 = 0x4000_0000;
/// The probed memslot, backed by guest RAM 1 MiB in.
const PROBED_GPA: u64 = 0x4100_0000;
/// The probed guest_memfd memslot.
const PRIVATE_GPA: u64 = 0x5000_0000;
const PAGES: u64 = 16;

fn call(started: &mut Started, req: Request) -> Result<u64, Errno> {
    vmm_trace::send(started.core, PRIVILEGED, &req).1
}

fn slot(slot: u32, flags: u32, gpa: u64, vaddr: u64, gmem: u32) -> MemoryRegion {
    MemoryRegion {
        slot,
        flags,
        guest_phys_addr: gpa,
        memory_size: PAGES * 4096,
        userspace_addr: vaddr,
        guest_memfd_offset: 0,
        guest_memfd: gmem,
    }
}

/// A VM with a vCPU and its code slot, locked (so the code never faults).
fn vm_with_code(started: &mut Started) -> Result<VmId, Errno> {
    let vm = VmId(call(started, Request::CreateVm)? as u32);
    call(started, Request::CreateVcpu { vm, vcpu: VcpuId(0) })?;
    call(started, Request::SetMemoryRegion { vm, region: slot(0, 0, CODE_GPA, RAM_VADDR, 0) })?;
    call(started, Request::LockMemslot { vm, slot: 0, flags: LOCK_READ | LOCK_WRITE })?;
    Ok(vm)
}

/// How a probe ended: why the VM stopped, the faults it took, and x3.
struct Probed {
    ended: Ended,
    faults: u64,
    x3: u64,
}

/// Runs probe `probe` of VM `vm` against `gpa`.
fn probe(started: &mut Started, vm: VmId, probe: u64, gpa: u64) -> Result<Probed, Errno> {
    let entry = CODE_GPA + PROBES_OFFSET + probe;
    call(started, Request::RunVcpu { vm, vcpu: VcpuId(0), entry, arg: gpa })?;
    let (ended, faults) = exits::run_counting(started.core, started.faults, started.reply);
    let x3 = call(started, Request::GetReg { vm, vcpu: VcpuId(0), reg: 3 })?;
    Ok(Probed { ended, faults, x3 })
}

fn powered_off(p: &Probed) -> bool {
    matches!(p.ended, Ended::Stopped(StopReason::SystemOff))
}

/// One check: its name, and whether it held, with what was seen.
fn report(name: &str, held: Result<bool, Errno>, seen: &dyn core::fmt::Display) -> bool {
    match held {
        Ok(true) => sel4::debug_println!("enforce: ok   {name}: {seen}"),
        Ok(false) => sel4::debug_println!("enforce: FAIL {name}: {seen}"),
        Err(e) => sel4::debug_println!("enforce: FAIL {name}: a request failed with errno {}", e.code()),
    }
    held == Ok(true)
}

struct Seen<'a>(&'a Probed);

impl core::fmt::Display for Seen<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}, {} faults, read {:#x}", self.0.ended, self.0.faults, self.0.x3)
    }
}

/// A READONLY memslot reads, and a write to it stops the VM.
fn readonly(started: &mut Started) -> Result<(bool, bool), Errno> {
    let ro = slot(1, READONLY, PROBED_GPA, RAM_VADDR + 0x10_0000, 0);
    let vm = vm_with_code(started)?;
    call(started, Request::SetMemoryRegion { vm, region: ro })?;
    let read = probe(started, vm, PROBE_READ, PROBED_GPA)?;
    call(started, Request::DestroyVm { vm })?;
    let vm = vm_with_code(started)?;
    call(started, Request::SetMemoryRegion { vm, region: ro })?;
    let write = probe(started, vm, PROBE_WRITE, PROBED_GPA)?;
    call(started, Request::DestroyVm { vm })?;
    let a = report("a READONLY memslot reads", Ok(powered_off(&read)), &Seen(&read));
    let want = Ended::Stopped(StopReason::ReadOnlyWrite { gpa: Gpa(PROBED_GPA) });
    let b = report("a write to a READONLY memslot stops the VM", Ok(write.ended == want), &Seen(&write));
    Ok((a, b))
}

/// A locked memslot is mapped before the guest runs: its probe's only
/// fault is the power-off; UNLOCK leaves it so; once deleted, its range
/// is gone from the guest.
fn locked_then_deleted(started: &mut Started) -> Result<[bool; 3], Errno> {
    let vm = vm_with_code(started)?;
    call(started, Request::SetMemoryRegion { vm, region: slot(1, 0, PROBED_GPA, RAM_VADDR + 0x10_0000, 0) })?;
    call(started, Request::LockMemslot { vm, slot: 1, flags: LOCK_READ | LOCK_WRITE })?;
    call(started, Request::UnlockMemslot { vm, slot: 1, flags: UNLOCK_ALL })?;
    let touched = probe(started, vm, PROBE_WRITE, PROBED_GPA)?;
    call(started, Request::DestroyVm { vm })?;
    let a = report(
        "a locked, then unlocked, memslot is mapped before the guest runs (one fault: the power-off)",
        Ok(powered_off(&touched) && touched.faults == 1),
        &Seen(&touched),
    );
    // The same without the lock: the first touch faults once more.
    let vm = vm_with_code(started)?;
    call(started, Request::SetMemoryRegion { vm, region: slot(1, 0, PROBED_GPA, RAM_VADDR + 0x10_0000, 0) })?;
    let lazy = probe(started, vm, PROBE_WRITE, PROBED_GPA)?;
    call(started, Request::DestroyVm { vm })?;
    let b = report(
        "an unlocked memslot is mapped at the first touch (two faults)",
        Ok(powered_off(&lazy) && lazy.faults == 2),
        &Seen(&lazy),
    );
    let vm = vm_with_code(started)?;
    let mut region = slot(1, 0, PROBED_GPA, RAM_VADDR + 0x10_0000, 0);
    call(started, Request::SetMemoryRegion { vm, region })?;
    // Locked, so mapped; a locked slot cannot be deleted (rule 3.8).
    call(started, Request::LockMemslot { vm, slot: 1, flags: LOCK_READ | LOCK_WRITE })?;
    call(started, Request::UnlockMemslot { vm, slot: 1, flags: UNLOCK_ALL })?;
    region.memory_size = 0;
    call(started, Request::SetMemoryRegion { vm, region })?;
    let gone = probe(started, vm, PROBE_READ, PROBED_GPA)?;
    call(started, Request::DestroyVm { vm })?;
    let want = Ended::Stopped(StopReason::Unmapped { gpa: Gpa(PROBED_GPA) });
    let c =
        report("a deleted memslot's range faults, also after a lock mapped it", Ok(gone.ended == want), &Seen(&gone));
    Ok([a, b, c])
}

/// guest_memfd pages read zero, also where another guest wrote before
/// (the memory of a closed file comes back to the pool and is given out
/// again); after CLOSE, the guest's access faults.
fn private_memory(started: &mut Started) -> Result<[bool; 2], Errno> {
    let size = PAGES * 4096;
    // A guest fills its private page, then goes with its file.
    let vm = vm_with_code(started)?;
    let h = call(started, Request::CreateGuestMemfd { vm, size, flags: 0 })? as u32;
    call(started, Request::SetMemoryRegion { vm, region: slot(2, GUEST_MEMFD, PRIVATE_GPA, 0, h) })?;
    let filled = probe(started, vm, PROBE_FILL, PRIVATE_GPA)?;
    call(started, Request::DestroyVm { vm })?;
    call(started, Request::CloseGuestMemfd { handle: GmemHandle(h) })?;
    // The next guest's new file reads zero.
    let vm = vm_with_code(started)?;
    let h = call(started, Request::CreateGuestMemfd { vm, size, flags: 0 })? as u32;
    call(started, Request::SetMemoryRegion { vm, region: slot(2, GUEST_MEMFD, PRIVATE_GPA, 0, h) })?;
    let fresh = probe(started, vm, PROBE_READ, PRIVATE_GPA)?;
    call(started, Request::DestroyVm { vm })?;
    call(started, Request::CloseGuestMemfd { handle: GmemHandle(h) })?;
    let a = report(
        "guest_memfd pages read zero, also after another guest wrote its own",
        Ok(powered_off(&filled) && filled.x3 == 0xbeef && powered_off(&fresh) && fresh.x3 == 0),
        &Seen(&fresh),
    );
    // Closed while bound: the guest's access faults.
    let vm = vm_with_code(started)?;
    let h = call(started, Request::CreateGuestMemfd { vm, size, flags: 0 })? as u32;
    call(started, Request::SetMemoryRegion { vm, region: slot(2, GUEST_MEMFD, PRIVATE_GPA, 0, h) })?;
    call(started, Request::CloseGuestMemfd { handle: GmemHandle(h) })?;
    let closed = probe(started, vm, PROBE_READ, PRIVATE_GPA)?;
    call(started, Request::DestroyVm { vm })?;
    let b = report(
        "after CLOSE, the guest's access to its guest_memfd faults",
        Ok(matches!(closed.ended, Ended::Stopped(r) if r != StopReason::SystemOff)),
        &Seen(&closed),
    );
    Ok([a, b])
}

/// An internal VM, made and run by the VMM itself with no client: it runs
/// its guest to the power-off, and neither client can name it.
fn internal(started: &mut Started) -> Result<bool, Errno> {
    let me = Owner::Internal;
    let perform = |started: &mut Started, req: Request| started.core.perform(me, req).map_err(|e| e.errno());
    let vm = VmId(perform(started, Request::CreateVm)? as u32);
    perform(started, Request::CreateVcpu { vm, vcpu: VcpuId(0) })?;
    perform(started, Request::SetMemoryRegion { vm, region: slot(0, 0, CODE_GPA, RAM_VADDR, 0) })?;
    perform(started, Request::RunVcpu { vm, vcpu: VcpuId(0), entry: CODE_GPA, arg: 0 })?;
    let ran = exits::run_until_stopped(started.core, started.faults, started.reply);
    let hidden = [CLIENT, PRIVILEGED].iter().all(|&c| {
        vmm_trace::send(started.core, c, &Request::DestroyVm { vm }).1 == Err(Errno::EPERM)
            && vmm_trace::send(started.core, c, &Request::GetReg { vm, vcpu: VcpuId(0), reg: 0 }).1 == Err(Errno::EPERM)
    });
    perform(started, Request::DestroyVm { vm })?;
    let held = ran == Ended::Stopped(StopReason::SystemOff) && hidden;
    Ok(report(
        "an internal VM runs with no client, and no client may touch it (EPERM, rule 1.2)",
        Ok(held),
        &format_args!("{ran}; refused to both clients: {hidden}"),
    ))
}

/// Runs every check; prints one line each and a verdict.
pub fn run(started: &mut Started) {
    let mut all = true;
    match readonly(started) {
        Ok((a, b)) => all &= a && b,
        Err(e) => all &= report("READONLY", Err(e), &""),
    }
    match locked_then_deleted(started) {
        Ok(r) => all &= r.iter().all(|&x| x),
        Err(e) => all &= report("lock and delete", Err(e), &""),
    }
    match private_memory(started) {
        Ok(r) => all &= r.iter().all(|&x| x),
        Err(e) => all &= report("guest_memfd", Err(e), &""),
    }
    match internal(started) {
        Ok(r) => all &= r,
        Err(e) => all &= report("internal VM", Err(e), &""),
    }
    if all {
        sel4::debug_println!("enforce: every check held");
    } else {
        sel4::debug_println!("enforce: FAILED");
    }
}
