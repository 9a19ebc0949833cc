//! The user docs keep up with the code: every property of the policy schema is
//! documented in docs/policy.md, every property of the plan schema in
//! docs/plan.md (each as `name` in backticks), and every `rule:NAME` that a
//! golden plan contains, and every step name, is in docs/plan.md.
//!
//! And what the docs quote is what the program does: a fenced block after
//! `<!-- output: FILE -->` is that file whole, one after `<!-- excerpt: FILE -->`
//! has each of its lines in that file, in order (`…` stands for left-out
//! text, `←` starts a note), where FILE is a golden file (which tests/golden.rs
//! compares with the binary's output); every TOML example of docs/policy.md
//! loads as a policy; the `check` example of docs/ci-review.md is a real run;
//! the README's bundle recipe makes a bundle `plan` accepts; every repository
//! path the docs name exists.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

mod common;

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

/// The user-facing documents.
fn documents() -> Vec<String> {
    let mut docs = vec!["README.md".to_string()];
    for e in std::fs::read_dir(root().join("docs")).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".md") {
            docs.push(format!("docs/{name}"));
        }
    }
    docs.sort();
    docs
}

/// A fenced block of a document.
struct Block {
    /// The line of its opening fence (1-based).
    line: usize,
    /// Its language (`toml`, or empty).
    lang: String,
    /// The marker on the line before, as (kind, argument): `<!-- excerpt: FILE -->`.
    marker: Option<(String, String)>,
    /// Its text, without the fences and the fence's indentation.
    text: String,
}

/// Every fenced block (``` fences, possibly indented under a list item).
fn blocks(doc: &str) -> Vec<Block> {
    let lines: Vec<&str> = doc.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let trimmed = lines[i].trim_start();
        if let Some(lang) = trimmed.strip_prefix("```") {
            let indent = lines[i].len() - trimmed.len();
            let marker = i
                .checked_sub(1)
                .and_then(|p| lines[p].trim().strip_prefix("<!-- "))
                .and_then(|m| m.strip_suffix(" -->"))
                .and_then(|m| m.split_once(": "))
                .map(|(k, v)| (k.to_string(), v.trim().to_string()));
            let mut text = String::new();
            let mut j = i + 1;
            while j < lines.len() && lines[j].trim() != "```" {
                text.push_str(lines[j].get(indent..).unwrap_or(lines[j].trim_start()));
                text.push('\n');
                j += 1;
            }
            out.push(Block {
                line: i + 1,
                lang: lang.trim().to_string(),
                marker,
                text,
            });
            i = j + 1;
        } else {
            i += 1;
        }
    }
    out
}

/// The blocks of every document with a marker of this kind, as (document, block).
fn marked(kind: &str) -> Vec<(String, Block)> {
    documents()
        .into_iter()
        .flat_map(|d| {
            let text = read(&d);
            blocks(&text)
                .into_iter()
                .filter(|b| b.marker.as_ref().is_some_and(|(k, _)| k == kind))
                .map(move |b| (d.clone(), b))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn quoted_outputs_are_the_golden_files() {
    let found = marked("output");
    assert!(
        found.iter().any(|(d, _)| d == "README.md"),
        "the README's diagnostic has no <!-- output: … --> marker"
    );
    for (doc, b) in found {
        let file = &b.marker.as_ref().unwrap().1;
        let want = read(file);
        assert!(
            b.text == want,
            "{doc}:{}: the block is not {file}; the file holds:\n{want}",
            b.line
        );
    }
}

/// Whether `line` matches `pattern`, where `…` in the pattern stands for any text.
fn matches_elided(pattern: &str, line: &str) -> bool {
    let parts: Vec<&str> = pattern.split('…').collect();
    if parts.len() == 1 {
        return pattern == line;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !line.starts_with(first) || !line.ends_with(last) || line.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &line[first.len()..line.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// The first line of `excerpt` (notes after `←` removed, blank lines skipped)
/// that is not in `file` after the lines before it; `None` when all are.
fn excerpt_mismatch(excerpt: &str, file: &str) -> Option<String> {
    let mut lines = file.lines();
    for raw in excerpt.lines() {
        let pattern = raw.split('←').next().unwrap().trim_end();
        if pattern.is_empty() {
            continue;
        }
        if !lines.by_ref().any(|l| matches_elided(pattern, l.trim_end())) {
            return Some(pattern.to_string());
        }
    }
    None
}

#[test]
fn excerpt_matching_can_fail() {
    let file = "a = 1\nb = \"xyz\"\nc = 3\n";
    assert_eq!(excerpt_mismatch("a = 1   ← note\n\nc = 3\n", file), None);
    assert_eq!(excerpt_mismatch("b = \"x…z\"\n", file), None);
    assert_eq!(excerpt_mismatch("c = 3\na = 1\n", file), Some("a = 1".into()));
    assert_eq!(excerpt_mismatch("b = \"x…q\"\n", file), Some("b = \"x…q\"".into()));
}

#[test]
fn quoted_excerpts_are_in_the_golden_files() {
    let found = marked("excerpt");
    for want in ["docs/plan.md", "docs/policy.md"] {
        assert!(
            found.iter().any(|(d, _)| d == want),
            "no <!-- excerpt: … --> block in {want}"
        );
    }
    for (doc, b) in found {
        let file = &b.marker.as_ref().unwrap().1;
        if let Some(line) = excerpt_mismatch(&b.text, &read(file)) {
            panic!(
                "{doc}:{}: this line of the excerpt is not in {file} (in order): {line}",
                b.line
            );
        }
    }
}

#[test]
fn every_policy_example_loads() {
    use sandboxctl::policy::{self, PolicyRef};
    let doc = read("docs/policy.md");
    let examples: Vec<Block> = blocks(&doc)
        .into_iter()
        .filter(|b| b.lang == "toml" && b.marker.is_none())
        .collect();
    assert!(examples.len() >= 15, "only {} TOML examples found", examples.len());
    for b in examples {
        let name = format!("docs/policy.md:{}", b.line);
        if let Err(e) = policy::load(
            &[PolicyRef::Text {
                name: name.clone(),
                text: b.text.clone(),
            }],
            &root(),
        ) {
            panic!("{name}: the example does not load as a policy: {e}\n{}", b.text);
        }
    }
}

/// A golden diagnostic without miette's line wrapping.
fn unwrapped_stderr(case: &str) -> String {
    read(&format!("tests/golden/cases/{case}/stderr")).replace("\n  │ ", " ")
}

#[test]
fn the_quoted_conflict_message_is_the_programs() {
    let doc = read("docs/policy.md");
    let stderr = unwrapped_stderr("bad-conflict-network");
    let quoted: Vec<&str> = doc
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|q| q.starts_with("conflicting settings: namespaces.") && !q.contains('…'))
        .collect();
    assert!(!quoted.is_empty(), "docs/policy.md quotes no conflict message");
    for q in quoted {
        let q = q.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            stderr.contains(&q),
            "docs/policy.md quotes `{q}`, which the program does not print (tests/golden/cases/bad-conflict-network/stderr):\n{stderr}"
        );
    }
}

/// The fenced block after `<!-- example:NAME -->`, without the fences.
fn example(doc: &str, name: &str) -> String {
    let at = doc
        .find(&format!("<!-- example:{name} -->"))
        .unwrap_or_else(|| panic!("no example {name}"));
    blocks(&doc[at..])
        .into_iter()
        .next()
        .expect("a block after the marker")
        .text
}

#[test]
fn the_check_example_is_a_real_run() {
    let s = common::Scratch::new("docs-check");
    let g = root().join("tests/golden");
    for dir in ["inputs", "hosts", "cases/runc-untrusted", "cases/inheritance"] {
        std::fs::create_dir_all(s.0.join(dir)).unwrap();
    }
    for file in [
        "inputs/runc-spec.json",
        "hosts/hybrid-root.toml",
        "cases/runc-untrusted/cmd",
        "cases/inheritance/strict.toml",
    ] {
        std::fs::copy(g.join(file), s.0.join(file)).unwrap();
    }
    // Before: the inheritance case runs under untrusted, its plan committed.
    std::fs::copy(g.join("cases/runc-untrusted/cmd"), s.0.join("cases/inheritance/cmd")).unwrap();
    let r = common::run(&s.0, &["check", "cases", "--update"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    // Then its cmd switches to strict.toml, and its plan is not updated.
    std::fs::copy(g.join("cases/inheritance/cmd"), s.0.join("cases/inheritance/cmd")).unwrap();
    let doc = read("docs/ci-review.md");
    for (format, name) in [("text", "check-text"), ("markdown", "check-markdown")] {
        let r = common::run(&s.0, &["check", "cases", "--format", format]);
        assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
        let want = example(&doc, name);
        assert!(
            r.stdout == want,
            "docs/ci-review.md example:{name} is not what `sandboxctl check cases --format {format}` prints:\n{}",
            similar::TextDiff::from_lines(want.as_str(), r.stdout.as_str())
                .unified_diff()
                .header("docs", "check")
        );
    }
}

#[test]
fn the_readme_bundle_recipe_makes_a_bundle() {
    let readme = read("README.md");
    for needed in [
        "scripts/make-busybox-rootfs mybundle/rootfs",
        "runc spec",
        "cp tests/golden/inputs/runc-spec.json",
    ] {
        assert!(readme.contains(needed), "the README no longer says `{needed}`");
    }
    let busybox = match common::busybox() {
        Ok(b) => b,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let s = common::Scratch::new("docs-bundle");
    let script = root().join("scripts/make-busybox-rootfs");
    let out = std::process::Command::new(&script)
        .env("BUSYBOX", &busybox)
        .arg(s.0.join("mybundle/rootfs"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // runc spec's output, as the README says for a machine without runc.
    std::fs::copy(
        root().join("tests/golden/inputs/runc-spec.json"),
        s.0.join("mybundle/config.json"),
    )
    .unwrap();
    let host = root().join("tests/golden/hosts/hybrid-root.toml");
    for policy in ["default", "untrusted"] {
        let r = common::run(
            &s.0,
            &[
                "plan",
                "--policy",
                policy,
                "--bundle",
                "./mybundle",
                "--host",
                host.to_str().unwrap(),
            ],
        );
        assert_eq!(r.code, 0, "{policy}: {}", r.stderr);
        assert!(s.0.join("mybundle/rootfs/bin/sh").exists());
    }
}

#[test]
fn every_repository_path_the_docs_name_exists() {
    let roots = [
        "src/",
        "tests/",
        "scripts/",
        "benches/",
        "docs/",
        "policies/",
        "schema/",
        "examples/",
    ];
    let mut missing = Vec::new();
    for doc in documents() {
        let text = read(&doc);
        for q in text.split('`').skip(1).step_by(2) {
            let path = q.split_whitespace().next().unwrap_or("");
            if !roots.iter().any(|r| path.starts_with(r)) || path.contains(['*', '<', '{', '…']) {
                continue;
            }
            let path = path.trim_end_matches([',', '.', ')', ':']);
            if !root().join(path).exists() {
                missing.push(format!("{doc}: {path}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "the docs name files that are not in the repository: {missing:#?}"
    );
}

/// Runs of whitespace as one space, and miette's wrapped message lines joined.
fn one_line(text: &str) -> String {
    text.replace("\n  │ ", " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The messages docs/policy.md quotes under "Validation errors", each with a
/// policy that gets it from `sandboxctl validate`.
const VALIDATION_QUOTES: &[(&str, &str)] = &[
    (
        "description = \"x\n",
        "parsing policy: invalid basic string, expected `\"`",
    ),
    (
        "[network]\nmdoe = \"none\"\n",
        "unknown key `mdoe` in policy (did you mean \"mode\"?)",
    ),
    (
        "[network]\nmdoe = \"none\"\n",
        "accepted keys here: mode, allow_join, on_excess",
    ),
    (
        "[limits]\npids = \"many\"\n",
        "parsing policy: invalid type: string \"many\", expected i64",
    ),
    (
        "[limits]\nmemory = \"512MB\"\n",
        "unit \"MB\" is not accepted: sizes use binary units KiB, MiB, GiB, TiB (did you mean \"512MiB\"?)",
    ),
    (
        "[limits]\nmemory = \"4KiB\"\n",
        "memory limits below 1MiB cannot run anything",
    ),
    (
        "[rlimits]\nRLIMIT_NOFILE = { soft = 10, hard = 5 }\n",
        "RLIMIT_NOFILE: soft limit 10 is above the hard limit 5",
    ),
    (
        "[mounts]\nallowed_host_paths = [\"data/volumes\"]\n",
        "mounts.allowed_host_paths must be an absolute path, got \"data/volumes\"",
    ),
    (
        "[capabilities]\nallow = [\"CAP_NET_ADMN\"]\n",
        "unknown capability \"CAP_NET_ADMN\" (did you mean \"CAP_NET_ADMIN\"?)",
    ),
    (
        "[seccomp]\ndeny = [\"wirte\"]\n",
        "unknown system call \"wirte\" on x86_64 (did you mean \"write\"?)",
    ),
    (
        "extends = \"untrustd\"\n",
        "unknown built-in policy \"untrustd\" (did you mean \"untrusted\"?)",
    ),
];

#[test]
fn the_quoted_validation_errors_are_the_programs() {
    let doc = one_line(&read("docs/policy.md"));
    let s = common::Scratch::new("docs-validation");
    for (policy, quote) in VALIDATION_QUOTES {
        assert!(doc.contains(quote), "docs/policy.md no longer quotes `{quote}`");
        std::fs::write(s.0.join("p.toml"), policy).unwrap();
        let r = common::run(&s.0, &["validate", "p.toml"]);
        assert_eq!(r.code, 2, "{policy}: {}", r.stderr);
        assert!(
            one_line(&r.stderr).contains(quote),
            "docs/policy.md quotes `{quote}`, but validate prints:\n{}",
            r.stderr
        );
    }
    // Two that need more than one policy file, or host facts.
    std::fs::write(s.0.join("a.toml"), "extends = \"b.toml\"\n").unwrap();
    std::fs::write(s.0.join("b.toml"), "extends = \"a.toml\"\n").unwrap();
    let cycle = "`extends` cycle: a.toml → b.toml → a.toml";
    assert!(doc.contains(cycle));
    assert!(one_line(&common::run(&s.0, &["validate", "a.toml"]).stderr).contains(cycle));
    let kvm = "platform kvm needs /dev/kvm, and the host facts show none";
    assert!(doc.contains(kvm));
    assert!(one_line(&read("tests/golden/cases/bad-kvm-missing/stderr")).contains(kvm));
}

#[test]
fn the_shipped_policy_figures_are_the_policies() {
    use sandboxctl::policy::{self, Policy, PolicyRef};
    let doc = one_line(&read("docs/policy.md"));
    let load = |name: &str| -> Policy { policy::load(&[PolicyRef::Builtin(name.into())], &root()).unwrap() };
    let default = load("default");
    let caps: Vec<String> = default
        .cap_allow
        .value
        .keys()
        .map(|c| c.to_string().trim_start_matches("CAP_").to_string())
        .collect();
    let mut sorted = caps.clone();
    sorted.sort();
    let quote = format!(
        "a capability ceiling of the {} capabilities container engines grant by default (`{}`)",
        caps.len(),
        sorted.join(" ")
    );
    assert!(doc.contains(&quote), "docs/policy.md should say: {quote}");
    let untrusted = load("untrusted");
    let size = |s: &Option<sandboxctl::policy::Setting<sandboxctl::vocab::Bytes>>| {
        s.as_ref().map(|s| s.value.to_string()).unwrap_or_default()
    };
    let spaced = |s: String| s.replace("MiB", " MiB").replace("GiB", " GiB");
    assert_eq!(
        size(&untrusted.memory),
        size(&untrusted.memory_swap),
        "docs/policy.md describes memory and memory+swap as one figure"
    );
    let quote = format!(
        "memory and memory+swap {}, {} pids, CPU quota {} µs per {} µs",
        spaced(size(&untrusted.memory)),
        untrusted.pids.as_ref().unwrap().value,
        untrusted.cpu_quota.as_ref().unwrap().value,
        untrusted.cpu_period.as_ref().unwrap().value
    );
    assert!(doc.contains(&quote), "docs/policy.md should say: {quote}");
    let quote = format!("an allow list of {} syscalls", untrusted.seccomp_allow.value.len());
    assert!(doc.contains(&quote), "docs/policy.md should say: {quote}");
    let kvm = load("kvm");
    let quote = format!(
        "{} memory and {} pids (deny above)",
        spaced(size(&kvm.memory)),
        kvm.pids.as_ref().unwrap().value
    );
    assert!(doc.contains(&quote), "docs/policy.md should say: {quote}");
}
