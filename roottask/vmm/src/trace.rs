//! The request trace shared with the host model (`vmm-trace`): run here on
//! seL4, one line per result on the console, which `make test-roottask`
//! compares with `vmsys trace`'s run of the same trace on the model.

use vmm_abi::protocol::Request;
use vmm_abi::{GmemHandle, VmId};
use vmm_trace::world::{CLIENT, PRIVILEGED};

use crate::start::Core;

/// Runs the trace of `seed` with `random` random requests, then destroys
/// what it left (unlogged), so that the lifecycle check starts from no VM.
pub fn run(vmm: &mut Core, seed: u64, random: usize) {
    sel4::debug_println!("roottask: trace of seed {seed:#x}: the client scenario and {random} random requests");
    // The debug console never refuses a write.
    let ran = vmm_trace::run(vmm, seed, random, &mut sel4::DebugWrite).unwrap_or_default();
    sel4::debug_println!("roottask: trace done: {} requests", ran.requests);
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
