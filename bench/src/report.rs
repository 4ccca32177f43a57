//! Turns the raw measurements of bench/compare (a run directory: meta.tsv, results.tsv,
//! shapes.tsv, checks.tsv) into the markdown report (method lines, table, PASS/FAIL target
//! lines), the data file of the plot, and the generated block of docs/bench.md (one headline
//! table per published run). Medians over the repeats; a run that failed is left out of the
//! median and shown in the table.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::Path;

/// One timed run (a line of results.tsv: shape, tool, fsync, repeat, wall s, user s, system s,
/// peak RSS KB, exit status, then the 1-minute load average read just before the run).
#[derive(Debug, Clone)]
struct Run {
    shape: String,
    tool: String,
    fsync: String,
    wall: f64,
    cpu: f64,
    rss_kb: f64,
    ok: bool,
    load: Option<f64>,
}

/// A shape's description (a line of shapes.tsv): id, messages, folders, bytes, text.
#[derive(Debug, Clone)]
struct Shape {
    id: String,
    messages: u64,
    folders: u64,
    bytes: u64,
    text: String,
}

/// Median of the successful runs' values, with the count of runs that failed.
#[derive(Debug, Clone, Copy, Default)]
struct Stat {
    wall: Option<f64>,
    cpu: Option<f64>,
    rss_kb: Option<f64>,
    failed: usize,
    /// The mirror held another number of messages than the server after the shape: the
    /// times are not comparable and every target involving them fails.
    incomplete: Option<(u64, u64)>,
    /// Lowest and highest load average read before the runs of this cell.
    load: Option<(f64, f64)>,
}

type Key = (String, String, String); // shape, tool, fsync

/// Mirrors whose message count differed from the server's (checks.tsv: shape, tool, fsync,
/// have, want).
fn parse_checks(text: &str) -> BTreeMap<Key, (u64, u64)> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let have = f.get(3)?.trim().parse().ok()?;
            let want = f.get(4)?.trim().parse().ok()?;
            (have != want).then(|| ((f[0].into(), f[1].into(), f[2].into()), (have, want)))
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

fn parse_runs(text: &str) -> Vec<Run> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            if f.len() < 9 {
                return None;
            }
            let num = |s: &str| s.trim().parse::<f64>().ok();
            Some(Run {
                shape: f[0].into(),
                tool: f[1].into(),
                fsync: f[2].into(),
                wall: num(f[4])?,
                cpu: num(f[5])? + num(f[6])?,
                rss_kb: num(f[7])?,
                ok: f[8].trim() == "0",
                load: f.get(9).and_then(|s| num(s)),
            })
        })
        .collect()
}

fn parse_shapes(text: &str) -> Vec<Shape> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let f: Vec<&str> = l.splitn(5, '\t').collect();
            if f.len() < 5 {
                return None;
            }
            Some(Shape {
                id: f[0].into(),
                messages: f[1].parse().ok()?,
                folders: f[2].parse().ok()?,
                bytes: f[3].parse().ok()?,
                text: f[4].into(),
            })
        })
        .collect()
}

/// meta.tsv: `key<TAB>value` lines written by bench/compare (date, command, commit, ...).
fn parse_meta(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn stats(runs: &[Run]) -> BTreeMap<Key, Stat> {
    let mut groups: BTreeMap<Key, Vec<&Run>> = BTreeMap::new();
    for r in runs {
        groups
            .entry((r.shape.clone(), r.tool.clone(), r.fsync.clone()))
            .or_default()
            .push(r);
    }
    groups
        .into_iter()
        .map(|(k, rs)| {
            let ok: Vec<&&Run> = rs.iter().filter(|r| r.ok).collect();
            let loads: Vec<f64> = rs.iter().filter_map(|r| r.load).collect();
            let stat = Stat {
                wall: median(ok.iter().map(|r| r.wall).collect()),
                cpu: median(ok.iter().map(|r| r.cpu).collect()),
                rss_kb: median(ok.iter().map(|r| r.rss_kb).collect()),
                failed: rs.len() - ok.len(),
                incomplete: None,
                load: loads
                    .iter()
                    .copied()
                    .reduce(f64::min)
                    .zip(loads.iter().copied().reduce(f64::max)),
            };
            (k, stat)
        })
        .collect()
}

/// The initial sync whose mirror a re-sync shape starts from: a re-sync of an incomplete
/// mirror inherits the gap.
fn base_of(shape: &str) -> &str {
    if shape == "resync-nochange-20f" {
        "init-20f"
    } else if shape.starts_with("resync-") && shape.ends_with("-huge") {
        "init-huge"
    } else if shape.starts_with("resync-") {
        "init-small"
    } else {
        shape
    }
}

/// One run directory, parsed.
struct Data {
    runs: Vec<Run>,
    shapes: Vec<Shape>,
    st: BTreeMap<Key, Stat>,
    meta: BTreeMap<String, String>,
    checked: usize,
    incomplete: usize,
}

impl Data {
    fn load(dir: &Path) -> io::Result<Data> {
        let runs = parse_runs(&fs::read_to_string(dir.join("results.tsv"))?);
        let shapes = parse_shapes(&fs::read_to_string(dir.join("shapes.tsv"))?);
        let meta = parse_meta(&fs::read_to_string(dir.join("meta.tsv")).unwrap_or_default());
        let checks_text = fs::read_to_string(dir.join("checks.tsv")).unwrap_or_default();
        let checks = parse_checks(&checks_text);
        let mut st = stats(&runs);
        for ((shape, tool, mode), stat) in st.iter_mut() {
            let own = checks.get(&(shape.clone(), tool.clone(), mode.clone()));
            let inherited = checks.get(&(base_of(shape).to_string(), tool.clone(), mode.clone()));
            stat.incomplete = own.or(inherited).copied();
        }
        Ok(Data {
            runs,
            shapes,
            st,
            meta,
            checked: checks_text.lines().filter(|l| !l.trim().is_empty()).count(),
            incomplete: checks.len(),
        })
    }

    fn get(&self, shape: &str, tool: &str, fsync: &str) -> Stat {
        self.st
            .get(&(shape.to_string(), tool.to_string(), fsync.to_string()))
            .copied()
            .unwrap_or_default()
    }

    fn has(&self, shape: &str) -> bool {
        self.shapes.iter().any(|s| s.id == shape)
    }

    fn label(&self, shape: &str) -> String {
        self.shapes
            .iter()
            .find(|s| s.id == shape)
            .map_or(shape.to_string(), |s| s.text.clone())
    }

    /// The fsync modes measured, "on" first: it is the default a user runs with.
    fn modes(&self) -> Vec<String> {
        let mut modes: Vec<String> = self.runs.iter().map(|r| r.fsync.clone()).collect();
        modes.sort();
        modes.dedup();
        modes.reverse();
        modes
    }

    fn meta(&self, key: &str) -> &str {
        self.meta.get(key).map_or("unknown", String::as_str)
    }

    /// The method line about the machine's load, from the load average read before every
    /// timed run: wall times on a machine shared with other work include waiting for a CPU.
    fn load_line(&self) -> String {
        let loads: Vec<f64> = self.runs.iter().filter_map(|r| r.load).collect();
        let cores: f64 = self.meta("cores").parse().unwrap_or(0.0);
        let mut line = String::new();
        if let (Some(lo), Some(mid), Some(hi)) = (
            loads.iter().copied().reduce(f64::min),
            median(loads.clone()),
            loads.iter().copied().reduce(f64::max),
        ) {
            let _ = write!(
                line,
                "1-minute load average read before each of the {} timed runs: min {lo:.2}, median {mid:.2}, max {hi:.2}, on {} cores. ",
                loads.len(),
                self.meta("cores")
            );
            line.push_str(if cores > 0.0 && mid > cores {
                "The machine was shared with other work (more runnable tasks than cores): wall \
                 times include waiting for a CPU and vary between runs; CPU times and peak RSS \
                 are the steadier figures."
            } else if cores > 0.0 && hi > cores {
                "Other work ran on the machine at times (load above the core count before some \
                 runs): those wall times include waiting for a CPU."
            } else {
                "The load stayed below the core count."
            });
        } else {
            line.push_str("not recorded.");
        }
        if let Some(note) = self.meta.get("note").filter(|n| !n.is_empty()) {
            let _ = write!(line, " Note given to the run: {note}.");
        }
        line
    }
}

fn secs(v: Option<f64>) -> String {
    match v {
        Some(s) if s < 1.0 => format!("{:.0} ms", s * 1000.0),
        Some(s) => format!("{s:.2} s"),
        None => "—".into(),
    }
}

fn cpu_secs(v: Option<f64>) -> String {
    v.map_or("—".into(), |s| format!("{s:.3}"))
}

fn mb(v: Option<f64>) -> String {
    v.map_or("—".into(), |kb| format!("{:.0}", kb / 1024.0))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "—".into(),
    }
}

/// What a target compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Measure {
    Wall,
    Cpu,
    Rss,
}

impl Measure {
    fn name(self) -> &'static str {
        match self {
            Measure::Wall => "wall time",
            Measure::Cpu => "CPU",
            Measure::Rss => "peak RSS",
        }
    }

    fn of(self, s: Stat) -> Option<f64> {
        match self {
            Measure::Wall => s.wall,
            Measure::Cpu => s.cpu,
            Measure::Rss => s.rss_kb,
        }
    }

    fn show(self, v: Option<f64>) -> String {
        match (self, v) {
            (_, None) => "—".into(),
            (Measure::Wall | Measure::Cpu, v) => secs(v),
            (Measure::Rss, v) => format!("{} MB", mb(v)),
        }
    }
}

/// One target: mailfold's figure against another figure times a factor.
#[derive(Debug, Clone)]
struct Target {
    label: String,
    fsync: String,
    measure: Measure,
    mine: Option<f64>,
    /// What mailfold is compared with ("mbsync", "limit", "the 100k figure", "fixed").
    other_name: String,
    other: Option<f64>,
    factor: f64,
    incomplete: Option<(u64, u64)>,
}

impl Target {
    /// None when a figure is missing (SKIP); a figure measured on an incomplete mirror
    /// passes nothing.
    fn verdict(&self) -> Option<bool> {
        if self.incomplete.is_some() {
            return Some(false);
        }
        let (mine, other) = (self.mine?, self.other?);
        if other > 0.0 {
            Some(mine <= other * self.factor)
        } else {
            // Both below the timer's resolution counts as equal.
            Some(mine <= 0.0)
        }
    }

    fn word(&self) -> &'static str {
        match self.verdict() {
            Some(true) => "PASS",
            Some(false) => "FAIL",
            None => "SKIP",
        }
    }

    fn ratio(&self) -> String {
        ratio(self.mine, self.other)
    }

    /// How far a failed target is from its limit: the measured ratio over the allowed one.
    fn shortfall(&self) -> Option<String> {
        let (mine, other) = (self.mine?, self.other?);
        (self.verdict() == Some(false) && other > 0.0 && self.factor > 0.0)
            .then(|| format!("{:.1}x the allowed figure", mine / (other * self.factor)))
    }

    fn limit(&self) -> String {
        format!("≤ {}x", trim_float(self.factor))
    }

    fn other_text(&self) -> String {
        if self.other_name == "fixed" {
            self.measure.show(self.other)
        } else {
            format!("{} {}", self.other_name, self.measure.show(self.other))
        }
    }

    fn line(&self) -> String {
        let mut s = format!(
            "{}  {}, fsync {}, {}: mailfold {} / {} = {} (target {})",
            self.word(),
            self.label,
            self.fsync,
            self.measure.name(),
            self.measure.show(self.mine),
            self.other_text(),
            self.ratio(),
            self.limit()
        );
        if let Some((have, want)) = self.incomplete {
            let _ = write!(s, " [mirror incomplete: {have} of {want}]");
        } else if let Some(short) = self.shortfall() {
            let _ = write!(s, " [{short}]");
        }
        s
    }

    fn row(&self) -> String {
        let mut result = self.word().to_string();
        if let Some((have, want)) = self.incomplete {
            let _ = write!(result, " (mirror incomplete: {have} of {want})");
        } else if let Some(short) = self.shortfall() {
            let _ = write!(result, " ({short})");
        }
        format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            self.label,
            self.fsync,
            self.measure.name(),
            self.measure.show(self.mine),
            self.other_text(),
            self.ratio(),
            self.limit(),
            result
        )
    }
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The targets, in the order of the report: re-syncs of the small corpus, CPU of every
/// re-sync, initial syncs against mbsync and the limit, the smallest initial sync, peak RSS of
/// every shape, then the million-message group against the 100k figures (of this run, or of
/// `baseline`, the latest published run at the same scale, when this run has none).
fn targets(d: &Data, baseline: Option<&Data>) -> Vec<Target> {
    let modes = d.modes();
    let mut out = Vec::new();
    let vs_mbsync = |shape: &str, mode: &str, measure: Measure, factor: f64| {
        let m = d.get(shape, "mailfold", mode);
        let b = d.get(shape, "mbsync", mode);
        Target {
            label: d.label(shape),
            fsync: mode.to_string(),
            measure,
            mine: measure.of(m),
            other_name: "mbsync".into(),
            other: measure.of(b),
            factor,
            incomplete: m.incomplete,
        }
    };
    for mode in &modes {
        for (shape, factor) in [
            ("resync-nochange", 0.1),
            ("resync-flags", 0.2),
            ("resync-new", 0.2),
        ] {
            if d.has(shape) {
                out.push(vs_mbsync(shape, mode, Measure::Wall, factor));
            }
        }
    }
    for shape in d.shapes.iter().filter(|s| s.id.starts_with("resync-")) {
        for mode in &modes {
            if d.get(&shape.id, "mailfold", mode).cpu.is_some()
                || d.get(&shape.id, "mbsync", mode).cpu.is_some()
            {
                out.push(vs_mbsync(&shape.id, mode, Measure::Cpu, 1.0));
            }
        }
    }
    for shape in ["init-10k", "init-20f", "init-small"] {
        if !d.has(shape) {
            continue;
        }
        for mode in &modes {
            let factor = if mode == "on" { 0.6 } else { 0.5 };
            out.push(vs_mbsync(shape, mode, Measure::Wall, factor));
        }
        // The limit never fsyncs: it is recorded in the fsync-off rows only.
        if modes.iter().any(|m| m == "off") {
            let m = d.get(shape, "mailfold", "off");
            out.push(Target {
                label: d.label(shape),
                fsync: "off".into(),
                measure: Measure::Wall,
                mine: m.wall,
                other_name: "limit".into(),
                other: d.get(shape, "limit", "off").wall,
                factor: 1.5,
                incomplete: m.incomplete,
            });
        }
    }
    if d.has("init-1k") {
        for mode in &modes {
            out.push(vs_mbsync("init-1k", mode, Measure::Wall, 1.0));
        }
    }
    // Peak RSS: every shape, at the fsync mode where it was highest.
    for shape in &d.shapes {
        let worst = modes
            .iter()
            .map(|mode| (mode, d.get(&shape.id, "mailfold", mode)))
            .filter(|(_, s)| s.rss_kb.is_some() || s.incomplete.is_some())
            .max_by(|a, b| {
                a.1.rss_kb
                    .unwrap_or(0.0)
                    .total_cmp(&b.1.rss_kb.unwrap_or(0.0))
            });
        let (mode, s) = match worst {
            Some((mode, s)) => (mode.clone(), s),
            None => (modes.first().cloned().unwrap_or_default(), Stat::default()),
        };
        out.push(Target {
            label: shape.text.clone(),
            fsync: mode,
            measure: Measure::Rss,
            mine: s.rss_kb,
            other_name: "fixed".into(),
            other: Some(64.0 * 1024.0),
            factor: 1.0,
            incomplete: s.incomplete,
        });
    }
    if d.has("init-huge") {
        // The huge group runs with fsync off; the figures at 100k come from this run when it
        // measured them, else from the baseline.
        let mode = if modes.iter().any(|m| m == "off") {
            "off"
        } else {
            modes.first().map_or("off", String::as_str)
        };
        out.push(vs_mbsync("init-huge", mode, Measure::Wall, 0.6));
        let reference = |shape: &str| -> (Option<f64>, Option<f64>, String) {
            let here = d.get(shape, "mailfold", mode);
            if here.wall.is_some() {
                return (
                    here.wall,
                    here.rss_kb,
                    format!("{} (this run)", d.label(shape)),
                );
            }
            match baseline {
                Some(b) if b.get(shape, "mailfold", mode).wall.is_some() => {
                    let s = b.get(shape, "mailfold", mode);
                    (
                        s.wall,
                        s.rss_kb,
                        format!("{} (published run at {})", b.label(shape), b.meta("commit")),
                    )
                }
                _ => (None, None, format!("{shape} (not measured)")),
            }
        };
        let m = d.get("init-huge", "mailfold", mode);
        let (_, rss, name) = reference("init-small");
        out.push(Target {
            label: d.label("init-huge"),
            fsync: mode.into(),
            measure: Measure::Rss,
            mine: m.rss_kb,
            other_name: name,
            other: rss,
            factor: 1.2,
            incomplete: m.incomplete,
        });
        for (huge, small) in [
            ("resync-nochange-huge", "resync-nochange"),
            ("resync-new-huge", "resync-new"),
        ] {
            let m = d.get(huge, "mailfold", mode);
            let (wall, _, name) = reference(small);
            out.push(Target {
                label: d.label(huge),
                fsync: mode.into(),
                measure: Measure::Wall,
                mine: m.wall,
                other_name: name,
                other: wall,
                factor: 2.0,
                incomplete: m.incomplete,
            });
        }
    }
    out
}

fn header(d: &Data) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "Run {} with `{}` ({} runs per cell, medians).\n",
        d.meta("date"),
        d.meta("command"),
        d.meta("repeats")
    );
    let _ = writeln!(md, "- Machine: {}", d.meta("machine"));
    let _ = writeln!(
        md,
        "- Load: {} Before the whole run {}, after it {}.",
        d.load_line(),
        d.meta("load_start"),
        d.meta("load_end")
    );
    let _ = writeln!(md, "- Server: {}", d.meta("server"));
    let _ = writeln!(
        md,
        "- Clients: {} ({}), {}, limit = bench/src/limit.rs",
        d.meta("mailfold"),
        d.meta("revision"),
        d.meta("mbsync")
    );
    md.push_str(
        "- Durability: fsync on = mbsync `FSync yes` and mailfold `fsync = true`; fsync off = \
         `FSync no` and `fsync = false`. The limit never fsyncs.\n",
    );
    md.push_str(
        "- Timing: wall and CPU (user + system) to the millisecond from bash's `time`, peak \
         RSS from GNU time, `sync` before every timed run.\n",
    );
    md
}

fn table(d: &Data) -> String {
    let modes = d.modes();
    let mut md = String::from(
        "| shape | messages / folders / MB | fsync | mailfold | mbsync | limit (writes) | limit (no writes) \
         | mailfold/mbsync | mailfold/limit | CPU s mailfold / mbsync | peak RSS MB mailfold / mbsync | load before |\n\
         |---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for shape in &d.shapes {
        for mode in &modes {
            let m = d.get(&shape.id, "mailfold", mode);
            let b = d.get(&shape.id, "mbsync", mode);
            let l = d.get(&shape.id, "limit", mode);
            let n = d.get(&shape.id, "limit-nowrite", mode);
            if m.wall.is_none() && b.wall.is_none() && m.failed == 0 && b.failed == 0 {
                continue;
            }
            let failed = |s: Stat| {
                let mut note = String::new();
                if s.failed > 0 {
                    note.push_str(&format!(" ({} failed)", s.failed));
                }
                if let Some((have, want)) = s.incomplete {
                    note.push_str(&format!(" (incomplete: {have} of {want})"));
                }
                note
            };
            let load = [m.load, b.load]
                .into_iter()
                .flatten()
                .reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)))
                .map_or("—".into(), |(lo, hi)| {
                    if format!("{lo:.1}") == format!("{hi:.1}") {
                        format!("{lo:.1}")
                    } else {
                        format!("{lo:.1}–{hi:.1}")
                    }
                });
            let _ = writeln!(
                md,
                "| {} | {} / {} / {:.0} | {mode} | {}{} | {}{} | {} | {} | {} | {} | {} / {} | {} / {} | {load} |",
                shape.text,
                shape.messages,
                shape.folders,
                shape.bytes as f64 / 1e6,
                secs(m.wall),
                failed(m),
                secs(b.wall),
                failed(b),
                secs(l.wall),
                secs(n.wall),
                ratio(m.wall, b.wall),
                ratio(m.wall, l.wall),
                cpu_secs(m.cpu),
                cpu_secs(b.cpu),
                mb(m.rss_kb),
                mb(b.rss_kb),
            );
        }
    }
    md
}

/// Builds the report from the run directory `dir`; writes `dir/plot.dat` and returns the
/// markdown (method lines, table, targets). `baseline` is the run directory the
/// million-message targets take their 100k figures from when `dir` has none.
/// The floors of the targets against mbsync's wall time: what a limit client takes against
/// mbsync. For the re-syncs, the re-sync limit (bench/src/resync_limit.rs, the server's share
/// of the re-sync for a client that keeps state); for the initial syncs with fsync off, the
/// limit (bench/src/limit.rs: one connection, nothing parsed, each literal written to its
/// file; it never fsyncs, so the fsync-on targets have no floor). A target below that ratio
/// cannot be met by any client over one connection on this server and machine.
fn floors(d: &Data) -> Vec<String> {
    let mut out = Vec::new();
    let shapes = [
        ("resync-nochange", 0.1, false),
        ("resync-flags", 0.2, false),
        ("resync-new", 0.2, false),
        ("init-10k", 0.5, true),
        ("init-20f", 0.5, true),
        ("init-small", 0.5, true),
        ("init-huge", 0.6, true),
    ];
    for (shape, factor, fsync_off_only) in shapes {
        if !d.has(shape) {
            continue;
        }
        let limit = d.get(shape, "limit", "off").wall;
        for mode in d.modes() {
            if fsync_off_only && mode != "off" {
                continue;
            }
            let mbsync = d.get(shape, "mbsync", &mode).wall;
            let (Some(l), Some(m)) = (limit, mbsync) else {
                continue;
            };
            let r = if m > 0.0 { l / m } else { 0.0 };
            let verdict = if r <= factor {
                "the target is above the floor"
            } else {
                "the target is below the floor: over one connection, no client can meet it on \
                 this server and machine"
            };
            out.push(format!(
                "{}, fsync {mode}: limit {} / mbsync {} = {} (target ≤ {}x: {verdict})",
                d.label(shape),
                Measure::Wall.show(Some(l)),
                Measure::Wall.show(Some(m)),
                ratio(Some(l), Some(m)),
                trim_float(factor),
            ));
        }
    }
    out
}

/// [`floors`] as a paragraph, or nothing when no limit was measured.
fn floors_text(d: &Data, fenced: bool) -> String {
    let lines = floors(d);
    if lines.is_empty() {
        return String::new();
    }
    let mut md = String::from(
        "\nFloors of the targets against mbsync's wall time: for the re-syncs, the re-sync limit \
         (`bench/src/resync_limit.rs`: LIST-STATUS, then EXAMINE, the flag changes and the new \
         bodies of each folder whose HIGHESTMODSEQ moved, nothing written); for the initial \
         syncs with fsync off, the limit (`bench/src/limit.rs`: one connection, nothing \
         parsed, each literal written to its file); against mbsync, medians:\n\n",
    );
    if fenced {
        md.push_str("```\n");
    }
    for l in lines {
        if !fenced {
            md.push_str("- ");
        }
        md.push_str(&l);
        md.push('\n');
    }
    if fenced {
        md.push_str("```\n");
    }
    md
}

pub fn build(dir: &Path, baseline: Option<&Path>) -> io::Result<String> {
    let d = Data::load(dir)?;
    let base = baseline.and_then(|b| Data::load(b).ok());
    let mut md = header(&d);
    md.push('\n');
    md.push_str(&table(&d));
    md.push_str(
        "\nTargets, medians of this run (ratio = mailfold's figure / the figure it is compared \
         with):\n\n```\n",
    );
    for t in targets(&d, base.as_ref()) {
        md.push_str(&t.line());
        md.push('\n');
    }
    md.push_str("```\n");
    md.push_str(&floors_text(&d, true));

    // Plot data: wall time against messages, initial sync of one folder, fsync off.
    let mut dat = String::from("# messages mailfold mbsync limit(writes) limit(no writes)\n");
    for id in ["init-1k", "init-10k", "init-50k"] {
        let Some(shape) = d.shapes.iter().find(|s| s.id == id) else {
            continue;
        };
        let v = |tool: &str| {
            d.get(id, tool, "off")
                .wall
                .map_or("NaN".to_string(), |w| format!("{w:.4}"))
        };
        let _ = writeln!(
            dat,
            "{} {} {} {} {}",
            shape.messages,
            v("mailfold"),
            v("mbsync"),
            v("limit"),
            v("limit-nowrite")
        );
    }
    fs::write(dir.join("plot.dat"), dat)?;
    Ok(md)
}

/// The published runs, in the order of docs/bench.md: data directory name, title, and the
/// directory holding the 100k figures the million-message targets fall back on.
const PUBLISHED: &[(&str, &str, Option<&str>)] = &[
    ("results", "Full sizes", None),
    (
        "results-quick",
        "Quick run (`--quick`, one tenth of the sizes)",
        None,
    ),
    (
        "results-huge",
        "One million messages (`--huge`)",
        Some("results"),
    ),
    (
        "results-huge-quick",
        "One million messages at one tenth (`--huge --quick`)",
        Some("results-quick"),
    ),
];

/// Start and end markers of the generated block in docs/bench.md.
pub const BEGIN: &str = "<!-- generated by bench/compare: begin -->";
/// See [`BEGIN`].
pub const END: &str = "<!-- generated by bench/compare: end -->";

/// The generated block of docs/bench.md: for each published run under `data` (one directory
/// per run, as `bench/compare --publish` copies them), the commit measured, the method line
/// and the headline table of its targets.
pub fn block(data: &Path) -> io::Result<String> {
    let mut md = format!(
        "{BEGIN}\n<!-- Everything up to the end marker is rewritten by `bench/compare --publish` \
         from docs/bench/data/; do not edit it by hand. -->\n"
    );
    for (name, title, baseline) in PUBLISHED {
        let dir = data.join(name);
        let _ = writeln!(md, "\n### {title}\n");
        if !dir.join("results.tsv").is_file() {
            let older = data
                .parent()
                .is_some_and(|docs| docs.join(format!("{name}.md")).is_file());
            let _ = writeln!(
                md,
                "Not published by this version of `bench/compare` yet (no docs/bench/data/{name}/).{}",
                if older {
                    format!(
                        " [bench/{name}.md](bench/{name}.md) comes from an earlier version, \
                         without raw data and with other targets; its figures are not repeated here."
                    )
                } else {
                    String::new()
                }
            );
            continue;
        }
        let d = Data::load(&dir)?;
        let base = baseline.and_then(|b| Data::load(&data.join(b)).ok());
        let _ = writeln!(
            md,
            "Measured: mailfold at commit **{}** ({}), {}, `{}`, {} runs per cell, medians. \
             Full table: [bench/{name}.md](bench/{name}.md); raw runs: \
             [bench/data/{name}/](bench/data/{name}/).\n",
            d.meta("commit"),
            d.meta("revision"),
            d.meta("date"),
            d.meta("command"),
            d.meta("repeats"),
        );
        let _ = writeln!(md, "Load: {}\n", d.load_line());
        md.push_str(
            "| shape | fsync | measure | mailfold | compared with | ratio | target | result |\n\
             |---|---|---|---:|---:|---:|---:|---|\n",
        );
        let ts = targets(&d, base.as_ref());
        for t in &ts {
            md.push_str(&t.row());
            md.push('\n');
        }
        let count = |w: &str| ts.iter().filter(|t| t.word() == w).count();
        let _ = writeln!(
            md,
            "\n{} PASS, {} FAIL, {} SKIP. Mirrors counted against the server: {} of {} complete.",
            count("PASS"),
            count("FAIL"),
            count("SKIP"),
            d.checked - d.incomplete,
            d.checked
        );
        md.push_str(&floors_text(&d, false));
    }
    md.push_str(END);
    md.push('\n');
    Ok(md)
}

/// Replaces the text from the line holding [`BEGIN`] to the line holding [`END`] (both
/// included) in `doc` by `block`. A file without both markers, in that order, is an error:
/// the block is never appended somewhere unexpected.
pub fn splice(doc: &str, block: &str) -> Result<String, String> {
    let start = doc.find(BEGIN).ok_or_else(|| format!("no line {BEGIN}"))?;
    let start = doc[..start].rfind('\n').map_or(0, |i| i + 1);
    let end_at = doc[start..]
        .find(END)
        .map(|i| i + start)
        .ok_or_else(|| format!("no line {END} after {BEGIN}"))?;
    let end = doc[end_at..]
        .find('\n')
        .map_or(doc.len(), |i| end_at + i + 1);
    let mut out = String::with_capacity(doc.len() + block.len());
    out.push_str(&doc[..start]);
    out.push_str(block);
    if !block.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&doc[end..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
    }

    #[test]
    fn failed_runs_are_left_out() {
        let runs = parse_runs(
            "init-10k\tmailfold\toff\t1\t2.0\t1.0\t0.5\t1000\t0\t3.5\n\
             init-10k\tmailfold\toff\t2\t9.0\t1.0\t0.5\t1000\t1\t1.0\n\
             init-10k\tmailfold\toff\t3\t4.0\t1.0\t0.5\t1000\t0\n",
        );
        let st = stats(&runs);
        let s = st[&("init-10k".into(), "mailfold".into(), "off".into())];
        assert_eq!(s.wall, Some(3.0));
        assert_eq!(s.failed, 1);
        assert_eq!(s.cpu, Some(1.5));
        assert_eq!(s.load, Some((1.0, 3.5)));
    }

    #[test]
    fn only_mismatches_count() {
        let c = parse_checks(
            "init-20f\tmailfold\toff\t1810\t2000\ninit-20f\tmbsync\toff\t2000\t2000\n",
        );
        assert_eq!(c.len(), 1);
        assert_eq!(
            c.get(&("init-20f".into(), "mailfold".into(), "off".into())),
            Some(&(1810, 2000))
        );
    }

    fn run_dir(name: &str, results: &str, shapes: &str, checks: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("mfbench-report-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("results.tsv"), results).unwrap();
        fs::write(dir.join("shapes.tsv"), shapes).unwrap();
        fs::write(dir.join("checks.tsv"), checks).unwrap();
        fs::write(dir.join("meta.tsv"), "commit\tabc1234\ncores\t2\n").unwrap();
        dir
    }

    #[test]
    fn targets_compare_ratios_and_inherit_incomplete_mirrors() {
        let dir = run_dir(
            "targets",
            "resync-nochange\tmailfold\toff\t1\t0.010\t0.004\t0.002\t20480\t0\t3.0\n\
             resync-nochange\tmbsync\toff\t1\t0.200\t0.100\t0.010\t5000\t0\t3.0\n\
             resync-new\tmailfold\toff\t1\t0.100\t0.080\t0.010\t90000\t0\t3.0\n\
             resync-new\tmbsync\toff\t1\t0.200\t0.100\t0.010\t5000\t0\t3.0\n\
             init-small\tmailfold\toff\t1\t4.0\t3.0\t1.0\t40000\t0\t3.0\n\
             init-small\tmbsync\toff\t1\t8.0\t3.0\t1.0\t5000\t0\t3.0\n",
            "init-small\t100\t50\t1000\tinitial sync, 100 small\n\
             resync-nochange\t100\t50\t1000\tre-sync, no change\n\
             resync-new\t100\t50\t1000\tre-sync, 100 new\n",
            "init-small\tmailfold\toff\t100\t100\nresync-new\tmailfold\toff\t99\t100\n",
        );
        let d = Data::load(&dir).unwrap();
        let ts = targets(&d, None);
        let find = |label: &str, m: Measure| {
            ts.iter()
                .find(|t| t.label == label && t.measure == m)
                .unwrap()
                .clone()
        };
        let nochange = find("re-sync, no change", Measure::Wall);
        assert_eq!(nochange.word(), "PASS", "{}", nochange.line());
        assert_eq!(nochange.ratio(), "0.05x");
        let new = find("re-sync, 100 new", Measure::Wall);
        assert_eq!(new.word(), "FAIL");
        assert!(new.line().contains("mirror incomplete: 99 of 100"));
        // 88 MB is over the fixed 64 MB.
        assert_eq!(find("re-sync, 100 new", Measure::Rss).word(), "FAIL");
        assert_eq!(find("re-sync, no change", Measure::Rss).word(), "PASS");
        // 4 s against 8 s is 0.5x: exactly the limit passes.
        assert_eq!(
            find("initial sync, 100 small", Measure::Wall).word(),
            "PASS"
        );
        // No limit client measured: SKIP, not PASS.
        assert!(ts
            .iter()
            .any(|t| t.other_name == "limit" && t.word() == "SKIP"));
        let report = build(&dir, None).unwrap();
        assert!(report.contains("PASS  re-sync, no change, fsync off, wall time"));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn floors_compare_each_limit_with_mbsync_and_initial_syncs_only_without_fsync() {
        let dir = run_dir(
            "floors",
            "resync-flags\tlimit\toff\t1\t0.150\t0.010\t0.010\t2000\t0\t3.0\n\
             resync-flags\tmbsync\ton\t1\t0.300\t0.100\t0.010\t5000\t0\t3.0\n\
             resync-flags\tmbsync\toff\t1\t0.300\t0.100\t0.010\t5000\t0\t3.0\n\
             init-small\tlimit\toff\t1\t3.0\t0.1\t2.0\t2000\t0\t3.0\n\
             init-small\tmbsync\ton\t1\t60.0\t3.0\t1.0\t5000\t0\t3.0\n\
             init-small\tmbsync\toff\t1\t7.5\t3.0\t1.0\t5000\t0\t3.0\n",
            "resync-flags\t100\t50\t1000\tre-sync, 1% flags\n\
             init-small\t100\t50\t1000\tinitial sync, 100 small\n",
            "",
        );
        let d = Data::load(&dir).unwrap();
        let f = floors(&d);
        // The re-sync limit against mbsync in both modes; the limit of an initial sync against
        // the fsync-off run only (it never fsyncs).
        assert_eq!(f.len(), 3, "{f:#?}");
        assert!(f[0].starts_with("re-sync, 1% flags, fsync on:"), "{f:#?}");
        assert!(f[1].starts_with("re-sync, 1% flags, fsync off: limit 150 ms / mbsync 300 ms = 0.50x (target ≤ 0.2x: the target is below the floor"), "{f:#?}");
        assert!(f[2].starts_with("initial sync, 100 small, fsync off: limit 3.00 s / mbsync 7.50 s = 0.40x (target ≤ 0.5x: the target is above the floor"), "{f:#?}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn huge_targets_fall_back_on_the_published_100k_figures() {
        let small = run_dir(
            "base",
            "init-small\tmailfold\toff\t1\t4.0\t3.0\t1.0\t40960\t0\n\
             resync-nochange\tmailfold\toff\t1\t0.020\t0.004\t0.002\t20480\t0\n\
             resync-new\tmailfold\toff\t1\t0.100\t0.080\t0.010\t30000\t0\n",
            "init-small\t100\t50\t1000\tinitial sync, 100k small\n\
             resync-nochange\t100\t50\t1000\tre-sync, no change\n\
             resync-new\t100\t50\t1000\tre-sync, 100 new\n",
            "",
        );
        let huge = run_dir(
            "huge",
            "init-huge\tmailfold\toff\t1\t50.0\t30.0\t10.0\t45000\t0\n\
             init-huge\tmbsync\toff\t1\t100.0\t30.0\t10.0\t9000\t0\n\
             resync-nochange-huge\tmailfold\toff\t1\t0.030\t0.004\t0.002\t20480\t0\n\
             resync-new-huge\tmailfold\toff\t1\t0.300\t0.080\t0.010\t30000\t0\n",
            "init-huge\t1000\t100\t1000\tinitial sync, 1M tiny\n\
             resync-nochange-huge\t1000\t100\t1000\tre-sync, no change, 1M\n\
             resync-new-huge\t1000\t100\t1000\tre-sync, 100 new, 1M\n",
            "",
        );
        let d = Data::load(&huge).unwrap();
        let b = Data::load(&small).unwrap();
        let ts = targets(&d, Some(&b));
        let find = |label: &str, m: Measure| {
            ts.iter()
                .find(|t| t.label == label && t.measure == m && t.factor != 1.0)
                .unwrap_or_else(|| panic!("no {label} {m:?} in {ts:#?}"))
        };
        // Initial wall 0.5x mbsync against 0.6x: PASS.
        assert_eq!(find("initial sync, 1M tiny", Measure::Wall).word(), "PASS");
        // Peak RSS 45000 KB against 1.2 x 40960 KB of the published run: PASS.
        let rss = find("initial sync, 1M tiny", Measure::Rss);
        assert_eq!(rss.word(), "PASS");
        assert!(
            rss.other_name.contains("published run at abc1234"),
            "{}",
            rss.other_name
        );
        // No change: 30 ms against 2 x 20 ms: PASS; 100 new: 300 ms against 2 x 100 ms: FAIL.
        assert_eq!(find("re-sync, no change, 1M", Measure::Wall).word(), "PASS");
        assert_eq!(find("re-sync, 100 new, 1M", Measure::Wall).word(), "FAIL");
        fs::remove_dir_all(&small).unwrap();
        fs::remove_dir_all(&huge).unwrap();
    }

    #[test]
    fn splice_replaces_only_between_the_markers() {
        let doc = format!("# Title\n\nprose\n{BEGIN}\nold 1.23 s\n{END}\nmore prose\n");
        let out = splice(&doc, &format!("{BEGIN}\nnew\n{END}\n")).unwrap();
        assert_eq!(
            out,
            format!("# Title\n\nprose\n{BEGIN}\nnew\n{END}\nmore prose\n")
        );
        assert!(splice("no markers", "x").is_err());
        assert!(splice(&format!("{END}\n{BEGIN}\n"), "x").is_err());
    }
}
