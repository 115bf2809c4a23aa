//! Telemetry end to end: `/metrics` of the real binary read as Prometheus
//! text, and scraped by a real Prometheus server; traces decoded by a real
//! OTLP/HTTP receiver (the traced demo server reports the trace context it
//! was sent: stdio `_meta`, remote header).
mod metrics;
mod otlp;
mod prometheus;
mod trace_collector;
mod traces;

use crate::common::Gateway;

/// One sample of the exposition: name, labels, value.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// True when every `(key, value)` pair is among its labels.
    pub fn matches(&self, labels: &[(&str, &str)]) -> bool {
        labels.iter().all(|(k, v)| self.label(k) == Some(*v))
    }
}

/// Parses the Prometheus text format (comments skipped); panics on a line
/// that is not `name{labels} value`.
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (series, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("not a sample: {line}"));
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value in: {line}"));
            let (name, labels) = match series.split_once('{') {
                None => (series.to_owned(), Vec::new()),
                Some((name, rest)) => {
                    let rest = rest.strip_suffix('}').unwrap_or_else(|| panic!("{line}"));
                    (name.to_owned(), parse_labels(rest, line))
                }
            };
            Sample {
                name,
                labels,
                value,
            }
        })
        .collect()
}

fn parse_labels(mut rest: &str, line: &str) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("bad labels in: {line}"));
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => {
                    if let Some((_, c)) = chars.next() {
                        value.push(match c {
                            'n' => '\n',
                            c => c,
                        });
                    }
                }
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("unterminated label in: {line}"),
            }
        };
        labels.push((key.to_owned(), value));
        rest = after[end + 1..].trim_start_matches(',');
    }
    labels
}

/// `GET /metrics` (with `key` as a bearer credential, if any): status and body.
pub async fn scrape_with(gw: &Gateway, key: Option<&str>) -> (reqwest::StatusCode, String) {
    let mut request = gw.http().get(gw.url("/metrics"));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.expect("GET /metrics");
    let status = response.status();
    (status, response.text().await.unwrap_or_default())
}

/// The parsed exposition; panics unless `/metrics` answers 200.
pub async fn scrape(gw: &Gateway) -> Vec<Sample> {
    let (status, text) = scrape_with(gw, None).await;
    assert_eq!(status, 200, "{text}");
    parse(&text)
}

/// The value of the one sample of `name` with `labels` (summed if several).
pub fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name && s.matches(labels))
        .map(|s| s.value)
        .sum()
}

/// Scrapes until the sum of `name{labels}` satisfies `cond`; panics with the
/// matching samples after `timeout`.
pub async fn wait_for_metric(
    gw: &Gateway,
    name: &str,
    labels: &[(&str, &str)],
    timeout: std::time::Duration,
    cond: impl Fn(f64) -> bool,
) -> f64 {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let samples = scrape(gw).await;
        let v = value(&samples, name, labels);
        if cond(v) {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            let seen: Vec<_> = samples.iter().filter(|s| s.name == name).collect();
            panic!("{name}{labels:?} = {v} never satisfied the condition; series: {seen:#?}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
