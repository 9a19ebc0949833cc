//! The user docs keep up with the code: every property of the policy schema is
//! documented in docs/policy.md, every property of the plan schema in
//! docs/plan.md (each as `name` in backticks), and every `rule:NAME` that a
//! golden plan contains, and every step name, is in docs/plan.md.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let p = root().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

fn schema(rel: &str) -> Value {
    serde_json::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Property names under `properties` of `v`, and of every schema nested in it
/// (variants of tagged enums live in `oneOf`).
fn collect_properties(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(map) => {
            if let Some(Value::Object(props)) = map.get("properties") {
                out.extend(props.keys().cloned());
            }
            for child in map.values() {
                collect_properties(child, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_properties(i, out)),
        _ => {}
    }
}

/// The property names of the root and of every `$defs` entry.
fn property_names(schema: &Value) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let defs = schema["$defs"].as_object().expect("the schema has $defs");
    assert!(!defs.is_empty(), "no $defs in the schema");
    let mut root_only = schema.clone();
    root_only.as_object_mut().unwrap().remove("$defs");
    collect_properties(&root_only, &mut names);
    for def in defs.values() {
        collect_properties(def, &mut names);
    }
    names
}

fn missing_in(doc: &str, names: impl IntoIterator<Item = String>) -> Vec<String> {
    names.into_iter().filter(|n| !doc.contains(&format!("`{n}`"))).collect()
}

#[test]
fn every_policy_key_is_documented() {
    let names = property_names(&schema("schema/policy.schema.json"));
    for key in ["network", "limits", "on_excess", "pass_fds", "soft"] {
        assert!(names.contains(key), "walking the policy schema missed `{key}`");
    }
    let missing = missing_in(&read("docs/policy.md"), names);
    assert!(
        missing.is_empty(),
        "docs/policy.md does not mention these policy keys (as `name`): {missing:?}"
    );
}

#[test]
fn every_plan_field_is_documented() {
    let names = property_names(&schema("schema/plan.schema.json"));
    for key in [
        "steps",
        "join",
        "unknown_syscalls",
        "api_version",
        "socket",
        "value_two",
    ] {
        assert!(names.contains(key), "walking the plan schema missed `{key}`");
    }
    let missing = missing_in(&read("docs/plan.md"), names);
    assert!(
        missing.is_empty(),
        "docs/plan.md does not mention these plan fields (as `name`): {missing:?}"
    );
}

#[test]
fn every_step_is_documented() {
    let plan = schema("schema/plan.schema.json");
    // A plain string enum, or (when a variant has its own doc comment) a oneOf
    // of string enums and consts.
    let def = &plan["$defs"]["Step"];
    let mut steps: Vec<String> = Vec::new();
    let mut collect = |v: &serde_json::Value| {
        if let Some(list) = v["enum"].as_array() {
            steps.extend(list.iter().filter_map(|s| s.as_str().map(str::to_string)));
        }
        if let Some(c) = v["const"].as_str() {
            steps.push(c.to_string());
        }
    };
    collect(def);
    for alt in def["oneOf"].as_array().into_iter().flatten() {
        collect(alt);
    }
    assert!(steps.len() > 20, "too few steps found: {steps:?}");
    let missing = missing_in(&read("docs/plan.md"), steps);
    assert!(
        missing.is_empty(),
        "docs/plan.md does not list these steps: {missing:?}"
    );
}

/// `rule:NAME` strings in a text (NAME: lowercase letters, digits, dashes).
fn rule_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("rule:") {
        let name: String = text[i + 5..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    out
}

#[test]
fn every_rule_in_the_golden_plans_is_documented() {
    let cases = root().join("tests/golden/cases");
    let mut rules = BTreeSet::new();
    let mut plans = 0;
    for entry in std::fs::read_dir(&cases).unwrap_or_else(|e| panic!("{}: {e}", cases.display())) {
        let plan = entry.unwrap().path().join("plan.toml");
        if Path::new(&plan).exists() {
            plans += 1;
            rules.extend(rule_names(&std::fs::read_to_string(&plan).unwrap()));
        }
    }
    assert!(plans > 10, "only {plans} golden plans found under {}", cases.display());
    assert!(
        rules.contains("user-ns-nobody"),
        "no rules found in the golden plans: {rules:?}"
    );
    let doc = read("docs/plan.md");
    let missing: Vec<&String> = rules
        .iter()
        .filter(|r| !doc.contains(&format!("`{r}`")) && !doc.contains(&format!("rule:{r}")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/plan.md does not explain these rules found in tests/golden/cases/*/plan.toml: {missing:?}"
    );
}
