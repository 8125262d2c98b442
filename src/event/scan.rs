//! The fast path of decoding: one pass over a record that validates it as JSON and finds the
//! envelope's fields, borrowing every value from the record.
//!
//! It accepts only the plain case — a top-level object whose envelope fields are escape-free
//! strings (`resources` an array of them), `detail` an object on one line, each envelope key once
//! — and answers `None` for anything else, which the serde path (`RawEnvelope`) then decides, so
//! both paths accept, reject and produce exactly the same things. The validation is at least as
//! strict as serde_json's: whatever this scanner accepts, serde_json accepts too.
//!
//! Strings, most of an event's bytes, are skipped 16 bytes at a time (SSE2 on x86_64, which every
//! x86_64 CPU has; a byte loop elsewhere). The scanner also validates UTF-8: every byte outside a
//! string must be ASCII to be accepted, and a string holding any other byte is checked, so a
//! record it accepts is valid UTF-8 and its text needs no second pass.

/// The envelope fields of one record, as found in its text.
#[derive(Default)]
pub(super) struct Fields<'a> {
    pub id: Option<&'a str>,
    pub source: Option<&'a str>,
    pub detail_type: Option<&'a str>,
    pub time: Option<&'a str>,
    pub account: Option<&'a str>,
    pub region: Option<&'a str>,
    pub version: Option<&'a str>,
    /// Whether `resources` was present (its items' byte ranges are in the caller's vector).
    pub resources: bool,
    pub detail: Option<&'a str>,
    /// `detail` spreads over lines (a pretty-printed store): the caller compacts it.
    pub detail_multiline: bool,
}

/// Deeper nesting is left to serde_json (which has a recursion limit of its own).
const MAX_DEPTH: u32 = 64;

/// Scans `b` (trimmed, starting with `{`). `resources` receives the byte ranges of the items of
/// `resources`. When it answers, `b` is valid UTF-8.
pub(super) fn envelope<'a>(b: &'a [u8], resources: &mut Vec<std::ops::Range<usize>>) -> Option<Fields<'a>> {
    resources.clear();
    let mut f = Fields::default();
    let mut i = ws(b, 1);
    if b.get(i) == Some(&b'}') {
        return (i + 1 == b.len()).then_some(f);
    }
    loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let (key_end, escaped) = string_end(b, i + 1)?;
        if escaped {
            return None; // an escaped key might spell an envelope field
        }
        let key = &b[i + 1..key_end];
        i = ws(b, key_end + 1);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = ws(b, i + 1);
        let slot = match key {
            b"id" => Some(&mut f.id),
            b"source" => Some(&mut f.source),
            b"detail-type" => Some(&mut f.detail_type),
            b"time" => Some(&mut f.time),
            b"account" => Some(&mut f.account),
            b"region" => Some(&mut f.region),
            b"version" => Some(&mut f.version),
            _ => None,
        };
        if let Some(slot) = slot {
            if slot.is_some() || b.get(i) != Some(&b'"') {
                return None; // a duplicate, or not a string (null, a number): serde decides
            }
            let (end, escaped) = string_end(b, i + 1)?;
            if escaped {
                return None;
            }
            *slot = Some(text(b, i + 1..end));
            i = end + 1;
        } else if key == b"resources" {
            if f.resources || b.get(i) != Some(&b'[') {
                return None;
            }
            f.resources = true;
            i = ws(b, i + 1);
            if b.get(i) == Some(&b']') {
                i += 1;
            } else {
                loop {
                    if b.get(i) != Some(&b'"') {
                        return None;
                    }
                    let (end, escaped) = string_end(b, i + 1)?;
                    if escaped {
                        return None;
                    }
                    resources.push(i + 1..end);
                    i = ws(b, end + 1);
                    match b.get(i) {
                        Some(b',') => i = ws(b, i + 1),
                        Some(b']') => {
                            i += 1;
                            break;
                        }
                        _ => return None,
                    }
                }
            }
        } else if key == b"detail" {
            if f.detail.is_some() || b.get(i) != Some(&b'{') {
                return None;
            }
            let (end, multiline) = value_end(b, i, 0)?;
            f.detail = Some(text(b, i..end));
            f.detail_multiline = multiline;
            i = end;
        } else {
            i = value_end(b, i, 0)?.0;
        }
        i = ws(b, i);
        match b.get(i) {
            Some(b',') => i = ws(b, i + 1),
            Some(b'}') => return (i + 1 == b.len()).then_some(f),
            _ => return None,
        }
    }
}

/// A range of `b` that [`string_end`] or [`value_end`] has accepted, as text.
#[inline]
fn text(b: &[u8], range: std::ops::Range<usize>) -> &str {
    let bytes = &b[range];
    debug_assert!(std::str::from_utf8(bytes).is_ok());
    // SAFETY: the range is a string's contents or a whole JSON value that the scanner accepted:
    // outside strings it accepts ASCII bytes only, and `string_end` checks every string that
    // holds a byte above 0x7f. A quote is ASCII and never part of a multi-byte sequence, so a
    // string's contents are whole characters.
    unsafe { std::str::from_utf8_unchecked(bytes) }
}

#[inline]
fn ws(b: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(i) {
        i += 1;
    }
    i
}

/// The end (exclusive) of the JSON value starting at `i`, and whether a line break lies between
/// its tokens. `None` when it is not valid JSON (or nests deeper than [`MAX_DEPTH`]).
fn value_end(b: &[u8], i: usize, depth: u32) -> Option<(usize, bool)> {
    match *b.get(i)? {
        b'"' => string_end(b, i + 1).map(|(end, _)| (end + 1, false)),
        b'{' => {
            if depth >= MAX_DEPTH {
                return None;
            }
            let mut multiline = false;
            let mut j = ws_noting(b, i + 1, &mut multiline);
            if b.get(j) == Some(&b'}') {
                return Some((j + 1, multiline));
            }
            loop {
                if b.get(j) != Some(&b'"') {
                    return None;
                }
                let (key_end, _) = string_end(b, j + 1)?;
                j = ws_noting(b, key_end + 1, &mut multiline);
                if b.get(j) != Some(&b':') {
                    return None;
                }
                j = ws_noting(b, j + 1, &mut multiline);
                let (end, m) = value_end(b, j, depth + 1)?;
                multiline |= m;
                j = ws_noting(b, end, &mut multiline);
                match b.get(j) {
                    Some(b',') => j = ws_noting(b, j + 1, &mut multiline),
                    Some(b'}') => return Some((j + 1, multiline)),
                    _ => return None,
                }
            }
        }
        b'[' => {
            if depth >= MAX_DEPTH {
                return None;
            }
            let mut multiline = false;
            let mut j = ws_noting(b, i + 1, &mut multiline);
            if b.get(j) == Some(&b']') {
                return Some((j + 1, multiline));
            }
            loop {
                let (end, m) = value_end(b, j, depth + 1)?;
                multiline |= m;
                j = ws_noting(b, end, &mut multiline);
                match b.get(j) {
                    Some(b',') => j = ws_noting(b, j + 1, &mut multiline),
                    Some(b']') => return Some((j + 1, multiline)),
                    _ => return None,
                }
            }
        }
        b't' => b[i..].starts_with(b"true").then_some((i + 4, false)),
        b'f' => b[i..].starts_with(b"false").then_some((i + 5, false)),
        b'n' => b[i..].starts_with(b"null").then_some((i + 4, false)),
        b'-' | b'0'..=b'9' => number_end(b, i).map(|end| (end, false)),
        _ => None,
    }
}

#[inline]
fn ws_noting(b: &[u8], mut i: usize, multiline: &mut bool) -> usize {
    loop {
        match b.get(i) {
            Some(b' ' | b'\t') => {}
            Some(b'\n' | b'\r') => *multiline = true,
            _ => return i,
        }
        i += 1;
    }
}

/// JSON's number grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
fn number_end(b: &[u8], mut i: usize) -> Option<usize> {
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match b.get(i)? {
        b'0' => i += 1,
        b'1'..=b'9' => i = digits(b, i),
        _ => return None,
    }
    if b.get(i) == Some(&b'.') {
        let end = digits(b, i + 1);
        if end == i + 1 {
            return None;
        }
        i = end;
    }
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = b.get(i) {
            i += 1;
        }
        let end = digits(b, i);
        if end == i {
            return None;
        }
        i = end;
    }
    // "01" or "1x": the number must end here (what follows is checked by the caller, but a
    // digit right after a leading zero is not a separator it would catch).
    match b.get(i) {
        Some(b'0'..=b'9') => None,
        _ => Some(i),
    }
}

#[inline]
fn digits(b: &[u8], mut i: usize) -> usize {
    while let Some(b'0'..=b'9') = b.get(i) {
        i += 1;
    }
    i
}

/// From just after an opening quote: the index of the closing quote, and whether the string has
/// escapes. `None` when the string is unterminated, holds a control character or a bad escape,
/// or is not UTF-8.
#[inline]
fn string_end(b: &[u8], mut i: usize) -> Option<(usize, bool)> {
    let start = i;
    let mut escaped = false;
    let mut high = false;
    loop {
        i = special(b, i, &mut high);
        match *b.get(i)? {
            b'"' => {
                if high && std::str::from_utf8(&b[start..i]).is_err() {
                    return None;
                }
                return Some((i, escaped));
            }
            b'\\' => {
                escaped = true;
                match *b.get(i + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                    b'u' => {
                        let hex = b.get(i + 2..i + 6)?;
                        if !hex.iter().all(u8::is_ascii_hexdigit) {
                            return None;
                        }
                        i += 6;
                    }
                    _ => return None,
                }
            }
            _ => return None, // a control character
        }
    }
}

/// The first index from `i` holding `"`, `\` or a control character (below 0x20), or `b.len()`;
/// sets `high` when a byte above 0x7f may lie before it.
#[inline]
pub(super) fn special(b: &[u8], mut i: usize, high: &mut bool) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of the x86_64 baseline; every load reads 16 bytes inside `b`
        // (`i + 16 <= b.len()`), unaligned loads allowed.
        unsafe {
            let quote = _mm_set1_epi8(b'"' as i8);
            let backslash = _mm_set1_epi8(b'\\' as i8);
            let control = _mm_set1_epi8(0x1f);
            while i + 16 <= b.len() {
                let v = _mm_loadu_si128(b.as_ptr().add(i) as *const __m128i);
                // A byte is a control character when max(byte, 0x1f) is 0x1f (unsigned).
                let hit = _mm_or_si128(
                    _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                    _mm_cmpeq_epi8(_mm_max_epu8(v, control), control),
                );
                let mask = _mm_movemask_epi8(hit);
                *high |= _mm_movemask_epi8(v) != 0;
                if mask != 0 {
                    return i + mask.trailing_zeros() as usize;
                }
                i += 16;
            }
        }
    }
    while let Some(&c) = b.get(i) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            return i;
        }
        *high |= c > 0x7f;
        i += 1;
    }
    i
}

/// RFC 3339 in its usual shape, `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, to UTC milliseconds
/// (the fraction truncated, as chrono does). `None` for any other shape, a leap second or a date
/// that does not exist: chrono decides those.
pub(super) fn rfc3339_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        b[r].iter()
            .try_fold(0i64, |n, &c| c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0')))
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b[i] == b'.' {
        let start = i + 1;
        i = digits(b, start);
        let n = i - start;
        if n == 0 || n > 9 {
            return None;
        }
        for k in 0..3 {
            millis = millis * 10 + b.get(start + k).filter(|_| k < n).map_or(0, |c| i64::from(c - b'0'));
        }
    }
    let offset_s = match &b[i..] {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let two = |a: u8, c: u8| {
                (a.is_ascii_digit() && c.is_ascii_digit()).then(|| i64::from((a - b'0') * 10 + (c - b'0')))
            };
            let (oh, om) = (two(*h1, *h2)?, two(*m1, *m2)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let s = oh * 3600 + om * 60;
            if *sign == b'-' {
                -s
            } else {
                s
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_s;
    Some(secs * 1000 + millis)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_plain_envelope() {
        let text = r#"{"version":"0","id":"e1","detail-type":"T","source":"s","account":"1","time":"2024-05-01T12:00:00Z","region":"r","resources":["a","b"],"detail":{"x":[1,2.5e3,{"y":null}],"z":"\"q\""},"extra":[true,false]}"#;
        let mut res = Vec::new();
        let f = envelope(text.as_bytes(), &mut res).unwrap();
        assert_eq!((f.id, f.source, f.detail_type), (Some("e1"), Some("s"), Some("T")));
        assert_eq!(f.detail, Some(r#"{"x":[1,2.5e3,{"y":null}],"z":"\"q\""}"#));
        let items: Vec<&str> = res.iter().map(|r| &text[r.clone()]).collect();
        assert_eq!(items, ["a", "b"]);
        assert!(!f.detail_multiline);
        let pretty = "{\"source\":\"s\",\n \"detail-type\":\"t\",\n \"detail\": {\n  \"a\": 1\n }\n}";
        let f = envelope(pretty.as_bytes(), &mut res).unwrap();
        assert!(f.detail_multiline);
    }

    #[test]
    fn leaves_the_unusual_to_serde() {
        let mut res = Vec::new();
        for text in [
            r#"{"id":"a\"b","source":"s","detail-type":"t","detail":{}}"#, // an escaped value
            r#"{"id":5,"source":"s","detail-type":"t","detail":{}}"#,      // a numeric id
            r#"{"source":"s","source":"s","detail-type":"t","detail":{}}"#, // a duplicate
            r#"{"source":"s","detail-type":"t","detail":{"a":01}}"#,       // a leading zero
            r#"{"source":"s","detail-type":"t","detail":{"a":1.}}"#,
            r#"{"source":"s","detail-type":"t","detail":{"a":"x	y"}}"#, // a raw tab
            r#"{"source":"s","detail-type":"t","detail":{"a":"\x"}}"#,
            r#"{"source":"s","detail-type":"t","detail":{"a":"\u12"}}"#,
            r#"{"source":"s","detail-type":"t","detail":{"a":1,}}"#,
            r#"{"source":"s","detail-type":"t","detail":{}} x"#,
            r#"{"source":"s","detail-type":"t","detail":"{}"}"#,
            r#"{"source":"s","detail-type":"t","detail":{},"time":null}"#,
            r#"{"source":"s","detail-type":"t","detail":{"a":tru}}"#,
            r#"{"source":"s","detail-type":"t","detail":{"a":[1 2]}}"#,
            r#"{"source":"s""#,
        ] {
            assert!(envelope(text.as_bytes(), &mut res).is_none(), "{text}");
        }
        // Not UTF-8: a lone continuation byte, a truncated sequence, a byte outside strings.
        for bad in [
            &b"{\"source\":\"s\x80\",\"detail-type\":\"t\",\"detail\":{}}"[..],
            b"{\"source\":\"s\",\"detail-type\":\"t\",\"detail\":{\"a\":\"0123456789abcdef\xe2\x82\"}}",
            b"{\"source\":\"s\",\"detail-type\":\"t\",\"detail\":{\"a\":1}\xc3\xa9}",
        ] {
            assert!(envelope(bad, &mut res).is_none());
        }
        let ok = "{\"source\":\"s\",\"detail-type\":\"Köln €\",\"detail\":{\"a\":\"0123456789abcdef𝄞\"}}";
        assert_eq!(envelope(ok.as_bytes(), &mut res).unwrap().detail_type, Some("Köln €"));
    }

    #[test]
    fn strings_of_every_length_end_at_their_quote() {
        for n in 0..70 {
            let body = "é".repeat(n) + &"a\\\"".repeat(n % 3);
            let text = format!("\"{body}\" tail");
            let (end, escaped) = string_end(text.as_bytes(), 1).unwrap();
            assert_eq!(end, body.len() + 1);
            assert_eq!(escaped, n % 3 > 0);
            let with_control = format!("\"{}\u{1}\"", "a".repeat(n));
            assert!(string_end(with_control.as_bytes(), 1).is_none());
        }
    }

    #[test]
    fn rfc3339_agrees_with_chrono() {
        for s in [
            "2024-05-01T12:00:00Z",
            "2024-05-01T12:00:00.250+02:00",
            "2024-02-29T23:59:59.999999999-11:30",
            "1969-12-31T23:59:59.5Z",
            "1900-03-01T00:00:00Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.1Z",
            "2026-01-01T12:55:36.114+02:00",
        ] {
            let chrono = chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis();
            assert_eq!(rfc3339_ms(s), Some(chrono), "{s}");
        }
        for s in [
            "2023-02-29T00:00:00Z",
            "2024-05-01T24:00:00Z",
            "2024-05-01T12:00:60Z",
            "2024-05-01 12:00:00Z",
            "2024-05-01T12:00:00",
            "2024-05-01T12:00:00.Z",
            "2024-05-01T12:00:00+0200",
            "2024-13-01T12:00:00Z",
        ] {
            assert_eq!(rfc3339_ms(s), None, "{s}");
        }
    }
}
