//! The untyped pool over seL4: the boot information's untypeds, and the
//! two invocations the pool makes.

use sel4::cap::Untyped;
use sel4::{AbsoluteCPtr, ObjectBlueprint};
use vmm_untyped::{Made, PoolError, Retype};

use crate::cspace::Extended;

/// Chunks the pool keeps: 2 MiB each, so 2 GiB of RAM at most.
pub const CHUNKS: usize = 1024;

/// Boot untypeds larger than a chunk the pool can cut.
pub const SOURCES: usize = 64;

/// The root task's untyped pool.
pub type Pool = vmm_untyped::Pool<CHUNKS, SOURCES>;

/// The pool's seL4 calls, on slots of the root task's CSpace.
pub struct SeL4 {
    /// The CSpace root (`cspace`).
    pub cspace: Extended,
}

impl SeL4 {
    /// Slot `slot`, as CNode invocations name it.
    pub fn slot(&self, slot: u64) -> AbsoluteCPtr {
        self.cspace.slot(slot)
    }

    /// `seL4_Untyped_Retype` of one object of `blueprint` from `untyped`
    /// into slot `dest`.
    fn retype(&self, untyped: u64, blueprint: &ObjectBlueprint, dest: u64) -> Result<(), sel4::Error> {
        let (holder, index) = self.cspace.holder(dest);
        Untyped::from_bits(untyped).untyped_retype(blueprint, &holder, index as usize, 1)
    }

    /// Makes one object of `blueprint` in the empty slot `dest` from
    /// `pool`: room reserved, the object retyped, and only then the room
    /// committed, so a failure leaves the pool as it was. A `lasting`
    /// object (never released) comes from chunks of its own.
    pub fn make(
        &mut self,
        pool: &mut Pool,
        blueprint: ObjectBlueprint,
        dest: u64,
        lasting: bool,
    ) -> Result<Made, PoolError<sel4::Error>> {
        let bits = u8::try_from(blueprint.physical_size_bits()).map_err(|_| PoolError::BadSize)?;
        let lease = match lasting {
            true => pool.reserve_lasting(bits, self)?,
            false => pool.reserve(bits, self)?,
        };
        self.retype(lease.untyped(), &blueprint, dest).map_err(PoolError::Kernel)?;
        Ok(pool.commit(lease))
    }
}

impl Retype for SeL4 {
    type Error = sel4::Error;

    fn retype_untyped(&mut self, parent: u64, size_bits: u8, dest: u64) -> Result<(), sel4::Error> {
        self.retype(parent, &ObjectBlueprint::Untyped { size_bits: usize::from(size_bits) }, dest)
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
