//! The check of string text between quotes and escapes: no byte below 0x20 (which JSON strings
//! may not hold unescaped) and nothing that is not UTF-8.
//!
//! Each block's lowest byte and the union of its bits are found by reductions the compiler
//! vectorizes; a control character is looked for byte by byte only in a block that has one, and
//! the text is validated as UTF-8 only when some byte has its high bit set. A span the scan hands
//! over ends at an ASCII byte (`"` or `\`) or where the bytes so far end, so only that last kind
//! of span can stop inside a character, and then only because the rest has not arrived yet.

/// What is wrong with a span of text, and where: the offset of the first fault.
pub(super) type Fault = (usize, &'static str);

const CONTROL: &str = "a control character in a string";
const NOT_UTF8: &str = "text that is not UTF-8";

/// Checks `text` and returns how much of it is known good: all of it, or, when `complete` is
/// false, all but a character cut off at its end (to be checked again with the bytes that finish
/// it). The fault reported is the first in the text, whichever kind it is, so a span checked in
/// two parts fails at the same offset as checked whole.
pub(super) fn checked(text: &[u8], complete: bool) -> Result<usize, Fault> {
    const BLOCK: usize = 256;
    let text = match complete {
        true => text,
        false => &text[..whole_characters(text)],
    };
    let mut bits = 0u8;
    let mut control = None;
    for (index, block) in text.chunks(BLOCK).enumerate() {
        let (low, or) = block
            .iter()
            .fold((u8::MAX, 0u8), |(low, or), &b| (low.min(b), or | b));
        bits |= or;
        if low < 0x20 {
            control = block
                .iter()
                .position(|&b| b < 0x20)
                .map(|i| index * BLOCK + i);
            break;
        }
    }
    let before = control.map_or(text, |at| &text[..at]);
    if bits >= 0x80 && simdutf8::basic::from_utf8(before).is_err() {
        if let Err(e) = simdutf8::compat::from_utf8(before) {
            return Err((e.valid_up_to(), NOT_UTF8));
        }
    }
    match control {
        Some(at) => Err((at, CONTROL)),
        None => Ok(text.len()),
    }
}

/// How much of `text` is left once a character its last bytes begin but do not finish is cut
/// off. Only the last four bytes are looked at: a byte that cannot start a character, or four
/// continuation bytes, is left in, for the check to find. Once per piece of a body, at most.
#[cold]
fn whole_characters(text: &[u8]) -> usize {
    let len = text.len();
    for back in 1..=len.min(4) {
        let byte = text[len - back];
        if byte & 0xc0 == 0x80 {
            continue;
        }
        let needs = match byte {
            0xc0..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf7 => 4,
            _ => 1,
        };
        return if needs > back { len - back } else { len };
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_and_bytes_that_are_not_utf8_are_found_in_any_block() {
        let control = |at| Err((at, CONTROL));
        let not_utf8 = |at| Err((at, NOT_UTF8));
        let mut text = vec![b'a'; 600];
        assert_eq!(checked(&text, true), Ok(600));
        for at in [0, 63, 255, 256, 257, 599] {
            text[at] = b'\n';
            assert_eq!(checked(&text, true), control(at));
            text[at] = b'a';
        }
        // Characters of two, three and four bytes, across a block's end too.
        let mut text = "é😀委".repeat(60).into_bytes();
        assert_eq!(checked(&text, true), Ok(text.len()));
        for at in [0, 255, 256, 400] {
            let kept = text[at];
            text[at] = 0xff;
            let first_bad = std::str::from_utf8(&text).unwrap_err().valid_up_to();
            assert!(first_bad <= at && at - first_bad < 4, "{at} {first_bad}");
            assert_eq!(checked(&text, true), not_utf8(first_bad));
            text[at] = kept;
        }
        // A surrogate encoded as UTF-8 (CESU) is not UTF-8.
        assert_eq!(checked(b"ab\xed\xa0\x80", true), not_utf8(2));
    }

    #[test]
    fn the_first_fault_is_reported_whichever_kind() {
        assert_eq!(checked(b"a\xffb\n", true), Err((1, NOT_UTF8)));
        assert_eq!(checked(b"a\nb\xff", true), Err((1, CONTROL)));
        // A character cut off by a control character is a fault, not an unfinished character.
        assert_eq!(checked(b"ab\xe5\x86\n", false), Err((2, NOT_UTF8)));
    }

    #[test]
    fn a_character_cut_off_at_the_end_waits_for_the_rest_unless_the_text_is_complete() {
        let whole = "aé😀";
        let text = whole.as_bytes();
        for cut in 1..text.len() {
            let boundary = (0..=cut)
                .rev()
                .find(|&i| whole.is_char_boundary(i))
                .unwrap();
            assert_eq!(checked(&text[..cut], false), Ok(boundary), "{cut}");
            if boundary < cut {
                assert_eq!(checked(&text[..cut], true), Err((boundary, NOT_UTF8)));
            }
        }
        // A byte that can never start a character is a fault at once.
        assert_eq!(checked(b"ab\xff", false), Err((2, NOT_UTF8)));
    }
}
