//! Small readers over a dump's JSON values: durations, typed configs, and
//! the field paths findings quote.

use serde_json::Value;

/// A protobuf Duration as JSON (`"5s"`, `"0.100s"`), or as the
/// `{seconds, nanos}` object some tools print, in milliseconds.
pub fn duration_ms(v: &Value) -> Option<u64> {
    match v {
        Value::String(s) => {
            let secs: f64 = s.strip_suffix('s')?.parse().ok()?;
            (secs >= 0.0 && secs.is_finite()).then(|| (secs * 1000.0).round() as u64)
        }
        Value::Object(o) => {
            let secs = o.get("seconds").map_or(Some(0), as_u64)?;
            let nanos = o.get("nanos").map_or(Some(0), as_u64)?;
            Some(secs * 1000 + nanos / 1_000_000)
        }
        _ => None,
    }
}

/// A number, or a number in a string (64-bit integers are strings in
/// protobuf's JSON).
pub fn as_u64(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_str()?.parse().ok())
}

/// `1.5 s`, `100 ms`, `1 h` for people.
pub fn human_ms(ms: u64) -> String {
    if ms == 0 {
        "0 s".into()
    } else if ms < 1000 {
        format!("{ms} ms")
    } else if ms.is_multiple_of(3_600_000) {
        format!("{} h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) && ms >= 120_000 {
        format!("{} min", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

/// A filter or extension's name, by `name` or by its `typed_config`'s
/// `@type` (a filter's `name` is free text since Envoy 1.14).
pub fn is_extension(filter: &Value, names: &[&str], type_suffix: &str) -> bool {
    let named = filter
        .get("name")
        .and_then(Value::as_str)
        .is_some_and(|n| names.contains(&n));
    let typed = filter
        .pointer("/typed_config/@type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.ends_with(type_suffix));
    named || typed
}

/// Items of an array field, empty when absent.
pub fn items<'a>(v: &'a Value, field: &str) -> &'a [Value] {
    v.get(field)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

pub fn str_of<'a>(v: &'a Value, field: &str) -> Option<&'a str> {
    v.get(field).and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations() {
        assert_eq!(duration_ms(&json!("5s")), Some(5000));
        assert_eq!(duration_ms(&json!("0.100s")), Some(100));
        assert_eq!(duration_ms(&json!("0s")), Some(0));
        assert_eq!(duration_ms(&json!({"seconds": "3600"})), Some(3_600_000));
        assert_eq!(duration_ms(&json!("5m")), None);
        assert_eq!(duration_ms(&json!("-1s")), None);
        assert_eq!(human_ms(3_600_000), "1 h");
        assert_eq!(human_ms(300_000), "5 min");
        assert_eq!(human_ms(100), "100 ms");
        assert_eq!(human_ms(4000), "4 s");
        assert_eq!(human_ms(5500), "5.5 s");
    }
}
