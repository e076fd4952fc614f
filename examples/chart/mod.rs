//! Line charts as SVG, for a simulation's timeline: time across, panels
//! stacked one above the other on a shared time axis, the phases of the run
//! shaded behind them, one legend for every panel.
//!
//! Written by hand, a page of string formatting, rather than with a plotting
//! crate: the examples keep to the crate's dev-dependencies, and the output
//! depends on nothing but its input, so a committed chart changes only when
//! the figures do.
#![allow(dead_code)]

use std::fmt::Write as _;

/// A chart: panels that share the time axis, `0..=x_max` seconds.
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub x_max: f64,
    /// Where each phase begins (seconds from 0) and its name, in order;
    /// every other phase is shaded.
    pub phases: Vec<(f64, String)>,
    pub panels: Vec<Panel>,
}

/// One panel: a y axis and the series drawn against it.
pub struct Panel {
    pub title: String,
    pub scale: Scale,
    pub series: Vec<Series>,
}

/// How a panel's y axis maps values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scale {
    /// From 0 to a round number above the largest value.
    Linear,
    /// Whole decades around the values, for figures that span several (a
    /// p99 of 30 ms beside one of 900): values of 0 or less are not drawn.
    Log,
}

/// A line: `points` in increasing `x`. A point whose `y` cannot be drawn
/// (not finite, or not above 0 on a log scale) breaks the line there.
pub struct Series {
    pub name: String,
    pub style: Style,
    pub points: Vec<(f64, f64)>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Style {
    /// Any SVG colour, e.g. `#0072b2`.
    pub color: &'static str,
    pub dashed: bool,
}

/// A step line that holds `values[i]` through phase `i`: how a figure fixed
/// per phase (a static limit, say) is drawn against a timeline.
pub fn per_phase(phases: &[(f64, String)], x_max: f64, values: &[f64]) -> Vec<(f64, f64)> {
    let mut points = Vec::with_capacity(2 * values.len());
    for (i, &value) in values.iter().enumerate() {
        let start = phases.get(i).map_or(x_max, |p| p.0);
        let end = phases.get(i + 1).map_or(x_max, |p| p.0);
        points.push((start, value));
        points.push((end, value));
    }
    points
}

const WIDTH: f64 = 960.0;
const LEFT: f64 = 72.0;
const RIGHT: f64 = 24.0;
const PANEL_HEIGHT: f64 = 150.0;
/// Above each panel: its title.
const PANEL_GAP: f64 = 34.0;
/// The chart's title and the legend.
const HEADER: f64 = 64.0;
/// Below the last panel: the time axis's labels and its name.
const FOOTER: f64 = 48.0;
const FONT: &str = "font-family=\"sans-serif\" font-size=\"12\"";

impl Chart {
    /// The chart as a standalone SVG document.
    pub fn to_svg(&self) -> String {
        let height = HEADER + self.panels.len() as f64 * (PANEL_GAP + PANEL_HEIGHT) + FOOTER;
        let mut svg = String::new();
        let _ = writeln!(
            svg,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
             viewBox=\"0 0 {WIDTH} {height}\" {FONT}>"
        );
        let _ = writeln!(svg, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
        let _ = writeln!(
            svg,
            "<text x=\"{LEFT}\" y=\"22\" font-size=\"15\" font-weight=\"bold\">{}</text>",
            escape(&self.title)
        );
        self.legend(&mut svg);
        for (i, panel) in self.panels.iter().enumerate() {
            let top = HEADER + i as f64 * (PANEL_GAP + PANEL_HEIGHT) + PANEL_GAP;
            let place = Place {
                top,
                first: i == 0,
                last: i + 1 == self.panels.len(),
            };
            self.panel(&mut svg, panel, place);
        }
        svg.push_str("</svg>\n");
        svg
    }

    /// The time axis's length: `x_max`, or 1 s where that is not a positive
    /// number (so that nothing divides by 0 and the ticks advance).
    fn time_span(&self) -> f64 {
        if self.x_max.is_finite() && self.x_max > 0.0 {
            self.x_max
        } else {
            1.0
        }
    }

    /// Each distinct series name once, with the style it is first drawn in.
    fn legend(&self, svg: &mut String) {
        let mut seen: Vec<(&str, Style)> = Vec::new();
        for series in self.panels.iter().flat_map(|p| &p.series) {
            if !seen.iter().any(|(name, _)| *name == series.name) {
                seen.push((&series.name, series.style));
            }
        }
        let mut x = LEFT;
        for (name, style) in seen {
            let _ = writeln!(
                svg,
                "<line x1=\"{x}\" y1=\"44\" x2=\"{}\" y2=\"44\" {}/>",
                x + 24.0,
                stroke(style)
            );
            let _ = writeln!(
                svg,
                "<text x=\"{}\" y=\"48\">{}</text>",
                x + 30.0,
                escape(name)
            );
            // A rough width for 12 px sans-serif: about 7 px a character.
            x += 30.0 + 7.0 * name.chars().count() as f64 + 24.0;
        }
    }

    fn panel(&self, svg: &mut String, panel: &Panel, place: Place) {
        let Place { top, first, last } = place;
        let plot_width = WIDTH - LEFT - RIGHT;
        let bottom = top + PANEL_HEIGHT;
        let x_max = self.time_span();
        let x_of = |x: f64| LEFT + plot_width * (x / x_max).clamp(0.0, 1.0);

        // The phases: every other one shaded, each named at its start in the first panel.
        for (i, (start, name)) in self.phases.iter().enumerate() {
            let end = self.phases.get(i + 1).map_or(x_max, |p| p.0);
            if i % 2 == 1 {
                let _ = writeln!(
                    svg,
                    "<rect x=\"{:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{PANEL_HEIGHT}\" fill=\"#f0f0f0\"/>",
                    x_of(*start),
                    x_of(end) - x_of(*start)
                );
            }
            if first {
                let _ = writeln!(
                    svg,
                    "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#666\">{}</text>",
                    x_of(*start) + 4.0,
                    top + 14.0,
                    escape(name)
                );
            }
        }
        let _ = writeln!(
            svg,
            "<text x=\"{LEFT}\" y=\"{:.1}\" font-weight=\"bold\">{}</text>",
            top - 8.0,
            escape(&panel.title)
        );

        let axis = Axis::fit(panel.scale, panel.series.iter().flat_map(|s| &s.points));
        for tick in &axis.ticks {
            let y = bottom - PANEL_HEIGHT * axis.fraction(*tick);
            let _ = writeln!(
                svg,
                "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>",
                WIDTH - RIGHT
            );
            let _ = writeln!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                LEFT - 6.0,
                y + 4.0,
                tick_label(*tick)
            );
        }
        let mut t = 0.0;
        let step = time_step(x_max);
        while t <= x_max + 1e-9 {
            let x = x_of(t);
            let _ = writeln!(
                svg,
                "<line x1=\"{x:.1}\" y1=\"{bottom:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#999\"/>",
                bottom + 4.0
            );
            if last {
                let _ = writeln!(
                    svg,
                    "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                    bottom + 18.0,
                    tick_label(t)
                );
            }
            t += step;
        }
        let _ = writeln!(
            svg,
            "<rect x=\"{LEFT}\" y=\"{top:.1}\" width=\"{plot_width:.1}\" height=\"{PANEL_HEIGHT}\" fill=\"none\" stroke=\"#999\"/>"
        );
        if last {
            let _ = writeln!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                LEFT + plot_width / 2.0,
                bottom + 38.0,
                escape(&self.x_label)
            );
        }

        for series in &panel.series {
            let mut path = String::new();
            let mut pen_down = false;
            for &(x, y) in &series.points {
                if !axis.draws(y) {
                    pen_down = false;
                    continue;
                }
                let command = if pen_down { 'L' } else { 'M' };
                let _ = write!(
                    path,
                    "{command}{:.1},{:.1}",
                    x_of(x),
                    bottom - PANEL_HEIGHT * axis.fraction(y)
                );
                pen_down = true;
            }
            if !path.is_empty() {
                let _ = writeln!(
                    svg,
                    "<path d=\"{path}\" fill=\"none\" {}/>",
                    stroke(series.style)
                );
            }
        }
    }
}

/// Where a panel is drawn: its top edge, and whether it is the first (which
/// names the phases) or the last (which labels the time axis).
#[derive(Clone, Copy)]
struct Place {
    top: f64,
    first: bool,
    last: bool,
}

/// A panel's y axis: the range its values are drawn in, and where its
/// labelled lines go.
#[derive(Debug, PartialEq)]
pub struct Axis {
    pub scale: Scale,
    pub low: f64,
    pub high: f64,
    pub ticks: Vec<f64>,
}

impl Axis {
    /// The axis that holds every drawable `y` of `points`: on a linear
    /// scale from 0 to the next multiple of a round step (1, 2, 2.5 or 5
    /// times a power of ten, about 4 steps); on a log scale from the decade
    /// at or below the least to the one at or above the greatest, with a
    /// line at each decade, and at 2 and 5 times it where two decades or
    /// fewer are shown. Without drawable values, 0 to 1 (1 to 10 on a log
    /// scale).
    pub fn fit<'a>(scale: Scale, points: impl IntoIterator<Item = &'a (f64, f64)>) -> Axis {
        let drawable = |y: f64| y.is_finite() && (scale == Scale::Linear || y > 0.0);
        let (mut least, mut greatest) = (f64::INFINITY, f64::NEG_INFINITY);
        for &(_, y) in points {
            if drawable(y) {
                least = least.min(y);
                greatest = greatest.max(y);
            }
        }
        match scale {
            Scale::Linear => {
                let greatest = if greatest > 0.0 { greatest } else { 1.0 };
                let step = round_step(greatest / 4.0);
                let steps = (greatest / step - 1e-9).ceil().max(1.0);
                let ticks = (0..=steps as u32).map(|i| i as f64 * step).collect();
                Axis {
                    scale,
                    low: 0.0,
                    high: steps * step,
                    ticks,
                }
            }
            Scale::Log => {
                if !least.is_finite() {
                    (least, greatest) = (1.0, 10.0);
                }
                let low = least.log10().floor() as i32;
                let high = (greatest.log10().ceil() as i32).max(low + 1);
                let mantissas: &[f64] = if high - low <= 2 {
                    &[1.0, 2.0, 5.0]
                } else {
                    &[1.0]
                };
                let mut ticks = Vec::new();
                for decade in low..=high {
                    for m in mantissas {
                        let tick = m * 10f64.powi(decade);
                        if tick <= 10f64.powi(high) {
                            ticks.push(tick);
                        }
                    }
                }
                Axis {
                    scale,
                    low: 10f64.powi(low),
                    high: 10f64.powi(high),
                    ticks,
                }
            }
        }
    }

    /// Whether `y` can be drawn on this axis.
    pub fn draws(&self, y: f64) -> bool {
        y.is_finite() && (self.scale == Scale::Linear || y > 0.0)
    }

    /// Where `y` falls, from 0 at the bottom to 1 at the top.
    pub fn fraction(&self, y: f64) -> f64 {
        let f = match self.scale {
            Scale::Linear => (y - self.low) / (self.high - self.low),
            Scale::Log => (y / self.low).log10() / (self.high / self.low).log10(),
        };
        f.clamp(0.0, 1.0)
    }
}

/// The round step (1, 2, 2.5 or 5 times a power of ten) at or above `rough`;
/// 1 where `rough` is not a positive number.
fn round_step(rough: f64) -> f64 {
    if !(rough.is_finite() && rough > 0.0) {
        return 1.0;
    }
    let decade = 10f64.powi(rough.log10().floor() as i32);
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * decade)
        .find(|step| *step >= rough * (1.0 - 1e-9))
        .unwrap_or(10.0 * decade)
}

/// Seconds between the time axis's ticks: about ten of them.
fn time_step(x_max: f64) -> f64 {
    round_step(x_max / 10.0)
}

/// A tick's label: as few digits as say it (`0.25`, `5`, `1000`).
fn tick_label(value: f64) -> String {
    if value != 0.0 && value.abs() < 0.001 {
        return format!("{value:e}");
    }
    let rounded = (value * 1000.0).round() / 1000.0;
    format!("{rounded}")
}

fn stroke(style: Style) -> String {
    let dash = if style.dashed {
        " stroke-dasharray=\"6 4\""
    } else {
        ""
    };
    format!("stroke=\"{}\" stroke-width=\"1.5\"{dash}", style.color)
}

/// `text` with the characters XML gives a meaning escaped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}
