//! Fuzzes the harness's configuration parsing through its public API: `--set` strings and TOML
//! files, then resolution against every registered check.
//!
//! Input: first byte even → the rest is `--set` arguments, one per line; odd → the rest is a TOML
//! file. Properties:
//! - no panic: every input gives an error or resolved tables;
//! - every resolved value lies in its declared range (lists: each element, and at least
//!   `min_len` elements);
//! - the resolved configuration printed by the CLI (`to_toml_text`) is accepted back by `--config`
//!   and resolves to the same tables.
#![no_main]

use descent_harness::check::DynCheck;
use descent_harness::config::{self, Override};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn registry() -> &'static (Vec<Box<dyn DynCheck>>, Vec<&'static str>) {
    static REG: OnceLock<(Vec<Box<dyn DynCheck>>, Vec<&'static str>)> = OnceLock::new();
    REG.get_or_init(|| {
        let reg = descent_harness::registry();
        let names = reg.iter().map(|c| c.id().name).collect();
        (reg, names)
    })
}

/// Resolves `overrides` against every check, as the CLI does; `Err` if any check rejects them.
fn resolve_all(overrides: &[Override]) -> Result<Vec<(String, toml::Table)>, String> {
    let (reg, _) = registry();
    reg.iter()
        .map(|c| {
            c.resolve(overrides)
                .map(|t| (c.id().name.to_string(), t))
                .map_err(|e| e.to_string())
        })
        .collect()
}

fn in_range(check: &str, table: &toml::Table, c: &dyn DynCheck) {
    for r in c.ranges() {
        let v = table
            .get(r.key)
            .unwrap_or_else(|| panic!("{check}: key {} missing", r.key));
        let nums: Vec<f64> = match v {
            toml::Value::Integer(i) => vec![*i as f64],
            toml::Value::Float(f) => vec![*f],
            toml::Value::Array(a) => {
                assert!(
                    a.len() >= r.min_len,
                    "{check}.{}: list shorter than {}",
                    r.key,
                    r.min_len
                );
                a.iter()
                    .map(|x| match x {
                        toml::Value::Integer(i) => *i as f64,
                        toml::Value::Float(f) => *f,
                        other => panic!("{check}.{}: list element {other}", r.key),
                    })
                    .collect()
            }
            _ => continue, // booleans and strings have no numeric range
        };
        for x in nums {
            assert!(
                x >= r.min && x <= r.max,
                "{check}.{} = {x} outside [{}, {}]",
                r.key,
                r.min,
                r.max
            );
            if r.integer {
                assert_eq!(x.fract(), 0.0, "{check}.{} = {x} not an integer", r.key);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let (reg, names) = registry();
    let overrides = if mode % 2 == 0 {
        let sets: Vec<String> = text.lines().map(str::to_string).collect();
        config::parse_set(&sets, names)
    } else {
        config::parse_toml(&text, "fuzz.toml", names)
    };
    let Ok(overrides) = overrides else { return };
    let Ok(tables) = resolve_all(&overrides) else {
        return;
    };
    for ((name, table), c) in tables.iter().zip(reg) {
        in_range(name, table, c.as_ref());
    }
    // What the CLI prints as "accepted back by --config" must be accepted back, to the same tables.
    let printed = config::to_toml_text(&tables);
    let again = config::parse_toml(&printed, "printed", names)
        .unwrap_or_else(|e| panic!("printed config rejected: {e}\n{printed}"));
    let tables2 = resolve_all(&again)
        .unwrap_or_else(|e| panic!("printed config does not resolve: {e}\n{printed}"));
    assert_eq!(
        tables, tables2,
        "round trip changed the configuration\n{printed}"
    );
});
