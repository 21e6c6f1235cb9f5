//! The root task's empty slots, divided once at start: chunks of the
//! untyped pool, the backend's own objects and the guest RAM frames the
//! core is given, in the kernel's root CNode, and the core's range, which
//! ends at the end of the extended CSpace (`cspace`): the kernel's root
//! CNode's last empty slots, then every slot of the new CNode.

use core::ops::Range;

use vmm::caps::{Slot, SlotRange};

/// Slots for the untyped pool's chunks: one per chunk.
const CHUNK_SLOTS: u64 = crate::untyped::CHUNKS as u64;

/// Slots for the backend's own objects: a scheduling context per vCPU and
/// a scratch slot, and the objects made at start (the clients' among
/// them, about twenty each).
pub const PRIVATE_SLOTS: usize = 384;

/// The division of the empty slots.
#[derive(Clone, Debug)]
pub struct Layout {
    /// The untyped pool's chunks.
    pub chunks: Range<u64>,
    /// The backend's own.
    pub private: Range<u64>,
    /// The guest RAM frames, consecutive.
    pub ram: SlotRange,
    /// The core's range.
    pub core: SlotRange,
}

impl Layout {
    /// Divides `empty`, the kernel's root CNode's empty slots, which run to
    /// its end, and the `extension` after them into `ram_pages` RAM frame
    /// slots and `core_slots` for the core at the end of the extension;
    /// `None` if they are too few.
    pub fn new(empty: Range<u64>, extension: Range<u64>, ram_pages: u64, core_slots: u64) -> Option<Layout> {
        let chunks = empty.start..empty.start.checked_add(CHUNK_SLOTS)?;
        let private = chunks.end..chunks.end.checked_add(PRIVATE_SLOTS as u64)?;
        let ram = SlotRange { base: Slot(private.end), len: ram_pages };
        let core = SlotRange { base: Slot(extension.end.checked_sub(core_slots)?), len: core_slots };
        let joined = empty.end == extension.start;
        (joined && private.end.checked_add(ram_pages)? <= core.base.0).then_some(Layout { chunks, private, ram, core })
    }
}

/// The backend's own slots: a stack of the free ones.
pub struct Private {
    free: heapless::Vec<u64, PRIVATE_SLOTS>,
}

impl Private {
    /// All of `range` free (up to [`PRIVATE_SLOTS`]).
    pub fn new(range: Range<u64>) -> Private {
        let mut free = heapless::Vec::new();
        for s in range.rev() {
            if free.push(s).is_err() {
                break;
            }
        }
        Private { free }
    }

    /// A free slot, if any.
    pub fn take(&mut self) -> Option<u64> {
        self.free.pop()
    }

    /// Gives a slot back.
    pub fn give(&mut self, slot: u64) {
        let _ = self.free.push(slot);
    }

    /// How many are free.
    pub fn free(&self) -> usize {
        self.free.len()
    }
}
