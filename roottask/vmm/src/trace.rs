//! The request trace shared with the host model (`vmm-trace`), sent by the
//! two client protection domains (`clients`) and served here on seL4, one
//! line per result on the console, which `make test-roottask` compares
//! with `vmsys trace`'s run of the same trace on the model.
//!
//! The clients run concurrently, so their requests may arrive in any
//! order; the root task serves them in the trace's order
//! (`vmm_trace::turn`), holding a request that comes out of turn, with the
//! reply object it came with, until its client's turn. Each client has at
//! most one request outstanding, so one request is held at most.

use sel4::cap::{Endpoint, Reply};
use sel4::MessageInfo;
use vmm_abi::protocol::Request;
use vmm_abi::wire::ResponseWire;
use vmm_abi::{ClientId, GmemHandle, VmId};
use vmm_trace::world::{CLIENT, PRIVILEGED};
use vmm_trace::{Ran, SCENARIO};
use zerocopy::IntoBytes;

use crate::exits::{self, Ended};
use crate::start::Started;

/// The bytes of a request's message registers the root task keeps.
const MSG_BYTES: usize = 120 * 8;

/// A request as it arrived: who sent it (its badge), its label and
/// message, and which reply object answers it.
struct Received {
    badge: u64,
    label: u64,
    len: usize,
    msg: [u8; MSG_BYTES],
    reply: usize,
}

/// Receives the next request on `endpoint` with reply object `reply`,
/// copied out of the IPC buffer, which the core's invocations reuse.
fn receive(endpoint: Endpoint, replies: &[Reply; 2], reply: usize) -> Received {
    let (info, badge) = endpoint.recv(replies[reply % 2]);
    let mut msg = [0u8; MSG_BYTES];
    let len = sel4::with_ipc_buffer(|b| {
        let n = (info.length() * 8).min(MSG_BYTES);
        match (msg.get_mut(..n), b.msg_bytes().get(..n)) {
            (Some(dst), Some(src)) => {
                dst.copy_from_slice(src);
                n
            }
            _ => 0,
        }
    });
    Received { badge, label: info.label(), len, msg, reply }
}

/// The next request of `want`: the one held, if it is `want`'s, else the
/// first to arrive from `want`, holding one that comes from the other.
/// `out_of_turn` counts the requests held.
fn next_of(
    want: ClientId,
    endpoint: Endpoint,
    replies: &[Reply; 2],
    held: &mut Option<Received>,
    out_of_turn: &mut usize,
) -> Received {
    if let Some(h) = held.take_if(|h| h.badge == u64::from(want.0)) {
        return h;
    }
    loop {
        let free = match held {
            Some(h) => 1 - h.reply,
            None => 0,
        };
        let r = receive(endpoint, replies, free);
        if r.badge == u64::from(want.0) {
            return r;
        }
        // Out of turn: the other client's next request. (Each client has
        // one outstanding at most, and only the two were given the
        // endpoint, so nothing else can arrive while one is held.)
        if held.is_none() {
            *held = Some(r);
            *out_of_turn += 1;
        }
    }
}

/// Serves the trace of `seed` with `random` random requests to the two
/// clients, then destroys what it left (unlogged), so that the lifecycle
/// check starts from no VM. After a RUN that succeeds (answered first),
/// the vCPU runs until its VM stops, before the next request is served,
/// and a line says how, as on the model.
pub fn run(started: &mut Started, seed: u64, random: usize) {
    let clients = &started.clients;
    let vmm = &mut *started.core;
    sel4::debug_println!(
        "roottask: trace of seed {seed:#x}: the client scenario and {random} random requests, from two client PDs"
    );
    let replies = &clients.replies;
    let mut held = None;
    let mut out_of_turn = 0;
    let mut ran = Ran::default();
    for i in 0..SCENARIO + random {
        let client = vmm_trace::turn(i);
        let r = next_of(client, clients.endpoint, replies, &mut held, &mut out_of_turn);
        let msg = r.msg.get(..r.len).unwrap_or(&[]);
        let result = vmm.handle(client, r.label, msg).result;
        if let Ok(req) = Request::decode(r.label, msg) {
            ran.saw(&req, result);
        }
        // The debug console never refuses a write.
        let _ = vmm_trace::line(&mut sel4::DebugWrite, i, client, r.label, result);
        let wire: ResponseWire = vmm_abi::protocol::Response { result }.to_wire();
        let bytes = wire.as_bytes();
        sel4::with_ipc_buffer_mut(|b| {
            if let Some(dst) = b.msg_bytes_mut().get_mut(..bytes.len()) {
                dst.copy_from_slice(bytes);
            }
        });
        replies[r.reply % 2].send(MessageInfo::new(0, 0, 0, bytes.len() / 8));
        if let (Ok(Request::RunVcpu { vm, .. }), Ok(_)) = (Request::decode(r.label, msg), result) {
            let (ended, faults) = exits::run_counting(vmm, started.faults, started.reply);
            let stop = match ended {
                Ended::Stopped(reason) => Some(reason),
                Ended::Stray(_) | Ended::Parked => None,
            };
            let _ = vmm_trace::guest_line(&mut sel4::DebugWrite, i, vm, (stop, faults));
        }
        ran.requests += 1;
    }
    sel4::debug_println!(
        "roottask: trace done: {} requests from the client PDs, {out_of_turn} of them held until their turn",
        ran.requests
    );
    for id in 1..=ran.last_vm {
        for client in [CLIENT, PRIVILEGED] {
            let _ = vmm_trace::send(vmm, client, &Request::DestroyVm { vm: VmId(id) });
        }
    }
    for h in 1..=ran.last_handle {
        for client in [CLIENT, PRIVILEGED] {
            let _ = vmm_trace::send(vmm, client, &Request::CloseGuestMemfd { handle: GmemHandle(h) });
        }
    }
}
