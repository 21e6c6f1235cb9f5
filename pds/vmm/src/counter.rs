//! The count, `CNTPCT_EL0`, which this kernel lets a PD read
//! (`EXPORT_PCNT_USER`). A guest's `CNTVCT_EL0` is the same count: the
//! loader sets `CNTVOFF_EL2` to 0 and this kernel leaves it
//! (`VTIMER_UPDATE_VOFFSET` off); kernel-config/ requires both.

/// The count now.
pub fn now() -> u64 {
    let count: u64;
    // SAFETY: reads a system register EL0 may read; no memory is touched.
    unsafe { core::arch::asm!("isb", "mrs {}, cntpct_el0", out(reg) count, options(nomem, nostack)) };
    count
}
