//! Per-check configuration: every parameter of a check lives in one plain struct with visible
//! defaults and its accepted range, both on the field's line in
//! [`check_config!`](crate::check_config), and can be overridden without recompiling by
//! `--set check.key=value` or a TOML `--config FILE` with one table per check.
//!
//! Resolution, before anything runs: start from the defaults; apply the file, then the `--set`
//! flags (later wins); reject unknown keys, values of the wrong type and values out of range with
//! a message naming the key and the accepted range; finally run the check's cross-field
//! `validate`. The resolved table is printed and stored in the JSON output.

use serde::{de::DeserializeOwned, Serialize};
use std::fmt;

/// The accepted range of one field: a number, or every element of a list of numbers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Range {
    /// Field name, as in the struct.
    pub key: &'static str,
    /// Smallest accepted value.
    pub min: f64,
    /// Largest accepted value.
    pub max: f64,
    /// Whether the value (or each element) must be an integer.
    pub integer: bool,
    /// For a list: the smallest accepted length.
    pub min_len: usize,
    /// For a text field: the accepted values (empty for a number).
    pub choices: &'static [&'static str],
}

impl Range {
    /// A real number in `[min, max]` (the key is filled in by [`check_config!`](crate::check_config)).
    pub const fn real(min: f64, max: f64) -> Range {
        Range {
            key: "",
            min,
            max,
            integer: false,
            min_len: 0,
            choices: &[],
        }
    }
    /// An integer in `[min, max]` (the key is filled in by [`check_config!`](crate::check_config)).
    pub const fn int(min: i64, max: i64) -> Range {
        Range {
            key: "",
            min: min as f64,
            max: max as f64,
            integer: true,
            min_len: 0,
            choices: &[],
        }
    }
    /// A text field taking one of `choices` (the key is filled in by [`check_config!`](crate::check_config)).
    pub const fn choice(choices: &'static [&'static str]) -> Range {
        Range {
            key: "",
            min: 0.0,
            max: 0.0,
            integer: false,
            min_len: 0,
            choices,
        }
    }
    /// This range for the field `key`.
    pub const fn named(self, key: &'static str) -> Range {
        Range { key, ..self }
    }
    /// A list of at least `min_len` elements, each checked by this range.
    pub const fn list(self, min_len: usize) -> Range {
        Range { min_len, ..self }
    }

    /// The accepted values in words (`[min, max]`, or `one of a, b, c`).
    pub fn span(&self) -> String {
        if !self.choices.is_empty() {
            format!("one of {}", self.choices.join(", "))
        } else if self.integer {
            format!("[{}, {}]", self.min as i64, self.max as i64)
        } else {
            format!("[{}, {}]", self.min, self.max)
        }
    }

    fn describe(&self, list: bool) -> String {
        if !self.choices.is_empty() {
            return self.span();
        }
        let what = if self.integer {
            "an integer"
        } else {
            "a number"
        };
        let span = if self.integer {
            format!("[{}, {}]", self.min as i64, self.max as i64)
        } else {
            format!("[{}, {}]", self.min, self.max)
        };
        if list {
            format!(
                "a list of at least {} elements, each {what} in {span}",
                self.min_len.max(1)
            )
        } else {
            format!("{what} in {span}")
        }
    }
}

/// The fields of a check's configuration: its accepted ranges. Implemented by [`check_config!`](crate::check_config)
/// from the same declaration that makes the struct and its `impl Default`.
pub trait ConfigFields {
    /// The accepted range of every field, in declaration order.
    fn ranges() -> Vec<Range>;
}

/// A check's configuration struct.
///
/// Declare the struct with [`check_config!`](crate::check_config) (one line per field: doc comment, name, type,
/// default, range), which implements `Default` and [`ConfigFields`]; then write
/// `impl CheckConfig for X {}`, with a `validate` if fields constrain each other. Fields are
/// numbers (`f64`, `usize`, `u64`, ...), booleans, lists of numbers or text fields with a fixed
/// set of values ([`Range::choice`]).
pub trait CheckConfig:
    ConfigFields + Serialize + DeserializeOwned + Default + Clone + Send + Sync + 'static
{
    /// Constraints between fields, checked after the ranges; the message names the keys.
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

/// Declares a check's configuration struct with each key spelled once.
///
/// ```ignore
/// check_config! {
///     /// Configuration of `local-sgd/speedup`.
///     #[derive(Clone, Debug, Serialize, Deserialize)]
///     #[serde(deny_unknown_fields)]
///     pub struct SpeedupConfig {
///         /// Curvature on the right.
///         k_plus: f64 = 2.0, Range::real(1e-3, 1e3);
///         /// Horizon.
///         t: usize = 1000, Range::int(10, 1_000_000);
///         /// Init scales.
///         alphas: Vec<f64> = vec![1e-10, 1e-6], Range::real(1e-30, 10.0).list(1);
///         /// A range shared by several configs: `in m` takes the range `m::seed`.
///         seed: u64 = 1, in shared;
///     }
/// }
///
/// /// Ranges shared by several configs, one `const` per key, named as the field.
/// #[allow(non_upper_case_globals)]
/// mod shared {
///     use super::*;
///     pub const seed: Range = Range::int(0, 1 << 53);
/// }
/// ```
///
/// generates the struct (attributes as written, every field `pub` with its attributes and doc
/// comment), `impl Default` with the given values and [`ConfigFields`] whose ranges are keyed by
/// `stringify!(field)`, in declaration order. The range is any `Range` expression, or `in m` for
/// `m::field`. Cross-field constraints stay in a hand-written `impl CheckConfig`.
#[macro_export]
macro_rules! check_config {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[$fmeta:meta])*
                $field:ident : $ty:ty = $default:expr , $(in $shared:ident)? $($range:expr)? ;
            )*
        }
    ) => {
        $(#[$meta])*
        $vis struct $name {
            $(
                $(#[$fmeta])*
                pub $field: $ty,
            )*
        }

        impl ::std::default::Default for $name {
            fn default() -> Self {
                $name {
                    $($field: $default,)*
                }
            }
        }

        impl $crate::config::ConfigFields for $name {
            fn ranges() -> ::std::vec::Vec<$crate::config::Range> {
                ::std::vec![$(
                    $crate::config::Range::named(
                        $($shared::$field)? $($range)?,
                        ::std::stringify!($field),
                    ),
                )*]
            }
        }
    };
}

/// A rejected configuration (exit code 2; nothing runs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// An override value before it is checked against the field's type.
#[derive(Clone, Debug, PartialEq)]
pub enum Raw {
    /// The text after `=` in `--set key=value`.
    Text(String),
    /// A value from a TOML file.
    Toml(toml::Value),
}

/// One override of one field of one check, in the order given.
#[derive(Clone, Debug, PartialEq)]
pub struct Override {
    /// Registry name of the check.
    pub check: String,
    /// Field name.
    pub key: String,
    /// The value.
    pub value: Raw,
    /// Where it came from, for messages (`--set`, or the file name).
    pub origin: String,
}

/// Splits `check.key` (the check name may use `/` or `.` between its parts) into a known check
/// name and a field name.
pub fn split_key(full: &str, checks: &[&str]) -> Result<(String, String), ConfigError> {
    let Some((prefix, field)) = full.rsplit_once('.') else {
        return Err(ConfigError(format!(
            "key `{full}`: expected CHECK.KEY (for example `{}.n`)",
            checks.first().copied().unwrap_or("check")
        )));
    };
    let name = prefix.replace('.', "/");
    if !checks.contains(&name.as_str()) {
        return Err(ConfigError(format!(
            "key `{full}`: unknown check `{prefix}`; checks are: {}",
            checks.join(", ")
        )));
    }
    Ok((name, field.to_string()))
}

/// Parses `--set` arguments (`check.key=value`).
pub fn parse_set(args: &[String], checks: &[&str]) -> Result<Vec<Override>, ConfigError> {
    args.iter()
        .map(|a| {
            let (k, v) = a
                .split_once('=')
                .ok_or_else(|| ConfigError(format!("--set `{a}`: expected CHECK.KEY=VALUE")))?;
            let (check, key) = split_key(k.trim(), checks)?;
            Ok(Override {
                check,
                key,
                value: Raw::Text(v.trim().to_string()),
                origin: "--set".into(),
            })
        })
        .collect()
}

/// Parses a TOML configuration file: one table per check, named by the check (`[critical-step.
/// trajectory]` or `["critical-step/trajectory"]`).
pub fn parse_toml(text: &str, origin: &str, checks: &[&str]) -> Result<Vec<Override>, ConfigError> {
    let table: toml::Table = text
        .parse()
        .map_err(|e| ConfigError(format!("{origin}: not valid TOML: {e}")))?;
    let mut out = Vec::new();
    walk(&table, "", origin, checks, &mut out)?;
    Ok(out)
}

fn walk(
    table: &toml::Table,
    path: &str,
    origin: &str,
    checks: &[&str],
    out: &mut Vec<Override>,
) -> Result<(), ConfigError> {
    for (k, v) in table {
        let p = if path.is_empty() {
            k.clone()
        } else {
            format!("{path}/{k}")
        };
        if checks.contains(&p.as_str()) {
            let toml::Value::Table(fields) = v else {
                return Err(ConfigError(format!(
                    "{origin}: `{p}` must be a table of that check's keys"
                )));
            };
            for (key, value) in fields {
                out.push(Override {
                    check: p.clone(),
                    key: key.clone(),
                    value: Raw::Toml(value.clone()),
                    origin: origin.to_string(),
                });
            }
        } else if let toml::Value::Table(inner) = v {
            if !checks.iter().any(|c| c.starts_with(&format!("{p}/"))) {
                return Err(ConfigError(format!(
                    "{origin}: unknown check `{p}`; checks are: {}",
                    checks.join(", ")
                )));
            }
            walk(inner, &p, origin, checks, out)?;
        } else {
            return Err(ConfigError(format!(
                "{origin}: `{p}` is not a check table; checks are: {}",
                checks.join(", ")
            )));
        }
    }
    Ok(())
}

/// The default configuration of `C` as a TOML table (fields in declaration order).
pub fn default_table<C: CheckConfig>() -> toml::Table {
    toml::Table::try_from(C::default()).expect("a check config serializes to a TOML table")
}

/// Applies `overrides` (all for `check`) to the defaults of `C`, checks types, ranges and
/// cross-field constraints, and returns the config and its resolved table.
pub fn resolve<C: CheckConfig>(
    check: &str,
    overrides: &[&Override],
) -> Result<(C, toml::Table), ConfigError> {
    let ranges = C::ranges();
    let mut table = default_table::<C>();
    for o in overrides {
        let full = format!("{check}.{}", o.key);
        let Some(default) = table.get(&o.key) else {
            let keys: Vec<&str> = table.keys().map(|k| k.as_str()).collect();
            return Err(ConfigError(format!(
                "{}: unknown key `{full}`; keys of {check} are: {}",
                o.origin,
                keys.join(", ")
            )));
        };
        let range = ranges
            .iter()
            .find(|r| r.key == o.key)
            .unwrap_or_else(|| panic!("{check}: field `{}` has no declared range", o.key));
        let value = coerce(&full, default, &o.value, range)
            .map_err(|m| ConfigError(format!("{}: {m}", o.origin)))?;
        table.insert(o.key.clone(), value);
    }
    for r in &ranges {
        let v = table
            .get(r.key)
            .unwrap_or_else(|| panic!("{check}: range for unknown field `{}`", r.key));
        check_range(&format!("{check}.{}", r.key), v, r).map_err(ConfigError)?;
    }
    for k in table.keys() {
        assert!(
            ranges.iter().any(|r| r.key == k),
            "{check}: field `{k}` has no declared range"
        );
    }
    let cfg: C = toml::Value::Table(table.clone())
        .try_into()
        .map_err(|e| ConfigError(format!("{check}: {e}")))?;
    cfg.validate()
        .map_err(|m| ConfigError(format!("{check}: {m}")))?;
    Ok((cfg, table))
}

fn coerce(
    full: &str,
    default: &toml::Value,
    raw: &Raw,
    range: &Range,
) -> Result<toml::Value, String> {
    let is_list = matches!(default, toml::Value::Array(_));
    let want = range.describe(is_list);
    let bad = |got: &str| format!("`{full}` expects {want}, got `{got}`");
    let scalar = |text: &str| -> Result<toml::Value, String> {
        if range.integer {
            text.parse::<i64>()
                .map(toml::Value::Integer)
                .map_err(|_| bad(text))
        } else {
            match text.parse::<f64>() {
                Ok(x) if x.is_finite() => Ok(toml::Value::Float(x)),
                _ => Err(bad(text)),
            }
        }
    };
    let from_toml = |v: &toml::Value| -> Result<toml::Value, String> {
        match (v, range.integer) {
            (toml::Value::Integer(i), true) => Ok(toml::Value::Integer(*i)),
            (toml::Value::Integer(i), false) => Ok(toml::Value::Float(*i as f64)),
            (toml::Value::Float(x), false) if x.is_finite() => Ok(toml::Value::Float(*x)),
            (other, _) => Err(bad(&other.to_string())),
        }
    };
    match (default, raw) {
        (toml::Value::String(_), Raw::Text(t)) => {
            Ok(toml::Value::String(t.trim().trim_matches('"').to_string()))
        }
        (toml::Value::String(_), Raw::Toml(v)) => match v {
            toml::Value::String(t) => Ok(toml::Value::String(t.clone())),
            other => Err(bad(&other.to_string())),
        },
        (toml::Value::Boolean(_), Raw::Text(t)) => t
            .parse::<bool>()
            .map(toml::Value::Boolean)
            .map_err(|_| format!("`{full}` expects true or false, got `{t}`")),
        (toml::Value::Boolean(_), Raw::Toml(v)) => match v {
            toml::Value::Boolean(b) => Ok(toml::Value::Boolean(*b)),
            other => Err(format!("`{full}` expects true or false, got `{other}`")),
        },
        (toml::Value::Array(_), Raw::Text(t)) => {
            let inner = t.trim().trim_start_matches('[').trim_end_matches(']');
            inner
                .split(',')
                .map(|s| scalar(s.trim()))
                .collect::<Result<Vec<_>, _>>()
                .map(toml::Value::Array)
                .map_err(|_| bad(t))
        }
        (toml::Value::Array(_), Raw::Toml(v)) => match v {
            toml::Value::Array(items) => items
                .iter()
                .map(from_toml)
                .collect::<Result<Vec<_>, _>>()
                .map(toml::Value::Array)
                .map_err(|_| bad(&v.to_string())),
            other => Err(bad(&other.to_string())),
        },
        (_, Raw::Text(t)) => scalar(t),
        (_, Raw::Toml(v)) => from_toml(v),
    }
}

fn check_range(full: &str, v: &toml::Value, r: &Range) -> Result<(), String> {
    let num = |x: &toml::Value| match x {
        toml::Value::Integer(i) => Some(*i as f64),
        toml::Value::Float(f) => Some(*f),
        _ => None,
    };
    let is_list = matches!(v, toml::Value::Array(_));
    let fail = || {
        format!(
            "`{full}` = {v} is out of range: expected {}",
            r.describe(is_list)
        )
    };
    match v {
        toml::Value::Array(items) => {
            if items.len() < r.min_len.max(1) {
                return Err(fail());
            }
            for x in items {
                let x = num(x).ok_or_else(fail)?;
                if !(r.min..=r.max).contains(&x) {
                    return Err(fail());
                }
            }
            Ok(())
        }
        toml::Value::Boolean(_) => Ok(()),
        toml::Value::String(t) => {
            if r.choices.contains(&t.as_str()) {
                Ok(())
            } else {
                Err(fail())
            }
        }
        other => {
            let x = num(other).ok_or_else(fail)?;
            if (r.min..=r.max).contains(&x) {
                Ok(())
            } else {
                Err(fail())
            }
        }
    }
}

/// The resolved configuration of several checks as TOML text that `--config` accepts back.
pub fn to_toml_text(tables: &[(String, toml::Table)]) -> String {
    let mut s = String::new();
    for (name, t) in tables {
        s.push_str(&format!("[\"{name}\"]\n"));
        for (k, v) in t {
            s.push_str(&format!("{k} = {v}\n"));
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    crate::check_config! {
        #[derive(Clone, Debug, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Demo {
            n: usize = 100, Range::int(2, 1000);
            lambda: f64 = 1.5, Range::real(0.0, 10.0);
            cs: Vec<f64> = vec![0.5, 1.0], Range::real(0.0, 4.0).list(2);
        }
    }
    impl CheckConfig for Demo {}

    fn set(key: &str, v: &str) -> Override {
        Override {
            check: "demo".into(),
            key: key.into(),
            value: Raw::Text(v.into()),
            origin: "--set".into(),
        }
    }

    #[test]
    fn overrides_apply_and_coerce() {
        let a = set("n", "500");
        let b = set("lambda", "2");
        let c = set("cs", "[0.25, 0.5, 1]");
        let (cfg, _) = resolve::<Demo>("demo", &[&a, &b, &c]).unwrap();
        assert_eq!(
            (cfg.n, cfg.lambda, cfg.cs),
            (500, 2.0, vec![0.25, 0.5, 1.0])
        );
    }

    #[test]
    fn bad_values_name_the_key_and_range() {
        let e = resolve::<Demo>("demo", &[&set("n", "1.5")]).unwrap_err().0;
        assert!(e.contains("demo.n") && e.contains("[2, 1000]"), "{e}");
        let e = resolve::<Demo>("demo", &[&set("n", "5000")]).unwrap_err().0;
        assert!(e.contains("demo.n") && e.contains("out of range"), "{e}");
        let e = resolve::<Demo>("demo", &[&set("lambda", "abc")])
            .unwrap_err()
            .0;
        assert!(e.contains("demo.lambda"), "{e}");
        let e = resolve::<Demo>("demo", &[&set("nn", "5")]).unwrap_err().0;
        assert!(e.contains("unknown key `demo.nn`"), "{e}");
        let e = resolve::<Demo>("demo", &[&set("cs", "1")]).unwrap_err().0;
        assert!(e.contains("at least 2"), "{e}");
    }

    crate::check_config! {
        #[derive(Clone, Debug, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Choice {
            axis: String = "y".into(), Range::choice(&["x", "y", "z"]);
        }
    }
    impl CheckConfig for Choice {}

    #[test]
    fn text_keys_take_one_of_their_choices() {
        let (cfg, _) = resolve::<Choice>("demo", &[&set("axis", "z")]).unwrap();
        assert_eq!(cfg.axis, "z");
        let toml = Override {
            value: Raw::Toml(toml::Value::String("x".into())),
            ..set("axis", "")
        };
        assert_eq!(resolve::<Choice>("demo", &[&toml]).unwrap().0.axis, "x");
        let e = resolve::<Choice>("demo", &[&set("axis", "w")])
            .unwrap_err()
            .0;
        assert!(
            e.contains("demo.axis") && e.contains("one of x, y, z"),
            "{e}"
        );
        let bad = Override {
            value: Raw::Toml(toml::Value::Integer(1)),
            ..set("axis", "")
        };
        let e = resolve::<Choice>("demo", &[&bad]).unwrap_err().0;
        assert!(e.contains("demo.axis"), "{e}");
    }

    #[test]
    fn toml_tables_by_either_spelling() {
        let checks = ["demo/a", "demo/b"];
        let o = parse_toml(
            "[demo.a]\nn = 3\n[\"demo/b\"]\nlambda = 1\n",
            "f.toml",
            &checks,
        )
        .unwrap();
        assert_eq!(o.len(), 2);
        assert_eq!(
            (o[0].check.as_str(), o[1].check.as_str()),
            ("demo/a", "demo/b")
        );
        assert!(parse_toml("[demo.c]\nn = 3\n", "f.toml", &checks).is_err());
        assert!(parse_toml("x = 3\n", "f.toml", &checks).is_err());
        assert_eq!(
            split_key("demo.a.n", &checks).unwrap(),
            ("demo/a".into(), "n".into())
        );
        assert_eq!(
            split_key("demo/b.n", &checks).unwrap(),
            ("demo/b".into(), "n".into())
        );
        assert!(split_key("demo/z.n", &checks).is_err());
    }
}
