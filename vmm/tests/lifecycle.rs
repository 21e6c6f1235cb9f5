//! Section 1 of the rules: VMs, owners and the registry.
//!
//! Every refused request goes through `fails_unchanged` (errno and the whole
//! state, model included, unchanged); every successful step is followed by
//! `check_invariants`.

mod common;
use common::*;

use vmm::caps::Slot;
use vmm::kernel::KernelError;
use vmm::registry::{Owner, Presence};
use vmm::vm::VcpuState;
use vmm::{Error, Vmm};
use vmm_abi::limits::MAX_VMS;
use vmm_abi::memslot::UNLOCK_ALL;
use vmm_abi::protocol::{label, Request, CAP_MEM_TAGGING, MAX_PAYLOAD};
use vmm_abi::wire::CreateVm;
use vmm_abi::{ClientId, Errno, VcpuId, VmId};
use zerocopy::little_endian::U64;
use zerocopy::IntoBytes;

/// Guest-physical base of the RAM slot every test VM gets.
const GPA: u64 = 0x8000_0000;

/// The channel of a client owner.
fn cid(owner: Owner) -> ClientId {
    match owner {
        Owner::Client(c) => c,
        Owner::Internal => panic!("the internal owner has no channel"),
    }
}

/// Sends `req` as `client` through the protocol entry point.
fn send(v: &mut TestVmm, client: ClientId, req: Request) -> Result<u64, Errno> {
    let mut buf = [0u8; MAX_PAYLOAD];
    let (l, n) = req.encode(&mut buf);
    v.handle(client, l, &buf[..n]).result
}

/// A VM of `owner` with vCPU 0 (stopped) and RAM slot 0 (one page at
/// [`GPA`], backed from RAM page `ram_page`).
fn populated_vm(v: &mut TestVmm, owner: Owner, ram_page: u64) -> VmId {
    let vm = v.create_vm(owner).unwrap();
    v.create_vcpu(owner, vm, VcpuId(0)).unwrap();
    v.set_memory_region(owner, vm, &ram_region(0, GPA, 1, ram_page)).unwrap();
    check_invariants(v);
    vm
}

/// One well-formed request of every kind that names `vm`, each of which its
/// owner may make on a [`populated_vm`] (checked by [`owner_may_make_each`]).
fn requests_naming(vm: VmId) -> Vec<Request> {
    vec![
        Request::DestroyVm { vm },
        Request::CreateVcpu { vm, vcpu: VcpuId(1) },
        Request::RunVcpu { vm, vcpu: VcpuId(0), entry: GPA, arg: 7 },
        Request::StopVcpu { vm, vcpu: VcpuId(0) },
        Request::GetReg { vm, vcpu: VcpuId(0), reg: 32 },
        Request::SetReg { vm, vcpu: VcpuId(0), reg: 0, value: 5 },
        Request::IrqLine { vm, irq: 32, level: 1 },
        Request::SetMemoryRegion { vm, region: ram_region(1, GPA + 0x10_0000, 1, 100) },
        Request::CreateGuestMemfd { vm, size: 4096, flags: 0 },
        Request::LockMemslot { vm, slot: 0, flags: 1 },
        Request::UnlockMemslot { vm, slot: 0, flags: UNLOCK_ALL },
        Request::EnableCap { vm, cap: CAP_MEM_TAGGING, arg: 0 },
    ]
}

/// The control for the refusal tests: each request of [`requests_naming`]
/// succeeds when `owner` makes it, so a refusal can only come from who asks.
fn owner_may_make_each(v: &TestVmm, owner: Owner, vm: VmId) {
    for req in requests_naming(vm) {
        let mut w = Box::new(v.clone());
        if let Err(e) = w.perform(owner, req) {
            panic!("control: the owner {owner:?} could not make {req:?}: {e}");
        }
        check_invariants(&w);
    }
}

/// Every request naming `vm`, made by `caller` both directly and through the
/// protocol, fails with `errno` and changes nothing.
fn every_request_fails(v: &mut TestVmm, caller: Owner, vm: VmId, errno: Errno) {
    for req in requests_naming(vm) {
        fails_unchanged(v, errno, |v| v.perform(caller, req));
        if let Owner::Client(c) = caller {
            fails_unchanged(v, errno, |v| send(v, c, req).map_err(Error::Protocol));
        }
    }
}

fn hooks_failing_first_add(errno: Errno) -> Box<TestVmm> {
    let hooks = Hooks { fail_add: Some(errno), ..Hooks::default() };
    Box::new(Vmm::new(model(UNTYPED), hooks, config()).unwrap())
}

fn tcb_slot(v: &TestVmm, vm: VmId, vcpu: u32) -> Slot {
    v.registry().entry(vm).unwrap().vm().vcpu_caps(VcpuId(vcpu)).unwrap().0.slot()
}

// ---- Rule 1.1: a VM's owner is the client that created it, or internal. ----

#[test]
fn a_vm_created_by_a_client_is_owned_by_that_client() {
    let mut v = world();
    for owner in [A, B, P] {
        let vm = v.create_vm(owner).unwrap();
        check_invariants(&v);
        assert_eq!(v.registry().entry(vm).unwrap().owner(), owner);
    }
}

#[test]
fn a_vm_created_by_the_vmm_itself_is_internal() {
    let mut v = world();
    let vm = v.create_vm(Owner::Internal).unwrap();
    check_invariants(&v);
    assert_eq!(v.registry().entry(vm).unwrap().owner(), Owner::Internal);
}

#[test]
fn the_channel_a_create_request_came_on_is_the_owner() {
    let mut v = world();
    for owner in [A, B, P] {
        let id = v.handle(cid(owner), label::CREATE_VM, CreateVm::default().as_bytes()).result.unwrap();
        check_invariants(&v);
        let vm = VmId(u32::try_from(id).unwrap());
        assert_eq!(v.registry().entry(vm).unwrap().owner(), owner);
    }
}

// ---- Rule 1.2: no request can create an internal VM; EPERM for VMs the ----
// ---- caller does not own, ENOENT for VMs that do not exist.             ----

#[test]
fn create_vm_payload_has_no_field_but_reserved_flags() {
    // The only field of CREATE_VM is `flags`; were there an owner or
    // "internal" field, the payload would be larger.
    assert_eq!(core::mem::size_of::<CreateVm>(), 8);
}

#[test]
fn create_vm_with_any_flag_bit_set_is_einval() {
    let mut v = world();
    for bit in 0..64 {
        let payload = CreateVm { flags: U64::new(1 << bit) };
        fails_unchanged(&mut v, Errno::EINVAL, |v| {
            v.handle(cid(A), label::CREATE_VM, payload.as_bytes()).result.map_err(Error::Protocol)
        });
    }
    let payload = CreateVm { flags: U64::new(u64::MAX) };
    fails_unchanged(&mut v, Errno::EINVAL, |v| {
        v.handle(cid(A), label::CREATE_VM, payload.as_bytes()).result.map_err(Error::Protocol)
    });
    assert_eq!(v.registry().entries().count(), 0);
}

#[test]
fn requests_naming_an_internal_vm_are_eperm_for_every_client() {
    let mut v = world();
    let vm = populated_vm(&mut v, Owner::Internal, 0);
    owner_may_make_each(&v, Owner::Internal, vm);
    for caller in [A, B, P, STRANGER] {
        every_request_fails(&mut v, caller, vm, Errno::EPERM);
    }
}

#[test]
fn requests_naming_another_clients_vm_are_eperm() {
    let mut v = world();
    let vm = populated_vm(&mut v, A, 0);
    owner_may_make_each(&v, A, vm);
    let h = v.create_guest_memfd(A, vm, 4096, 0).unwrap();
    check_invariants(&v);
    for caller in [B, P, STRANGER] {
        every_request_fails(&mut v, caller, vm, Errno::EPERM);
        // A request naming the VM through one of its files.
        fails_unchanged(&mut v, Errno::EPERM, |v| v.close_guest_memfd(caller, h));
        fails_unchanged(&mut v, Errno::EPERM, |v| {
            send(v, cid(caller), Request::CloseGuestMemfd { handle: h }).map_err(Error::Protocol)
        });
    }
}

#[test]
fn requests_naming_a_vm_that_does_not_exist_are_enoent() {
    let mut v = world();
    let vm = populated_vm(&mut v, A, 0);
    for missing in [VmId(0), VmId(vm.0 + 1), VmId(99), VmId(u32::MAX)] {
        every_request_fails(&mut v, A, missing, Errno::ENOENT);
    }
}

#[test]
fn requests_naming_a_destroyed_vm_are_enoent() {
    let mut v = world();
    let vm = populated_vm(&mut v, A, 0);
    v.destroy_vm(A, vm).unwrap();
    check_invariants(&v);
    assert!(v.registry().entry(vm).is_none());
    every_request_fails(&mut v, A, vm, Errno::ENOENT);
}

#[test]
fn an_unconfigured_client_cannot_create_a_vm() {
    let mut v = world();
    fails_unchanged(&mut v, Errno::EPERM, |v| v.create_vm(STRANGER));
    fails_unchanged(&mut v, Errno::EPERM, |v| {
        v.handle(cid(STRANGER), label::CREATE_VM, CreateVm::default().as_bytes()).result.map_err(Error::Protocol)
    });
    assert_eq!(v.usage_count(), 0);
    assert!(v.hooks().log.is_empty(), "the hook must not be called for a refused caller");
}

// ---- Rule 1.3: internal VMs have no client handles.                     ----

#[test]
fn clients_cannot_close_an_internal_vms_guest_memfd() {
    let mut v = world();
    let vm = v.create_vm(Owner::Internal).unwrap();
    let h = v.create_guest_memfd(Owner::Internal, vm, 4096, 0).unwrap();
    check_invariants(&v);
    for caller in [A, B, P, STRANGER] {
        fails_unchanged(&mut v, Errno::EPERM, |v| v.close_guest_memfd(caller, h));
        fails_unchanged(&mut v, Errno::EPERM, |v| {
            send(v, cid(caller), Request::CloseGuestMemfd { handle: h }).map_err(Error::Protocol)
        });
    }
    // Control: the VMM itself can.
    v.close_guest_memfd(Owner::Internal, h).unwrap();
    check_invariants(&v);
}

#[test]
fn clients_cannot_bind_an_internal_vms_guest_memfd() {
    let mut v = world();
    let internal = v.create_vm(Owner::Internal).unwrap();
    let h = v.create_guest_memfd(Owner::Internal, internal, 4096, 0).unwrap();
    let mine = v.create_vm(A).unwrap();
    check_invariants(&v);
    let region = gmem_region(0, GPA, 1, h, 0);
    // Rule 4.3: the handle of another VM's file is EINVAL.
    fails_unchanged(&mut v, Errno::EINVAL, |v| v.set_memory_region(A, mine, &region));
    fails_unchanged(&mut v, Errno::EINVAL, |v| {
        send(v, cid(A), Request::SetMemoryRegion { vm: mine, region }).map_err(Error::Protocol)
    });
    // Control: the file can be bound to its own VM.
    v.set_memory_region(Owner::Internal, internal, &region).unwrap();
    check_invariants(&v);
}

// ---- Rule 1.4: add = count, hook, then list; a refused hook is undone   ----
// ---- inline and never cleaned up with remove/drop.                      ----

#[test]
fn a_refused_add_returns_the_hooks_error_and_changes_nothing() {
    let mut v = hooks_failing_first_add(Errno::EAGAIN);
    fails_unchanged(&mut v, Errno::EAGAIN, |v| v.create_vm(A));
    assert_eq!(v.usage_count(), 0, "the count must be undone");
    assert_eq!(v.registry().entries().count(), 0, "nothing may be listed");
    assert!(!v.hooks().enabled);
    assert_eq!(v.hooks().fail_add, None, "the hook must have been called");
}

#[test]
fn a_refused_add_calls_add_once_and_never_remove_or_drop() {
    let mut v = hooks_failing_first_add(Errno::ENOMEM);
    fails_unchanged(&mut v, Errno::ENOMEM, |v| v.create_vm(A));
    assert_eq!(v.hooks().log, ["add 1 1"]);
}

#[test]
fn a_refused_vm_is_not_reachable() {
    let mut v = hooks_failing_first_add(Errno::EAGAIN);
    fails_unchanged(&mut v, Errno::EAGAIN, |v| v.create_vm(A));
    every_request_fails(&mut v, A, VmId(1), Errno::ENOENT);
}

#[test]
fn after_a_refused_add_the_next_add_sees_the_count_restored() {
    let mut v = hooks_failing_first_add(Errno::EAGAIN);
    fails_unchanged(&mut v, Errno::EAGAIN, |v| v.create_vm(A));
    let vm = v.create_vm(A).unwrap();
    check_invariants(&v);
    // Had the count not been undone, the second add would see 2.
    assert_eq!(v.hooks().log, ["add 1 1".to_string(), format!("add {} 1", vm.0)]);
    assert_eq!(v.usage_count(), 1);
    assert!(v.hooks().enabled);
}

#[test]
fn a_refused_add_is_reported_through_the_protocol() {
    let mut v = hooks_failing_first_add(Errno::EAGAIN);
    fails_unchanged(&mut v, Errno::EAGAIN, |v| {
        v.handle(cid(A), label::CREATE_VM, CreateVm::default().as_bytes()).result.map_err(Error::Protocol)
    });
    assert_eq!(v.hooks().log, ["add 1 1"]);
}

#[test]
fn a_vm_is_listed_once_its_add_succeeded() {
    let mut v = world();
    let vm = v.create_vm(A).unwrap();
    check_invariants(&v);
    assert_eq!(v.hooks().log, [format!("add {} 1", vm.0)]);
    let e = v.registry().entry(vm).unwrap();
    assert_eq!(e.presence(), Presence::Listed);
    assert_eq!(e.file_refs(), 0);
    // Listed: the owner reaches it.
    v.create_vcpu(A, vm, VcpuId(0)).unwrap();
    check_invariants(&v);
}

#[test]
fn a_vm_refused_by_the_kernel_changes_nothing() {
    // Every fallible kernel invocation of CREATE_VM, made to fail in turn.
    let v = world();
    let mut points = 0;
    for n in 0.. {
        let mut probe = Box::new(v.clone());
        probe.kernel_mut().fail_nth(n, KernelError::NotEnoughMemory);
        let r = probe.create_vm(A);
        if probe.kernel().failure_pending() {
            r.unwrap();
            check_invariants(&probe);
            break;
        }
        points += 1;
        let mut w = Box::new(v.clone());
        w.kernel_mut().fail_nth(n, KernelError::NotEnoughMemory);
        fails_unchanged(&mut w, Errno::ENOMEM, |w| w.create_vm(A));
        assert!(w.hooks().log.is_empty(), "the hook must not run when the kernel refused");
    }
    assert!(points > 0);
}

// ---- Rule 1.5: destroy = remove, tear down, then drop; shared resources ----
// ---- are enabled at the first add (0 -> 1), released at the last drop.  ----

#[test]
fn destroy_calls_remove_then_drop() {
    let mut v = world();
    let vm = v.create_vm(A).unwrap();
    v.destroy_vm(A, vm).unwrap();
    check_invariants(&v);
    assert_eq!(v.hooks().log, [format!("add {} 1", vm.0), format!("remove {}", vm.0), "drop 0".to_string()]);
    assert!(v.registry().entry(vm).is_none());
}

#[test]
fn shared_resources_are_enabled_at_the_first_add_and_released_at_the_last_drop() {
    let mut v = world();
    assert!(!v.hooks().enabled);
    let a = v.create_vm(A).unwrap();
    assert!(v.hooks().enabled, "enabled by the first add");
    let i = v.create_vm(Owner::Internal).unwrap();
    let b = v.create_vm(B).unwrap();
    check_invariants(&v);
    v.destroy_vm(A, a).unwrap();
    assert!(v.hooks().enabled, "drop 2 must not release");
    v.destroy_vm(Owner::Internal, i).unwrap();
    assert!(v.hooks().enabled, "drop 1 must not release");
    check_invariants(&v);
    v.destroy_vm(B, b).unwrap();
    assert!(!v.hooks().enabled, "released by the last drop");
    check_invariants(&v);
    let c = v.create_vm(P).unwrap();
    assert!(v.hooks().enabled, "enabled again by the next first add");
    check_invariants(&v);
    let want = [
        format!("add {} 1", a.0),
        format!("add {} 2", i.0),
        format!("add {} 3", b.0),
        format!("remove {}", a.0),
        "drop 2".to_string(),
        format!("remove {}", i.0),
        "drop 1".to_string(),
        format!("remove {}", b.0),
        "drop 0".to_string(),
        format!("add {} 1", c.0),
    ];
    assert_eq!(v.hooks().log, want);
}

#[test]
fn the_usage_count_is_the_number_of_vms_added_and_not_dropped() {
    let mut v = world();
    let mut live = Vec::new();
    for (step, owner) in [A, B, Owner::Internal, A].into_iter().enumerate() {
        live.push((owner, v.create_vm(owner).unwrap()));
        check_invariants(&v);
        assert_eq!(v.usage_count(), step as u32 + 1);
    }
    // Refused requests do not count.
    fails_unchanged(&mut v, Errno::ENOSPC, |v| v.create_vm(A));
    fails_unchanged(&mut v, Errno::EPERM, |v| v.destroy_vm(B, live[0].1));
    while let Some((owner, vm)) = live.pop() {
        v.destroy_vm(owner, vm).unwrap();
        check_invariants(&v);
        assert_eq!(v.usage_count(), live.len() as u32);
    }
}

#[test]
fn destroy_stops_vcpus_unlocks_and_releases_every_capability() {
    let mut v = world();
    let before = v.clone();
    let vm = populated_vm(&mut v, A, 0);
    v.create_vcpu(A, vm, VcpuId(1)).unwrap();
    v.run_vcpu(A, vm, VcpuId(0), GPA, 0).unwrap();
    v.run_vcpu(A, vm, VcpuId(1), GPA, 1).unwrap();
    v.set_memory_region(A, vm, &ram_region(1, GPA + 0x20_0000, 4, 8)).unwrap();
    assert_eq!(v.stage2_fault(vm, Gpa(GPA), true).unwrap(), vmm::FaultOutcome::Mapped);
    v.lock_memslot(A, vm, 1, 3).unwrap();
    check_invariants(&v);
    let tcbs = [tcb_slot(&v, vm, 0), tcb_slot(&v, vm, 1)];
    assert!(tcbs.iter().all(|t| v.kernel().tcb_running(*t)));
    assert_eq!(v.charges().charged(A), 4);

    v.destroy_vm(A, vm).unwrap();
    check_invariants(&v);
    for t in tcbs {
        assert_eq!(v.kernel().object_at(t), None, "vCPU TCB left behind");
    }
    assert_eq!(v.charges().charged(A), 0, "locked pages still charged");
    // Every capability, object, byte of untyped memory and CSpace slot the
    // VM took is back.
    assert!(v.kernel() == before.kernel(), "the model differs from before the VM existed");
    assert_eq!(v.cspace(), before.cspace());
    assert_eq!(v.charges(), before.charges());
    assert_eq!(v.usage_count(), 0);
}

#[test]
fn destroy_tears_down_before_the_drop() {
    // An open file holds the drop back (rule 1.6), which shows what has
    // happened between remove and drop: the whole teardown.
    let mut v = world();
    let vm = populated_vm(&mut v, A, 0);
    v.run_vcpu(A, vm, VcpuId(0), GPA, 0).unwrap();
    v.lock_memslot(A, vm, 0, 1).unwrap();
    let h = v.create_guest_memfd(A, vm, 4 * 4096, 0).unwrap();
    v.set_memory_region(A, vm, &gmem_region(1, GPA + 0x10_0000, 4, h, 0)).unwrap();
    assert_eq!(v.stage2_fault(vm, Gpa(GPA + 0x10_0000), true).unwrap(), vmm::FaultOutcome::Mapped);
    check_invariants(&v);
    let tcb = tcb_slot(&v, vm, 0);
    let vspace = v.registry().entry(vm).unwrap().vm().vspace().slot();

    v.destroy_vm(A, vm).unwrap();
    check_invariants(&v);
    assert!(!v.hooks().log.iter().any(|l| l.starts_with("drop")), "not dropped yet");
    assert_eq!(v.hooks().log.last().unwrap(), &format!("remove {}", vm.0));
    assert!(v.hooks().enabled, "shared resources stay enabled until the drop");
    assert_eq!(v.kernel().object_at(tcb), None, "vCPU not released");
    assert_eq!(v.kernel().object_at(vspace), None, "stage 2 not torn down");
    assert_eq!(v.charges().charged(A), 0, "locked slot not uncharged");
    let e = v.registry().entry(vm).unwrap();
    assert!(e.vm().memslots().is_empty(), "memslots not deleted");
    assert!(e.vm().vcpus().all(|(_, v)| v.state() == VcpuState::Absent));
    assert!(v.gmem().get(h).unwrap().bindings().is_empty(), "the file still binds a deleted slot");
}

// ---- Rule 1.6: an open guest_memfd pins its VM: destroy removes at once,  ----
// ---- the drop waits for the last close.                                  ----

#[test]
fn destroying_a_vm_with_an_open_guest_memfd_removes_it_but_does_not_drop_it() {
    let mut v = world();
    let vm = populated_vm(&mut v, A, 0);
    let h = v.create_guest_memfd(A, vm, 4096, 0).unwrap();
    check_invariants(&v);
    assert_eq!(v.usage_count(), 1);

    v.destroy_vm(A, vm).unwrap();
    check_invariants(&v);
    assert_eq!(v.usage_count(), 1, "dropped while a file is open");
    assert_eq!(v.hooks().log, [format!("add {} 1", vm.0), format!("remove {}", vm.0)]);
    let e = v.registry().entry(vm).unwrap();
    assert_eq!(e.presence(), Presence::Removed);
    assert_eq!(e.file_refs(), 1);
    // The file stays open: the VM does not pin the file.
    assert_eq!(v.guest_memfd_vm(h), Some(vm));
    // Nothing can reach the VM.
    every_request_fails(&mut v, A, vm, Errno::ENOENT);
    for other in [B, Owner::Internal] {
        every_request_fails(&mut v, other, vm, Errno::ENOENT);
    }
}

#[test]
fn closing_the_last_file_of_a_destroyed_vm_drops_it() {
    let mut v = world();
    let vm = v.create_vm(A).unwrap();
    let h1 = v.create_guest_memfd(A, vm, 4096, 0).unwrap();
    let h2 = v.create_guest_memfd(A, vm, 2 * 4096, 0).unwrap();
    v.destroy_vm(A, vm).unwrap();
    check_invariants(&v);
    assert_eq!(v.registry().entry(vm).unwrap().file_refs(), 2);

    v.close_guest_memfd(A, h2).unwrap();
    check_invariants(&v);
    assert_eq!(v.usage_count(), 1, "dropped while a file is still open");
    assert_eq!(v.registry().entry(vm).unwrap().file_refs(), 1);
    assert!(!v.hooks().log.iter().any(|l| l.starts_with("drop")));

    v.close_guest_memfd(A, h1).unwrap();
    check_invariants(&v);
    assert_eq!(v.usage_count(), 0);
    assert!(v.registry().entry(vm).is_none());
    assert_eq!(v.hooks().log, [format!("add {} 1", vm.0), format!("remove {}", vm.0), "drop 0".to_string()]);
    assert!(!v.hooks().enabled);
}

#[test]
fn a_destroyed_vms_file_can_be_closed_only_by_its_owner() {
    let mut v = world();
    let vm = v.create_vm(A).unwrap();
    let h = v.create_guest_memfd(A, vm, 4096, 0).unwrap();
    v.destroy_vm(A, vm).unwrap();
    check_invariants(&v);
    for caller in [B, P, STRANGER, Owner::Internal] {
        fails_unchanged(&mut v, Errno::EPERM, |v| v.close_guest_memfd(caller, h));
    }
    v.close_guest_memfd(A, h).unwrap();
    check_invariants(&v);
    assert!(v.registry().entry(vm).is_none());
}

#[test]
fn closing_a_file_of_a_live_vm_neither_removes_nor_drops_it() {
    let mut v = world();
    let vm = v.create_vm(A).unwrap();
    let h = v.create_guest_memfd(A, vm, 4096, 0).unwrap();
    v.close_guest_memfd(A, h).unwrap();
    check_invariants(&v);
    assert_eq!(v.hooks().log, [format!("add {} 1", vm.0)]);
    assert_eq!(v.registry().entry(vm).unwrap().presence(), Presence::Listed);
    assert_eq!(v.registry().entry(vm).unwrap().file_refs(), 0);
    assert_eq!(v.usage_count(), 1);
    // Still reachable; and its destroy now drops at once.
    v.create_vcpu(A, vm, VcpuId(0)).unwrap();
    v.destroy_vm(A, vm).unwrap();
    check_invariants(&v);
    assert_eq!(v.usage_count(), 0);
}

#[test]
fn a_destroyed_vm_cannot_be_destroyed_again() {
    let mut v = world();
    let vm = v.create_vm(A).unwrap();
    v.create_guest_memfd(A, vm, 4096, 0).unwrap();
    v.destroy_vm(A, vm).unwrap();
    check_invariants(&v);
    fails_unchanged(&mut v, Errno::ENOENT, |v| v.destroy_vm(A, vm));
    assert_eq!(v.hooks().log.iter().filter(|l| l.starts_with("remove")).count(), 1);
}

// ---- Rule 1.7: an identifier is not reused while anything refers to it. ----

#[test]
fn the_id_of_a_vm_pinned_by_a_file_is_not_reused() {
    let mut v = world();
    let pinned = v.create_vm(A).unwrap();
    let h = v.create_guest_memfd(A, pinned, 4096, 0).unwrap();
    v.destroy_vm(A, pinned).unwrap();
    check_invariants(&v);
    let mut ids = vec![pinned];
    for owner in [A, B, Owner::Internal] {
        let id = v.create_vm(owner).unwrap();
        check_invariants(&v);
        assert!(!ids.contains(&id), "id {id:?} reused");
        ids.push(id);
    }
    // The pinned id still names the removed VM, not a new one.
    assert_eq!(v.guest_memfd_vm(h), Some(pinned));
    assert_eq!(v.registry().entry(pinned).unwrap().presence(), Presence::Removed);
    every_request_fails(&mut v, A, pinned, Errno::ENOENT);
}

#[test]
fn the_id_of_a_dropped_vm_does_not_name_a_later_vm() {
    let mut v = world();
    let old = v.create_vm(A).unwrap();
    v.destroy_vm(A, old).unwrap();
    let new = v.create_vm(A).unwrap();
    check_invariants(&v);
    assert_ne!(old, new);
    fails_unchanged(&mut v, Errno::ENOENT, |v| v.create_vcpu(A, old, VcpuId(0)));
}

// ---- Capacity: VMs per VMM instance, ENOSPC.                            ----

#[test]
fn creating_a_vm_in_a_full_registry_is_enospc() {
    let mut v = world();
    let mut vms = Vec::new();
    for owner in [A, B, P, Owner::Internal].into_iter().take(MAX_VMS) {
        vms.push((owner, v.create_vm(owner).unwrap()));
        check_invariants(&v);
    }
    assert_eq!(vms.len(), MAX_VMS);
    for owner in [A, B, P, Owner::Internal] {
        fails_unchanged(&mut v, Errno::ENOSPC, |v| v.create_vm(owner));
    }
    fails_unchanged(&mut v, Errno::ENOSPC, |v| {
        v.handle(cid(A), label::CREATE_VM, CreateVm::default().as_bytes()).result.map_err(Error::Protocol)
    });
    // Room again after a destroy.
    let (owner, vm) = vms[1];
    v.destroy_vm(owner, vm).unwrap();
    v.create_vm(A).unwrap();
    check_invariants(&v);
}

#[test]
fn a_destroyed_vm_pinned_by_a_file_still_takes_its_registry_entry() {
    let mut v = world();
    let pinned = v.create_vm(A).unwrap();
    let h = v.create_guest_memfd(A, pinned, 4096, 0).unwrap();
    for _ in 1..MAX_VMS {
        v.create_vm(B).unwrap();
    }
    v.destroy_vm(A, pinned).unwrap();
    check_invariants(&v);
    fails_unchanged(&mut v, Errno::ENOSPC, |v| v.create_vm(A));
    v.close_guest_memfd(A, h).unwrap();
    check_invariants(&v);
    let id = v.create_vm(A).unwrap();
    check_invariants(&v);
    assert_ne!(id, pinned);
}

// Rules 1.8 and 9.4: a deployment that gives its Vmm room for one VM (a
// Microkit VMM PD) has that capacity, with the same rules.
#[test]
fn a_vmm_with_room_for_one_vm_takes_one_at_a_time() {
    let mut v: Box<Vmm<vmm_model::Model, Hooks, 1>> =
        Box::new(Vmm::new(model(UNTYPED), Hooks::default(), config()).unwrap());
    let first = v.create_vm(A).unwrap();
    let h = v.create_guest_memfd(A, first, 4096, 0).unwrap();
    let before = v.clone();
    assert_eq!(v.create_vm(B).unwrap_err().errno(), Errno::ENOSPC);
    assert_eq!(v, before, "a refused create changed the VMM");
    v.destroy_vm(A, first).unwrap();
    assert_eq!(v.create_vm(A).unwrap_err().errno(), Errno::ENOSPC, "the pinned VM still takes the entry");
    v.close_guest_memfd(A, h).unwrap();
    let second = v.create_vm(B).unwrap();
    assert_ne!(second, first);
    vmm_model::invariants::check_state(&v, VMM_VSPACE).unwrap();
}

// Rules 7.3 and 9.2: authority comes before arguments. Once a request has
// decoded, naming a VM the caller does not own is EPERM, and naming a VM
// that does not exist is ENOENT, however bad the rest of the request is.
#[test]
fn authority_is_checked_before_every_other_argument() {
    let mut v = world();
    let a = v.create_vm(A).unwrap();
    let internal = v.create_vm(Owner::Internal).unwrap();
    let missing = VmId(77);
    let bad_region = vmm_abi::memslot::MemoryRegion { flags: 0x8000_0000, memory_size: 1, ..Default::default() };
    type Op = fn(&mut TestVmm, Owner, VmId) -> Result<u64, vmm::Error>;
    let ops: [(&str, Op); 11] = [
        ("create_vcpu id out of range", |v, c, vm| v.create_vcpu(c, vm, VcpuId(1000)).map(|_| 0)),
        ("run of no vCPU", |v, c, vm| v.run_vcpu(c, vm, VcpuId(9), 0, 0).map(|_| 0)),
        ("stop of no vCPU", |v, c, vm| v.stop_vcpu(c, vm, VcpuId(9)).map(|_| 0)),
        ("get of an unknown register", |v, c, vm| v.get_reg(c, vm, VcpuId(0), 9999)),
        ("set of an unknown register", |v, c, vm| v.set_reg(c, vm, VcpuId(0), 9999, 1).map(|_| 0)),
        ("irq out of range", |v, c, vm| v.irq_line(c, vm, 5000, 7).map(|_| 0)),
        ("unknown capability", |v, c, vm| v.enable_cap(c, vm, 999, 1).map(|_| 0)),
        ("lock with bad flags", |v, c, vm| v.lock_memslot(c, vm, 99, 0xf0).map(|_| 0)),
        ("unlock with bad flags", |v, c, vm| v.unlock_memslot(c, vm, 99, 0xf0).map(|_| 0)),
        ("guest_memfd with bad flags and size", |v, c, vm| v.create_guest_memfd(c, vm, 1, 1).map(u64::from)),
        ("destroy", |v, c, vm| v.destroy_vm(c, vm).map(|_| 0)),
    ];
    for (what, op) in ops {
        for (caller, vm, errno) in [(B, a, Errno::EPERM), (A, internal, Errno::EPERM), (A, missing, Errno::ENOENT)] {
            let before = v.clone();
            let r = op(&mut v, caller, vm);
            assert_eq!(r.map_err(|e| e.errno()), Err(errno), "{what} by {caller:?} on {vm:?}");
            assert!(*v == *before, "{what} changed the state");
        }
    }
    for (caller, vm, errno) in [(B, a, Errno::EPERM), (A, internal, Errno::EPERM), (A, missing, Errno::ENOENT)] {
        fails_unchanged(&mut v, errno, |v| v.set_memory_region(caller, vm, &bad_region));
    }
}
