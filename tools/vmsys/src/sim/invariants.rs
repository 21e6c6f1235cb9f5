//! What must hold after every step, whatever the scenario says: every
//! invariant of the core ([`vmm_model::invariants`]), the model's own
//! consistency among them, so that no guest_memfd frame is mapped anywhere
//! but into its own VM's stage 2 (never into the VMM, never into another
//! VM).

use super::system::Instance;
use crate::world::VMM_VSPACE;

/// The first broken invariant of `inst`, if any.
pub fn broken(inst: &Instance) -> Option<String> {
    vmm_model::invariants::check_state(&inst.vmm, VMM_VSPACE).err().map(|e| format!("{}: {e}", inst.vmm_name))
}
