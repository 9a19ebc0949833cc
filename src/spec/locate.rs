//! Finds where a JSON path (`process.capabilities.bounding[2]`) lies in a JSON
//! text, so errors about a spec field can show its line. A small scanner over
//! the text: strings, numbers, literals, objects, arrays; no allocation of
//! values.

use std::ops::Range;

/// One step of a JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSeg {
    /// An object key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// Parses `a.b[2].c` into segments; `a["b.c"]` is the key `b.c` (annotation
/// names hold dots).
pub fn parse_path(path: &str) -> Vec<PathSeg> {
    let mut out = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(quoted) = rest.strip_prefix("[\"") {
            let end = quoted.find("\"]").unwrap_or(quoted.len());
            out.push(PathSeg::Key(quoted[..end].to_string()));
            rest = quoted.get(end + 2..).unwrap_or("");
        } else if let Some(index) = rest.strip_prefix('[') {
            let end = index.find(']').unwrap_or(index.len());
            if let Ok(n) = index[..end].parse() {
                out.push(PathSeg::Index(n));
            }
            rest = index.get(end + 1..).unwrap_or("");
        } else if let Some(after) = rest.strip_prefix('.') {
            rest = after;
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            out.push(PathSeg::Key(rest[..end].to_string()));
            rest = &rest[end..];
        }
    }
    out
}

/// The byte range of the value at `path` in `text`, or of the deepest parent
/// found when the path does not exist.
pub fn locate(text: &str, path: &str) -> Option<Range<usize>> {
    let segs = parse_path(path);
    let b = text.as_bytes();
    let mut pos = skip_ws(b, 0);
    let mut best = None;
    for seg in &segs {
        let start = pos;
        let end = skip_value(b, pos)?;
        best = Some(start..end);
        pos = match seg {
            PathSeg::Key(k) => find_key(b, start, k)?,
            PathSeg::Index(i) => find_index(b, start, *i)?,
        };
    }
    let end = skip_value(b, pos).unwrap_or(pos + 1);
    Some(pos..end).or(best)
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

fn skip_string(b: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

fn skip_value(b: &[u8], i: usize) -> Option<usize> {
    let i = skip_ws(b, i);
    match *b.get(i)? {
        b'"' => skip_string(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'"' => {
                        j = skip_string(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            None
        }
        _ => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']') && !b[j].is_ascii_whitespace() {
                j += 1;
            }
            Some(j)
        }
    }
}

fn find_key(b: &[u8], obj: usize, key: &str) -> Option<usize> {
    let mut i = skip_ws(b, obj);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    loop {
        i = skip_ws(b, i);
        if b.get(i)? == &b'}' {
            return None;
        }
        let kstart = i;
        let kend = skip_string(b, i)?;
        let k = std::str::from_utf8(&b[kstart + 1..kend - 1]).ok()?;
        i = skip_ws(b, kend);
        i += 1; // ':'
        let vstart = skip_ws(b, i);
        if k == key {
            return Some(vstart);
        }
        i = skip_ws(b, skip_value(b, vstart)?);
        if b.get(i) == Some(&b',') {
            i += 1;
        }
    }
}

fn find_index(b: &[u8], arr: usize, idx: usize) -> Option<usize> {
    let mut i = skip_ws(b, arr);
    if b.get(i) != Some(&b'[') {
        return None;
    }
    i += 1;
    let mut n = 0;
    loop {
        i = skip_ws(b, i);
        if b.get(i)? == &b']' {
            return None;
        }
        if n == idx {
            return Some(i);
        }
        i = skip_ws(b, skip_value(b, i)?);
        if b.get(i) == Some(&b',') {
            i += 1;
        }
        n += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_values() {
        let t = r#"{"a": {"b": [1, "x\"y", {"c": true}]}, "d": null}"#;
        assert_eq!(&t[locate(t, "a.b[1]").unwrap()], r#""x\"y""#);
        assert_eq!(&t[locate(t, "a.b[2].c").unwrap()], "true");
        assert_eq!(&t[locate(t, "d").unwrap()], "null");
        assert_eq!(locate(t, "a.z"), None);
    }

    #[test]
    fn parses_paths() {
        assert_eq!(
            parse_path("mounts[3].source"),
            vec![
                PathSeg::Key("mounts".into()),
                PathSeg::Index(3),
                PathSeg::Key("source".into())
            ]
        );
        assert_eq!(
            parse_path("annotations[\"org.sandboxctl.policy\"]"),
            vec![
                PathSeg::Key("annotations".into()),
                PathSeg::Key("org.sandboxctl.policy".into())
            ]
        );
        assert_eq!(
            parse_path("a[1][2]"),
            vec![PathSeg::Key("a".into()), PathSeg::Index(1), PathSeg::Index(2)]
        );
    }
}
