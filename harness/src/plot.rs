//! One SVG per record: the data series against the prediction, hand-written (no dependencies).
//! Measured series are solid lines or filled markers, predictions dashed, references dotted grey
//! tones; axes may be logarithmic.

use crate::record::{Record, Role};
use std::fmt::Write;

const W: f64 = 760.0;
const H: f64 = 480.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 230.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 55.0;
const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// "Nice" tick positions covering `[lo, hi]`.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(1e-12);
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| span / s <= 6.0)
        .unwrap_or(10.0 * mag);
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + step * 1e-9 {
        out.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        t += step;
    }
    out
}

/// Ticks of a log axis whose range is `[lo, hi]` in log10 units, returned in log10 units: 1-2-5 per
/// decade; every integer mantissa when that gives fewer than 3; powers of ten only when it gives
/// more than 12, every second, fifth or tenth power when even those are more than 12.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    const MAX: usize = 12;
    let pick = |mantissas: &[f64]| -> Vec<f64> {
        let mut out = Vec::new();
        for k in (lo.floor() as i32)..=(hi.ceil() as i32) {
            for m in mantissas {
                let v = (m * 10f64.powi(k)).log10();
                if v >= lo - 1e-9 && v <= hi + 1e-9 {
                    out.push(v);
                }
            }
        }
        out
    };
    let t = pick(&[1.0, 2.0, 5.0]);
    if t.len() < 3 {
        return pick(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
    }
    if t.len() <= MAX {
        return t;
    }
    let decades = pick(&[1.0]);
    [1, 2, 5, 10, 20, 50, 100]
        .iter()
        .map(|&every| {
            decades
                .iter()
                .copied()
                .filter(|v| (v.round() as i64).rem_euclid(every) == 0)
                .collect::<Vec<f64>>()
        })
        .find(|d| d.len() <= MAX)
        .unwrap_or(decades)
}

fn fmt_tick(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1e4 || v.abs() < 1e-3 {
        format!("{v:.1e}")
    } else {
        let s = format!("{:.4}", (v * 1e4).round() / 1e4);
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Renders a record's series as an SVG document.
pub fn svg(rec: &Record) -> String {
    let ax = &rec.axes;
    let tx = |v: f64| if ax.log_x { v.log10() } else { v };
    let ty = |v: f64| if ax.log_y { v.log10() } else { v };
    let usable = |x: f64, y: f64| {
        x.is_finite() && y.is_finite() && (!ax.log_x || x > 0.0) && (!ax.log_y || y > 0.0)
    };
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for s in &rec.series {
        for (&x, &y) in s.x.iter().zip(&s.y) {
            if usable(x, y) {
                x0 = x0.min(tx(x));
                x1 = x1.max(tx(x));
                y0 = y0.min(ty(y));
                y1 = y1.max(ty(y));
            }
        }
    }
    if !x0.is_finite() {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if x1 - x0 < 1e-12 {
        x1 = x0 + 1.0;
    }
    if y1 - y0 < 1e-12 {
        y1 = y0 + 1.0;
    }
    let pad = (y1 - y0) * 0.05;
    let (y0, y1) = (y0 - pad, y1 + pad);
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let px = |v: f64| LEFT + (v - x0) / (x1 - x0) * pw;
    let py = |v: f64| TOP + ph - (v - y0) / (y1 - y0) * ph;

    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(o, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        o,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="14">{}</text>"#,
        W / 2.0,
        esc(&ax.title)
    );
    let _ = writeln!(
        o,
        r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>"##
    );
    let label = |v: f64, log: bool| fmt_tick(if log { 10f64.powf(v) } else { v });
    let xt = if ax.log_x {
        log_ticks(x0, x1)
    } else {
        ticks(x0, x1)
    };
    let yt = if ax.log_y {
        log_ticks(y0, y1)
    } else {
        ticks(y0, y1)
    };
    for t in xt {
        let x = px(t);
        let _ = writeln!(
            o,
            r##"<line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{}" stroke="#ddd"/>"##,
            TOP,
            TOP + ph
        );
        let _ = writeln!(
            o,
            r#"<text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"#,
            TOP + ph + 16.0,
            label(t, ax.log_x)
        );
    }
    for t in yt {
        let y = py(t);
        let _ = writeln!(
            o,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/>"##,
            LEFT + pw
        );
        let _ = writeln!(
            o,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 6.0,
            y + 4.0,
            label(t, ax.log_y)
        );
    }
    let _ = writeln!(
        o,
        r#"<text x="{}" y="{}" text-anchor="middle">{}{}</text>"#,
        LEFT + pw / 2.0,
        H - 12.0,
        esc(&ax.x_label),
        if ax.log_x { " (log)" } else { "" }
    );
    let _ = writeln!(
        o,
        r#"<text x="16" y="{}" text-anchor="middle" transform="rotate(-90 16 {})">{}{}</text>"#,
        TOP + ph / 2.0,
        TOP + ph / 2.0,
        esc(&ax.y_label),
        if ax.log_y { " (log)" } else { "" }
    );
    for (i, s) in rec.series.iter().enumerate() {
        let color = match s.role {
            Role::Reference => ["#999999", "#666666"][i % 2],
            _ => COLORS[i % COLORS.len()],
        };
        let dash = match s.role {
            Role::Measured => "",
            Role::Prediction => r#" stroke-dasharray="8 4""#,
            Role::Reference => r#" stroke-dasharray="2 3""#,
        };
        let pts: Vec<(f64, f64)> =
            s.x.iter()
                .zip(&s.y)
                .filter(|(&x, &y)| usable(x, y))
                .map(|(&x, &y)| (px(tx(x)), py(ty(y))))
                .collect();
        if s.points {
            for (x, y) in &pts {
                let _ = writeln!(
                    o,
                    r#"<circle cx="{x:.1}" cy="{y:.1}" r="4" fill="{color}"/>"#
                );
            }
        } else if !pts.is_empty() {
            let d: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
            let _ = writeln!(
                o,
                r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="1.8"{dash}/>"#,
                d.join(" ")
            );
        }
        let ly = TOP + 12.0 + 18.0 * i as f64;
        let lx = W - RIGHT + 12.0;
        if s.points {
            let _ = writeln!(
                o,
                r#"<circle cx="{}" cy="{ly}" r="4" fill="{color}"/>"#,
                lx + 12.0
            );
        } else {
            let _ = writeln!(
                o,
                r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="1.8"{dash}/>"#,
                lx + 24.0
            );
        }
        let _ = writeln!(
            o,
            r#"<text x="{}" y="{}">{}</text>"#,
            lx + 30.0,
            ly + 4.0,
            esc(&s.name)
        );
    }
    let verdict = format!(
        "{}: {} (expected {})",
        rec.case.id,
        rec.verdict.label(),
        rec.case.expected.label()
    );
    let _ = writeln!(
        o,
        r#"<text x="{}" y="{}" font-size="11">{}</text>"#,
        W - RIGHT + 12.0,
        H - BOTTOM,
        esc(&verdict)
    );
    o.push_str("</svg>\n");
    o
}

/// File name of a record's plot: the check name with `/` → `__`, plus the case.
pub fn file_name(rec: &Record) -> String {
    format!("{}__{}.svg", rec.check.replace('/', "__"), rec.case.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_cover_the_range() {
        let t = ticks(0.0, 1.0);
        assert_eq!(t.first(), Some(&0.0));
        assert!(t.len() >= 3 && t.len() <= 7);
    }

    #[test]
    fn log_ticks_stay_readable_over_any_range() {
        // Half a decade: every integer mantissa (0.2, 0.3, 0.4, 0.5, 0.6).
        let narrow = log_ticks(0.2f64.log10(), 0.6f64.log10());
        assert_eq!(narrow.len(), 5);
        // One and a half decades, [0.1, 3.16]: 1-2-5 (0.1, 0.2, 0.5, 1, 2).
        assert_eq!(log_ticks(-1.0, 0.5).len(), 5);
        // Ten decades: the powers of ten, not 30 labels.
        let wide = log_ticks(-1.0, 9.3);
        assert_eq!(wide.len(), 11);
        assert!(wide.iter().all(|v| (v - v.round()).abs() < 1e-12));
        // Forty decades: every fifth power.
        let huge = log_ticks(-20.0, 20.0);
        assert_eq!(huge.len(), 9);
        for lo in [-30.0, -3.3, 0.0] {
            for span in [0.1, 0.7, 2.0, 11.0, 45.0, 150.0] {
                let t = log_ticks(lo, lo + span);
                assert!(
                    !t.is_empty() && t.len() <= 12,
                    "[{lo}, {}]: {t:?}",
                    lo + span
                );
                assert!(t.iter().all(|&v| v >= lo - 1e-9 && v <= lo + span + 1e-9));
            }
        }
    }
}
