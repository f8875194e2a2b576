//! Level of consciousness on the ACVPU scale used by NEWS2.
//!
//! Devices and charting systems send it as a letter or a word in any case
//! (`"A"`, `"alert"`, `"New confusion"`, `"voice"`, ...). vigil stores the letter and
//! scores from it. Text that is none of these is *invalid*, never taken as Alert.

/// A level of consciousness: Alert, new Confusion, responds to Voice, responds to Pain,
/// Unresponsive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Acvpu {
    /// Alert.
    Alert = 0,
    /// New confusion (or new disorientation / agitation).
    Confusion = 1,
    /// Responds to voice.
    Voice = 2,
    /// Responds to pain.
    Pain = 3,
    /// Unresponsive.
    Unresponsive = 4,
}

/// Code used in byte-level lookups for text that is not an ACVPU level.
pub const INVALID_CODE: u8 = u8::MAX;

/// Maps a single byte to its level code, for the one-letter fast path.
const LETTER_CODES: [u8; 256] = {
    let mut t = [INVALID_CODE; 256];
    t[b'A' as usize] = Acvpu::Alert as u8;
    t[b'a' as usize] = Acvpu::Alert as u8;
    t[b'C' as usize] = Acvpu::Confusion as u8;
    t[b'c' as usize] = Acvpu::Confusion as u8;
    t[b'V' as usize] = Acvpu::Voice as u8;
    t[b'v' as usize] = Acvpu::Voice as u8;
    t[b'P' as usize] = Acvpu::Pain as u8;
    t[b'p' as usize] = Acvpu::Pain as u8;
    t[b'U' as usize] = Acvpu::Unresponsive as u8;
    t[b'u' as usize] = Acvpu::Unresponsive as u8;
    t
};

/// Words accepted for each level (compared case-insensitively, surrounding spaces
/// ignored).
const WORDS: [(&str, Acvpu); 12] = [
    ("alert", Acvpu::Alert),
    ("confusion", Acvpu::Confusion),
    ("confused", Acvpu::Confusion),
    ("new confusion", Acvpu::Confusion),
    ("voice", Acvpu::Voice),
    ("responds to voice", Acvpu::Voice),
    ("pain", Acvpu::Pain),
    ("responds to pain", Acvpu::Pain),
    ("unresponsive", Acvpu::Unresponsive),
    ("responds to voice only", Acvpu::Voice),
    ("responds to pain only", Acvpu::Pain),
    ("unconscious", Acvpu::Unresponsive),
];

impl Acvpu {
    /// Every level, from Alert to Unresponsive.
    pub const ALL: [Acvpu; 5] = [
        Acvpu::Alert,
        Acvpu::Confusion,
        Acvpu::Voice,
        Acvpu::Pain,
        Acvpu::Unresponsive,
    ];

    /// Parses a letter or word, case-insensitively; `None` for anything else.
    pub fn parse(text: &str) -> Option<Acvpu> {
        Self::from_code(Self::code_of(text.as_bytes()))
    }

    /// The level's canonical one-letter form, as stored in the vitals schema.
    pub const fn letter(self) -> &'static str {
        match self {
            Acvpu::Alert => "A",
            Acvpu::Confusion => "C",
            Acvpu::Voice => "V",
            Acvpu::Pain => "P",
            Acvpu::Unresponsive => "U",
        }
    }

    /// The level for a code from [`Acvpu::code_of`]; `None` for [`INVALID_CODE`].
    pub const fn from_code(code: u8) -> Option<Acvpu> {
        match code {
            0 => Some(Acvpu::Alert),
            1 => Some(Acvpu::Confusion),
            2 => Some(Acvpu::Voice),
            3 => Some(Acvpu::Pain),
            4 => Some(Acvpu::Unresponsive),
            _ => None,
        }
    }

    /// The level code (`Acvpu as u8`) of raw UTF-8 text, or [`INVALID_CODE`].
    ///
    /// Allocation-free and fast for the common one-letter case, so that scoring kernels
    /// can call it for every row.
    #[inline]
    pub fn code_of(text: &[u8]) -> u8 {
        if let [b] = text {
            return LETTER_CODES[*b as usize];
        }
        Self::word_code(text)
    }

    #[cold]
    fn word_code(text: &[u8]) -> u8 {
        let text = text.trim_ascii();
        if let [b] = text {
            return LETTER_CODES[*b as usize];
        }
        WORDS
            .iter()
            .find(|(w, _)| w.as_bytes().eq_ignore_ascii_case(text))
            .map_or(INVALID_CODE, |(_, level)| *level as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_and_words_in_any_case() {
        for (text, want) in [
            ("A", Acvpu::Alert),
            ("a", Acvpu::Alert),
            ("Alert", Acvpu::Alert),
            ("ALERT", Acvpu::Alert),
            (" alert ", Acvpu::Alert),
            ("c", Acvpu::Confusion),
            ("New Confusion", Acvpu::Confusion),
            ("confused", Acvpu::Confusion),
            ("V", Acvpu::Voice),
            ("voice", Acvpu::Voice),
            ("p", Acvpu::Pain),
            ("Pain", Acvpu::Pain),
            ("U", Acvpu::Unresponsive),
            ("unresponsive", Acvpu::Unresponsive),
        ] {
            assert_eq!(Acvpu::parse(text), Some(want), "{text:?}");
        }
    }

    #[test]
    fn anything_else_is_invalid_never_alert() {
        for text in ["", " ", "X", "al", "alerted", "asleep", "0", "AA", "é"] {
            assert_eq!(Acvpu::parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn letters_round_trip() {
        for level in Acvpu::ALL {
            assert_eq!(Acvpu::parse(level.letter()), Some(level));
            assert_eq!(Acvpu::from_code(level as u8), Some(level));
        }
        assert_eq!(Acvpu::from_code(INVALID_CODE), None);
    }
}
