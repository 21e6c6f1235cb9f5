//! A client of the root task's VMM, in a protection domain of its own.
//!
//! The root task starts two of these threads, each in its own VSpace (its
//! image, its stack and its IPC buffer, nothing else) and its own CSpace,
//! which holds one capability: the VMM's request endpoint, badged with the
//! client's identity ([`VMM`]). The VMM knows a client by that badge alone;
//! the identity the thread is started with (`x0`) only chooses its part of
//! the request trace.
//!
//! It sends its part of the trace (`vmm-trace`'s [`ClientTrace`]), one
//! `seL4_Call` per message (a request, or garbage), and gives each result
//! back to the trace. Then
//! it calls once more: the VMM serves each client only the requests the
//! trace gives it, so that call is never answered and the thread stays
//! blocked, using no time.

#![no_std]
#![no_main]

use sel4::cap::Endpoint;
use sel4::MessageInfo;
use vmm_abi::protocol::Response;
use vmm_abi::{ClientId, Errno};
use vmm_trace::{ClientTrace, Message};

/// The one capability in the client's CSpace: the VMM's request endpoint,
/// badged with the client's identity.
const VMM: Endpoint = Endpoint::from_bits(1);

const STACK_SIZE: usize = 16 * 1024;

sel4_runtime_common::declare_stack!(STACK_SIZE);
sel4_runtime_common::declare_entrypoint_with_stack_init!();
sel4_runtime_common::declare_rust_entrypoint! {
    entrypoint(client: u64, ipc_buffer: u64)
}
sel4_panicking_env::register_debug_put_char!(sel4::debug_put_char);

/// Sends `m`: its label, its payload in the message registers.
fn call(m: &Message) -> Result<u64, Errno> {
    let bytes = m.bytes();
    sel4::with_ipc_buffer_mut(|b| {
        if let Some(dst) = b.msg_bytes_mut().get_mut(..bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    });
    let reply = VMM.call(MessageInfo::new(m.label, 0, 0, bytes.len().div_ceil(8)));
    sel4::with_ipc_buffer(|b| Response::from_reply(reply.length(), b.msg_bytes()))
}

/// The thread's entry: its identity and its IPC buffer's address, which
/// the root task puts in `x0` and `x1`.
fn entrypoint(client: u64, ipc_buffer: u64) -> ! {
    // The root task mapped a frame there for this thread alone.
    unsafe { sel4::set_ipc_buffer(&mut *(ipc_buffer as *mut sel4::IpcBuffer)) };
    let mut trace = ClientTrace::new(vmm_trace::SEED, ClientId(client as u32), vmm_trace::RANDOM);
    while let Some(m) = trace.next_message() {
        let result = call(&m);
        trace.record(&m, result);
    }
    loop {
        // Never answered (see the module's documentation).
        let _ = VMM.call(MessageInfo::new(0, 0, 0, 0));
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    sel4::debug_println!("client: {info}");
    // With no capability but the endpoint, all it can do is stop asking.
    loop {
        let _ = VMM.call(MessageInfo::new(0, 0, 0, 0));
    }
}
