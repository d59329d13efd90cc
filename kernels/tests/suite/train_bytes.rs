//! The checkpoint byte codec: round trips of every value type, atomic failures with typed errors,
//! the frame's checks, and a proptest decoder fuzz (random and mutated inputs never panic and are
//! rejected).

use descent_kernels::train::bytes::{frame_len, HEADER_LEN, TRAILER_LEN};
use descent_kernels::train::{
    crc32, read_header, verify, write_header, CheckpointError, Reader, Writer,
};
use half::{bf16, f16};
use proptest::prelude::*;

const MAGIC: [u8; 4] = *b"DSCK";
const VERSION: u32 = 3;

/// A payload exercising every `put_*`, as a test format would write it.
#[derive(Clone, Debug, PartialEq)]
struct Sample {
    a: u8,
    b: u16,
    c: u32,
    d: u64,
    e: f32,
    f: f64,
    xs: Vec<f32>,
    ys: Vec<f64>,
    hs: Vec<bf16>,
    gs: Vec<f16>,
    raw: Vec<u8>,
}

impl Sample {
    fn encoded_len(&self) -> usize {
        1 + 2
            + 4
            + 8
            + 4
            + 8
            + 5 * 8
            + 4 * self.xs.len()
            + 8 * self.ys.len()
            + 2 * self.hs.len()
            + 2 * self.gs.len()
            + self.raw.len()
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<(), CheckpointError> {
        w.put_u8(self.a)?;
        w.put_u16(self.b)?;
        w.put_u32(self.c)?;
        w.put_u64(self.d)?;
        w.put_f32(self.e)?;
        w.put_f64(self.f)?;
        w.put_u64(self.xs.len() as u64)?;
        w.put_f32s(&self.xs)?;
        w.put_u64(self.ys.len() as u64)?;
        w.put_f64s(&self.ys)?;
        w.put_u64(self.hs.len() as u64)?;
        w.put_bf16s(&self.hs)?;
        w.put_u64(self.gs.len() as u64)?;
        w.put_f16s(&self.gs)?;
        w.put_u64(self.raw.len() as u64)?;
        w.put_bytes(&self.raw)
    }

    /// Reads a sample whose vector lengths are known to the reader (`like`'s), as a decoder that
    /// knows its shapes does.
    fn read(r: &mut Reader<'_>, like: &Sample) -> Result<Sample, CheckpointError> {
        let mut s = Sample {
            a: r.get_u8()?,
            b: r.get_u16()?,
            c: r.get_u32()?,
            d: r.get_u64()?,
            e: r.get_f32()?,
            f: r.get_f64()?,
            xs: vec![0.0; like.xs.len()],
            ys: vec![0.0; like.ys.len()],
            hs: vec![bf16::ZERO; like.hs.len()],
            gs: vec![f16::ZERO; like.gs.len()],
            raw: vec![],
        };
        r.expect_u64("xs length", like.xs.len() as u64)?;
        r.get_f32s(&mut s.xs)?;
        r.expect_u64("ys length", like.ys.len() as u64)?;
        r.get_f64s(&mut s.ys)?;
        r.expect_u64("hs length", like.hs.len() as u64)?;
        r.get_bf16s(&mut s.hs)?;
        r.expect_u64("gs length", like.gs.len() as u64)?;
        r.get_f16s(&mut s.gs)?;
        r.expect_u64("raw length", like.raw.len() as u64)?;
        s.raw = r.get_bytes(like.raw.len())?.to_vec();
        Ok(s)
    }

    /// Bitwise equality (NaN payloads included).
    fn bits(&self) -> Vec<u64> {
        let mut v = vec![
            self.a as u64,
            self.b as u64,
            self.c as u64,
            self.d,
            self.e.to_bits() as u64,
            self.f.to_bits(),
        ];
        v.extend(self.xs.iter().map(|x| x.to_bits() as u64));
        v.extend(self.ys.iter().map(|x| x.to_bits()));
        v.extend(self.hs.iter().map(|x| x.to_bits() as u64));
        v.extend(self.gs.iter().map(|x| x.to_bits() as u64));
        v.extend(self.raw.iter().map(|&x| x as u64));
        v
    }
}

fn sample() -> Sample {
    Sample {
        a: 0xA5,
        b: 0xBEEF,
        c: 0xDEAD_BEEF,
        d: 0x0123_4567_89AB_CDEF,
        e: f32::from_bits(0x7FC0_1234), // a NaN with a payload
        f: -0.0,
        xs: vec![1.5, -2.25, f32::INFINITY, f32::MIN_POSITIVE / 4.0, 3.0e38],
        ys: vec![core::f64::consts::PI, -1e-310, f64::NEG_INFINITY],
        hs: vec![bf16::from_f32(0.1), bf16::NAN, bf16::MAX],
        gs: vec![f16::from_f32(-0.5), f16::MIN_POSITIVE_SUBNORMAL],
        raw: b"state".to_vec(),
    }
}

fn encode(s: &Sample) -> Vec<u8> {
    let mut buf = vec![0u8; frame_len(s.encoded_len())];
    let mut w = write_header(&mut buf, MAGIC, VERSION).unwrap();
    s.write(&mut w).unwrap();
    assert_eq!(w.remaining(), 0, "encoded_len is exact");
    let n = w.finish();
    assert_eq!(n, buf.len());
    buf
}

fn decode(bytes: &[u8], like: &Sample) -> Result<Sample, CheckpointError> {
    let mut r = read_header(bytes, MAGIC, VERSION)?;
    let s = Sample::read(&mut r, like)?;
    r.finish()?;
    Ok(s)
}

#[test]
fn little_endian_layout() {
    let mut buf = [0u8; 27];
    let mut w = Writer::new(&mut buf);
    w.put_u16(0x0102).unwrap();
    w.put_u32(0x0304_0506).unwrap();
    w.put_u64(0x0708_090A_0B0C_0D0E).unwrap();
    w.put_f32(1.0).unwrap();
    w.put_bf16s(&[bf16::ONE]).unwrap();
    w.put_f16s(&[f16::ONE]).unwrap();
    w.put_u8(0xFF).unwrap();
    assert_eq!(w.position(), 23);
    let crc = w.crc();
    assert_eq!(w.finish(), 23);
    assert_eq!(
        buf[..23],
        [
            0x02, 0x01, 0x06, 0x05, 0x04, 0x03, 0x0E, 0x0D, 0x0C, 0x0B, 0x0A, 0x09, 0x08, 0x07,
            0x00, 0x00, 0x80, 0x3F, 0x80, 0x3F, 0x00, 0x3C, 0xFF
        ]
    );
    assert_eq!(crc, crc32(&buf[..23]));
    let mut r = Reader::new(&buf[..23]);
    assert_eq!(r.get_u16().unwrap(), 0x0102);
    assert_eq!(r.get_u32().unwrap(), 0x0304_0506);
    assert_eq!(r.get_u64().unwrap(), 0x0708_090A_0B0C_0D0E);
    assert_eq!(r.get_f32().unwrap(), 1.0);
    let (mut h, mut g) = ([bf16::ZERO], [f16::ZERO]);
    r.get_bf16s(&mut h).unwrap();
    r.get_f16s(&mut g).unwrap();
    assert_eq!((h[0], g[0]), (bf16::ONE, f16::ONE));
    assert_eq!(r.get_u8().unwrap(), 0xFF);
    assert_eq!(r.crc(), crc);
    r.finish().unwrap();
}

#[test]
fn frame_layout_and_round_trip() {
    let s = sample();
    let bytes = encode(&s);
    let n = s.encoded_len();
    assert_eq!(bytes.len(), n + HEADER_LEN + TRAILER_LEN);
    assert_eq!(bytes[..4], MAGIC);
    assert_eq!(bytes[4..8], VERSION.to_le_bytes());
    assert_eq!(bytes[8..16], (n as u64).to_le_bytes());
    let stored = u32::from_le_bytes(bytes[16 + n..].try_into().unwrap());
    assert_eq!(stored, crc32(&bytes[..16 + n]));
    let back = decode(&bytes, &s).unwrap();
    assert_eq!(back.bits(), s.bits());
    // A frame at the start of a larger buffer: the rest is ignored.
    let mut big = bytes.clone();
    big.extend_from_slice(&[0xEE; 100]);
    let f = verify(&big, MAGIC, VERSION).unwrap();
    assert_eq!(
        (f.len, f.version, f.payload.len()),
        (bytes.len(), VERSION, n)
    );
    assert_eq!(decode(&big, &s).unwrap().bits(), s.bits());
}

#[test]
fn empty_frame() {
    let mut buf = [0u8; 20];
    assert_eq!(write_header(&mut buf, MAGIC, 0).unwrap().finish(), 20);
    let mut r = read_header(&buf, MAGIC, 0).unwrap();
    assert_eq!(r.remaining(), 0);
    assert_eq!(
        r.get_u8(),
        Err(CheckpointError::Truncated {
            needed: 1,
            available: 0
        })
    );
    r.finish().unwrap();
}

#[test]
fn an_abandoned_frame_does_not_verify() {
    let s = sample();
    let mut buf = encode(&s);
    verify(&buf, MAGIC, VERSION).unwrap();
    // Start a new frame over the old one and stop half-way (an error or a reset).
    {
        let mut w = write_header(&mut buf, MAGIC, VERSION).unwrap();
        w.put_u64(42).unwrap();
    }
    assert_eq!(
        verify(&buf, MAGIC, VERSION),
        Err(CheckpointError::WrongMagic {
            expected: MAGIC,
            found: [0; 4]
        })
    );
}

#[test]
fn writes_that_do_not_fit_write_nothing() {
    let mut buf = [0x55u8; 10];
    let mut w = Writer::new(&mut buf);
    w.put_u64(1).unwrap();
    assert_eq!(
        w.put_u32(2),
        Err(CheckpointError::BufferTooSmall {
            needed: 4,
            available: 2
        })
    );
    assert_eq!(
        w.put_f32s(&[1.0; 3]),
        Err(CheckpointError::BufferTooSmall {
            needed: 12,
            available: 2
        })
    );
    assert_eq!(w.position(), 8);
    let crc = w.crc();
    w.put_u16(7).unwrap();
    assert_ne!(w.crc(), crc);
    assert_eq!(w.finish(), 10);
    // A frame keeps room for its trailer: payload writes stop 4 bytes early.
    let mut buf = [0u8; 28];
    let mut w = write_header(&mut buf, MAGIC, 1).unwrap();
    assert_eq!(w.remaining(), 8);
    w.put_f32(1.0).unwrap();
    assert_eq!(
        w.put_f64(2.0),
        Err(CheckpointError::BufferTooSmall {
            needed: 8,
            available: 4
        })
    );
    w.put_f32(3.0).unwrap();
    assert_eq!(w.finish(), 28);
    let mut r = read_header(&buf, MAGIC, 1).unwrap();
    assert_eq!((r.get_f32().unwrap(), r.get_f32().unwrap()), (1.0, 3.0));
    r.finish().unwrap();
    // Too small even for an empty frame.
    let mut tiny = [0xAAu8; 19];
    assert_eq!(
        write_header(&mut tiny, MAGIC, 1).map(|_| ()),
        Err(CheckpointError::BufferTooSmall {
            needed: 20,
            available: 19
        })
    );
    assert_eq!(tiny, [0xAA; 19]);
}

#[test]
fn reads_that_do_not_fit_read_nothing() {
    let bytes = [1u8, 2, 3, 4, 5, 6];
    let mut r = Reader::new(&bytes);
    assert_eq!(r.get_u16().unwrap(), 0x0201);
    let mut out = [9.0f32; 2];
    assert_eq!(
        r.get_f32s(&mut out),
        Err(CheckpointError::Truncated {
            needed: 8,
            available: 4
        })
    );
    assert_eq!(out, [9.0; 2]);
    assert_eq!(r.position(), 2);
    assert_eq!(r.get_u32().unwrap(), 0x0605_0403);
    // A huge element count saturates "needed" instead of overflowing.
    let mut r = Reader::new(&bytes);
    assert!(matches!(
        r.get_bytes(usize::MAX),
        Err(CheckpointError::Truncated {
            needed: usize::MAX,
            available: 6
        })
    ));
    let mut r = Reader::new(&bytes);
    r.get_u8().unwrap();
    assert_eq!(
        r.finish(),
        Err(CheckpointError::TrailingBytes { unread: 5 })
    );
}

#[test]
fn frame_errors_are_typed() {
    let s = sample();
    let good = encode(&s);
    // Wrong magic.
    let mut bad = good.clone();
    bad[0] = b'X';
    assert_eq!(
        verify(&bad, MAGIC, VERSION),
        Err(CheckpointError::WrongMagic {
            expected: MAGIC,
            found: *b"XSCK"
        })
    );
    // Wrong version (a reader of another version).
    assert_eq!(
        verify(&good, MAGIC, VERSION + 1),
        Err(CheckpointError::UnsupportedVersion {
            expected: VERSION + 1,
            found: VERSION
        })
    );
    // Truncated: inside the header, and inside the payload or trailer.
    assert_eq!(
        verify(&good[..10], MAGIC, VERSION),
        Err(CheckpointError::Truncated {
            needed: HEADER_LEN,
            available: 10
        })
    );
    assert_eq!(
        verify(&good[..2], MAGIC, VERSION),
        Err(CheckpointError::Truncated {
            needed: HEADER_LEN,
            available: 2
        })
    );
    for cut in HEADER_LEN..good.len() {
        assert_eq!(
            verify(&good[..cut], MAGIC, VERSION),
            Err(CheckpointError::Truncated {
                needed: good.len(),
                available: cut
            })
        );
    }
    // A length field claiming more than a usize can hold.
    let mut huge = good.clone();
    huge[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        verify(&huge, MAGIC, VERSION),
        Err(CheckpointError::Truncated {
            needed: usize::MAX,
            ..
        })
    ));
    // Corrupted payload byte.
    let mut bad = good.clone();
    bad[HEADER_LEN + 3] ^= 0x10;
    match verify(&bad, MAGIC, VERSION) {
        Err(CheckpointError::ChecksumMismatch { stored, computed }) => {
            assert_eq!(stored, crc32(&good[..good.len() - 4]));
            assert_ne!(computed, stored);
        }
        other => panic!("expected a checksum mismatch, got {other:?}"),
    }
    // Corrupted trailer.
    let mut bad = good.clone();
    *bad.last_mut().unwrap() ^= 1;
    assert!(matches!(
        verify(&bad, MAGIC, VERSION),
        Err(CheckpointError::ChecksumMismatch { .. })
    ));
    // Wrong shape: a decoder expecting other lengths.
    let mut other = s.clone();
    other.xs.push(0.0);
    assert_eq!(
        decode(&good, &other),
        Err(CheckpointError::WrongShape {
            field: "xs length",
            expected: 6,
            found: 5
        })
    );
    // A decoder that reads less than the payload.
    let mut r = read_header(&good, MAGIC, VERSION).unwrap();
    r.get_u8().unwrap();
    assert_eq!(
        r.finish(),
        Err(CheckpointError::TrailingBytes {
            unread: s.encoded_len() - 1
        })
    );
}

#[test]
fn display_names_the_problem() {
    let cases: [(CheckpointError, &str); 4] = [
        (
            CheckpointError::BufferTooSmall {
                needed: 40,
                available: 12,
            },
            "40 bytes needed, 12 available",
        ),
        (
            CheckpointError::ChecksumMismatch {
                stored: 1,
                computed: 2,
            },
            "corrupted",
        ),
        (
            CheckpointError::UnsupportedVersion {
                expected: 1,
                found: 2,
            },
            "version 2",
        ),
        (
            CheckpointError::WrongShape {
                field: "state length",
                expected: 3,
                found: 4,
            },
            "state length is 4, expected 3",
        ),
    ];
    for (e, text) in cases {
        let shown = e.to_string();
        assert!(shown.contains(text), "{shown:?} lacks {text:?}");
    }
}

fn sample_strategy() -> impl Strategy<Value = Sample> {
    (
        any::<(u8, u16, u32, u64)>(),
        any::<(u32, u64)>(),
        proptest::collection::vec(any::<u32>(), 0..40),
        proptest::collection::vec(any::<u64>(), 0..20),
        proptest::collection::vec(any::<u16>(), 0..40),
        proptest::collection::vec(any::<u8>(), 0..40),
    )
        .prop_map(|((a, b, c, d), (e, f), xs, ys, hs, raw)| Sample {
            a,
            b,
            c,
            d,
            e: f32::from_bits(e),
            f: f64::from_bits(f),
            xs: xs.into_iter().map(f32::from_bits).collect(),
            ys: ys.into_iter().map(f64::from_bits).collect(),
            gs: hs.iter().map(|&h| f16::from_bits(h)).collect(),
            hs: hs.into_iter().map(bf16::from_bits).collect(),
            raw,
        })
}

proptest! {
    #[test]
    fn round_trip_is_bit_exact(s in sample_strategy()) {
        let bytes = encode(&s);
        prop_assert_eq!(decode(&bytes, &s).unwrap().bits(), s.bits());
    }

    #[test]
    fn random_bytes_are_rejected(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        // Never panics; accepted only if the first four bytes are the magic (chance 2⁻³²).
        let like = sample();
        prop_assert!(decode(&bytes, &like).is_err());
        prop_assert!(verify(&bytes, MAGIC, VERSION).is_err());
    }

    #[test]
    fn random_bytes_behind_a_valid_header_are_rejected(
        len in 0u64..400,
        rest in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        // The header passes; the payload length is random, and the trailer matches the CRC of
        // random bytes with chance 2⁻³².
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&VERSION.to_le_bytes());
        bytes.extend_from_slice(&len.to_le_bytes());
        bytes.extend_from_slice(&rest);
        let r = verify(&bytes, MAGIC, VERSION);
        let truncated = frame_len(len as usize) > bytes.len();
        prop_assert!(
            matches!(r, Err(CheckpointError::Truncated { .. })) == truncated
                && matches!(r, Err(CheckpointError::ChecksumMismatch { .. })) != truncated,
            "{:?}", r
        );
    }

    #[test]
    fn any_single_byte_mutation_is_rejected(
        s in sample_strategy(),
        at in any::<prop::sample::Index>(),
        flip in 1..=255u8,
    ) {
        let good = encode(&s);
        let mut bad = good.clone();
        let i = at.index(bad.len());
        bad[i] ^= flip;
        // Never panics, never decodes. In the magic or version the error says so; elsewhere it is
        // a checksum mismatch, except in the length field, which may also make the frame appear
        // truncated (a longer length) or point at other bytes as the trailer.
        let r = decode(&bad, &s);
        match i {
            0..4 => prop_assert!(matches!(r, Err(CheckpointError::WrongMagic { .. })), "{:?}", r),
            4..8 => prop_assert!(matches!(r, Err(CheckpointError::UnsupportedVersion { .. })), "{:?}", r),
            8..16 => prop_assert!(matches!(
                r,
                Err(CheckpointError::Truncated { .. } | CheckpointError::ChecksumMismatch { .. })
            ), "{:?}", r),
            _ => prop_assert!(matches!(r, Err(CheckpointError::ChecksumMismatch { .. })), "{:?}", r),
        }
    }

    #[test]
    fn multi_byte_mutations_and_truncations_are_rejected(
        s in sample_strategy(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 1..=255u8), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let good = encode(&s);
        let mut bad = good.clone();
        for (at, flip) in &edits {
            let i = at.index(bad.len());
            bad[i] ^= flip;
        }
        if bad != good {
            // (Two edits of one byte can cancel out.) Undetected with chance 2⁻³².
            prop_assert!(decode(&bad, &s).is_err());
        }
        let n = cut.index(good.len());
        prop_assert!(decode(&good[..n], &s).is_err());
    }
}
