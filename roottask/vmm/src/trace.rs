//! The request trace shared with the host model (`vmm-trace`): run here on
//! seL4, one line per result on the console, which `make test-roottask`
//! compares with `vmsys trace`'s run of the same trace on the model.

use vmm_abi::protocol::Request;
use vmm_abi::{GmemHandle, VmId};
use vmm_trace::world::{CLIENT, PRIVILEGED};
use vmm_trace::Trace;

use crate::start::Core;

/// Writes to the kernel's debug console.
struct DebugOut;

impl core::fmt::Write for DebugOut {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        sel4::debug_print!("{s}");
        Ok(())
    }
}

/// Runs the trace of `seed` with `random` random requests, then destroys
/// what it left (unlogged), so that the lifecycle check starts from no VM.
pub fn run(vmm: &mut Core, seed: u64, random: usize) {
    sel4::debug_println!("roottask: trace of seed {seed:#x}: the client scenario and {random} random requests");
    let mut trace = Trace::new(seed, random);
    let mut i = 0;
    let mut last_vm = 0;
    let mut last_handle = 0;
    while let Some((client, req)) = trace.next_request() {
        let (label, result) = vmm_trace::send(vmm, client, &req);
        trace.record(client, &req, result);
        match (&req, result) {
            (Request::CreateVm, Ok(id)) => last_vm = id,
            (Request::CreateGuestMemfd { .. }, Ok(h)) => last_handle = h,
            _ => {}
        }
        let _ = vmm_trace::line(&mut DebugOut, i, client, label, result);
        i += 1;
    }
    sel4::debug_println!("roottask: trace done: {i} requests");
    // Ids are never reused: everything the trace made is at most the last.
    for id in 1..=last_vm as u32 {
        for client in [CLIENT, PRIVILEGED] {
            let _ = vmm_trace::send(vmm, client, &Request::DestroyVm { vm: VmId(id) });
        }
    }
    for h in 1..=last_handle as u32 {
        for client in [CLIENT, PRIVILEGED] {
            let _ = vmm_trace::send(vmm, client, &Request::CloseGuestMemfd { handle: GmemHandle(h) });
        }
    }
}
