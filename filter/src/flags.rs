//! Envoy's `response.flags` bitmask decoded into the short names Envoy's own
//! access log prints (`%RESPONSE_FLAGS%`), in the same order, comma-joined.

/// Bit order of Envoy's `CoreResponseFlag` enum (source/common/stream_info/
/// utility.h, `ResponseFlagUtils::CORE_RESPONSE_FLAGS`); bit i is flag i.
const SHORT_NAMES: [&str; 29] = [
    "LH", "UH", "UT", "LR", "UR", "UF", "UC", "UO", "NR", "DI", "FI", "RL", "UAEX", "RLSE", "DC",
    "URX", "SI", "IH", "DPE", "UMSDR", "RFCF", "NFCF", "DT", "UPE", "NC", "OM", "DF", "DO", "DR",
];

/// The bits the diagnosis rules read (verified against Envoy 1.40 by the
/// real-Envoy tests, which compare with `%RESPONSE_FLAGS%`).
pub const UH: u64 = 0x2;
pub const UT: u64 = 0x4;
pub const LR: u64 = 0x8;
pub const UR: u64 = 0x10;
pub const UF: u64 = 0x20;
pub const UC: u64 = 0x40;
pub const UO: u64 = 0x80;
pub const NR: u64 = 0x100;
pub const UAEX: u64 = 0x1000;
pub const DC: u64 = 0x4000;
pub const URX: u64 = 0x8000;
pub const UMSDR: u64 = 0x80000;
pub const UPE: u64 = 0x800000;

/// Short names of the set bits, comma-joined ("" when none). A bit this table
/// does not know (a newer Envoy) is printed as its hex value, not dropped.
pub fn short_names(mask: u64) -> String {
    let mut out = String::new();
    for bit in 0..64u32 {
        let value = 1u64 << bit;
        if mask & value == 0 {
            continue;
        }
        if !out.is_empty() {
            out.push(',');
        }
        match SHORT_NAMES.get(bit as usize) {
            Some(name) => out.push_str(name),
            None => out.push_str(&format!("{value:#x}")),
        }
    }
    out
}

/// The inverse of [`short_names`]: `UC,URX` (as `%RESPONSE_FLAGS%` prints
/// them) to the bitmask the rules read, so `connlab diagnose` feeds access-log
/// lines to the same rules. `-` and unknown names are 0; `0x...` (what
/// `short_names` prints for a bit it does not know) is read back.
pub fn from_short_names(text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    text.split(',')
        .map(str::trim)
        .map(|name| match SHORT_NAMES.iter().position(|n| *n == name) {
            Some(bit) => 1u64 << bit,
            None => name
                .strip_prefix("0x")
                .and_then(|hex| u64::from_str_radix(hex, 16).ok())
                .filter(|v| v.is_power_of_two())
                .unwrap_or(0),
        })
        .fold(0, |mask, bit| mask | bit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_is_empty() {
        assert_eq!(short_names(0), "");
    }

    #[test]
    fn keepalive_race_and_retry_exhaustion() {
        assert_eq!(short_names(0x40), "UC");
        assert_eq!(short_names(0x20 | 0x8000), "UF,URX");
        assert_eq!(short_names(0x40 | 0x8000), "UC,URX");
    }

    #[test]
    fn every_known_bit_has_its_name() {
        assert_eq!(short_names(0x1), "LH");
        assert_eq!(short_names(0x4), "UT");
        assert_eq!(short_names(0x4000), "DC");
        assert_eq!(short_names(0x10000000), "DR");
    }

    #[test]
    fn names_read_back_to_the_same_mask() {
        for mask in [0, 0x40, 0x20 | 0x8000, 0x1fff_ffff, 0x2000_0001, 1 << 63] {
            assert_eq!(from_short_names(&short_names(mask)), mask, "{mask:#x}");
        }
        assert_eq!(from_short_names("-"), 0);
        assert_eq!(from_short_names("UC, URX"), UC | URX);
        assert_eq!(from_short_names("XX,UC,0xzz,0x3"), UC);
    }

    #[test]
    fn unknown_bits_are_kept_as_hex() {
        assert_eq!(short_names(0x20000000 | 0x1), "LH,0x20000000");
        assert_eq!(short_names(1 << 63), "0x8000000000000000");
    }
}
