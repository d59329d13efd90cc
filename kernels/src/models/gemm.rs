//! Matrix multiply: `C = op(A)·op(B)` or `C += op(A)·op(B)`, row-major, any shape.
//!
//! Structure (BLIS-style, sized for small models):
//! - the output is cut into tiles of `TILE_ROWS × (TILE_VECTORS · LANES)` held in registers:
//!   6 × 16 (f32) / 6 × 8 (f64) on AVX2+FMA, 6 × 8 / 6 × 4 on SSE2, 8 × 12 / 8 × 6 on NEON, 4 × 4 on
//!   the scalar backend;
//! - for each block of `KC` steps of the inner dimension and each tile column, the matching panel
//!   of `op(B)` is packed once into a zero-padded stack buffer (contiguous rows of the tile width), so
//!   the micro-kernel reads `B` with full-width vector loads whatever `B`'s layout;
//! - `op(A)` is read in place with scalar broadcasts through row/column strides, which serves both
//!   the plain and the transposed layout;
//! - the micro-kernel does one multiply-add per accumulator per step: fused on FMA backends
//!   (AVX2+FMA, NEON), a multiply then an add elsewhere. Rows past the last full tile run the same
//!   micro-kernel one row at a time; columns past the last full tile are computed in the padded
//!   lanes and only the valid ones are stored.
//!
//! Rounding: each `C[i][j]` is the sum over `p` in increasing order within each `KC` block (one
//! rounding per multiply-add), blocks added in order. Error bound, used by the tests:
//! `|C − exact| <= (k + 4)·u·Σ_p |A[i][p]|·|B[p][j]|`. Bit-reproducible on one backend.

use crate::arch::{run_on, Kernel};
use crate::arch::{Simd, MAX_LANES};
use crate::error::{check_shape, dim_product};
use crate::{Backend, Element, Error};

/// Shape and layout of one matrix product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatMul {
    /// Rows of `op(A)` and of `C`.
    pub m: usize,
    /// Columns of `op(B)` and of `C`.
    pub n: usize,
    /// Columns of `op(A)` = rows of `op(B)`.
    pub k: usize,
    /// `op(A) = Aᵀ`: `A` is stored `k × m` row-major (else `m × k`).
    pub trans_a: bool,
    /// `op(B) = Bᵀ`: `B` is stored `n × k` row-major (else `k × n`).
    pub trans_b: bool,
    /// Add the product to `C` (else overwrite `C`, whose old contents are never read).
    pub accumulate: bool,
}

impl MatMul {
    /// `C = A·B` with `A: m × k`, `B: k × n`, `C: m × n`.
    pub fn new(m: usize, n: usize, k: usize) -> Self {
        MatMul {
            m,
            n,
            k,
            trans_a: false,
            trans_b: false,
            accumulate: false,
        }
    }

    /// Checks the three buffers against the shape.
    pub fn validate<T>(&self, a: &[T], b: &[T], c: &[T]) -> Result<(), Error> {
        check_shape("a", "m × k", dim_product("m", self.m, self.k)?, a.len())?;
        check_shape("b", "k × n", dim_product("n", self.k, self.n)?, b.len())?;
        check_shape("c", "m × n", dim_product("m", self.m, self.n)?, c.len())
    }

    /// Runs the product on the active backend.
    pub fn run<T: Element>(&self, a: &[T], b: &[T], c: &mut [T]) -> Result<(), Error> {
        self.run_on(Backend::active(), a, b, c)
    }

    /// Runs the product on `backend`.
    pub fn run_on<T: Element>(
        &self,
        backend: Backend,
        a: &[T],
        b: &[T],
        c: &mut [T],
    ) -> Result<(), Error> {
        self.validate(a, b, c)?;
        run_on(
            backend,
            GemmKernel {
                spec: *self,
                a,
                b,
                c,
            },
        )
    }
}

/// Elements of the packed-B stack buffer: 16 KiB (f32) / 32 KiB (f64) on x86-64 and aarch64,
/// 1 KiB / 2 KiB on other (embedded) targets.
const PANEL: usize = if cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
    4096
} else {
    256
};

pub(crate) struct GemmKernel<'a, T> {
    pub(crate) spec: MatMul,
    pub(crate) a: &'a [T],
    pub(crate) b: &'a [T],
    pub(crate) c: &'a mut [T],
}

impl<T: Element> Kernel<T> for GemmKernel<'_, T> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd<T>>(self, s: S) {
        // The tile shape is a per-backend constant; this match is resolved at compile time.
        match (S::TILE_ROWS, S::TILE_VECTORS) {
            (8, 3) => gemm::<T, S, 8, 3>(s, self.spec, self.a, self.b, self.c),
            (6, 2) => gemm::<T, S, 6, 2>(s, self.spec, self.a, self.b, self.c),
            _ => gemm::<T, S, 4, 4>(s, self.spec, self.a, self.b, self.c),
        }
    }
}

/// Strided view of `op(A)`: element `(i, p)` at `ptr[i·rs + p·cs]`.
#[derive(Clone, Copy)]
struct Strided<T> {
    ptr: *const T,
    rs: usize,
    cs: usize,
}

#[inline(always)]
fn gemm<T: Element, S: Simd<T>, const MR: usize, const NV: usize>(
    s: S,
    spec: MatMul,
    a: &[T],
    b: &[T],
    c: &mut [T],
) {
    let MatMul { m, n, k, .. } = spec;
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !spec.accumulate {
            c.fill(T::zero());
        }
        return;
    }
    let lanes = S::LANES;
    let nr = NV * lanes;
    let kc_max = (PANEL / nr).max(1);
    let a_view = if spec.trans_a {
        Strided {
            ptr: a.as_ptr(),
            rs: 1,
            cs: m,
        }
    } else {
        Strided {
            ptr: a.as_ptr(),
            rs: k,
            cs: 1,
        }
    };
    // op(B)(p, j) = b[p·rsb + j·csb]
    let (rsb, csb) = if spec.trans_b { (1, k) } else { (n, 1) };
    let mut panel = [T::zero(); PANEL];
    let c_ptr = c.as_mut_ptr();

    // Loop order pc → jc → ic: the column block op(A)[:, pc..pc+kc] (m × kc) is swept once per
    // tile column while it is still in cache, and each packed panel of op(B) is reused by every
    // row tile.
    let mut pc = 0;
    while pc < k {
        let kc = kc_max.min(k - pc);
        let overwrite = pc == 0 && !spec.accumulate;
        let mut jc = 0;
        while jc < n {
            let cols = nr.min(n - jc);
            // Pack op(B)[pc .. pc + kc, jc .. jc + cols] as kc rows of nr (zero-padded).
            for p in 0..kc {
                let row = &mut panel[p * nr..p * nr + nr];
                for (j, slot) in row.iter_mut().enumerate() {
                    *slot = if j < cols {
                        b[(pc + p) * rsb + (jc + j) * csb]
                    } else {
                        T::zero()
                    };
                }
            }
            let mut ic = 0;
            while ic + MR <= m {
                // SAFETY: rows ic..ic+MR < m, inner indices pc..pc+kc < k, columns jc..jc+cols <= n,
                // so every A read and C access is inside the buffers validated by `MatMul::validate`;
                // the panel holds kc·nr <= PANEL elements.
                unsafe {
                    tile::<T, S, MR, NV>(
                        s, a_view, ic, pc, kc, &panel, c_ptr, n, jc, cols, overwrite,
                    )
                };
                ic += MR;
            }
            while ic < m {
                // SAFETY: as above, for the single row ic < m.
                unsafe {
                    tile::<T, S, 1, NV>(
                        s, a_view, ic, pc, kc, &panel, c_ptr, n, jc, cols, overwrite,
                    )
                };
                ic += 1;
            }
            jc += nr;
        }
        pc += kc;
    }
}

/// One register tile: `C[ic .. ic+MR][jc .. jc+cols] (+)= op(A)[ic.., pc .. pc+kc] · panel`.
///
/// # Safety
/// Rows `ic..ic+MR` and inner indices `pc..pc+kc` must be inside `op(A)`; columns `jc..jc+cols`
/// inside `C` (row length `ldc`, at least `ic + MR` rows); `panel` holds `kc` rows of
/// `NV·LANES` elements.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<T: Element, S: Simd<T>, const MR: usize, const NV: usize>(
    s: S,
    a: Strided<T>,
    ic: usize,
    pc: usize,
    kc: usize,
    panel: &[T],
    c: *mut T,
    ldc: usize,
    jc: usize,
    cols: usize,
    overwrite: bool,
) {
    let lanes = S::LANES;
    let nr = NV * lanes;
    debug_assert!(panel.len() >= kc * nr);
    let zero = s.splat(T::zero());
    let mut acc = [[zero; NV]; MR];
    let bp = panel.as_ptr();
    for p in 0..kc {
        let mut bv = [zero; NV];
        for (j, v) in bv.iter_mut().enumerate() {
            // SAFETY: p < kc and j·lanes + lanes <= nr, inside the packed panel.
            *v = unsafe { s.load(bp.add(p * nr + j * lanes)) };
        }
        for (i, row) in acc.iter_mut().enumerate() {
            // SAFETY: (ic + i, pc + p) is inside op(A) (caller contract).
            let av = s.splat(unsafe { *a.ptr.add((ic + i) * a.rs + (pc + p) * a.cs) });
            for j in 0..NV {
                row[j] = s.mul_add_fast(av, bv[j], row[j]);
            }
        }
    }
    for (i, row) in acc.iter().enumerate() {
        for (j, &v) in row.iter().enumerate() {
            let col = j * lanes;
            if col >= cols {
                break;
            }
            // SAFETY: row ic + i and columns jc + col .. jc + col + valid are inside C.
            unsafe {
                let cp = c.add((ic + i) * ldc + jc + col);
                if col + lanes <= cols {
                    let out = if overwrite { v } else { s.add(s.load(cp), v) };
                    s.store(cp, out);
                } else {
                    let mut tmp = [T::zero(); MAX_LANES];
                    s.store(tmp.as_mut_ptr(), v);
                    for (q, &t) in tmp.iter().enumerate().take(cols - col) {
                        let dst = cp.add(q);
                        *dst = if overwrite { t } else { *dst + t };
                    }
                }
            }
        }
    }
}
