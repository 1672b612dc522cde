//! The Java properties parser: `flashphoner.properties` text to key, value and line.
//!
//! Owns: [`parse_properties`] (the rules of `java.util.Properties.load`) and how a
//! file's bytes become text ([`decode_text`]: UTF-8, else ISO-8859-1). Must not: know
//! any key (unknown keys are the loader's business) or fail: every input gives entries.

/// Properties files are UTF-8 in practice; Java's default is ISO-8859-1, which maps
/// every byte to the char of the same number, so fall back to that.
pub fn decode_text(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s.strip_prefix('\u{feff}').map(str::to_string).unwrap_or(s),
        Err(e) => e.into_bytes().iter().map(|&b| char::from(b)).collect(),
    }
}

/// One `key=value` entry of a properties file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyEntry {
    /// The key, escapes resolved.
    pub key: String,
    /// The value, escapes resolved and continuation lines joined.
    pub value: String,
    /// 1-based number of the line the entry starts on.
    pub line: usize,
}

/// Parses Java properties text (`java.util.Properties.load`): `key=value`, `key: value`
/// or `key value`; `#` and `!` comment lines; a line ending in an odd number of `\`
/// continues on the next; escapes `\t \n \r \f \uXXXX` and `\x` → `x`. Surrounding
/// whitespace of values is trimmed. Never fails: malformed `\u` escapes are kept as text.
pub fn parse_properties(text: &str) -> Vec<PropertyEntry> {
    let mut entries = Vec::new();
    let mut lines = text.split('\n').enumerate().peekable();
    while let Some((index, raw)) = lines.next() {
        let first = strip_line_end(raw).trim_start_matches(is_prop_space);
        if first.is_empty() || first.starts_with('#') || first.starts_with('!') {
            continue;
        }
        let mut logical = String::from(first);
        while ends_with_odd_backslashes(&logical) {
            logical.pop();
            match lines.next() {
                Some((_, next)) => {
                    logical.push_str(strip_line_end(next).trim_start_matches(is_prop_space));
                }
                None => break,
            }
        }
        let (key, value) = split_key_value(&logical);
        entries.push(PropertyEntry {
            key: unescape(key),
            value: unescape(value).trim().to_string(),
            line: index + 1,
        });
    }
    entries
}

fn is_prop_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\u{c}')
}

fn strip_line_end(line: &str) -> &str {
    line.strip_suffix('\r').unwrap_or(line)
}

fn ends_with_odd_backslashes(s: &str) -> bool {
    s.chars().rev().take_while(|c| *c == '\\').count() % 2 == 1
}

/// Splits a logical line at the first unescaped `=`, `:` or whitespace, as Java does.
fn split_key_value(line: &str) -> (&str, &str) {
    let mut escaped = false;
    let mut key_end = line.len();
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '=' || c == ':' || is_prop_space(c) {
            key_end = i;
            break;
        }
    }
    let key = &line[..key_end];
    let mut rest = line[key_end..].trim_start_matches(is_prop_space);
    if let Some(after) = rest.strip_prefix(['=', ':']) {
        rest = after.trim_start_matches(is_prop_space);
    }
    (key, rest)
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                // Exactly four hex digits: `from_str_radix` alone would take `+12`.
                let hex: String = chars.clone().take(4).collect();
                let four_digits = hex.len() == 4 && hex.chars().all(|c| c.is_ascii_hexdigit());
                match four_digits
                    .then(|| u32::from_str_radix(&hex, 16).ok())
                    .flatten()
                    .and_then(char::from_u32)
                {
                    Some(ch) => {
                        out.push(ch);
                        for _ in 0..4 {
                            chars.next();
                        }
                    }
                    None => out.push_str("\\u"),
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(text: &str) -> Vec<(String, String, usize)> {
        parse_properties(text)
            .into_iter()
            .map(|e| (e.key, e.value, e.line))
            .collect()
    }

    #[test]
    fn properties_separators_and_comments() {
        let text = "# comment\n! also comment\n\n  a=1\nb : 2\nc 3\nd\t=\t4  \ne=\nf\n   # indented comment\ng==x\nh=a=b\n";
        let got = kv(text);
        let want: Vec<(String, String, usize)> = [
            ("a", "1", 4),
            ("b", "2", 5),
            ("c", "3", 6),
            ("d", "4", 7),
            ("e", "", 8),
            ("f", "", 9),
            ("g", "=x", 11),
            ("h", "a=b", 12),
        ]
        .iter()
        .map(|(k, v, l)| (k.to_string(), v.to_string(), *l))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn properties_continuations_escapes_and_crlf() {
        let text = "list = a,\\\r\n    b,\\\n    c\r\nkey\\ with\\:odd\\=chars = v\\tx\\u0041\\\\\nbad=\\u00zz\nlast=\\";
        let got = kv(text);
        assert_eq!(got[0], ("list".into(), "a,b,c".into(), 1));
        assert_eq!(got[1], ("key with:odd=chars".into(), "v\txA\\".into(), 4));
        assert_eq!(got[2], ("bad".into(), "\\u00zz".into(), 5));
        assert_eq!(got[3], ("last".into(), String::new(), 6));
    }

    #[test]
    fn unicode_escape_needs_four_hex_digits() {
        let got = kv("a=\\u+041\nb=\\u-041\nc=\\u 041\nd=\\u004\ne=x\\u0041y\n");
        let values: Vec<&str> = got.iter().map(|(_, v, _)| v.as_str()).collect();
        assert_eq!(values, ["\\u+041", "\\u-041", "\\u 041", "\\u004", "xAy"]);
    }

    #[test]
    fn latin1_and_bom() {
        assert_eq!(decode_text(b"caf\xe9".to_vec()), "caf\u{e9}");
        assert_eq!(decode_text(b"\xef\xbb\xbfa=1".to_vec()), "a=1");
    }
}
