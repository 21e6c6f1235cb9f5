//! Numbers as people write them in these files: decimal or `0x` hex, with
//! `_` separators allowed (Microkit's own rule for system.xml).

/// Parses `s` as Microkit does: underscores dropped, `0x` for hex, else
/// decimal. `None` if it is not a number that fits in 64 bits.
pub fn parse(s: &str) -> Option<u64> {
    let digits: String = s.chars().filter(|c| *c != '_').collect();
    let (body, radix) = match digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
        Some(hex) => (hex, 16),
        None => (digits.as_str(), 10),
    };
    // from_str_radix accepts a leading '+'; a number here has digits only.
    if body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(body, radix).ok()
}

/// `x` as lower-case hex with `0x`, the form every message uses.
pub fn hex(x: u64) -> String {
    format!("{x:#x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn microkit_number_forms() {
        assert_eq!(parse("0x4000_0000"), Some(0x4000_0000));
        assert_eq!(parse("200"), Some(200));
        assert_eq!(parse("1_000"), Some(1000));
        assert_eq!(parse("0xffffffffffffffff"), Some(u64::MAX));
        for bad in ["", "0x", "+5", "-1", "0x1g", "12a", "0x1_0000_0000_0000_0000", " 1"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
