//! The command line around compile, run as a user runs it (no root needed:
//! host facts come from a fixture): the plan file's format follows `-o`'s
//! extension, a text rendering is refused by `apply --plan` with a clear
//! error, `--process` conflicts with a command after `--`, and stderr carries
//! one line per warning by default, the full diagnostics with `--verbose` and
//! nothing with `--quiet`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_sandboxctl")
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn host() -> String {
    root().join("tests/golden/hosts/hybrid-root.toml").display().to_string()
}

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .args(args)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A fresh temporary directory under the target dir (removed by the caller).
fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sandboxctl-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn output_format_follows_the_extension_unless_given() {
    let dir = tempdir("ext");
    let h = host();
    let cases: [(&str, Option<&str>, &str); 5] = [
        ("p.toml", None, "# sandboxctl launch plan"),
        ("p.json", None, "{"),
        ("p.txt", None, "plan sha256:"),
        ("plan", None, "plan sha256:"),
        ("q.toml", Some("json"), "{"),
    ];
    for (file, format, starts) in cases {
        let mut args = vec!["plan", "--host", &h, "-o", file];
        if let Some(f) = format {
            args.extend(["--format", f]);
        }
        args.extend(["--", "/bin/true"]);
        let o = run(&dir, &args);
        assert!(o.status.success(), "{file}: {}", stderr(&o));
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        assert!(
            text.starts_with(starts),
            "{file} ({format:?}) starts with {:?}",
            &text[..40]
        );
        if starts != "plan sha256:" {
            sandboxctl::plan::render::load(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn apply_and_doctor_refuse_a_text_rendering_saying_so() {
    let dir = tempdir("text");
    let h = host();
    let o = run(&dir, &["plan", "--host", &h, "-o", "plan.txt", "--", "/bin/true"]);
    assert!(o.status.success(), "{}", stderr(&o));
    for cmd in ["apply", "doctor"] {
        let o = run(&dir, &[cmd, "--plan", "plan.txt", "--host", &h]);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{cmd}: {e}");
        assert!(e.contains("this is the text rendering of a plan"), "{cmd}: {e}");
        assert!(
            e.contains("-o plan.toml"),
            "{cmd}: the help says how to get a loadable plan: {e}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn process_file_and_command_conflict() {
    let process = root().join("tests/golden/inputs/podman-exec.process.json");
    let p = process.display().to_string();
    let h = host();
    for cmd in ["plan", "apply", "doctor"] {
        let o = run(&root(), &[cmd, "--host", &h, "--process", &p, "--", "/bin/true"]);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{cmd}: {e}");
        assert!(e.contains("'--process <PROCESS>' cannot be used with"), "{cmd}: {e}");
    }
    // Each alone is fine.
    let o = run(&root(), &["plan", "--host", &h, "--process", &p]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// runc's spec under untrusted: 12 clamps.
fn clamped_plan(extra: &[&str]) -> (Output, usize) {
    let spec = root().join("tests/golden/inputs/runc-spec.json").display().to_string();
    let h = host();
    let mut args = vec![
        "plan",
        "--format",
        "toml",
        "--policy",
        "untrusted",
        "--spec",
        &spec,
        "--host",
        &h,
    ];
    args.extend_from_slice(extra);
    let o = run(&root(), &args);
    assert!(o.status.success(), "{}", stderr(&o));
    let plan = sandboxctl::plan::render::load(&String::from_utf8_lossy(&o.stdout)).unwrap();
    (o, plan.clamps.len())
}

#[test]
fn stderr_has_one_line_per_clamp_full_diagnostics_when_verbose_nothing_when_quiet() {
    let (normal, clamps) = clamped_plan(&[]);
    assert!(
        clamps >= 10,
        "runc's spec under untrusted clamps at least 10 things, saw {clamps}"
    );
    let e = stderr(&normal);
    assert_eq!(e.lines().count(), clamps, "one line per clamp:\n{e}");
    assert!(e.lines().all(|l| l.starts_with("warning: ")), "{e}");
    assert!(
        e.contains("policy:builtin:untrusted.toml:"),
        "each line names where the ceiling is: {e}"
    );

    let (verbose, _) = clamped_plan(&["--verbose"]);
    let v = stderr(&verbose);
    assert!(
        v.lines().count() > 5 * clamps,
        "--verbose shows the full diagnostics:\n{v}"
    );
    assert!(v.contains("╭─["), "{v}");

    let (quiet, _) = clamped_plan(&["--quiet"]);
    assert_eq!(stderr(&quiet), "", "--quiet prints nothing");
    let dir = tempdir("quiet");
    let o = run(
        &dir,
        &["plan", "-q", "--host", &host(), "-o", "p.json", "--", "/bin/true"],
    );
    assert!(o.status.success() && o.stderr.is_empty(), "{}", stderr(&o));
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(quiet.stdout, normal.stdout, "verbosity changes stderr only");
}

/// A bundle directory holding runc's spec and an (empty) rootfs directory.
fn bundle_in(dir: &Path) {
    std::fs::create_dir_all(dir.join("rootfs")).unwrap();
    std::fs::copy(
        root().join("tests/golden/inputs/runc-spec.json"),
        dir.join("config.json"),
    )
    .unwrap();
}

#[test]
fn plan_paths_are_absolute_and_normalised_wherever_the_plan_was_made() {
    let dir = tempdir("abs");
    bundle_in(&dir.join("work/mybundle"));
    std::fs::create_dir_all(dir.join("elsewhere")).unwrap();
    let h = host();
    let o = run(
        &dir.join("work"),
        &[
            "plan",
            "-q",
            "--host",
            &h,
            "--bundle",
            "./mybundle/../mybundle",
            "--console-socket",
            "c.sock",
            "-o",
            "plan.toml",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let plan = sandboxctl::plan::render::load(&std::fs::read_to_string(dir.join("work/plan.toml")).unwrap()).unwrap();
    let bundle = dir.join("work/mybundle");
    assert_eq!(plan.root.path.value, bundle.join("rootfs"));
    let b = plan.inputs.bundle.as_ref().unwrap();
    assert_eq!((&b.value, b.from.to_string().as_str()), (&bundle, "cli:--bundle"));
    assert_eq!(
        plan.stdio.value,
        sandboxctl::plan::Stdio::ConsoleSocket(dir.join("work/c.sock"))
    );
    // The same plan compiled from another directory is the same plan.
    let o = run(
        &dir.join("elsewhere"),
        &[
            "plan",
            "-q",
            "--host",
            &h,
            "--bundle",
            "../work/mybundle",
            "--console-socket",
            "../work/c.sock",
            "--format",
            "toml",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let again = sandboxctl::plan::render::load(&String::from_utf8_lossy(&o.stdout)).unwrap();
    assert_eq!(again.root, plan.root);
    assert_eq!(again.stdio, plan.stdio);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn target_bundle_makes_a_plan_for_another_machine_and_says_so() {
    let dir = tempdir("target");
    bundle_in(&dir.join("b"));
    let h = host();
    let args = [
        "plan",
        "-q",
        "--host",
        &h,
        "--bundle",
        "b",
        "--target-bundle",
        "/srv/web/./x/..",
    ];
    let o = run(&dir, &[&args[..], &["--format", "toml"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let plan = sandboxctl::plan::render::load(&String::from_utf8_lossy(&o.stdout)).unwrap();
    assert_eq!(plan.root.path.value, Path::new("/srv/web/rootfs"));
    assert_eq!(
        plan.inputs.bundle.as_ref().unwrap().from.to_string(),
        "cli:--target-bundle"
    );
    let t = run(&dir, &args);
    assert!(
        String::from_utf8_lossy(&t.stdout)
            .contains("bundle /srv/web  cli:--target-bundle  (a plan for another machine"),
        "the text rendering says so"
    );
    // Relative, or without a bundle: refused.
    let o = run(
        &dir,
        &["plan", "--host", &h, "--bundle", "b", "--target-bundle", "srv/web"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("must be an absolute"), "{}", stderr(&o));
    let o = run(
        &dir,
        &["plan", "--host", &h, "--target-bundle", "/srv/web", "--", "/bin/true"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no bundle or spec is given"), "{}", stderr(&o));
    // doctor names the missing root (the bundle is not at /srv/web here).
    let o = run(&dir, &[&args[..7], &["/srv/web", "-o", "p.toml"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let d = run(&dir, &["doctor", "--plan", "p.toml", "--host", &h]);
    let out = String::from_utf8_lossy(&d.stdout);
    assert_eq!(d.status.code(), Some(1), "{out}");
    assert!(out.contains("root /srv/web/rootfs: No such file or directory"), "{out}");
    assert!(out.contains("put the bundle there"), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn run_env(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut c = Command::new(bin());
    c.current_dir(dir).env("NO_COLOR", "1").env_remove("SANDBOXCTL_POLICY");
    for (k, v) in env {
        c.env(k, v);
    }
    c.args(args).output().unwrap()
}

/// The line of a text plan that says how its policy was chosen, and its chain.
fn chosen(o: &Output) -> (String, String) {
    assert!(o.status.success(), "{}", stderr(o));
    let text = String::from_utf8_lossy(&o.stdout);
    let line = |p: &str| text.lines().find(|l| l.starts_with(p)).unwrap_or_default().to_string();
    (line("policy chosen by "), line("policy builtin:"))
}

#[test]
fn policy_choice_first_match_wins_flag_then_environment_then_host_file_then_default() {
    let dir = tempdir("choice");
    let h = host();
    let plan = ["plan", "--host", &h, "--", "/bin/true"];
    // The environment names a built-in.
    let (by, chain) = chosen(&run_env(&dir, &[("SANDBOXCTL_POLICY", "untrusted")], &plan));
    assert_eq!(by, "policy chosen by host:env:SANDBOXCTL_POLICY");
    assert!(chain.contains("builtin:untrusted.toml"), "{chain}");
    // ... or a path.
    std::fs::write(dir.join("op.toml"), "extends = \"kvm\"\n").unwrap();
    let op = dir.join("op.toml").display().to_string();
    let (by, chain) = chosen(&run_env(&dir, &[("SANDBOXCTL_POLICY", &op)], &plan));
    assert_eq!(by, "policy chosen by host:env:SANDBOXCTL_POLICY");
    assert!(
        chain.contains("builtin:kvm.toml") && chain.contains("op.toml"),
        "{chain}"
    );
    // The global flag wins, before the subcommand as engines put it, or after.
    let mut before = vec!["--policy", "network-host"];
    before.extend(plan);
    let (by, chain) = chosen(&run_env(&dir, &[("SANDBOXCTL_POLICY", "untrusted")], &before));
    assert_eq!(by, "policy chosen by cli:--policy");
    assert!(
        chain.contains("network-host") && !chain.contains("untrusted"),
        "{chain}"
    );
    let (by, _) = chosen(&run_env(
        &dir,
        &[("SANDBOXCTL_POLICY", "untrusted")],
        &["plan", "--host", &h, "--policy", "kvm", "--", "/bin/true"],
    ));
    assert_eq!(by, "policy chosen by cli:--policy");
    // Neither: the host file when this machine has one, else the default.
    let (by, _) = chosen(&run_env(&dir, &[("SANDBOXCTL_POLICY", "")], &plan));
    if Path::new("/etc/sandboxctl/policy.toml").exists() {
        assert_eq!(by, "policy chosen by host:/etc/sandboxctl/policy.toml");
    } else {
        assert_eq!(by, "policy chosen by default");
    }
    // A bad name in the environment is the operator's error, said as such.
    let o = run_env(&dir, &[("SANDBOXCTL_POLICY", "contaner")], &plan);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("container"),
        "suggests the closest built-in: {}",
        stderr(&o)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn runtime_global_flags_log_errors_as_runc_does_and_refuse_systemd_cgroup() {
    let dir = tempdir("rtflags");
    let log = dir.join("log.json");
    let l = log.display().to_string();
    // An error (unknown sandbox) goes to --log as one runc JSON line, and to stderr.
    let o = run_env(
        &dir,
        &[],
        &[
            "--root",
            dir.to_str().unwrap(),
            "--log",
            &l,
            "--log-format=json",
            "state",
            "nosuch",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("nosuch"), "{}", stderr(&o));
    let text = std::fs::read_to_string(&log).unwrap();
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(v["level"], "error");
    assert!(v["msg"].as_str().unwrap().contains("nosuch"), "{text}");
    assert!(v["time"].as_str().unwrap().ends_with('Z'), "{text}");
    // A refusal is one line that names the spec field and the policy line, as
    // podman shows its user the log's last error.
    let spec = root().join("tests/golden/cases/bad-container-privileged/spec.json");
    let o = run_env(
        &dir,
        &[],
        &[
            "--log",
            &l,
            "--log-format",
            "json",
            "plan",
            "--policy",
            "container",
            "--spec",
            spec.to_str().unwrap(),
            "--host",
            &host(),
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    let last = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_string();
    let v: serde_json::Value = serde_json::from_str(&last).unwrap();
    let msg = v["msg"].as_str().unwrap();
    assert!(
        msg.contains("spec.json:25:9: the spec asks for capability CAP_NET_ADMIN")
            && msg.contains("builtin:container.toml:"),
        "{msg}"
    );
    // --systemd-cgroup: refused before anything runs, saying what to configure.
    let o = run_env(
        &dir,
        &[],
        &["--systemd-cgroup", "--log", &l, "--log-format", "text", "features"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    assert!(stderr(&o).contains("cgroupfs"), "{}", stderr(&o));
    let last = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_string();
    assert!(
        last.starts_with("time=\"") && last.contains(" level=error msg=\"--systemd-cgroup"),
        "{last}"
    );
    // --debug adds a debug line; success adds no error.
    let before = std::fs::read_to_string(&log).unwrap().lines().count();
    let o = run_env(&dir, &[], &["--debug", "--log", &l, "--log-format=json", "features"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(lines.len(), before + 1, "{lines:?}");
    assert!(lines.last().unwrap().contains("\"level\":\"debug\""));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A plan with OCI hooks: `apply` (and its dry run) refuses it and `doctor`
/// names the same need, with the hook's spec path (issue 11: doctor and
/// apply agree); `plan` compiles it.
#[test]
fn apply_and_doctor_agree_that_hooks_need_create() {
    let dir = tempdir("hooks");
    let h = host();
    let policy = root().join("tests/golden/cases/hooks-allowed/hooks.toml");
    let spec = root().join("tests/golden/inputs/podman-hooks.json");
    let (p, s) = (policy.display().to_string(), spec.display().to_string());
    let common = [
        "--policy",
        &p,
        "--spec",
        &s,
        "--target-bundle",
        "/srv/golden/inputs",
        "--host",
        &h,
    ];
    let o = run(&dir, &[&["plan"][..], &common].concat());
    assert!(o.status.success(), "plan: {}", stderr(&o));
    let need = "OCI hook(s) run at create, start and delete, which a foreground apply does not have";
    for args in [vec!["apply"], vec!["apply", "--dry-run"]] {
        let o = run(&dir, &[&args[..], &common].concat());
        let e = stderr(&o);
        assert_ne!(o.status.code(), Some(0), "{args:?}: {e}");
        assert!(
            e.contains(need) && e.contains("spec:hooks.prestart[0]"),
            "{args:?}: {e}"
        );
    }
    let o = run(&dir, &[&["doctor"][..], &common].concat());
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "doctor: {out}{}", stderr(&o));
    assert!(
        out.contains(need) && out.contains("spec:hooks.prestart[0]"),
        "doctor: {out}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
