//! The untyped pool over seL4: the boot information's untypeds, and the
//! two invocations the pool makes.

use sel4::cap::{CNode, Untyped};
use sel4::{AbsoluteCPtr, ObjectBlueprint};
use vmm_untyped::Retype;

/// Chunks the pool keeps: 2 MiB each, so 2 GiB of RAM at most.
pub const CHUNKS: usize = 1024;

/// Boot untypeds larger than a chunk the pool can cut.
pub const SOURCES: usize = 64;

/// The root task's untyped pool.
pub type Pool = vmm_untyped::Pool<CHUNKS, SOURCES>;

/// The pool's seL4 calls, on slots of the root CNode.
pub struct SeL4 {
    /// The root CNode.
    pub cnode: CNode,
}

impl SeL4 {
    /// Slot `slot` of the root CNode, as CNode invocations name it.
    pub fn slot(&self, slot: u64) -> AbsoluteCPtr {
        self.cnode.absolute_cptr_from_bits_with_depth(slot, sel4::WORD_SIZE)
    }
}

impl Retype for SeL4 {
    type Error = sel4::Error;

    fn retype_untyped(&mut self, parent: u64, size_bits: u8, dest: u64) -> Result<(), sel4::Error> {
        let blueprint = ObjectBlueprint::Untyped { size_bits: usize::from(size_bits) };
        Untyped::from_bits(parent).untyped_retype(&blueprint, &self.cnode.absolute_cptr_for_self(), dest as usize, 1)
    }

    fn revoke(&mut self, cptr: u64) -> Result<(), sel4::Error> {
        self.slot(cptr).revoke()
    }
}

/// The boot information's untypeds the VMM may use: not device memory.
pub fn boot_untypeds(bootinfo: &sel4::BootInfo) -> impl Iterator<Item = vmm_untyped::Untyped> + '_ {
    let first = bootinfo.untyped().start();
    bootinfo
        .untyped_list()
        .iter()
        .enumerate()
        .filter(|(_, d)| !d.is_device())
        .map(move |(i, d)| vmm_untyped::Untyped { cptr: (first + i) as u64, size_bits: d.size_bits() as u8 })
}
