//! Counters and histograms that hot paths update with one atomic add, and the
//! Prometheus text exposition `GET /metrics` renders from them. A registry crate
//! would put a lock on the pacer's send path; these never do.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// A histogram with fixed upper bounds (`le`), Prometheus-style cumulative on output.
#[derive(Debug)]
pub struct AtomicHistogram {
    bounds: &'static [f64],
    /// One per bound, plus +Inf.
    counts: Box<[AtomicU64]>,
    /// Sum of observations, in the unit of `bounds` × 1e6 (micro-units, integer).
    sum_micro: AtomicU64,
}

impl AtomicHistogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        AtomicHistogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micro: AtomicU64::new(0),
        }
    }

    /// Records one observation (in the unit of the bounds, e.g. seconds).
    pub fn observe(&self, v: f64) {
        let i = self.bounds.iter().position(|&b| v <= b).unwrap_or(self.bounds.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micro.fetch_add((v * 1e6).max(0.0) as u64, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// Seconds buckets for sub-millisecond-to-second latencies.
pub const LATENCY_BOUNDS: &[f64] =
    &[0.000_005, 0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];
/// Seconds buckets for pacing deviation (|send − deadline|).
pub const DEVIATION_BOUNDS: &[f64] = &[0.000_05, 0.000_1, 0.000_2, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05];

/// Writes the Prometheus text exposition format (version 0.0.4).
#[derive(Default)]
pub struct Exposition {
    out: String,
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn labels(l: &[(&str, &str)]) -> String {
    if l.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = l.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
    format!("{{{}}}", inner.join(","))
}

impl Exposition {
    /// Starts a metric family.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) -> &mut Self {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        self
    }

    /// One sample of the current family.
    pub fn sample(&mut self, name: &str, l: &[(&str, &str)], value: f64) -> &mut Self {
        let _ = writeln!(self.out, "{name}{} {value}", labels(l));
        self
    }

    /// All samples of a histogram (the family header must come first).
    pub fn histogram(&mut self, name: &str, l: &[(&str, &str)], h: &AtomicHistogram) -> &mut Self {
        let mut cumulative = 0;
        for (i, c) in h.counts.iter().enumerate() {
            cumulative += c.load(Ordering::Relaxed);
            let le = h.bounds.get(i).map_or("+Inf".to_owned(), |b| b.to_string());
            let mut with = l.to_vec();
            with.push(("le", &le));
            let _ = writeln!(self.out, "{name}_bucket{} {cumulative}", labels(&with));
        }
        let _ = writeln!(self.out, "{name}_sum{} {}", labels(l), h.sum_micro.load(Ordering::Relaxed) as f64 / 1e6);
        let _ = writeln!(self.out, "{name}_count{} {cumulative}", labels(l));
        self
    }

    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_render_cumulative_buckets_sum_and_count() {
        static B: &[f64] = &[0.1, 1.0];
        let h = AtomicHistogram::new(B);
        for v in [0.05, 0.5, 0.5, 3.0] {
            h.observe(v);
        }
        let mut e = Exposition::default();
        e.family("x_seconds", "histogram", "test").histogram("x_seconds", &[("p", "a\"b")], &h);
        let text = e.finish();
        assert!(text.contains("# TYPE x_seconds histogram"));
        assert!(text.contains("x_seconds_bucket{p=\"a\\\"b\",le=\"0.1\"} 1"), "{text}");
        assert!(text.contains("x_seconds_bucket{p=\"a\\\"b\",le=\"1\"} 3"), "{text}");
        assert!(text.contains("x_seconds_bucket{p=\"a\\\"b\",le=\"+Inf\"} 4"), "{text}");
        assert!(text.contains("x_seconds_sum{p=\"a\\\"b\"} 4.05"), "{text}");
        assert!(text.contains("x_seconds_count{p=\"a\\\"b\"} 4"), "{text}");
        assert_eq!(h.count(), 4);
    }
}
