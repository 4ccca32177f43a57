//! `mailfold fleet`: many accounts from one manifest, as jobs for an existing scheduler.
//!
//! - [`manifest`]: the file (TOML, with an optional CSV of accounts) and its checks, which
//!   are the personal configuration's own.
//! - [`shard`]: `--shard I/N` and the per-server connection budget.
//! - [`run`]: `fleet run`, the accounts of a shard synced in this process.
//! - [`emit`]: `fleet emit slurm|kubernetes`, the job definitions.
//!
//! Storage, sizing and the measured figures are in docs/fleet.md.

pub mod emit;
pub mod manifest;
pub mod run;
pub mod shard;

use std::path::{Path, PathBuf};

use clap::{Subcommand, ValueEnum};

use crate::exit;
use manifest::Manifest;
use shard::Shard;

/// `mailfold fleet …`
#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Sync the manifest's accounts (or one shard of them) here, several at once.
    ///
    /// Prints one JSON object per account as it ends, then a summary object (docs/fleet.md).
    /// Transient failures (connection, timeout, BYE) are retried with backoff; refused
    /// logins are not. Exit status: the worst account's, as for `sync`.
    Run {
        /// The manifest (TOML).
        manifest: PathBuf,
        /// Accounts synced at once.
        #[arg(long, short = 'j', value_name = "N", default_value_t = 4)]
        jobs: usize,
        /// Run only shard I of N (0-based), e.g. `--shard "$SLURM_ARRAY_TASK_ID/4"`.
        #[arg(long, value_name = "I/N")]
        shard: Option<String>,
    },
    /// Write a Slurm batch script or Kubernetes objects that run the fleet in shards.
    Emit {
        /// The scheduler.
        #[arg(value_enum)]
        target: Target,
        /// The manifest (TOML).
        manifest: PathBuf,
        /// Shards: array tasks (Slurm) or completion indexes (Kubernetes).
        #[arg(long, value_name = "N", default_value_t = 4)]
        shards: u32,
        /// `--jobs` of each shard.
        #[arg(long, short = 'j', value_name = "N", default_value_t = 4)]
        jobs: usize,
        /// The mailfold program the jobs run [default: this program for Slurm, `mailfold`
        /// for Kubernetes].
        #[arg(long, value_name = "PATH")]
        program: Option<String>,
        /// Job name (and prefix of the Kubernetes objects).
        #[arg(long, default_value = "mailfold-fleet")]
        name: String,
        /// Slurm: directory for each task's JSON lines [default: the manifest's directory].
        #[arg(long, value_name = "DIR")]
        output_dir: Option<PathBuf>,
        /// Kubernetes: the container image with mailfold.
        #[arg(long, default_value = "mailfold:latest")]
        image: String,
        /// Kubernetes: the CronJob's schedule.
        #[arg(long, default_value = "17 * * * *")]
        schedule: String,
        /// Kubernetes: mount point of the shared mail volume.
        #[arg(long, value_name = "DIR", default_value = "/srv/mail")]
        mail_dir: PathBuf,
        /// Kubernetes: mount point of the state volume (block storage).
        #[arg(long, value_name = "DIR", default_value = "/var/lib/mailfold")]
        state_dir: PathBuf,
        /// Kubernetes: mount point of the Secret of password files.
        #[arg(long, value_name = "DIR", default_value = "/run/secrets/mailfold")]
        secrets_dir: PathBuf,
    },
}

/// Schedulers `fleet emit` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// A Slurm batch script with a job array.
    Slurm,
    /// Kubernetes objects: an Indexed Job, a CronJob, a ConfigMap and volume claims.
    Kubernetes,
}

/// Runs `mailfold fleet …`; returns the exit status.
pub fn command(cmd: FleetCommand, quiet: bool) -> anyhow::Result<u8> {
    match cmd {
        FleetCommand::Run {
            manifest,
            jobs,
            shard,
        } => run_shard(&manifest, jobs, shard, quiet),
        FleetCommand::Emit {
            target,
            manifest,
            shards,
            jobs,
            program,
            name,
            output_dir,
            image,
            schedule,
            mail_dir,
            state_dir,
            secrets_dir,
        } => {
            if shards == 0 || jobs == 0 {
                return Err(exit::usage("--shards and --jobs must be at least 1"));
            }
            let m = Manifest::load(&manifest)?;
            check_budget(&m, shards)?;
            let abs = std::path::absolute(&manifest)
                .map_err(|e| anyhow::anyhow!("{}: {e}", manifest.display()))?;
            let text = match target {
                Target::Slurm => {
                    let program = match program {
                        Some(p) => p,
                        None => std::env::current_exe()?.display().to_string(),
                    };
                    let opts = emit::EmitOptions {
                        shards,
                        jobs,
                        program,
                        name,
                    };
                    slurm(&opts, &abs, output_dir)?
                }
                Target::Kubernetes => {
                    let opts = emit::EmitOptions {
                        shards,
                        jobs,
                        program: program.unwrap_or_else(|| "mailfold".into()),
                        name,
                    };
                    let kube = emit::KubeOptions {
                        image,
                        schedule,
                        mail_dir,
                        state_dir,
                        secrets_dir,
                    };
                    kubernetes(&opts, &kube, &m, &manifest, &abs)?
                }
            };
            write_stdout(&text)
        }
    }
}

/// `fleet run`: the accounts of one shard (all with no `--shard`), `jobs` at once.
fn run_shard(
    manifest: &Path,
    jobs: usize,
    shard: Option<String>,
    quiet: bool,
) -> anyhow::Result<u8> {
    let m = Manifest::load(manifest)?;
    let shard = match shard {
        Some(s) => Shard::parse(&s).map_err(exit::usage)?,
        None => Shard::ALL,
    };
    if jobs == 0 {
        return Err(exit::usage("--jobs must be at least 1"));
    }
    let opts = run::RunOptions {
        jobs,
        shard,
        progress: run::RunOptions::progress_wanted(quiet),
    };
    run::run(&m, &opts, &mut std::io::stdout().lock())
}

/// Each of `shards` shards needs a connection of the per-server budget.
fn check_budget(m: &Manifest, shards: u32) -> anyhow::Result<()> {
    if let Some(total) = m.settings.max_connections_per_server {
        if total < shards {
            return Err(exit::usage(format!(
                "max_connections_per_server = {total} cannot give each of {shards} \
                 shards a connection; use at most {total} shards"
            )));
        }
    }
    Ok(())
}

/// `fleet emit slurm`: the batch script for the manifest at `abs`, each task's JSON lines
/// in `output_dir` (default: the manifest's directory).
fn slurm(
    opts: &emit::EmitOptions,
    abs: &Path,
    output_dir: Option<PathBuf>,
) -> anyhow::Result<String> {
    let out = match output_dir {
        Some(d) => std::path::absolute(d)?,
        None => abs.parent().map(PathBuf::from).unwrap_or_default(),
    };
    Ok(emit::slurm(opts, abs, &out))
}

/// `fleet emit kubernetes`: the objects, with the text of the manifest `m` read from
/// `manifest` (and of its CSV file, beside `abs`) carried in their ConfigMap.
fn kubernetes(
    opts: &emit::EmitOptions,
    kube: &emit::KubeOptions,
    m: &Manifest,
    manifest: &Path,
    abs: &Path,
) -> anyhow::Result<String> {
    let manifest_text = std::fs::read_to_string(manifest)?;
    let csv_text = match &m.settings.accounts_csv {
        Some(c) => Some(std::fs::read_to_string(
            abs.parent().unwrap_or(Path::new(".")).join(c),
        )?),
        None => None,
    };
    emit::kubernetes(opts, kube, m, &manifest_text, csv_text.as_deref())
}

/// Writes the emitted text to stdout.
fn write_stdout(text: &str) -> anyhow::Result<u8> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(exit::stdout_error)?;
    Ok(exit::OK)
}
