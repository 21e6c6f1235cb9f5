//! The one entry point: (caller, label, payload) in, response out.

use crate::error::Error;
use crate::kernel::Kernel;
use crate::platform::Platform;
use crate::registry::{Caller, Owner};
use crate::Vmm;
use vmm_abi::protocol::{Request, Response};
use vmm_abi::ClientId;

impl<K: Kernel, A: Platform, const VMS: usize> Vmm<K, A, VMS> {
    /// Handles one protected call from `client`: decodes the request (any
    /// byte string is safe), performs it as that client, and answers.
    pub fn handle(&mut self, client: ClientId, label: u64, payload: &[u8]) -> Response {
        let result = match Request::decode(label, payload) {
            Ok(req) => self.perform(Owner::Client(client), req).map_err(|e| e.errno()),
            Err(e) => Err(e),
        };
        Response { result }
    }

    /// Performs a decoded request as `caller`.
    pub fn perform(&mut self, caller: Caller, req: Request) -> Result<u64, Error> {
        match req {
            Request::CreateVm => self.create_vm(caller).map(|id| u64::from(id.0)),
            Request::DestroyVm { vm } => self.destroy_vm(caller, vm).map(|()| 0),
            Request::CreateVcpu { vm, vcpu } => self.create_vcpu(caller, vm, vcpu).map(|()| 0),
            Request::RunVcpu { vm, vcpu, entry, arg } => self.run_vcpu(caller, vm, vcpu, entry, arg).map(|()| 0),
            Request::StopVcpu { vm, vcpu } => self.stop_vcpu(caller, vm, vcpu).map(|()| 0),
            Request::GetReg { vm, vcpu, reg } => self.get_reg(caller, vm, vcpu, reg),
            Request::SetReg { vm, vcpu, reg, value } => self.set_reg(caller, vm, vcpu, reg, value).map(|()| 0),
            Request::IrqLine { vm, irq, level } => self.irq_line(caller, vm, irq, level).map(|()| 0),
            Request::SetMemoryRegion { vm, region } => self.set_memory_region(caller, vm, &region).map(|()| 0),
            Request::CreateGuestMemfd { vm, size, flags } => {
                self.create_guest_memfd(caller, vm, size, flags).map(u64::from)
            }
            Request::CloseGuestMemfd { handle } => self.close_guest_memfd(caller, handle).map(|()| 0),
            Request::LockMemslot { vm, slot, flags } => self.lock_memslot(caller, vm, slot, flags).map(|()| 0),
            Request::UnlockMemslot { vm, slot, flags } => self.unlock_memslot(caller, vm, slot, flags).map(|()| 0),
            Request::EnableCap { vm, cap, arg } => self.enable_cap(caller, vm, cap, arg).map(|()| 0),
        }
    }
}
