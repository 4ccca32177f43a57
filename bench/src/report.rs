//! Turns the raw measurements of bench/compare into the markdown table, the issue 7 target
//! lines (PASS/FAIL/SKIP) and the data file of the plot. Medians over the repeats; a run that
//! failed is left out of the median and shown in the table.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::Path;

/// One timed run (a line of results.tsv).
#[derive(Debug, Clone)]
struct Run {
    shape: String,
    tool: String,
    fsync: String,
    wall: f64,
    cpu: f64,
    rss_kb: f64,
    ok: bool,
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
}

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

type Key = (String, String, String); // shape, tool, fsync

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
            let stat = Stat {
                wall: median(ok.iter().map(|r| r.wall).collect()),
                cpu: median(ok.iter().map(|r| r.cpu).collect()),
                rss_kb: median(ok.iter().map(|r| r.rss_kb).collect()),
                failed: rs.len() - ok.len(),
                incomplete: None,
            };
            (k, stat)
        })
        .collect()
}

fn secs(v: Option<f64>) -> String {
    match v {
        Some(s) if s < 1.0 => format!("{:.0} ms", s * 1000.0),
        Some(s) => format!("{s:.2} s"),
        None => "—".into(),
    }
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

/// Builds the report from `dir/results.tsv` and `dir/shapes.tsv`; writes `dir/plot.dat` and
/// returns the markdown (table, then targets).
pub fn build(dir: &Path) -> io::Result<String> {
    let runs = parse_runs(&fs::read_to_string(dir.join("results.tsv"))?);
    let shapes = parse_shapes(&fs::read_to_string(dir.join("shapes.tsv"))?);
    let mut st = stats(&runs);
    let checks = parse_checks(&fs::read_to_string(dir.join("checks.tsv")).unwrap_or_default());
    for ((shape, tool, mode), stat) in st.iter_mut() {
        // A re-sync of an incomplete mirror inherits the gap of its initial sync.
        let base = if shape == "resync-nochange-20f" {
            "init-20f"
        } else if shape.starts_with("resync-") {
            "init-small"
        } else {
            shape.as_str()
        };
        let own = checks.get(&(shape.clone(), tool.clone(), mode.clone()));
        let inherited = checks.get(&(base.to_string(), tool.clone(), mode.clone()));
        stat.incomplete = own.or(inherited).copied();
    }
    let get = |shape: &str, tool: &str, fsync: &str| -> Stat {
        st.get(&(shape.to_string(), tool.to_string(), fsync.to_string()))
            .copied()
            .unwrap_or_default()
    };
    let mut modes: Vec<String> = runs.iter().map(|r| r.fsync.clone()).collect();
    modes.sort();
    modes.dedup();
    // "on" first: it is the default a user runs with.
    modes.reverse();

    let mut md = String::new();
    md.push_str(
        "| shape | messages / folders / MB | fsync | mailfold | mbsync | limit (writes) | limit (no writes) \
         | mailfold/mbsync | mailfold/limit | CPU s mailfold / mbsync | peak RSS MB mailfold / mbsync |\n\
         |---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for shape in &shapes {
        for mode in &modes {
            let m = get(&shape.id, "mailfold", mode);
            let b = get(&shape.id, "mbsync", mode);
            let l = get(&shape.id, "limit", mode);
            let n = get(&shape.id, "limit-nowrite", mode);
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
            let _ = writeln!(
                md,
                "| {} | {} / {} / {:.0} | {mode} | {}{} | {}{} | {} | {} | {} | {} | {:.2} / {:.2} | {} / {} |",
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
                m.cpu.unwrap_or(f64::NAN),
                b.cpu.unwrap_or(f64::NAN),
                mb(m.rss_kb),
                mb(b.rss_kb),
            );
        }
    }

    md.push_str("\nTargets (issue 7), medians of this run:\n\n```\n");
    // A number measured on an incomplete mirror passes nothing.
    let mut line = |ok: Option<bool>, what: String, s: Stat| {
        let (ok, note) = match s.incomplete {
            Some((have, want)) => (
                Some(false),
                format!(" [mirror incomplete: {have} of {want}]"),
            ),
            None => (ok, String::new()),
        };
        let what = what + &note;
        let word = match ok {
            Some(true) => "PASS",
            Some(false) => "FAIL",
            None => "SKIP",
        };
        let _ = writeln!(md, "{word}  {what}");
    };
    let cmp =
        |a: Option<f64>, b: Option<f64>, factor: f64| -> Option<bool> { Some(a? <= b? * factor) };
    for shape in ["init-10k", "init-20f"] {
        let label = shapes
            .iter()
            .find(|s| s.id == shape)
            .map_or(shape.to_string(), |s| s.text.clone());
        let m = get(shape, "mailfold", "on");
        let b = get(shape, "mbsync", "on");
        line(
            cmp(m.wall, b.wall, 0.6),
            format!(
                "{label}, fsync on: mailfold {} <= 0.6 x mbsync {}",
                secs(m.wall),
                secs(b.wall)
            ),
            m,
        );
        let m = get(shape, "mailfold", "off");
        let b = get(shape, "mbsync", "off");
        let l = get(shape, "limit", "off");
        line(
            cmp(m.wall, b.wall, 0.5),
            format!(
                "{label}, fsync off: mailfold {} <= 0.5 x mbsync {}",
                secs(m.wall),
                secs(b.wall)
            ),
            m,
        );
        line(
            cmp(m.wall, l.wall, 1.5),
            format!(
                "{label}, fsync off: mailfold {} <= 1.5 x limit {}",
                secs(m.wall),
                secs(l.wall)
            ),
            m,
        );
    }
    for mode in &modes {
        for (shape, factor) in [("resync-nochange", 0.1), ("resync-flags", 0.2)] {
            let m = get(shape, "mailfold", mode);
            let b = get(shape, "mbsync", mode);
            let label = shapes
                .iter()
                .find(|s| s.id == shape)
                .map_or(shape.to_string(), |s| s.text.clone());
            line(
                cmp(m.wall, b.wall, factor),
                format!(
                    "{label}, fsync {mode}: mailfold {} <= {factor} x mbsync {}",
                    secs(m.wall),
                    secs(b.wall)
                ),
                m,
            );
        }
    }
    // Memory: the 100,000-message runs against the 10,000-message initial sync.
    let rss = |shape: &str| -> Option<f64> {
        modes
            .iter()
            .filter_map(|mode| get(shape, "mailfold", mode).rss_kb)
            .reduce(f64::max)
    };
    let small = [
        "init-small",
        "resync-nochange",
        "resync-flags",
        "resync-new",
    ]
    .iter()
    .filter_map(|s| rss(s))
    .reduce(f64::max);
    let ten = rss("init-10k");
    line(
        cmp(small, ten, 1.2),
        format!(
            "peak RSS on the large small-message corpus {} MB <= 1.2 x the 10k initial sync {} MB",
            mb(small),
            mb(ten)
        ),
        Stat::default(),
    );
    let big = rss("big");
    let big_gap = modes
        .iter()
        .map(|mode| get("big", "mailfold", mode))
        .find(|s| s.incomplete.is_some())
        .unwrap_or_default();
    line(
        big.map(|kb| kb <= 64.0 * 1024.0),
        format!(
            "single large message: mailfold peak RSS {} MB <= 64 MB",
            mb(big)
        ),
        big_gap,
    );
    for shape in &shapes {
        for mode in &modes {
            let m = get(&shape.id, "mailfold", mode);
            let b = get(&shape.id, "mbsync", mode);
            if m.cpu.is_none() && b.cpu.is_none() {
                continue;
            }
            line(
                cmp(m.cpu, b.cpu, 1.0),
                format!(
                    "CPU {}, fsync {mode}: mailfold {:.2} s <= mbsync {:.2} s",
                    shape.text,
                    m.cpu.unwrap_or(f64::NAN),
                    b.cpu.unwrap_or(f64::NAN)
                ),
                m,
            );
        }
    }
    md.push_str("```\n");

    // Plot data: wall time against messages, initial sync of one folder, fsync off.
    let mut dat = String::from("# messages mailfold mbsync limit(writes) limit(no writes)\n");
    for id in ["init-1k", "init-10k", "init-50k"] {
        let Some(shape) = shapes.iter().find(|s| s.id == id) else {
            continue;
        };
        let v = |tool: &str| {
            get(id, tool, "off")
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
            "init-10k\tmailfold\toff\t1\t2.0\t1.0\t0.5\t1000\t0\n\
             init-10k\tmailfold\toff\t2\t9.0\t1.0\t0.5\t1000\t1\n\
             init-10k\tmailfold\toff\t3\t4.0\t1.0\t0.5\t1000\t0\n",
        );
        let st = stats(&runs);
        let s = st[&("init-10k".into(), "mailfold".into(), "off".into())];
        assert_eq!(s.wall, Some(3.0));
        assert_eq!(s.failed, 1);
        assert_eq!(s.cpu, Some(1.5));
    }
}

#[cfg(test)]
mod check_tests {
    use super::*;

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
}
