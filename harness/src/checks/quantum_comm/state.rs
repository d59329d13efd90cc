//! Complex state vectors for the quantum-communication checks, written once: amplitudes are kept
//! as separate real and imaginary arrays (structure of arrays), so norms and inner products go
//! through the crate's `vector` kernels. Qubit 0 is the most significant bit of the basis index.

use descent_kernels::vector;

/// An n-qubit state: `amp[k] = re[k] + i·im[k]`, k = 0..2^n.
#[derive(Clone, Debug)]
pub struct State {
    /// Qubits n.
    pub n: usize,
    /// Real parts.
    pub re: Vec<f64>,
    /// Imaginary parts.
    pub im: Vec<f64>,
}

/// One gate of the model family.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Gate {
    /// `RY(θ) = exp(−iθY/2)` on qubit `q`, with `θ = params[index]`.
    Ry {
        /// Qubit.
        q: usize,
        /// Index into the parameter vector.
        index: usize,
    },
    /// CZ on every neighbouring pair (q, q+1) (self-inverse, diagonal).
    CzLadder,
}

impl State {
    /// Amplitude-encodes `(re, im)`, normalised to unit norm. Panics if the length is not 2^n.
    pub fn encode(n: usize, re: &[f64], im: &[f64]) -> State {
        assert_eq!(re.len(), 1 << n, "amplitude encoding needs 2^n entries");
        assert_eq!(
            im.len(),
            re.len(),
            "real and imaginary parts differ in length"
        );
        let norm = (vector::sum_squares(re) + vector::sum_squares(im)).sqrt();
        let mut s = State {
            n,
            re: re.to_vec(),
            im: im.to_vec(),
        };
        vector::scale(1.0 / norm, &mut s.re);
        vector::scale(1.0 / norm, &mut s.im);
        s
    }

    /// Bit mask of qubit q in a basis index.
    fn mask(&self, q: usize) -> usize {
        1 << (self.n - 1 - q)
    }

    /// Applies `RY(θ) = [[c, −s], [s, c]]`, c = cos θ/2, s = sin θ/2, on qubit q (a real
    /// rotation, applied to both parts).
    pub fn ry(&mut self, q: usize, theta: f64) {
        let (s, c) = (0.5 * theta).sin_cos();
        let m = self.mask(q);
        for part in [&mut self.re, &mut self.im] {
            for k in 0..part.len() {
                if k & m == 0 {
                    let (a0, a1) = (part[k], part[k | m]);
                    part[k] = c * a0 - s * a1;
                    part[k | m] = s * a0 + c * a1;
                }
            }
        }
    }

    /// Applies CZ on every pair (q, q+1).
    pub fn cz_ladder(&mut self) {
        for k in 0..self.re.len() {
            let flips = (0..self.n.saturating_sub(1))
                .filter(|&q| k & self.mask(q) != 0 && k & self.mask(q + 1) != 0)
                .count();
            if flips % 2 == 1 {
                self.re[k] = -self.re[k];
                self.im[k] = -self.im[k];
            }
        }
    }

    /// Applies `g` (or its inverse) with parameters `params`.
    pub fn apply(&mut self, g: Gate, params: &[f64], inverse: bool) {
        match g {
            Gate::Ry { q, index } => {
                let t = params[index];
                self.ry(q, if inverse { -t } else { t })
            }
            Gate::CzLadder => self.cz_ladder(),
        }
    }

    /// Multiplies by `Z_0` (sign −1 where qubit 0 is 1).
    pub fn z0(&mut self) {
        let half = self.re.len() / 2;
        for part in [&mut self.re, &mut self.im] {
            for v in &mut part[half..] {
                *v = -*v;
            }
        }
    }

    /// `P(qubit 0 = 0)` = squared norm of the first half.
    pub fn prob_q0_zero(&self) -> f64 {
        let half = self.re.len() / 2;
        vector::sum_squares(&self.re[..half]) + vector::sum_squares(&self.im[..half])
    }

    /// `<Z_0> = P(0) − P(1)`.
    pub fn expect_z0(&self) -> f64 {
        let p0 = self.prob_q0_zero();
        let all = vector::sum_squares(&self.re) + vector::sum_squares(&self.im);
        2.0 * p0 - all
    }

    /// `Im <a| (Y_q/2) |b>`: `(Y b)_0 = −i b_1`, `(Y b)_1 = i b_0` on qubit q.
    pub fn im_y_half(a: &State, b: &State, q: usize) -> f64 {
        let m = a.mask(q);
        // Y b as (re, im): for bit 0, −i b1 = (b1.im, −b1.re); for bit 1, i b0 = (−b0.im, b0.re).
        let mut yr = vec![0.0; b.re.len()];
        let mut yi = vec![0.0; b.re.len()];
        for k in 0..b.re.len() {
            if k & m == 0 {
                yr[k] = b.im[k | m];
                yi[k] = -b.re[k | m];
            } else {
                yr[k] = -b.im[k ^ m];
                yi[k] = b.re[k ^ m];
            }
        }
        // Im <a|y> = Σ re(a)·im(y) − im(a)·re(y).
        let v =
            vector::dot(&a.re, &yi).expect("lengths") - vector::dot(&a.im, &yr).expect("lengths");
        0.5 * v
    }

    /// Probabilities `|amp_k|²` of every basis outcome.
    pub fn probabilities(&self) -> Vec<f64> {
        self.re
            .iter()
            .zip(&self.im)
            .map(|(r, i)| r * r + i * i)
            .collect()
    }
}

/// The model's gate list: 2L unitaries alternating Alice and Bob, each RY on every qubit
/// (parameters `u·n + q`) then a CZ ladder.
pub fn circuit(n: usize, layers: usize) -> Vec<Gate> {
    let mut g = Vec::new();
    for u in 0..2 * layers {
        for q in 0..n {
            g.push(Gate::Ry {
                q,
                index: u * n + q,
            });
        }
        g.push(Gate::CzLadder);
    }
    g
}

/// Runs the circuit on `x` and returns `<Z_0>`.
pub fn expectation(x: &State, gates: &[Gate], params: &[f64]) -> f64 {
    let mut s = x.clone();
    for &g in gates {
        s.apply(g, params, false);
    }
    s.expect_z0()
}

/// Adjoint gradient: one forward pass, then a backward sweep carrying `mu` (the state right after
/// each gate) and `nu = V† Z_0 V mu` (V = rest of the circuit); `dE/dθ = 2·sign·Im <nu|Y/2|mu>`.
/// `sign` = +1 is the correct convention for `RY = exp(−iθY/2)`; −1 is the flipped-generator
/// control.
pub fn adjoint_gradient(x: &State, gates: &[Gate], params: &[f64], sign: f64) -> Vec<f64> {
    let mut mu = x.clone();
    for &g in gates {
        mu.apply(g, params, false);
    }
    let mut nu = mu.clone();
    nu.z0();
    let mut grad = vec![0.0; params.len()];
    for &g in gates.iter().rev() {
        if let Gate::Ry { q, index } = g {
            grad[index] = 2.0 * sign * State::im_y_half(&nu, &mu, q);
        }
        mu.apply(g, params, true);
        nu.apply(g, params, true);
    }
    grad
}

/// Shift-rule gradient `[E(θ_j + s) − E(θ_j − s)] / 2` (exact for s = π/2).
pub fn shift_gradient(x: &State, gates: &[Gate], params: &[f64], shift: f64) -> Vec<f64> {
    (0..params.len())
        .map(|j| {
            let mut p = params.to_vec();
            p[j] += shift;
            let plus = expectation(x, gates, &p);
            p[j] -= 2.0 * shift;
            let minus = expectation(x, gates, &p);
            0.5 * (plus - minus)
        })
        .collect()
}

/// Central finite differences with step h.
pub fn finite_difference(x: &State, gates: &[Gate], params: &[f64], h: f64) -> Vec<f64> {
    shift_gradient(x, gates, params, h)
        .into_iter()
        .map(|v| v / h)
        .collect()
}
