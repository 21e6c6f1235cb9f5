//! Outcomes in the canonical text a scenario's expected results are
//! written in, so that a step passes when the texts agree.

use vmm::{ExitAction, StopReason};
use vmm_abi::Errno;

use crate::num::hex;

/// `NoSyndrome` as `no-syndrome`: the core's variant names, in the
/// scenario's spelling.
pub fn kebab(debug: &str) -> String {
    let mut s = String::new();
    for (i, c) in debug.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                s.push('-');
            }
            s.push(c.to_ascii_lowercase());
        } else if c.is_ascii_alphanumeric() {
            s.push(c);
        } else {
            // Debug output of a nested value: stop at its first brace.
            break;
        }
    }
    s
}

/// Why a VM stopped.
pub fn stop_reason(r: &StopReason) -> String {
    match r {
        StopReason::SystemOff => "system-off".into(),
        StopReason::ReadOnlyWrite { gpa } => format!("read-only-write gpa={}", hex(gpa.0)),
        StopReason::Unmapped { gpa } => format!("unmapped gpa={}", hex(gpa.0)),
        StopReason::NoBacking { gpa } => format!("no-backing gpa={}", hex(gpa.0)),
        StopReason::Mmio { gpa, error } => format!("mmio gpa={} {}", hex(gpa.0), kebab(&format!("{error:?}"))),
        StopReason::Vgic { gpa, error } => format!("vgic gpa={} {}", hex(gpa.0), kebab(&format!("{error:?}"))),
        StopReason::BadMessage(e) => format!("bad-message {}", kebab(&format!("{e:?}"))),
        StopReason::UnhandledTrap { ec } => format!("unhandled-trap ec={}", hex(u64::from(*ec))),
        StopReason::GuestException { pc } => format!("guest-exception pc={}", hex(*pc)),
        StopReason::NoSuchVcpu => "no-such-vcpu".into(),
        StopReason::Kernel(r) => format!("kernel {} {}", r.call.name(), kebab(&format!("{:?}", r.error))),
        StopReason::Map(e) => format!("map {:?}", e.errno()),
    }
}

/// An exit's outcome; `notify` names the PD on a client channel.
pub fn exit(action: &ExitAction, notify: impl Fn(u32) -> String) -> String {
    match action {
        ExitAction::Resume | ExitAction::ResumeWith(_) => "resume".into(),
        ExitAction::Park => "park".into(),
        ExitAction::Stop { reason, notify: who } => match who {
            Some(c) => format!("stop {} notify={}", stop_reason(reason), notify(c.0)),
            None => format!("stop {}", stop_reason(reason)),
        },
    }
}

/// A request's result: `ok`, `vm 1`, `fd 1`, `value 0x...`, or the errno.
pub fn request(result: Result<u64, Errno>, word: &str) -> String {
    match result {
        Ok(0) if word == "ok" => "ok".into(),
        Ok(v) if word == "ok" => format!("ok value={}", hex(v)),
        Ok(v) if word == "value" => format!("value {}", hex(v)),
        Ok(v) => format!("{word} {v}"),
        Err(e) => format!("{e:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_names_in_kebab_case() {
        assert_eq!(kebab("NoSyndrome"), "no-syndrome");
        assert_eq!(kebab("UnknownLabel"), "unknown-label");
        assert_eq!(kebab("Unsupported"), "unsupported");
    }
}
