//! The SVG chart that `adaptive_sim` draws of its timeline
//! (`examples/chart/mod.rs`): axes that hold every value on round ticks,
//! lines that break where a value cannot be drawn, names escaped, and the
//! same document for the same figures.

#[path = "../examples/chart/mod.rs"]
mod chart;

use chart::{Axis, Chart, Panel, Scale, Series, Style, per_phase};

fn points(ys: &[f64]) -> Vec<(f64, f64)> {
    ys.iter().enumerate().map(|(x, &y)| (x as f64, y)).collect()
}

fn axis(scale: Scale, ys: &[f64]) -> Axis {
    Axis::fit(scale, &points(ys))
}

const BLUE: Style = Style {
    color: "#0072b2",
    dashed: false,
};

fn chart(series: Vec<Series>) -> Chart {
    Chart {
        title: "a <test> & \"its\" title".into(),
        x_label: "seconds".into(),
        x_max: 3.0,
        phases: vec![(0.0, "steady".into()), (1.5, "halved".into())],
        panels: vec![Panel {
            title: "p99 (ms)".into(),
            scale: Scale::Log,
            series,
        }],
    }
}

#[test]
fn a_linear_axis_runs_from_zero_to_the_round_step_at_or_above_the_greatest() {
    // Goodput: a step of 20 (63.9 / 4 rounded up to 1, 2, 2.5 or 5 times a
    // power of ten), and the fourth step holds the greatest.
    let goodput = axis(Scale::Linear, &[31.5, 63.9, 12.0]);
    assert_eq!(goodput.ticks, [0.0, 20.0, 40.0, 60.0, 80.0]);
    assert_eq!((goodput.low, goodput.high), (0.0, 80.0));
    // Exactly on a step: no step is added above it.
    let exact = axis(Scale::Linear, &[60.0]);
    assert_eq!(exact.high, 60.0);
    assert_eq!(exact.ticks, [0.0, 20.0, 40.0, 60.0]);
    // A byte limit in MiB; 2.5 is a round step too.
    assert_eq!(axis(Scale::Linear, &[2.53, 2.2]).high, 3.0);
    assert_eq!(
        axis(Scale::Linear, &[10.0]).ticks,
        [0.0, 2.5, 5.0, 7.5, 10.0]
    );
    // Nothing to draw: 0 to 1, not a division by zero.
    for ys in [&[][..], &[0.0], &[f64::NAN, f64::INFINITY]] {
        let empty = axis(Scale::Linear, ys);
        assert_eq!((empty.low, empty.high), (0.0, 1.0), "{ys:?}");
        assert!(empty.ticks.iter().all(|t| t.is_finite()));
    }
}

#[test]
fn a_log_axis_spans_whole_decades_and_marks_2_and_5_where_it_spans_few() {
    // A p99 from 31.8 to 922 ms: 10 to 1000, two decades.
    let p99 = axis(Scale::Log, &[31.8, 922.4, 63.4]);
    assert_eq!((p99.low, p99.high), (10.0, 1000.0));
    assert_eq!(p99.ticks, [10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0]);
    // Three decades: the decades alone.
    let count = axis(Scale::Log, &[3.0, 218.0]);
    assert_eq!((count.low, count.high), (1.0, 1000.0));
    assert_eq!(count.ticks, [1.0, 10.0, 100.0, 1000.0]);
    // Zero, negatives and NaN are not drawn, so they do not widen it.
    let skipping = axis(Scale::Log, &[0.0, -5.0, f64::NAN, 20.0, 40.0]);
    assert_eq!((skipping.low, skipping.high), (10.0, 100.0));
    // One value on a decade still gets a decade's height.
    let single = axis(Scale::Log, &[100.0]);
    assert_eq!((single.low, single.high), (100.0, 1000.0));
    // Below a thousandth the labels would round to 0; the axis still fits.
    let tiny = axis(Scale::Log, &[0.0002]);
    assert_eq!((tiny.low, tiny.high), (0.0001, 0.001));
}

#[test]
fn values_map_from_the_bottom_to_the_top_of_their_axis() {
    let linear = axis(Scale::Linear, &[63.9]);
    assert_eq!(linear.fraction(0.0), 0.0);
    assert_eq!(linear.fraction(40.0), 0.5);
    assert_eq!(linear.fraction(80.0), 1.0);
    let log = axis(Scale::Log, &[31.8, 922.4]);
    assert_eq!(log.fraction(10.0), 0.0);
    assert!((log.fraction(100.0) - 0.5).abs() < 1e-12);
    assert_eq!(log.fraction(1000.0), 1.0);
    // Out of range is held at the edge, never drawn outside the panel.
    assert_eq!(log.fraction(1e9), 1.0);
    assert_eq!(linear.fraction(-3.0), 0.0);
    assert!(log.draws(5.0) && !log.draws(0.0) && !log.draws(f64::NAN));
    assert!(linear.draws(0.0) && !linear.draws(f64::INFINITY));
}

#[test]
fn a_figure_per_phase_is_a_step_through_each_phase() {
    let phases = [(0.0, "steady".to_string()), (10.0, "halved".to_string())];
    assert_eq!(
        per_phase(&phases, 30.0, &[20.0, 6.0]),
        [(0.0, 20.0), (10.0, 20.0), (10.0, 6.0), (30.0, 6.0)]
    );
}

#[test]
fn a_value_that_cannot_be_drawn_breaks_the_line_there() {
    let svg = chart(vec![
        Series {
            name: "broken".into(),
            style: BLUE,
            points: points(&[30.0, 40.0, f64::NAN, 50.0, 0.0, 60.0, 70.0]),
        },
        Series {
            name: "nothing to draw".into(),
            style: BLUE,
            points: points(&[f64::NAN, 0.0]),
        },
    ])
    .to_svg();
    let paths: Vec<&str> = svg.lines().filter(|l| l.starts_with("<path")).collect();
    assert_eq!(
        paths.len(),
        1,
        "a series with nothing drawable draws no path"
    );
    // Three runs of points: 30-40, 50, and 60-70.
    assert_eq!(paths[0].matches('M').count(), 3, "{}", paths[0]);
    assert_eq!(paths[0].matches('L').count(), 2, "{}", paths[0]);
    // Both names are in the legend, the second once although it draws nothing.
    assert_eq!(svg.matches(">nothing to draw<").count(), 1);
}

#[test]
fn the_document_is_the_same_for_the_same_figures_and_escapes_text() {
    let series = || {
        vec![Series {
            name: "joint's <count> & \"bytes\"".into(),
            style: Style {
                color: "#555555",
                dashed: true,
            },
            points: points(&[31.8, 33.0, 63.4]),
        }]
    };
    let svg = chart(series()).to_svg();
    assert_eq!(svg, chart(series()).to_svg());
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(svg.ends_with("</svg>\n"));
    assert_eq!(svg.matches("<svg").count(), 1);
    assert!(svg.contains(">a &lt;test&gt; &amp; &quot;its&quot; title<"));
    assert!(svg.contains(">joint's &lt;count&gt; &amp; &quot;bytes&quot;<"));
    assert!(svg.contains("stroke-dasharray"), "a dashed style is dashed");
    // Every element is closed: as many `<` as `>` outside attribute values,
    // which hold neither once escaped.
    assert_eq!(svg.matches('<').count(), svg.matches('>').count());
    // The shaded second phase and both phase names.
    assert!(svg.contains("fill=\"#f0f0f0\""));
    assert!(svg.contains(">steady<") && svg.contains(">halved<"));
}

#[test]
fn a_chart_without_time_or_values_still_draws_and_ends() {
    for x_max in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let chart = Chart {
            title: String::new(),
            x_label: String::new(),
            x_max,
            phases: Vec::new(),
            panels: vec![Panel {
                title: String::new(),
                scale: Scale::Linear,
                series: vec![Series {
                    name: "empty".into(),
                    style: BLUE,
                    points: Vec::new(),
                }],
            }],
        };
        let svg = chart.to_svg();
        assert!(
            !svg.contains("NaN") && !svg.contains("inf"),
            "{x_max}: {svg}"
        );
        assert!(svg.ends_with("</svg>\n"));
    }
}
