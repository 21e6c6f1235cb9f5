//! Protected calls to the VMM.
//!
//! A request is the core's `Request::encode`: the message label is the
//! request label and the payload goes in the message registers as
//! little-endian bytes. The answer is a `ResponseWire` in MR0-1.

use sel4_microkit::{with_msg_bytes, with_msg_bytes_mut, Channel, MessageInfo};

use vmm_abi::protocol::{Request, Response, MAX_PAYLOAD};
use vmm_abi::Errno;

/// The protected-call channel to the VMM (system.xml).
pub const VMM: Channel = Channel::new(0);

/// What the VMM answered: its value, its errno, or EIO for an answer that
/// is no response at all.
pub type Answer = Result<u64, Errno>;

/// Calls the VMM with `label` and the first `words` words of `payload`.
pub fn call_raw(label: u64, payload: &[u8], words: usize) -> Answer {
    let n = (words * 8).min(payload.len());
    with_msg_bytes_mut(|b| {
        if let (Some(dst), Some(src)) = (b.get_mut(..n), payload.get(..n)) {
            dst.copy_from_slice(src);
        }
    });
    let reply = VMM.pp_call(MessageInfo::new(label, words));
    with_msg_bytes(|b| Response::from_reply(reply.count(), b))
}

/// Calls the VMM with a well-formed request.
pub fn call(req: &Request) -> Answer {
    let (label, payload, len) = encode(req);
    call_raw(label, &payload, len.div_ceil(8))
}

/// A request's label, payload and payload length.
pub fn encode(req: &Request) -> (u64, [u8; MAX_PAYLOAD], usize) {
    let mut payload = [0u8; MAX_PAYLOAD];
    let (label, len) = req.encode(&mut payload);
    (label, payload, len)
}
