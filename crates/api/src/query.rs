//! The AWS Query protocol's plumbing: form-encoded parameters in (with its
//! `.member.N` lists and `.entry.N` maps), XML out.

use std::collections::BTreeMap;

/// A request's parameters, `Name=value` pairs of a form body or query string.
#[derive(Debug, Default)]
pub struct Params {
    values: BTreeMap<String, String>,
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = hex(*bytes.get(i + 1)?)?;
                let lo = hex(*bytes.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

impl Params {
    /// Parses `a=b&c=d`; `None` when it is not valid percent-encoded UTF-8.
    pub fn parse(text: &str) -> Option<Params> {
        let mut values = BTreeMap::new();
        for pair in text.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            values.insert(decode(k)?, decode(v)?);
        }
        Some(Params { values })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// `true`/`false` (case-insensitive); absent is `false`.
    pub fn flag(&self, name: &str) -> bool {
        self.get(name)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// The indices `N` present under `prefix.N.`, in order.
    fn indices(&self, prefix: &str) -> Vec<u32> {
        let head = format!("{prefix}.");
        let mut found: Vec<u32> = self
            .values
            .keys()
            .filter_map(|k| k.strip_prefix(head.as_str()))
            .filter_map(|rest| rest.split('.').next())
            .filter_map(|n| n.parse().ok())
            .collect();
        found.sort_unstable();
        found.dedup();
        found
    }

    /// A list `Name.member.N...`: one prefix per member (`Name.member.N`).
    pub fn members(&self, name: &str) -> Vec<String> {
        let base = format!("{name}.member");
        self.indices(&base)
            .into_iter()
            .map(|n| format!("{base}.{n}"))
            .collect()
    }

    /// A map `Name.entry.N.<key>` / `Name.entry.N.<value>`: the entries'
    /// prefixes (`Name.entry.N`).
    pub fn entries(&self, name: &str) -> Vec<String> {
        let base = format!("{name}.entry");
        self.indices(&base)
            .into_iter()
            .map(|n| format!("{base}.{n}"))
            .collect()
    }

    /// A string-to-string map with keys `key` and `value`.
    pub fn string_map(&self, name: &str) -> BTreeMap<String, String> {
        self.entries(name)
            .into_iter()
            .filter_map(|e| {
                let k = self.get(&format!("{e}.key"))?;
                let v = self.get(&format!("{e}.value")).unwrap_or("");
                Some((k.to_owned(), v.to_owned()))
            })
            .collect()
    }
}

/// Escapes text for an XML element.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
    out
}

/// Builds an XML document element by element.
#[derive(Default)]
pub struct Xml {
    out: String,
}

impl Xml {
    pub fn open(&mut self, tag: &str) -> &mut Self {
        self.out.push('<');
        self.out.push_str(tag);
        self.out.push('>');
        self
    }

    pub fn close(&mut self, tag: &str) -> &mut Self {
        self.out.push_str("</");
        self.out.push_str(tag);
        self.out.push('>');
        self
    }

    /// `<tag>text</tag>`.
    pub fn text(&mut self, tag: &str, text: &str) -> &mut Self {
        self.open(tag);
        self.out.push_str(&escape(text));
        self.close(tag)
    }

    /// `<tag>text</tag>` when there is text.
    pub fn optional(&mut self, tag: &str, text: Option<&str>) -> &mut Self {
        if let Some(t) = text {
            self.text(tag, t);
        }
        self
    }

    /// `<tag><entry><key>k</key><value>v</value></entry>...</tag>`.
    pub fn map<'a>(
        &mut self,
        tag: &str,
        entries: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> &mut Self {
        self.open(tag);
        for (k, v) in entries {
            self.open("entry")
                .text("key", k)
                .text("value", v)
                .close("entry");
        }
        self.close(tag)
    }

    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn form_lists_and_maps() {
        let p = Params::parse(
            "Action=Publish&Message=a+b%26c%F0%9F%98%80&MessageAttributes.entry.2.Name=y&MessageAttributes.entry.1.Name=x\
             &Attributes.entry.1.key=DisplayName&Attributes.entry.1.value=D&Tags.member.1.Key=k&Tags.member.10.Key=z",
        )
        .unwrap();
        assert_eq!(p.get("Message"), Some("a b&c😀"));
        assert_eq!(
            p.entries("MessageAttributes"),
            vec!["MessageAttributes.entry.1", "MessageAttributes.entry.2"]
        );
        assert_eq!(p.members("Tags"), vec!["Tags.member.1", "Tags.member.10"]);
        assert_eq!(p.string_map("Attributes")["DisplayName"], "D");
        assert!(Params::parse("a=%ZZ").is_none());
        assert!(Params::parse("a=%FF").is_none());
    }

    #[test]
    fn xml_escapes() {
        let mut x = Xml::default();
        x.text("Message", "<a & 'b'>");
        assert_eq!(
            x.finish(),
            "<Message>&lt;a &amp; &apos;b&apos;&gt;</Message>"
        );
    }
}
