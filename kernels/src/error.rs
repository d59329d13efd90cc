//! The one error type of the crate. Every public kernel validates all of its inputs and returns one
//! of these *before* it writes a single element, so a rejected call leaves every buffer untouched.

use core::fmt;

/// Why a kernel refused to run. Nothing was written when one of these is returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// A buffer's length differs from the length of the buffer that sets it (usually the parameters).
    LengthMismatch {
        /// The buffer whose length is wrong (for example `"grads"`).
        buffer: &'static str,
        /// The length it must have.
        expected: usize,
        /// The length it has.
        found: usize,
    },
    /// A model buffer's length does not match the shape it was given.
    ShapeMismatch {
        /// The buffer whose length is wrong (for example `"weights"`).
        buffer: &'static str,
        /// The dimensions that set its length, in words (for example `"inputs × outputs"`).
        shape: &'static str,
        /// The length the shape requires.
        expected: usize,
        /// The length it has.
        found: usize,
    },
    /// A model dimension is invalid (zero where at least one is needed, a patch larger than its
    /// input, a label out of range, or a product that overflows `usize`).
    InvalidDimension {
        /// The dimension's name (for example `"stride"`).
        name: &'static str,
        /// What it must satisfy.
        requirement: &'static str,
    },
    /// A hyper-parameter is non-finite or outside its range.
    InvalidHyperParameter {
        /// The parameter's name, as the config struct spells it (for example `"beta2"`).
        name: &'static str,
        /// The accepted range, in words (for example `"must lie in [0, 1)"`).
        requirement: &'static str,
    },
    /// The step counter is out of range (bias-corrected rules count steps from 1; counters have
    /// documented upper bounds, such as [`crate::rules::schedule_free::MAX_STEPS`]).
    InvalidStep {
        /// The rejected step number.
        step: u64,
    },
    /// A call that needs at least one buffer (for example replica averaging) got none.
    NoBuffers,
    /// The requested backend cannot run on this CPU (or was not compiled for this target).
    BackendUnavailable {
        /// The backend that was asked for.
        backend: crate::Backend,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::LengthMismatch {
                buffer,
                expected,
                found,
            } => write!(
                f,
                "buffer `{buffer}` has length {found}, expected {expected}"
            ),
            Error::ShapeMismatch {
                buffer,
                shape,
                expected,
                found,
            } => write!(
                f,
                "buffer `{buffer}` has length {found}, but its shape ({shape}) needs {expected}"
            ),
            Error::InvalidDimension { name, requirement } => {
                write!(f, "dimension `{name}` {requirement}")
            }
            Error::InvalidHyperParameter { name, requirement } => {
                write!(f, "hyper-parameter `{name}` {requirement}")
            }
            Error::InvalidStep { step } => write!(
                f,
                "step {step} is out of range: steps are counted from 1, up to the rule's or the \
                 optimizer's documented bound"
            ),
            Error::NoBuffers => write!(f, "at least one buffer is required"),
            Error::BackendUnavailable { backend } => {
                write!(
                    f,
                    "backend `{}` is not available on this CPU",
                    backend.name()
                )
            }
        }
    }
}

impl core::error::Error for Error {}

/// Checks that `found` has the length `expected`.
#[inline]
pub(crate) fn check_len(buffer: &'static str, expected: usize, found: usize) -> Result<(), Error> {
    if expected == found {
        Ok(())
    } else {
        Err(Error::LengthMismatch {
            buffer,
            expected,
            found,
        })
    }
}

/// Checks that `buffer` has the length `shape` requires.
#[inline]
pub(crate) fn check_shape(
    buffer: &'static str,
    shape: &'static str,
    expected: usize,
    found: usize,
) -> Result<(), Error> {
    if expected == found {
        Ok(())
    } else {
        Err(Error::ShapeMismatch {
            buffer,
            shape,
            expected,
            found,
        })
    }
}

/// `a · b`, or an error naming `name` if the product overflows `usize`.
#[inline]
pub(crate) fn dim_product(name: &'static str, a: usize, b: usize) -> Result<usize, Error> {
    a.checked_mul(b).ok_or(Error::InvalidDimension {
        name,
        requirement: "is too large: the buffer length overflows usize",
    })
}
