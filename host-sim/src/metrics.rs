//! Counters an operator graphs: per export and per link, in Prometheus' text format (served
//! by `control` on `--metrics ADDRESS` and over the control socket for `host-sim stats`).
//!
//! Guarantees:
//!
//! * **Cheap on the frame path**: a counter is one relaxed atomic add, made by the worker that
//!   owns the frame; nothing on the path takes a lock or allocates. Per frame the worker adds
//!   to its link's frame count once per batch, and per reply one histogram bucket; the engine's
//!   own counters (`aoe_core::Stats`) are read under the export's lock only when scraped.
//! * **Counters only go up** while an export runs; an export that a reload replaced starts
//!   again from zero (Prometheus' `rate()` takes that as a counter reset).
//! * Label values are escaped as the exposition format requires.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// A monotonic counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The count.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    /// Adds `n` (negative to subtract).
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Sets it.
    pub fn set(&self, value: i64) {
        self.0.store(value, Ordering::Relaxed);
    }

    /// The value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds of the latency buckets, in microseconds (the last bucket is +Inf).
pub const LATENCY_BOUNDS_US: [u64; 14] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000,
];

/// A latency histogram with fixed buckets ([`LATENCY_BOUNDS_US`]).
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; LATENCY_BOUNDS_US.len() + 1],
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// Records one latency.
    pub fn record(&self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let index = LATENCY_BOUNDS_US.partition_point(|&bound| bound < micros);
        self.counts[index].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Samples per bucket (not cumulative), the last one above every bound.
    pub fn counts(&self) -> Vec<u64> {
        self.counts
            .iter()
            .map(|count| count.load(Ordering::Relaxed))
            .collect()
    }

    /// Samples recorded.
    pub fn total(&self) -> u64 {
        self.counts().iter().sum()
    }

    /// The sum of the samples.
    pub fn sum(&self) -> Duration {
        Duration::from_nanos(self.sum_nanos.load(Ordering::Relaxed))
    }

    /// The upper bound of the bucket holding the `fraction` (0 to 1) quantile; `None` when
    /// empty, `Some(None)` when it is in the +Inf bucket.
    pub fn quantile_bound(&self, fraction: f64) -> Option<Option<Duration>> {
        let counts = self.counts();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let rank = ((fraction * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (index, count) in counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(
                    LATENCY_BOUNDS_US
                        .get(index)
                        .map(|&us| Duration::from_micros(us)),
                );
            }
        }
        Some(None)
    }
}

/// What an export did, beyond the engine's counters; shared by the workers of every link the
/// export is served on.
#[derive(Debug, Default)]
pub struct ExportMetrics {
    /// From a request's arrival (the start of the worker's turn that received it) to its reply
    /// leaving (the end of the send of that turn's replies).
    pub latency: Histogram,
    /// READs completed.
    pub reads: Counter,
    /// WRITEs completed.
    pub writes: Counter,
    /// FLUSHes completed.
    pub flushes: Counter,
    /// Octets read from storage into replies.
    pub read_bytes: Counter,
    /// Octets written to storage.
    pub written_bytes: Counter,
    /// Storage errors, by kind.
    pub io_errors: Mutex<BTreeMap<String, u64>>,
    /// Requests in flight in the storage queues.
    pub in_flight: Gauge,
    /// Requests dropped because no frame buffer was free.
    pub pool_drops: Counter,
    /// Frames dropped because a reload was replacing the export (the initiator retries).
    pub handover_drops: Counter,
    /// Target state saved.
    pub state_saves: Counter,
    /// Target state saves that failed (the reply was withheld).
    pub state_save_failures: Counter,
    /// Times a probe found another target answering this export's shelf.slot.
    pub duplicate_events: Counter,
    /// Completed requests per second over the last second (set by the daemon's sampler).
    pub iops: Gauge,
    /// Completed requests at the last sample, for [`iops`](Self::iops).
    pub sampled_requests: Counter,
}

impl ExportMetrics {
    /// READs, WRITEs and FLUSHes completed.
    pub fn requests(&self) -> u64 {
        self.reads.get() + self.writes.get() + self.flushes.get()
    }

    /// Counts a storage error of `kind`.
    pub fn io_error(&self, kind: &str) {
        let mut errors = self.io_errors.lock().unwrap_or_else(|p| p.into_inner());
        *errors.entry(kind.to_owned()).or_insert(0) += 1;
    }

    /// Sets [`iops`](Self::iops) from the requests completed since the last call, `elapsed` ago.
    pub fn sample(&self, elapsed: Duration) {
        let now = self.requests();
        let before = self.sampled_requests.get();
        self.sampled_requests.add(now.saturating_sub(before));
        let seconds = elapsed.as_secs_f64().max(1e-3);
        #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
        self.iops
            .set((now.saturating_sub(before) as f64 / seconds).round() as i64);
    }
}

/// What one link (interface or TAP) did, and the state of each export on it.
#[derive(Debug)]
pub struct LinkMetrics {
    /// The interface.
    pub name: String,
    /// Frames received.
    pub frames: Counter,
    /// Replies and announcements sent.
    pub replies: Counter,
    /// Frames the kernel dropped (receive buffer or ring full).
    pub kernel_drops: Counter,
    /// Sends that failed.
    pub send_errors: Counter,
    /// Times the link failed and was opened again.
    pub reopens: Counter,
    /// Whether the link is open and working.
    pub up: AtomicBool,
    /// Each export's state on this link: `serving`, `probing`, `conflict`, `waiting`.
    pub exports: Mutex<BTreeMap<String, ExportOnLink>>,
}

/// An export's state on one link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportOnLink {
    /// The link is missing or down; the export is served when it comes up.
    Waiting,
    /// Looking for another target with the same shelf.slot before announcing.
    Probing,
    /// Announced and answering.
    Serving,
    /// Another target answers this shelf.slot (these MACs); not served here.
    Conflict(String),
}

impl ExportOnLink {
    /// The state's name, for a label.
    pub fn name(&self) -> &'static str {
        match self {
            ExportOnLink::Waiting => "waiting",
            ExportOnLink::Probing => "probing",
            ExportOnLink::Serving => "serving",
            ExportOnLink::Conflict(_) => "conflict",
        }
    }
}

impl LinkMetrics {
    /// A link's metrics, down until its worker says otherwise.
    pub fn new(name: &str) -> LinkMetrics {
        LinkMetrics {
            name: name.to_owned(),
            frames: Counter::default(),
            replies: Counter::default(),
            kernel_drops: Counter::default(),
            send_errors: Counter::default(),
            reopens: Counter::default(),
            up: AtomicBool::new(false),
            exports: Mutex::new(BTreeMap::new()),
        }
    }

    /// Records `export`'s state on this link.
    pub fn set_state(&self, export: &str, state: ExportOnLink) {
        self.exports
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(export.to_owned(), state);
    }

    /// Forgets an export no longer served on this link.
    pub fn forget(&self, export: &str) {
        self.exports
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(export);
    }

    /// Every export's state on this link.
    pub fn states(&self) -> BTreeMap<String, ExportOnLink> {
        self.exports
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Refusals of the double-export guards, by guard, over the process's life.
#[derive(Debug, Default)]
pub struct GuardCounters(Mutex<BTreeMap<&'static str, u64>>);

impl GuardCounters {
    /// Counts a refusal by `guard` (`file_lock`, `shared_file`, `address_claim`, `duplicate`).
    pub fn refused(&self, guard: &'static str) {
        *self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(guard)
            .or_insert(0) += 1;
    }

    /// The counts.
    pub fn counts(&self) -> BTreeMap<&'static str, u64> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Escapes a label value of the exposition format.
pub fn label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Writes Prometheus text: `# HELP`/`# TYPE` once per family, then its samples.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
    families: Vec<String>,
}

impl Exposition {
    /// Adds sample `name{labels} value`, announcing the family on first use.
    pub fn sample(&mut self, name: &str, kind: &str, help: &str, labels: &str, value: f64) {
        let family = name
            .trim_end_matches("_bucket")
            .trim_end_matches("_sum")
            .trim_end_matches("_count")
            .to_owned();
        let family = if kind == "histogram" {
            family
        } else {
            name.to_owned()
        };
        if !self.families.contains(&family) {
            let _ = writeln!(self.text, "# HELP {family} {help}");
            let _ = writeln!(self.text, "# TYPE {family} {kind}");
            self.families.push(family);
        }
        let labels = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(self.text, "{name}{labels} {value}");
    }

    /// The text.
    pub fn finish(self) -> String {
        self.text
    }
}

/// Writes a latency histogram as a Prometheus histogram family `name`.
pub fn write_histogram(out: &mut Exposition, name: &str, help: &str, labels: &str, h: &Histogram) {
    let counts = h.counts();
    let mut cumulative = 0;
    for (index, count) in counts.iter().enumerate() {
        cumulative += count;
        let le = match LATENCY_BOUNDS_US.get(index) {
            #[allow(clippy::cast_precision_loss)]
            Some(&us) => format!("{}", us as f64 / 1e6),
            None => "+Inf".to_owned(),
        };
        #[allow(clippy::cast_precision_loss)]
        out.sample(
            &format!("{name}_bucket"),
            "histogram",
            help,
            &format!("{labels},le=\"{le}\""),
            cumulative as f64,
        );
    }
    out.sample(
        &format!("{name}_sum"),
        "histogram",
        help,
        labels,
        h.sum().as_secs_f64(),
    );
    #[allow(clippy::cast_precision_loss)]
    out.sample(
        &format!("{name}_count"),
        "histogram",
        help,
        labels,
        cumulative as f64,
    );
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn the_histogram_buckets_and_quantiles() {
        let h = Histogram::default();
        assert_eq!(h.quantile_bound(0.5), None);
        for micros in [10, 50, 51, 700, 700, 700, 3_000_000] {
            h.record(Duration::from_micros(micros));
        }
        let counts = h.counts();
        assert_eq!(counts[0], 2, "≤ 50 µs: 10 and 50");
        assert_eq!(counts[1], 1, "≤ 100 µs: 51");
        assert_eq!(counts[4], 3, "≤ 1 ms: the 700s");
        assert_eq!(counts[LATENCY_BOUNDS_US.len()], 1, "+Inf: 3 s");
        assert_eq!(h.total(), 7);
        assert_eq!(h.quantile_bound(0.5), Some(Some(Duration::from_millis(1))));
        assert_eq!(h.quantile_bound(1.0), Some(None));
        assert_eq!(
            h.sum(),
            Duration::from_micros(10 + 50 + 51 + 2100 + 3_000_000)
        );
        let mut out = Exposition::default();
        write_histogram(&mut out, "x_seconds", "help", "export=\"e1.0\"", &h);
        let text = out.finish();
        assert!(text.starts_with("# HELP x_seconds help\n# TYPE x_seconds histogram\n"));
        assert!(
            text.contains("x_seconds_bucket{export=\"e1.0\",le=\"0.00005\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("x_seconds_bucket{export=\"e1.0\",le=\"0.001\"} 6\n"),
            "{text}"
        );
        assert!(
            text.contains("x_seconds_bucket{export=\"e1.0\",le=\"+Inf\"} 7\n"),
            "{text}"
        );
        assert!(
            text.contains("x_seconds_count{export=\"e1.0\"} 7\n"),
            "{text}"
        );
        assert_eq!(text.matches("# TYPE").count(), 1);
    }

    #[test]
    fn labels_are_escaped_and_families_announced_once() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        let mut out = Exposition::default();
        out.sample("y_total", "counter", "why", "a=\"1\"", 2.0);
        out.sample("y_total", "counter", "why", "a=\"2\"", 3.0);
        out.sample("z", "gauge", "zed", "", 1.5);
        assert_eq!(
            out.finish(),
            "# HELP y_total why\n# TYPE y_total counter\ny_total{a=\"1\"} 2\ny_total{a=\"2\"} 3\n\
             # HELP z zed\n# TYPE z gauge\nz 1.5\n"
        );
    }

    #[test]
    fn iops_is_the_rate_since_the_last_sample() {
        let m = ExportMetrics::default();
        m.reads.add(300);
        m.writes.add(100);
        m.sample(Duration::from_secs(2));
        assert_eq!(m.iops.get(), 200);
        m.flushes.add(5);
        m.sample(Duration::from_secs(1));
        assert_eq!(m.iops.get(), 5);
        m.sample(Duration::from_secs(1));
        assert_eq!(m.iops.get(), 0);
    }
}
