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
use vmm_trace::world::{region, CLIENT, PRIVILEGED, RAM_GPA, RAM_VADDR};

use crate::exits::{self, Ended};
use crate::guest::{PROBES_OFFSET, PROBE_FILL, PROBE_READ, PROBE_WRITE};
use crate::start::Started;

/// Guest RAM's first 64 KiB, with the guest's code, at this address.
const CODE_GPA: u64 = RAM_GPA;
/// The probed memslot, backed by guest RAM 1 MiB in.
const PROBED_GPA: u64 = 0x4100_0000;
/// Where the probed memslot moves to.
const MOVED_GPA: u64 = 0x4200_0000;
/// The probed guest_memfd memslot.
const PRIVATE_GPA: u64 = 0x5000_0000;
const PAGES: u64 = 16;

fn call(started: &mut Started, req: Request) -> Result<u64, Errno> {
    vmm_trace::send(started.core, PRIVILEGED, &req).1
}

fn slot(slot: u32, flags: u32, gpa: u64, vaddr: u64, gmem: u32) -> MemoryRegion {
    region(slot, flags, gpa, PAGES * 4096, vaddr, gmem)
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

/// One trial: a VM with its code slot, `setup` done to it, probe `which`
/// run against `gpa`, and the VM destroyed (also when a step failed); how
/// the probe ended and what `setup` gave.
fn trial<T>(
    started: &mut Started,
    setup: impl FnOnce(&mut Started, VmId) -> Result<T, Errno>,
    which: u64,
    gpa: u64,
) -> Result<(Probed, T), Errno> {
    let vm = vm_with_code(started)?;
    let r = setup(started, vm).and_then(|t| Ok((probe(started, vm, which, gpa)?, t)));
    let destroyed = call(started, Request::DestroyVm { vm });
    let r = r?;
    destroyed?;
    Ok(r)
}

/// Runs probe `which` of VM `vm` against `gpa`.
fn probe(started: &mut Started, vm: VmId, which: u64, gpa: u64) -> Result<Probed, Errno> {
    let entry = CODE_GPA + PROBES_OFFSET + which;
    call(started, Request::RunVcpu { vm, vcpu: VcpuId(0), entry, arg: gpa })?;
    let (ended, faults) = exits::run_counting(started.core, started.faults, started.reply);
    let x3 = call(started, Request::GetReg { vm, vcpu: VcpuId(0), reg: 3 })?;
    Ok(Probed { ended, faults, x3 })
}

fn powered_off(p: &Probed) -> bool {
    matches!(p.ended, Ended::Stopped(StopReason::SystemOff))
}

/// One check: its name, whether it held, and what was seen.
fn report(name: &str, held: bool, seen: &dyn core::fmt::Display) -> bool {
    match held {
        true => sel4::debug_println!("enforce: ok   {name}: {seen}"),
        false => sel4::debug_println!("enforce: FAIL {name}: {seen}"),
    }
    held
}

/// A group of checks whose requests failed before they could be judged.
fn refused(name: &str, e: Errno) -> bool {
    sel4::debug_println!("enforce: FAIL {name}: a request failed with errno {}", e.code());
    false
}

struct Seen<'a>(&'a Probed);

impl core::fmt::Display for Seen<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}, {} faults, read {:#x}", self.0.ended, self.0.faults, self.0.x3)
    }
}

/// Adds memslot `region` to VM `vm`.
fn add(started: &mut Started, vm: VmId, region: MemoryRegion) -> Result<(), Errno> {
    call(started, Request::SetMemoryRegion { vm, region }).map(|_| ())
}

/// The probed slot, backed by guest RAM 1 MiB in.
fn probed(flags: u32) -> MemoryRegion {
    slot(1, flags, PROBED_GPA, RAM_VADDR + 0x10_0000, 0)
}

/// Locks and unlocks slot 1 of `vm`: its pages are mapped.
fn lock_unlock(started: &mut Started, vm: VmId) -> Result<(), Errno> {
    call(started, Request::LockMemslot { vm, slot: 1, flags: LOCK_READ | LOCK_WRITE })?;
    call(started, Request::UnlockMemslot { vm, slot: 1, flags: UNLOCK_ALL }).map(|_| ())
}

/// A READONLY memslot reads, and a write to it stops the VM.
fn readonly(started: &mut Started) -> Result<bool, Errno> {
    let (read, ()) = trial(started, |s, vm| add(s, vm, probed(READONLY)), PROBE_READ, PROBED_GPA)?;
    let (write, ()) = trial(started, |s, vm| add(s, vm, probed(READONLY)), PROBE_WRITE, PROBED_GPA)?;
    let a = report("a READONLY memslot reads", powered_off(&read), &Seen(&read));
    let want = Ended::Stopped(StopReason::ReadOnlyWrite { gpa: Gpa(PROBED_GPA) });
    let b = report("a write to a READONLY memslot stops the VM", write.ended == want, &Seen(&write));
    Ok(a && b)
}

/// A locked memslot is mapped before the guest runs: its probe's only
/// fault is the power-off; UNLOCK leaves it so; once deleted, its range
/// is gone from the guest.
fn locked_then_deleted(started: &mut Started) -> Result<bool, Errno> {
    let locked = |s: &mut Started, vm| {
        add(s, vm, probed(0))?;
        lock_unlock(s, vm)
    };
    let (touched, ()) = trial(started, locked, PROBE_WRITE, PROBED_GPA)?;
    let a = report(
        "a locked, then unlocked, memslot is mapped before the guest runs (one fault: the power-off)",
        powered_off(&touched) && touched.faults == 1,
        &Seen(&touched),
    );
    // The same without the lock: the first touch faults once more.
    let (lazy, ()) = trial(started, |s, vm| add(s, vm, probed(0)), PROBE_WRITE, PROBED_GPA)?;
    let b = report(
        "an unlocked memslot is mapped at the first touch (two faults)",
        powered_off(&lazy) && lazy.faults == 2,
        &Seen(&lazy),
    );
    // Locked, so mapped (a locked slot cannot be deleted: rule 3.8), then
    // deleted.
    let deleted = |s: &mut Started, vm| {
        locked(s, vm)?;
        add(s, vm, MemoryRegion { memory_size: 0, ..probed(0) })
    };
    let (gone, ()) = trial(started, deleted, PROBE_READ, PROBED_GPA)?;
    let want = Ended::Stopped(StopReason::Unmapped { gpa: Gpa(PROBED_GPA) });
    let c = report("a deleted memslot's range faults, also after a lock mapped it", gone.ended == want, &Seen(&gone));
    Ok(a && b && c)
}

/// A moved memslot's old range faults, also after a lock had mapped it,
/// and the slot reads at its new range (rule 3.6's move).
fn moved(started: &mut Started) -> Result<bool, Errno> {
    let moved_away = |s: &mut Started, vm| {
        add(s, vm, probed(0))?;
        lock_unlock(s, vm)?;
        add(s, vm, MemoryRegion { guest_phys_addr: MOVED_GPA, ..probed(0) })
    };
    let (old, ()) = trial(started, moved_away, PROBE_READ, PROBED_GPA)?;
    let (new, ()) = trial(started, moved_away, PROBE_READ, MOVED_GPA)?;
    let want = Ended::Stopped(StopReason::Unmapped { gpa: Gpa(PROBED_GPA) });
    let a = report("a moved memslot's old range faults, also after a lock mapped it", old.ended == want, &Seen(&old));
    let b = report("a moved memslot reads at its new range", powered_off(&new), &Seen(&new));
    Ok(a && b)
}

/// A new guest_memfd of VM `vm`, bound to its private slot; its handle.
fn bound_memfd(started: &mut Started, vm: VmId) -> Result<GmemHandle, Errno> {
    let h = call(started, Request::CreateGuestMemfd { vm, size: PAGES * 4096, flags: 0 })? as u32;
    add(started, vm, slot(2, GUEST_MEMFD, PRIVATE_GPA, 0, h))?;
    Ok(GmemHandle(h))
}

fn close(started: &mut Started, handle: GmemHandle) -> Result<u64, Errno> {
    call(started, Request::CloseGuestMemfd { handle })
}

/// The physical address of page 0 of guest_memfd `h`'s frames, as seL4
/// has it (`seL4_ARM_Page_GetAddress`).
fn first_page_paddr(started: &Started, h: GmemHandle) -> Result<usize, Errno> {
    let frames = started.core.gmem().get(h).ok_or(Errno::ENOENT)?.frames();
    sel4::cap::SmallPage::from_bits(frames.base.0).frame_get_address().map_err(|_| Errno::EIO)
}

/// guest_memfd pages read zero, also where another guest wrote before:
/// the memory of a closed file comes back to the pool and is given out
/// again, and the check holds only if the new file's page is that very
/// physical page. After CLOSE, the guest's access faults, also to a page
/// it had touched before the close.
fn private_memory(started: &mut Started) -> Result<bool, Errno> {
    // A guest fills its private page, then goes with its file; the next
    // guest's new file reads zero.
    let bound_at = |s: &mut Started, vm| {
        let h = bound_memfd(s, vm)?;
        Ok((h, first_page_paddr(s, h)?))
    };
    let (filled, (h, old)) = trial(started, bound_at, PROBE_FILL, PRIVATE_GPA)?;
    close(started, h)?;
    let (fresh, (h, new)) = trial(started, bound_at, PROBE_READ, PRIVATE_GPA)?;
    close(started, h)?;
    let a = report(
        "guest_memfd pages read zero, also the very page another guest filled before",
        powered_off(&filled) && filled.x3 == 0xbeef && old == new && powered_off(&fresh) && fresh.x3 == 0,
        &format_args!("{}; filled at {old:#x}, read at {new:#x}", Seen(&fresh)),
    );
    // Closed while bound: the guest's access faults.
    let closed_first = |s: &mut Started, vm| {
        let h = bound_memfd(s, vm)?;
        close(s, h)
    };
    let (closed, _) = trial(started, closed_first, PROBE_READ, PRIVATE_GPA)?;
    let b = report(
        "after CLOSE, the guest's access to its guest_memfd faults",
        matches!(closed.ended, Ended::Stopped(r) if r != StopReason::SystemOff),
        &Seen(&closed),
    );
    // Touched, so mapped, then closed while the vCPU is stopped; the same
    // vCPU runs again and its access faults: the close took the mapping.
    let vm = vm_with_code(started)?;
    let r = bound_memfd(started, vm).and_then(|h| {
        let touched = probe(started, vm, PROBE_FILL, PRIVATE_GPA)?;
        close(started, h)?;
        Ok((touched, probe(started, vm, PROBE_READ, PRIVATE_GPA)?))
    });
    let destroyed = call(started, Request::DestroyVm { vm });
    let (touched, after) = r?;
    destroyed?;
    let want = Ended::Stopped(StopReason::NoBacking { gpa: Gpa(PRIVATE_GPA) });
    let c = report(
        "after CLOSE, the guest's access to a guest_memfd page it had touched faults",
        powered_off(&touched) && touched.faults == 2 && after.ended == want && after.faults == 1,
        &format_args!("before: {}; after: {}", Seen(&touched), Seen(&after)),
    );
    Ok(a && b && c)
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
        held,
        &format_args!("{ran}; refused to both clients: {hidden}"),
    ))
}

/// Runs every check; prints one line each and a verdict.
pub fn run(started: &mut Started) {
    let groups: [(&str, fn(&mut Started) -> Result<bool, Errno>); 5] = [
        ("READONLY", readonly),
        ("lock and delete", locked_then_deleted),
        ("move", moved),
        ("guest_memfd", private_memory),
        ("internal VM", internal),
    ];
    let mut all = true;
    for (name, check) in groups {
        all &= check(started).unwrap_or_else(|e| refused(name, e));
    }
    if all {
        sel4::debug_println!("enforce: every check held");
    } else {
        sel4::debug_println!("enforce: FAILED");
    }
}
