//! Cutting a top-level JSON array into its elements, 64 bytes at a time.
//!
//! The reader thread cuts a JSON-array store into elements before the decode threads parse
//! them, so this loop bounds the whole job. Each 64-byte block is classified into bit masks
//! (quotes, backslashes, brackets, commas, line breaks); the escaped bytes and the bytes inside
//! strings are then found with a few integer operations, the method of simdjson's first stage
//! (Langdale and Lemire, "Parsing Gigabytes of JSON per Second", 2019), and only the brackets
//! and commas outside strings are visited, one at a time.
//!
//! The cut is the same as the byte-at-a-time scanner's ([`ArraySplitter::scalar`]), on any input:
//! a backslash outside a string (invalid JSON) escapes nothing there, which the block method
//! cannot express, so a block holding one is cut byte by byte instead.

/// Where the splitter is between two bytes; carried from one buffer to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ArraySplitter {
    in_elem: bool,
    in_str: bool,
    /// The next byte is escaped (the last one was an escaping backslash in a string).
    escaped: bool,
    /// Brackets open in the current element.
    depth: u32,
    /// The line of the next byte, from 1.
    line: u64,
}

/// What the splitter reports, by index in the buffer given to [`ArraySplitter::split`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Piece {
    /// An element begins at this byte, on this line.
    Start { at: usize, line: u64 },
    /// The element ends before this byte (the comma or the array's closing bracket).
    End { at: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Every byte of the buffer was taken; the next buffer goes on from here.
    Consumed,
    /// The array closed; its bytes end before this index.
    Closed(usize),
    /// The callback asked to stop.
    Stopped,
}

const BLOCK: usize = 64;

/// One bit per byte of a block, bit `i` for byte `i`.
#[derive(Default, Clone, Copy)]
struct Masks {
    quote: u64,
    backslash: u64,
    newline: u64,
    /// `{` and `[`.
    open: u64,
    /// `}` and `]`.
    close: u64,
    comma: u64,
}

impl ArraySplitter {
    /// A splitter just past the array's opening bracket, on `line`.
    pub(super) fn new(line: u64) -> Self {
        Self {
            in_elem: false,
            in_str: false,
            escaped: false,
            depth: 0,
            line,
        }
    }

    /// The line of the next byte.
    pub(super) fn line(&self) -> u64 {
        self.line
    }

    /// True between an element's first byte and its end.
    pub(super) fn in_element(&self) -> bool {
        self.in_elem
    }

    /// Cuts `buf`, the input's next bytes, calling `f` at each element's start and end;
    /// `f` returns false to stop.
    pub(super) fn split(&mut self, buf: &[u8], f: &mut impl FnMut(Piece) -> bool) -> Outcome {
        let mut base = 0;
        while base < buf.len() {
            let len = (buf.len() - base).min(BLOCK);
            let padded;
            let block: &[u8; BLOCK] = match buf[base..].first_chunk() {
                Some(b) => b,
                None => {
                    // The last bytes, padded with spaces: white space changes nothing.
                    let mut b = [b' '; BLOCK];
                    b[..len].copy_from_slice(&buf[base..]);
                    padded = b;
                    &padded
                }
            };
            if let Some(outcome) = self.block(block, len, base, buf, f) {
                return outcome;
            }
            base += BLOCK;
        }
        Outcome::Consumed
    }

    /// Bytes `base..base + len` of `buf`, which `block` holds (padded to 64 bytes).
    #[inline]
    fn block(
        &mut self,
        block: &[u8; BLOCK],
        len: usize,
        base: usize,
        buf: &[u8],
        f: &mut impl FnMut(Piece) -> bool,
    ) -> Option<Outcome> {
        let m = classify(block);
        let (escaped, escape_out) = escapes(m.backslash, self.escaped);
        let in_string = prefix_xor(m.quote & !escaped) ^ if self.in_str { !0 } else { 0 };
        if m.backslash & !in_string != 0 {
            return self.scalar(&buf[..base + len], base, f);
        }
        let brackets = (m.open | m.close) & !in_string;
        let structural = brackets | (m.comma & !in_string);
        let mut pos = 0;
        while pos < len {
            if !self.in_elem {
                // White space and commas between elements.
                while pos < len && matches!(block[pos], b' ' | b'\t' | b'\r' | b'\n' | b',') {
                    pos += 1;
                }
                if pos == len {
                    break;
                }
                if block[pos] == b']' {
                    return Some(self.close(&m, pos, base + pos + 1));
                }
                self.in_elem = true;
                self.depth = 0;
                let line = self.line + u64::from((m.newline & below(pos)).count_ones());
                if !f(Piece::Start { at: base + pos, line }) {
                    return Some(Outcome::Stopped);
                }
                // This byte is the element's first: it is looked at again below.
            }
            // Inside an object or array only brackets matter; a comma or closing bracket ends
            // the element only outside them.
            let next = if self.depth == 0 { structural } else { brackets } & !below(pos);
            if next == 0 {
                break;
            }
            let at = next.trailing_zeros() as usize;
            if at >= len {
                break;
            }
            pos = at + 1;
            match block[at] {
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' if self.depth > 0 => self.depth -= 1,
                c @ (b',' | b']') => {
                    self.in_elem = false;
                    if !f(Piece::End { at: base + at }) {
                        return Some(Outcome::Stopped);
                    }
                    if c == b']' {
                        return Some(self.close(&m, at, base + pos));
                    }
                }
                _ => {} // `}` outside any object: part of a bad element
            }
        }
        self.line += u64::from(m.newline.count_ones());
        self.in_str = in_string >> 63 != 0;
        // Padding bytes are spaces: an escape at the end of a short block lands on the first of
        // them, and is carried from there.
        self.escaped = if len == BLOCK {
            escape_out
        } else {
            escaped >> len & 1 != 0
        };
        None
    }

    /// The array closes at bit `at` of the block, which is byte `end - 1` of the buffer.
    fn close(&mut self, m: &Masks, at: usize, end: usize) -> Outcome {
        self.line += u64::from((m.newline & below(at)).count_ones());
        // Outside any string, as the byte-at-a-time cut leaves it.
        self.in_str = false;
        self.escaped = false;
        Outcome::Closed(end)
    }

    /// The byte-at-a-time cut of `buf[from..]`: the reference the block method matches, and
    /// the cut of a block it cannot express. `None` when every byte was taken.
    fn scalar(&mut self, buf: &[u8], from: usize, f: &mut impl FnMut(Piece) -> bool) -> Option<Outcome> {
        let n = buf.len();
        let mut i = from;
        while i < n {
            let c = buf[i];
            if !self.in_elem {
                match c {
                    b'\n' => self.line += 1,
                    b' ' | b'\t' | b'\r' | b',' => {}
                    b']' => return Some(Outcome::Closed(i + 1)),
                    _ => {
                        self.in_elem = true;
                        self.depth = 0;
                        if !f(Piece::Start { at: i, line: self.line }) {
                            return Some(Outcome::Stopped);
                        }
                        continue; // this byte again, as the element's first
                    }
                }
                i += 1;
                continue;
            }
            if self.in_str {
                if self.escaped {
                    self.escaped = false;
                    self.line += u64::from(c == b'\n');
                    i += 1;
                    continue;
                }
                // Most of a record is strings: skip to the next byte that matters in one.
                i = crate::event::string_special(buf, i);
                if i == n {
                    break;
                }
                match buf[i] {
                    b'\\' => self.escaped = true,
                    b'"' => self.in_str = false,
                    b'\n' => self.line += 1,
                    _ => {}
                }
                i += 1;
                continue;
            }
            match c {
                b'"' => self.in_str = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' if self.depth > 0 => self.depth -= 1,
                b'\n' => self.line += 1,
                b',' | b']' if self.depth == 0 => {
                    self.in_elem = false;
                    if !f(Piece::End { at: i }) {
                        return Some(Outcome::Stopped);
                    }
                    if c == b']' {
                        return Some(Outcome::Closed(i + 1));
                    }
                }
                _ => {}
            }
            i += 1;
        }
        None
    }
}

/// The bits below bit `pos` (`pos < 64`).
#[inline]
fn below(pos: usize) -> u64 {
    (1u64 << pos) - 1
}

/// Bit `i` set when an odd number of the bits `0..=i` are set: with the unescaped quotes, the
/// bytes from an opening quote up to (not including) its closing quote.
#[inline]
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

/// The escaped bytes of a block (those after an odd run of backslashes), given its backslashes
/// and whether its first byte is escaped; and whether the next block's first byte is.
/// simdjson's `json_escape_scanner`: subtracting each run's start from the odd bits turns the run
/// into alternating bits whose phase tells odd runs from even ones.
#[inline]
fn escapes(backslash: u64, first_escaped: bool) -> (u64, bool) {
    const ODD_BITS: u64 = 0xAAAA_AAAA_AAAA_AAAA;
    let first = u64::from(first_escaped);
    if backslash == 0 {
        return (first, false);
    }
    let potential = backslash & !first;
    let maybe_escaped = potential << 1;
    let code = ((maybe_escaped | ODD_BITS).wrapping_sub(potential)) ^ ODD_BITS;
    let escaped = code ^ (backslash | first);
    let escape = code & backslash;
    (escaped, escape >> 63 != 0)
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn classify(b: &[u8; BLOCK]) -> Masks {
    use std::arch::x86_64::*;
    let mut m = Masks::default();
    // SAFETY: SSE2 is part of the x86_64 baseline; each load reads 16 of the block's 64 bytes.
    unsafe {
        let eq = |v: __m128i, c: u8| _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(c as i8))) as u16 as u64;
        for lane in 0..4 {
            let v = _mm_loadu_si128(b.as_ptr().add(16 * lane) as *const __m128i);
            // `{` and `[` differ only in bit 5, as do `}` and `]`.
            let folded = _mm_or_si128(v, _mm_set1_epi8(0x20));
            let shift = 16 * lane;
            m.quote |= eq(v, b'"') << shift;
            m.backslash |= eq(v, b'\\') << shift;
            m.newline |= eq(v, b'\n') << shift;
            m.comma |= eq(v, b',') << shift;
            m.open |= eq(folded, b'{') << shift;
            m.close |= eq(folded, b'}') << shift;
        }
    }
    m
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn classify(b: &[u8; BLOCK]) -> Masks {
    let mut m = Masks::default();
    for (i, &c) in b.iter().enumerate() {
        let bit = 1u64 << i;
        match c {
            b'"' => m.quote |= bit,
            b'\\' => m.backslash |= bit,
            b'\n' => m.newline |= bit,
            b',' => m.comma |= bit,
            b'{' | b'[' => m.open |= bit,
            b'}' | b']' => m.close |= bit,
            _ => {}
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Rng;

    #[derive(Debug, PartialEq)]
    struct Cut {
        pieces: Vec<Piece>,
        outcome: Outcome,
        state: ArraySplitter,
    }

    /// Cuts `input` given in pieces of the sizes `sizes` yields, with the block method or the
    /// byte-at-a-time one; positions are made absolute.
    fn cut(input: &[u8], mut sizes: impl FnMut() -> usize, blocks: bool) -> Cut {
        let mut s = ArraySplitter::new(1);
        let mut pieces = Vec::new();
        let mut offset = 0;
        while offset < input.len() {
            let end = (offset + sizes().max(1)).min(input.len());
            let buf = &input[offset..end];
            let mut f = |p: Piece| {
                pieces.push(match p {
                    Piece::Start { at, line } => Piece::Start { at: at + offset, line },
                    Piece::End { at } => Piece::End { at: at + offset },
                });
                true
            };
            let outcome = if blocks {
                s.split(buf, &mut f)
            } else {
                s.scalar(buf, 0, &mut f).unwrap_or(Outcome::Consumed)
            };
            match outcome {
                Outcome::Consumed => offset = end,
                Outcome::Closed(at) => {
                    return Cut {
                        pieces,
                        outcome: Outcome::Closed(at + offset),
                        state: s,
                    }
                }
                Outcome::Stopped => unreachable!(),
            }
        }
        Cut {
            pieces,
            outcome: Outcome::Consumed,
            state: s,
        }
    }

    fn whole(input: &[u8]) -> Cut {
        cut(input, || usize::MAX / 2, false)
    }

    /// Bytes that matter to the cut, and some that do not.
    const ALPHABET: &[u8] = b"{}[],\"\\ \n\ta:\r\x01\xc3";

    #[test]
    fn random_bytes_cut_as_the_scalar_scanner_cuts_them() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..20_000 {
            let len = rng.below(300);
            let input: Vec<u8> = (0..len).map(|_| ALPHABET[rng.below(ALPHABET.len())]).collect();
            let expected = whole(&input);
            let step = 1 + rng.below(140);
            assert_eq!(
                cut(&input, || step, true),
                expected,
                "round {round}: {:?}",
                String::from_utf8_lossy(&input)
            );
            let mut r2 = Rng(rng.next() | 1);
            assert_eq!(cut(&input, || 1 + r2.below(100), true), expected, "round {round}");
            assert_eq!(cut(&input, || step, false), expected, "round {round}: scalar in pieces");
        }
    }

    /// Input shaped like JSON: backslashes only inside strings, in runs of every length, so that
    /// the block method (not its byte-at-a-time fallback) does the cut.
    fn jsonish(rng: &mut Rng, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        let mut in_str = false;
        while out.len() < len {
            if in_str {
                match rng.below(8) {
                    0 => {
                        let run = 1 + rng.below(6);
                        out.extend(std::iter::repeat_n(b'\\', run));
                        if run % 2 == 1 {
                            out.push(b"\"\\n{],"[rng.below(6)]);
                        }
                    }
                    1 => {
                        out.push(b'"');
                        in_str = false;
                    }
                    _ => out.push(b"ab{}[],: \n"[rng.below(10)]),
                }
            } else {
                match rng.below(6) {
                    0 => {
                        out.push(b'"');
                        in_str = true;
                    }
                    _ => out.push(b"{}[],: \n1"[rng.below(9)]),
                }
            }
        }
        out
    }

    #[test]
    fn json_shaped_bytes_cut_as_the_scalar_scanner_cuts_them() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        for round in 0..20_000 {
            let len = rng.below(400);
            let input = jsonish(&mut rng, len);
            let expected = whole(&input);
            let step = 1 + rng.below(200);
            assert_eq!(
                cut(&input, || step, true),
                expected,
                "round {round}: {:?}",
                String::from_utf8_lossy(&input)
            );
        }
    }

    #[test]
    fn a_json_array_is_cut_into_its_elements() {
        let mut rng = Rng(7);
        let tricky = [
            "",
            "\"",
            "\\",
            "\\\"",
            "a, ] } [ {",
            "line\nbreak",
            "é ✓ 😀",
            "\u{1}\u{1f}",
            "\\\\\\",
        ];
        let values: Vec<serde_json::Value> = (0..300)
            .map(|i| {
                let s = |rng: &mut Rng| {
                    (0..rng.below(5))
                        .map(|_| tricky[rng.below(tricky.len())])
                        .collect::<String>()
                };
                match i % 7 {
                    0 => serde_json::json!(s(&mut rng)),
                    1 => serde_json::json!(i),
                    2 => serde_json::json!([s(&mut rng), [s(&mut rng)], {}]),
                    _ => serde_json::json!({
                        "id": s(&mut rng),
                        "detail": {"text": s(&mut rng), "list": [1, {"k": s(&mut rng)}], "n": null},
                        "resources": [s(&mut rng)],
                    }),
                }
            })
            .collect();
        for pretty in [false, true] {
            let text = if pretty {
                serde_json::to_string_pretty(&values).unwrap()
            } else {
                serde_json::to_string(&values).unwrap()
            };
            let input = &text.as_bytes()[1..]; // the splitter starts past the opening bracket
            for step in [1, 7, 63, 64, 65, 1000, 1 << 20] {
                let c = cut(input, || step, true);
                assert_eq!(c.outcome, Outcome::Closed(input.len()), "pretty {pretty} step {step}");
                let elements: Vec<serde_json::Value> = c
                    .pieces
                    .chunks(2)
                    .map(|pair| match pair {
                        [Piece::Start { at: s, line }, Piece::End { at: e }] => {
                            // Each element starts on the line its bytes say.
                            let lines = 1 + input[..*s].iter().filter(|&&b| b == b'\n').count() as u64;
                            assert_eq!(*line, lines);
                            serde_json::from_slice(&input[*s..*e]).unwrap()
                        }
                        other => panic!("unpaired pieces {other:?}"),
                    })
                    .collect();
                assert_eq!(elements, values, "pretty {pretty} step {step}");
            }
        }
    }

    #[test]
    fn escapes_follow_odd_runs_of_backslashes() {
        // `\\\"` : three backslashes, then an escaped quote.
        let bs = 0b0111;
        assert_eq!(escapes(bs, false), (0b1010, false));
        // A run that ends the block carries its escape into the next one.
        assert_eq!(escapes(1 << 63, false), (0, true));
        assert!(!escapes(0b11 << 62, false).1);
        // An escaped first byte is not an escape itself.
        assert_eq!(escapes(0b1, true), (0b1, false));
        assert_eq!(escapes(0b11, true), (0b101, false));
    }
}
