//! `rehydrate resume <run-id>`: continue a run that was stopped or killed; and
//! `rehydrate redrive <run-id>`: run it again on only the events that ended failed, rejected
//! or skipped. The run directory
//! holds the command line the run was started with (`spec.json`); the new run re-runs it, in a
//! run directory of its own linked to the old one (`resumed_from`), and leaves out every event
//! that already has a final outcome in the old run (or in the runs it resumed in turn). Across
//! the runs each event then has exactly one final outcome. Events that were in flight when the
//! old run was killed had no outcome yet, so they are sent again: the one case where a retry
//! cannot know whether the first attempt took effect.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::UInt64Type;
use serde::{Deserialize, Serialize};

use crate::report::{self, RunSummary};
use crate::{Error, Result};

/// What a run directory records of how the run was started.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedSpec {
    /// The arguments after the program name.
    pub argv: Vec<String>,
    /// The working directory, for relative paths.
    pub cwd: PathBuf,
}

pub const SPEC: &str = "spec.json";

/// An argument with any password of a URL in it removed (`postgres://app:pw@db/x` becomes
/// `postgres://app@db/x`): run directories are shared and kept, passwords must not be. A resume
/// then takes the password from the environment (PGPASSWORD, MYSQL_PWD, OPENSEARCH_PASSWORD).
pub fn without_password(arg: &str) -> std::borrow::Cow<'_, str> {
    match url::Url::parse(arg) {
        Ok(mut u) if u.password().is_some() && u.has_host() => {
            let _ = u.set_password(None);
            u.to_string().into()
        }
        _ => arg.into(),
    }
}

pub fn save(run_dir: &Path, argv: &[String]) -> Result<()> {
    let spec = SavedSpec {
        argv: argv.iter().map(|a| without_password(a).into_owned()).collect(),
        cwd: std::env::current_dir()?,
    };
    let path = run_dir.join(SPEC);
    let text = serde_json::to_string_pretty(&spec).map_err(|e| Error::Internal(e.to_string()))?;
    std::fs::write(&path, text + "\n").map_err(|e| Error::Report {
        path,
        message: e.to_string(),
    })
}

/// The events a resumed run leaves out: per origin, the positions that have a final outcome,
/// as sorted, merged ranges (a run's positions are mostly contiguous, so this stays small).
#[derive(Debug, Default, Clone)]
pub struct Done {
    ranges: HashMap<String, Vec<(u64, u64)>>,
    pub events: u64,
}

impl Done {
    fn from_positions(mut by_origin: HashMap<String, Vec<u64>>) -> Self {
        let mut done = Done::default();
        for (origin, mut positions) in by_origin.drain() {
            positions.sort_unstable();
            positions.dedup();
            done.events += positions.len() as u64;
            let mut ranges: Vec<(u64, u64)> = Vec::new();
            for p in positions {
                match ranges.last_mut() {
                    Some((_, end)) if *end + 1 == p => *end = p,
                    _ => ranges.push((p, p)),
                }
            }
            done.ranges.insert(origin, ranges);
        }
        done
    }

    pub fn contains(&self, origin: &str, position: u64) -> bool {
        let Some(ranges) = self.ranges.get(origin) else {
            return false;
        };
        let i = ranges.partition_point(|(start, _)| *start <= position);
        i > 0 && ranges[i - 1].1 >= position
    }

    /// Adds the positions `a..=b` of `origin`.
    fn insert(&mut self, origin: &str, a: u64, b: u64) {
        let ranges = self.ranges.entry(origin.to_owned()).or_default();
        let mut out = Vec::with_capacity(ranges.len() + 1);
        let (mut a, mut b) = (a, b);
        let mut placed = false;
        for &(s, e) in ranges.iter() {
            if e.saturating_add(1) < a {
                out.push((s, e));
            } else if b.saturating_add(1) < s {
                if !placed {
                    out.push((a, b));
                    placed = true;
                }
                out.push((s, e));
            } else {
                a = a.min(s);
                b = b.max(e);
            }
        }
        if !placed {
            out.push((a, b));
        }
        out.sort_unstable();
        *ranges = out;
    }

    /// Removes the positions `a..=b` of `origin`.
    fn remove(&mut self, origin: &str, a: u64, b: u64) {
        let Some(ranges) = self.ranges.get_mut(origin) else {
            return;
        };
        let mut out = Vec::with_capacity(ranges.len() + 1);
        for &(s, e) in ranges.iter() {
            if e < a || s > b {
                out.push((s, e));
                continue;
            }
            if s < a {
                out.push((s, a - 1));
            }
            if e > b {
                out.push((b + 1, e));
            }
        }
        *ranges = out;
    }

    /// These positions without those of `other`, counted.
    fn without(mut self, other: &Done) -> Done {
        for (origin, ranges) in &other.ranges {
            for &(a, b) in ranges {
                self.remove(origin, a, b);
            }
        }
        self.events = self.ranges.values().flatten().map(|(a, b)| b - a + 1).sum();
        self
    }
}

/// The events whose request was out, per run: `in-flight.ndjson` in the run directory. The
/// driver marks a request's events before it goes out (`sent`), and clears those whose answer
/// said they were not applied and that wait for another attempt (`sent: false`). An event that
/// is marked and has no final outcome was in flight when the run stopped: its delivery is unknown.
pub const IN_FLIGHT_LOG: &str = "in-flight.ndjson";

#[derive(Debug, Serialize, Deserialize)]
struct InFlightLine {
    sent: bool,
    origin: String,
    /// Inclusive position ranges.
    ranges: Vec<(u64, u64)>,
}

/// A run directory's log file `name`, opened for appending (one `write` a record).
fn append_log(run_dir: &Path, name: &str) -> Result<std::sync::Mutex<std::fs::File>> {
    let path = run_dir.join(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| Error::Report {
            path,
            message: e.to_string(),
        })?;
    Ok(std::sync::Mutex::new(file))
}

/// Appends `line` as one line of JSON to `text`.
fn push_line(text: &mut String, line: &impl Serialize) {
    if let Ok(l) = serde_json::to_string(line) {
        text.push_str(&l);
        text.push('\n');
    }
}

/// Writes `text` to a log in one `write` (a kill leaves whole lines, or a torn last one that
/// readers skip); a failure is a warning saying what a resume loses.
fn write_once(file: &std::sync::Mutex<std::fs::File>, text: &str, name: &str, loss: &str) {
    use std::io::Write;
    if text.is_empty() {
        return;
    }
    let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
    if let Err(e) = file.write_all(text.as_bytes()) {
        tracing::warn!("cannot write {name}: {e}; {loss}");
    }
}

/// Appends in-flight marks; each call is one `write`, made before the request goes out.
pub struct InFlightLog {
    file: std::sync::Mutex<std::fs::File>,
}

impl InFlightLog {
    pub fn create(run_dir: &Path) -> Result<Self> {
        Self::create_named(run_dir, IN_FLIGHT_LOG)
    }

    /// A log of the same ranges under another name ([`MATCHED_LOG`]).
    pub fn create_named(run_dir: &Path, name: &str) -> Result<Self> {
        Ok(Self {
            file: append_log(run_dir, name)?,
        })
    }

    /// Marks (`sent`) or clears the events at `places` (origin, position).
    pub fn mark<'a>(&self, sent: bool, places: impl IntoIterator<Item = (&'a str, u64)>) {
        let mut by_origin: HashMap<&str, Vec<u64>> = HashMap::new();
        for (origin, position) in places {
            by_origin.entry(origin).or_default().push(position);
        }
        let mut text = String::new();
        for (origin, mut positions) in by_origin {
            positions.sort_unstable();
            let mut ranges: Vec<(u64, u64)> = Vec::new();
            for p in positions {
                match ranges.last_mut() {
                    Some((_, end)) if *end + 1 >= p => *end = (*end).max(p),
                    _ => ranges.push((p, p)),
                }
            }
            let line = InFlightLine {
                sent,
                origin: origin.to_owned(),
                ranges,
            };
            push_line(&mut text, &line);
        }
        write_once(
            &self.file,
            &text,
            IN_FLIGHT_LOG,
            "a resume will not know which events were in flight",
        );
    }
}

/// The events the filter passed on to the action, per run: `matched.ndjson`, one line per batch,
/// written before the action sees the batch (the in-flight log's format, always `sent`).
pub const MATCHED_LOG: &str = "matched.ndjson";

/// The checkpoints the source passed, per run: `checkpoints.ndjson`, one line per mark with the
/// number (`seq`) of the decoded slice it came in; slices reach the filter in that order.
pub const CHECKPOINT_LOG: &str = "checkpoints.ndjson";

#[derive(Debug, Serialize, Deserialize)]
struct CheckpointLine {
    seq: u64,
    mark: crate::source::Mark,
}

/// Appends the checkpoints of each decoded slice as the filter takes it.
pub struct CheckpointLog {
    file: std::sync::Mutex<std::fs::File>,
}

impl CheckpointLog {
    pub fn create(run_dir: &Path) -> Result<Self> {
        Ok(Self {
            file: append_log(run_dir, CHECKPOINT_LOG)?,
        })
    }

    pub fn write(&self, seq: u64, marks: &[crate::source::Mark]) {
        let mut text = String::new();
        for mark in marks {
            let line = CheckpointLine {
                seq,
                mark: mark.clone(),
            };
            push_line(&mut text, &line);
        }
        write_once(
            &self.file,
            &text,
            CHECKPOINT_LOG,
            "a resume will read those origins from their start",
        );
    }
}

/// Reads a ranges log (in flight or matched): marks added, clears removed.
fn read_ranges(dir: &Path, name: &str) -> Done {
    let mut marked = Done::default();
    let Ok(text) = std::fs::read_to_string(dir.join(name)) else {
        return marked;
    };
    // A line cut off by the kill is ignored.
    for line in text
        .lines()
        .filter_map(|l| serde_json::from_str::<InFlightLine>(l).ok())
    {
        for (a, b) in line.ranges {
            if line.sent {
                marked.insert(&line.origin, a, b);
            } else {
                marked.remove(&line.origin, a, b);
            }
        }
    }
    marked
}

/// Where a resumed run starts each origin, from the checkpoints of the runs before it.
///
/// Slices of the source reach the filter in the order of their numbers, and the filter keeps
/// that order (a run whose selection reorders writes no checkpoints). So once an event of slice
/// `s` reached the action, every slice before `s` has been through the filter. A page of an
/// origin (from one checkpoint to the next) is settled when the filter is past the slice that
/// begins the next page and every event of the page it passed has a final outcome: the page's
/// other events were filtered out. A run starts each origin at its first page that is not
/// settled, and leaves out an origin whose every page is.
pub fn starts_of(run_dirs: &[PathBuf], done: &Done) -> HashMap<String, crate::source::Start> {
    use crate::source::Start;
    let mut best: HashMap<String, Start> = HashMap::new();
    for dir in run_dirs {
        let Ok(text) = std::fs::read_to_string(dir.join(CHECKPOINT_LOG)) else {
            continue;
        };
        let mut by_origin: HashMap<String, Vec<(u64, crate::source::Mark)>> = HashMap::new();
        for line in text
            .lines()
            .filter_map(|l| serde_json::from_str::<CheckpointLine>(l).ok())
        {
            by_origin
                .entry(line.mark.origin.to_string())
                .or_default()
                .push((line.seq, line.mark));
        }
        let matched = read_ranges(dir, MATCHED_LOG);
        // How far the filter got: the slice of the furthest event that reached the action, at
        // least (an origin's events after its last checkpoint count as that checkpoint's slice).
        let mut passed: Option<u64> = None;
        for (origin, ranges) in &matched.ranges {
            let Some(marks) = by_origin.get(origin) else {
                continue;
            };
            for &(_, b) in ranges {
                let seq = marks
                    .iter()
                    .filter(|(_, m)| !m.end && m.position <= b)
                    .map(|(s, _)| *s)
                    .max();
                passed = passed.max(seq);
            }
        }
        for (origin, marks) in by_origin {
            let mut start = Start::At {
                position: marks[0].1.position,
                key: marks[0].1.key.clone(),
            };
            for pair in marks.windows(2) {
                let ((_, page), (next_seq, next)) = (&pair[0], &pair[1]);
                let through = passed.is_some_and(|p| p >= *next_seq);
                let all_done = matched.ranges.get(&origin).is_none_or(|ranges| {
                    ranges
                        .iter()
                        .filter_map(|&(a, b)| {
                            let (a, b) = (a.max(page.position), b.min(next.position.saturating_sub(1)));
                            (a <= b).then_some((a, b))
                        })
                        .all(|(a, b)| (a..=b).all(|p| done.contains(&origin, p)))
                });
                if !(through && all_done) {
                    break;
                }
                start = if next.end {
                    Start::Complete
                } else {
                    Start::At {
                        position: next.position,
                        key: next.key.clone(),
                    }
                };
            }
            let further = match (best.get(&origin), &start) {
                (None, _) => true,
                (Some(Start::Complete), _) => false,
                (Some(_), Start::Complete) => true,
                (Some(Start::At { position: a, .. }), Start::At { position: b, .. }) => b > a,
            };
            if further {
                best.insert(origin, start);
            }
        }
    }
    best
}

/// The events a run (and the runs it resumed) had out when it stopped: marked in flight and
/// without a final outcome in `done`.
fn in_flight_of(run_dirs: &[PathBuf], done: &Done) -> Done {
    let mut marked = Done::default();
    for dir in run_dirs {
        // A line cut off by the kill was written before its request went out: it never left.
        for (origin, ranges) in read_ranges(dir, IN_FLIGHT_LOG).ranges {
            for (a, b) in ranges {
                marked.insert(&origin, a, b);
            }
        }
    }
    marked.without(done)
}

/// A run to resume: its recorded command line and what it (and the runs it resumed) finished.
pub struct Resume {
    pub run_id: String,
    pub spec: SavedSpec,
    /// Resume: the events to leave out. Re-drive: the only events to take.
    pub done: Done,
    pub redrive: bool,
    /// The events that were in flight when the run stopped (delivery unknown); a resume sends
    /// them again and counts that earlier attempt.
    pub in_flight: Done,
    /// Where each origin starts again (resume only).
    pub starts: HashMap<String, crate::source::Start>,
}

/// Loads run `run_id` under `report_dir` for resuming (`redrive` false: every event with an
/// outcome in it or the runs it resumed is left out) or re-driving (`redrive`: only its events
/// that ended failed, rejected or skipped are taken).
pub fn load(report_dir: &Path, run_id: &str, redrive: bool) -> Result<Resume> {
    let run_dir = report_dir.join(run_id);
    let spec_path = run_dir.join(SPEC);
    let text = std::fs::read_to_string(&spec_path).map_err(|e| {
        Error::usage(format!(
            "cannot resume {run_id}: {} ({e}); list the runs with rehydrate report \"SELECT run_id, status FROM runs\" (and --report-dir where they are)",
            spec_path.display()
        ))
    })?;
    let spec: SavedSpec = serde_json::from_str(&text).map_err(|e| Error::Report {
        path: spec_path.clone(),
        message: format!("not a saved run spec ({e})"),
    })?;
    let mut positions: HashMap<String, Vec<u64>> = HashMap::new();
    let mut dirs = Vec::new();
    let mut next = Some(run_id.to_owned());
    let mut seen = 0;
    while let Some(id) = next.take() {
        seen += 1;
        if seen > 10_000 {
            return Err(Error::Internal("resumed_from links form a cycle".into()));
        }
        let dir = report_dir.join(&id);
        for batch in outcomes_of(&dir)? {
            collect(&batch, &mut positions, redrive);
        }
        dirs.push(dir.clone());
        let summary: Option<RunSummary> = std::fs::read_to_string(dir.join("run.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        if summary.as_ref().is_some_and(|s| s.dry_run) {
            return Err(Error::usage(format!(
                "{id} was a dry run: nothing to resume; run the command without --dry-run"
            )));
        }
        next = if redrive {
            None
        } else {
            summary.and_then(|s| s.resumed_from)
        };
    }
    let done = Done::from_positions(positions);
    // (A re-drive takes only events with a final outcome: none of them is in doubt.)
    let (in_flight, starts) = if redrive {
        (Done::default(), HashMap::new())
    } else {
        (in_flight_of(&dirs, &done), starts_of(&dirs, &done))
    };
    Ok(Resume {
        run_id: run_id.to_owned(),
        spec,
        done,
        redrive,
        in_flight,
        starts,
    })
}

/// The outcome batches of a run: its Parquet file, or its log when it never finished.
fn outcomes_of(run_dir: &Path) -> Result<Vec<RecordBatch>> {
    let parquet = run_dir.join(report::OUTCOMES);
    if parquet.is_file() {
        let file = std::fs::File::open(&parquet)?;
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)?.build()?;
        return Ok(reader.collect::<std::result::Result<_, _>>()?);
    }
    let log = run_dir.join(report::OUTCOMES_LOG);
    if log.is_file() {
        return report::read_log(&log);
    }
    Ok(Vec::new())
}

/// The key of an event's place in [`Done`]: its origin, or, for an outcome of one route of a run
/// of several, the route and the origin (each route finishes an event on its own).
pub fn route_key<'a>(route: Option<&str>, origin: &'a str) -> std::borrow::Cow<'a, str> {
    match route {
        None => std::borrow::Cow::Borrowed(origin),
        Some(r) => std::borrow::Cow::Owned(format!("{r}\u{1f}{origin}")),
    }
}

fn collect(batch: &RecordBatch, into: &mut HashMap<String, Vec<u64>>, only_unfinished: bool) {
    let (Some(origin), Some(position)) = (batch.column_by_name("origin"), batch.column_by_name("position")) else {
        return;
    };
    let origin = origin.as_string::<i32>();
    let position = position.as_primitive::<UInt64Type>();
    let route = batch.column_by_name("route").map(|r| r.as_string::<i32>().clone());
    let status = batch.column_by_name("status").map(|s| s.as_string::<i32>().clone());
    for i in 0..batch.num_rows() {
        let unfinished = status.as_ref().is_some_and(|s| s.value(i) != "succeeded");
        if only_unfinished && !unfinished {
            continue;
        }
        if origin.is_valid(i) && position.is_valid(i) {
            let route = route.as_ref().filter(|r| r.is_valid(i)).map(|r| r.value(i));
            into.entry(route_key(route, origin.value(i)).into_owned())
                .or_default()
                .push(position.value(i));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_marks_are_ranges_that_add_and_clear() {
        let dir = tempfile::tempdir().unwrap();
        let log = InFlightLog::create(dir.path()).unwrap();
        log.mark(true, [("a", 1), ("a", 2), ("a", 3), ("b", 7)]);
        log.mark(false, [("a", 2)]);
        log.mark(true, [("a", 10), ("a", 11)]);
        let done = Done::from_positions(HashMap::from([("a".to_owned(), vec![10])]));
        let in_flight = in_flight_of(&[dir.path().to_owned()], &done);
        assert_eq!(in_flight.events, 4, "{in_flight:?}");
        for (o, p, want) in [
            ("a", 1, true),
            ("a", 2, false),
            ("a", 3, true),
            ("a", 10, false),
            ("a", 11, true),
            ("b", 7, true),
        ] {
            assert_eq!(in_flight.contains(o, p), want, "{o}:{p}");
        }
        // A line cut off by a kill is ignored.
        std::fs::write(dir.path().join(IN_FLIGHT_LOG), "{\"sent\":true,\"origin\":\"a\",\"ran").unwrap();
        assert_eq!(in_flight_of(&[dir.path().to_owned()], &Done::default()).events, 0);
    }

    #[test]
    fn a_page_is_settled_once_the_filter_is_past_it_and_its_events_are_done() {
        use crate::source::{Mark, Start};
        let dir = tempfile::tempdir().unwrap();
        let marks = CheckpointLog::create(dir.path()).unwrap();
        let mark = |origin: &str, position, key: Option<&str>, end| Mark {
            origin: std::sync::Arc::from(origin),
            position,
            key: key.map(str::to_owned),
            end,
        };
        // Segment 0: three pages, the filter reached the third. Segment 1: two pages and its
        // end. A file after them, whose first event reached the action.
        marks.write(1, &[mark("t#0/2", 1, None, false)]);
        marks.write(2, &[mark("t#0/2", 41, Some("k41"), false)]);
        marks.write(3, &[mark("t#0/2", 81, Some("k81"), false)]);
        marks.write(4, &[mark("t#1/2", 1, None, false)]);
        marks.write(5, &[mark("t#1/2", 41, Some("j41"), false)]);
        marks.write(6, &[mark("t#1/2", 61, None, true)]);
        marks.write(7, &[mark("f.ndjson", 0, None, false)]);
        let matched = InFlightLog::create_named(dir.path(), MATCHED_LOG).unwrap();
        let places: Vec<(&str, u64)> = (1..=10)
            .map(|p| ("t#0/2", p))
            .chain((45..=50).map(|p| ("t#0/2", p)))
            .chain([("t#0/2", 85), ("t#1/2", 2), ("t#1/2", 50), ("f.ndjson", 5)])
            .collect();
        matched.mark(true, places.iter().copied());
        let all_but = |missing: &[(&str, u64)]| {
            let mut by: HashMap<String, Vec<u64>> = HashMap::new();
            for &(o, p) in &places {
                if !missing.contains(&(o, p)) {
                    by.entry(o.to_owned()).or_default().push(p);
                }
            }
            Done::from_positions(by)
        };
        let dirs = [dir.path().to_owned()];
        // The file's event and segment 0's third page are not done.
        let starts = starts_of(&dirs, &all_but(&[("t#0/2", 85), ("f.ndjson", 5)]));
        assert_eq!(
            starts["t#0/2"],
            Start::At {
                position: 81,
                key: Some("k81".into())
            }
        );
        assert_eq!(starts["t#1/2"], Start::Complete);
        assert_eq!(starts["f.ndjson"], Start::At { position: 0, key: None });
        // An event of segment 0's second page without an outcome keeps that page unsettled.
        let starts = starts_of(&dirs, &all_but(&[("t#0/2", 47), ("t#0/2", 85)]));
        assert_eq!(
            starts["t#0/2"],
            Start::At {
                position: 41,
                key: Some("k41".into())
            }
        );
        // Without the file's event, the filter is known to be past slice 5 only: segment 1's
        // last page is not known to be through the filter.
        std::fs::write(dir.path().join(MATCHED_LOG), "").unwrap();
        matched.mark(true, places.iter().copied().filter(|p| p.0 != "f.ndjson"));
        let starts = starts_of(&dirs, &all_but(&[]));
        assert_eq!(
            starts["t#1/2"],
            Start::At {
                position: 41,
                key: Some("j41".into())
            }
        );
    }

    #[test]
    fn saved_command_lines_hold_no_password() {
        assert_eq!(
            without_password("postgres://app:s3cret@db:5432/shop"),
            "postgres://app@db:5432/shop"
        );
        assert_eq!(
            without_password("https://ana:pw@search:9200"),
            "https://ana@search:9200/"
        );
        assert_eq!(without_password("source = 'a:b@c'"), "source = 'a:b@c'");
        assert_eq!(without_password("testdata/events.ndjson"), "testdata/events.ndjson");
    }

    #[test]
    fn ranges_answer_membership() {
        let mut m = HashMap::new();
        m.insert("f".to_owned(), vec![5, 1, 2, 3, 9, 10, 2]);
        let d = Done::from_positions(m);
        assert_eq!(d.events, 6);
        for (p, want) in [
            (0, false),
            (1, true),
            (3, true),
            (4, false),
            (5, true),
            (8, false),
            (10, true),
            (11, false),
        ] {
            assert_eq!(d.contains("f", p), want, "{p}");
        }
        assert!(!d.contains("g", 1));
    }
}
