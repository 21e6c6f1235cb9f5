//! One request trace for the root task on seL4 and for the core on the host
//! model, so that the two can be held to each other: the same
//! configuration of the core ([`world`]), the same requests from the same
//! seed ([`Trace`]) and the same line for each result ([`line`]). A
//! difference between the two logs is a bug in the model or in the root
//! task's backend.
//!
//! `no_std`, no allocator: the root task builds it for seL4.

#![no_std]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

pub mod world;

use core::fmt::{self, Write};

use vmm_abi::memslot::{MemoryRegion, GUEST_MEMFD, LOCK_READ, LOCK_WRITE, LOG_DIRTY_PAGES, READONLY, UNLOCK_ALL};
use vmm_abi::protocol::Request;
use vmm_abi::{ClientId, Errno, GmemHandle, VcpuId, VmId};

use world::{region, CLIENT, PRIVILEGED, RAM_GPA, RAM_PAGES, RAM_VADDR};

/// The seed CI runs.
pub const SEED: u64 = 0x5eed_0f7a_ce00;

/// Random requests CI runs after the scenario.
pub const RANDOM: usize = 2000;

/// A small deterministic generator (xorshift64), the same on every target,
/// for this trace and for the host tool's robustness test: a fixed
/// sequence, so that a failure reproduces. Its state must not be 0.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n` (0 if `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// One of the live entries of `ids` (id not 0), or `none` if none is.
    fn pick_live(&mut self, ids: &[(u32, ClientId); 4], none: (u32, ClientId)) -> (u32, ClientId) {
        let live = ids.iter().filter(|e| e.0 != 0).count() as u64;
        if live == 0 {
            return none;
        }
        let k = (self.next_u64() % live) as usize;
        ids.iter().filter(|e| e.0 != 0).nth(k).copied().unwrap_or(none)
    }

    /// One of `items`, which must not be empty (the lists below are not).
    fn pick<T: Copy>(&mut self, items: &[T], default: T) -> T {
        let n = items.len() as u64;
        if n == 0 {
            return default;
        }
        items.get((self.next_u64() % n) as usize).copied().unwrap_or(default)
    }
}

const RAM_BYTES: u64 = RAM_PAGES * 4096;

/// The client scenario: what a client does with one VM, in order.
fn scenario() -> [(ClientId, Request); 12] {
    let vm = VmId(1);
    let c = CLIENT;
    let ram = region(0, 0, RAM_GPA, 16 * 4096, RAM_VADDR, 0);
    let private = MemoryRegion { guest_memfd_offset: 0, ..region(1, GUEST_MEMFD, 0x5000_0000, 4 * 4096, 0, 1) };
    [
        (c, Request::CreateVm),
        (c, Request::CreateVcpu { vm, vcpu: VcpuId(0) }),
        (c, Request::CreateGuestMemfd { vm, size: 4 * 4096, flags: 0 }),
        (c, Request::SetMemoryRegion { vm, region: ram }),
        (c, Request::SetMemoryRegion { vm, region: private }),
        (c, Request::LockMemslot { vm, slot: 0, flags: LOCK_READ | LOCK_WRITE }),
        (c, Request::SetReg { vm, vcpu: VcpuId(0), reg: 0, value: 0x1234 }),
        (c, Request::GetReg { vm, vcpu: VcpuId(0), reg: 0 }),
        (c, Request::UnlockMemslot { vm, slot: 0, flags: UNLOCK_ALL }),
        (c, Request::SetMemoryRegion { vm, region: region(0, 0, RAM_GPA, 0, RAM_VADDR, 0) }),
        (c, Request::DestroyVm { vm }),
        (c, Request::CloseGuestMemfd { handle: GmemHandle(1) }),
    ]
}

/// The trace: the client scenario, then `random` requests drawn from
/// `seed` for both clients. Each result is given back ([`Trace::record`]),
/// so that most requests name VMs and guest_memfds that exist; two runs
/// whose results agree make the same requests, and the first result that
/// differs shows where. No vCPU is run: the model has no guest to run.
#[derive(Clone, Debug)]
pub struct Trace {
    rng: Rng,
    at: usize,
    random: usize,
    /// The VM ids CREATE_VM gave and not destroyed, with their owners
    /// (id 0: none), newest last.
    vms: [(u32, ClientId); 4],
    /// The guest_memfd handles CREATE_GUEST_MEMFD gave and not closed,
    /// with their VMs' owners (0: none).
    handles: [(u32, ClientId); 4],
}

/// Puts `entry` in place of the oldest of `ids`.
fn remember(ids: &mut [(u32, ClientId); 4], entry: (u32, ClientId)) {
    ids.rotate_left(1);
    if let Some(last) = ids.last_mut() {
        *last = entry;
    }
}

/// Forgets `id`.
fn forget(ids: &mut [(u32, ClientId); 4], id: u32) {
    for e in ids.iter_mut().filter(|e| e.0 == id) {
        e.0 = 0;
    }
}

impl Trace {
    /// The trace of `seed` with `random` random requests.
    pub fn new(seed: u64, random: usize) -> Trace {
        Trace { rng: Rng(seed | 1), at: 0, random, vms: [(0, CLIENT); 4], handles: [(0, CLIENT); 4] }
    }

    fn random_request(&mut self) -> (ClientId, Request) {
        let r = &mut self.rng;
        // Mostly a VM or handle that was given out, now and then one that
        // never was.
        let (vm, owner) = match r.next_u64() % 8 {
            0 => (r.pick(&[0, 99], 0), CLIENT),
            _ => r.pick_live(&self.vms, (1, CLIENT)),
        };
        let vm = VmId(vm);
        let handle = match r.next_u64() % 8 {
            0 => r.pick(&[0, 99], 0),
            _ => r.pick_live(&self.handles, (1, CLIENT)).0,
        };
        // Mostly the owner, now and then the other client.
        let client = match (r.next_u64() % 8, owner) {
            (0, c) if c == CLIENT => PRIVILEGED,
            (0, _) => CLIENT,
            (_, c) => c,
        };
        let vcpu = VcpuId(r.pick(&[0, 1, 2], 0));
        let slot = r.pick(&[0, 1, 2, 3], 0);
        let req = match r.next_u64() % 16 {
            0 | 14 => Request::CreateVm,
            1 | 15 => Request::DestroyVm { vm },
            2 | 3 => Request::CreateVcpu { vm, vcpu },
            4..=6 => {
                let flags = r.pick(&[0, 0, READONLY, GUEST_MEMFD, GUEST_MEMFD, LOG_DIRTY_PAGES, 0x80], 0);
                let gpa = r.pick(&[RAM_GPA, RAM_GPA + 0x1_0000, RAM_GPA + 0x10_0000, 0x5000_0000, RAM_GPA + 0x800], 0);
                let size = r.pick(&[0, 4096, 16 * 4096, 64 * 4096, 4097], 4096);
                let vaddr = r.pick(&[RAM_VADDR, RAM_VADDR + 0x1_0000, RAM_VADDR + RAM_BYTES - 4096, 0x1000], RAM_VADDR);
                let gmem = handle;
                let mut region = region(slot, flags, gpa, size, vaddr, gmem);
                region.guest_memfd_offset = r.pick(&[0, 0, 4096, 3], 0);
                Request::SetMemoryRegion { vm, region }
            }
            7 | 8 => {
                let size = r.pick(&[4096, 4 * 4096, 16 * 4096, 0, 100], 4096);
                Request::CreateGuestMemfd { vm, size, flags: r.pick(&[0, 0, 0, 1], 0) }
            }
            9 => Request::CloseGuestMemfd { handle: GmemHandle(handle) },
            10 | 11 => Request::LockMemslot {
                vm,
                slot,
                flags: r.pick(&[LOCK_READ | LOCK_WRITE, LOCK_READ, LOCK_WRITE, 0, 8], LOCK_READ),
            },
            12 => Request::UnlockMemslot { vm, slot, flags: r.pick(&[UNLOCK_ALL, 0, 2], UNLOCK_ALL) },
            _ => Request::GetReg { vm, vcpu, reg: r.pick(&[0, 1, 31, 32, 200], 0) },
        };
        (client, req)
    }
}

impl Trace {
    /// Takes the result of the request [`Trace::next_request`] gave last.
    pub fn record(&mut self, client: ClientId, req: &Request, result: Result<u64, Errno>) {
        match (req, result) {
            (Request::CreateVm, Ok(id)) => remember(&mut self.vms, (id as u32, client)),
            (Request::CreateGuestMemfd { .. }, Ok(h)) => remember(&mut self.handles, (h as u32, client)),
            (Request::DestroyVm { vm }, Ok(_)) => forget(&mut self.vms, vm.0),
            (Request::CloseGuestMemfd { handle }, Ok(_)) => forget(&mut self.handles, handle.0),
            _ => {}
        }
    }

    /// The next request and its client; `None` at the end.
    pub fn next_request(&mut self) -> Option<(ClientId, Request)> {
        let first = scenario();
        let i = self.at;
        self.at = self.at.saturating_add(1);
        if let Some(step) = first.get(i) {
            return Some(*step);
        }
        if i < first.len().saturating_add(self.random) {
            return Some(self.random_request());
        }
        None
    }
}

/// Request `req` as `client` sends it: encoded, then decoded and performed
/// by the core's one entry point; its protocol label and its result.
pub fn send<K: vmm::kernel::Kernel, A: vmm::platform::Platform, const V: usize>(
    vmm: &mut vmm::Vmm<K, A, V>,
    client: ClientId,
    req: &Request,
) -> (u64, Result<u64, Errno>) {
    let mut payload = [0u8; vmm_abi::protocol::MAX_PAYLOAD];
    let (label, len) = req.encode(&mut payload);
    (label, vmm.handle(client, label, payload.get(..len).unwrap_or(&[])).result)
}

/// What a run of the trace made: how many requests it sent, and the last
/// VM id and guest_memfd handle it was given (ids are never reused, so
/// everything it made is at most these).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ran {
    /// Requests sent.
    pub requests: usize,
    /// The last VM id CREATE_VM gave (0: none).
    pub last_vm: u32,
    /// The last handle CREATE_GUEST_MEMFD gave (0: none).
    pub last_handle: u32,
}

/// Runs the trace of `seed` with `random` random requests on `vmm`, one
/// [`line`] per result into `out`.
pub fn run<K: vmm::kernel::Kernel, A: vmm::platform::Platform, const V: usize, W: Write>(
    vmm: &mut vmm::Vmm<K, A, V>,
    seed: u64,
    random: usize,
    out: &mut W,
) -> Result<Ran, fmt::Error> {
    let mut trace = Trace::new(seed, random);
    let mut ran = Ran::default();
    while let Some((client, req)) = trace.next_request() {
        let (label, result) = send(vmm, client, &req);
        trace.record(client, &req, result);
        match (&req, result) {
            (Request::CreateVm, Ok(id)) => ran.last_vm = id as u32,
            (Request::CreateGuestMemfd { .. }, Ok(h)) => ran.last_handle = h as u32,
            _ => {}
        }
        line(out, ran.requests, client, label, result)?;
        ran.requests += 1;
    }
    Ok(ran)
}

/// The line request `i` of `client` with protocol label `label` prints
/// for `result`.
pub fn line<W: Write>(out: &mut W, i: usize, client: ClientId, label: u64, result: Result<u64, Errno>) -> fmt::Result {
    match result {
        Ok(v) => writeln!(out, "trace {i} client {} label {label}: ok {v}", client.0),
        Err(e) => writeln!(out, "trace {i} client {} label {label}: errno {}", client.0, e.code()),
    }
}
