//! The chart of chunks per second: one line per transport, checked against the panels' own
//! figures, in both colour schemes, with reduced motion and over an hour of counts; and what
//! it costs the race, measured.

use std::{collections::HashMap, time::Duration};

use crate::helpers::spawn_app;

use super::{
    TRANSPORTS,
    harness::{Browser, Chart, Line, Panel, SOON, with_browser},
};

/// Starts a race of `count` chunks, `interval_ms` apart, and waits for its end: every panel
/// done (with all its chunks) and the chart settled. Returns the panels and the chart.
async fn race(
    b: &Browser,
    count: u64,
    interval_ms: u64,
    deadline: Duration,
) -> (HashMap<&'static str, Panel>, Chart) {
    let panels = race_panels(b, count, interval_ms, deadline).await;
    let chart = b
        .wait_chart("the race's last points", SOON, |c| c.settled)
        .await;
    (panels, chart)
}

/// [`race`], for a page with or without the chart: its panels, each done.
async fn race_panels(
    b: &Browser,
    count: u64,
    interval_ms: u64,
    deadline: Duration,
) -> HashMap<&'static str, Panel> {
    b.choose("race", count, interval_ms).await;
    b.click("#start").await;
    let mut panels = HashMap::new();
    for transport in TRANSPORTS {
        panels.insert(transport, b.wait_done(transport, count, deadline).await);
    }
    panels
}

/// Checks what every race's chart must show: one line per transport, in the page's order and
/// colour, named by the legend, each point drawn, and drawn from the counts the panel kept.
fn assert_one_line_per_transport(chart: &Chart, panels: &HashMap<&str, Panel>) {
    let names: Vec<&str> = chart.series.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, TRANSPORTS, "{chart:#?}");
    let labels: Vec<&str> = chart.series.iter().map(|l| l.label.as_str()).collect();
    assert_eq!(chart.legend, labels, "the legend names every line");
    for line in &chart.series {
        assert!(line.done && line.state == "done", "{line:?}");
        assert!(!line.points.is_empty(), "{line:?}");
        assert_eq!(
            line.vertices,
            line.points.len(),
            "every point is drawn: {line:?}"
        );
        assert_eq!(
            line.stroke,
            rgb(&line.colour),
            "the line has its transport's colour"
        );
        assert_drawn_from_counts(line, &panels[line.name.as_str()]);
    }
}

/// Each point's rate is the chunks counted over the window before it: back to the latest
/// sample at least a second earlier, or to the start. And the counts end on the panel's:
/// its chunks, at its elapsed time, so that their average is the panel's chunks/s.
fn assert_drawn_from_counts(line: &Line, panel: &Panel) {
    let counts = &line.counts;
    let mut rates = Vec::new();
    for (i, &(t, count)) in counts.iter().enumerate().skip(1) {
        let from = (0..i)
            .rev()
            .find(|&j| t - counts[j].0 >= 1.0 - 1e-9)
            .unwrap_or(0);
        let (t0, count0) = counts[from];
        if t > t0 {
            rates.push((t, (count - count0) / (t - t0)));
        }
    }
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-6 * a.abs().max(1.0);
    assert!(
        rates.len() == line.points.len()
            && rates
                .iter()
                .zip(&line.points)
                .all(|(a, b)| close(a.0, b.0) && close(a.1, b.1)),
        "{}: the points are not the counts' rates {rates:?}: {line:?}",
        line.name
    );
    let (start, _) = counts[0];
    let &(end, received) = counts.last().expect("counts");
    assert_eq!(received, panel.count as f64, "{line:?} {panel:?}");
    // The panel shows its figures rounded: elapsed to a tenth of a second, chunks/s to a unit.
    let seconds = end - start;
    assert!(
        (seconds - panel.elapsed_secs()).abs() <= 0.051,
        "{}: the line ends at {seconds} s, the panel at {}: {line:?}",
        line.name,
        panel.elapsed
    );
    let average = received / seconds;
    let shown = panel.rate_per_sec();
    let rounding = if shown < 100.0 { 0.05 } else { 0.5 }; // one decimal below 100
    assert!(
        (average - shown).abs() <= rounding + 1e-9,
        "{}: the counts average {average}/s, the panel says {shown}/s",
        line.name
    );
}

/// The rates the text alternative gives, by label: `"Text 965 k/s (done), SSE 43.2 k/s"`.
fn spoken_rates(summary: &str) -> HashMap<String, f64> {
    summary
        .split(", ")
        .map(|part| {
            // A label may have spaces of its own (`JSON Lines 65.1 k/s`): read from the rate.
            let (figure, _) = part
                .split_once("/s")
                .unwrap_or_else(|| panic!("no rate in {part:?} of {summary:?}"));
            let (figure, scale) = match figure.rsplit_once(' ') {
                Some((figure, "k")) => (figure, 1e3),
                Some((figure, "M")) => (figure, 1e6),
                _ => (figure, 1.0),
            };
            let (label, number) = figure
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("no label in {part:?} of {summary:?}"));
            let number: f64 = number
                .parse()
                .unwrap_or_else(|_| panic!("no number in {part:?} of {summary:?}"));
            (label.to_owned(), number * scale)
        })
        .collect()
}

/// `#rrggbb` as the browser computes it: `rgb(r, g, b)`.
fn rgb(hex: &str) -> String {
    let [r, g, b] = channels(hex);
    format!("rgb({r}, {g}, {b})")
}

fn channels(colour: &str) -> [u8; 3] {
    if let Some(hex) = colour.strip_prefix('#') {
        let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).expect("a hex colour");
        return [byte(0), byte(2), byte(4)];
    }
    let inner = colour
        .strip_prefix("rgb(")
        .and_then(|c| c.strip_suffix(')'))
        .unwrap_or_else(|| panic!("not an opaque rgb() colour: {colour}"));
    let parts: Vec<u8> = inner
        .split(", ")
        .map(|c| c.parse().expect("a channel"))
        .collect();
    [parts[0], parts[1], parts[2]]
}

/// WCAG's contrast ratio of two colours (`#rrggbb` or `rgb(…)`), from 1 to 21.
fn contrast(a: &str, b: &str) -> f64 {
    let luminance = |colour: &str| {
        let [r, g, b] = channels(colour).map(|c| {
            let c = f64::from(c) / 255.0;
            if c <= 0.04045 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        });
        0.2126 * r + 0.7152 * g + 0.0722 * b
    };
    let (a, b) = (luminance(a), luminance(b));
    (a.max(b) + 0.05) / (a.min(b) + 0.05)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The race the issue is about: flat out, the transports' rates are orders of magnitude
/// apart, and the chart shows each one, on a log scale when they differ by more than 10×.
#[tokio::test]
async fn a_flat_out_race_draws_each_transports_rate_in_the_browser() {
    let app = spawn_app().await;
    with_browser(&app, "race-chart", async |b| {
        // Tall enough for the chart and the panels: the README's picture.
        b.client
            .set_window_size(1280, 1400)
            .await
            .expect("resize the window");
        b.open_page().await;
        let (panels, chart) = race(b, 100_000, 0, SOON * 4).await;
        b.screenshot("race-chart").await;
        // The lines end where the panels do; their last points are not the panels' averages,
        // and should not be: a transport's rate changes as the others finish, and the panel's
        // average also counts the wait for the first chunk.
        assert_one_line_per_transport(&chart, &panels);

        let peaks: Vec<f64> = chart.series.iter().map(|l| l.peak()).collect();
        let spread = peaks.iter().copied().fold(0.0, f64::max)
            / peaks.iter().copied().fold(f64::INFINITY, f64::min);
        let scale = if spread > 10.0 { "log" } else { "linear" };
        assert_eq!(chart.scale, scale, "peaks {peaks:?}");

        // The text alternative says what the lines end on, and that each run is done.
        let spoken = spoken_rates(&chart.summary);
        for line in &chart.series {
            let said = spoken[&line.label];
            let drawn = line.last_rate();
            assert!(
                (said - drawn).abs() <= 0.005 * drawn,
                "{}: said {said}, drawn {drawn}: {chart:#?}",
                line.label
            );
        }
        assert_eq!(chart.summary.matches("(done)").count(), TRANSPORTS.len());
        eprintln!("flat-out race: {} ({} scale)", chart.summary, chart.scale);

        // On a phone, the plot is drawn again to its new width.
        b.client
            .set_window_size(390, 844)
            .await
            .expect("resize the window");
        let fits = r##"const plot = document.querySelector("#chart .plot");
            plot.scrollIntoView();
            return plot.viewBox.baseVal.width === plot.clientWidth;"##;
        let start = std::time::Instant::now();
        while b.js(fits).await != serde_json::json!(true) {
            assert!(
                start.elapsed() < SOON,
                "the chart was not redrawn to the new width"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        b.screenshot("race-chart-narrow").await;
        b.assert_no_console_errors("racing flat out").await;
    })
    .await;
}

/// A paced race: every transport keeps up, so every line runs at the pace (on a linear scale).
#[tokio::test]
async fn a_paced_race_draws_the_pace_for_every_transport_in_the_browser() {
    let app = spawn_app().await;
    with_browser(&app, "race-chart-paced", async |b| {
        b.open_page().await;
        let interval_ms = 100;
        let pace = 1000.0 / interval_ms as f64;
        let (panels, chart) = race(b, 40, interval_ms, SOON).await;
        b.screenshot("race-chart-paced").await;
        assert_one_line_per_transport(&chart, &panels);
        assert_eq!(chart.scale, "linear", "{chart:#?}");
        for line in &chart.series {
            // From one second on, each point counts a whole second of chunks.
            let rates: Vec<f64> = line
                .points
                .iter()
                .filter(|&&(seconds, _)| seconds >= 1.0)
                .map(|&(_, rate)| rate)
                .collect();
            assert!(rates.len() >= 4, "too few points: {line:?}");
            let typical = median(rates.clone());
            assert!(
                (typical - pace).abs() <= 0.1 * pace,
                "{}: {typical}/s, not {pace}/s: {line:?}",
                line.name
            );
            assert!(
                rates.iter().all(|r| (r - pace).abs() <= 0.5 * pace),
                "{}: a point far from {pace}/s: {line:?}",
                line.name
            );
            // A steady stream: the line ends on the panel's average, within 10 %, give or
            // take the one chunk that a window's edges can cut either way (a window spans at
            // least a second: a chunk in it is at most 1/s).
            let panel = panels[line.name.as_str()].rate_per_sec();
            let last = line.last_rate();
            assert!(
                (last - panel).abs() <= 0.1 * panel + 1.0,
                "{}: the line ends at {last:.1}/s, the panel says {panel:.1}/s: {line:?}",
                line.name
            );
        }
        b.assert_no_console_errors("racing at a pace").await;
    })
    .await;
}

/// A stream of an hour keeps a line of at most `MAX_POINTS` samples, spread over the whole
/// run, and its rates stay exact: the page's own `Series`, fed an hour of counts in moments.
#[tokio::test]
async fn an_hour_long_line_stays_bounded_and_exact_in_the_browser() {
    let app = spawn_app().await;
    with_browser(&app, "chart-hour", async |b| {
        b.open_page().await;
        let v = b
            .client
            .execute_async(
                r#"const done = arguments[arguments.length - 1];
                import(new URL("static/chart.js", document.baseURI).href).then((chart) => {
                    // An hour at 100 chunks a second, sampled every 250 ms, then 10 more
                    // chunks in the last 100 ms.
                    const run = { startedAt: 0, endedAt: null, received: 0 };
                    const line = new chart.Series({ run }, 0, 250);
                    const hour = 3600 * 1000;
                    for (let now = 250; now <= hour; now += 250) {
                        run.received = now / 10;
                        line.sample(now);
                    }
                    run.endedAt = hour + 100;
                    run.received += 10;
                    line.sample(hour + 250);
                    done({
                        maxPoints: chart.MAX_POINTS,
                        counts: line.counts(),
                        points: line.points(hour + 250),
                    });
                });"#,
                vec![],
            )
            .await
            .expect("the page's chart module");
        let max_points = v["maxPoints"].as_u64().expect("MAX_POINTS") as usize;
        let pairs = |key: &str| -> Vec<(f64, f64)> {
            serde_json::from_value(v[key].clone()).expect("[seconds, value] pairs")
        };
        let counts = pairs("counts");
        let points = pairs("points");
        // The start, then at most MAX_POINTS samples, the last one the run's end.
        assert!(counts.len() <= max_points + 1, "{} counts", counts.len());
        assert!(counts.len() > max_points / 2, "{} counts", counts.len());
        assert_eq!(counts[0], (0.0, 0.0));
        assert_eq!(*counts.last().expect("counts"), (3600.1, 360_010.0));
        // Spread evenly over the whole hour: no gap much wider than the hour shared out.
        let widest = counts
            .windows(2)
            .map(|w| w[1].0 - w[0].0)
            .fold(0.0, f64::max);
        assert!(
            widest <= 2.0 * 3600.0 / (counts.len() - 1) as f64,
            "a gap of {widest} s among {} counts",
            counts.len()
        );
        assert_eq!(points.len(), counts.len() - 1);
        for (seconds, rate) in points {
            assert!((rate - 100.0).abs() < 1e-6, "{rate}/s at {seconds} s");
        }
    })
    .await;
}

/// The lines, their legend and their panels' swatches share each transport's colour, which
/// stands out from the chart's background (WCAG's 3:1 for graphics) in the light and the dark
/// colour scheme; the axes' labels, the text alternative and the Start button are readable
/// text (4.5:1).
#[tokio::test]
async fn the_chart_and_start_are_legible_in_light_and_dark_schemes_in_the_browser() {
    let app = spawn_app().await;
    with_browser(&app, "chart-schemes", async |b| {
        b.open_page().await;
        let mut backgrounds = Vec::new();
        for scheme in ["light", "dark"] {
            b.emulate_media(&[("prefers-color-scheme", scheme)]).await;
            let (panels, chart) = race(b, 20, 50, SOON).await;
            assert_one_line_per_transport(&chart, &panels);
            b.screenshot(&format!("chart-{scheme}")).await;
            let colours = b
                .js(
                    r#"const style = (el, property) => getComputedStyle(el)[property];
                const chart = document.getElementById("chart");
                return {
                    background: style(chart, "backgroundColor"),
                    label: style(chart.querySelector(".plot text"), "fill"),
                    summary: style(chart.querySelector(".summary"), "color"),
                    start: style(document.getElementById("start"), "color"),
                    startBackground: style(document.getElementById("start"), "backgroundColor"),
                    legend: [...chart.querySelectorAll(".legend line")]
                        .map((line) => style(line, "stroke")),
                    panels: [...document.querySelectorAll(".panel h2 .swatch line")]
                        .map((line) => style(line, "stroke")),
                };"#,
                )
                .await;
            let colour = |key: &str| colours[key].as_str().expect("a colour").to_owned();
            let list = |key: &str| -> Vec<String> {
                serde_json::from_value(colours[key].clone()).expect("a list of colours")
            };
            let background = colour("background");
            let strokes: Vec<String> = chart.series.iter().map(|l| l.stroke.clone()).collect();
            assert_eq!(list("legend"), strokes, "{scheme}: the legend's colours");
            assert_eq!(list("panels"), strokes, "{scheme}: the panels' colours");
            for line in &chart.series {
                let ratio = contrast(&line.stroke, &background);
                assert!(
                    ratio >= 3.0,
                    "{scheme}: {} ({}) on {background}: {ratio:.2}",
                    line.name,
                    line.stroke
                );
            }
            for text in ["label", "summary"] {
                let ratio = contrast(&colour(text), &background);
                assert!(
                    ratio >= 4.5,
                    "{scheme}: the {text} on {background}: {ratio:.2}"
                );
            }
            let ratio = contrast(&colour("start"), &colour("startBackground"));
            assert!(
                ratio >= 4.5,
                "{scheme}: the Start button's text: {ratio:.2}"
            );
            backgrounds.push(background);
        }
        assert_ne!(backgrounds[0], backgrounds[1], "the schemes differ");
        b.assert_no_console_errors("changing schemes").await;
    })
    .await;
}

/// The text alternative changes at most once a second (each change is announced); the lines
/// move at every sample, or at most once a second when the user prefers reduced motion.
#[tokio::test]
async fn the_chart_speaks_once_a_second_and_calms_down_for_reduced_motion_in_the_browser() {
    let app = spawn_app().await;
    with_browser(&app, "chart-motion", async |b| {
        b.open_page().await;
        for reduced in [false, true] {
            if reduced {
                b.emulate_media(&[("prefers-reduced-motion", "reduce")])
                    .await;
            }
            let matches = b
                .js(r#"return matchMedia("(prefers-reduced-motion: reduce)").matches;"#)
                .await;
            assert_eq!(matches.as_bool(), Some(reduced));
            b.choose("ws", 30, 100).await;
            b.click("#start").await;
            // Every draw and every change of words, as often as WebDriver can look.
            let mut draws: Vec<f64> = Vec::new();
            let mut words: Vec<(f64, String)> = Vec::new();
            let start = std::time::Instant::now();
            loop {
                let chart = b.chart().await;
                let drawn = chart.drawn_at.expect("drawn");
                if draws.last() != Some(&drawn) {
                    draws.push(drawn);
                }
                if let Some(said) = chart.described_at {
                    if words.last().is_none_or(|(at, _)| *at != said) {
                        words.push((said, chart.summary.clone()));
                    }
                }
                if chart.settled && chart.series.iter().all(|l| l.done) {
                    break;
                }
                assert!(start.elapsed() < SOON, "the stream to end: {chart:#?}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let gaps =
                |times: &[f64]| -> Vec<f64> { times.windows(2).map(|w| w[1] - w[0]).collect() };
            let spoken: Vec<f64> = words.iter().map(|(at, _)| *at).collect();
            assert!(words.len() >= 3, "it speaks while streaming: {words:?}");
            assert!(
                gaps(&spoken).iter().all(|&gap| gap >= 999.0),
                "words more often than once a second: {words:?}"
            );
            assert!(
                words.last().expect("words").1.ends_with("(done)"),
                "{words:?}"
            );
            let draw_gaps = gaps(&draws);
            if reduced {
                assert!(
                    draw_gaps.iter().all(|&gap| gap >= 999.0),
                    "reduced motion: redrawn more often than once a second: {draw_gaps:?}"
                );
            } else {
                assert!(
                    draw_gaps.iter().any(|&gap| gap < 500.0),
                    "the lines move at every sample: {draw_gaps:?}"
                );
            }
        }
        b.assert_no_console_errors("streaming with and without motion")
            .await;
    })
    .await;
}

/// What the chart costs the page: the same flat-out race in the same browser, with the chart
/// and without it (`?chart=off`), in pairs that take turns going first; prints each
/// transport's chunks/s both ways, the README's table. A measurement, to run on its own (see
/// the README). It fails when the chart's cost is measurable: when a transport is slower
/// with the chart in so many of the pairs that chance alone would do it less than once in a
/// hundred (a sign test).
#[tokio::test]
#[ignore = "a measurement for the README: run it alone, with --ignored --nocapture"]
async fn the_chart_costs_the_race_nothing_measurable_in_the_browser() {
    const PAIRS: usize = 20;
    /// Heads at least 16 times in 20 fair coin flips: less than once in a hundred.
    const SLOWER_IN: usize = 16;
    let count = 100_000;
    let app = spawn_app().await;
    with_browser(&app, "chart-cost", async |b| {
        // For each transport, its (without, with) chunks/s in each pair.
        let mut pairs: HashMap<&str, Vec<(f64, f64)>> = HashMap::new();
        for pair in 0..PAIRS {
            // Each goes first in turn, so that a drift over the run favours neither.
            let order = if pair % 2 == 0 {
                [false, true]
            } else {
                [true, false]
            };
            let mut rates: HashMap<(&str, bool), f64> = HashMap::new();
            for with_chart in order {
                b.open_page_with(if with_chart { "" } else { "?chart=off" })
                    .await;
                let shown = b
                    .js(r#"return document.getElementById("chart") !== null;"#)
                    .await;
                assert_eq!(shown.as_bool(), Some(with_chart));
                for (transport, panel) in race_panels(b, count, 0, SOON * 4).await {
                    rates.insert((transport, with_chart), panel.rate_per_sec());
                }
            }
            for transport in TRANSPORTS {
                let both = (rates[&(transport, false)], rates[&(transport, true)]);
                eprintln!(
                    "pair {pair}: {transport} {:.0} without, {:.0} with",
                    both.0, both.1
                );
                pairs.entry(transport).or_default().push(both);
            }
        }
        eprintln!("racing {count} chunks, {PAIRS} pairs; median chunks/s (slowest–fastest):");
        eprintln!(
            "| transport | without the chart | with the chart | with / without, median pair | \
             slower with the chart |"
        );
        eprintln!("|---|---:|---:|---:|---:|");
        let spread = |runs: Vec<f64>| {
            let low = runs.iter().copied().fold(f64::INFINITY, f64::min);
            let high = runs.iter().copied().fold(0.0, f64::max);
            format!("{:.0} ({low:.0}–{high:.0})", median(runs))
        };
        let mut costly = Vec::new();
        for transport in TRANSPORTS {
            let runs = &pairs[transport];
            let ratio = median(runs.iter().map(|(without, with)| with / without).collect());
            let slower = runs.iter().filter(|(without, with)| with < without).count();
            eprintln!(
                "| {transport} | {} | {} | {ratio:.2} | {slower} of {PAIRS} pairs |",
                spread(runs.iter().map(|r| r.0).collect()),
                spread(runs.iter().map(|r| r.1).collect()),
            );
            if slower >= SLOWER_IN {
                costly.push((transport, slower));
            }
        }
        assert!(
            costly.is_empty(),
            "the chart slows the race in most pairs: {costly:?}"
        );
    })
    .await;
}
