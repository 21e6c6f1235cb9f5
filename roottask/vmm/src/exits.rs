//! The vCPUs' faults: each arrives on the root task's fault endpoint,
//! badged with the core's slot of the vCPU's TCB, and goes to the core as
//! the Microkit PD hands it over; the reply is what the core decided.

use sel4::cap::{Endpoint, Reply};
use sel4::MessageInfo;
use vmm::arch::aarch64::fault;
use vmm::caps::Slot;
use vmm::devices::pl011::Console;
use vmm::{ExitAction, StopReason};

use crate::start::Core;

/// A guest's UART output, on the kernel's debug console.
pub struct DebugConsole;

impl Console for DebugConsole {
    fn put(&mut self, byte: u8) {
        sel4::debug_put_char(byte);
    }
}

/// Why [`run_until_stopped`] returned.
#[derive(PartialEq)]
pub enum Ended {
    /// The VM stopped.
    Stopped(StopReason),
    /// A fault came from a TCB no VM has (its badge).
    Stray(u64),
    /// Every vCPU is parked: nothing can fault any more.
    Parked,
}

impl core::fmt::Display for Ended {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Ended::Stopped(reason) => write!(f, "stopped: {reason}"),
            Ended::Stray(badge) => write!(f, "a fault from TCB slot {badge}, which no VM has"),
            Ended::Parked => write!(f, "every vCPU parked"),
        }
    }
}

/// Receives faults and hands them to the core until a VM stops. With one
/// running vCPU (the lifecycle check's), that VM is the one run. A reply
/// and the next receive are one `seL4_ReplyRecv`, the kernel's fast path.
pub fn run_until_stopped(vmm: &mut Core, endpoint: Endpoint, reply: Reply) -> Ended {
    run_counting(vmm, endpoint, reply).0
}

/// [`run_until_stopped`], with the number of faults the vCPUs took (the
/// last one, which stopped the VM, included).
pub fn run_counting(vmm: &mut Core, endpoint: Endpoint, reply: Reply) -> (Ended, u64) {
    let mut faults = 0;
    // The vCPU of the last badge: no vCPU comes or goes while this loop
    // runs (only requests make and destroy them), so a badge names the
    // same vCPU until it returns, and the search runs once per vCPU.
    let mut last = None;
    let (mut info, mut badge) = endpoint.recv(reply);
    loop {
        faults += 1;
        let found = match last {
            Some((b, found)) if b == badge => Some(found),
            _ => vmm.vcpu_by_tcb(Slot(badge)),
        };
        let Some((vm, vcpu)) = found else {
            return (Ended::Stray(badge), faults);
        };
        last = Some((badge, (vm, vcpu)));
        // Decoded where the kernel left it, before the core's invocations
        // reuse the IPC buffer.
        let decoded =
            sel4::with_ipc_buffer(|b| fault::decode(info.label(), b.msg_regs().get(..info.length()).unwrap_or(&[])));
        let answer = match vmm.handle_decoded_exit(vm, vcpu, decoded, &mut DebugConsole) {
            ExitAction::Resume => MessageInfo::new(0, 0, 0, 0),
            ExitAction::ResumeWith(regs) => {
                sel4::with_ipc_buffer_mut(|b| {
                    for (mr, value) in b.msg_regs_mut().iter_mut().zip(regs) {
                        *mr = value;
                    }
                });
                MessageInfo::new(0, 0, 0, regs.len())
            }
            ExitAction::Park => return (Ended::Parked, faults),
            ExitAction::Stop { reason, .. } => return (Ended::Stopped(reason), faults),
        };
        (info, badge) = endpoint.reply_recv(answer, reply);
    }
}
