//! Per-folder progress bars for `mailfold sync`: messages done of the batch, bytes
//! received, and the download rate, one bar per folder being worked on.
//!
//! Two parts. [`Tracker`] is a plain state machine fed with the sync engine's
//! [`ProgressEvent`]s and a clock reading; it decides what each folder's line says and is
//! tested without a terminal. [`Bars`] is the [`Progress`] observer the sync calls: it feeds
//! the tracker and mirrors its state onto `indicatif` bars on stderr.
//!
//! Bars are drawn only when both stdout and stderr are terminals and neither `--json` nor
//! `-q` was given ([`Bars::wanted`]); otherwise the observer is never created and the output
//! is byte for byte what it was without bars. A folder's bar is removed when its batch is
//! done, so a thousand folders never mean a thousand lines; [`Bars::finish`] clears whatever
//! is left before the summary is printed.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use mailfold_sync::plan::FolderPath;
use mailfold_sync::{Progress, ProgressEvent};

/// The account line: a spinner, the account and its totals, the time so far.
const HEADER_TEMPLATE: &str = "{spinner} syncing {msg} ({elapsed})";
/// A folder's line: name, bar, messages done of announced, then [`detail`].
const FOLDER_TEMPLATE: &str = "  {prefix:24!} [{bar:24.cyan/blue}] {pos}/{len} messages, {msg}";

/// Most folders the tracker keeps at once. The applier works on one folder per connection,
/// so only a misbehaving event stream could exceed this; past it the oldest entry goes.
const MAX_FOLDERS: usize = 64;

/// What one folder's line shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderLine {
    /// The folder, as the sync names it locally.
    pub folder: String,
    /// Messages handled in this folder so far (downloads, uploads, flag and place changes).
    pub done: u64,
    /// Messages expected: the downloads announced so far, never less than `done`.
    pub total: u64,
    /// Body bytes received.
    pub bytes: u64,
    /// The server's declared size of the announced downloads, when it gave one.
    pub bytes_total: Option<u64>,
    /// Received bytes per second since the folder's work began (0 until time has passed).
    pub rate: u64,
}

#[derive(Debug, Clone)]
struct FolderState {
    line: FolderLine,
    started: Instant,
    order: u64,
}

/// The progress state machine: events in, folder lines out. See the module docs.
#[derive(Debug, Default)]
pub struct Tracker {
    folders: BTreeMap<FolderPath, FolderState>,
    planned: Option<(usize, usize)>,
    next_order: u64,
}

/// What an event did to the set of lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Nothing visible.
    None,
    /// The run's plan is known: messages to download and to upload.
    Planned {
        /// Downloads.
        downloads: usize,
        /// Uploads.
        uploads: usize,
    },
    /// A folder's line appeared or changed.
    Line(FolderLine),
    /// A folder's work is done: its line goes.
    Done(String),
}

impl Tracker {
    /// An empty tracker.
    pub fn new() -> Tracker {
        Tracker::default()
    }

    /// The run's totals from the `Planned` event: (downloads, uploads).
    pub fn planned(&self) -> Option<(usize, usize)> {
        self.planned
    }

    /// The lines of the folders being worked on, in the order their work began.
    pub fn lines(&self) -> Vec<FolderLine> {
        let mut v: Vec<&FolderState> = self.folders.values().collect();
        v.sort_by_key(|s| s.order);
        v.into_iter().map(|s| s.line.clone()).collect()
    }

    /// Applies one event seen at `now`.
    pub fn event(&mut self, event: ProgressEvent<'_>, now: Instant) -> Change {
        match event {
            ProgressEvent::Planned {
                downloads, uploads, ..
            } => {
                self.planned = Some((downloads, uploads));
                Change::Planned { downloads, uploads }
            }
            ProgressEvent::FolderStarted {
                folder,
                downloads,
                bytes,
            } => {
                let s = self.entry(folder, now);
                // A folder may start several batches (moves, then downloads): totals add up.
                s.line.total = s.line.total.saturating_add(downloads as u64);
                s.line.bytes_total = match (s.line.bytes_total, bytes) {
                    (Some(a), Some(b)) => Some(a.saturating_add(b)),
                    (a, b) => a.or(b),
                };
                Change::Line(s.line.clone())
            }
            ProgressEvent::Bytes { folder, bytes } => {
                let s = self.entry(folder, now);
                s.line.bytes = s.line.bytes.saturating_add(bytes);
                s.line.rate = rate(s.line.bytes, now.saturating_duration_since(s.started));
                Change::Line(s.line.clone())
            }
            ProgressEvent::Message { folder } => {
                let s = self.entry(folder, now);
                s.line.done = s.line.done.saturating_add(1);
                s.line.total = s.line.total.max(s.line.done);
                s.line.rate = rate(s.line.bytes, now.saturating_duration_since(s.started));
                Change::Line(s.line.clone())
            }
            ProgressEvent::FolderDone { folder } => match self.folders.remove(folder) {
                Some(s) => Change::Done(s.line.folder),
                None => Change::None,
            },
        }
    }

    fn entry(&mut self, folder: &FolderPath, now: Instant) -> &mut FolderState {
        if !self.folders.contains_key(folder) && self.folders.len() >= MAX_FOLDERS {
            let oldest = self
                .folders
                .iter()
                .min_by_key(|(_, s)| s.order)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.folders.remove(&k);
            }
        }
        let order = self.next_order;
        let s = self
            .folders
            .entry(folder.clone())
            .or_insert_with(|| FolderState {
                line: FolderLine {
                    folder: folder.to_string(),
                    done: 0,
                    total: 0,
                    bytes: 0,
                    bytes_total: None,
                    rate: 0,
                },
                started: now,
                order,
            });
        if s.order == order {
            self.next_order += 1;
        }
        s
    }
}

fn rate(bytes: u64, elapsed: Duration) -> u64 {
    let ms = elapsed.as_millis();
    if ms == 0 {
        return 0;
    }
    u64::try_from(u128::from(bytes) * 1000 / ms).unwrap_or(u64::MAX)
}

/// `1.5 MiB`-style sizes for the bars.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// The text after a folder's bar: bytes (of the declared total) and the rate.
pub fn detail(line: &FolderLine) -> String {
    let mut s = match line.bytes_total {
        Some(t) if t > 0 => format!("{} of {}", human_bytes(line.bytes), human_bytes(t)),
        _ => human_bytes(line.bytes),
    };
    if line.rate > 0 {
        s.push_str(&format!(", {}/s", human_bytes(line.rate)));
    }
    s
}

/// The bars on stderr: a [`Progress`] observer for one account's run.
pub struct Bars {
    account: String,
    multi: MultiProgress,
    header: ProgressBar,
    inner: Mutex<BarsInner>,
}

struct BarsInner {
    tracker: Tracker,
    bars: BTreeMap<String, ProgressBar>,
}

impl std::fmt::Debug for Bars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bars").finish_non_exhaustive()
    }
}

impl Bars {
    /// Whether bars should be drawn: both output streams are terminals (a script or a pipe
    /// gets exactly the output it got without bars), no `--json`, no `-q`.
    pub fn wanted(json: bool, quiet: bool) -> bool {
        !json && !quiet && std::io::stderr().is_terminal() && std::io::stdout().is_terminal()
    }

    /// Bars for the account `account`, drawn on stderr.
    pub fn new(account: &str) -> Bars {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let header = multi.add(ProgressBar::new_spinner());
        if let Ok(style) = ProgressStyle::with_template(HEADER_TEMPLATE) {
            header.set_style(style);
        }
        header.set_message(crate::term::line(account).into_owned());
        header.enable_steady_tick(Duration::from_millis(120));
        Bars {
            account: crate::term::line(account).into_owned(),
            multi,
            header,
            inner: Mutex::new(BarsInner {
                tracker: Tracker::new(),
                bars: BTreeMap::new(),
            }),
        }
    }

    /// Clears every bar; call before printing the summary.
    pub fn finish(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            for (_, bar) in std::mem::take(&mut inner.bars) {
                bar.finish_and_clear();
                self.multi.remove(&bar);
            }
        }
        self.header.finish_and_clear();
        let _ = self.multi.clear();
    }

    /// Shows `line` on its folder's bar, making the bar (fully set up, so its first frame
    /// is already right) when the folder has none yet.
    fn show(&self, inner: &mut BarsInner, line: &FolderLine) {
        if let Some(bar) = inner.bars.get(&line.folder) {
            bar.set_length(line.total);
            bar.set_position(line.done);
            bar.set_message(detail(line));
            return;
        }
        // Built with the non-drawing `with_*` methods, so nothing is drawn before the bar
        // belongs to the group.
        let mut bar = ProgressBar::new(line.total)
            // Folder names come from the server: one safe line.
            .with_prefix(crate::term::line(&line.folder).into_owned())
            .with_message(detail(line))
            .with_position(line.done);
        if let Ok(style) = ProgressStyle::with_template(FOLDER_TEMPLATE) {
            bar = bar.with_style(style.progress_chars("=> "));
        }
        let bar = self.multi.add(bar);
        inner.bars.insert(line.folder.clone(), bar);
    }
}

impl Progress for Bars {
    fn event(&self, event: ProgressEvent<'_>) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        match inner.tracker.event(event, Instant::now()) {
            Change::None => {}
            Change::Planned { downloads, uploads } => {
                self.header.set_message(format!(
                    "{}: {downloads} to download, {uploads} to upload",
                    self.account
                ));
            }
            Change::Line(line) => self.show(&mut inner, &line),
            Change::Done(folder) => {
                if let Some(bar) = inner.bars.remove(&folder) {
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &str) -> FolderPath {
        FolderPath(s.split('/').map(str::to_owned).collect())
    }

    #[test]
    fn tracker_follows_a_folder_from_start_to_done() {
        let t0 = Instant::now();
        let inbox = path("INBOX");
        let work = path("Lists/work");
        let mut t = Tracker::new();
        assert_eq!(
            t.event(
                ProgressEvent::Planned {
                    folders: 2,
                    downloads: 3,
                    uploads: 1,
                    ops: 9
                },
                t0
            ),
            Change::Planned {
                downloads: 3,
                uploads: 1
            }
        );
        assert_eq!(t.planned(), Some((3, 1)));
        let c = t.event(
            ProgressEvent::FolderStarted {
                folder: &inbox,
                downloads: 2,
                bytes: Some(4096),
            },
            t0,
        );
        let Change::Line(l) = c else { panic!("{c:?}") };
        assert_eq!(
            (l.done, l.total, l.bytes, l.bytes_total),
            (0, 2, 0, Some(4096))
        );
        t.event(
            ProgressEvent::Bytes {
                folder: &inbox,
                bytes: 2048,
            },
            t0 + Duration::from_millis(500),
        );
        let c = t.event(
            ProgressEvent::Message { folder: &inbox },
            t0 + Duration::from_secs(1),
        );
        let Change::Line(l) = c else { panic!("{c:?}") };
        assert_eq!((l.done, l.total, l.bytes), (1, 2, 2048));
        assert_eq!(l.rate, 2048, "2 KiB in one second");
        assert_eq!(detail(&l), "2.0 KiB of 4.0 KiB, 2.0 KiB/s");

        // A second folder starts; lines keep the order work began in.
        t.event(
            ProgressEvent::FolderStarted {
                folder: &work,
                downloads: 1,
                bytes: None,
            },
            t0 + Duration::from_secs(1),
        );
        let names: Vec<String> = t.lines().into_iter().map(|l| l.folder).collect();
        assert_eq!(names, ["INBOX", "Lists/work"]);

        // More messages than announced (flag changes count too): the total grows.
        for _ in 0..3 {
            t.event(
                ProgressEvent::Message { folder: &inbox },
                t0 + Duration::from_secs(2),
            );
        }
        let l = &t.lines()[0];
        assert_eq!((l.done, l.total), (4, 4));

        // A second batch of the same folder adds to its totals.
        t.event(
            ProgressEvent::FolderStarted {
                folder: &inbox,
                downloads: 2,
                bytes: Some(100),
            },
            t0 + Duration::from_secs(2),
        );
        let l = &t.lines()[0];
        assert_eq!((l.total, l.bytes_total), (6, Some(4196)));

        assert_eq!(
            t.event(ProgressEvent::FolderDone { folder: &inbox }, t0),
            Change::Done("INBOX".into())
        );
        assert_eq!(
            t.event(ProgressEvent::FolderDone { folder: &inbox }, t0),
            Change::None,
            "a second Done is nothing"
        );
        let names: Vec<String> = t.lines().into_iter().map(|l| l.folder).collect();
        assert_eq!(names, ["Lists/work"]);
    }

    #[test]
    fn events_without_a_start_still_make_a_line_and_memory_is_bounded() {
        let t0 = Instant::now();
        let mut t = Tracker::new();
        let p = path("Sent");
        let c = t.event(
            ProgressEvent::Bytes {
                folder: &p,
                bytes: 10,
            },
            t0,
        );
        assert!(matches!(c, Change::Line(ref l) if l.bytes == 10 && l.rate == 0));
        let paths: Vec<FolderPath> = (0..MAX_FOLDERS + 10)
            .map(|i| path(&format!("f{i}")))
            .collect();
        for p in &paths {
            t.event(ProgressEvent::Message { folder: p }, t0);
        }
        assert_eq!(t.lines().len(), MAX_FOLDERS);
        assert_eq!(
            t.lines().last().map(|l| l.folder.clone()),
            Some(format!("f{}", MAX_FOLDERS + 9))
        );
    }

    #[test]
    fn bar_templates_parse() {
        // A template indicatif rejects would silently fall back to its default style.
        assert!(ProgressStyle::with_template(HEADER_TEMPLATE).is_ok());
        assert!(ProgressStyle::with_template(FOLDER_TEMPLATE).is_ok());
    }

    #[test]
    fn sizes_read_like_a_person_writes_them() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024), "5.0 MiB");
        assert_eq!(human_bytes(u64::MAX), "16777216.0 TiB");
    }
}
