//! The command line: clap definitions (raw arguments) and one function per
//! subcommand that resolves them and calls the library. Errors become miette
//! diagnostics here, at the edge; bad input exits 2.

mod args;
mod review;
mod run;
mod start;

use std::io::{IsTerminal, Write};
use std::path::Path;

pub use args::{CheckFormat, Cli, Command, DiffFormat, PlanInputs};
pub use start::{c_args, process_start, started};

use crate::diag::{render_plain, SourceDiag};
use crate::host::HostFacts;
use crate::plan::render::{self, Format};
use crate::plan::{compile, CompileOptions, Compiled, LaunchPlan};
use crate::policy::{self, Policy, PolicyRef};
use crate::spec::{self, SpecInput};

/// Exit status for bad input.
pub const EXIT_BAD_INPUT: i32 = 2;

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
    let result = match cli.command {
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
        } => run::apply(&inputs, plan_file.as_deref(), expect_hash.as_deref(), dry_run, timings),
        Command::Doctor { inputs, plan_file } => run::doctor(&inputs, plan_file.as_deref()),
        Command::Diff {
            old,
            new,
            format,
            inputs,
        } => review::diff(&old, new.as_deref(), format, &inputs),
        Command::Check { dir, update, format } => review::check(&dir, update, format),
    };
    match result {
        Ok(code) => code,
        Err(f) => {
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
}

/// Loads policy, spec and host facts named by the inputs.
/// Relative paths are read from `base` (the current directory for the CLI, a
/// case directory for `check`) and keep the names they were given.
pub fn load_inputs(inputs: &PlanInputs, base: &Path) -> Result<Loaded, Failure> {
    let refs: Vec<PolicyRef> = inputs.policy.iter().map(|s| PolicyRef::parse(s)).collect();
    let policy = policy::load(&refs, base).map_err(|e| Failure::input(e.to_diag()))?;
    let mut spec = match (&inputs.bundle, &inputs.spec) {
        (Some(b), _) => spec::load_bundle(b, base),
        (None, Some(s)) => spec::load_file(s, base),
        (None, None) => Ok(spec::builtin(&inputs.command)),
    }
    .map_err(|e| Failure::input(e.to_diag()))?;
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
    Ok(Loaded { policy, spec, host })
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

/// Compiles the inputs, printing warnings to stderr.
pub fn compile_inputs(inputs: &PlanInputs, base: &Path) -> Result<(Compiled, Loaded), Failure> {
    let (compiled, loaded) = compile_quietly(inputs, base)?;
    for w in &compiled.warnings {
        eprint_diag(&w.to_diag(&loaded.policy, &loaded.spec));
    }
    Ok((compiled, loaded))
}

/// Compiles the inputs; warnings are returned, not printed.
pub fn compile_quietly(inputs: &PlanInputs, base: &Path) -> Result<(Compiled, Loaded), Failure> {
    let loaded = load_inputs(inputs, base)?;
    let opts = CompileOptions {
        id: inputs.id.clone(),
        console_socket: inputs.console_socket.clone(),
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

/// Compiles a case's arguments (as `sandboxctl check` and the golden tests do):
/// `args` are `plan` arguments, relative paths resolved from `dir`.
pub fn compile_args_in(dir: &Path, args: &[String]) -> Result<LaunchPlan, String> {
    use clap::Parser;
    let argv = std::iter::once("sandboxctl".to_string())
        .chain(std::iter::once("plan".to_string()))
        .chain(args.iter().cloned());
    let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
    let Command::Plan { inputs, .. } = cli.command else {
        unreachable!("parsed as plan")
    };
    let (compiled, _) = compile_quietly(&inputs, dir).map_err(|f| render_plain(f.diag.as_ref()))?;
    Ok(compiled.plan)
}

#[inline(never)] // see `run`
fn cmd_plan(inputs: &PlanInputs, format: Format, output: Option<&Path>) -> Result<i32, Failure> {
    let (compiled, _) = compile_inputs(inputs, Path::new("."))?;
    let text = render::render(&compiled.plan, format);
    let hash = render::hash(&compiled.plan);
    match output {
        Some(path) => {
            std::fs::write(path, text)
                .map_err(|e| Failure::other(format!("writing plan to {}: {e}", path.display())))?;
            eprintln!("plan {hash} written to {}", path.display());
        }
        None => {
            print!("{text}");
            if format == Format::Json {
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
