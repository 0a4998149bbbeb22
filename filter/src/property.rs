//! Decoders for the bytes Envoy returns from `get_property`.
//!
//! Envoy encodes ints as 8-byte little-endian, bools as one byte, durations
//! and timestamps as int64 nanoseconds and strings as raw bytes. Every decoder
//! checks the length and returns `None` on anything unexpected: a value read
//! from the host must never panic the filter.

pub fn int(bytes: &[u8]) -> Option<i64> {
    let raw: [u8; 8] = bytes.try_into().ok()?;
    Some(i64::from_le_bytes(raw))
}

pub fn uint(bytes: &[u8]) -> Option<u64> {
    let raw: [u8; 8] = bytes.try_into().ok()?;
    Some(u64::from_le_bytes(raw))
}

pub fn boolean(bytes: &[u8]) -> Option<bool> {
    match bytes {
        [0] => Some(false),
        [1] => Some(true),
        _ => None,
    }
}

/// A string property; invalid UTF-8 is replaced rather than rejected so an
/// odd byte on the wire still yields a readable event.
pub fn string(bytes: &[u8]) -> Option<String> {
    if bytes.is_empty() {
        return None;
    }
    Some(String::from_utf8_lossy(bytes).into_owned())
}

/// [`string`] for bytes the caller owns: no copy when they are valid UTF-8.
pub fn string_owned(bytes: Vec<u8>) -> Option<String> {
    if bytes.is_empty() {
        return None;
    }
    Some(String::from_utf8(bytes).unwrap_or_else(|e| string(e.as_bytes()).unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints_need_exactly_eight_bytes() {
        assert_eq!(int(&503i64.to_le_bytes()), Some(503));
        assert_eq!(uint(&0x40u64.to_le_bytes()), Some(0x40));
        assert_eq!(int(&[1, 2, 3]), None);
        assert_eq!(uint(&[0; 9]), None);
        assert_eq!(int(&[]), None);
    }

    #[test]
    fn bools_are_one_byte() {
        assert_eq!(boolean(&[1]), Some(true));
        assert_eq!(boolean(&[0]), Some(false));
        assert_eq!(boolean(&[2]), None);
        assert_eq!(boolean(&[1, 0]), None);
    }

    #[test]
    fn strings_survive_bad_utf8() {
        assert_eq!(string(b"10.0.0.1:80").as_deref(), Some("10.0.0.1:80"));
        assert_eq!(string(&[0xff, b'a']).as_deref(), Some("\u{fffd}a"));
        assert_eq!(string(b""), None);
        assert_eq!(
            string_owned(b"1.2.3.4:5".to_vec()).as_deref(),
            Some("1.2.3.4:5")
        );
        assert_eq!(string_owned(vec![0xff]).as_deref(), Some("\u{fffd}"));
        assert_eq!(string_owned(Vec::new()), None);
    }
}
