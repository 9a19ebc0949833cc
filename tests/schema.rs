//! The checked-in JSON Schemas match what the code generates, and every
//! shipped policy validates. Regenerate the schemas with
//! `cargo run -q -- schema > schema/policy.schema.json` and
//! `cargo run -q -- schema --plan > schema/plan.schema.json`.

use std::path::Path;

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap()
}

#[test]
fn policy_schema_is_current() {
    assert_eq!(
        read("schema/policy.schema.json").trim_end(),
        sandboxctl::schema::policy_schema(),
        "schema/policy.schema.json is stale: run `cargo run -q -- schema > schema/policy.schema.json`"
    );
}

#[test]
fn plan_schema_is_current() {
    assert_eq!(
        read("schema/plan.schema.json").trim_end(),
        sandboxctl::schema::plan_schema(),
        "schema/plan.schema.json is stale: run `cargo run -q -- schema --plan > schema/plan.schema.json`"
    );
}

#[test]
fn policy_schema_forbids_unknown_keys() {
    let s: serde_json::Value = serde_json::from_str(&sandboxctl::schema::policy_schema()).unwrap();
    assert_eq!(s["additionalProperties"], serde_json::Value::Bool(false));
    assert!(s["properties"]["network"].is_object());
}

#[test]
fn shipped_policies_validate_and_point_at_the_schema() {
    for (name, text) in sandboxctl::policy::BUILTIN {
        assert!(
            text.starts_with("#:schema ../schema/policy.schema.json"),
            "{name} lacks the #:schema line"
        );
        let p = sandboxctl::policy::load(
            &[sandboxctl::policy::PolicyRef::Builtin(name.to_string())],
            Path::new("."),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(p.chain().last().unwrap().contains(name));
    }
}
