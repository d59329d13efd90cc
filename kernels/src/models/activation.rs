//! Elementwise activations, forward and backward.
//!
//! ReLU, the doubled ReLU (soft threshold with a learnable bias) and the degree-2 polynomial are
//! SIMD kernels whose elementwise outputs are bit-identical on every backend; their parameter
//! gradients are reductions (backend-dependent order, reduction error budget). `tanh` calls
//! `libm` per element on every backend (there is no vector `tanh` here), so it is identical
//! everywhere too. Backward passes need only the activation's input `x`.

use crate::arch::driver::{fold, zip};
use crate::arch::Simd;
use crate::arch::{run_on, Kernel};
use crate::error::check_len;
use crate::{Backend, Element, Error};

/// An activation function. Parameters that training may learn (the soft-threshold bias, the
/// polynomial's coefficients) are part of the value; their gradients come back from `backward`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation<T> {
    /// `y = max(x, 0)` (NaN stays NaN); the derivative at 0 is taken as 0.
    Relu,
    /// `y = tanh(x)`.
    Tanh,
    /// The doubled ReLU of the local-signal-adaptivity model:
    /// `y = ReLU(x + b) − ReLU(−x + b)`. For `b < 0` it is soft thresholding at `|b|`
    /// (`sign(x)·max(|x| + b, 0)`); for `b = 0` it is the identity.
    SoftThreshold {
        /// The learnable bias `b`.
        bias: T,
    },
    /// `y = c0 + c1·x + c2·x²`, evaluated as `c0 + x·(c1 + c2·x)`.
    Poly2 {
        /// Coefficients `[c0, c1, c2]`.
        coeffs: [T; 3],
    },
}

/// Gradients of an activation's own parameters (zero-length for parameter-free ones).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ActivationGrad<T> {
    /// No parameters.
    None,
    /// `∂L/∂b` of [`Activation::SoftThreshold`].
    Bias(T),
    /// `∂L/∂[c0, c1, c2]` of [`Activation::Poly2`].
    Coeffs([T; 3]),
}

impl<T: Element> Activation<T> {
    /// `y = φ(x)` elementwise on the active backend.
    pub fn forward(&self, x: &[T], y: &mut [T]) -> Result<(), Error> {
        self.forward_on(Backend::active(), x, y)
    }

    /// `y = φ(x)` elementwise on `backend`.
    pub fn forward_on(&self, backend: Backend, x: &[T], y: &mut [T]) -> Result<(), Error> {
        check_len("x", y.len(), x.len())?;
        self.validate()?;
        run_on(backend, ForwardKernel { act: *self, x, y })
    }

    /// Backward pass: `dx = dy · φ'(x)` elementwise, and the gradient of the activation's
    /// parameters `Σ dy · ∂φ/∂θ`. (`tanh` recomputes `tanh(x)` for `1 − tanh²(x)`.)
    pub fn backward(&self, x: &[T], dy: &[T], dx: &mut [T]) -> Result<ActivationGrad<T>, Error> {
        self.backward_on(Backend::active(), x, dy, dx)
    }

    /// [`Activation::backward`] on `backend`.
    pub fn backward_on(
        &self,
        backend: Backend,
        x: &[T],
        dy: &[T],
        dx: &mut [T],
    ) -> Result<ActivationGrad<T>, Error> {
        check_len("dy", dx.len(), dy.len())?;
        self.check_backward(backend, x, dx)?;
        dx.copy_from_slice(dy);
        self.backward_in_place_on(backend, x, dx)
    }

    /// [`Activation::backward`] in place: `grad` holds `dy` on entry and `dx` on return.
    pub fn backward_in_place_on(
        &self,
        backend: Backend,
        x: &[T],
        grad: &mut [T],
    ) -> Result<ActivationGrad<T>, Error> {
        self.check_backward(backend, x, grad)?;
        run_on(
            backend,
            BackwardKernel {
                act: *self,
                x,
                grad,
            },
        )
    }

    fn check_backward(&self, backend: Backend, x: &[T], grad: &[T]) -> Result<(), Error> {
        check_len("x", grad.len(), x.len())?;
        self.validate()?;
        backend.ensure_available()
    }

    fn validate(&self) -> Result<(), Error> {
        let finite = match *self {
            Activation::SoftThreshold { bias } => bias.is_finite(),
            Activation::Poly2 { coeffs } => coeffs.iter().all(|c| c.is_finite()),
            _ => true,
        };
        if finite {
            Ok(())
        } else {
            Err(Error::InvalidHyperParameter {
                name: "activation parameters",
                requirement: "must be finite",
            })
        }
    }
}

struct ForwardKernel<'a, T> {
    act: Activation<T>,
    x: &'a [T],
    y: &'a mut [T],
}

impl<T: Element> Kernel<T> for ForwardKernel<'_, T> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd<T>>(self, s: S) {
        let n = self.y.len();
        let zero = s.splat(T::zero());
        let (rw, ro) = ([self.y.as_mut_ptr()], [self.x.as_ptr()]);
        // SAFETY: (every arm) x and y have length n (checked by `forward_on`); y is exclusive.
        unsafe {
            match self.act {
                Activation::Relu => zip(
                    s,
                    n,
                    rw,
                    ro,
                    #[inline(always)]
                    |[y], [x]| *y = s.select(s.is_nan(x), x, s.and(s.gt(x, zero), x)),
                ),
                Activation::SoftThreshold { bias } => {
                    let b = s.splat(bias);
                    zip(
                        s,
                        n,
                        rw,
                        ro,
                        #[inline(always)]
                        |[y], [x]| *y = doubled_relu(s, x, b),
                    )
                }
                Activation::Poly2 {
                    coeffs: [c0, c1, c2],
                } => {
                    let (c0, c1, c2) = (s.splat(c0), s.splat(c1), s.splat(c2));
                    zip(
                        s,
                        n,
                        rw,
                        ro,
                        #[inline(always)]
                        |[y], [x]| *y = s.add(c0, s.mul(x, s.add(c1, s.mul(c2, x)))),
                    )
                }
                Activation::Tanh => {
                    for (y, &x) in self.y.iter_mut().zip(self.x) {
                        *y = x.tanh();
                    }
                }
            }
        }
    }
}

/// `ReLU(x + b) − ReLU(−x + b)`, with NaN propagated from `x`.
#[inline(always)]
fn doubled_relu<T: Element, S: Simd<T>>(s: S, x: S::V, b: S::V) -> S::V {
    let zero = s.splat(T::zero());
    let up = s.add(x, b);
    let down = s.sub(b, x);
    let r = s.sub(s.and(s.gt(up, zero), up), s.and(s.gt(down, zero), down));
    s.select(s.is_nan(x), x, r)
}

struct BackwardKernel<'a, T> {
    act: Activation<T>,
    x: &'a [T],
    /// `dy` on entry, `dx` on return.
    grad: &'a mut [T],
}

impl<T: Element> Kernel<T> for BackwardKernel<'_, T> {
    type Output = ActivationGrad<T>;
    #[inline(always)]
    fn run<S: Simd<T>>(self, s: S) -> ActivationGrad<T> {
        let n = self.grad.len();
        let zero = s.splat(T::zero());
        let one = s.splat(T::one());
        let g = self.grad.as_mut_ptr();
        let x = self.x.as_ptr();
        // SAFETY: (every arm) x, y and grad have length n (checked by `check_backward`); grad is
        // exclusive. Parameter gradients are folded from dy before the in-place zip overwrites it.
        unsafe {
            match self.act {
                Activation::Relu => {
                    zip(
                        s,
                        n,
                        [g],
                        [x],
                        #[inline(always)]
                        |[g], [x]| *g = s.and(s.gt(x, zero), *g),
                    );
                    ActivationGrad::None
                }
                Activation::Tanh => {
                    for (g, &x) in self.grad.iter_mut().zip(self.x) {
                        let y = x.tanh();
                        *g = *g * (T::one() - y * y);
                    }
                    ActivationGrad::None
                }
                Activation::SoftThreshold { bias } => {
                    let b = s.splat(bias);
                    // φ'(x) = [x + b > 0] + [b − x > 0];  ∂φ/∂b = [x + b > 0] − [b − x > 0].
                    let db = fold(
                        s,
                        n,
                        [x, g as *const T],
                        zero,
                        #[inline(always)]
                        |a, c| s.add(a, c),
                        #[inline(always)]
                        |acc, [x, dy]| {
                            let up = s.and(s.gt(s.add(x, b), zero), one);
                            let down = s.and(s.gt(s.sub(b, x), zero), one);
                            s.add(acc, s.mul(dy, s.sub(up, down)))
                        },
                    );
                    zip(
                        s,
                        n,
                        [g],
                        [x],
                        #[inline(always)]
                        |[g], [x]| {
                            let up = s.and(s.gt(s.add(x, b), zero), one);
                            let down = s.and(s.gt(s.sub(b, x), zero), one);
                            *g = s.mul(*g, s.add(up, down));
                        },
                    );
                    ActivationGrad::Bias(s.reduce_add(db))
                }
                Activation::Poly2 {
                    coeffs: [_, c1, c2],
                } => {
                    let gc = g as *const T;
                    let g0 = fold(
                        s,
                        n,
                        [gc],
                        zero,
                        #[inline(always)]
                        |a, c| s.add(a, c),
                        #[inline(always)]
                        |acc, [dy]| s.add(acc, dy),
                    );
                    let g1 = fold(
                        s,
                        n,
                        [x, gc],
                        zero,
                        #[inline(always)]
                        |a, c| s.add(a, c),
                        #[inline(always)]
                        |acc, [x, dy]| s.mul_add_fast(dy, x, acc),
                    );
                    let g2 = fold(
                        s,
                        n,
                        [x, gc],
                        zero,
                        #[inline(always)]
                        |a, c| s.add(a, c),
                        #[inline(always)]
                        |acc, [x, dy]| s.mul_add_fast(dy, s.mul(x, x), acc),
                    );
                    let (c1, two_c2) = (s.splat(c1), s.splat(c2 + c2));
                    zip(
                        s,
                        n,
                        [g],
                        [x],
                        #[inline(always)]
                        |[g], [x]| *g = s.mul(*g, s.add(c1, s.mul(two_c2, x))),
                    );
                    ActivationGrad::Coeffs([s.reduce_add(g0), s.reduce_add(g1), s.reduce_add(g2)])
                }
            }
        }
    }
}
