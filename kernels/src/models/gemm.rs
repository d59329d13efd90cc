//! Matrix multiply: `C = op(A)·op(B)` or `C += op(A)·op(B)`, row-major, any shape.
//!
//! Structure (BLIS-style, sized for small models):
//! - the output is cut into tiles of `TILE_ROWS × (TILE_VECTORS · LANES)` held in registers:
//!   8 × 32 (f32) / 8 × 24 (f64) on AVX-512, 6 × 16 / 6 × 8 on AVX2+FMA, 6 × 8 / 6 × 4 on SSE2,
//!   8 × 12 / 8 × 6 on NEON, 4 × 4 on the scalar backend (AVX-512's f32 tile is two vectors wide:
//!   on Zen 4 it ran the 256 × 784 × 256 product at 93% of the FMA peak against 80% for 8 × 48);
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
//! Products with fewer rows than one tile (`m < TILE_ROWS`: a one-filter convolution, a
//! matrix–vector product) cannot spread the cost of packing over several row tiles, so on the SIMD
//! backends:
//! - with `op(B) = B` the micro-kernel reads `B` in place: full-width tile columns, then the whole
//!   vectors of a narrower last tile column with a tile of that many vectors; only its last columns
//!   (fewer than `LANES`) are packed. Per element these are the same operations on the same values
//!   as the packed panel, so the same bits (a test compares each row with the same row of a
//!   product with more rows);
//! - with `op(B) = Bᵀ` and `op(A) = A` (rows of both contiguous) each `C[i][j]` is a dot product of
//!   row `i` of `A` and row `j` of `B`: `LANES` partial sums (lane `l` sums the `p ≡ l mod LANES`
//!   in increasing `p`, a zero-padded vector for the last `k mod LANES`), then the backend's fixed
//!   lane reduction, then added to `C` when accumulating.
//!
//! Rounding: each `C[i][j]` is otherwise the sum over `p` in increasing order within each `KC`
//! block (one rounding per multiply-add), blocks added in order. Error bound of either order, used
//! by the tests: `|C − exact| <= (k + 4)·u·Σ_p |A[i][p]|·|B[p][j]|`. Bit-reproducible on one
//! backend.

use crate::arch::{run_on, Kernel};
use crate::arch::{Simd, MAX_LANES};
use crate::error::{check_shape, dim_product};
use crate::{Backend, Element, Error};
use core::mem::MaybeUninit;

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
            (8, 2) => gemm::<T, S, 8, 2>(s, self.spec, self.a, self.b, self.c),
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
    // One row tile at most: packing would not be shared (see the module documentation).
    let few_rows = lanes > 1 && m < MR;
    if few_rows && spec.trans_b && !spec.trans_a {
        // SAFETY: `MatMul::validate` checked a (m × k), b (n × k, as op(B) = Bᵀ) and c (m × n).
        unsafe { row_dots(s, spec, a.as_ptr(), b.as_ptr(), c.as_mut_ptr()) };
        return;
    }
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
    // Written (every row of the tile width, padding included) before each read: no zeroing.
    let mut panel = [const { MaybeUninit::<T>::uninit() }; PANEL];
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
            if few_rows && !spec.trans_b && lanes <= cols && cols < nr {
                // The last tile column is narrower than a tile but at least one vector wide: its
                // whole vectors are read in place by a tile of that many vectors (per element the
                // same multiply-adds in the same order as a full tile), the rest (fewer than
                // LANES columns) is packed below.
                let width = cols - cols % lanes;
                for ic in 0..m {
                    // SAFETY: row ic < m, inner indices pc..pc+kc < k, columns jc..jc+width <= n
                    // of C and of B (rows pc..pc+kc of B, row stride n), as `MatMul::validate`
                    // checked.
                    unsafe {
                        narrow_tile::<T, S>(
                            s,
                            a_view,
                            ic,
                            pc,
                            kc,
                            (b[pc * n + jc..].as_ptr(), n),
                            c_ptr,
                            n,
                            jc,
                            width / lanes,
                            overwrite,
                        )
                    };
                }
                jc += width;
                continue;
            }
            // op(B)[pc .. pc + kc, jc .. jc + cols] as kc rows of nr: in place (row stride n) for a
            // full tile column of an untransposed B under one row tile, else packed (zero-padded).
            let (bp, ldb) = if few_rows && !spec.trans_b && cols == nr {
                (b[pc * n + jc..].as_ptr(), n)
            } else {
                let dst = panel.as_mut_ptr().cast::<T>();
                for p in 0..kc {
                    // SAFETY: row p < kc of the panel holds nr elements (kc·nr <= PANEL); the
                    // source elements op(B)(pc + p, jc + j), j < cols, are inside B.
                    unsafe {
                        pack_row::<T, S, NV>(
                            s,
                            dst.add(p * nr),
                            b.as_ptr().add((pc + p) * rsb + jc * csb),
                            cols,
                            csb,
                        )
                    };
                }
                (panel.as_ptr().cast::<T>(), nr)
            };
            let mut ic = 0;
            while ic + MR <= m {
                // SAFETY: rows ic..ic+MR < m, inner indices pc..pc+kc < k, columns jc..jc+cols <= n,
                // so every A read and C access is inside the buffers validated by `MatMul::validate`;
                // bp holds kc rows of nr elements at stride ldb: the panel (kc·nr <= PANEL, its
                // first kc rows written in full just above), or B itself, whose rows pc..pc+kc <= k
                // have the columns jc..jc+nr <= n.
                unsafe {
                    tile::<T, S, MR, NV>(
                        s,
                        a_view,
                        ic,
                        pc,
                        kc,
                        (bp, ldb),
                        c_ptr,
                        n,
                        jc,
                        cols,
                        overwrite,
                    )
                };
                ic += MR;
            }
            while ic < m {
                // SAFETY: as above, for the single row ic < m.
                unsafe {
                    tile::<T, S, 1, NV>(
                        s,
                        a_view,
                        ic,
                        pc,
                        kc,
                        (bp, ldb),
                        c_ptr,
                        n,
                        jc,
                        cols,
                        overwrite,
                    )
                };
                ic += 1;
            }
            jc += nr;
        }
        pc += kc;
    }
}

/// Writes one row of the packed panel: `src[j·stride]` for `j < cols`, then zeros up to
/// `NV·LANES`, a vector store at a time (these rows are short: a copy and a fill through the C
/// library's `memcpy` and `memset` cost more than the row).
///
/// # Safety
/// `dst` must be writable for `NV·LANES` elements and `src[j·stride]` readable for `j < cols`.
#[inline(always)]
unsafe fn pack_row<T: Element, S: Simd<T>, const NV: usize>(
    s: S,
    dst: *mut T,
    src: *const T,
    cols: usize,
    stride: usize,
) {
    let lanes = S::LANES;
    for v in 0..NV {
        let j = v * lanes;
        // SAFETY: j + LANES <= cols elements of a contiguous source are readable; the gathered
        // ones are j + q < cols; dst + j .. dst + j + LANES is inside the row (caller contract).
        unsafe {
            let out = if stride == 1 && j + lanes <= cols {
                s.load(src.add(j))
            } else {
                let mut tmp = [T::zero(); MAX_LANES];
                for (q, t) in tmp.iter_mut().enumerate().take(lanes) {
                    if j + q < cols {
                        *t = *src.add((j + q) * stride);
                    }
                }
                s.load(tmp.as_ptr())
            };
            s.store(dst.add(j), out);
        }
    }
}

/// One row of [`tile`], `vectors` vectors wide (fewer than the backend's `TILE_VECTORS`, and at
/// most 3: no backend's tile is wider than 4 vectors), all of them valid columns.
///
/// # Safety
/// As [`tile`] with `MR = 1` and `cols = vectors·LANES`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn narrow_tile<T: Element, S: Simd<T>>(
    s: S,
    a: Strided<T>,
    ic: usize,
    pc: usize,
    kc: usize,
    b: (*const T, usize),
    c: *mut T,
    ldc: usize,
    jc: usize,
    vectors: usize,
    overwrite: bool,
) {
    let cols = vectors * S::LANES;
    // SAFETY: the caller's contract, for the tile width each arm names.
    unsafe {
        match vectors {
            1 => tile::<T, S, 1, 1>(s, a, ic, pc, kc, b, c, ldc, jc, cols, overwrite),
            2 => tile::<T, S, 1, 2>(s, a, ic, pc, kc, b, c, ldc, jc, cols, overwrite),
            _ => {
                debug_assert_eq!(vectors, 3);
                tile::<T, S, 1, 3>(s, a, ic, pc, kc, b, c, ldc, jc, cols, overwrite)
            }
        }
    }
}

/// `C (+)= A·Bᵀ` as dot products of contiguous rows, `C[i][j]` from row `i` of `A` (`m × k`) and
/// row `j` of `B` (`n × k`): the order of the module documentation. Four columns at a time, so that
/// four independent accumulators hide the multiply-add latency.
///
/// # Safety
/// `a`, `b`, `c` must hold `m·k`, `n·k`, `m·n` elements.
#[inline(always)]
unsafe fn row_dots<T: Element, S: Simd<T>>(
    s: S,
    spec: MatMul,
    a: *const T,
    b: *const T,
    c: *mut T,
) {
    const COLS: usize = 4;
    let MatMul { m, n, k, .. } = spec;
    let lanes = S::LANES;
    let full = k - k % lanes;
    // Loads a vector of row `r` at `p`: in place below `full`, else the zero-padded rest.
    // SAFETY: every use passes a row `r` of k elements and p < k, so r + p .. r + min(p + LANES, k)
    // is inside the row, and the rest (k − p < LANES elements) fits the stack buffer.
    let load = |r: *const T, p: usize| unsafe {
        if p < full {
            s.load(r.add(p))
        } else {
            let mut tmp = [T::zero(); MAX_LANES];
            core::ptr::copy_nonoverlapping(r.add(p), tmp.as_mut_ptr(), k - p);
            s.load(tmp.as_ptr())
        }
    };
    let store = |dst: *mut T, v: T| {
        // SAFETY: dst is an element of C (caller contract).
        unsafe { *dst = if spec.accumulate { *dst + v } else { v } };
    };
    for i in 0..m {
        // SAFETY: row i < m of A.
        let ar = unsafe { a.add(i * k) };
        // SAFETY: row i < m of C.
        let cr = unsafe { c.add(i * n) };
        let mut j = 0;
        while j + COLS <= n {
            // SAFETY: rows j .. j + COLS <= n of B.
            let acc = unsafe { dots::<T, S, COLS>(s, k, &load, ar, b.add(j * k)) };
            for (q, &acc) in acc.iter().enumerate() {
                // SAFETY: j + q < n.
                store(unsafe { cr.add(j + q) }, s.reduce_add(acc));
            }
            j += COLS;
        }
        while j < n {
            // SAFETY: row j < n of B.
            let [acc] = unsafe { dots::<T, S, 1>(s, k, &load, ar, b.add(j * k)) };
            // SAFETY: j < n.
            store(unsafe { cr.add(j) }, s.reduce_add(acc));
            j += 1;
        }
    }
}

/// The `N` dot products of the row `ar` with the `N` consecutive rows of `b` (`k` elements each),
/// each in `LANES` partial sums (lane `l` sums the products at `p ≡ l` mod `LANES`), the vectors
/// loaded by `load` (row, offset).
///
/// # Safety
/// `ar` and the `N` rows from `b` must hold `k` elements each, as `load` requires.
#[inline(always)]
unsafe fn dots<T: Element, S: Simd<T>, const N: usize>(
    s: S,
    k: usize,
    load: &impl Fn(*const T, usize) -> S::V,
    ar: *const T,
    b: *const T,
) -> [S::V; N] {
    let mut acc = [s.splat(T::zero()); N];
    let mut p = 0;
    while p < k {
        let av = load(ar, p);
        for (q, acc) in acc.iter_mut().enumerate() {
            // SAFETY: row q < N of b (caller contract).
            let bv = load(unsafe { b.add(q * k) }, p);
            *acc = s.mul_add_fast(av, bv, *acc);
        }
        p += S::LANES;
    }
    acc
}

/// One register tile: `C[ic .. ic+MR][jc .. jc+cols] (+)= op(A)[ic.., pc .. pc+kc] · panel`.
///
/// # Safety
/// Rows `ic..ic+MR` and inner indices `pc..pc+kc` must be inside `op(A)`; columns `jc..jc+cols`
/// inside `C` (row length `ldc`, at least `ic + MR` rows); `panel = (ptr, stride)` holds `kc`
/// rows of `NV·LANES` elements, `stride` apart.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<T: Element, S: Simd<T>, const MR: usize, const NV: usize>(
    s: S,
    a: Strided<T>,
    ic: usize,
    pc: usize,
    kc: usize,
    (bp, ldb): (*const T, usize),
    c: *mut T,
    ldc: usize,
    jc: usize,
    cols: usize,
    overwrite: bool,
) {
    let lanes = S::LANES;

    let zero = s.splat(T::zero());
    let mut acc = [[zero; NV]; MR];
    for p in 0..kc {
        let mut bv = [zero; NV];
        for (j, v) in bv.iter_mut().enumerate() {
            // SAFETY: p < kc and j·lanes + lanes <= nr: inside row p of the panel.
            *v = unsafe { s.load(bp.add(p * ldb + j * lanes)) };
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
