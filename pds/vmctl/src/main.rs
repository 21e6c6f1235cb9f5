//! vmctl: a client PD that drives its VMM over protected calls and checks
//! every answer.
//!
//! A request is the core's `Request::encode`: the message label is the
//! request label and the payload goes in the message registers as
//! little-endian bytes. The answer is a `ResponseWire` in MR0-1. Each check
//! prints one line; the last line is `vmctl: N passed, M failed`.

#![no_std]
#![no_main]

use sel4_microkit::{
    debug_println, protection_domain, with_msg_bytes, with_msg_bytes_mut, Channel, ChannelSet, Handler, Infallible,
    MessageInfo,
};
use zerocopy::FromBytes;

use vmm::protocol::wire::ResponseWire;
use vmm::protocol::{label, Request, Response, MAX_PAYLOAD};
use vmm::registry::VmId;
use vmm::Errno;

/// The protected-call channel to the VMM (system.xml).
const VMM: Channel = Channel::new(0);

/// A VM id that the VMM never handed out.
const NO_SUCH_VM: VmId = VmId(77);

/// Calls the VMM with `label` and the first `words` words of `payload`.
fn call_raw(label: u64, payload: &[u8], words: usize) -> Result<u64, Errno> {
    let n = (words * 8).min(payload.len());
    with_msg_bytes_mut(|b| b[..n].copy_from_slice(&payload[..n]));
    let reply = VMM.pp_call(MessageInfo::new(label, words));
    if reply.count() < 2 {
        return Err(Errno::EIO);
    }
    let wire = with_msg_bytes(|b| ResponseWire::read_from_bytes(&b[..16]).ok());
    match wire.as_ref().and_then(Response::from_wire) {
        Some(r) => r.result,
        None => Err(Errno::EIO),
    }
}

/// Calls the VMM with a well-formed request.
fn call(req: &Request) -> Result<u64, Errno> {
    let mut payload = [0u8; MAX_PAYLOAD];
    let (label, len) = req.encode(&mut payload);
    call_raw(label, &payload, len.div_ceil(8))
}

struct Checks {
    passed: u32,
    failed: u32,
}

impl Checks {
    fn check(&mut self, what: &str, got: Result<u64, Errno>, want: Result<(), Errno>) -> Result<u64, Errno> {
        let ok = match (got, want) {
            (Ok(_), Ok(())) => true,
            (Err(g), Err(w)) => g == w,
            _ => false,
        };
        if ok {
            self.passed += 1;
        } else {
            self.failed += 1;
        }
        let verdict = if ok { "ok  " } else { "FAIL" };
        match (got, want) {
            (Ok(v), _) => debug_println!("vmctl: {verdict} {what}: got Ok({v}), want {want:?}"),
            (Err(e), _) => debug_println!("vmctl: {verdict} {what}: got {e:?}, want {want:?}"),
        }
        got
    }
}

#[protection_domain]
fn init() -> VmCtl {
    let mut c = Checks { passed: 0, failed: 0 };

    let vm = c.check("create VM", call(&Request::CreateVm), Ok(())).map(|id| VmId(id as u32)).unwrap_or(NO_SUCH_VM);
    let _ = c.check("create vCPU 0", call(&Request::CreateVcpu { vm, vcpu: 0 }), Ok(()));
    let run = Request::RunVcpu { vm, vcpu: 0, entry: board::GUEST_RAM_BASE, arg: board::guest_mode::FAULT };
    let _ = c.check("run vCPU 0 at guest RAM base, faulting mode", call(&run), Ok(()));

    // Malformed and forbidden requests.
    let _ = c.check("unknown label", call_raw(0x99, &[], 0), Err(Errno::EOPNOTSUPP));
    let mut payload = [0u8; MAX_PAYLOAD];
    let (l, len) = run.encode(&mut payload);
    debug_assert_eq!(l, label::RUN_VCPU);
    let _ = c.check("RUN_VCPU with a short payload", call_raw(l, &payload, len / 8 - 1), Err(Errno::EINVAL));
    let _ =
        c.check("destroy a VM that does not exist", call(&Request::DestroyVm { vm: NO_SUCH_VM }), Err(Errno::ENOENT));

    debug_println!("vmctl: {} passed, {} failed", c.passed, c.failed);
    VmCtl
}

struct VmCtl;

impl Handler for VmCtl {
    type Error = Infallible;

    /// The VMM notifies its client when one of the client's VMs stops.
    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if channels.contains(VMM) {
            debug_println!("vmctl: the VMM reports that a VM stopped");
        }
        Ok(())
    }
}
