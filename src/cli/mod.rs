//! The command line: clap definitions (raw arguments) and one function per
//! subcommand that resolves them and calls the library. Errors become miette
//! diagnostics here, at the edge; bad input exits 2.

mod args;
mod create;
pub mod learn;
mod lifecycle;
mod review;
mod run;
mod runtime_log;
mod sandbox;
mod start;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

pub use args::{CheckFormat, Cli, Command, DiffFormat, ListFormat, PlanInputs, PsFormat, StacksFormat};
pub use start::{c_args, process_start, started, supervisor_handover};

use crate::diag::{render_plain, SourceDiag};
use crate::host::HostFacts;
use crate::plan::render::{self, Format};
use crate::plan::{compile, CompileOptions, Compiled, LaunchPlan};
use crate::policy::{self, Policy, PolicyRef};
use crate::spec::{self, SpecInput};
use crate::vocab::Origin;

/// Exit status for bad input.
pub const EXIT_BAD_INPUT: i32 = 2;

/// How much compile says on stderr about its warnings (`--quiet`, default,
/// `--verbose`). The plan itself lists every clamp whatever this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verbosity {
    /// Nothing.
    Quiet,
    /// One line per warning: what happened and where it was asked and capped.
    #[default]
    Lines,
    /// Each warning as a full diagnostic with the policy and spec lines.
    Full,
}

impl Verbosity {
    /// From the global flags (clap makes them exclusive).
    pub fn from_flags(verbose: bool, quiet: bool) -> Self {
        match (verbose, quiet) {
            (true, _) => Verbosity::Full,
            (_, true) => Verbosity::Quiet,
            _ => Verbosity::Lines,
        }
    }
}

/// The verbosity of this process, set once by [`run`] from the global flags
/// (one value for the whole command, read where warnings are printed).
static VERBOSITY: std::sync::OnceLock<Verbosity> = std::sync::OnceLock::new();

fn verbosity() -> Verbosity {
    VERBOSITY.get().copied().unwrap_or_default()
}

/// A failure at the edge: a diagnostic and the exit status it maps to.
#[derive(Debug)]
pub struct Failure {
    /// What to print.
    pub diag: Box<SourceDiag>,
    /// Exit status.
    pub code: i32,
}

impl Failure {
    /// Bad input (exit 2).
    pub fn input(diag: SourceDiag) -> Self {
        Failure {
            diag: Box::new(diag),
            code: EXIT_BAD_INPUT,
        }
    }

    /// A failure that is not the input's fault (exit 1).
    pub fn other(message: String) -> Self {
        Failure {
            diag: Box::new(SourceDiag::plain(message, None)),
            code: 1,
        }
    }
}

/// Prints a diagnostic to stderr: plain when stderr is not a terminal (as
/// golden files hold it), coloured otherwise.
pub fn eprint_diag(d: &dyn miette::Diagnostic) {
    let text = if std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none() {
        let mut s = String::new();
        let _ = miette::GraphicalReportHandler::new().render_report(&mut s, d);
        s
    } else {
        render_plain(d)
    };
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    if !text.ends_with('\n') {
        let _ = err.write_all(b"\n");
    }
}

/// Runs a parsed command line; returns the exit status.
///
/// Each subcommand's function is kept out of line (`#[inline(never)]`):
/// inlined here, the locals of all of them (plans, specs, host facts) would
/// share this one frame, tens of KiB of stack that every launch faults in.
pub fn run(cli: Cli) -> i32 {
    let _ = VERBOSITY.set(Verbosity::from_flags(cli.verbose, cli.quiet));
    let _ = OPERATOR_CHOICE.set(operator_choice(&cli.policy));
    let state_root = long_lived_root(&cli);
    let flags = cli.runtime.clone();
    if flags.debug {
        runtime_log::write(
            &flags,
            runtime_log::Level::Debug,
            &format!("command: {:?}", cli.command),
        );
    }
    let result = runtime_log::check(&flags).and_then(|()| match cli.command {
        Command::Plan { inputs, format, output } => cmd_plan(&inputs, format, output.as_deref()),
        Command::Validate { policies } => cmd_validate(&policies),
        Command::Schema { plan } => cmd_schema(plan),
        Command::Host => cmd_host(),
        Command::Apply {
            inputs,
            plan_file,
            expect_hash,
            dry_run,
            timings,
            id,
        } => run::apply(
            &inputs,
            plan_file.as_deref(),
            expect_hash.as_deref(),
            run::Launch {
                dry_run,
                timings,
                id: id.as_deref(),
                root: cli.root.as_deref(),
            },
        ),
        Command::Learn { inputs, output } => learn::learn(&inputs, output.as_deref(), cli.root.as_deref()),
        Command::Gc { dry_run } => run::gc(cli.root.as_deref(), dry_run),
        Command::Doctor { inputs, plan_file } => run::doctor(&inputs, plan_file.as_deref(), cli.root.as_deref()),
        Command::Diff {
            old,
            new,
            format,
            inputs,
        } => review::diff(&old, new.as_deref(), format, &inputs),
        Command::Check { dir, update, format } => review::check(&dir, update, format),
        Command::State { id, plan, format } => sandbox::state(&state_root, &id, plan.then_some(format)),
        Command::List { format } => sandbox::list(&state_root, format),
        Command::Features => sandbox::features(),
        Command::Kill {
            all,
            pid,
            foreground,
            id,
            signal,
        } => lifecycle::kill(
            &state_root,
            &id,
            signal.as_deref(),
            lifecycle::KillTarget::from_flags(all, pid, foreground),
        ),
        Command::Wait { id, pid } => lifecycle::wait(&state_root, &id, pid),
        Command::Ps { format, id } => lifecycle::ps(&state_root, &id, format),
        Command::Events { stats, interval, id } => lifecycle::events(&state_root, &id, stats, &interval),
        Command::Pause { id } => lifecycle::pause(&state_root, &id),
        Command::Resume { id } => lifecycle::resume(&state_root, &id),
        Command::Update { request, id } => lifecycle::update(&state_root, &id, &request),
        Command::Stacks { format, id } => lifecycle::stacks(&state_root, &id, format),
        Command::Checkpoint {
            image_path,
            leave_running,
            id,
        } => lifecycle::checkpoint(&state_root, &id, &image_path, leave_running),
        Command::Restore { image_path, id } => lifecycle::restore(&state_root, &id, &image_path),
        Command::Delete { force, id } => lifecycle::delete(&state_root, &id, force),
        Command::Create {
            inputs,
            pid_file,
            dry_run,
            sandbox,
            id,
        } => create::create(
            &state_root,
            &inputs,
            &create::CreateArgs {
                id: &id,
                pid_file: pid_file.as_deref(),
                dry_run,
                sandbox: sandbox.as_deref(),
            },
        ),
        Command::Start { id } => create::start(&state_root, &id),
        Command::Run {
            inputs,
            pid_file,
            detach,
            id,
        } => create::run(
            &state_root,
            &inputs,
            &create::CreateArgs {
                id: &id,
                pid_file: pid_file.as_deref(),
                dry_run: false,
                sandbox: None,
            },
            detach,
        ),
        Command::Exec {
            process,
            tty,
            detach,
            pid_file,
            console_socket,
            cwd,
            env,
            user,
            id,
            command,
        } => create::exec(
            &state_root,
            &create::ExecArgs {
                id: &id,
                process: process.as_deref(),
                tty,
                detach,
                pid_file: pid_file.as_deref(),
                console_socket: console_socket.as_deref(),
                cwd: cwd.as_deref(),
                env: &env,
                user: user.as_deref(),
                command: &command,
            },
        ),
    });
    match result {
        Ok(code) => code,
        Err(f) => {
            runtime_log::write(&flags, runtime_log::Level::Error, &f.diag.one_line());
            eprint_diag(f.diag.as_ref());
            f.code
        }
    }
}

/// Everything a compile needs, loaded.
pub struct Loaded {
    /// The resolved policy.
    pub policy: Policy,
    /// The spec.
    pub spec: SpecInput,
    /// Host facts.
    pub host: HostFacts,
    /// Where the policy choice came from (flag, environment, host file, default, annotation).
    pub policy_from: Origin,
}

/// Loads policy, spec and host facts named by the inputs.
/// Relative paths are read from `base` (the current directory for the CLI, a
/// case directory for `check`) and keep the names they were given.
pub fn load_inputs(inputs: &PlanInputs, base: &Path) -> Result<Loaded, Failure> {
    let abs_base = absolute_base(base)?;
    let mut spec = match (&inputs.bundle, &inputs.spec) {
        (Some(b), _) => spec::load_bundle(b, &abs_base),
        (None, Some(s)) => spec::load_file(s, &abs_base),
        (None, None) => Ok(spec::builtin(&inputs.command)),
    }
    .map_err(|e| Failure::input(e.to_diag()))?;
    // The bundle's directory as this machine resolves it: apply enters the
    // root without following any symbolic link (a rootfs swapped for a link
    // after the plan is refused), so the plan names the real directories.
    if let Some(real) = spec.dir.as_deref().and_then(|d| std::fs::canonicalize(d).ok()) {
        // The root too, when it is a link in the bundle (a rootfs that is a
        // symbolic link to the image's tree is common): the plan names the
        // tree itself, resolved here, on the machine that will run it.
        if inputs.target_bundle.is_none() {
            if let Some(mut root) = spec.spec.root().clone() {
                let path = real.join(root.path());
                let is_link = std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink());
                if let (true, Ok(resolved)) = (is_link, std::fs::canonicalize(&path)) {
                    root.set_path(resolved);
                    spec.spec.set_root(Some(root));
                }
            }
        }
        spec.dir = Some(real);
    }
    if let Some(t) = &inputs.target_bundle {
        if spec.builtin {
            return Err(Failure::input(SourceDiag::plain(
                "--target-bundle names where a bundle will be, but no bundle or spec is given",
                Some("add --bundle DIR or --spec FILE, or drop --target-bundle".into()),
            )));
        }
        if !t.is_absolute() {
            return Err(Failure::input(SourceDiag::plain(
                format!(
                    "--target-bundle {}: the bundle's place on the machine the plan is for must be an absolute path",
                    t.display()
                ),
                Some("write the full path from /, e.g. --target-bundle /srv/sandbox/web".into()),
            )));
        }
        spec.dir = Some(policy::normalize(t));
    }
    if !spec.builtin && !inputs.command.is_empty() {
        return Err(Failure::input(SourceDiag::plain(
            "a command after -- is only used with the embedded default spec",
            Some(
                "drop --bundle/--spec to run the command with the embedded default, or set process.args in the spec"
                    .into(),
            ),
        )));
    }
    if let Some(p) = &inputs.process {
        let (_, _, process) = spec::load_process(p, base).map_err(|e| Failure::input(e.to_diag()))?;
        spec.spec.set_process(Some(process));
    }
    let host_path = inputs.host.as_deref().map(|h| {
        if base == Path::new(".") {
            h.to_path_buf()
        } else {
            base.join(h)
        }
    });
    let host = load_host(host_path.as_deref())?;
    let (policy, policy_from) = load_policy(inputs, base, &spec)?;
    // A pod member joins the other sandbox's namespaces as the policy (the
    // one the annotation picked, if any) allows.
    if let Some(pid) = inputs.join_sandbox {
        spec::join_namespaces_of(&mut spec.spec, pid, &policy.ns_allow_join.value);
    }
    Ok(Loaded {
        policy,
        spec,
        host,
        policy_from,
    })
}

/// The process's policy choice (global `--policy`, SANDBOXCTL_POLICY,
/// /etc/sandboxctl/policy.toml, default), made once by [`run`].
static OPERATOR_CHOICE: std::sync::OnceLock<policy::select::Choice> = std::sync::OnceLock::new();

/// The operator's policy choice for this process.
pub(crate) fn current_choice() -> policy::select::Choice {
    OPERATOR_CHOICE.get().cloned().unwrap_or_else(|| operator_choice(&[]))
}

/// Reads what the operator's choice depends on (the flag, the environment, the host file).
fn operator_choice(flag: &[String]) -> policy::select::Choice {
    let env = std::env::var(policy::select::ENV).ok();
    let etc = Path::new(policy::select::ETC_POLICY).exists();
    policy::select::choose(flag, env.as_deref(), etc)
}

/// Loads the operator's policy, then the one the spec's annotation picks
/// among the operator's selectable ones, if any; returns it and where the
/// choice came from.
fn load_policy(inputs: &PlanInputs, base: &Path, spec: &SpecInput) -> Result<(Policy, Origin), Failure> {
    let choice = match &inputs.policy {
        Some(c) => c.clone(),
        None => OPERATOR_CHOICE.get().cloned().unwrap_or_else(|| operator_choice(&[])),
    };
    let operator = policy::load(&choice.refs, base).map_err(|e| Failure::input(e.to_diag()))?;
    match policy::select::by_annotation(&operator, spec.spec.annotations().as_ref()) {
        Ok(None) => Ok((operator, choice.from)),
        Ok(Some(picked)) => {
            let p = policy::load(&picked.refs, base).map_err(|e| Failure::input(e.to_diag()))?;
            Ok((p, picked.from))
        }
        Err(e) => Err(Failure::input(e.to_diag(&operator, spec))),
    }
}

/// `base` as an absolute, normalised path (the current directory joined in
/// when it is relative): the one place the command line reads where it runs,
/// so that every host path in a plan is absolute.
fn absolute_base(base: &Path) -> Result<std::path::PathBuf, Failure> {
    if base.is_absolute() {
        return Ok(policy::normalize(base));
    }
    let cwd = std::env::current_dir()
        .map_err(|e| Failure::other(format!("reading the current directory (to make paths absolute): {e}")))?;
    Ok(policy::normalize(&cwd.join(base)))
}

/// Loads host facts from a file, or detects them.
pub fn load_host(path: Option<&Path>) -> Result<HostFacts, Failure> {
    match path {
        Some(p) => load_host_file(p),
        None => crate::exec::detect::detect().map_err(|e| Failure::other(format!("detecting host facts: {e}"))),
    }
}

/// Loads host facts from a file (out of line: its TOML parse's frame stays
/// off the stack of a launch that detects them).
#[inline(never)]
fn load_host_file(p: &Path) -> Result<HostFacts, Failure> {
    let text = crate::vocab::read_input(p).map_err(|e| {
        Failure::input(SourceDiag::plain(
            format!("reading host facts {}: {e}", p.display()),
            Some("`sandboxctl host > host.toml` writes this machine's facts".into()),
        ))
    })?;
    toml::from_str(&text).map_err(|e| {
        Failure::input(SourceDiag::new(
            format!("parsing host facts: {}", e.message().trim()),
            Some(crate::diag::Snippet {
                name: p.display().to_string(),
                text: text.clone(),
                span: e.span(),
                label: "here".into(),
            }),
            None,
            vec![],
        ))
    })
}

/// Compiles the inputs, printing warnings to stderr as the global
/// `--quiet`/`--verbose` flags say.
pub fn compile_inputs(inputs: &PlanInputs, base: &Path) -> Result<(Compiled, Loaded), Failure> {
    let (compiled, loaded) = compile_quietly(inputs, base)?;
    match verbosity() {
        Verbosity::Quiet => {}
        Verbosity::Lines => {
            let mut err = std::io::stderr().lock();
            for w in &compiled.warnings {
                let _ = writeln!(err, "warning: {}", w.line(&loaded.policy));
            }
        }
        Verbosity::Full => {
            for w in &compiled.warnings {
                eprint_diag(&w.to_diag(&loaded.policy, &loaded.spec));
            }
        }
    }
    Ok((compiled, loaded))
}

/// Compiles the inputs; warnings are returned, not printed.
pub fn compile_quietly(inputs: &PlanInputs, base: &Path) -> Result<(Compiled, Loaded), Failure> {
    let loaded = load_inputs(inputs, base)?;
    let bundle_from = match (&inputs.target_bundle, &inputs.bundle, &inputs.spec) {
        (Some(_), _, _) => Some(Origin::Cli("--target-bundle".into())),
        (None, Some(_), _) => Some(Origin::Cli("--bundle".into())),
        (None, None, Some(_)) => Some(Origin::Cli("--spec".into())),
        (None, None, None) => None,
    };
    let opts = CompileOptions {
        // A host path: absolute from where it was given, as every path in a plan.
        console_socket: match &inputs.console_socket {
            Some(c) => Some(policy::normalize(&absolute_base(base)?.join(c))),
            None => None,
        },
        bundle_from,
        policy_from: Some(loaded.policy_from.clone()),
        io_fds: inputs.io_fd.clone(),
        host_name: inputs
            .host
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "detected".into()),
    };
    let compiled = compile(&loaded.policy, &loaded.spec, &loaded.host, &opts)
        .map_err(|e| Failure::input(e.to_diag(&loaded.policy, &loaded.spec)))?;
    Ok((compiled, loaded))
}

/// Test support: the plan built-in `policy` makes of the embedded default
/// spec running `true`, on the golden tests' hybrid root host.
#[cfg(test)]
pub(crate) fn compile_builtin(policy: &str) -> LaunchPlan {
    let args: Vec<String> = [
        "--policy",
        policy,
        "--host",
        "tests/golden/hosts/hybrid-root.toml",
        "--",
        "true",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    compile_args_in(Path::new(env!("CARGO_MANIFEST_DIR")), &args).unwrap()
}

/// Compiles a case's arguments (as `sandboxctl check` and the golden tests do):
/// `args` are `plan` arguments, relative paths resolved from `dir`.
pub fn compile_args_in(dir: &Path, args: &[String]) -> Result<LaunchPlan, String> {
    use clap::Parser;
    let argv = std::iter::once("sandboxctl".to_string())
        .chain(std::iter::once("plan".to_string()))
        .chain(args.iter().cloned());
    let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
    let Command::Plan { mut inputs, .. } = cli.command else {
        unreachable!("parsed as plan")
    };
    // A case's own --policy, or the default: never this host's choice.
    inputs.policy = Some(policy::select::choose(&cli.policy, None, false));
    let (compiled, _) = compile_quietly(&inputs, dir).map_err(|f| render_plain(f.diag.as_ref()))?;
    Ok(compiled.plan)
}

#[inline(never)] // see `run`
fn cmd_plan(inputs: &PlanInputs, format: Option<Format>, output: Option<&Path>) -> Result<i32, Failure> {
    let format = format.unwrap_or_else(|| output.map_or(Format::Text, Format::for_path));
    let (compiled, _) = compile_inputs(inputs, Path::new("."))?;
    let text = render::render(&compiled.plan, format);
    let hash = render::hash(&compiled.plan);
    match output {
        Some(path) => {
            std::fs::write(path, text)
                .map_err(|e| Failure::other(format!("writing plan to {}: {e}", path.display())))?;
            if verbosity() != Verbosity::Quiet {
                eprintln!("plan {hash} written to {}", path.display());
            }
        }
        None => {
            print!("{text}");
            if format == Format::Json && verbosity() != Verbosity::Quiet {
                eprintln!("plan {hash}");
            }
        }
    }
    Ok(0)
}

#[inline(never)] // see `run`
fn cmd_validate(policies: &[String]) -> Result<i32, Failure> {
    for p in policies {
        let policy = policy::load(&[PolicyRef::parse(p)], Path::new(".")).map_err(|e| Failure::input(e.to_diag()))?;
        let about = policy
            .description
            .as_ref()
            .map(|d| format!(": {}", d.value))
            .unwrap_or_default();
        println!("{p}: ok ({}){about}", policy.chain().join(" > "));
    }
    Ok(0)
}

#[inline(never)] // see `run`
fn cmd_schema(plan: bool) -> Result<i32, Failure> {
    println!(
        "{}",
        if plan {
            crate::schema::plan_schema()
        } else {
            crate::schema::policy_schema()
        }
    );
    Ok(0)
}

#[inline(never)] // see `run`
fn cmd_host() -> Result<i32, Failure> {
    let facts = load_host(None)?;
    print!("{}", toml::to_string(&facts).expect("host facts always serialise"));
    Ok(0)
}

/// `--root`, or the default state directory: where long-lived sandboxes keep
/// one directory per id (beside apply's `<id>.state` files).
fn long_lived_root(cli: &Cli) -> PathBuf {
    cli.root
        .clone()
        .unwrap_or_else(|| PathBuf::from(crate::exec::state::DEFAULT_ROOT))
}
