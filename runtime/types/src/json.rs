//! JSON helpers that look at one field of an event without building the whole document.
//!
//! `key-by` on the host and field predicates in operators read one field of each event; building
//! a `serde_json::Value` for that would cost an allocation per string in the event.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// A parsed JSON pointer (RFC 6901), e.g. `/user/id` or `/tags/0`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pointer {
    text: String,
    segments: Vec<String>,
}

/// A string that is not a JSON pointer.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error(
    "`{0}` is not a JSON pointer: it must be empty or start with `/` (e.g. `/user/id`), and `~` may only be followed by 0 or 1"
)]
pub struct PointerError(pub String);

impl Pointer {
    pub fn parse(text: &str) -> Result<Self, PointerError> {
        if text.is_empty() {
            return Ok(Self {
                text: String::new(),
                segments: Vec::new(),
            });
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(PointerError(text.to_owned()));
        };
        let mut segments = Vec::new();
        for raw in rest.split('/') {
            let mut seg = String::with_capacity(raw.len());
            let mut chars = raw.chars();
            while let Some(c) = chars.next() {
                if c == '~' {
                    match chars.next() {
                        Some('0') => seg.push('~'),
                        Some('1') => seg.push('/'),
                        _ => return Err(PointerError(text.to_owned())),
                    }
                } else {
                    seg.push(c);
                }
            }
            segments.push(seg);
        }
        Ok(Self {
            text: text.to_owned(),
            segments,
        })
    }

    /// The first segment and the pointer to the rest (`/a/b` → `a`, `/b`); `None` for the
    /// empty pointer.
    pub fn split_first(&self) -> Option<(&str, Pointer)> {
        let first = self.segments.first()?;
        let rest_at = self.text[1..].find('/').map_or(self.text.len(), |i| i + 1);
        let rest = Pointer {
            text: self.text[rest_at..].to_owned(),
            segments: self.segments[1..].to_vec(),
        };
        Some((first, rest))
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The raw JSON text of the value this pointer names in `doc`, or `None` when there is none.
    /// Fails only when `doc` is not JSON.
    pub fn find<'a>(&self, doc: &'a [u8]) -> Result<Option<&'a RawValue>, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_slice(doc);
        let found = Seek(&self.segments).deserialize(&mut de)?;
        de.end()?;
        Ok(found)
    }
}

impl fmt::Display for Pointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The unsigned number right after the first `"key":` (`key` given with its quotes and colon)
/// in compact JSON, found by a byte scan without parsing the document: a fast path for hot
/// operators that need one field of a known, compact format. `None` when the text is not found
/// in that form — then parse the document properly. It does not know nesting: the first match
/// anywhere counts.
pub fn number_after(doc: &[u8], key: &[u8]) -> Option<u64> {
    let at = doc.windows(key.len()).position(|w| w == key)? + key.len();
    let digits = doc[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 19 {
        return None;
    }
    std::str::from_utf8(&doc[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

/// The bytes a JSON value contributes to a key: a string's contents (unescaped), or the JSON text
/// of any other value (`42`, `true`, `{"a":1}`).
pub fn key_bytes(raw: &RawValue) -> Cow<'_, [u8]> {
    let text = raw.get();
    if text.starts_with('"') {
        if let Ok(s) = serde_json::from_str::<&str>(text) {
            return Cow::Borrowed(s.as_bytes());
        }
        if let Ok(s) = serde_json::from_str::<String>(text) {
            return Cow::Owned(s.into_bytes());
        }
    }
    Cow::Borrowed(text.as_bytes())
}

/// The top-level fields of a JSON object, in document order, each value as raw JSON. Keys without
/// escapes are borrowed. Fails when `doc` is not a JSON object.
pub fn fields(doc: &[u8]) -> Result<Vec<(Cow<'_, str>, &RawValue)>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(doc);
    let fields = de.deserialize_map(Fields)?;
    de.end()?;
    Ok(fields)
}

struct Fields;

impl<'de> Visitor<'de> for Fields {
    type Value = Vec<(Cow<'de, str>, &'de RawValue)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some(key) = map.next_key_seed(CowKey)? {
            out.push((key, map.next_value::<&'de RawValue>()?));
        }
        Ok(out)
    }
}

struct CowKey;

impl<'de> DeserializeSeed<'de> for CowKey {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for CowKey {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

struct Seek<'p>(&'p [String]);

impl<'de> DeserializeSeed<'de> for Seek<'_> {
    type Value = Option<&'de RawValue>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        if self.0.is_empty() {
            return <&'de RawValue as de::Deserialize>::deserialize(d).map(Some);
        }
        d.deserialize_any(self)
    }
}

/// Compares a map key with a pointer segment without allocating.
struct KeyIs<'p>(&'p str);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIs<'_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        Ok(v == self.0)
    }
}

impl<'de> Visitor<'de> for Seek<'_> {
    type Value = Option<&'de RawValue>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (head, rest) = self.0.split_first().expect("seek has segments");
        let mut found = None;
        while let Some(hit) = map.next_key_seed(KeyIs(head))? {
            if hit && found.is_none() {
                found = map.next_value_seed(Seek(rest))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let (head, rest) = self.0.split_first().expect("seek has segments");
        let wanted = head
            .parse::<usize>()
            .ok()
            .filter(|_| !head.starts_with('+'));
        let mut found = None;
        let mut i = 0usize;
        loop {
            if Some(i) == wanted {
                match seq.next_element_seed(Seek(rest))? {
                    Some(v) => found = v,
                    None => break,
                }
            } else if seq.next_element::<IgnoredAny>()?.is_none() {
                break;
            }
            i += 1;
        }
        Ok(found)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(doc: &str, p: &str) -> Option<String> {
        Pointer::parse(p)
            .unwrap()
            .find(doc.as_bytes())
            .unwrap()
            .map(|r| r.get().to_owned())
    }

    #[test]
    fn finds_nested_fields_and_elements() {
        let doc = r#"{"a":{"b":[10,{"c":"x"}],"d":null},"e/f":1,"g~h":2,"s":"t"}"#;
        assert_eq!(find(doc, "/a/b/0").as_deref(), Some("10"));
        assert_eq!(find(doc, "/a/b/1/c").as_deref(), Some("\"x\""));
        assert_eq!(find(doc, "/a/d").as_deref(), Some("null"));
        assert_eq!(find(doc, "/e~1f").as_deref(), Some("1"));
        assert_eq!(find(doc, "/g~0h").as_deref(), Some("2"));
        assert_eq!(find(doc, "").as_deref(), Some(doc));
        assert_eq!(find(doc, "/missing"), None);
        assert_eq!(find(doc, "/a/b/7"), None);
        assert_eq!(find(doc, "/s/x"), None);
        assert_eq!(find(doc, "/a/b/x"), None);
    }

    #[test]
    fn split_first() {
        let p = Pointer::parse("/a~1b/c/0").unwrap();
        let (first, rest) = p.split_first().unwrap();
        assert_eq!(first, "a/b");
        assert_eq!(rest, Pointer::parse("/c/0").unwrap());
        let x = Pointer::parse("/x").unwrap();
        let (first, rest) = x.split_first().unwrap();
        assert_eq!((first, rest.as_str()), ("x", ""));
        assert!(Pointer::parse("").unwrap().split_first().is_none());
    }

    #[test]
    fn rejects_bad_pointers_and_bad_json() {
        assert!(Pointer::parse("a").is_err());
        assert!(Pointer::parse("/a~2").is_err());
        let p = Pointer::parse("/a").unwrap();
        assert!(p.find(b"{\"a\":").is_err());
        assert!(p.find(b"{\"a\":1} x").is_err());
    }

    #[test]
    fn fields_in_order() {
        let f = fields(br#"{"b":1,"a\"":{"x":[1]},"c":"s"}"#).unwrap();
        let got: Vec<(&str, &str)> = f.iter().map(|(k, v)| (k.as_ref(), v.get())).collect();
        assert_eq!(
            got,
            vec![("b", "1"), ("a\"", r#"{"x":[1]}"#), ("c", "\"s\"")]
        );
        assert!(fields(b"[1]").is_err());
        assert!(fields(b"{").is_err());
    }

    #[test]
    fn key_bytes_unquotes_strings() {
        let raw: &RawValue = serde_json::from_str(r#""al\"ice""#).unwrap();
        assert_eq!(&*key_bytes(raw), b"al\"ice");
        let raw: &RawValue = serde_json::from_str(r#""bob""#).unwrap();
        assert_eq!(&*key_bytes(raw), b"bob");
        let raw: &RawValue = serde_json::from_str("42").unwrap();
        assert_eq!(&*key_bytes(raw), b"42");
    }
}
