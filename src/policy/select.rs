//! Which policy applies when no one names it on every call: container engines
//! run `sandboxctl create` with their own arguments, so the operator chooses
//! once, on the host, and a spec may pick only among what the operator listed.
//!
//! First match wins: the global `--policy` flag, the `SANDBOXCTL_POLICY`
//! environment variable (a built-in name or a path), the file
//! `/etc/sandboxctl/policy.toml`, else the built-in `default`. Then a spec's
//! `org.sandboxctl.policy` annotation may replace that choice with one of the
//! policies the chosen policy lists in `[selection] selectable`, and nothing
//! else. Pure: the caller reads the environment and checks the file.

use std::collections::HashMap;

use super::{Policy, PolicyRef};
use crate::plan::compile::{Anchor, CompileError, CompileErrorKind};
use crate::vocab::Origin;

/// The environment variable naming the operator's policy.
pub const ENV: &str = "SANDBOXCTL_POLICY";
/// The host-wide policy file, used when neither flag nor variable names one.
pub const ETC_POLICY: &str = "/etc/sandboxctl/policy.toml";
/// The spec annotation that picks a selectable policy.
pub const ANNOTATION: &str = "org.sandboxctl.policy";

/// The operator's choice: the policies to load and where the choice came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// The policies, layered in order (later wins).
    pub refs: Vec<PolicyRef>,
    /// `cli:--policy`, `host:env:SANDBOXCTL_POLICY`, `host:/etc/sandboxctl/policy.toml`
    /// or `default`; `spec:annotations["org.sandboxctl.policy"]` after [`by_annotation`].
    pub from: Origin,
}

/// The first match of: `flag` (the `--policy` values), `env` (the variable's
/// value; empty counts as unset), the host file (when `etc_exists`), the
/// built-in default.
pub fn choose(flag: &[String], env: Option<&str>, etc_exists: bool) -> Choice {
    if !flag.is_empty() {
        return Choice {
            refs: flag.iter().map(|s| PolicyRef::parse(s)).collect(),
            from: Origin::Cli("--policy".into()),
        };
    }
    if let Some(v) = env.filter(|v| !v.is_empty()) {
        return Choice {
            refs: vec![PolicyRef::parse(v)],
            from: Origin::host(format!("env:{ENV}")),
        };
    }
    if etc_exists {
        return Choice {
            refs: vec![PolicyRef::File(ETC_POLICY.into())],
            from: Origin::host(ETC_POLICY),
        };
    }
    Choice {
        refs: vec![PolicyRef::Builtin("default".into())],
        from: Origin::Default,
    }
}

/// The spec path of the annotation, as plans and diagnostics name it.
pub fn annotation_path() -> String {
    format!("annotations[\"{ANNOTATION}\"]")
}

/// The policy a spec's annotation picks, if it carries one: allowed only when
/// `policy` (the operator's choice) lists the value in `[selection]
/// selectable`. A value the operator did not list is refused, located at the
/// annotation and at the `selectable` line (or saying there is none).
pub fn by_annotation(
    policy: &Policy,
    annotations: Option<&HashMap<String, String>>,
) -> Result<Option<Choice>, CompileError> {
    let Some(value) = annotations.and_then(|a| a.get(ANNOTATION)) else {
        return Ok(None);
    };
    let listed = &policy.selectable;
    if listed.value.iter().any(|s| s.value == *value) {
        return Ok(Some(Choice {
            refs: vec![PolicyRef::parse(value)],
            from: Origin::spec(annotation_path()),
        }));
    }
    let names: Vec<&str> = listed.value.iter().map(|s| s.value.as_str()).collect();
    let help = if names.is_empty() {
        format!(
            "the operator's policy ({}) lists no selectable policies: drop the annotation, or add `[selection] selectable = [\"{value}\"]` to that policy",
            policy.chain().last().map(String::as_str).unwrap_or("default")
        )
    } else {
        format!(
            "pick one of {}, or ask the operator to add \"{value}\" to selection.selectable",
            names.join(", ")
        )
    };
    Err(
        CompileError::new(CompileErrorKind::PolicyNotSelectable { name: value.clone() })
            .anchor(Anchor::spec(annotation_path(), "asks for this policy"))
            .anchor(Anchor::Policy(listed.at.clone(), "the policies a spec may pick".into()))
            .help(help),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{load, PolicyRef};
    use std::path::Path;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn the_flag_wins_over_everything() {
        let c = choose(&s(&["untrusted", "/x/p.toml"]), Some("kvm"), true);
        assert_eq!(
            c.refs,
            vec![
                PolicyRef::Builtin("untrusted".into()),
                PolicyRef::File("/x/p.toml".into())
            ]
        );
        assert_eq!(c.from.to_string(), "cli:--policy");
    }

    #[test]
    fn then_the_environment_then_the_host_file_then_the_default() {
        let c = choose(&[], Some("container"), true);
        assert_eq!(c.refs, vec![PolicyRef::Builtin("container".into())]);
        assert_eq!(c.from.to_string(), "host:env:SANDBOXCTL_POLICY");
        let c = choose(&[], Some("/etc/p/web.toml"), true);
        assert_eq!(c.refs, vec![PolicyRef::File("/etc/p/web.toml".into())]);
        let c = choose(&[], Some(""), true);
        assert_eq!(c.refs, vec![PolicyRef::File(ETC_POLICY.into())]);
        assert_eq!(c.from.to_string(), "host:/etc/sandboxctl/policy.toml");
        let c = choose(&[], None, false);
        assert_eq!(c.refs, vec![PolicyRef::Builtin("default".into())]);
        assert_eq!(c.from, Origin::Default);
    }

    fn operator(text: &str) -> Policy {
        load(
            &[PolicyRef::Text {
                name: "op.toml".into(),
                text: text.into(),
            }],
            Path::new("."),
        )
        .expect("loads")
    }

    fn ann(v: &str) -> HashMap<String, String> {
        HashMap::from([(ANNOTATION.to_string(), v.to_string())])
    }

    #[test]
    fn an_annotation_picks_only_a_listed_policy() {
        let p = operator("extends = \"container\"\n[selection]\nselectable = [\"untrusted\", \"container\"]\n");
        let c = by_annotation(&p, Some(&ann("untrusted"))).unwrap().unwrap();
        assert_eq!(c.refs, vec![PolicyRef::Builtin("untrusted".into())]);
        assert_eq!(c.from.to_string(), "spec:annotations[\"org.sandboxctl.policy\"]");
        assert_eq!(by_annotation(&p, None).unwrap(), None);
        assert_eq!(by_annotation(&p, Some(&HashMap::new())).unwrap(), None);
        let e = by_annotation(&p, Some(&ann("network-host"))).unwrap_err();
        assert_eq!(
            e.kind,
            CompileErrorKind::PolicyNotSelectable {
                name: "network-host".into()
            }
        );
        // Located at the policy's selectable line.
        assert!(
            matches!(&e.anchors[1], Anchor::Policy(crate::policy::At::File(loc), _) if p.sources[loc.src].line_of(loc.span.start) == 3),
            "{:?}",
            e.anchors
        );
        assert!(e.help.as_deref().unwrap().contains("untrusted, container"));
    }

    #[test]
    fn without_a_selectable_list_every_annotation_is_refused() {
        let p = operator("extends = \"default\"\n");
        let e = by_annotation(&p, Some(&ann("default"))).unwrap_err();
        assert!(
            e.help.as_deref().unwrap().contains("lists no selectable policies"),
            "{e:?}"
        );
    }
}
