//! One request trace for the root task on seL4 and for the core on the host
//! model, so that the two can be held to each other: the same
//! configuration of the core ([`world`]), the same requests from the same
//! seed (each client's [`ClientTrace`], served in the order of [`turn`])
//! and the same line for each result ([`line`]). A
//! difference between the two logs is a bug in the model or in the root
//! task's backend.
//!
//! `no_std`, no allocator: the root task builds it for seL4.

#![no_std]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

pub mod world;

use core::fmt::{self, Write};

use vmm_abi::memslot::{MemoryRegion, GUEST_MEMFD, LOCK_READ, LOCK_WRITE, LOG_DIRTY_PAGES, READONLY, UNLOCK_ALL};
use vmm_abi::protocol::{Request, MAX_PAYLOAD};
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
fn scenario() -> [(ClientId, Request); SCENARIO] {
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
        (c, Request::RunVcpu { vm, vcpu: VcpuId(0), entry: RAM_GPA, arg: 0 }),
        (c, Request::UnlockMemslot { vm, slot: 0, flags: UNLOCK_ALL }),
        (c, Request::SetMemoryRegion { vm, region: region(0, 0, RAM_GPA, 0, RAM_VADDR, 0) }),
        (c, Request::DestroyVm { vm }),
        (c, Request::CloseGuestMemfd { handle: GmemHandle(1) }),
    ]
}

/// A message as a client sends it: a label and a payload, whose bytes the
/// message registers carry. Most are a request's encoding; some are
/// garbage, which the VMM must refuse with an errno and no change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message {
    /// The message's label.
    pub label: u64,
    len: usize,
    payload: [u8; MAX_PAYLOAD],
}

impl Message {
    /// `req`, encoded.
    pub fn request(req: &Request) -> Message {
        let mut payload = [0u8; MAX_PAYLOAD];
        let (label, len) = req.encode(&mut payload);
        Message { label, len, payload }
    }

    /// The payload's bytes.
    pub fn bytes(&self) -> &[u8] {
        self.payload.get(..self.len).unwrap_or(&[])
    }

    /// The request it is, if it decodes to one.
    pub fn decoded(&self) -> Option<Request> {
        Request::decode(self.label, self.bytes()).ok()
    }
}

/// The largest label a message carries: seL4's message info keeps 52 bits
/// of it.
pub const LABEL_MAX: u64 = (1 << 52) - 1;

/// How many requests the client scenario has.
pub const SCENARIO: usize = 13;

/// The order the VMM serves the clients' requests in: request `i` of the
/// trace is the next of this client's. First the client scenario (all
/// [`CLIENT`]'s), then the two clients in turn, [`PRIVILEGED`] first.
/// Each client sends its own requests; the VMM holds a request that comes
/// out of turn until its turn, so the order is the same on every run.
pub fn turn(i: usize) -> ClientId {
    match i.checked_sub(SCENARIO) {
        None => CLIENT,
        Some(j) if j % 2 == 0 => PRIVILEGED,
        Some(_) => CLIENT,
    }
}

/// How many requests `client` sends in a trace of `random` random
/// requests (as [`turn`] shares them out).
pub fn requests(client: ClientId, random: usize) -> usize {
    match client {
        CLIENT => SCENARIO + random / 2,
        PRIVILEGED => random.div_ceil(2),
        _ => 0,
    }
}

/// One client's part of the trace: for [`CLIENT`] the client scenario, then
/// its share of `random` requests drawn from `seed` and its identity. Each
/// result is given back ([`ClientTrace::record`]), so that most requests
/// name VMs and guest_memfds the client made; one in four names an id
/// next to the newest it has seen, which is often the other client's (VM
/// ids and handles are shared counters), and now and then one that never
/// existed. A client knows only its own results: it runs alone in its
/// protection domain on seL4. Two runs whose results agree make the same
/// requests, and the first result that differs shows where. A vCPU that
/// RUN started runs until its VM stops, before the next request is served:
/// on seL4 the guest in guest RAM, on the model its model (see [`run`]).
#[derive(Clone, Debug)]
pub struct ClientTrace {
    client: ClientId,
    rng: Rng,
    at: usize,
    total: usize,
    /// The VM ids CREATE_VM gave this client and not destroyed (0: none),
    /// newest last.
    vms: [u32; 4],
    /// The guest_memfd handles CREATE_GUEST_MEMFD gave this client and not
    /// closed (0: none).
    handles: [u32; 4],
    /// The VMs of `vms` whose vCPU 0 CREATE_VCPU made: what RUN runs.
    runnable: [u32; 4],
    /// Where memslots that SET_USER_MEMORY_REGION2 made start, with their
    /// VMs: where RUN enters, mostly.
    slots: [(u32, u64); 4],
    /// The newest VM id and handle this client was given.
    newest: (u32, u32),
    /// CREATE_VM found no room: the next request gives some back.
    tidy: bool,
}

/// Puts `id` in place of the oldest of `ids`.
fn remember(ids: &mut [u32; 4], id: u32) {
    ids.rotate_left(1);
    if let Some(last) = ids.last_mut() {
        *last = id;
    }
}

/// Forgets `id`.
fn forget(ids: &mut [u32; 4], id: u32) {
    for e in ids.iter_mut().filter(|e| **e == id) {
        *e = 0;
    }
}

impl ClientTrace {
    /// `client`'s part of the trace of `seed` with `random` random requests.
    pub fn new(seed: u64, client: ClientId, random: usize) -> ClientTrace {
        let rng = Rng((seed ^ u64::from(client.0).rotate_left(32)) | 1);
        ClientTrace {
            client,
            rng,
            at: 0,
            total: requests(client, random),
            vms: [0; 4],
            handles: [0; 4],
            runnable: [0; 4],
            slots: [(0, 0); 4],
            newest: (0, 0),
            tidy: false,
        }
    }

    /// An id this client was given and still has, mostly; one time in
    /// four one next to the newest it has seen, or one that never was.
    fn pick_id(r: &mut Rng, ids: &[u32; 4], newest: u32) -> u32 {
        let live = ids.iter().filter(|&&id| id != 0).count() as u64;
        match r.next_u64() % 8 {
            0 | 1 => r.pick(&[0, 99, newest.saturating_add(1), newest.saturating_sub(1), newest.saturating_sub(2)], 0),
            _ if live == 0 => newest.max(1),
            _ => {
                let k = (r.next_u64() % live) as usize;
                ids.iter().filter(|&&id| id != 0).nth(k).copied().unwrap_or(1)
            }
        }
    }

    fn random_request(&mut self) -> Request {
        let r = &mut self.rng;
        let vm = VmId(Self::pick_id(r, &self.vms, self.newest.0));
        let handle = Self::pick_id(r, &self.handles, self.newest.1);
        let vcpu = VcpuId(r.pick(&[0, 1, 2], 0));
        let slot = r.pick(&[0, 1, 2, 3], 0);
        match r.next_u64() % 18 {
            0 | 14 => Request::CreateVm,
            1 | 15 => Request::DestroyVm { vm },
            2 | 3 => Request::CreateVcpu { vm, vcpu },
            4..=6 => {
                let flags = r.pick(&[0, 0, READONLY, GUEST_MEMFD, GUEST_MEMFD, LOG_DIRTY_PAGES, 0x80], 0);
                let gpa = r.pick(&[RAM_GPA, RAM_GPA + 0x1_0000, RAM_GPA + 0x10_0000, 0x5000_0000, RAM_GPA + 0x800], 0);
                let size = r.pick(&[0, 4096, 16 * 4096, 64 * 4096, 4097], 4096);
                let vaddr = r.pick(&[RAM_VADDR, RAM_VADDR + 0x1_0000, RAM_VADDR + RAM_BYTES - 4096, 0x1000], RAM_VADDR);
                let mut region = region(slot, flags, gpa, size, vaddr, handle);
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
            16 | 17 => {
                // Mostly vCPU 0 of a VM that has it.
                let live = self.runnable.iter().filter(|&&v| v != 0).count();
                let vm = match live {
                    0 => vm,
                    n => VmId(self.runnable.iter().filter(|&&v| v != 0).nth(r.below(n)).copied().unwrap_or(vm.0)),
                };
                let vcpu = VcpuId(r.pick(&[0, 0, 0, 1], 0));
                let made: [u64; 4] = self.slots.map(|(v, gpa)| if v == vm.0 { gpa } else { 0 });
                let entry = match made.iter().filter(|&&g| g != 0).count() {
                    n if n > 0 && !r.next_u64().is_multiple_of(4) => {
                        made.iter().filter(|&&g| g != 0).nth(r.below(n)).copied().unwrap_or(RAM_GPA)
                    }
                    _ => r.pick(&[RAM_GPA, RAM_GPA + 0x1_0000, 0x5000_0000, 0x1000], RAM_GPA),
                };
                Request::RunVcpu { vm, vcpu, entry, arg: 0 }
            }
            _ => Request::GetReg { vm, vcpu, reg: r.pick(&[0, 1, 31, 32, 200], 0) },
        }
    }

    /// What a client does when its VMs have no room (a destroyed VM stays
    /// while a guest_memfd of it is open, rule 4.7): closes a file it
    /// has, else destroys a VM it has.
    fn give_back(&mut self) -> Request {
        match (self.handles.iter().find(|&&h| h != 0), self.vms.iter().find(|&&v| v != 0)) {
            (Some(&h), _) => Request::CloseGuestMemfd { handle: GmemHandle(h) },
            (None, Some(&v)) => Request::DestroyVm { vm: VmId(v) },
            (None, None) => self.random_request(),
        }
    }

    /// Garbage: a label of a request or none, and a payload of whole words
    /// (as message registers carry it, so that seL4 and the model see the
    /// same bytes), either random or a request's encoding with one byte
    /// changed.
    fn garbage(&mut self) -> Message {
        let mut m = Message::request(&self.random_request());
        let r = &mut self.rng;
        m.label = r.pick(&[m.label, m.label, 0, 15, 99, LABEL_MAX], 0);
        if r.next_u64().is_multiple_of(2) {
            m.len = 8 * r.below(MAX_PAYLOAD / 8 + 1);
            for chunk in m.payload.chunks_mut(8) {
                let word = r.next_u64().to_le_bytes();
                chunk.copy_from_slice(word.get(..chunk.len()).unwrap_or(&[]));
            }
        } else {
            m.len = m.len.div_ceil(8) * 8;
            let at = r.below(m.len.max(1));
            if let Some(b) = m.payload.get_mut(at) {
                *b ^= (r.next_u64() as u8) | 1;
            }
        }
        m
    }

    /// Takes the result of the message [`ClientTrace::next_message`] gave
    /// last.
    pub fn record(&mut self, m: &Message, result: Result<u64, Errno>) {
        let Some(req) = m.decoded() else { return };
        match (req, result) {
            (Request::CreateVm, Err(Errno::ENOSPC)) => self.tidy = true,
            (Request::CreateVm, Ok(id)) => {
                remember(&mut self.vms, id as u32);
                self.newest.0 = id as u32;
            }
            (Request::CreateGuestMemfd { .. }, Ok(h)) => {
                remember(&mut self.handles, h as u32);
                self.newest.1 = h as u32;
            }
            (Request::CreateVcpu { vm, vcpu: VcpuId(0) }, Ok(_)) => remember(&mut self.runnable, vm.0),
            (Request::SetMemoryRegion { vm, region }, Ok(_)) if region.memory_size > 0 => {
                self.slots.rotate_left(1);
                if let Some(last) = self.slots.last_mut() {
                    *last = (vm.0, region.guest_phys_addr);
                }
            }
            (Request::DestroyVm { vm }, Ok(_)) => {
                forget(&mut self.vms, vm.0);
                forget(&mut self.runnable, vm.0);
                for s in self.slots.iter_mut().filter(|s| s.0 == vm.0) {
                    *s = (0, 0);
                }
            }
            (Request::CloseGuestMemfd { handle }, Ok(_)) => forget(&mut self.handles, handle.0),
            _ => {}
        }
    }

    /// The client's next message (one in sixteen of the random ones is
    /// garbage); `None` at the end.
    pub fn next_message(&mut self) -> Option<Message> {
        let i = self.at;
        if i >= self.total {
            return None;
        }
        self.at += 1;
        match scenario().get(i) {
            Some(&(c, req)) if c == self.client => Some(Message::request(&req)),
            _ if core::mem::take(&mut self.tidy) => Some(Message::request(&self.give_back())),
            _ if self.rng.next_u64().is_multiple_of(16) => Some(self.garbage()),
            _ => Some(Message::request(&self.random_request())),
        }
    }
}

/// Request `req` as `client` sends it: encoded, then decoded and performed
/// by the core's one entry point; its protocol label and its result.
pub fn send<K: vmm::kernel::Kernel, A: vmm::platform::Platform, const V: usize>(
    vmm: &mut vmm::Vmm<K, A, V>,
    client: ClientId,
    req: &Request,
) -> (u64, Result<u64, Errno>) {
    let m = Message::request(req);
    (m.label, vmm.handle(client, m.label, m.bytes()).result)
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

impl Ran {
    /// Counts in the ids `req`'s `result` gave.
    pub fn saw(&mut self, req: &Request, result: Result<u64, Errno>) {
        match (req, result) {
            (Request::CreateVm, Ok(id)) => self.last_vm = self.last_vm.max(id as u32),
            (Request::CreateGuestMemfd { .. }, Ok(h)) => self.last_handle = self.last_handle.max(h as u32),
            _ => {}
        }
    }
}

/// How a guest run ended: the reason its VM stopped (`None`: it did not
/// stop, its vCPUs parked), and the faults its vCPU took, the last
/// included.
pub type GuestRun = (Option<vmm::StopReason>, u64);

/// What runs a vCPU that RUN started, until its VM stops.
pub type RunGuest<'a, K, A, const V: usize> = dyn FnMut(&mut vmm::Vmm<K, A, V>, VmId, VcpuId) -> GuestRun + 'a;

/// Runs the trace of `seed` with `random` random requests on `vmm`, one
/// [`line`] per result into `out`: each client's part, in the order
/// [`turn`] gives, as the VMM serves the two clients on seL4. After each
/// RUN that succeeds, `guest` runs the vCPU until its VM stops, and a
/// [`guest_line`] says how.
pub fn run<K: vmm::kernel::Kernel, A: vmm::platform::Platform, const V: usize, W: Write>(
    vmm: &mut vmm::Vmm<K, A, V>,
    seed: u64,
    random: usize,
    out: &mut W,
    guest: &mut RunGuest<'_, K, A, V>,
) -> Result<Ran, fmt::Error> {
    let mut clients = [ClientTrace::new(seed, CLIENT, random), ClientTrace::new(seed, PRIVILEGED, random)];
    let mut ran = Ran::default();
    for i in 0..SCENARIO + random {
        let client = turn(i);
        let Some(trace) = clients.iter_mut().find(|t| t.client == client) else { break };
        let Some(m) = trace.next_message() else { break };
        let result = vmm.handle(client, m.label, m.bytes()).result;
        trace.record(&m, result);
        let req = m.decoded();
        if let Some(req) = &req {
            ran.saw(req, result);
        }
        line(out, ran.requests, client, m.label, result)?;
        if let (Some(Request::RunVcpu { vm, vcpu, .. }), Ok(_)) = (req, result) {
            guest_line(out, ran.requests, vm, guest(vmm, vm, vcpu))?;
        }
        ran.requests += 1;
    }
    Ok(ran)
}

/// The line a guest run started by request `i` prints.
pub fn guest_line<W: Write>(out: &mut W, i: usize, vm: VmId, (stop, faults): GuestRun) -> fmt::Result {
    match stop {
        Some(reason) => writeln!(out, "guest {i} vm {}: stopped: {reason}, {faults} faults", vm.0),
        None => writeln!(out, "guest {i} vm {}: did not stop, {faults} faults", vm.0),
    }
}

/// The line request `i` of `client` with protocol label `label` prints
/// for `result`.
pub fn line<W: Write>(out: &mut W, i: usize, client: ClientId, label: u64, result: Result<u64, Errno>) -> fmt::Result {
    match result {
        Ok(v) => writeln!(out, "trace {i} client {} label {label}: ok {v}", client.0),
        Err(e) => writeln!(out, "trace {i} client {} label {label}: errno {}", client.0, e.code()),
    }
}
