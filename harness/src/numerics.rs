//! Shared numerics used by several checks, written once: regression fits, an ODE integrator,
//! seeded independent random streams and Gaussian sampling, robust summaries, crossing times, and
//! small dense linear algebra (through `nalgebra`).
//!
//! Everything here is deterministic: the same inputs give the same bits.

use descent_kernels::random;
pub use descent_kernels::random::Xoshiro256PlusPlus as Rng;
use nalgebra::{DMatrix, DVector};

// ------------------------------------------------------------------ regression

/// An ordinary-least-squares line `y ≈ intercept + slope·x` with standard errors.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct LineFit {
    /// Fitted slope.
    pub slope: f64,
    /// Fitted intercept.
    pub intercept: f64,
    /// Standard error of the slope (`NaN` with fewer than three points).
    pub slope_se: f64,
    /// Standard error of the intercept (`NaN` with fewer than three points).
    pub intercept_se: f64,
}

/// OLS fit of `y` on `x`. Panics if the lengths differ, there are fewer than two points, or all
/// `x` are equal (the slope is then undefined).
pub fn ols(x: &[f64], y: &[f64]) -> LineFit {
    assert_eq!(x.len(), y.len(), "ols: x and y lengths differ");
    let n = x.len();
    assert!(n >= 2, "ols: need at least two points");
    let nf = n as f64;
    let mx = x.iter().sum::<f64>() / nf;
    let my = y.iter().sum::<f64>() / nf;
    let sxx: f64 = x.iter().map(|&a| (a - mx) * (a - mx)).sum();
    let sxy: f64 = x.iter().zip(y).map(|(&a, &b)| (a - mx) * (b - my)).sum();
    assert!(sxx > 0.0, "ols: all x are equal");
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    let (slope_se, intercept_se) = if n > 2 {
        let rss: f64 = x
            .iter()
            .zip(y)
            .map(|(&a, &b)| (b - intercept - slope * a).powi(2))
            .sum();
        let s2 = rss / (nf - 2.0);
        let sum_x2: f64 = x.iter().map(|a| a * a).sum();
        ((s2 / sxx).sqrt(), (s2 * sum_x2 / (nf * sxx)).sqrt())
    } else {
        (f64::NAN, f64::NAN)
    };
    LineFit {
        slope,
        intercept,
        slope_se,
        intercept_se,
    }
}

/// Slope of `log y` against `log x` (natural logarithms), with its standard error: the exponent
/// `p` of `y ∝ x^p`. Panics on non-positive values.
pub fn loglog_fit(x: &[f64], y: &[f64]) -> LineFit {
    assert!(
        x.iter().chain(y).all(|&v| v > 0.0),
        "loglog_fit: values must be positive"
    );
    let lx: Vec<f64> = x.iter().map(|v| v.ln()).collect();
    let ly: Vec<f64> = y.iter().map(|v| v.ln()).collect();
    ols(&lx, &ly)
}

// ------------------------------------------------------------------ ODE

/// Classic fourth-order Runge–Kutta for `u' = f(t, u)` in `R^N`, from `u(t0) = u0`, sampled at
/// `times` (non-decreasing, `>= t0`). Steps of `dt` are taken between samples; the last step
/// before each sample is shortened to land on it exactly, so the samples do not depend on how the
/// grid divides `dt`.
pub fn rk4<const N: usize>(
    f: impl Fn(f64, &[f64; N]) -> [f64; N],
    t0: f64,
    u0: [f64; N],
    times: &[f64],
    dt: f64,
) -> Vec<[f64; N]> {
    assert!(dt > 0.0 && dt.is_finite(), "rk4: dt must be positive");
    let step = |t: f64, u: &[f64; N], h: f64| -> [f64; N] {
        let add = |a: &[f64; N], b: &[f64; N], s: f64| -> [f64; N] {
            let mut o = *a;
            for i in 0..N {
                o[i] += s * b[i];
            }
            o
        };
        let k1 = f(t, u);
        let k2 = f(t + h / 2.0, &add(u, &k1, h / 2.0));
        let k3 = f(t + h / 2.0, &add(u, &k2, h / 2.0));
        let k4 = f(t + h, &add(u, &k3, h));
        let mut o = *u;
        for i in 0..N {
            o[i] += h / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]);
        }
        o
    };
    let (mut t, mut u) = (t0, u0);
    let mut out = Vec::with_capacity(times.len());
    for &target in times {
        assert!(target >= t, "rk4: sample times must be non-decreasing");
        // Whole steps while they do not overshoot (with a relative slack against round-off).
        while target - t > dt * (1.0 + 1e-9) {
            u = step(t, &u, dt);
            t += dt;
        }
        let h = target - t;
        if h > 0.0 {
            u = step(t, &u, h);
        }
        t = target;
        out.push(u);
    }
    out
}

// ------------------------------------------------------------------ randomness

/// The `i`-th independent random stream of `seed` (xoshiro256++ advanced by `i` jumps of 2^128;
/// see [`descent_kernels::random::stream`]). Give every (seed, run) its own stream index so runs
/// are independent of each other and of the order, or thread, they run in.
pub fn stream(seed: u64, i: u32) -> Rng {
    random::stream(seed, i)
}

/// Fills `out` with independent standard normals (Box–Muller, from the kernel crate).
pub fn fill_std_normal(rng: &mut Rng, out: &mut [f64]) {
    random::fill_normal(rng, out, 0.0, 1.0);
}

/// A uniformly distributed unit vector of `R^n` with its first `skip` coordinates zero (a random
/// direction orthogonal to the first `skip` basis vectors). Panics if `skip >= n`.
pub fn random_unit_vector(rng: &mut Rng, n: usize, skip: usize) -> Vec<f64> {
    assert!(skip < n, "random_unit_vector: no free coordinate");
    let mut w = vec![0.0; n];
    loop {
        fill_std_normal(rng, &mut w[skip..]);
        let norm = descent_kernels::vector::norm2(&w);
        if norm > 0.0 {
            descent_kernels::vector::scale(1.0 / norm, &mut w);
            return w;
        }
    }
}

// ------------------------------------------------------------------ summaries

/// Arithmetic mean (`NaN` for an empty slice).
pub fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

/// Sample standard deviation (`n − 1` denominator; `NaN` with fewer than two values).
pub fn std_dev(x: &[f64]) -> f64 {
    let m = mean(x);
    (x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (x.len() as f64 - 1.0)).sqrt()
}

/// Median (the mean of the two middle values for an even count). Panics on an empty slice or NaN.
pub fn median(x: &[f64]) -> f64 {
    quantile(x, 0.5)
}

/// The `q`-quantile with linear interpolation between order statistics (type 7, as numpy's
/// default). Panics on an empty slice, NaN, or `q` outside `[0, 1]`.
pub fn quantile(x: &[f64], q: f64) -> f64 {
    assert!(!x.is_empty(), "quantile of an empty slice");
    assert!((0.0..=1.0).contains(&q), "quantile: q must lie in [0, 1]");
    let mut s = x.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).expect("quantile: NaN"));
    let pos = q * (s.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    s[lo] + (pos - lo as f64) * (s[hi] - s[lo])
}

/// Time-average of samples `y(t)` over `[from, to]` by the trapezoid rule on the sample points
/// inside the window (the samples must be sorted by `t`). Panics if fewer than two samples fall in
/// the window.
pub fn time_average(t: &[f64], y: &[f64], from: f64, to: f64) -> f64 {
    assert_eq!(t.len(), y.len(), "time_average: lengths differ");
    let pts: Vec<(f64, f64)> = t
        .iter()
        .zip(y)
        .filter(|(&ti, _)| ti >= from && ti <= to)
        .map(|(&a, &b)| (a, b))
        .collect();
    assert!(
        pts.len() >= 2,
        "time_average: fewer than two samples in the window"
    );
    let mut area = 0.0;
    for w in pts.windows(2) {
        area += (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0;
    }
    area / (pts[pts.len() - 1].0 - pts[0].0)
}

/// The first time at which the piecewise-linear interpolant of `(t, y)` reaches `level`, crossing
/// it from either side; `None` if it never does.
pub fn crossing_time(t: &[f64], y: &[f64], level: f64) -> Option<f64> {
    assert_eq!(t.len(), y.len(), "crossing_time: lengths differ");
    if y.first().is_some_and(|&y0| y0 == level) {
        return Some(t[0]);
    }
    for i in 1..t.len() {
        let (a, b) = (y[i - 1] - level, y[i] - level);
        if b == 0.0 {
            return Some(t[i]);
        }
        if a * b < 0.0 {
            return Some(t[i - 1] + (t[i] - t[i - 1]) * a / (a - b));
        }
    }
    None
}

// ------------------------------------------------------------------ linear algebra

/// Eigen-decomposition of a symmetric matrix: eigenvalues in ascending order and the matching
/// orthonormal eigenvectors as columns.
pub fn sym_eigen(a: &DMatrix<f64>) -> (DVector<f64>, DMatrix<f64>) {
    let e = a.clone().symmetric_eigen();
    let mut idx: Vec<usize> = (0..e.eigenvalues.len()).collect();
    idx.sort_by(|&i, &j| e.eigenvalues[i].total_cmp(&e.eigenvalues[j]));
    let vals = DVector::from_iterator(idx.len(), idx.iter().map(|&i| e.eigenvalues[i]));
    let vecs = DMatrix::from_columns(
        &idx.iter()
            .map(|&i| e.eigenvectors.column(i).into_owned())
            .collect::<Vec<_>>(),
    );
    (vals, vecs)
}

/// Thin QR: `a = q·r` with orthonormal columns `q` (m×k, k = min(m, n)) and upper-triangular `r`.
pub fn qr(a: &DMatrix<f64>) -> (DMatrix<f64>, DMatrix<f64>) {
    let d = a.clone().qr();
    (d.q(), d.r())
}

/// Singular values in descending order (nalgebra's SVD, without the vectors).
pub fn singular_values(a: &DMatrix<f64>) -> Vec<f64> {
    let mut s: Vec<f64> = a.singular_values().iter().copied().collect();
    s.sort_by(|a, b| b.total_cmp(a));
    s
}

/// Principal angles (radians, ascending) between the column spans of `a` and `b`: the arccosines
/// of the singular values of `Qaᵀ·Qb`, clamped to `[0, 1]` against round-off.
pub fn principal_angles(a: &DMatrix<f64>, b: &DMatrix<f64>) -> Vec<f64> {
    assert_eq!(a.nrows(), b.nrows(), "principal_angles: row counts differ");
    let (qa, _) = qr(a);
    let (qb, _) = qr(b);
    let m = qa.transpose() * qb;
    let mut angles: Vec<f64> = singular_values(&m)
        .into_iter()
        .map(|s| s.clamp(0.0, 1.0).acos())
        .collect();
    angles.sort_by(|a, b| a.total_cmp(b));
    angles
}

/// Solves `a·x = b` for square `a` by LU with partial pivoting; `None` if `a` is singular.
pub fn solve(a: &DMatrix<f64>, b: &DVector<f64>) -> Option<DVector<f64>> {
    a.clone().lu().solve(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ols_recovers_an_exact_line_and_zero_errors() {
        let x = [1.0, 2.0, 3.0, 4.0];
        let y: Vec<f64> = x.iter().map(|v| 3.0 - 2.0 * v).collect();
        let f = ols(&x, &y);
        assert!((f.slope + 2.0).abs() < 1e-12 && (f.intercept - 3.0).abs() < 1e-12);
        assert!(f.slope_se < 1e-12);
    }

    #[test]
    fn ols_standard_error_matches_textbook_example() {
        // x̄ = 2.5, ȳ = 2.5, Sxx = 5, Sxy = 3: slope 0.6, intercept 1.
        let x = [1.0, 2.0, 3.0, 4.0];
        let y = [2.0, 1.0, 4.0, 3.0];
        let f = ols(&x, &y);
        assert!((f.slope - 0.6).abs() < 1e-12);
        assert!((f.intercept - 1.0).abs() < 1e-12);
        // residuals 0.4, −1.2, 1.2, −0.4: RSS = 3.2, s² = 1.6, se = √(1.6/5).
        assert!((f.slope_se - (1.6f64 / 5.0).sqrt()).abs() < 1e-12);
        // se(intercept) = √(s²·Σx²/(n·Sxx)) = √(1.6·30/20).
        assert!((f.intercept_se - (1.6f64 * 30.0 / 20.0).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn loglog_slope_of_a_power_law() {
        let x = [250.0, 500.0, 1000.0, 2000.0];
        let y: Vec<f64> = x.iter().map(|v: &f64| 3.0 * v.powf(-0.5)).collect();
        assert!((loglog_fit(&x, &y).slope + 0.5).abs() < 1e-12);
    }

    #[test]
    fn rk4_solves_exponential_decay_to_high_accuracy_on_any_grid() {
        let times = [0.0, 0.37, 1.0, 2.5];
        let u = rk4(|_, u: &[f64; 1]| [-2.0 * u[0]], 0.0, [1.0], &times, 1e-3);
        for (t, ui) in times.iter().zip(&u) {
            assert!((ui[0] - (-2.0 * t).exp()).abs() < 1e-12, "{t}");
        }
    }

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let (mut a, mut b, mut c) = (stream(7, 1), stream(7, 1), stream(7, 2));
        let (mut xa, mut xb, mut xc) = (vec![0.0; 8], vec![0.0; 8], vec![0.0; 8]);
        fill_std_normal(&mut a, &mut xa);
        fill_std_normal(&mut b, &mut xb);
        fill_std_normal(&mut c, &mut xc);
        assert_eq!(xa, xb);
        assert_ne!(xa, xc);
    }

    #[test]
    fn summaries() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!((time_average(&[0.0, 1.0, 2.0], &[0.0, 1.0, 2.0], 0.0, 2.0) - 1.0).abs() < 1e-15);
        assert_eq!(
            crossing_time(&[0.0, 1.0, 2.0], &[0.0, 1.0, 3.0], 2.0),
            Some(1.5)
        );
        assert_eq!(crossing_time(&[0.0, 1.0], &[0.0, 1.0], 5.0), None);
    }

    #[test]
    fn linear_algebra_helpers() {
        let a = DMatrix::from_row_slice(2, 2, &[2.0, 1.0, 1.0, 2.0]);
        let (vals, vecs) = sym_eigen(&a);
        assert!((vals[0] - 1.0).abs() < 1e-12 && (vals[1] - 3.0).abs() < 1e-12);
        let recon = &vecs * DMatrix::from_diagonal(&vals) * vecs.transpose();
        assert!((recon - &a).norm() < 1e-12);
        let x = solve(&a, &DVector::from_vec(vec![3.0, 3.0])).unwrap();
        assert!((x[0] - 1.0).abs() < 1e-12 && (x[1] - 1.0).abs() < 1e-12);
        let e1 = DMatrix::from_column_slice(3, 1, &[1.0, 0.0, 0.0]);
        let d = DMatrix::from_column_slice(3, 1, &[1.0, 1.0, 0.0]);
        let ang = principal_angles(&e1, &d);
        assert!((ang[0] - std::f64::consts::FRAC_PI_4).abs() < 1e-12);
        let (q, r) = qr(&d);
        assert!((q * r - d).norm() < 1e-12);
    }
}
