//! The VMM as seL4's root task: full authority over memory.
//!
//! seL4 gives its root task every untyped capability, the ASID control and
//! the scheduling control. This VMM makes every object of its VMs from
//! them, so each memory operation of the core is a capability operation on
//! a real kernel (see `kernel`): a memslot's pages are mapped into the
//! guest's stage 2 and unmapped from it, a lock maps before the guest runs,
//! a guest_memfd's frames are new, zeroed objects, and destroying a VM
//! deletes everything it had.
//!
//! At start it divides the root CNode's empty slots (`slots`), takes the
//! boot untypeds into its pool (`untyped`), makes its own objects (an ASID
//! pool, the vCPUs' fault endpoint, an empty CNode for the guests), gives
//! the core guest RAM it maps into its own address space, runs the request
//! trace it shares with the host model (`trace`), and then runs the
//! lifecycle check (`lifecycle`): VMs made, run to their guest's
//! power-off (`guest`, `exits`) and destroyed.

#![no_std]
#![no_main]

mod bench;
mod clients;
mod cspace;
mod enforce;
mod exits;
mod guest;
mod kernel;
mod lifecycle;
mod slots;
mod start;
mod trace;
mod untyped;

use sel4_root_task::root_task;

/// The root task's stack. The core and the pool are built on it once
/// before they move to their statics.
const STACK_SIZE: usize = 256 * 1024;

#[root_task(stack_size = STACK_SIZE)]
fn main(bootinfo: &sel4::BootInfoPtr) -> ! {
    sel4::debug_println!("roottask: VMM with full authority, seL4 root task");
    match start::start(bootinfo) {
        Ok(mut started) => {
            // The power-off guest (and the probes), at the start of guest
            // RAM, for the trace's runs, the lifecycle check and the checks.
            if let Err(e) = guest::install(vmm_trace::world::RAM_VADDR) {
                sel4::debug_println!("roottask: cannot install the guest: {e}");
            }
            let at_start = lifecycle::counts(started.core);
            trace::run(&mut started, vmm_trace::SEED, vmm_trace::RANDOM);
            if lifecycle::counts(started.core) == at_start {
                sel4::debug_println!(
                    "roottask: the trace and its cleanup left the untyped memory and the slots as they were"
                );
            } else {
                sel4::debug_println!("roottask: the trace FAILED to give back what it took");
            }
            let mut started = lifecycle::run(started);
            enforce::run(&mut started);
            bench::run(&mut started);
        }
        Err(e) => sel4::debug_println!("roottask: refusing to start: {e}"),
    }
    sel4::debug_println!("roottask: done");
    sel4::init_thread::suspend_self()
}
