//! Charts the benches draw from their own figures, as SVG (plotters' SVG
//! backend: text is SVG `<text>`, so no font files are needed), so a reader
//! of `docs/benchmarks.md` sees where the time goes without reading tables.
//! Each bench that draws one includes this file with `#[path]`.

// Each bench draws some of these charts, not all.
#![allow(dead_code)]

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use std::path::Path;

/// One horizontal bar: its name and its segments (name, value), left to right.
pub struct Bar<'a> {
    /// The bar's name, on the left axis.
    pub name: &'a str,
    /// The parts it is made of, in order; a part's name picks its colour.
    pub parts: Vec<(&'a str, f64)>,
}

/// The colours of the parts, by first appearance.
const COLOURS: [RGBColor; 8] = [
    RGBColor(0x4e, 0x79, 0xa7),
    RGBColor(0xf2, 0x8e, 0x2b),
    RGBColor(0xe1, 0x57, 0x59),
    RGBColor(0x76, 0xb7, 0xb2),
    RGBColor(0x59, 0xa1, 0x4f),
    RGBColor(0xed, 0xc9, 0x48),
    RGBColor(0xb0, 0x7a, 0xa1),
    RGBColor(0x9c, 0x75, 0x5f),
];

/// Writes to `path` an SVG of `bars` as stacked horizontal bars, `unit` on
/// the axis, each part labelled with its value when it is wide enough, and
/// a legend of the parts. Says on stderr where it wrote, or why it could not.
pub fn stacked_bars(path: &Path, title: &str, unit: &str, bars: &[Bar]) {
    report(path, draw(path, title, unit, bars));
}

/// Says on stderr where a chart was written, or why it could not be.
fn report(path: &Path, drawn: Result<(), Box<dyn std::error::Error>>) {
    match drawn {
        Ok(()) => eprintln!("chart written: {}", path.display()),
        Err(e) => eprintln!("chart {}: {e}", path.display()),
    }
}

fn draw(
    path: &Path,
    title: &str,
    unit: &str,
    bars: &[Bar],
) -> Result<(), Box<dyn std::error::Error>> {
    let mut names: Vec<&str> = Vec::new();
    for bar in bars {
        for (part, _) in &bar.parts {
            if !names.contains(part) {
                names.push(part);
            }
        }
    }
    let total = |b: &Bar| b.parts.iter().map(|(_, v)| v.max(0.0)).sum::<f64>();
    let widest = bars.iter().map(total).fold(1.0, f64::max);
    let height = 140 + 70 * bars.len() as u32;
    let root = SVGBackend::new(path, (960, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(110)
        .build_cartesian_2d(0.0..widest * 1.35, (0..bars.len()).into_segmented())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc(unit)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                bars.get(*i).map(|b| b.name.to_string()).unwrap_or_default()
            }
            SegmentValue::Last => String::new(),
        })
        .label_style(("sans-serif", 14))
        .draw()?;
    for (k, name) in names.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let mut rects = Vec::new();
        for (i, bar) in bars.iter().enumerate() {
            let mut x = 0.0;
            for (part, v) in &bar.parts {
                let v = v.max(0.0);
                if part == name {
                    rects.push((i, x, x + v));
                }
                x += v;
            }
        }
        chart
            .draw_series(rects.iter().map(|&(i, x0, x1)| {
                let mut r = Rectangle::new(
                    [
                        (x0, SegmentValue::Exact(i)),
                        (x1, SegmentValue::Exact(i + 1)),
                    ],
                    colour.filled(),
                );
                r.set_margin(12, 12, 0, 0);
                r
            }))?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], colour.filled()));
        // The value inside the part, when the part is wide enough to hold it.
        chart.draw_series(
            rects
                .iter()
                .filter(|&&(_, x0, x1)| (x1 - x0) / widest > 0.06)
                .map(|&(i, x0, x1)| {
                    Text::new(
                        format!("{:.0}", x1 - x0),
                        ((x0 + x1) / 2.0, SegmentValue::CenterOf(i)),
                        ("sans-serif", 13).into_font().color(&WHITE),
                    )
                }),
        )?;
    }
    // The total at the end of each bar.
    chart.draw_series(bars.iter().enumerate().map(|(i, b)| {
        Text::new(
            format!(" {:.0} {unit}", total(b)),
            (total(b), SegmentValue::CenterOf(i)),
            ("sans-serif", 13),
        )
    }))?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()?;
    root.present()?;
    Ok(())
}

/// One line of a [`lines`] chart: its name and its points (x, y).
pub struct Series<'a> {
    /// The line's name, in the legend.
    pub name: &'a str,
    /// Its points, in order of x.
    pub points: Vec<(f64, f64)>,
}

/// Writes to `path` an SVG of `series` as lines with a marker at each
/// point, both axes logarithmic (sizes and times that grow by tenfolds),
/// and a legend. Says on stderr where it wrote, or why it could not.
pub fn lines(path: &Path, title: &str, x_desc: &str, y_desc: &str, series: &[Series]) {
    report(path, draw_lines(path, title, x_desc, y_desc, series));
}

fn draw_lines(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
) -> Result<(), Box<dyn std::error::Error>> {
    let points = || series.iter().flat_map(|s| s.points.iter());
    let (x_min, x_max) = points().fold((f64::MAX, 1.0f64), |(lo, hi), (x, _)| {
        (lo.min(*x), hi.max(*x))
    });
    let (y_min, y_max) = points().fold((f64::MAX, 1.0f64), |(lo, hi), (_, y)| {
        (lo.min(*y), hi.max(*y))
    });
    if points().next().is_none() {
        return Err("no points to draw".into());
    }
    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (x_min.max(1.0) * 0.8..x_max * 1.25).log_scale(),
            (y_min.max(1.0) * 0.5..y_max * 2.0).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style(("sans-serif", 14))
        .draw()?;
    for (k, s) in series.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        chart
            .draw_series(LineSeries::new(
                s.points.iter().copied(),
                colour.stroke_width(2),
            ))?
            .label(s.name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], colour.stroke_width(2)));
        chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 4, colour.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()?;
    root.present()?;
    Ok(())
}
