//! How much of its stack the VMM PD uses. The stack is a static array
//! below the address sel4-microkit's runtime starts it at, with no guard
//! page under it, so its size must be a measurement with room to spare:
//! `paint` fills the unused part at start, and `used` finds the deepest
//! byte written since.

/// The stack's size, in bytes.
pub const SIZE: usize = 0xc000;

/// What unused stack holds after `paint`.
const PAINT: u8 = 0x5a;

/// Bytes below the caller's frame that `paint` leaves alone (its own frame).
const MARGIN: usize = 512;

unsafe extern "C" {
    /// The stack's top (its highest address, where it starts), defined by
    /// sel4-microkit's runtime beside the stack.
    static __sel4_runtime_common__stack_bottom: *mut u8;
}

/// The stack's lowest and highest addresses.
fn bounds() -> (usize, usize) {
    // SAFETY: the runtime defines the symbol as a pointer-sized constant
    // and never writes it.
    let top = unsafe { __sel4_runtime_common__stack_bottom } as usize;
    (top - SIZE, top)
}

/// Paints the stack below the caller's frame.
#[inline(never)]
pub fn paint() {
    let here = 0u8;
    let (low, _) = bounds();
    let end = (&here as *const u8 as usize).saturating_sub(MARGIN);
    for a in low..end {
        // SAFETY: `[low, end)` is stack below every live frame: this
        // function's own is above `end`, and it calls nothing.
        unsafe { (a as *mut u8).write_volatile(PAINT) };
    }
}

/// The most stack used since `paint`, in bytes.
pub fn used() -> usize {
    let (low, top) = bounds();
    // SAFETY: reads of the stack's own memory, which is always mapped.
    let first = (low..top).find(|&a| unsafe { (a as *const u8).read_volatile() } != PAINT).unwrap_or(top);
    top - first
}
