//! The tally of checks: one line per check, and the closing line
//! `vmctl: N passed, M failed`.

use sel4_microkit::debug_println;

use vmm_abi::Errno;

use crate::client::Answer;

/// What a check expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// Success, with any value.
    Ok,
    /// This errno.
    Err(Errno),
}

impl core::fmt::Display for Want {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Want::Ok => f.write_str("ok"),
            Want::Err(e) => write!(f, "{e:?}"),
        }
    }
}

/// An answer as the lines say it.
struct Got(Answer);

impl core::fmt::Display for Got {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Ok(v) => write!(f, "ok ({v})"),
            Err(e) => write!(f, "{e:?}"),
        }
    }
}

/// Checks passed and failed so far.
#[derive(Default)]
pub struct Checks {
    passed: u32,
    failed: u32,
}

impl Checks {
    /// Records and prints one check of `got` against `want`; returns `got`.
    pub fn check(&mut self, what: core::fmt::Arguments<'_>, got: Answer, want: Want) -> Answer {
        let ok = match (got, want) {
            (Ok(_), Want::Ok) => true,
            (Err(g), Want::Err(w)) => g == w,
            _ => false,
        };
        if ok {
            self.passed += 1;
            debug_println!("vmctl: ok   {what}: got {}", Got(got));
        } else {
            self.failed += 1;
            debug_println!("vmctl: FAIL {what}: got {}, want {want}", Got(got));
        }
        got
    }

    /// Records a failure that is no answer (the scenario cannot go on).
    pub fn fail(&mut self, what: core::fmt::Arguments<'_>) {
        self.failed += 1;
        debug_println!("vmctl: FAIL {what}");
    }

    /// Prints the closing line.
    pub fn summary(&self) {
        debug_println!("vmctl: {} passed, {} failed", self.passed, self.failed);
    }
}
