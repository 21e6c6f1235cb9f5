//! The request trace the root task runs on seL4 (`vmm-trace`), run here on
//! the core over the seL4 model with the same configuration; `make
//! test-roottask` compares the two logs line by line.

use vmm::arch::aarch64::fault::label;
use vmm::arch::aarch64::regs::TcbReg;
use vmm::caps::{Slot, SlotRange};
use vmm::devices::pl011::Console;
use vmm::platform::NoHooks;
use vmm::{ExitAction, Vmm};
use vmm_abi::limits::PAGE_SIZE;
use vmm_abi::{VcpuId, VmId};
use vmm_model::Model;
use vmm_trace::world::{self, CORE_SLOTS, RAM_PAGES, RAM_VADDR, VMS};
use vmm_trace::GuestRun;

use crate::sim::guest::{fetch_fault_message, hvc_message};
use crate::world::{on_big_stack, VMM_VSPACE};

type TraceVmm = Vmm<Model, NoHooks, VMS>;

/// PSCI SYSTEM_OFF's function id.
const SYSTEM_OFF: u64 = 0x8400_0008;

/// Where a guest's synchronous exception from EL1 goes: VBAR_EL1 (0 in
/// a new vCPU) + 0x200.
const EL1_SYNC_VECTOR: u64 = 0x200;

/// The most instructions the model guest fetches before it gives up.
const STEPS: usize = 8;

/// A console that keeps nothing: the trace's guests print nothing.
struct Nowhere;

impl Console for Nowhere {
    fn put(&mut self, _: u8) {}
}

/// The frame the VM's stage 2 maps at `gpa`'s page, if any.
fn mapped(vmm: &TraceVmm, vm: VmId, gpa: u64) -> Option<vmm_model::ObjId> {
    let e = vmm.registry().entry(vm)?;
    let k = vmm.kernel();
    let vspace = k.object_at(e.vm().vspace().slot())?;
    k.pages_in(vspace).get(&(gpa & !(PAGE_SIZE - 1))).map(|&(frame, _)| frame)
}

/// vCPU `vcpu` of VM `vm` runs the guest the root task's guest RAM holds,
/// on the model, until its VM stops: guest RAM's first page holds the
/// power-off guest (`movz`, `movk`: x0 = SYSTEM_OFF, then `hvc`), every
/// other page zeros, which are `udf` and send the guest to its exception
/// vector. Each fetch from a page the stage 2 does not map faults first,
/// as on seL4.
fn run_guest(vmm: &mut TraceVmm, power_off: vmm_model::ObjId, vm: VmId, vcpu: VcpuId) -> GuestRun {
    let tcb = vmm.registry().entry(vm).and_then(|e| e.vm().vcpu_caps(vcpu)).map(|(tcb, _)| tcb.slot());
    let Some(tcb) = tcb else { return (None, 0) };
    let mut pc = vmm.kernel().tcb_reg(tcb, TcbReg::Pc).unwrap_or(0);
    let mut faults = 0;
    for _ in 0..STEPS {
        let action = match mapped(vmm, vm, pc) {
            None => {
                faults += 1;
                vmm.handle_exit(vm, vcpu, label::VM_FAULT, &fetch_fault_message(pc), &mut Nowhere)
            }
            Some(frame) if frame == power_off => {
                faults += 1;
                let x = [SYSTEM_OFF, 0, 0, 0, 0, 0, 0, 0];
                vmm.handle_exit(vm, vcpu, label::UNKNOWN_SYSCALL, &hvc_message(x, pc + 12, 0, 0, 0), &mut Nowhere)
            }
            Some(_) => {
                pc = EL1_SYNC_VECTOR;
                continue;
            }
        };
        match action {
            ExitAction::Resume => {}
            ExitAction::Stop { reason, .. } => return (Some(reason), faults),
            ExitAction::ResumeWith(_) | ExitAction::Park => return (None, faults),
        }
    }
    (None, faults)
}

/// Untyped memory of the model: more than any trace of the generator can
/// use, so that it never runs out where seL4, with its 1.5 GiB, does not.
const UNTYPED: u64 = 1 << 30;

/// The log of the trace of `seed` with `random` random requests, one line
/// per request as the root task prints it.
pub fn run(seed: u64, random: usize) -> Result<String, String> {
    on_big_stack(move || {
        let frames = Slot(1 << 40);
        let config = world::config(SlotRange { base: Slot(1 << 20), len: CORE_SLOTS }, frames);
        let mut model = Model::new(UNTYPED);
        model.setup_vspace(VMM_VSPACE).map_err(|e| format!("the model refused the VMM's VSpace: {e:?}"))?;
        model
            .setup_ram(frames, RAM_PAGES, VMM_VSPACE, RAM_VADDR)
            .map_err(|e| format!("the model refused guest RAM: {e:?}"))?;
        let power_off = model.object_at(frames).ok_or("the model has no guest RAM")?;
        let mut vmm: Box<TraceVmm> =
            Box::new(Vmm::new(model, NoHooks, config).map_err(|e| format!("the core refused its configuration: {e}"))?);
        let mut log = String::new();
        let mut guest = |v: &mut TraceVmm, vm, vcpu| run_guest(v, power_off, vm, vcpu);
        vmm_trace::run(&mut vmm, seed, random, &mut log, &mut guest).map_err(|e| e.to_string())?;
        Ok(log)
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trace_is_the_same_on_every_run_and_begins_with_the_scenario() {
        let a = run(vmm_trace::SEED, vmm_trace::RANDOM).unwrap();
        assert_eq!(a, run(vmm_trace::SEED, vmm_trace::RANDOM).unwrap());
        let requests: Vec<&str> = a.lines().filter(|l| l.starts_with("trace ")).collect();
        assert_eq!(requests.len(), vmm_trace::SCENARIO + vmm_trace::RANDOM);
        // The scenario: CREATE_VM gives VM 1, every later step succeeds,
        // and its run powers off with one fault: its slot is locked.
        for l in requests.iter().take(13) {
            assert!(l.contains(": ok "), "{l}");
        }
        assert!(requests[0].ends_with("ok 1"));
        assert!(a.contains("\nguest 8 vm 1: stopped: PSCI SYSTEM_OFF, 1 faults\n"), "{a}");
        // The random part meets both answers, and runs that end each way.
        assert!(requests.iter().skip(13).any(|l| l.contains("errno")));
        assert!(requests.iter().skip(13).filter(|l| l.contains(": ok ")).count() > 30);
        let runs: Vec<&str> = a.lines().filter(|l| l.starts_with("guest ")).collect();
        assert!(runs.iter().any(|l| l.ends_with("PSCI SYSTEM_OFF, 2 faults")), "{runs:?}");
        assert!(runs.iter().any(|l| l.contains("access outside every memslot at 0x200")), "{runs:?}");
        // Garbage is refused.
        assert!(requests.iter().any(|l| l.contains("label 99: errno 95")));
    }
}
