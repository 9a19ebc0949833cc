//! Raw command-line arguments (clap derive). No validation beyond shapes;
//! resolution happens in the subcommand functions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::plan::render::Format;

/// sandboxctl: a declarative Linux sandbox launcher.
#[derive(Debug, Parser)]
#[command(name = "sandboxctl", version, about, long_about = None)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
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
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
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
}

/// What a plan is compiled from.
#[derive(Debug, Clone, Args)]
pub struct PlanInputs {
    /// Policy file or built-in name (default, untrusted, network-host, kvm); repeat to layer, later wins. Default: the built-in default.
    #[arg(long = "policy", short = 'p')]
    pub policy: Vec<String>,
    /// OCI bundle directory (config.json + rootfs).
    #[arg(long, conflicts_with = "spec")]
    pub bundle: Option<PathBuf>,
    /// OCI spec file (relative paths in it resolve from its directory).
    #[arg(long)]
    pub spec: Option<PathBuf>,
    /// A process.json that replaces the spec's process (as `runc exec --process`).
    #[arg(long)]
    pub process: Option<PathBuf>,
    /// Host facts file (from `sandboxctl host`); default: detect this machine.
    #[arg(long)]
    pub host: Option<PathBuf>,
    /// Sandbox id (default: derived from the inputs).
    #[arg(long)]
    pub id: Option<String>,
    /// Unix socket to send a pty master to; the pty becomes the sandbox's stdio and controlling tty.
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// A caller fd donated to the supervisor as an I/O fd (repeatable).
    #[arg(long = "io-fd")]
    pub io_fd: Vec<i32>,
    /// With the embedded default spec: the command to run.
    #[arg(last = true)]
    pub command: Vec<String>,
}
