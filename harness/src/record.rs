//! The result record of one run of a check (the positive case or one negative control), and the
//! pieces it is made of: criteria with their tolerances, the verdict, and the data series behind
//! them.
//!
//! A check builds every record, positive or control, through its one verdict function, so a
//! control is judged by exactly the criteria the positive run passes.

use serde::Serialize;

/// Whether a record, or one criterion, passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Verdict {
    /// Every criterion held.
    Pass,
    /// At least one criterion did not hold.
    Fail,
}

impl Verdict {
    /// `Pass` iff `ok`.
    pub fn from_bool(ok: bool) -> Verdict {
        if ok {
            Verdict::Pass
        } else {
            Verdict::Fail
        }
    }
    /// `"PASS"` or `"FAIL"`.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
        }
    }
}

/// A tolerance: the half-width of the pass band around the prediction, and why it is that wide.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Tolerance {
    /// Half-width: the criterion holds iff `|measured − predicted| <= value`.
    pub value: f64,
    /// One sentence: where the number comes from.
    pub why: String,
}

/// The shape of a criterion's pass region.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Bound {
    /// `|measured − predicted| <= tolerance`.
    Band,
    /// `measured <= predicted` (the prediction is a limit; tolerance 0).
    AtMost,
    /// `measured >= predicted` (the prediction is a limit; tolerance 0).
    AtLeast,
}

/// The typed identity of a criterion: its base display name, without the qualifiers (seed,
/// coordinate, T, n, η, schedule) that tell apart several criteria of one kind in a record.
///
/// Each check module declares its keys as `pub const` items in a `criteria` submodule (e.g.
/// [`crate::checks::critical_step::criteria::PLATEAU_M2`]); checks build criteria from them and
/// tests look criteria up by them ([`Record::criterion`], [`Record::criteria_with`]), never by a
/// display string. Serialized as its label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct CriterionKey(&'static str);

impl CriterionKey {
    /// The key whose label (the criterion's base display name) is `label`, e.g. `"plateau m²"`.
    pub const fn new(label: &'static str) -> Self {
        CriterionKey(label)
    }

    /// The base display name.
    pub const fn label(self) -> &'static str {
        self.0
    }
}

/// One criterion of a check: a measured number against its prediction.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Criterion {
    /// What is judged; several criteria of one record may share a key (one per seed, coordinate,
    /// T, ...), told apart by their `name`.
    pub key: CriterionKey,
    /// Display name: the key's label, followed by one ` [qualifier]` per [`Criterion::qualified`]
    /// call, e.g. `"plateau m²"` or `"GD slope [seed 1]"`.
    pub name: String,
    /// Predicted value, computed from the configuration by the paper's formula.
    pub predicted: f64,
    /// Measured value.
    pub measured: f64,
    /// Pass band.
    pub tolerance: Tolerance,
    /// Two-sided band or one-sided limit.
    pub bound: Bound,
    /// `Pass` iff `|measured − predicted| <= tolerance.value` (a NaN measurement fails), or the
    /// one-sided limit holds.
    pub verdict: Verdict,
}

impl Criterion {
    /// Judges `measured` against `predicted` within `tolerance`; the display name is the key's
    /// label.
    pub fn new(
        key: CriterionKey,
        predicted: f64,
        measured: f64,
        tolerance: f64,
        why: &str,
    ) -> Criterion {
        let ok = (measured - predicted).abs() <= tolerance;
        Criterion {
            key,
            name: key.label().to_string(),
            predicted,
            measured,
            tolerance: Tolerance {
                value: tolerance,
                why: why.to_string(),
            },
            bound: Bound::Band,
            verdict: Verdict::from_bool(ok),
        }
    }

    /// One-sided: passes iff `measured <= limit` (NaN fails).
    pub fn at_most(key: CriterionKey, limit: f64, measured: f64, why: &str) -> Criterion {
        Criterion {
            bound: Bound::AtMost,
            verdict: Verdict::from_bool(measured <= limit),
            ..Criterion::new(key, limit, measured, 0.0, why)
        }
    }

    /// One-sided: passes iff `measured >= limit` (NaN fails).
    pub fn at_least(key: CriterionKey, limit: f64, measured: f64, why: &str) -> Criterion {
        Criterion {
            bound: Bound::AtLeast,
            verdict: Verdict::from_bool(measured >= limit),
            ..Criterion::new(key, limit, measured, 0.0, why)
        }
    }

    /// Appends ` [q]` to the display name: `"GD slope"` becomes `"GD slope [seed 1]"`, and a
    /// second call appends another qualifier (`"w̄/μ [η=0.01] [coordinate 0]"`). The key, and so
    /// the lookup by key, is unchanged.
    pub fn qualified(mut self, q: impl core::fmt::Display) -> Criterion {
        self.name = format!("{} [{q}]", self.name);
        self
    }
}

/// How a series is drawn and what it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Role {
    /// Measured data (drawn as solid lines or markers).
    Measured,
    /// The prediction the data is judged against (drawn dashed).
    Prediction,
    /// Another reference curve shown for comparison (e.g. gradient flow), not judged against.
    Reference,
}

/// A named `(x, y)` data series for plots and the JSON output.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Series {
    /// Legend name.
    pub name: String,
    /// Abscissae.
    pub x: Vec<f64>,
    /// Ordinates (same length as `x`).
    pub y: Vec<f64>,
    /// What the series is.
    pub role: Role,
    /// Draw markers instead of a line.
    pub points: bool,
}

impl Series {
    /// A line series.
    pub fn line(name: &str, x: Vec<f64>, y: Vec<f64>, role: Role) -> Series {
        assert_eq!(x.len(), y.len(), "series {name}: x and y lengths differ");
        Series {
            name: name.to_string(),
            x,
            y,
            role,
            points: false,
        }
    }
    /// A marker series.
    pub fn points(name: &str, x: Vec<f64>, y: Vec<f64>, role: Role) -> Series {
        Series {
            points: true,
            ..Series::line(name, x, y, role)
        }
    }
}

/// Axes of a record's plot.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Axes {
    /// Plot title.
    pub title: String,
    /// x-axis label.
    pub x_label: String,
    /// y-axis label.
    pub y_label: String,
    /// Logarithmic x axis.
    pub log_x: bool,
    /// Logarithmic y axis.
    pub log_y: bool,
}

/// Which case of a check a record is.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Case {
    /// `"positive"`, or the control's id (`"N1"`, ...).
    pub id: String,
    /// What this case runs (for a control: what is wrong with it).
    pub description: String,
    /// What the verdict should be: `Pass` for the positive case, `Fail` for a control.
    pub expected: Verdict,
}

/// The record of one case of one check.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Record {
    /// Registry name of the check.
    pub check: String,
    /// Citation of the paper.
    pub paper: String,
    /// The claim tested, in one sentence.
    pub claim: String,
    /// Positive case or negative control.
    pub case: Case,
    /// The criteria, each with prediction, measurement and tolerance.
    pub criteria: Vec<Criterion>,
    /// `Pass` iff every criterion passed.
    pub verdict: Verdict,
    /// Wall-clock seconds of this case (its simulations and scoring).
    pub seconds: f64,
    /// Data behind the criteria, for plots.
    pub series: Vec<Series>,
    /// Plot axes.
    pub axes: Axes,
    /// Free-form notes (derived quantities shown for information, not judged).
    pub notes: Vec<String>,
}

impl Record {
    /// Whether the verdict is the expected one (a positive case passed, a control failed).
    pub fn as_expected(&self) -> bool {
        self.verdict == self.case.expected
    }

    /// The criteria that failed.
    pub fn failed(&self) -> Vec<&Criterion> {
        self.criteria
            .iter()
            .filter(|c| c.verdict == Verdict::Fail)
            .collect()
    }

    /// The first criterion with key `key`, if any.
    pub fn criterion(&self, key: CriterionKey) -> Option<&Criterion> {
        self.criteria.iter().find(|c| c.key == key)
    }

    /// Every criterion with key `key` (one per seed, coordinate, T, ... for a qualified key), in
    /// display order.
    pub fn criteria_with(&self, key: CriterionKey) -> impl Iterator<Item = &Criterion> {
        self.criteria.iter().filter(move |c| c.key == key)
    }
}

/// What a check's verdict function returns: the criteria (the verdict follows from them), plus the
/// series and notes behind them. `into_record` attaches the identity of the check and case.
#[derive(Clone, Debug, Default)]
pub struct Scored {
    /// Criteria in display order.
    pub criteria: Vec<Criterion>,
    /// Data series.
    pub series: Vec<Series>,
    /// Notes.
    pub notes: Vec<String>,
}

/// A negative control as a check declares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Control {
    /// Short id, `"N1"`.
    pub id: &'static str,
    /// What is wrong with it, in one sentence.
    pub description: &'static str,
}

/// Identity of a check, shared by all its records.
#[derive(Clone, Copy, Debug)]
pub struct CheckId {
    /// Registry name.
    pub name: &'static str,
    /// Citation.
    pub paper: &'static str,
    /// One-sentence claim.
    pub claim: &'static str,
}

impl Scored {
    /// Builds the record of `case`; the verdict is `Pass` iff every criterion passed and there is
    /// at least one.
    pub fn into_record(self, id: CheckId, case: Case, seconds: f64, axes: Axes) -> Record {
        let verdict = Verdict::from_bool(
            !self.criteria.is_empty() && self.criteria.iter().all(|c| c.verdict == Verdict::Pass),
        );
        Record {
            check: id.name.to_string(),
            paper: id.paper.to_string(),
            claim: id.claim.to_string(),
            case,
            criteria: self.criteria,
            verdict,
            seconds,
            series: self.series,
            axes,
            notes: self.notes,
        }
    }
}

impl Record {
    /// The error row of a check that did not return its records (it panicked): case `"error"`,
    /// expected to pass, verdict `Fail`, so it is never as expected; `message` says what happened.
    pub fn error(id: CheckId, message: &str) -> Record {
        Record {
            check: id.name.to_string(),
            paper: id.paper.to_string(),
            claim: id.claim.to_string(),
            case: Case {
                id: "error".into(),
                description: format!("the check did not finish: {message}"),
                expected: Verdict::Pass,
            },
            criteria: Vec::new(),
            verdict: Verdict::Fail,
            seconds: 0.0,
            series: Vec::new(),
            axes: Axes {
                title: format!("{}: error", id.name),
                x_label: String::new(),
                y_label: String::new(),
                log_x: false,
                log_y: false,
            },
            notes: vec![format!("error: {message}")],
        }
    }
}

impl Case {
    /// The positive case.
    pub fn positive(description: &str) -> Case {
        Case {
            id: "positive".into(),
            description: description.into(),
            expected: Verdict::Pass,
        }
    }
    /// A negative control.
    pub fn control(c: &Control) -> Case {
        Case {
            id: c.id.into(),
            description: c.description.into(),
            expected: Verdict::Fail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const X: CriterionKey = CriterionKey::new("x");

    #[test]
    fn nan_measurement_fails() {
        assert_eq!(
            Criterion::new(X, 1.0, f64::NAN, 10.0, "").verdict,
            Verdict::Fail
        );
        assert_eq!(Criterion::new(X, 1.0, 1.5, 0.5, "").verdict, Verdict::Pass);
        assert_eq!(Criterion::at_most(X, 1.0, 1.0, "").verdict, Verdict::Pass);
        assert_eq!(Criterion::at_most(X, 1.0, 1.01, "").verdict, Verdict::Fail);
        assert_eq!(Criterion::at_least(X, 20.0, 0.0, "").verdict, Verdict::Fail);
        assert_eq!(
            Criterion::at_least(X, 20.0, f64::NAN, "").verdict,
            Verdict::Fail
        );
    }

    #[test]
    fn qualifiers_append_to_the_name_and_keep_the_key() {
        let c = Criterion::new(X, 1.0, 1.0, 0.0, "").qualified("seed 1");
        assert_eq!(c.name, "x [seed 1]");
        let c = c.qualified(format_args!("T={}", 100));
        assert_eq!(c.name, "x [seed 1] [T=100]");
        assert_eq!(c.key, X);
        assert_eq!(c.key.label(), "x");
    }
}
