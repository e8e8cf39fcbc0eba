//! Plots as inline SVG (plotters' SVG backend), every one shaded by the
//! fault windows with the fault named. The plots own their input types;
//! the view holds them as data, and the page renders them.

use plotters::prelude::*;
use serde::Serialize;

/// How an operation ended, as the plots colour it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Fail,
    Info,
}

impl Outcome {
    pub const ALL: [Outcome; 3] = [Outcome::Ok, Outcome::Fail, Outcome::Info];

    fn word(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Info => "info",
        }
    }
}

/// One point of the latency plot: seconds, milliseconds, how it ended.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Point {
    pub t: f64,
    pub latency_ms: f64,
    pub kind: Outcome,
}

/// A fault window shaded in a plot, from `start` to `end` (seconds).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Shade {
    pub name: String,
    pub start: f64,
    pub end: f64,
}

/// Completions per bucket of `bucket_s` seconds: ok, fail, info.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Buckets {
    pub bucket_s: f64,
    pub counts: Vec<[u64; 3]>,
}

impl Buckets {
    pub fn add(&mut self, t: f64, kind: Outcome) {
        if let Some(b) = self.counts.get_mut((t / self.bucket_s) as usize) {
            b[kind as usize] += 1;
        }
    }
}

/// The run's plots as data: latencies, completions per bucket, and the
/// fault windows that took effect (shaded).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunPlots {
    pub points: Vec<Point>,
    /// Seconds the latency plot spans.
    pub span: f64,
    pub buckets: Buckets,
    pub shaded: Vec<Shade>,
}

/// The run's three plots as SVG.
pub struct RunSvgs {
    pub latency: String,
    pub throughput: String,
    pub availability: String,
}

impl RunPlots {
    pub fn render(&self) -> Res<RunSvgs> {
        Ok(RunSvgs {
            latency: latency(&self.points, &self.shaded, self.span)?,
            throughput: throughput(&self.buckets, &self.shaded)?,
            availability: availability(&self.buckets, &self.shaded)?,
        })
    }
}

/// A plot plotters could not draw.
#[derive(Debug, thiserror::Error)]
#[error("plot: {0}")]
pub struct PlotError(String);

const OK: RGBColor = RGBColor(42, 157, 74);
const FAIL: RGBColor = RGBColor(233, 162, 59);
const INFO: RGBColor = RGBColor(214, 40, 40);
const SHADE: RGBColor = RGBColor(120, 120, 200);
const W: u32 = 900;
const H: u32 = 260;

fn color(kind: Outcome) -> RGBColor {
    match kind {
        Outcome::Ok => OK,
        Outcome::Fail => FAIL,
        Outcome::Info => INFO,
    }
}

type Res<T> = Result<T, PlotError>;

fn e(x: impl std::fmt::Display) -> PlotError {
    PlotError(x.to_string())
}

/// Latency of every operation (up to the points given) over time, log scale.
pub fn latency(points: &[Point], windows: &[Shade], span: f64) -> Res<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(e)?;
        let max = points.iter().map(|p| p.latency_ms).fold(1.0f64, f64::max) * 1.5;
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..span.max(1.0), (0.01f64..max).log_scale())
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_desc("seconds")
            .y_desc("latency (ms)")
            .light_line_style(WHITE)
            .draw()
            .map_err(e)?;
        shade(&mut chart, windows, 0.01, max)?;
        for kind in Outcome::ALL {
            chart
                .draw_series(
                    points.iter().filter(|p| p.kind == kind).map(|p| {
                        Circle::new((p.t, p.latency_ms.max(0.011)), 2, color(kind).filled())
                    }),
                )
                .map_err(e)?;
        }
        root.present().map_err(e)?;
    }
    Ok(compact_circles(&out))
}

/// The same picture in fewer bytes: circles drawn twice at the same pixel
/// with the same colour kept once, and runs of one colour grouped under one
/// `<g>` with the attributes they share.
fn compact_circles(svg: &str) -> String {
    let mut out = String::with_capacity(svg.len() / 2);
    let mut seen = std::collections::HashSet::new();
    let mut group: Option<&str> = None;
    for line in svg.lines() {
        let circle = line.strip_prefix("<circle cx=\"").and_then(|rest| {
            let (cx, rest) = rest.split_once("\" cy=\"")?;
            let (cy, rest) = rest.split_once("\" r=\"")?;
            let (r, rest) = rest.split_once('"')?;
            let fill = rest.split_once("fill=\"")?.1.split_once('"')?.0;
            Some((cx, cy, r, fill))
        });
        match circle {
            Some((cx, cy, r, fill)) => {
                if !seen.insert((cx, cy, fill)) {
                    continue;
                }
                if group != Some(fill) {
                    if group.is_some() {
                        out.push_str("</g>\n");
                    }
                    out.push_str(&format!("<g fill=\"{fill}\" stroke=\"none\">\n"));
                    group = Some(fill);
                }
                out.push_str(&format!("<circle cx=\"{cx}\" cy=\"{cy}\" r=\"{r}\"/>\n"));
            }
            None => {
                if group.take().is_some() {
                    out.push_str("</g>\n");
                }
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

fn shade<DB: DrawingBackend, CT>(
    chart: &mut ChartContext<'_, DB, CT>,
    windows: &[Shade],
    lo: f64,
    hi: f64,
) -> Res<()>
where
    CT: plotters::coord::CoordTranslate<From = (f64, f64)>,
{
    chart
        .draw_series(
            windows
                .iter()
                .map(|w| Rectangle::new([(w.start, lo), (w.end, hi)], SHADE.mix(0.15).filled())),
        )
        .map_err(e)?;
    chart
        .draw_series(windows.iter().map(|w| {
            Text::new(
                w.name.clone(),
                (w.start, hi),
                ("sans-serif", 11).into_font().color(&SHADE),
            )
        }))
        .map_err(e)?;
    Ok(())
}

/// Completions per second: ok, fail, info.
pub fn throughput(buckets: &Buckets, windows: &[Shade]) -> Res<String> {
    let (per_sec, bucket_s) = (&buckets.counts, buckets.bucket_s);
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(e)?;
        let span = per_sec.len().max(1) as f64 * bucket_s;
        let max = per_sec
            .iter()
            .flat_map(|c| c.iter())
            .copied()
            .max()
            .unwrap_or(1)
            .max(1) as f64
            / bucket_s
            * 1.2;
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..span, 0f64..max)
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_desc("seconds")
            .y_desc("ops/s")
            .light_line_style(WHITE)
            .draw()
            .map_err(e)?;
        shade(&mut chart, windows, 0.0, max)?;
        for kind in Outcome::ALL {
            chart
                .draw_series(LineSeries::new(
                    per_sec.iter().enumerate().map(|(s, c)| {
                        (
                            (s as f64 + 0.5) * bucket_s,
                            c[kind as usize] as f64 / bucket_s,
                        )
                    }),
                    color(kind).stroke_width(2),
                ))
                .map_err(e)?
                .label(kind.word());
        }
        root.present().map_err(e)?;
    }
    Ok(out)
}

/// Fraction of completions that were ok, per bucket.
pub fn availability(buckets: &Buckets, windows: &[Shade]) -> Res<String> {
    let (per_sec, bucket_s) = (&buckets.counts, buckets.bucket_s);
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (W, 200)).into_drawing_area();
        root.fill(&WHITE).map_err(e)?;
        let span = per_sec.len().max(1) as f64 * bucket_s;
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..span, 0f64..1.05)
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_desc("seconds")
            .y_desc("ok fraction")
            .light_line_style(WHITE)
            .draw()
            .map_err(e)?;
        shade(&mut chart, windows, 0.0, 1.05)?;
        chart
            .draw_series(LineSeries::new(
                per_sec.iter().enumerate().filter_map(|(s, c)| {
                    let n = c[0] + c[1] + c[2];
                    (n > 0).then(|| ((s as f64 + 0.5) * bucket_s, c[0] as f64 / n as f64))
                }),
                OK.stroke_width(2),
            ))
            .map_err(e)?;
        root.present().map_err(e)?;
    }
    Ok(out)
}

/// What a bar on a lane is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LaneKind {
    /// Linearized (or an operation not named by the anomaly).
    Done,
    Pending,
    /// The operation that cannot be linearized, or one an anomaly names.
    Named,
    /// A lock held.
    Hold,
}

impl LaneKind {
    fn color(self) -> RGBColor {
        match self {
            LaneKind::Done => RGBColor(120, 170, 130),
            LaneKind::Pending => RGBColor(233, 162, 59),
            LaneKind::Named => RGBColor(214, 40, 40),
            LaneKind::Hold => RGBColor(90, 120, 200),
        }
    }
}

/// One operation on a lane, from its invocation to its completion.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LaneOp {
    pub lane: String,
    pub start: f64,
    pub end: f64,
    pub label: String,
    pub kind: LaneKind,
    /// A moment marked on the bar with a line and a word (a lease's end).
    pub mark: Option<(f64, String)>,
}

/// What the lanes' x axis counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LaneUnit {
    Seconds,
    /// The history has no times: event indices, and no fault windows.
    EventIndex,
}

/// Lanes per process around a failure, as data.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LanePlot {
    pub ops: Vec<LaneOp>,
    pub unit: LaneUnit,
}

impl LanePlot {
    /// The lanes as SVG, the fault windows shaded when the axis is time;
    /// empty when there is nothing to draw.
    pub fn render(&self, windows: &[Shade]) -> Res<String> {
        match self.unit {
            LaneUnit::Seconds => lanes(&self.ops, windows, "seconds"),
            LaneUnit::EventIndex => lanes(&self.ops, &[], "event index"),
        }
    }
}

/// Lanes per process around a failure: each operation a bar from its
/// invocation to its completion, labelled; fault windows shaded.
fn lanes(ops: &[LaneOp], windows: &[Shade], unit: &str) -> Res<String> {
    let mut names: Vec<String> = Vec::new();
    for o in ops {
        if !names.contains(&o.lane) {
            names.push(o.lane.clone());
        }
    }
    names.sort_by_key(|n| (n.parse::<u64>().unwrap_or(u64::MAX), n.clone()));
    let lo = ops.iter().map(|o| o.start).fold(f64::INFINITY, f64::min);
    let hi = ops
        .iter()
        .flat_map(|o| [Some(o.end), o.mark.as_ref().map(|m| m.0)])
        .flatten()
        .fold(f64::NEG_INFINITY, f64::max);
    if names.is_empty() || !lo.is_finite() || !hi.is_finite() {
        return Ok(String::new());
    }
    let pad = ((hi - lo) * 0.05).max(1e-6);
    // Room on the right for a mark's words.
    let words = if ops.iter().any(|o| o.mark.is_some()) {
        3.0
    } else {
        1.0
    };
    let (x0, x1) = (lo - pad, hi + pad * words);
    let rows = names.len() as f64;
    let h = (60 + 34 * names.len()) as u32;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (W, h)).into_drawing_area();
        root.fill(&WHITE).map_err(e)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(90)
            .build_cartesian_2d(x0..x1, 0f64..rows)
            .map_err(e)?;
        let labels = names.clone();
        chart
            .configure_mesh()
            .x_desc(unit)
            .y_labels(names.len() * 2 + 1)
            .y_label_formatter(&move |y: &f64| {
                let i = y.floor() as usize;
                if (y - y.floor() - 0.5).abs() < 0.01 && i < labels.len() {
                    format!("process {}", labels[i])
                } else {
                    String::new()
                }
            })
            .light_line_style(WHITE)
            .draw()
            .map_err(e)?;
        let visible: Vec<Shade> = windows
            .iter()
            .filter(|w| w.end >= x0 && w.start <= x1)
            .map(|w| Shade {
                start: w.start.max(x0),
                end: w.end.min(x1),
                ..w.clone()
            })
            .collect();
        shade(&mut chart, &visible, 0.0, rows)?;
        let row = |lane: &str| names.iter().position(|n| n == lane).unwrap_or(0) as f64;
        chart
            .draw_series(ops.iter().map(|o| {
                let y = row(&o.lane);
                Rectangle::new(
                    [
                        (o.start, y + 0.2),
                        (o.end.max(o.start + pad / 20.0), y + 0.8),
                    ],
                    o.kind.color().mix(0.85).filled(),
                )
            }))
            .map_err(e)?;
        chart
            .draw_series(ops.iter().map(|o| {
                // Holds are labelled under their bar, operations above.
                let dy = if o.kind == LaneKind::Hold { 0.15 } else { 0.95 };
                Text::new(
                    o.label.clone(),
                    (o.start, row(&o.lane) + dy),
                    ("sans-serif", 11).into_font(),
                )
            }))
            .map_err(e)?;
        let marks: Vec<(f64, f64, &str)> = ops
            .iter()
            .filter_map(|o| o.mark.as_ref().map(|(t, w)| (*t, row(&o.lane), w.as_str())))
            .collect();
        chart
            .draw_series(marks.iter().map(|&(t, y, _)| {
                PathElement::new(vec![(t, y + 0.05), (t, y + 0.95)], BLACK.stroke_width(2))
            }))
            .map_err(e)?;
        chart
            .draw_series(marks.iter().map(|&(t, y, w)| {
                Text::new(
                    format!(" {w}"),
                    (t, y + 0.95),
                    ("sans-serif", 10).into_font(),
                )
            }))
            .map_err(e)?;
        root.present().map_err(e)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_circles_keeps_each_pixel_once_and_the_order_of_colours() {
        let svg = "<svg>\n\
            <circle cx=\"1\" cy=\"2\" r=\"2\" opacity=\"1\" fill=\"#00FF00\" stroke=\"none\" stroke-width=\"1\"/>\n\
            <circle cx=\"1\" cy=\"2\" r=\"2\" opacity=\"1\" fill=\"#00FF00\" stroke=\"none\" stroke-width=\"1\"/>\n\
            <circle cx=\"1\" cy=\"2\" r=\"2\" opacity=\"1\" fill=\"#FF0000\" stroke=\"none\" stroke-width=\"1\"/>\n\
            <text>x</text>\n</svg>";
        assert_eq!(
            compact_circles(svg),
            "<svg>\n<g fill=\"#00FF00\" stroke=\"none\">\n<circle cx=\"1\" cy=\"2\" r=\"2\"/>\n</g>\n\
             <g fill=\"#FF0000\" stroke=\"none\">\n<circle cx=\"1\" cy=\"2\" r=\"2\"/>\n</g>\n<text>x</text>\n</svg>\n"
        );
    }
}
