//! `mailfold fleet emit slurm|kubernetes`: jobs for the schedulers fleets already run.
//!
//! mailfold needs no scheduler of its own: every account's sync is independent and
//! crash-safe, and `fleet run --shard I/N` picks a fixed part of the fleet from the task's
//! index alone. So a Slurm job array (`SLURM_ARRAY_TASK_ID`) or a Kubernetes Indexed Job
//! (`JOB_COMPLETION_INDEX`) with one task per shard is the whole distribution layer; a
//! cancelled or failed task is simply run again, and resumes.
//!
//! The text is written by hand rather than through a YAML library: every value that comes
//! from the user is written as a JSON string, which is also a valid YAML scalar, so no value
//! can break out of its place.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::manifest::Manifest;
use crate::exit;

/// What both emitters need.
#[derive(Debug, Clone)]
pub struct EmitOptions {
    /// Shards (array tasks, job indexes).
    pub shards: u32,
    /// `--jobs` of each task.
    pub jobs: usize,
    /// The mailfold program (Slurm: a path on the compute nodes).
    pub program: String,
    /// The job's name (and the prefix of the Kubernetes objects).
    pub name: String,
}

/// The Slurm batch script. `manifest` must be a path the compute nodes can read; `output`
/// is the directory for the per-task JSON lines (`NAME-JOBID_TASK.jsonl`).
pub fn slurm(opts: &EmitOptions, manifest: &Path, output: &Path) -> String {
    let mut s = String::new();
    let last = opts.shards.saturating_sub(1);
    let _ = writeln!(s, "#!/bin/sh");
    let _ = writeln!(
        s,
        "# Written by `mailfold fleet emit slurm`: one array task per shard of the manifest.\n\
         # Submit with `sbatch THIS_FILE`; a cancelled or failed task is run again with\n\
         # `sbatch --array=I THIS_FILE` and resumes where it stopped."
    );
    let _ = writeln!(s, "#SBATCH --job-name={}", slurm_word(&opts.name));
    let _ = writeln!(s, "#SBATCH --array=0-{last}");
    let _ = writeln!(s, "#SBATCH --ntasks=1");
    let out = output.join(format!("{}-%A_%a", slurm_word(&opts.name)));
    let _ = writeln!(s, "#SBATCH --output={}.jsonl", out.display());
    let _ = writeln!(s, "#SBATCH --error={}.err", out.display());
    let _ = writeln!(s, "set -eu");
    let _ = writeln!(
        s,
        "exec {} fleet run --jobs {} --shard \"${{SLURM_ARRAY_TASK_ID}}/{}\" -- {}",
        sh_quote(&opts.program),
        opts.jobs,
        opts.shards,
        sh_quote(&manifest.display().to_string()),
    );
    s
}

/// Where the Kubernetes pods mount things; the manifest's paths must lie under them.
#[derive(Debug, Clone)]
pub struct KubeOptions {
    /// The container image holding `mailfold`.
    pub image: String,
    /// CronJob schedule (cron syntax).
    pub schedule: String,
    /// Mount point of the shared mail volume (the Maildirs).
    pub mail_dir: PathBuf,
    /// Mount point of the state volume (block storage, see docs/fleet.md).
    pub state_dir: PathBuf,
    /// Mount point of the Secret holding one password file per account.
    pub secrets_dir: PathBuf,
}

/// Where the manifest (and its CSV) are mounted in the pods.
const MANIFEST_DIR: &str = "/etc/mailfold";

/// The Kubernetes objects: a ConfigMap with the manifest, the two volume claims, an Indexed
/// Job and a CronJob running the same pod. The Secret is not written (its values are not
/// ours to know): docs/fleet.md shows the `kubectl create secret` line.
pub fn kubernetes(
    opts: &EmitOptions,
    k: &KubeOptions,
    manifest: &Manifest,
    manifest_text: &str,
    csv_text: Option<&str>,
) -> anyhow::Result<String> {
    check_paths(manifest, k)?;
    let name = &opts.name;
    if name.is_empty()
        || name.len() > 40
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(exit::usage(
            "--name must be 1 to 40 lowercase letters, digits or '-' (a Kubernetes name)",
        ));
    }
    let q = |v: &str| serde_json::Value::String(v.to_string()).to_string();
    let mut y = String::new();
    // The manifest, and its CSV under the name the manifest gives it.
    let _ = writeln!(
        y,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}-manifest\ndata:"
    );
    let _ = writeln!(y, "  manifest.toml: {}", q(manifest_text));
    if let (Some(csv), Some(csv_name)) = (csv_text, &manifest.settings.accounts_csv) {
        let file = csv_name
            .to_str()
            .filter(|f| !f.contains('/') && !f.is_empty())
            .ok_or_else(|| {
                exit::usage("accounts_csv must be a file name beside the manifest for Kubernetes")
            })?;
        let _ = writeln!(y, "  {}: {}", q(file), q(csv));
    }
    for (claim, mode) in [("mail", "ReadWriteMany"), ("state", "ReadWriteOnce")] {
        let _ = writeln!(
            y,
            "---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: {name}-{claim}\n\
             spec:\n  accessModes: [{mode}]\n  resources:\n    requests:\n      storage: 10Gi"
        );
    }
    let job = job_spec(opts, k, 2);
    let _ = writeln!(
        y,
        "---\napiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\nspec:\n{job}"
    );
    let cron_job = job_spec(opts, k, 6);
    let _ = writeln!(
        y,
        "---\napiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: {name}-periodic\nspec:\n  \
         schedule: {}\n  concurrencyPolicy: Forbid\n  jobTemplate:\n    spec:\n{cron_job}",
        q(&k.schedule)
    );
    Ok(y)
}

/// The Job spec, indented by `pad` spaces.
fn job_spec(opts: &EmitOptions, k: &KubeOptions, pad: usize) -> String {
    let q = |v: &str| serde_json::Value::String(v.to_string()).to_string();
    let name = &opts.name;
    let n = opts.shards;
    let text = format!(
        "completionMode: Indexed\n\
         completions: {n}\n\
         parallelism: {n}\n\
         backoffLimit: {backoff}\n\
         template:\n\
        \x20 spec:\n\
        \x20   restartPolicy: Never\n\
        \x20   securityContext:\n\
        \x20     runAsNonRoot: true\n\
        \x20     runAsUser: 1000\n\
        \x20     fsGroup: 1000\n\
        \x20   containers:\n\
        \x20     - name: mailfold\n\
        \x20       image: {image}\n\
        \x20       command: [{prog}, \"fleet\", \"run\", \"--jobs\", \"{jobs}\", \"--shard\", \"$(JOB_COMPLETION_INDEX)/{n}\", \"--\", \"{MANIFEST_DIR}/manifest.toml\"]\n\
        \x20       env:\n\
        \x20         - name: JOB_COMPLETION_INDEX\n\
        \x20           valueFrom:\n\
        \x20             fieldRef:\n\
        \x20               fieldPath: \"metadata.annotations['batch.kubernetes.io/job-completion-index']\"\n\
        \x20       securityContext:\n\
        \x20         allowPrivilegeEscalation: false\n\
        \x20         readOnlyRootFilesystem: true\n\
        \x20       volumeMounts:\n\
        \x20         - {{name: manifest, mountPath: {manifest_dir}, readOnly: true}}\n\
        \x20         - {{name: secrets, mountPath: {secrets}, readOnly: true}}\n\
        \x20         - {{name: mail, mountPath: {mail}}}\n\
        \x20         - {{name: state, mountPath: {state}}}\n\
        \x20   volumes:\n\
        \x20     - {{name: manifest, configMap: {{name: {name}-manifest}}}}\n\
        \x20     - {{name: secrets, secret: {{secretName: {name}-secrets, defaultMode: 288}}}}\n\
        \x20     - {{name: mail, persistentVolumeClaim: {{claimName: {name}-mail}}}}\n\
        \x20     - {{name: state, persistentVolumeClaim: {{claimName: {name}-state}}}}\n",
        backoff = n.saturating_mul(3),
        image = q(&k.image),
        prog = q(&opts.program),
        jobs = opts.jobs,
        manifest_dir = q(MANIFEST_DIR),
        secrets = q(&k.secrets_dir.display().to_string()),
        mail = q(&k.mail_dir.display().to_string()),
        state = q(&k.state_dir.display().to_string()),
    );
    // defaultMode 288 is 0440 written in decimal (YAML readers disagree on a leading 0):
    // the files belong to root and the pod's fsGroup, and the pod runs as a member of it.
    let indent = " ".repeat(pad);
    text.lines()
        .map(|l| format!("{indent}{l}\n"))
        .collect::<String>()
        .trim_end()
        .to_string()
}

/// The pods see only the mounts: every account's Maildir, state database and password file
/// must lie under them, and a password file must be a key of the Secret (its file name).
fn check_paths(manifest: &Manifest, k: &KubeOptions) -> anyhow::Result<()> {
    for (name, a) in &manifest.accounts {
        let bad = |what: &str, p: &Path, dir: &Path| {
            exit::usage(format!(
                "account {name}: {what} {} is not under {} (the pods' mount); change the \
                 manifest's template or the --{}-dir option",
                p.display(),
                dir.display(),
                what
            ))
        };
        if !a.local.starts_with(&k.mail_dir) {
            return Err(bad("mail", &a.local, &k.mail_dir));
        }
        match &a.state {
            Some(s) if s.starts_with(&k.state_dir) => {}
            Some(s) => return Err(bad("state", s, &k.state_dir)),
            None => {
                return Err(exit::usage(format!(
                    "account {name}: set `state` (e.g. {}/{{account}}.sqlite); the default \
                     under $HOME is not a volume",
                    k.state_dir.display()
                )))
            }
        }
        if let Some(f) = &a.password_file {
            let key_ok = f.parent() == Some(k.secrets_dir.as_path())
                && f.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    n.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
                });
            if !key_ok {
                return Err(exit::usage(format!(
                    "account {name}: password_file {} must be a file directly in {} whose \
                     name is a Secret key (letters, digits, '-', '.', '_')",
                    f.display(),
                    k.secrets_dir.display()
                )));
            }
        }
        if a.password_command.is_some() || a.oauth_token_command.is_some() {
            return Err(exit::usage(format!(
                "account {name}: a secret command runs inside the pod, which has no password \
                 store; use password_file (the mounted Secret) or password_env"
            )));
        }
    }
    Ok(())
}

/// A value safe in an `#SBATCH` line (no spaces or shell characters): others become `_`.
fn slurm_word(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Single-quoted for `sh`.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slurm_script_runs_one_shard_per_array_task() {
        let s = slurm(
            &EmitOptions {
                shards: 4,
                jobs: 8,
                program: "/opt/mail fold/mailfold".into(),
                name: "mf".into(),
            },
            Path::new("/etc/it's.toml"),
            Path::new("/out"),
        );
        assert!(s.contains("#SBATCH --array=0-3\n"), "{s}");
        assert!(s.contains("#SBATCH --output=/out/mf-%A_%a.jsonl\n"), "{s}");
        assert!(
            s.contains(
                "exec '/opt/mail fold/mailfold' fleet run --jobs 8 --shard \
                 \"${SLURM_ARRAY_TASK_ID}/4\" -- '/etc/it'\\''s.toml'"
            ),
            "{s}"
        );
    }
}
