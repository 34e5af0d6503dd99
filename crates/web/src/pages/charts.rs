//! Charts drawn by opsdesk as SVG: the geometry is worked out here, the markup (with titles and
//! tooltips, escaped like every page) is in templates/chart_*.html.

use askama::Template;

/// A bar chart: one bar per label, each with a tooltip.
#[derive(Template)]
#[template(path = "chart_bars.html")]
pub struct Bars {
    pub title: String,
    pub width: u32,
    pub height: u32,
    pub bars: Vec<Bar>,
}

pub struct Bar {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
    pub label: String,
    pub value: String,
    /// The label's centre.
    pub cx: f64,
    pub class: String,
}

const BAR_AREA: f64 = 110.0;
const LABEL_SPACE: f64 = 34.0;

/// Bars for `(label, value, css class)`, scaled to the largest value.
pub fn bars(title: impl Into<String>, items: &[(String, f64, String)]) -> Bars {
    let width = (items.len().max(1) as f64 * 64.0).max(200.0);
    let slot = width / items.len().max(1) as f64;
    let top = items.iter().map(|(_, v, _)| *v).fold(0.0_f64, f64::max);
    let bars = items
        .iter()
        .enumerate()
        .map(|(i, (label, value, class))| {
            let h = if top > 0.0 {
                (value / top * BAR_AREA).max(if *value > 0.0 { 2.0 } else { 0.0 })
            } else {
                0.0
            };
            let x = i as f64 * slot + slot * 0.2;
            Bar {
                x,
                y: 14.0 + BAR_AREA - h,
                w: slot * 0.6,
                h,
                label: label.clone(),
                value: number(*value),
                cx: i as f64 * slot + slot / 2.0,
                class: class.clone(),
            }
        })
        .collect();
    Bars {
        title: title.into(),
        width: width.round() as u32,
        height: (14.0 + BAR_AREA + LABEL_SPACE) as u32,
        bars,
    }
}

/// A sparkline: the shape of a series, small enough for a tile.
#[derive(Template)]
#[template(path = "chart_spark.html")]
pub struct Spark {
    pub title: String,
    /// The line's path (`M x y L x y ...`); empty when there is nothing to draw.
    pub line: String,
    /// The area under the line, closed along the bottom.
    pub area: String,
}

const SPARK_W: f64 = 120.0;
const SPARK_H: f64 = 30.0;

/// A sparkline of `values` (gaps are skipped), scaled between their lowest and highest.
pub fn spark(title: impl Into<String>, values: &[Option<f64>]) -> Spark {
    let known: Vec<(usize, f64)> = values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.filter(|v| v.is_finite()).map(|v| (i, v)))
        .collect();
    let title = title.into();
    if known.len() < 2 {
        return Spark {
            title,
            line: String::new(),
            area: String::new(),
        };
    }
    let lo = known.iter().map(|(_, v)| *v).fold(f64::INFINITY, f64::min);
    let hi = known
        .iter()
        .map(|(_, v)| *v)
        .fold(f64::NEG_INFINITY, f64::max);
    let step = SPARK_W / (values.len().max(2) - 1) as f64;
    let y = |v: f64| {
        if hi > lo {
            2.0 + (hi - v) / (hi - lo) * (SPARK_H - 4.0)
        } else {
            SPARK_H / 2.0
        }
    };
    let points: Vec<(f64, f64)> = known
        .iter()
        .map(|(i, v)| (*i as f64 * step, y(*v)))
        .collect();
    let mut line = String::new();
    for (n, (px, py)) in points.iter().enumerate() {
        line.push_str(&format!(
            "{}{:.1} {:.1} ",
            if n == 0 { "M" } else { "L" },
            px,
            py
        ));
    }
    let (first_x, last_x) = (points[0].0, points[points.len() - 1].0);
    let area = format!("{line}L{last_x:.1} {SPARK_H:.1} L{first_x:.1} {SPARK_H:.1} Z");
    Spark {
        title,
        line: line.trim_end().to_owned(),
        area,
    }
}

/// A number as a chart labels it: whole numbers without decimals, others with one.
pub fn number(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_value_and_keep_small_ones_visible() {
        let chart = bars(
            "Open by severity",
            &[
                ("SEV1".into(), 10.0, "sev-SEV1".into()),
                ("SEV2".into(), 0.1, "sev-SEV2".into()),
                ("SEV3".into(), 0.0, "sev-SEV3".into()),
            ],
        );
        assert_eq!(chart.bars.len(), 3);
        assert!((chart.bars[0].h - BAR_AREA).abs() < 1e-9);
        assert_eq!(chart.bars[1].h, 2.0, "a small value stays visible");
        assert_eq!(chart.bars[2].h, 0.0);
        assert_eq!(chart.bars[1].value, "0.1");
        let svg = chart.render().unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("<title>Open by severity</title>"), "{svg}");
        assert!(svg.contains("<title>SEV1: 10</title>"), "{svg}");
    }

    #[test]
    fn chart_text_is_escaped() {
        let chart = bars("<b>", &[("<script>".into(), 1.0, "x".into())]);
        let svg = chart.render().unwrap();
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("&#60;script&#62;"), "{svg}");
    }

    #[test]
    fn sparklines_skip_gaps_and_need_two_points() {
        assert!(spark("x", &[Some(1.0)]).line.is_empty());
        assert!(spark("x", &[None, None]).line.is_empty());
        let s = spark("x", &[Some(1.0), None, Some(3.0)]);
        assert_eq!(s.line, "M0.0 28.0 L120.0 2.0");
        let flat = spark("x", &[Some(5.0), Some(5.0)]);
        assert_eq!(flat.line, "M0.0 15.0 L120.0 15.0");
    }
}
