//! vmctl: a client PD that drives its VMM over protected calls and checks
//! every answer.
//!
//! It sets its VM up as the VM's boot manifest describes it ([`plan`]),
//! runs it, and checks malformed and forbidden requests; the VMM notifies
//! it when the VM stops, which moves the scenario on ([`scenario`]). Each
//! check prints one line; the last line is `vmctl: N passed, M failed`.

#![no_std]
#![no_main]

mod checks;
mod client;
mod plan;
mod scenario;

use sel4_microkit::{debug_println, protection_domain, ChannelSet, Handler, Infallible};

use plan::Plan;
use scenario::Scenario;

#[protection_domain(stack_size = 0x4_0000)]
fn init() -> VmCtl {
    match Plan::find() {
        Ok(plan) => VmCtl { scenario: Some(Scenario::begin(plan)) },
        Err(e) => {
            debug_println!("vmctl: cannot plan the scenario: {e}");
            debug_println!("vmctl: 0 passed, 1 failed");
            VmCtl { scenario: None }
        }
    }
}

struct VmCtl {
    scenario: Option<Scenario>,
}

impl Handler for VmCtl {
    type Error = Infallible;

    /// The VMM notifies its client when the client's VM stops.
    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if channels.contains(client::VMM) {
            if let Some(s) = &mut self.scenario {
                s.vm_stopped();
            }
        } else {
            debug_println!("vmctl: unexpected notification on {}", channels.display());
        }
        Ok(())
    }
}
