//! Where a worker's time per request goes: two histograms a worker fills as it runs and the
//! daemon prints on SIGUSR1 and at exit.
//!
//! * **wake-up**: from the kernel's receive timestamp of the first frame of a batch (where the
//!   link has one: the `PACKET_MMAP` ring's `tp_sec`/`tp_nsec`) to the moment the worker holds
//!   the batch: at queue depth 1, softirq delivery, the wake-up of the worker's wait and the
//!   return to user space; under load also the time the frame waited in the ring while the
//!   worker served earlier batches.
//! * **turn**: from the moment the worker holds a batch to the moment its replies have been
//!   handed to the kernel (`send`/`sendmmsg` returned): the engine, the storage I/O, the send
//!   system call.
//!
//! Guarantees: recording is wait-free (relaxed atomic adds, no allocation), so it is always on;
//! a histogram counts every sample it was given; quantiles are reported as the upper bound of
//! the bucket they fall in (buckets are a quarter of a power of two wide, so a reported value is
//! less than 25 % above the true one).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Sub-buckets per power of two.
const SUB: usize = 4;
/// Powers of two covered: 1 ns up to 2^36 ns (about 69 s); longer samples go to the last bucket.
const POWERS: usize = 36;
const BUCKETS: usize = POWERS * SUB;

/// A histogram of durations; see the [module docs](self).
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS],
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Histogram({})", self.summary())
    }
}

/// Bucket of `nanos`: the power of two it lies in, then which quarter of that range.
fn bucket_of(nanos: u64) -> usize {
    // Below 4 ns nothing is resolved (no clock here is that fine).
    let nanos = nanos.max(4);
    let power = 63 - nanos.leading_zeros() as usize;
    // The two bits below the leading one pick the quarter.
    let quarter = usize::try_from((nanos >> (power - 2)) & 3).unwrap_or(0);
    (power * SUB + quarter).min(BUCKETS - 1)
}

/// Upper bound (exclusive) of bucket `index`, in nanoseconds.
fn upper_bound(index: usize) -> u64 {
    let power = index / SUB;
    let quarter = (index % SUB) as u64;
    let base = 1u64 << power;
    base + (base * (quarter + 1)) / SUB as u64
}

impl Histogram {
    /// Counts one sample.
    pub fn record(&self, duration: Duration) {
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(nanos)].fetch_add(1, Ordering::Relaxed);
    }

    /// Samples counted so far.
    pub fn count(&self) -> u64 {
        self.buckets
            .iter()
            .map(|bucket| bucket.load(Ordering::Relaxed))
            .sum()
    }

    /// The duration below which a fraction `q` (0..=1) of the samples lie (the upper bound of
    /// that sample's bucket); `None` without samples.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|bucket| bucket.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        // The rank of the sample wanted, 1-based.
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, count) in counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(Duration::from_nanos(upper_bound(index)));
            }
        }
        Some(Duration::from_nanos(upper_bound(BUCKETS - 1)))
    }

    /// `n=… p50=… p90=… p99=… p99.9=…` in microseconds, or `n=0`.
    pub fn summary(&self) -> String {
        let count = self.count();
        if count == 0 {
            return "n=0".into();
        }
        let micros = |q| {
            self.quantile(q)
                .map_or(0.0, |duration| duration.as_secs_f64() * 1e6)
        };
        format!(
            "n={count} p50={:.1}us p90={:.1}us p99={:.1}us p99.9={:.1}us",
            micros(0.5),
            micros(0.9),
            micros(0.99),
            micros(0.999)
        )
    }
}

/// The two histograms of one worker; see the [module docs](self).
#[derive(Debug, Default)]
pub struct WorkerLatency {
    /// Kernel receive timestamp of a batch's first frame to the worker holding the batch.
    pub wake_up: Histogram,
    /// Worker holding a batch to its replies handed to the kernel.
    pub turn: Histogram,
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn buckets_grow_monotonically_and_bound_their_samples() {
        let mut last = 0;
        for nanos in [5u64, 7, 100, 1_000, 1_500, 65_535, 1 << 30] {
            let index = bucket_of(nanos);
            assert!(index >= last, "{nanos}");
            last = index;
            assert!(upper_bound(index) > nanos, "{nanos} below its bound");
            // A quarter of a power of two wide: the bound is at most 25 % above the sample.
            assert!(upper_bound(index) <= nanos + nanos / 4 + 1, "{nanos}");
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_come_from_the_samples() {
        let histogram = Histogram::default();
        assert_eq!(histogram.quantile(0.5), None);
        assert_eq!(histogram.summary(), "n=0");
        for _ in 0..90 {
            histogram.record(Duration::from_micros(10));
        }
        for _ in 0..10 {
            histogram.record(Duration::from_micros(1000));
        }
        assert_eq!(histogram.count(), 100);
        let p50 = histogram.quantile(0.5).unwrap();
        assert!(p50 > Duration::from_micros(10) && p50 <= Duration::from_micros(13));
        let p99 = histogram.quantile(0.99).unwrap();
        assert!(p99 > Duration::from_micros(1000) && p99 <= Duration::from_micros(1250));
        assert!(histogram.summary().starts_with("n=100 p50=1"));
    }
}
