//! The VMM's guarantees, stated as invariants over any sequence of client
//! requests and guest exits applied to the core running on the seL4 model,
//! and checked three ways: bolero harnesses that are Kani proofs under
//! `cargo kani` (`tests/harnesses.rs`), and an exhaustive depth-first model
//! check over small bounds (`checker`). `INVARIANTS.md` numbers them.

pub mod checker;
pub mod invariants;
pub mod ops;
pub mod system;

pub use invariants::{check_state, check_step};
pub use ops::Op;
pub use system::System;
