//! Registering metric families, noting each one's full name: Prometheus only lists
//! families once they have a series, and the chart's alert rules and dashboard are checked
//! against all of them.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

pub const NAMESPACE: &str = "sso_sidecar";

pub const LATENCY_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The registry while metrics are being registered.
pub struct Families {
    pub registry: Registry,
    pub names: std::cell::RefCell<Vec<String>>,
}

impl Families {
    pub fn new() -> Self {
        Families {
            registry: Registry::new_custom(Some(NAMESPACE.to_owned()), None)
                .expect("static namespace is valid"),
            names: std::cell::RefCell::new(Vec::new()),
        }
    }

    fn register<C: prometheus::core::Collector + Clone + 'static>(&self, collector: C) -> C {
        // The registry adds its namespace when it gathers; the descriptors lack it.
        let names = collector
            .desc()
            .iter()
            .map(|d| format!("{NAMESPACE}_{}", d.fq_name))
            .collect::<Vec<_>>();
        self.registry
            .register(Box::new(collector.clone()))
            .expect("metric names are unique");
        self.names.borrow_mut().extend(names);
        collector
    }

    pub fn counters(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        self.register(IntCounterVec::new(Opts::new(name, help), labels).expect("static metric"))
    }

    pub fn counter(&self, name: &str, help: &str) -> IntCounter {
        self.register(IntCounter::with_opts(Opts::new(name, help)).expect("static metric"))
    }

    pub fn gauges(&self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        self.register(IntGaugeVec::new(Opts::new(name, help), labels).expect("static metric"))
    }

    pub fn gauge(&self, name: &str, help: &str) -> IntGauge {
        self.register(IntGauge::with_opts(Opts::new(name, help)).expect("static metric"))
    }

    pub fn histograms(
        &self,
        name: &str,
        help: &str,
        buckets: &[f64],
        labels: &[&str],
    ) -> HistogramVec {
        let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
        self.register(HistogramVec::new(opts, labels).expect("static metric"))
    }

    pub fn histogram(&self, name: &str, help: &str, buckets: &[f64]) -> Histogram {
        let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
        self.register(Histogram::with_opts(opts).expect("static metric"))
    }
}
