//! Sums of squares in `f64` in an order fixed by the element indices alone, so that every backend
//! gives the same bits: element `i`'s square (formed in `f64`) is added, in index order, to
//! partial sum `i mod 8`, and the eight partial sums are combined pairwise,
//! `((s0+s1)+(s2+s3))+((s4+s5)+(s6+s7))`. Used by LAMB's norms and Adafactor's RMS values.
//!
//! Compared with one sequential sum, eight independent partial sums let the additions overlap
//! (a sequential `f64` sum waits for each addition's latency), and a whole run of eight elements
//! is one fixed-length loop the compiler vectorises.

use crate::Element;

/// The number of partial sums.
pub(crate) const PARTIALS: usize = 8;

/// Eight partial sums of squares (see the module documentation).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Partials([f64; PARTIALS]);

impl Partials {
    /// Adds the squares of `xs`, whose first element has index `start`, each to partial sum
    /// `index mod 8`. Calls over consecutive runs of one sequence, in order, give the same sums
    /// as one call over the whole sequence.
    ///
    /// Every addition goes to all eight partial sums at once (constant indices, so the sums can
    /// stay in registers): a run shorter than eight, at either end, is padded with `+0.0`
    /// squares, and adding `+0.0` leaves a partial sum unchanged (a sum of squares is never
    /// `−0.0`).
    #[inline(always)]
    pub(crate) fn add_squares<T: Element>(&mut self, start: usize, xs: &[T]) {
        let (k, mut rest) = (start % PARTIALS, xs);
        if k != 0 {
            // Up to the next index that is a multiple of PARTIALS.
            let take = (PARTIALS - k).min(rest.len());
            let mut run = [0.0f64; PARTIALS];
            for (r, x) in run[k..k + take].iter_mut().zip(&rest[..take]) {
                let w = x.widen();
                *r = w * w;
            }
            self.add_run(&run);
            rest = &rest[take..];
        }
        let mut runs = rest.chunks_exact(PARTIALS);
        for run in &mut runs {
            for (s, x) in self.0.iter_mut().zip(run) {
                let w = x.widen();
                *s += w * w;
            }
        }
        let tail = runs.remainder();
        if !tail.is_empty() {
            let mut run = [0.0f64; PARTIALS];
            for (r, x) in run.iter_mut().zip(tail) {
                let w = x.widen();
                *r = w * w;
            }
            self.add_run(&run);
        }
    }

    /// Adds `run[j]` to partial sum `j`.
    #[inline(always)]
    fn add_run(&mut self, run: &[f64; PARTIALS]) {
        for (s, r) in self.0.iter_mut().zip(run) {
            *s += r;
        }
    }

    /// The partial sums combined pairwise.
    #[inline(always)]
    pub(crate) fn total(&self) -> f64 {
        let a = self.0;
        ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]))
    }
}
