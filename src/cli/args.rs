//! Raw command-line arguments (clap derive). No validation beyond shapes;
//! resolution happens in the subcommand functions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::plan::render::Format;

/// sandboxctl: a declarative Linux sandbox launcher.
#[derive(Debug, Parser)]
#[command(name = "sandboxctl", version, about, long_about = None)]
pub struct Cli {
    /// Print each warning (clamps, test-only modes) as a full diagnostic with the policy and spec
    /// lines involved, instead of one line each.
    #[arg(long, short = 'v', global = true, conflicts_with = "quiet")]
    pub verbose: bool,
    /// Print no warnings (the plan still lists every clamp).
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
    /// Where sandboxes' state files live (default /run/sandboxctl).
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// The operator's policy (file or built-in name; repeat to layer, later wins). First match
    /// wins: this flag, then SANDBOXCTL_POLICY, then /etc/sandboxctl/policy.toml, then the
    /// built-in default. See docs/policy.md, "Which policy applies".
    #[arg(long = "policy", short = 'p', global = true, value_name = "POLICY")]
    pub policy: Vec<String>,
    /// The engine-facing flags runc has (podman and containerd pass them before the subcommand).
    #[command(flatten)]
    pub runtime: RuntimeFlags,
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// runc's global flags, as container engines pass them (see docs/podman.md).
#[derive(Debug, Clone, Default, Args)]
pub struct RuntimeFlags {
    /// Also write errors (and, with --debug, debug lines) to this file, as runc does.
    #[arg(long, global = true, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// The format of --log: `text` (logfmt lines) or `json` (runc's `{"level","msg","time"}` lines).
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log what each command does, at debug level, to --log (stderr without it).
    #[arg(long, global = true)]
    pub debug: bool,
    /// Ask for cgroups through systemd. Not supported: refused with an explanation.
    #[arg(long, global = true)]
    pub systemd_cgroup: bool,
}

/// Formats of `--log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// `time="..." level=error msg="..."`, as runc's text log.
    #[default]
    Text,
    /// `{"level":"error","msg":"...","time":"..."}`, as runc's JSON log.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process
pub enum Command {
    /// Compile policy + spec + host facts into a launch plan and print it. Changes nothing on the host.
    Plan {
        /// The inputs.
        #[command(flatten)]
        inputs: PlanInputs,
        /// Output format. Default: from the extension of --output (`.toml`, `.json`, anything
        /// else text), text on stdout.
        #[arg(long, value_enum)]
        format: Option<Format>,
        /// Write the plan to this file instead of stdout.
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
    },
    /// Check policy files (and what they extend); exit 2 with a diagnostic on the first bad one.
    Validate {
        /// Policy files or built-in names.
        #[arg(required = true)]
        policies: Vec<String>,
    },
    /// Print the JSON Schema of the policy format (or, with --plan, of the plan format).
    Schema {
        /// The plan's schema instead of the policy's.
        #[arg(long)]
        plan: bool,
    },
    /// Detect this machine's host facts and print them as TOML.
    Host,
    /// Run a workload in a sandbox exactly as its plan says (compiled now, or a reviewed plan file),
    /// in the foreground; exits with the workload's status (128+N if killed by signal N), 125 if
    /// sandboxctl itself failed (after undoing everything it did), 2 on bad input.
    Apply {
        /// The inputs (ignored with --plan, except --host).
        #[command(flatten)]
        inputs: PlanInputs,
        /// Run this plan file (TOML or JSON, as printed by `sandboxctl plan`) instead of compiling.
        #[arg(long = "plan")]
        plan_file: Option<PathBuf>,
        /// Refuse to run unless the plan's content hash is this (`sha256:…`).
        #[arg(long)]
        expect_hash: Option<String>,
        /// Print the exact ordered operations apply would perform; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print to stderr when each step begins: milliseconds since sandboxctl started, the process, the step.
        #[arg(long, conflicts_with = "dry_run")]
        timings: bool,
        /// Sandbox id (names its state file and cgroup; replaces {id} in the plan's paths). Default: sbx- and 16 random hex digits, unique per launch.
        #[arg(long)]
        id: Option<String>,
    },
    /// Run a workload under the ptrace platform and write a policy fragment (TOML, commented) whose
    /// seccomp filter allows exactly the system calls it made, each with how often it made it. Layer
    /// the fragment last (`--policy BASE --policy FRAGMENT`); `sandboxctl diff` shows what it narrows.
    /// Exits with the workload's status.
    Learn {
        /// The inputs, as `apply` takes them (the workload after `--` with the embedded spec).
        #[command(flatten)]
        inputs: PlanInputs,
        /// Write the fragment to this file instead of stdout.
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
    },
    /// Remove what dead launches left under --root (state files, their cgroups and any process still in them).
    /// A launch is dead when no launcher holds its state file's lock; a live sandbox is never touched.
    Gc {
        /// Only say what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
    /// Run only the preflight: compare the plan's needs with this host and name every unmet one.
    Doctor {
        /// The inputs (ignored with --plan, except --host).
        #[command(flatten)]
        inputs: PlanInputs,
        /// Check this plan file instead of compiling.
        #[arg(long = "plan")]
        plan_file: Option<PathBuf>,
    },
    /// Compare two plans field by field and classify each change: widens, narrows, neutral.
    /// Exit 0 no change, 1 changed but nothing widened, 3 something widened, 2 bad input.
    /// With only OLD, the new side is compiled now from the command-line options below (--policy,
    /// --bundle or --spec, --host, ...), as `sandboxctl plan` compiles them.
    Diff {
        /// The old plan file.
        old: PathBuf,
        /// The new plan file (default: compile the plan the command-line options below describe).
        new: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: DiffFormat,
        /// The options the new side is compiled from when NEW is not given.
        #[command(flatten)]
        inputs: PlanInputs,
    },
    /// Print a sandbox's OCI state (ociVersion, id, status, pid, bundle, annotations) from its
    /// record under --root; a sandbox whose supervisor is gone is `stopped`. Exit 1 for an unknown id.
    State {
        /// The sandbox id.
        id: String,
        /// Print the plan the sandbox was created from instead.
        #[arg(long)]
        plan: bool,
        /// The plan's format (with --plan).
        #[arg(long, value_enum, default_value = "text", requires = "plan")]
        format: Format,
    },
    /// List every sandbox under --root with its status (runc's columns).
    List {
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: ListFormat,
    },
    /// Send a signal to a sandbox's workload (default TERM; a name or a number); with --all to
    /// every process of the sandbox; with --pid to one process (by its pid inside the sandbox).
    Kill {
        /// Every process of the sandbox, not just the workload.
        #[arg(long, short = 'a', conflicts_with = "pid")]
        all: bool,
        /// One process, by its pid inside the sandbox.
        #[arg(long)]
        pid: Option<i32>,
        /// With --pid: the foreground process group of that process's terminal.
        #[arg(long, requires = "pid")]
        foreground: bool,
        /// The sandbox id.
        id: String,
        /// The signal: TERM, SIGTERM, 15, ...
        signal: Option<String>,
    },
    /// Wait until the workload (or process --pid N) ends; print its status and exit with it
    /// (the code, or 128+N for signal N).
    Wait {
        /// The sandbox id.
        id: String,
        /// A process started by `exec`, by its pid inside the sandbox.
        #[arg(long)]
        pid: Option<i32>,
    },
    /// List the sandbox's processes (pid inside the sandbox and on the host).
    Ps {
        /// Output format: `table`, `json` (runc's: an array of host pids, what containerd
        /// reads), `detail` (every process's pid in the sandbox, host pid, parent, uid, state,
        /// argv, as JSON).
        #[arg(long, value_enum, default_value = "table")]
        format: PsFormat,
        /// The sandbox id.
        id: String,
    },
    /// Print runc's events (JSON lines: `stats` every --interval, `oom` when an OOM kill
    /// happens) until the sandbox stops; --stats prints one sample and exits.
    Events {
        /// One stats sample, then exit.
        #[arg(long)]
        stats: bool,
        /// Time between samples (`5s`, `500ms`, `1m`).
        #[arg(long, default_value = "5s")]
        interval: String,
        /// The sandbox id.
        id: String,
    },
    /// Freeze every process of a running sandbox (its cgroup's freezer).
    Pause {
        /// The sandbox id.
        id: String,
    },
    /// Thaw a paused sandbox.
    Resume {
        /// The sandbox id.
        id: String,
    },
    /// Change a running sandbox's cgroup limits, cut to its policy's ceiling as at compile
    /// time; the stored plan records them. Fields not given stay as they are.
    Update {
        /// The limits asked for.
        #[command(flatten)]
        request: UpdateRequest,
        /// The sandbox id.
        id: String,
    },
    /// Every process's state, wait channel and kernel stack, and the supervisor's own state.
    Stacks {
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: StacksFormat,
        /// The sandbox id.
        id: String,
    },
    /// Checkpoint a running sandbox with CRIU (checked first with `criu check`).
    Checkpoint {
        /// Where the images go.
        #[arg(long, default_value = "checkpoint")]
        image_path: PathBuf,
        /// Keep the sandbox running afterwards.
        #[arg(long)]
        leave_running: bool,
        /// The sandbox id.
        id: String,
    },
    /// Restore a checkpoint into a created sandbox with CRIU (checked first with `criu check`).
    Restore {
        /// Where the images are.
        #[arg(long, default_value = "checkpoint")]
        image_path: PathBuf,
        /// The sandbox id.
        id: String,
    },
    /// Remove a stopped sandbox (its cgroups and state); a running one only with --force, which
    /// kills it first. With --force an unknown id is not an error.
    Delete {
        /// Kill a running or paused sandbox first; succeed when the id is gone already.
        #[arg(long, short = 'f')]
        force: bool,
        /// The sandbox id.
        id: String,
    },
    /// Create a long-lived sandbox: compile as apply does, set it up up to the workload's start, record
    /// it under --root (with the plan it got), and exit 0 once its supervisor answers on its control
    /// socket. The bundle defaults to the current directory when it holds config.json.
    Create {
        /// The sandbox id (1–128 of A–Z a–z 0–9 _ + - ., not starting with '.').
        id: String,
        /// The inputs.
        #[command(flatten)]
        inputs: PlanInputs,
        /// Write the supervisor's host pid here (runc's --pid-file).
        #[arg(long)]
        pid_file: Option<PathBuf>,
        /// Print the ordered operations create (then start) would perform; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Another container in sandbox SANDBOX (a pod member): join its namespaces, those the policy
        /// allows joining (namespaces.allow_join); the rest are new.
        #[arg(long, value_name = "SANDBOX")]
        sandbox: Option<String>,
    },
    /// Start a created sandbox's workload.
    Start {
        /// The sandbox id.
        id: String,
    },
    /// Create and start a sandbox; without --detach wait for its workload in the foreground
    /// (forwarding INT, TERM, HUP), remove it, and exit with the workload's status.
    Run {
        /// The sandbox id.
        id: String,
        /// The inputs.
        #[command(flatten)]
        inputs: PlanInputs,
        /// Write the supervisor's host pid here.
        #[arg(long)]
        pid_file: Option<PathBuf>,
        /// Return once the workload started.
        #[arg(long, short = 'd')]
        detach: bool,
    },
    /// Run another process inside a running sandbox, under the sandbox's plan (its user, capability
    /// ceiling, no_new_privs, seccomp, rlimits); exits with the process's status unless --detach.
    Exec {
        /// An OCI process.json to run (instead of CMD).
        #[arg(long)]
        process: Option<PathBuf>,
        /// Give it a terminal.
        #[arg(long, short = 't')]
        tty: bool,
        /// Return once it started.
        #[arg(long, short = 'd')]
        detach: bool,
        /// Write its host pid here.
        #[arg(long)]
        pid_file: Option<PathBuf>,
        /// Send the terminal's pty master to this unix socket (with --tty).
        #[arg(long)]
        console_socket: Option<PathBuf>,
        /// Working directory inside the sandbox (default: the workload's).
        #[arg(long)]
        cwd: Option<PathBuf>,
        /// Set an environment variable (KEY=VALUE; repeatable) on top of the workload's.
        #[arg(long, short = 'e')]
        env: Vec<String>,
        /// UID[:GID] (default: the workload's).
        #[arg(long, short = 'u')]
        user: Option<String>,
        /// The sandbox id.
        id: String,
        /// The command and its arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Print the OCI runtime features document: what this build of sandboxctl supports.
    Features,
    /// Recompile every case under DIR (a `cmd` file and a committed `plan.toml` each) and fail when
    /// a plan differs; print the semantic diff. Exit 0 all equal, 1 some differ, 2 errors.
    Check {
        /// The tree of cases.
        dir: PathBuf,
        /// Rewrite the committed plans instead of failing.
        #[arg(long)]
        update: bool,
        /// Report format.
        #[arg(long, value_enum, default_value = "text")]
        format: CheckFormat,
    },
}

/// Formats of `diff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DiffFormat {
    /// Grouped, widenings first, for people.
    Text,
    /// For tools.
    Json,
    /// A pull-request comment.
    Markdown,
}

/// Formats of `ps`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PsFormat {
    /// Aligned columns, for people.
    Table,
    /// runc's: a JSON array of host pids.
    Json,
    /// Every process in detail, as JSON.
    Detail,
}

/// Formats of `list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ListFormat {
    /// Aligned columns, for people.
    Table,
    /// A JSON array, for tools.
    Json,
}

/// Formats of `stacks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StacksFormat {
    /// For people.
    Text,
    /// For tools.
    Json,
}

/// Formats of `check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CheckFormat {
    /// For people.
    Text,
    /// A pull-request comment.
    Markdown,
}

/// What a plan is compiled from.
#[derive(Debug, Clone, Args)]
pub struct PlanInputs {
    /// The operator's policy choice when the caller made it (golden cases, `check`: from their
    /// own `--policy` only, never the host's); None: the process's choice (global `--policy`,
    /// SANDBOXCTL_POLICY, /etc/sandboxctl/policy.toml, default), made once by [`crate::cli::run`].
    #[arg(skip)]
    pub policy: Option<crate::policy::select::Choice>,
    /// OCI bundle directory (config.json + rootfs).
    #[arg(long, conflicts_with = "spec")]
    pub bundle: Option<PathBuf>,
    /// OCI spec file (relative paths in it resolve from its directory).
    #[arg(long)]
    pub spec: Option<PathBuf>,
    /// Compile for another machine: the absolute path the bundle (the spec's directory) will have
    /// there. The spec's relative paths (root.path, bind sources) resolve from it instead of from
    /// where the bundle is here, and the plan's inputs say so. Without it they resolve from the
    /// bundle's absolute path here.
    #[arg(long, value_name = "DIR")]
    pub target_bundle: Option<PathBuf>,
    /// A process.json that replaces the spec's process (as `runc exec --process`); it brings
    /// its own args, so it cannot be combined with a command after `--`.
    #[arg(long, conflicts_with = "command")]
    pub process: Option<PathBuf>,
    /// Host facts file (from `sandboxctl host`); default: detect this machine.
    #[arg(long)]
    pub host: Option<PathBuf>,
    /// Unix socket to send a pty master to; the pty becomes the sandbox's stdio and controlling tty.
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// A caller fd donated to the supervisor as an I/O fd (repeatable).
    #[arg(long = "io-fd")]
    pub io_fd: Vec<i32>,
    /// With the embedded default spec: the command to run.
    #[arg(last = true)]
    pub command: Vec<String>,
    /// `create --sandbox`: the host pid of another sandbox's supervisor, whose
    /// namespaces this one joins where the policy allows joining.
    #[arg(skip)]
    pub join_sandbox: Option<i32>,
}

/// `update`'s request, as given on the command line.
#[derive(Debug, Default, clap::Args)]
pub struct UpdateRequest {
    /// A JSON file of OCI LinuxResources (`-` for stdin); the flags override it.
    #[arg(long, short = 'r', value_name = "FILE")]
    pub resources: Option<PathBuf>,
    /// Memory limit (bytes, or with k, m, g suffix).
    #[arg(long)]
    pub memory: Option<String>,
    /// Memory plus swap limit (bytes, or with k, m, g suffix; -1 unlimited).
    #[arg(long)]
    pub memory_swap: Option<String>,
    /// Maximum number of tasks.
    #[arg(long)]
    pub pids_limit: Option<i64>,
    /// CPU CFS quota in microseconds per period.
    #[arg(long)]
    pub cpu_quota: Option<i64>,
    /// CPU CFS period in microseconds.
    #[arg(long)]
    pub cpu_period: Option<u64>,
    /// CPU shares (relative weight).
    #[arg(long)]
    pub cpu_shares: Option<u64>,
}
