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

/// A single-qubit Pauli operator: the axis of a rotation `exp(−iθσ/2)`, or the observable
/// measured on qubit 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pauli {
    /// σ_x.
    X,
    /// σ_y.
    Y,
    /// σ_z.
    Z,
}

impl Pauli {
    /// Parses `x`, `y` or `z` (the configuration's spelling).
    pub fn parse(name: &str) -> Option<Pauli> {
        match name {
            "x" => Some(Pauli::X),
            "y" => Some(Pauli::Y),
            "z" => Some(Pauli::Z),
            _ => None,
        }
    }
}

/// The entangling layer after each unitary's rotations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entangler {
    /// CZ on every neighbouring pair (q, q+1): diagonal, the pairs commute, self-inverse.
    Cz,
    /// CNOT(control q, target q+1) for q = 0, 1, …, n−2 in that order (a basis permutation; the
    /// inverse applies the same CNOTs in the reverse order).
    Cnot,
}

impl Entangler {
    /// Parses `cz` or `cnot`.
    pub fn parse(name: &str) -> Option<Entangler> {
        match name {
            "cz" => Some(Entangler::Cz),
            "cnot" => Some(Entangler::Cnot),
            _ => None,
        }
    }
}

/// One gate of the model family.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Gate {
    /// `R_σ(θ) = exp(−iθσ/2)` on qubit `q`, with `θ = params[index]`.
    Rot {
        /// Qubit.
        q: usize,
        /// Index into the parameter vector.
        index: usize,
        /// The rotation's generator σ (times ½).
        axis: Pauli,
    },
    /// The entangling ladder.
    Ladder(Entangler),
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

    /// Applies `RX(θ) = [[c, −is], [−is, c]]` on qubit q.
    pub fn rx(&mut self, q: usize, theta: f64) {
        let (s, c) = (0.5 * theta).sin_cos();
        let m = self.mask(q);
        for k in 0..self.re.len() {
            if k & m == 0 {
                let j = k | m;
                let (a0r, a0i, a1r, a1i) = (self.re[k], self.im[k], self.re[j], self.im[j]);
                // −is·a = s·Im a − i·s·Re a.
                self.re[k] = c * a0r + s * a1i;
                self.im[k] = c * a0i - s * a1r;
                self.re[j] = c * a1r + s * a0i;
                self.im[j] = c * a1i - s * a0r;
            }
        }
    }

    /// Applies `RZ(θ) = diag(e^{−iθ/2}, e^{iθ/2})` on qubit q.
    pub fn rz(&mut self, q: usize, theta: f64) {
        let (s, c) = (0.5 * theta).sin_cos();
        let m = self.mask(q);
        for k in 0..self.re.len() {
            let (ar, ai) = (self.re[k], self.im[k]);
            // bit 0: (c − is)·a; bit 1: (c + is)·a.
            let s = if k & m == 0 { s } else { -s };
            self.re[k] = c * ar + s * ai;
            self.im[k] = c * ai - s * ar;
        }
    }

    /// Applies `exp(−iθσ/2)` on qubit q.
    pub fn rot(&mut self, q: usize, axis: Pauli, theta: f64) {
        match axis {
            Pauli::X => self.rx(q, theta),
            Pauli::Y => self.ry(q, theta),
            Pauli::Z => self.rz(q, theta),
        }
    }

    /// Applies the CNOT ladder CNOT(q → q+1), q = 0..n−1 in order, or in reverse order (its
    /// inverse) with `inverse`.
    pub fn cnot_ladder(&mut self, inverse: bool) {
        let n = self.n;
        let order: Vec<usize> = if inverse {
            (0..n.saturating_sub(1)).rev().collect()
        } else {
            (0..n.saturating_sub(1)).collect()
        };
        for q in order {
            let (c, t) = (self.mask(q), self.mask(q + 1));
            for k in 0..self.re.len() {
                if k & c != 0 && k & t == 0 {
                    self.re.swap(k, k | t);
                    self.im.swap(k, k | t);
                }
            }
        }
    }

    /// Multiplies by the Pauli `p` on qubit q.
    pub fn pauli(&mut self, q: usize, p: Pauli) {
        let m = self.mask(q);
        for k in 0..self.re.len() {
            if k & m != 0 {
                continue;
            }
            let j = k | m;
            match p {
                Pauli::X => {
                    self.re.swap(k, j);
                    self.im.swap(k, j);
                }
                Pauli::Y => {
                    // (Yb)_0 = −i b_1, (Yb)_1 = i b_0.
                    let (b0r, b0i, b1r, b1i) = (self.re[k], self.im[k], self.re[j], self.im[j]);
                    self.re[k] = b1i;
                    self.im[k] = -b1r;
                    self.re[j] = -b0i;
                    self.im[j] = b0r;
                }
                Pauli::Z => {
                    self.re[j] = -self.re[j];
                    self.im[j] = -self.im[j];
                }
            }
        }
    }

    /// Rotates qubit 0 so that measuring it in the computational basis measures `p`: the
    /// eigenvector of eigenvalue +1 goes to |0⟩ (X: RY(−π/2); Y: RX(π/2); Z: nothing).
    pub fn to_measurement_basis(&mut self, p: Pauli) {
        let h = std::f64::consts::FRAC_PI_2;
        match p {
            Pauli::X => self.ry(0, -h),
            Pauli::Y => self.rx(0, h),
            Pauli::Z => {}
        }
    }

    /// `⟨p on qubit 0⟩ = Re⟨ψ|p_0|ψ⟩`.
    pub fn expect(&self, p: Pauli) -> f64 {
        if p == Pauli::Z {
            return self.expect_z0();
        }
        let mut b = self.clone();
        b.pauli(0, p);
        vector::dot(&self.re, &b.re).expect("lengths")
            + vector::dot(&self.im, &b.im).expect("lengths")
    }

    /// `Im⟨a|σ_q b⟩`.
    pub fn im_pauli(a: &State, b: &State, q: usize, p: Pauli) -> f64 {
        let mut pb = b.clone();
        pb.pauli(q, p);
        vector::dot(&a.re, &pb.im).expect("lengths") - vector::dot(&a.im, &pb.re).expect("lengths")
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
            Gate::Rot { q, index, axis } => {
                let t = params[index];
                self.rot(q, axis, if inverse { -t } else { t })
            }
            Gate::Ladder(Entangler::Cz) => self.cz_ladder(),
            Gate::Ladder(Entangler::Cnot) => self.cnot_ladder(inverse),
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

    /// Probabilities `|amp_k|²` of every basis outcome.
    pub fn probabilities(&self) -> Vec<f64> {
        self.re
            .iter()
            .zip(&self.im)
            .map(|(r, i)| r * r + i * i)
            .collect()
    }
}

/// The circuit family: the rotation axis, the entangling ladder and the Pauli observable on
/// qubit 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Family {
    /// Axis σ of every rotation `exp(−iθσ/2)`.
    pub axis: Pauli,
    /// Entangling ladder after each unitary's rotations.
    pub gate: Entangler,
    /// Observable on qubit 0.
    pub observable: Pauli,
}

impl Default for Family {
    /// The design's family: RY, CZ ladder, Z on qubit 0.
    fn default() -> Self {
        Family {
            axis: Pauli::Y,
            gate: Entangler::Cz,
            observable: Pauli::Z,
        }
    }
}

/// The model's gate list: 2L unitaries alternating Alice and Bob, each a rotation about
/// `family.axis` on every qubit (parameters `u·n + q`) then the entangling ladder.
pub fn circuit(n: usize, layers: usize, family: Family) -> Vec<Gate> {
    let mut g = Vec::new();
    for u in 0..2 * layers {
        for q in 0..n {
            g.push(Gate::Rot {
                q,
                index: u * n + q,
                axis: family.axis,
            });
        }
        g.push(Gate::Ladder(family.gate));
    }
    g
}

/// Runs the circuit on `x` and returns the final state.
pub fn run(x: &State, gates: &[Gate], params: &[f64]) -> State {
    let mut s = x.clone();
    for &g in gates {
        s.apply(g, params, false);
    }
    s
}

/// Runs the circuit on `x` and returns `⟨observable on qubit 0⟩`.
pub fn expectation(x: &State, gates: &[Gate], params: &[f64], observable: Pauli) -> f64 {
    run(x, gates, params).expect(observable)
}

/// Adjoint gradient: one forward pass, then a backward sweep carrying `mu` (the state right after
/// each gate) and `nu = V† O V mu` (V = rest of the circuit, O the observable on qubit 0);
/// `dE/dθ = 2·sign·Im⟨nu|σ/2|mu⟩` for a rotation `exp(−iθσ/2)`. `sign` = +1 is the correct
/// convention; −1 is the flipped-generator control.
pub fn adjoint_gradient(
    x: &State,
    gates: &[Gate],
    params: &[f64],
    observable: Pauli,
    sign: f64,
) -> Vec<f64> {
    let mut mu = run(x, gates, params);
    let mut nu = mu.clone();
    nu.pauli(0, observable);
    let mut grad = vec![0.0; params.len()];
    for &g in gates.iter().rev() {
        if let Gate::Rot { q, index, axis } = g {
            grad[index] = sign * State::im_pauli(&nu, &mu, q, axis);
        }
        mu.apply(g, params, true);
        nu.apply(g, params, true);
    }
    grad
}

/// Shift-rule gradient `[E(θ_j + s) − E(θ_j − s)] / 2` (exact for s = π/2).
pub fn shift_gradient(
    x: &State,
    gates: &[Gate],
    params: &[f64],
    observable: Pauli,
    shift: f64,
) -> Vec<f64> {
    (0..params.len())
        .map(|j| {
            let mut p = params.to_vec();
            p[j] += shift;
            let plus = expectation(x, gates, &p, observable);
            p[j] -= 2.0 * shift;
            let minus = expectation(x, gates, &p, observable);
            0.5 * (plus - minus)
        })
        .collect()
}

/// Central finite differences with step h.
pub fn finite_difference(
    x: &State,
    gates: &[Gate],
    params: &[f64],
    observable: Pauli,
    h: f64,
) -> Vec<f64> {
    shift_gradient(x, gates, params, observable, h)
        .into_iter()
        .map(|v| v / h)
        .collect()
}
