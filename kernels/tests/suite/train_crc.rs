//! CRC-32 (IEEE): the standard check value, known values, and agreement with a bitwise
//! implementation written here over random inputs split at random points.

use descent_kernels::train::{crc32, Crc32};
use proptest::prelude::*;

/// The textbook bit-at-a-time CRC-32: reflected, polynomial 0xEDB88320, init and xor-out all ones.
fn bitwise(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

#[test]
fn check_value() {
    // The catalogue check value of CRC-32/ISO-HDLC (the zlib/PNG CRC) for "123456789".
    assert_eq!(Crc32::new().update(b"123456789").finish(), 0xCBF4_3926);
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(bitwise(b"123456789"), 0xCBF4_3926);
}

#[test]
fn known_values() {
    // The CRC of nothing is 0; well-known values of zlib.crc32 in Python.
    assert_eq!(crc32(b""), 0);
    assert_eq!(crc32(b"a"), 0xE8B7_BE43);
    assert_eq!(
        crc32(b"The quick brown fox jumps over the lazy dog"),
        0x414F_A339
    );
    assert_eq!(Crc32::default(), Crc32::new());
}

#[test]
fn finish_does_not_consume() {
    let mut c = Crc32::new();
    c.update(b"12345");
    let mid = c.finish();
    assert_eq!(mid, crc32(b"12345"));
    c.update(b"6789");
    assert_eq!(c.finish(), 0xCBF4_3926);
}

proptest! {
    #[test]
    fn matches_bitwise(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        prop_assert_eq!(crc32(&bytes), bitwise(&bytes));
    }

    #[test]
    fn incremental_equals_one_shot(
        bytes in proptest::collection::vec(any::<u8>(), 0..1024),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let mut at: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        at.sort_unstable();
        let mut c = Crc32::new();
        let mut prev = 0;
        for &a in &at {
            c.update(&bytes[prev..a]);
            prev = a;
        }
        c.update(&bytes[prev..]);
        prop_assert_eq!(c.finish(), bitwise(&bytes));
    }

    #[test]
    fn detects_any_single_byte_change(
        bytes in proptest::collection::vec(any::<u8>(), 1..512),
        at in any::<prop::sample::Index>(),
        flip in 1..=255u8,
    ) {
        // Every burst of at most 32 bits changes the CRC.
        let mut other = bytes.clone();
        other[at.index(bytes.len())] ^= flip;
        prop_assert_ne!(crc32(&bytes), crc32(&other));
    }
}
