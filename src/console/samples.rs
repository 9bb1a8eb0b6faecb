//! Values read back from the metrics registry (the same numbers `/metrics` exports), for the console's panels.

use prometheus::proto::{MetricFamily, MetricType};
use prometheus::Registry;

/// One gathering of the registry.
pub struct Samples(Vec<MetricFamily>);

/// A series' labels and value (a histogram's value is its mean: sum over count, or 0 before any sample).
pub struct Sample {
    pub labels: Vec<(String, String)>,
    pub value: f64,
    /// How many observations a histogram holds (0 for other types).
    pub count: u64,
}

impl Sample {
    pub fn label(&self, name: &str) -> &str {
        self.labels
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

impl Samples {
    pub fn gather(registry: &Registry) -> Self {
        Self(registry.gather())
    }

    /// Every series of metric `name`.
    pub fn all(&self, name: &str) -> Vec<Sample> {
        let Some(family) = self.0.iter().find(|f| f.name() == name) else {
            return Vec::new();
        };
        let kind = family.get_field_type();
        family
            .get_metric()
            .iter()
            .map(|m| {
                let (value, count) = match kind {
                    MetricType::COUNTER => (m.get_counter().get_value(), 0),
                    MetricType::GAUGE => (m.get_gauge().get_value(), 0),
                    MetricType::HISTOGRAM => {
                        let h = m.get_histogram();
                        let count = h.get_sample_count();
                        let mean = if count == 0 {
                            0.0
                        } else {
                            h.get_sample_sum() / count as f64
                        };
                        (mean, count)
                    }
                    MetricType::SUMMARY | MetricType::UNTYPED => (0.0, 0),
                };
                Sample {
                    labels: m
                        .get_label()
                        .iter()
                        .map(|l| (l.name().to_owned(), l.value().to_owned()))
                        .collect(),
                    value,
                    count,
                }
            })
            .collect()
    }

    /// The series of `name` whose labels include `labels`; `None` when it does not exist.
    pub fn find(&self, name: &str, labels: &[(&str, &str)]) -> Option<Sample> {
        self.all(name)
            .into_iter()
            .find(|s| labels.iter().all(|(n, v)| s.label(n) == *v))
    }

    /// The value of a series without labels (or the first of several), 0 when it does not exist.
    pub fn value(&self, name: &str) -> f64 {
        self.find(name, &[]).map_or(0.0, |s| s.value)
    }

    /// The sum over every series of `name` matching `keep`.
    pub fn sum(&self, name: &str, keep: impl Fn(&Sample) -> bool) -> f64 {
        self.all(name)
            .iter()
            .filter(|s| keep(s))
            .map(|s| s.value)
            .sum()
    }
}
