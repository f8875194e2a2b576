//! Packing per-row yes/no lanes into Arrow bitmaps.
//!
//! Kernels compute a 0-or-1 byte per row with lane-wise compares; this turns eight of
//! them into eight bits with one multiply, instead of a shift and an OR per row (which
//! the compiler cannot vectorise).

use arrow::buffer::{BooleanBuffer, Buffer};

/// Rows per bitmap word.
pub(crate) const WORD: usize = 64;

/// Multiplying eight 0-or-1 bytes by this gathers byte `i` into bit `56 + i`.
const GATHER: u64 = 0x0102_0408_1020_4080;

/// Packs up to 64 flags (each 0 or 1) into one word, flag `j` at bit `j`.
#[inline(always)]
pub(crate) fn pack_word(flags: &[u8]) -> u64 {
    let (eights, rest) = flags.as_chunks::<8>();
    let mut word = 0u64;
    for (k, eight) in eights.iter().enumerate() {
        word |= (u64::from_le_bytes(*eight).wrapping_mul(GATHER) >> 56) << (8 * k);
    }
    let done = eights.len() * 8;
    for (j, &flag) in rest.iter().enumerate() {
        word |= u64::from(flag & 1) << (done + j);
    }
    word
}

/// Packs flags (each 0 or 1) into a bitmap, flag `i` at bit `i`.
pub(crate) fn pack(flags: &[u8]) -> BooleanBuffer {
    let words: Vec<u64> = flags.chunks(WORD).map(pack_word).collect();
    BooleanBuffer::new(Buffer::from_vec(words), 0, flags.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flag_lands_on_its_own_bit() {
        for rows in [0, 1, 7, 8, 9, 63, 64, 65, 200] {
            let flags: Vec<u8> = (0..rows)
                .map(|i| u8::from(i % 3 == 0 || i % 7 == 1))
                .collect();
            let bits = pack(&flags);
            assert_eq!(bits.len(), rows);
            let want: Vec<bool> = flags.iter().map(|&f| f == 1).collect();
            assert_eq!(bits.iter().collect::<Vec<_>>(), want, "{rows} rows");
        }
    }
}
