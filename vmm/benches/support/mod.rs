//! What the benchmarks share: a register-only kernel, an allocation
//! counter, and reading criterion's own estimates back for comparisons.

pub mod alloc_count;
pub mod null_kernel;

use std::path::PathBuf;

/// Where criterion writes its results for this bench binary.
pub fn output_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_TARGET_TMPDIR"), "/criterion"))
}

/// The mean time in nanoseconds criterion estimated for `id`
/// (`group/function/parameter`), from this run.
pub fn mean_ns(id: &str) -> Option<f64> {
    let path = output_dir().join(id).join("new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["mean"]["point_estimate"].as_f64()
}
