//! SVG line and bar plots with `plotters` (SVG back-end only: text is left to the viewer's fonts,
//! so no system font library is needed).

use std::path::Path;

use plotters::prelude::*;

/// One named series of `(x, y)` points.
pub struct Series {
    /// The legend entry.
    pub name: String,
    /// The points, in x order.
    pub points: Vec<(f64, f64)>,
}

const COLOURS: [RGBColor; 4] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
];

/// Draws `series` as lines with points into the SVG file `path`.
pub fn lines(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> anyhow::Result<()> {
    let all = series.iter().flat_map(|s| s.points.iter());
    let (mut x_max, mut y_max) = (0.0_f64, 0.0_f64);
    for &(x, y) in all {
        x_max = x_max.max(x);
        y_max = y_max.max(y);
    }
    let x_max = if x_max > 0.0 { x_max * 1.05 } else { 1.0 };
    // Head-room above the data for the legend.
    let y_max = if y_max > 0.0 { y_max * 1.4 } else { 1.0 };

    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .draw()
        .map_err(plot_error)?;
    for (i, s) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        chart
            .draw_series(LineSeries::new(
                s.points.iter().copied(),
                colour.stroke_width(2),
            ))
            .map_err(plot_error)?
            .label(s.name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
        if s.points.len() <= 60 {
            chart
                .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, colour.filled())))
                .map_err(plot_error)?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(plot_error)?;
    root.present().map_err(plot_error)?;
    Ok(())
}

/// Draws grouped bars into the SVG file `path`: one group per category, one bar per series
/// (a `None` value leaves its bar out), each bar labelled with its value.
pub fn bars(
    path: &Path,
    title: &str,
    y_label: &str,
    categories: &[String],
    series: &[(String, Vec<Option<f64>>)],
) -> anyhow::Result<()> {
    let y_max = series
        .iter()
        .flat_map(|(_, values)| values.iter().flatten())
        .fold(0.0_f64, |max, &v| max.max(v));
    // Head-room above the bars for the legend and the value labels.
    let y_max = if y_max > 0.0 { y_max * 1.45 } else { 1.0 };
    let groups = categories.len().max(1);
    let width = 1.0 / (series.len() as f64 + 1.0);

    let root = SVGBackend::new(path, (960, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..groups as f64, 0.0..y_max)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(groups * 2 + 1)
        .x_label_formatter(&|x| {
            // Labels sit at the middle of each group.
            let i = x.floor();
            if (x - i - 0.5).abs() < 1e-6 {
                categories.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc(y_label)
        .draw()
        .map_err(plot_error)?;
    for (s, (name, values)) in series.iter().enumerate() {
        let colour = COLOURS[s % COLOURS.len()];
        let left = |group: usize| group as f64 + width * (s as f64 + 0.5);
        chart
            .draw_series(values.iter().enumerate().filter_map(|(group, v)| {
                v.map(|v| {
                    Rectangle::new(
                        [(left(group), 0.0), (left(group) + width * 0.9, v)],
                        colour.filled(),
                    )
                })
            }))
            .map_err(plot_error)?
            .label(name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], colour.filled()));
        chart
            .draw_series(values.iter().enumerate().filter_map(|(group, v)| {
                v.map(|v| {
                    let text = if v < 10.0 {
                        format!("{v:.1}")
                    } else {
                        format!("{v:.0}")
                    };
                    Text::new(text, (left(group), v + y_max * 0.01), ("sans-serif", 11))
                })
            }))
            .map_err(plot_error)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(plot_error)?;
    root.present().map_err(plot_error)?;
    Ok(())
}

fn plot_error(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("plot: {e}")
}
