//! The table reads of the 8-bit optimizer state on every backend: `Simd::lookup_codes` (a code's
//! value from a 256-entry table) and `Simd::gather_u32` (a code book's entries), against plain
//! indexing, for every length 0..=257 at five pairs of offsets (0 to 3) of the codes and of the
//! output inside larger buffers, with every code value, and tables of random bit patterns (NaN payloads
//! included: a read is a copy of the bits). The output's neighbours must stay untouched.

use crate::common;
use descent_kernels::arch::Simd;
use descent_kernels::random::seeded;
use descent_kernels::{Element, Kernel};
use rand_core::Rng;

struct Lookup<'a> {
    table: &'a [f32; 256],
    codes: &'a [u8],
    out: &'a mut [f32],
}

impl Kernel<f32> for Lookup<'_> {
    type Output = ();
    fn run<S: Simd<f32>>(self, s: S) {
        s.lookup_codes(self.table, self.codes, self.out)
    }
}

struct Gather<'a> {
    table: &'a [u32],
    index: &'a mut [u32],
}

impl Kernel<f32> for Gather<'_> {
    type Output = ();
    fn run<S: Simd<f32>>(self, s: S) {
        // SAFETY: the test draws every index below `table.len()`.
        unsafe { s.gather_u32(self.table, self.index) }
    }
}

/// Outputs are compared as bits, so a changed NaN payload would fail.
fn bits(x: &[f32]) -> Vec<u32> {
    x.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn lookup_codes_copies_table_entries_on_every_backend() {
    let mut rng = seeded(0x7ab1e);
    let table: [f32; 256] = core::array::from_fn(|_| f32::from_bits(rng.next_u32()));
    // Every code value appears, then random codes.
    let all: Vec<u8> = (0..=255u8)
        .chain((0..300).map(|_| rng.next_u32() as u8))
        .collect();
    const GUARD: f32 = -7.25;
    for backend in common::backends() {
        for len in 0..=257usize {
            for (code_offset, out_offset) in [(0, 0), (1, 0), (0, 3), (2, 1), (3, 2)] {
                let codes = &all[code_offset..code_offset + len];
                let mut buffer = vec![GUARD; len + 8];
                let want: Vec<f32> = codes.iter().map(|&c| table[c as usize]).collect();
                f32::dispatch(
                    backend,
                    Lookup {
                        table: &table,
                        codes,
                        out: &mut buffer[out_offset..out_offset + len],
                    },
                );
                let got = &buffer[out_offset..out_offset + len];
                assert_eq!(
                    bits(got),
                    bits(&want),
                    "{backend:?}: length {len}, code offset {code_offset}, output offset \
                     {out_offset}"
                );
                let outside = buffer[..out_offset]
                    .iter()
                    .chain(&buffer[out_offset + len..]);
                assert!(
                    outside.into_iter().all(|&x| x == GUARD),
                    "{backend:?}: length {len}: wrote outside the output"
                );
            }
        }
        // Longer codes than outputs: only `out.len()` are read.
        let mut out = [0.0f32; 40];
        f32::dispatch(
            backend,
            Lookup {
                table: &table,
                codes: &all[..100],
                out: &mut out,
            },
        );
        let want: Vec<f32> = all[..40].iter().map(|&c| table[c as usize]).collect();
        assert_eq!(
            bits(&out),
            bits(&want),
            "{backend:?}: codes longer than out"
        );
    }
}

#[test]
fn gather_u32_copies_table_entries_on_every_backend() {
    let mut rng = seeded(0x9a7e);
    // The code books' sizes, and a small table.
    for table_len in [5892usize, 2946, 7] {
        let table: Vec<u32> = (0..table_len).map(|_| rng.next_u32()).collect();
        let indices: Vec<u32> = (0..300)
            .map(|i| match i % 3 {
                0 => 0,
                1 => table_len as u32 - 1,
                _ => rng.next_u32() % table_len as u32,
            })
            .collect();
        for backend in common::backends() {
            for len in 0..=257usize {
                for offset in [0, 1, 3] {
                    let mut buffer = vec![u32::MAX; len + 4];
                    buffer[offset..offset + len].copy_from_slice(&indices[..len]);
                    f32::dispatch(
                        backend,
                        Gather {
                            table: &table,
                            index: &mut buffer[offset..offset + len],
                        },
                    );
                    let want: Vec<u32> =
                        indices[..len].iter().map(|&i| table[i as usize]).collect();
                    assert_eq!(
                        &buffer[offset..offset + len],
                        &want[..],
                        "{backend:?}: table of {table_len}, length {len}, offset {offset}"
                    );
                    let outside = buffer[..offset].iter().chain(&buffer[offset + len..]);
                    assert!(
                        outside.into_iter().all(|&x| x == u32::MAX),
                        "{backend:?}: length {len}: wrote outside the indices"
                    );
                }
            }
        }
    }
}
