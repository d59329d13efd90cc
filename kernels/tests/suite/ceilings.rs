//! The benchmark ceilings that stand for a rule's memory traffic: `blockwise8_pattern_on` reads
//! and writes exactly the buffers of an `Adam8` step (every byte of each, nothing around them),
//! takes the lengths `Adam8` takes, and writes nothing when a length is wrong.

use crate::common;

use common::*;
use descent_kernels::ceilings::{blockwise8_pattern_on, div_on, sqrt_div_on};
use descent_kernels::random::seeded;
use descent_kernels::random::Xoshiro256PlusPlus;
use descent_kernels::rules::adam8::BLOCK;
use descent_kernels::{Adam8, Error};
use rand_core::Rng;

/// `len` floats with uniformly random bits (NaNs, infinities and subnormals included).
fn bits(rng: &mut Xoshiro256PlusPlus, len: usize) -> Vec<f32> {
    (0..len).map(|_| f32::from_bits(rng.next_u32())).collect()
}

/// Every element of the four buffers is rewritten from the bytes read (`p & g` for the
/// parameters, `m & v` and `m | v` for the code pairs and the scale pairs), on every backend, for
/// lengths around the block size and sub-slices at every offset; the guard elements after each
/// buffer stay untouched.
#[test]
fn blockwise8_pattern_touches_every_byte_of_the_adam8_buffers_and_nothing_else() {
    let mut rng = seeded(14);
    for n in [0usize, 1, 7, 8, 255, 256, 257, 600, 1000] {
        let blocks = n.div_ceil(BLOCK);
        assert_eq!(2 * n, Adam8::codes_len(n));
        assert_eq!(2 * blocks, Adam8::scales_len(n));
        for off in OFFSETS {
            let p0 = bits(&mut rng, off + n + GUARD);
            let g = bits(&mut rng, off + n);
            let c0: Vec<u8> = (0..off + 2 * n + GUARD)
                .map(|_| rng.next_u32() as u8)
                .collect();
            let s0 = bits(&mut rng, off + 2 * blocks + GUARD);
            for b in backends() {
                let (mut p, mut c, mut s) = (p0.clone(), c0.clone(), s0.clone());
                blockwise8_pattern_on(
                    b,
                    &mut p[off..off + n],
                    &g[off..],
                    &mut c[off..off + 2 * n],
                    &mut s[off..off + 2 * blocks],
                )
                .unwrap();
                let what = format!("{b}, n {n}, offset {off}");
                for (i, got) in p.iter().enumerate() {
                    let want = if (off..off + n).contains(&i) {
                        p0[i].to_bits() & g[i].to_bits()
                    } else {
                        p0[i].to_bits()
                    };
                    assert_eq!(got.to_bits(), want, "{what}: parameter {i}");
                }
                for (i, &got) in c.iter().enumerate() {
                    let j = i.wrapping_sub(off);
                    let want = if j < n {
                        c0[i] & c0[i + n]
                    } else if j < 2 * n {
                        c0[i - n] | c0[i]
                    } else {
                        c0[i]
                    };
                    assert_eq!(got, want, "{what}: code byte {i}");
                }
                let s0 = |k: usize| s0[k].to_bits();
                for (i, got) in s.iter().enumerate() {
                    let j = i.wrapping_sub(off);
                    let want = if j < blocks {
                        s0(i) & s0(i + blocks)
                    } else if j < 2 * blocks {
                        s0(i - blocks) | s0(i)
                    } else {
                        s0(i)
                    };
                    assert_eq!(got.to_bits(), want, "{what}: scale {i}");
                }
            }
        }
    }
}

/// A wrong length of any buffer is an error naming it, and nothing is written.
#[test]
fn blockwise8_pattern_rejects_wrong_lengths_before_writing() {
    let n = 300;
    let g = vec![1.0f32; n];
    for b in backends() {
        for (pl, gl, cl, sl, name) in [
            (n, n - 1, 2 * n, 4, "grads"),
            (n, n, 2 * n - 1, 4, "codes"),
            (n, n, 2 * n, 3, "scales"),
            (n, n, 2 * n, 6, "scales"),
        ] {
            let (mut p, mut c, mut s) = (vec![3.0f32; pl], vec![7u8; cl], vec![5.0f32; sl]);
            let err = blockwise8_pattern_on(b, &mut p, &g[..gl], &mut c, &mut s).unwrap_err();
            assert!(
                matches!(err, Error::LengthMismatch { buffer, .. } if buffer == name),
                "{b}: {err:?}, expected a mismatch of {name}"
            );
            assert!(p.iter().all(|&x| x == 3.0) && c.iter().all(|&x| x == 7));
            assert!(s.iter().all(|&x| x == 5.0));
        }
    }
}

/// The compute ceilings do the IEEE operations they are named for, element by element, on every
/// backend and every length up to 257: `div_on` gives `y / x`, `sqrt_div_on` `y / √x` (bits, NaNs
/// compared as NaNs); a length mismatch is an error that writes nothing.
#[test]
fn compute_ceilings_divide_and_take_square_roots_elementwise() {
    let mut rng = seeded(15);
    for b in backends() {
        for n in 0..=257usize {
            let (x0, y) = (bits(&mut rng, n), bits(&mut rng, n));
            let same = |a: f32, b: f32| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
            let mut x = x0.clone();
            div_on(b, &mut x, &y).unwrap();
            for i in 0..n {
                assert!(
                    same(x[i], y[i] / x0[i]),
                    "div_on on {b}, n = {n}, element {i}"
                );
            }
            let mut x = x0.clone();
            sqrt_div_on(b, &mut x, &y).unwrap();
            for i in 0..n {
                let want = y[i] / x0[i].sqrt();
                assert!(same(x[i], want), "sqrt_div_on on {b}, n = {n}, element {i}");
            }
        }
        let mut x = vec![1.0f32; 4];
        assert!(div_on(b, &mut x, &[2.0; 3]).is_err());
        assert!(sqrt_div_on(b, &mut x, &[2.0; 5]).is_err());
        assert_eq!(x, [1.0; 4], "a rejected call wrote on {b}");
    }
}
