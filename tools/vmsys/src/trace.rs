//! The request trace the root task runs on seL4 (`vmm-trace`), run here on
//! the core over the seL4 model with the same configuration; `make
//! test-roottask` compares the two logs line by line.

use vmm::caps::{Slot, SlotRange};
use vmm::platform::NoHooks;
use vmm::Vmm;
use vmm_model::Model;
use vmm_trace::world::{self, CORE_SLOTS, RAM_PAGES, RAM_VADDR, VMS};

use crate::world::{on_big_stack, VMM_VSPACE};

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
        let mut vmm: Box<Vmm<Model, NoHooks, VMS>> =
            Box::new(Vmm::new(model, NoHooks, config).map_err(|e| format!("the core refused its configuration: {e}"))?);
        let mut log = String::new();
        vmm_trace::run(&mut vmm, seed, random, &mut log).map_err(|e| e.to_string())?;
        Ok(log)
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trace_is_the_same_on_every_run_and_begins_with_the_scenario() {
        let a = run(vmm_trace::SEED, 300).unwrap();
        assert_eq!(a, run(vmm_trace::SEED, 300).unwrap());
        assert_eq!(a.lines().count(), 312);
        // The scenario: CREATE_VM gives VM 1, every later step succeeds.
        for l in a.lines().take(12) {
            assert!(l.contains(": ok "), "{l}");
        }
        assert!(a.lines().next().unwrap().ends_with("ok 1"));
        // The random part meets both answers.
        assert!(a.lines().skip(12).any(|l| l.contains("errno")));
        assert!(a.lines().skip(12).filter(|l| l.contains(": ok ")).count() > 30);
    }
}
