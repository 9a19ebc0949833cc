//! The messages a newcomer meets first, run through the real binary: each
//! says what was wrong with what was given and suggests a command that works.
//! None of these runs creates anything on the host: every one fails while
//! reading or compiling its inputs.

use std::path::{Path, PathBuf};

mod common;

fn golden(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(rel)
}

/// Runs the binary; its stderr without miette's line wrapping, so a message
/// can be searched for whole.
fn run(dir: &Path, args: &[&str]) -> common::Run {
    let mut r = common::run(dir, args);
    r.stderr = r.stderr.replace("\n  │ ", " ");
    r
}

#[test]
fn no_command_suggests_adding_one_to_the_command_being_run() {
    let host = golden("hosts/hybrid-root.toml");
    let host = host.to_str().unwrap();
    for sub in ["apply", "plan", "doctor"] {
        let r = run(Path::new("."), &[sub, "--host", host]);
        assert_eq!(r.code, 2, "{sub}: {}", r.stderr);
        assert!(r.stderr.contains("no command to run"), "{sub}: {}", r.stderr);
        assert!(
            r.stderr.contains("after --, e.g. `-- /bin/sh -c 'id'`"),
            "{sub}: {}",
            r.stderr
        );
        // The suggestion must not send the user to another subcommand.
        assert!(!r.stderr.contains("sandboxctl plan"), "{sub}: {}", r.stderr);
    }
}

#[test]
fn a_config_json_given_as_the_bundle_suggests_its_directory() {
    let s = common::Scratch::new("messages-bundle");
    std::fs::create_dir_all(s.0.join("mybundle")).unwrap();
    std::fs::copy(golden("inputs/runc-spec.json"), s.0.join("mybundle/config.json")).unwrap();
    std::fs::copy(golden("inputs/runc-spec.json"), s.0.join("other.json")).unwrap();
    let host = golden("hosts/hybrid-root.toml");
    let host = host.to_str().unwrap();
    for sub in ["plan", "apply", "doctor"] {
        let r = run(&s.0, &[sub, "--host", host, "--bundle", "mybundle/config.json"]);
        assert_eq!(r.code, 2, "{sub}: {}", r.stderr);
        assert!(
            r.stderr
                .contains("--bundle takes the bundle directory, and mybundle/config.json is a file"),
            "{sub}: {}",
            r.stderr
        );
        assert!(
            r.stderr.contains("did you mean --bundle mybundle?"),
            "{sub}: {}",
            r.stderr
        );
        assert!(!r.stderr.contains("runc spec"), "{sub}: {}", r.stderr);
    }
    std::fs::copy(golden("inputs/runc-spec.json"), s.0.join("config.json")).unwrap();
    let r = run(&s.0, &["plan", "--host", host, "--bundle", "config.json"]);
    assert!(r.stderr.contains("did you mean --bundle .?"), "{}", r.stderr);
    let r = run(&s.0, &["plan", "--host", host, "--bundle", "other.json"]);
    assert!(r.stderr.contains("pass --spec other.json"), "{}", r.stderr);
    // The suggested command works.
    let r = run(&s.0, &["plan", "--host", host, "--bundle", "mybundle"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("plan sha256:"), "{}", r.stdout);
}

#[test]
fn pass_fds_without_its_log_reads_as_a_sentence() {
    let s = common::Scratch::new("messages-pass-fds");
    for (key, role) in [("log", "log"), ("user_log", "user_log")] {
        std::fs::write(
            s.0.join("p.toml"),
            format!("extends = \"default\"\n\n[workload]\npass_fds = [\"{role}\"]\n"),
        )
        .unwrap();
        let r = run(&s.0, &["validate", "p.toml"]);
        assert_eq!(r.code, 2, "{}", r.stderr);
        let want = format!("workload.pass_fds names \"{role}\" but no logs.{key} is set");
        assert!(r.stderr.contains(&want), "{want}\n{}", r.stderr);
    }
    std::fs::write(s.0.join("p.toml"), "[workload]\npass_fds = [\"device\"]\n").unwrap();
    let r = run(&s.0, &["validate", "p.toml"]);
    assert!(
        r.stderr
            .contains("workload.pass_fds names \"device\" but the platform has no device fd (only kvm does)"),
        "{}",
        r.stderr
    );
}

#[test]
fn diff_help_says_the_new_side_comes_from_the_command_line_options() {
    let r = run(Path::new("."), &["diff", "--help"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stdout.contains("plan inputs"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("With only OLD, the new side is compiled now from the command-line options below"),
        "{}",
        r.stdout
    );
}
