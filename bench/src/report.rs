//! Results: medians, the table (stdout and `results.md`), the raw numbers (`results.json`).

use std::{fmt::Write as _, fs, path::Path};

use serde::Serialize;

/// The median of `values` (0 when empty).
pub fn median(values: &[f64]) -> f64 {
    percentile(values, 50.0)
}

/// The `p`-th percentile of `values` (nearest rank; 0 when empty).
pub fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if p >= 100.0 {
        return sorted[sorted.len() - 1];
    }
    if (p - 50.0).abs() < f64::EPSILON && sorted.len() % 2 == 0 {
        let mid = sorted.len() / 2;
        return (sorted[mid - 1] + sorted[mid]) / 2.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Whether a target is met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Status {
    /// Met.
    Met,
    /// Not met; the row says by how much.
    Missed,
    /// A measurement without a target of its own.
    Info,
    /// The route does not exist on the server yet.
    RouteMissing,
    /// The scenario failed; the row says why.
    Failed,
}

impl Status {
    /// For the table.
    pub fn label(self) -> &'static str {
        match self {
            Status::Met => "met",
            Status::Missed => "**missed**",
            Status::Info => "—",
            Status::RouteMissing => "route missing",
            Status::Failed => "**failed**",
        }
    }

    /// `Met` when `ok`, else `Missed`.
    pub fn check(ok: bool) -> Self {
        if ok { Status::Met } else { Status::Missed }
    }
}

/// One line of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// What was measured.
    pub work: String,
    /// The medians measured.
    pub measured: String,
    /// Same-run comparisons.
    pub compared: String,
    /// The target from issue 7.
    pub target: String,
    /// Met or not.
    pub status: Status,
}

/// Everything one run of the tool measured.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// The table.
    pub rows: Vec<Row>,
    /// Raw numbers per scenario (every run), for whoever wants more than medians.
    pub raw: serde_json::Map<String, serde_json::Value>,
}

impl Report {
    /// Adds a row and prints it at once, so a long run shows progress.
    pub fn row(
        &mut self,
        work: impl Into<String>,
        measured: impl Into<String>,
        compared: impl Into<String>,
        target: impl Into<String>,
        status: Status,
    ) {
        let row = Row {
            work: work.into(),
            measured: measured.into(),
            compared: compared.into(),
            target: target.into(),
            status,
        };
        println!(
            "  => {} | {} | {} | {} | {}",
            row.work,
            row.measured,
            row.compared,
            row.target,
            row.status.label()
        );
        self.rows.push(row);
    }

    /// Keeps raw numbers under `key`.
    pub fn raw(&mut self, key: &str, value: impl Serialize) {
        let value = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
        self.raw.insert(key.to_owned(), value);
    }

    /// The table as Markdown.
    pub fn table(&self) -> String {
        let mut out = String::from(
            "| work | measured (median) | same-run comparison | target | status |\n\
             |---|---|---|---|---|\n",
        );
        for r in &self.rows {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                r.work,
                r.measured,
                r.compared,
                r.target,
                r.status.label()
            );
        }
        out
    }

    /// Writes `results.md` (header + table) and `results.json` into `dir`.
    pub fn write(&self, dir: &Path, header: &str) -> anyhow::Result<()> {
        fs::create_dir_all(dir)?;
        fs::write(
            dir.join("results.md"),
            format!("{header}\n{}", self.table()),
        )?;
        fs::write(
            dir.join("results.json"),
            serde_json::to_string_pretty(self)? + "\n",
        )?;
        Ok(())
    }
}

/// Servers measured in turn, side by side: each one's median rate and CPU per item, the
/// first with the units (`rate_unit`, then the CPU's unit and what it counts):
/// `chunkstream 71.6 M lines/s (12 ns CPU/line); floor 68.1 M (12 ns); axum 2.8 M (…)`.
pub fn side_by_side(
    names: &[&str],
    rate_unit: &str,
    (cpu_unit, cpu_what): (&str, &str),
    decimals: usize,
    rates: &[Vec<f64>],
    cpu: &[Vec<f64>],
) -> String {
    let each = names.iter().enumerate().map(|(i, name)| {
        let (rate, cpu) = (si(median(&rates[i])), median(&cpu[i]));
        if i == 0 {
            format!("{name} {rate} {rate_unit} ({cpu:.decimals$} {cpu_unit} {cpu_what})")
        } else {
            format!("{name} {rate} ({cpu:.decimals$} {cpu_unit})")
        }
    });
    each.collect::<Vec<_>>().join("; ")
}

/// `12.3 M`, `456 k`, `789` — rates for the table.
pub fn si(value: f64) -> String {
    if value >= 1e6 {
        format!("{:.2} M", value / 1e6)
    } else if value >= 1e3 {
        format!("{:.1} k", value / 1e3)
    } else {
        format!("{value:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn side_by_side_names_the_units_once() {
        let rates = [vec![2e6, 3e6, 4e6], vec![1500.0]];
        let cpu = [vec![12.0], vec![1.25]];
        assert_eq!(
            side_by_side(&["a", "b"], "req/s", ("µs", "CPU/req"), 1, &rates, &cpu),
            "a 3.00 M req/s (12.0 µs CPU/req); b 1.5 k (1.2 µs)"
        );
    }

    #[test]
    fn medians_and_percentiles() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(
            percentile(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0], 90.0),
            9.0
        );
        assert_eq!(percentile(&[5.0], 99.0), 5.0);
        assert_eq!(median(&[]), 0.0);
    }
}
