//! The scenario file as TOML's spanned tree: split into header, base and
//! variants, merged, looked up by path, deserialized with spans intact.

use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

pub type Table<'i> = Spanned<DeTable<'i>>;
pub type Value<'i> = Spanned<DeValue<'i>>;

/// (header keys, base topology, variant tables), or where the file is not
/// shaped like a scenario.
#[allow(clippy::type_complexity)]
pub fn split_root(
    root: Table<'_>,
) -> Result<(Table<'_>, Table<'_>, Vec<Table<'_>>), (Range<usize>, String)> {
    let span = root.span();
    let mut header = DeTable::new();
    let mut base = DeTable::new();
    let mut variants = Vec::new();
    for (key, value) in root.into_inner() {
        if super::HEADER_KEYS.contains(&key.get_ref().as_ref()) {
            header.insert(key, value);
        } else if key.get_ref() == "variants" {
            let array_span = value.span();
            let DeValue::Array(items) = value.into_inner() else {
                return Err((array_span, "must be [[variants]] tables".into()));
            };
            for item in items {
                let item_span = item.span();
                match item.into_inner() {
                    DeValue::Table(t) => variants.push(Spanned::new(item_span, t)),
                    _ => return Err((item_span, "a variant must be a table".into())),
                }
            }
        } else {
            base.insert(key, value);
        }
    }
    Ok((
        Spanned::new(span.clone(), header),
        Spanned::new(span, base),
        variants,
    ))
}

/// `patch` over `base`: tables merge key by key, anything else replaces.
pub fn merge<'i>(base: Table<'i>, patch: Table<'i>) -> Table<'i> {
    let span = base.span();
    let mut merged = base.into_inner();
    for (key, value) in patch.into_inner() {
        let name: &str = key.get_ref();
        let combined = match (merged.remove(name), value) {
            (Some(old), new) if old.get_ref().is_table() && new.get_ref().is_table() => {
                let (old_span, new_span) = (old.span(), new.span());
                let (DeValue::Table(old), DeValue::Table(new)) =
                    (old.into_inner(), new.into_inner())
                else {
                    unreachable!("both checked to be tables")
                };
                let inner = merge(
                    Spanned::new(old_span, old),
                    Spanned::new(new_span.clone(), new),
                );
                Spanned::new(new_span, DeValue::Table(inner.into_inner()))
            }
            (_, new) => new,
        };
        merged.insert(key, combined);
    }
    Spanned::new(span, merged)
}

pub fn remove<'i>(table: &mut Table<'i>, key: &str) -> Option<Value<'i>> {
    table.get_mut().remove(key)
}

/// A value that should be a table, as one.
pub fn into_table(value: Value<'_>) -> Result<Table<'_>, Value<'_>> {
    let span = value.span();
    match value.into_inner() {
        DeValue::Table(t) => Ok(Spanned::new(span, t)),
        other => Err(Spanned::new(span, other)),
    }
}

/// Deserializes a table, errors pointing into the file.
pub fn deserialize<T: DeserializeOwned>(table: Table<'_>) -> Result<T, toml::de::Error> {
    let span = table.span();
    T::deserialize(ValueDeserializer::from(Spanned::new(
        span,
        DeValue::Table(table.into_inner()),
    )))
}

/// The span of `path` (`nodes.envoy.upstreams.backend.endpoints[0]`), or of
/// the deepest part of it that exists.
pub fn span_at(table: &Table<'_>, path: &str) -> Range<usize> {
    let mut span = table.span();
    let mut here: Option<&DeValue<'_>> = None;
    let mut table_ref: &DeTable<'_> = table.get_ref();
    for part in path.split('.') {
        let (key, indexes) = match part.find('[') {
            Some(at) => (&part[..at], &part[at..]),
            None => (part, ""),
        };
        let current = match here {
            None => Some(table_ref),
            Some(DeValue::Table(t)) => Some(t),
            Some(_) => None,
        };
        let Some(value) = current.and_then(|t| t.get(key)) else {
            return span;
        };
        span = value.span();
        let mut value_ref = value.get_ref();
        for index in indexes
            .split(['[', ']'])
            .filter(|s| !s.is_empty())
            .filter_map(|s| s.parse::<usize>().ok())
        {
            match value_ref {
                DeValue::Array(items) if index < items.len() => {
                    span = items[index].span();
                    value_ref = items[index].get_ref();
                }
                _ => return span,
            }
        }
        if let DeValue::Table(t) = value_ref {
            table_ref = t;
            here = None;
        } else {
            here = Some(value_ref);
        }
    }
    span
}
