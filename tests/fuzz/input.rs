//! Turning fuzz bytes into choices, strings and mutated seeds.
//!
//! Every target takes plain bytes, so libFuzzer (through `cargo bolero`),
//! bolero's random inputs on stable and the regression files all drive the
//! same function. Reads past the end return zeros, so any input is usable.

/// A cursor over fuzz bytes.
pub(crate) struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub(crate) fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    pub(crate) fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    pub(crate) fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    pub(crate) fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }

    pub(crate) fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// A number in `0..n` (`n` > 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        usize::from(self.u16()) % n
    }

    pub(crate) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// Up to `max` bytes, length first.
    pub(crate) fn bytes(&mut self, max: usize) -> &'a [u8] {
        let n = self.below(max + 1).min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }

    /// Everything left.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }

    /// Up to `max` characters drawn mostly from ASCII, with the Unicode that
    /// trips up case mapping, trimming and length checks mixed in.
    pub(crate) fn text(&mut self, max: usize) -> String {
        let n = self.below(max + 1);
        (0..n).map(|_| if self.is_empty() { 'a' } else { char_of(self.u8()) }).collect()
    }
}

/// Characters whose case mapping changes their length or turns them into
/// ASCII, Unicode white space, controls and separators.
const TRICKY: &[char] = &[
    '\u{0}',
    '\u{7f}',
    '\u{a0}',
    '\u{85}',
    '\u{1680}',
    '\u{2028}',
    '\u{3000}',
    '\u{feff}',
    '\u{200b}',
    'İ',
    'ı',
    'ſ',
    'ß',
    'ﬀ',
    'ŉ',
    'K',
    'Å',
    'ǅ',
    'ẞ',
    'Σ',
    'ς',
    '１',
    '０',
    '＋',
    '＠',
    '．',
    '٣',
    'é',
    'ê',
    '\u{301}',
    '🙂',
    '\u{10ffff}',
];

/// Bytes below 0x80 are themselves; the rest pick a tricky character.
pub(crate) fn char_of(b: u8) -> char {
    if b < 0x80 {
        char::from(b)
    } else {
        TRICKY[usize::from(b - 0x80) % TRICKY.len()]
    }
}

/// Applies up to 16 edits read from `input` to `seed`: byte overwrites,
/// inserts, deletions, bit flips, copies within the text, dictionary tokens
/// and, for text, replacing the value of a `key = value` line. Starting from
/// valid documents keeps most inputs past the parser, where the rules are.
pub(crate) fn mutate(seed: &[u8], input: &mut Input<'_>, dict: &[&str]) -> Vec<u8> {
    let mut out = seed.to_vec();
    let edits = input.u8() % 17;
    for _ in 0..edits {
        if input.is_empty() {
            // Zeros from here on would only pile edits at the start.
            break;
        }
        let op = input.u8() % 8;
        let at = (input.u32() as usize) % (out.len() + 1);
        match op {
            0 if at < out.len() => out[at] = input.u8(),
            1 => out.insert(at, input.u8()),
            2 => {
                let end = at.saturating_add(usize::from(input.u8())).min(out.len());
                out.drain(at..end);
            }
            3 if at < out.len() => out[at] ^= 1 << (input.u8() % 8),
            4 => {
                let from = (input.u32() as usize) % (out.len() + 1);
                let end = from.saturating_add(usize::from(input.u8())).min(out.len());
                let chunk = out[from..end].to_vec();
                out.splice(at..at, chunk);
            }
            5 if !dict.is_empty() => {
                let tok = input.pick(dict);
                out.splice(at..at, tok.bytes());
            }
            6 if !dict.is_empty() => replace_value(&mut out, at, input.pick(dict)),
            _ => {}
        }
    }
    out
}

/// Replaces what follows `= ` on the first such line at or after byte `at`.
fn replace_value(text: &mut Vec<u8>, at: usize, token: &str) {
    let Some(eq) = text[at..].windows(3).position(|w| w == b" = ").map(|p| at + p + 3) else { return };
    let end = text[eq..].iter().position(|b| *b == b'\n').map_or(text.len(), |p| eq + p);
    text.splice(eq..end, token.bytes());
}
