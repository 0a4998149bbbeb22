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

/// The elements of a CEL list as Envoy serializes it for wasm (the
/// proxy-wasm "pairs" encoding, each element a key with an empty value):
/// a u32 count, `count` pairs of u32 sizes (element, then 0), then each
/// element's bytes followed by two NULs. `None` on anything else, including
/// a value that is not empty.
pub fn list(bytes: &[u8]) -> Option<Vec<&[u8]>> {
    let u32_at = |at: usize| -> Option<usize> {
        let raw: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        usize::try_from(u32::from_le_bytes(raw)).ok()
    };
    let count = u32_at(0)?;
    // Each element takes at least 10 bytes (its sizes and two NULs).
    if count > bytes.len() / 10 {
        return None;
    }
    let mut data = 4usize.checked_add(count.checked_mul(8)?)?;
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let size = u32_at(4 + i * 8)?;
        if u32_at(8 + i * 8)? != 0 {
            return None;
        }
        let end = data.checked_add(size)?;
        out.push(bytes.get(data..end)?);
        if bytes.get(end..end.checked_add(2)?)? != [0, 0] {
            return None;
        }
        data = end + 2;
    }
    (data == bytes.len()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Envoy 1.40 returned for `[response.flags,
    /// upstream.request_attempt_count, upstream.local_address,
    /// upstream.address]` (captured from `expr_evaluate`).
    fn envoy_list() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&4u32.to_le_bytes());
        for size in [8u32, 8, 15, 15] {
            b.extend_from_slice(&size.to_le_bytes());
            b.extend_from_slice(&0u32.to_le_bytes());
        }
        for item in [
            &0u64.to_le_bytes()[..],
            &1u64.to_le_bytes()[..],
            b"127.0.0.1:43684",
            b"127.0.0.1:18080",
        ] {
            b.extend_from_slice(item);
            b.extend_from_slice(&[0, 0]);
        }
        b
    }

    #[test]
    fn lists_decode_as_envoy_serializes_them() {
        let bytes = envoy_list();
        let items = list(&bytes).unwrap();
        assert_eq!(items.len(), 4);
        assert_eq!(uint(items[0]), Some(0));
        assert_eq!(uint(items[1]), Some(1));
        assert_eq!(items[2], b"127.0.0.1:43684");
        assert_eq!(items[3], b"127.0.0.1:18080");
        assert_eq!(list(&0u32.to_le_bytes()), Some(vec![]));
    }

    #[test]
    fn malformed_lists_are_none() {
        let bytes = envoy_list();
        for cut in 0..bytes.len() {
            assert_eq!(list(&bytes[..cut]), None, "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(list(&longer), None);
        let mut valued = bytes.clone();
        valued[8] = 1;
        assert_eq!(list(&valued), None);
        let mut huge = bytes;
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(list(&huge), None);
    }

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
