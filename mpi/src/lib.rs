//! Local SGD across MPI processes: the workers of the harness's local-SGD checks
//! (`descent_harness::checks::local_sgd`) split over the ranks of `MPI_COMM_WORLD`, each rank
//! stepping its own workers with the kernels, and the model average computed by the kernels'
//! `replica_mean` on rank 0.
//!
//! # Determinism: the reduction order
//! The result equals the threaded simulation ([`descent_harness::checks::local_sgd::simulate`])
//! bit for bit, for any number of ranks:
//! - worker `w` lives on exactly one rank ([`workers_of`]: contiguous ranges in rank order) and
//!   draws from the same stream as in the threaded simulation (block `j`, worker `w`:
//!   `worker_streams`), stepping with the same kernel call (`local_step`) on the same block
//!   lengths, so its replica has the same bits before every communication;
//! - a communication round ([`Replicas::average`]) gathers every rank's replicas to rank 0 with
//!   `MPI_Gatherv` into one buffer in worker order `0..N` (a gather copies bytes, it does no
//!   arithmetic), runs `replica_mean` on rank 0 over the N replicas in that order, block by block
//!   on the threaded simulation's block slices, and broadcasts the mean with `MPI_Bcast` (a copy
//!   again); every rank overwrites its replicas with it, as `replica_mean` does in the threaded
//!   simulation.
//!
//! `MPI_Allreduce` with `MPI_SUM` is not used for the average: the library chooses its algorithm
//! (ring, recursive doubling, reduce-scatter/allgather…) by rank count and message size, and each
//! adds the N replicas in a different association, so its bits would depend on the process
//! count and on the OpenMPI tuning, not only on the inputs. [`bench()`] times it for comparison.
//!
//! # Bytes per communication round
//! With `N` workers of `L` parameters (repetitions) on `P` ranks, rank `r` holding `n_r`: the
//! gather moves `(N − n_0)·L·8` bytes to rank 0 and the broadcast `L·8` bytes to each of the
//! other `P − 1` ranks, so `(N − n_0 + P − 1)·L·8` bytes of payload per round
//! ([`bytes_per_round`]); with one worker per rank that is `2(P − 1)·L·8`.

use descent_harness::checks::local_sgd::{
    block_len, communication_flags, local_step, worker_streams, LocalSgd, Objective, BLOCK,
};
use descent_harness::numerics::Rng;
use descent_kernels::replica_mean;
use mpi::collective::SystemOperation;
use mpi::datatype::PartitionMut;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use mpi::Count;
use std::ops::Range;

/// The rank that gathers, averages and broadcasts.
pub const ROOT: i32 = 0;

/// The workers of rank `rank` of `size`: `⌈rank·n/size⌉ .. ⌈(rank+1)·n/size⌉`. Contiguous, in rank
/// order, covering `0..n` once; sizes differ by at most one, and rank 0 always holds worker 0
/// when `n ≥ 1` (ranks beyond `n` hold none).
pub fn workers_of(n: usize, size: usize, rank: usize) -> Range<usize> {
    assert!(size >= 1 && rank < size, "rank {rank} of {size}");
    let start = |r: usize| (r * n).div_ceil(size);
    start(rank)..start(rank + 1)
}

/// Payload bytes of one communication round of `n` workers of `len` f64 parameters on `size`
/// ranks: the gather of the replicas not on rank 0 plus the broadcast of the mean to the other
/// ranks.
pub fn bytes_per_round(n: usize, len: usize, size: usize) -> usize {
    let on_root = workers_of(n, size, 0).len();
    (n - on_root + size - 1) * len * std::mem::size_of::<f64>()
}

/// Why `n` workers of `len` parameters cannot be gathered: MPI counts are C `int`s, and rank 0
/// holds all `n·len` values during a round.
pub fn check_counts(n: usize, len: usize) -> Result<(), String> {
    let total = n
        .checked_mul(len)
        .ok_or_else(|| format!("{n} workers × {len} parameters overflows"))?;
    if total > Count::MAX as usize {
        return Err(format!(
            "{n} workers × {len} parameters = {total} values exceed MPI's count limit {} of one \
             gather",
            Count::MAX
        ));
    }
    Ok(())
}

/// One rank's replicas of `n` workers of `len` parameters and the buffers of a round.
pub struct Replicas {
    len: usize,
    mine: Range<usize>,
    /// This rank's workers, worker-major: worker `mine.start + i` is `x[i·len..(i+1)·len]`.
    x: Vec<f64>,
    /// Rank 0 only: every worker, in worker order.
    gathered: Vec<f64>,
    /// The mean after a round.
    mean: Vec<f64>,
    counts: Vec<Count>,
    displs: Vec<Count>,
}

impl Replicas {
    /// Every replica of this rank set to `x0`. Panics if [`check_counts`] rejects `(n, len)` or
    /// `len` is 0.
    pub fn new(world: &SimpleCommunicator, n: usize, len: usize, x0: f64) -> Replicas {
        assert!(len >= 1, "replicas need at least one parameter");
        if let Err(e) = check_counts(n, len) {
            panic!("{e}");
        }
        let size = world.size() as usize;
        let rank = world.rank() as usize;
        let mine = workers_of(n, size, rank);
        let (counts, displs): (Vec<Count>, Vec<Count>) = (0..size)
            .map(|r| {
                let w = workers_of(n, size, r);
                ((w.len() * len) as Count, (w.start * len) as Count)
            })
            .unzip();
        Replicas {
            len,
            x: vec![x0; mine.len() * len],
            gathered: if rank == ROOT as usize {
                vec![0.0; n * len]
            } else {
                Vec::new()
            },
            mean: vec![0.0; len],
            mine,
            counts,
            displs,
        }
    }

    /// The global indices of this rank's workers.
    pub fn workers(&self) -> Range<usize> {
        self.mine.clone()
    }

    /// This rank's replicas, worker-major (`len` values each).
    pub fn local(&self) -> &[f64] {
        &self.x
    }

    /// This rank's replicas, mutable.
    pub fn local_mut(&mut self) -> &mut [f64] {
        &mut self.x
    }

    /// One communication round (collective: every rank calls it): gather to rank 0 in worker
    /// order, `replica_mean` over the workers on each block of [`BLOCK`] parameters (the slices
    /// the threaded simulation averages), broadcast, and every local replica set to the mean.
    pub fn average(&mut self, world: &SimpleCommunicator) {
        let root = world.process_at_rank(ROOT);
        let len = self.len;
        if world.rank() == ROOT {
            {
                let mut part =
                    PartitionMut::new(&mut self.gathered[..], &self.counts[..], &self.displs[..]);
                root.gather_varcount_into_root(&self.x[..], &mut part);
            }
            for j in 0..len.div_ceil(BLOCK) {
                let lo = j * BLOCK;
                let hi = lo + block_len(len, j);
                let mut refs: Vec<&mut [f64]> = self
                    .gathered
                    .chunks_mut(len)
                    .map(|w| &mut w[lo..hi])
                    .collect();
                replica_mean(&mut refs).expect("replicas of equal length");
            }
            self.mean.copy_from_slice(&self.gathered[..len]);
        } else {
            root.gather_varcount_into(&self.x[..]);
        }
        root.broadcast_into(&mut self.mean[..]);
        for w in self.x.chunks_mut(len) {
            w.copy_from_slice(&self.mean);
        }
    }
}

/// The MPI simulation of [`descent_harness::checks::local_sgd::simulate`] (collective: every rank
/// calls it with the same arguments): `reps` repetitions of `n` workers spread over the ranks,
/// communicating after the local steps in `times`. Returns `x̄_T` per repetition on every rank,
/// bit-identical to the threaded simulation.
pub fn simulate(
    world: &SimpleCommunicator,
    run: &LocalSgd,
    n: usize,
    reps: usize,
    times: &[usize],
    seed: u64,
) -> Vec<f64> {
    assert!(n >= 1 && reps >= 1, "need a worker and a repetition");
    let comm = communication_flags(run, times);
    let mut state = Replicas::new(world, n, reps, run.x0);
    let mine = state.workers();
    let blocks = reps.div_ceil(BLOCK);
    // rngs[i·blocks + j]: local worker i, block j.
    let per_block: Vec<Vec<Rng>> = (0..blocks)
        .map(|j| worker_streams(seed, j, mine.clone()))
        .collect();
    let mut rngs: Vec<Rng> = (0..mine.len())
        .flat_map(|i| per_block.iter().map(move |b| b[i].clone()))
        .collect();
    let mut g = vec![0.0; BLOCK];
    for t in 0..run.t {
        for (i, w) in state.local_mut().chunks_mut(reps).enumerate() {
            for j in 0..blocks {
                let lo = j * BLOCK;
                let b = block_len(reps, j);
                local_step(
                    run,
                    t,
                    &mut rngs[i * blocks + j],
                    &mut w[lo..lo + b],
                    &mut g[..b],
                );
            }
        }
        if comm[t + 1] && n > 1 {
            state.average(world);
        }
    }
    // x̄_T is worker 0's replica (every schedule communicates at T), which rank 0 holds.
    let mut out = if world.rank() == ROOT {
        state.local()[..reps].to_vec()
    } else {
        vec![0.0; reps]
    };
    world.process_at_rank(ROOT).broadcast_into(&mut out[..]);
    out
}

/// Wall times of one communication round, measured on rank 0: each round starts after a barrier
/// and ends after a second one (so it includes one barrier's latency); the median over the rounds
/// is reported, which a machine shared with other jobs disturbs less than the mean.
#[derive(Clone, Copy, Debug)]
pub struct RoundTiming {
    /// Parameters per worker.
    pub len: usize,
    /// Rounds timed.
    pub rounds: usize,
    /// Median seconds per round of [`Replicas::average`] (gather, `replica_mean` on rank 0,
    /// broadcast).
    pub average: f64,
    /// Fastest round of [`Replicas::average`], seconds (the least disturbed by other jobs).
    pub average_min: f64,
    /// Median seconds per `MPI_Allreduce` (sum) of the same vector, for comparison (not
    /// bit-stable across rank counts, so not used for the average).
    pub allreduce: f64,
    /// Median seconds per local SGD step of one worker of `len` parameters on rank 0 (no
    /// communication).
    pub step: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        0.5 * (v[m - 1] + v[m])
    }
}

/// Times `rounds` communication rounds of one worker of `len` parameters per rank (collective).
pub fn bench(world: &SimpleCommunicator, len: usize, rounds: usize) -> RoundTiming {
    assert!(rounds >= 1, "at least one round");
    let size = world.size() as usize;
    let mut state = Replicas::new(world, size, len, 0.0);
    let rank = world.rank() as f64;
    for (k, v) in state.local_mut().iter_mut().enumerate() {
        *v = rank + (k % 97) as f64 * 1e-3;
    }
    let timed = |f: &mut dyn FnMut()| -> Vec<f64> {
        (0..rounds)
            .map(|_| {
                world.barrier();
                let start = mpi::time();
                f();
                world.barrier();
                mpi::time() - start
            })
            .collect()
    };
    // One untimed round first: connection set-up and first touch of the buffers.
    state.average(world);
    let rounds_s = timed(&mut || state.average(world));
    let average_min = rounds_s.iter().copied().fold(f64::INFINITY, f64::min);
    let average = median(rounds_s);
    let send = vec![1.0f64; len];
    let mut recv = vec![0.0f64; len];
    world.all_reduce_into(&send[..], &mut recv[..], SystemOperation::sum());
    let allreduce = median(timed(&mut || {
        world.all_reduce_into(&send[..], &mut recv[..], SystemOperation::sum());
    }));
    let run = LocalSgd {
        obj: Objective {
            k_plus: 2.0,
            k_minus: 1.0,
            width: 0.0,
        },
        sigma: 8.0,
        x0: 2.0,
        alpha: 2.0,
        t: rounds,
    };
    let mut x = vec![run.x0; len];
    let mut g = vec![0.0; BLOCK];
    // One stream for every block: the step costs the same, without `len / BLOCK` stream jumps.
    let mut rng = descent_harness::numerics::stream(1, 0);
    let step = median(
        (0..rounds)
            .map(|t| {
                let start = mpi::time();
                for j in 0..len.div_ceil(BLOCK) {
                    let lo = j * BLOCK;
                    let b = block_len(len, j);
                    local_step(&run, t, &mut rng, &mut x[lo..lo + b], &mut g[..b]);
                }
                mpi::time() - start
            })
            .collect(),
    );
    world.barrier();
    RoundTiming {
        len,
        rounds,
        average,
        average_min,
        allreduce,
        step,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_are_split_contiguously_in_rank_order() {
        for n in [1, 2, 3, 5, 16, 64, 65] {
            for size in 1..=9 {
                let parts: Vec<Range<usize>> = (0..size).map(|r| workers_of(n, size, r)).collect();
                assert_eq!(parts[0].start, 0);
                assert_eq!(parts[size - 1].end, n);
                for w in parts.windows(2) {
                    assert_eq!(w[0].end, w[1].start);
                }
                let (lo, hi) = (n / size, n.div_ceil(size));
                assert!(parts.iter().all(|p| p.len() == lo || p.len() == hi));
                assert!(parts[0].contains(&0), "rank 0 holds worker 0");
            }
        }
    }

    #[test]
    fn bytes_per_round_counts_gather_and_broadcast() {
        // One worker per rank: 2(P − 1)·L·8.
        assert_eq!(bytes_per_round(4, 1000, 4), 2 * 3 * 1000 * 8);
        assert_eq!(bytes_per_round(2, 10, 2), 2 * 10 * 8);
        // 64 workers on 4 ranks: 48 replicas gathered, 3 broadcasts.
        assert_eq!(bytes_per_round(64, 100, 4), (48 + 3) * 100 * 8);
        // A single process communicates nothing.
        assert_eq!(bytes_per_round(64, 100, 1), 0);
    }

    #[test]
    fn counts_beyond_a_c_int_are_rejected() {
        assert!(check_counts(64, 1500).is_ok());
        let e = check_counts(4096, 10_000_000).unwrap_err();
        assert!(e.contains("count limit"), "{e}");
    }
}
