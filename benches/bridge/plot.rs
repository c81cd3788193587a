//! `target/bench/latency.svg`: latency distributions as percentile curves, one panel per
//! comparison (events: bridge vs the raw-mosquitto floor; commands: bridge vs the echo round
//! trip; Room clients: Rust vs the official Python client when that scenario ran).
//!
//! The x axis is "nines" (-log10(1 − q)): 0 %, 90 %, 99 %, 99.9 % are equally spaced, so the
//! tail gets as much room as the median. The y axis is the latency on a log scale.

use std::path::Path;

use plotters::prelude::*;

use crate::report::LatencyRow;

/// One curve: a label and its latencies in nanoseconds, sorted.
pub struct Series {
    pub label: String,
    pub samples: Vec<u64>,
    pub color: RGBColor,
}

/// One chart of the figure.
pub struct Panel {
    pub title: String,
    pub series: Vec<Series>,
}

const FLOOR: [RGBColor; 2] = [RGBColor(110, 160, 230), RGBColor(20, 60, 160)];
const BRIDGE: [RGBColor; 2] = [RGBColor(245, 150, 90), RGBColor(200, 30, 30)];
pub const RUST: RGBColor = RGBColor(200, 30, 30);
pub const PYTHON: RGBColor = RGBColor(20, 60, 160);
pub const PYTHON_DIRECT: RGBColor = RGBColor(110, 160, 230);

/// The event and command panels from the latency rows.
pub fn latency_panels(rows: &[LatencyRow]) -> Vec<Panel> {
    let mut events = Panel {
        title: "Room event → MQTT subscriber".into(),
        series: Vec::new(),
    };
    let mut commands = Panel {
        title: "Command round trip over MQTT".into(),
        series: Vec::new(),
    };
    let mut rates: Vec<f64> = rows
        .iter()
        .filter(|r| r.rate > 0.0)
        .map(|r| r.rate)
        .collect();
    rates.dedup();
    for row in rows.iter().filter(|r| !r.samples.is_empty()) {
        let bridge = !row.path.starts_with("floor");
        if row.rate > 0.0 {
            // Lighter for the lowest rate, darker for the highest.
            let shade = usize::from(rates.len() > 1 && row.rate == rates[rates.len() - 1]);
            let (color, name) = if bridge {
                (BRIDGE[shade], "bridge")
            } else {
                (FLOOR[shade], "floor")
            };
            events.series.push(Series {
                label: format!("{name} {}/s", crate::common::int(row.rate)),
                samples: row.samples.clone(),
                color,
            });
        } else {
            commands.series.push(Series {
                label: if bridge {
                    "set/mic_muted → response".into()
                } else {
                    "floor (echo client)".into()
                },
                samples: row.samples.clone(),
                color: if bridge { BRIDGE[1] } else { FLOOR[1] },
            });
        }
    }
    [events, commands]
        .into_iter()
        .filter(|p| !p.series.is_empty())
        .collect()
}

/// Percentile label of a "nines" value: 0 → 0 %, 0.301 → 50 %, 2 → 99 %, 3 → 99.9 %.
fn percentile_label(nines: f64) -> String {
    let percent = 100.0 * (1.0 - 10f64.powf(-nines));
    let digits = (nines.round() as i64 - 2).max(0) as usize;
    format!("{percent:.digits$} %")
}

fn latency_label(us: f64) -> String {
    let leading = (us / 10f64.powf(us.log10().floor())).round();
    if ![1.0, 2.0, 5.0].contains(&leading) {
        String::new()
    } else if us >= 1000.0 {
        format!("{} ms", us / 1000.0)
    } else {
        format!("{us} µs")
    }
}

/// (nines, µs) points of one sorted sample set, thinned to about one per 0.005 nines.
fn curve(samples: &[u64]) -> Vec<(f64, f64)> {
    let n = samples.len();
    let mut points = Vec::new();
    let mut last = f64::NEG_INFINITY;
    for (i, &ns) in samples.iter().enumerate() {
        let x = -(1.0 - i as f64 / n as f64).log10();
        if x - last >= 0.005 || i + 1 == n {
            points.push((x, (ns as f64 / 1000.0).max(1.0)));
            last = x;
        }
    }
    points
}

/// Draws the panels side by side into an SVG file.
pub fn write(path: &Path, title: &str, panels: &[Panel]) -> Result<(), String> {
    if panels.is_empty() {
        return Err("no latency samples to plot".into());
    }
    let size = (520 * panels.len() as u32, 460);
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let root = root
        .titled(title, ("sans-serif", 18))
        .map_err(|e| e.to_string())?;
    for (area, panel) in root.split_evenly((1, panels.len())).iter().zip(panels) {
        draw_panel(area, panel).map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    panel: &Panel,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let curves: Vec<Vec<(f64, f64)>> = panel.series.iter().map(|s| curve(&s.samples)).collect();
    let all = curves.iter().flatten();
    let x_max = all.clone().map(|p| p.0).fold(1.0f64, f64::max).min(5.0) * 1.02;
    // From a power of ten: plotters draws no grid line below the first one.
    let y_min = 10f64.powf(
        all.clone()
            .map(|p| p.1)
            .fold(f64::INFINITY, f64::min)
            .max(1.0)
            .log10()
            .floor(),
    );
    let y_top = all.map(|p| p.1).fold(1.0f64, f64::max) * 1.25;
    // The top quarter of the chart stays free for the legend.
    let y_max = y_top * (y_top / y_min).powf(0.35);
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 16))
        .margin(12)
        .margin_right(28)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..x_max, (y_min..y_max).log_scale())?;
    chart
        .configure_mesh()
        // Whole nines only: 0 %, 90 %, 99 %, 99.9 %…
        .x_labels(x_max as usize + 1)
        // Every 1..9 × 10^k gets a grid line, 1, 2 and 5 a label.
        .y_labels(40)
        .x_desc("percentile")
        .y_desc("latency")
        .x_label_formatter(&|x| percentile_label(*x))
        .y_label_formatter(&|y| latency_label(*y))
        .bold_line_style(RGBColor(228, 228, 228))
        .light_line_style(TRANSPARENT)
        .draw()?;
    for (series, points) in panel.series.iter().zip(curves) {
        let color = series.color;
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(format!("{} (n={})", series.label, series.samples.len()))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 200, 200))
        .draw()?;
    Ok(())
}
