//! Build progress from `Control.Status`, rendered like buildctl's `progressui`.
//!
//! Two layers, so the logic is testable without a terminal:
//! - [`ProgressState`] is a pure state machine: [`ProgressState::apply`] merges one
//!   incremental [`StatusResponse`] (vertices by digest, statuses by ID, partial log lines
//!   per vertex) and returns the [`Event`]s it implies;
//! - [`Renderer`] turns events into output on stderr for a [`ProgressMode`]: `plain`
//!   (`#N name`, `#N CACHED`, `#N 0.123 log`, `#N DONE 1.2s`, `#N ERROR: …`), `tty` (an
//!   indicatif line per running vertex), `rawjson` (one JSON object per status message) or
//!   `quiet`.
//!
//! Nothing here writes to stdout: in frontend mode stdout is the gRPC pipe.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{IsTerminal, Write};
use std::str::FromStr;
use std::time::Duration;

use crate::proto::moby::buildkit::v1::{StatusResponse, Vertex};

/// `--progress`, as buildctl.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressMode {
    /// `tty` when stderr is a terminal, else `plain`.
    #[default]
    Auto,
    /// Live lines per vertex.
    Tty,
    /// Line-oriented log.
    Plain,
    /// One JSON object per status message.
    RawJson,
    /// Nothing.
    Quiet,
}

impl FromStr for ProgressMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(ProgressMode::Auto),
            "tty" => Ok(ProgressMode::Tty),
            "plain" => Ok(ProgressMode::Plain),
            "rawjson" => Ok(ProgressMode::RawJson),
            "quiet" => Ok(ProgressMode::Quiet),
            other => Err(format!(
                "unknown progress mode `{other}`; expected auto, tty, plain, rawjson or quiet"
            )),
        }
    }
}

impl fmt::Display for ProgressMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProgressMode::Auto => "auto",
            ProgressMode::Tty => "tty",
            ProgressMode::Plain => "plain",
            ProgressMode::RawJson => "rawjson",
            ProgressMode::Quiet => "quiet",
        })
    }
}

impl ProgressMode {
    /// Resolves `auto` against whether stderr is a terminal.
    pub fn resolve(self, stderr_is_tty: bool) -> ProgressMode {
        match self {
            ProgressMode::Auto if stderr_is_tty => ProgressMode::Tty,
            ProgressMode::Auto => ProgressMode::Plain,
            m => m,
        }
    }
}

/// Something worth showing, derived from status updates.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A vertex started (or was found cached); `index` is its `#N`.
    Started {
        /// `#N`.
        index: usize,
        /// The vertex name (`[internal] load …`, `docker-image://…`, a custom name).
        name: String,
    },
    /// The vertex came from the cache.
    Cached {
        /// `#N`.
        index: usize,
    },
    /// A sub-status (pulling a layer, exporting) finished.
    Status {
        /// `#N` of the vertex it belongs to.
        index: usize,
        /// What it was (`sha256:… `, `exporting layers`).
        name: String,
        /// Bytes or items done.
        current: i64,
        /// Total, 0 when unknown.
        total: i64,
        /// How long it took.
        elapsed: Option<Duration>,
    },
    /// One complete line of output from a RUN.
    Log {
        /// `#N`.
        index: usize,
        /// Seconds since the vertex started.
        offset: Option<Duration>,
        /// 1 = stdout, 2 = stderr.
        stream: i64,
        /// The line, without its newline.
        line: String,
    },
    /// The vertex finished successfully.
    Done {
        /// `#N`.
        index: usize,
        /// Run time.
        elapsed: Option<Duration>,
    },
    /// The vertex failed.
    Error {
        /// `#N`.
        index: usize,
        /// The daemon's message.
        message: String,
    },
    /// A build warning (`LLBBridge.Warn`, lint rules).
    Warning {
        /// `#N` of the vertex, if it was shown.
        index: Option<usize>,
        /// Short text.
        short: String,
        /// Longer explanation lines.
        detail: Vec<String>,
        /// Where to read more.
        url: String,
    },
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

impl Event {
    /// The `#N` this event belongs to.
    pub fn index(&self) -> Option<usize> {
        match self {
            Event::Started { index, .. }
            | Event::Cached { index }
            | Event::Status { index, .. }
            | Event::Log { index, .. }
            | Event::Done { index, .. }
            | Event::Error { index, .. } => Some(*index),
            Event::Warning { index, .. } => *index,
        }
    }

    /// The event as buildctl's plain printer writes it (one or more lines).
    pub fn plain(&self) -> Vec<String> {
        match self {
            Event::Started { index, name } => vec![format!("#{index} {name}")],
            Event::Cached { index } => vec![format!("#{index} CACHED")],
            Event::Status {
                index,
                name,
                current,
                total,
                elapsed,
            } => {
                let mut s = format!("#{index} {name}");
                if *total > 0 {
                    s.push_str(&format!(
                        " {} / {}",
                        human_bytes(*current),
                        human_bytes(*total)
                    ));
                } else if *current > 0 {
                    s.push_str(&format!(" {}", human_bytes(*current)));
                }
                if let Some(d) = elapsed {
                    s.push_str(&format!(" {}", secs(*d)));
                }
                s.push_str(" done");
                vec![s]
            }
            Event::Log {
                index,
                offset,
                line,
                ..
            } => match offset {
                Some(d) => vec![format!("#{index} {:.3} {line}", d.as_secs_f64())],
                None => vec![format!("#{index} {line}")],
            },
            Event::Done { index, elapsed } => match elapsed {
                Some(d) => vec![format!("#{index} DONE {}", secs(*d))],
                None => vec![format!("#{index} DONE")],
            },
            Event::Error { index, message } => vec![format!("#{index} ERROR: {message}")],
            Event::Warning {
                index,
                short,
                detail,
                url,
            } => {
                let prefix = index.map(|i| format!("#{i} ")).unwrap_or_default();
                let mut v = vec![format!("{prefix}WARN: {short}")];
                v.extend(detail.iter().map(|d| format!("{prefix}{d}")));
                if !url.is_empty() {
                    v.push(format!("{prefix}More info: {url}"));
                }
                v
            }
        }
    }
}

/// Bytes as buildctl shows them (`1.23MB`, decimal units).
pub fn human_bytes(n: i64) -> String {
    let n = n.max(0) as f64;
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{}{}", n as i64, UNITS[0])
    } else {
        format!("{v:.2}{}", UNITS[u])
    }
}

fn ts(t: &Option<prost_types::Timestamp>) -> Option<Duration> {
    t.as_ref().and_then(|t| {
        if t.seconds < 0 {
            None
        } else {
            Some(Duration::new(
                t.seconds as u64,
                t.nanos.clamp(0, 999_999_999) as u32,
            ))
        }
    })
}

fn between(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) if b >= a => Some(b - a),
        _ => None,
    }
}

#[derive(Debug, Default, Clone)]
struct VertexState {
    name: String,
    index: Option<usize>,
    started: Option<Duration>,
    completed: Option<Duration>,
    cached: bool,
    error: String,
    finished_reported: bool,
    partial_log: Vec<u8>,
    log_stream: i64,
}

/// The merged view of one build's progress; see the module docs.
#[derive(Debug, Default)]
pub struct ProgressState {
    vertices: BTreeMap<String, VertexState>,
    statuses_done: std::collections::BTreeSet<String>,
    next_index: usize,
    warnings: Vec<Event>,
}

impl ProgressState {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Merges one status message; returns what changed, in display order.
    pub fn apply(&mut self, resp: &StatusResponse) -> Vec<Event> {
        let mut out = Vec::new();
        for v in &resp.vertexes {
            self.merge_vertex(v, &mut out);
        }
        // Completions go last, after the statuses and logs that arrived with them.
        let mut finished = Vec::new();
        for v in &resp.vertexes {
            if !finished.contains(&v.digest) {
                finished.push(v.digest.clone());
            }
        }
        for s in &resp.statuses {
            let complete = s.completed.is_some();
            if !complete || !self.statuses_done.insert(format!("{}\0{}", s.vertex, s.id)) {
                continue;
            }
            let Some(index) = self.index_of(&s.vertex, &mut out) else {
                continue;
            };
            out.push(Event::Status {
                index,
                name: if s.name.is_empty() {
                    s.id.clone()
                } else {
                    s.name.clone()
                },
                current: s.current,
                total: s.total,
                elapsed: between(ts(&s.started), ts(&s.completed)),
            });
        }
        for l in &resp.logs {
            let Some(index) = self.index_of(&l.vertex, &mut out) else {
                continue;
            };
            let vs = self
                .vertices
                .get_mut(&l.vertex)
                .expect("indexed vertex exists");
            let offset = between(vs.started, ts(&l.timestamp));
            vs.log_stream = l.stream;
            vs.partial_log.extend_from_slice(&l.msg);
            while let Some(pos) = vs.partial_log.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = vs.partial_log.drain(..=pos).collect();
                let line = String::from_utf8_lossy(&line[..line.len() - 1])
                    .trim_end_matches('\r')
                    .to_string();
                out.push(Event::Log {
                    index,
                    offset,
                    stream: l.stream,
                    line,
                });
            }
        }
        for w in &resp.warnings {
            let index = self.vertices.get(&w.vertex).and_then(|v| v.index);
            let ev = Event::Warning {
                index,
                short: String::from_utf8_lossy(&w.short).into_owned(),
                detail: w
                    .detail
                    .iter()
                    .map(|d| String::from_utf8_lossy(d).into_owned())
                    .collect(),
                url: w.url.clone(),
            };
            self.warnings.push(ev.clone());
            out.push(ev);
        }
        for d in finished {
            self.finish_vertex(&d, &mut out);
        }
        out
    }

    /// All warnings seen so far (for a summary at the end).
    pub fn warnings(&self) -> &[Event] {
        &self.warnings
    }

    /// Vertices seen so far, as (`#N` or none, name, error text).
    pub fn failed(&self) -> Vec<(Option<usize>, String, String)> {
        self.vertices
            .values()
            .filter(|v| !v.error.is_empty())
            .map(|v| (v.index, v.name.clone(), v.error.clone()))
            .collect()
    }

    fn index_of(&mut self, digest: &str, out: &mut Vec<Event>) -> Option<usize> {
        let vs = self.vertices.get_mut(digest)?;
        if vs.index.is_none() {
            self.next_index += 1;
            vs.index = Some(self.next_index);
            out.push(Event::Started {
                index: self.next_index,
                name: vs.name.clone(),
            });
        }
        vs.index
    }

    fn merge_vertex(&mut self, v: &Vertex, out: &mut Vec<Event>) {
        let vs = self.vertices.entry(v.digest.clone()).or_default();
        if !v.name.is_empty() {
            vs.name = v.name.clone();
        }
        if let Some(s) = ts(&v.started) {
            vs.started = Some(s);
        }
        if let Some(c) = ts(&v.completed) {
            vs.completed = Some(c);
        }
        vs.cached |= v.cached;
        if !v.error.is_empty() {
            vs.error = v.error.clone();
        }
        let show = vs.started.is_some() || vs.cached || vs.completed.is_some();
        if !show {
            return;
        }
        self.index_of(&v.digest, out);
    }

    fn finish_vertex(&mut self, digest: &str, out: &mut Vec<Event>) {
        let Some(vs) = self.vertices.get_mut(digest) else {
            return;
        };
        let Some(index) = vs.index else {
            return;
        };
        if vs.completed.is_some() && !vs.finished_reported {
            vs.finished_reported = true;
            if !vs.partial_log.is_empty() {
                let line = String::from_utf8_lossy(&vs.partial_log).into_owned();
                vs.partial_log.clear();
                out.push(Event::Log {
                    index,
                    offset: between(vs.started, vs.completed),
                    stream: vs.log_stream,
                    line,
                });
            }
            if vs.cached {
                out.push(Event::Cached { index });
            } else if !vs.error.is_empty() {
                out.push(Event::Error {
                    index,
                    message: vs.error.clone(),
                });
            } else {
                out.push(Event::Done {
                    index,
                    elapsed: between(vs.started, vs.completed),
                });
            }
        }
    }
}

/// Renders progress to stderr (or any writer, for tests).
pub struct Renderer {
    mode: ProgressMode,
    state: ProgressState,
    out: Box<dyn Write + Send>,
    last_index: Option<usize>,
    tty: Option<TtyView>,
}

impl fmt::Debug for Renderer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Renderer")
            .field("mode", &self.mode)
            .finish()
    }
}

struct TtyView {
    multi: indicatif::MultiProgress,
    bars: BTreeMap<usize, (indicatif::ProgressBar, String)>,
    logs: BTreeMap<usize, std::collections::VecDeque<String>>,
}

/// Lines of output kept per vertex in tty mode, shown when the vertex fails.
const TTY_LOG_TAIL: usize = 12;

impl Renderer {
    /// A renderer on stderr; `auto` is resolved here.
    pub fn stderr(mode: ProgressMode) -> Renderer {
        let mode = mode.resolve(std::io::stderr().is_terminal());
        Renderer::with_writer(mode, Box::new(std::io::stderr()))
    }

    /// A renderer on any writer (`tty` falls back to `plain` off a terminal writer).
    pub fn with_writer(mode: ProgressMode, out: Box<dyn Write + Send>) -> Renderer {
        let tty = (mode == ProgressMode::Tty).then(|| TtyView {
            multi: indicatif::MultiProgress::with_draw_target(
                indicatif::ProgressDrawTarget::stderr(),
            ),
            bars: BTreeMap::new(),
            logs: BTreeMap::new(),
        });
        Renderer {
            mode: mode.resolve(false),
            state: ProgressState::new(),
            out,
            last_index: None,
            tty,
        }
    }

    /// The resolved mode.
    pub fn mode(&self) -> ProgressMode {
        self.mode
    }

    /// The state so far.
    pub fn state(&self) -> &ProgressState {
        &self.state
    }

    /// Handles one status message.
    pub fn handle(&mut self, resp: &StatusResponse) {
        if self.mode == ProgressMode::Quiet {
            self.state.apply(resp);
            return;
        }
        if self.mode == ProgressMode::RawJson {
            self.state.apply(resp);
            let _ = writeln!(self.out, "{}", status_json(resp));
            return;
        }
        let events = self.state.apply(resp);
        if let Some(tty) = &mut self.tty {
            for ev in &events {
                tty_event(tty, ev);
            }
            return;
        }
        for ev in &events {
            if ev.index() != self.last_index && ev.index().is_some() && self.last_index.is_some() {
                let _ = writeln!(self.out);
            }
            if ev.index().is_some() {
                self.last_index = ev.index();
            }
            for line in ev.plain() {
                let _ = writeln!(self.out, "{line}");
            }
        }
        let _ = self.out.flush();
    }

    /// Prints a line outside the vertex stream (e.g. `build cancelled`).
    pub fn note(&mut self, text: &str) {
        if self.mode == ProgressMode::Quiet || self.mode == ProgressMode::RawJson {
            return;
        }
        match &self.tty {
            Some(t) => {
                let _ = t.multi.println(text);
            }
            None => {
                let _ = writeln!(self.out, "{text}");
                let _ = self.out.flush();
            }
        }
    }

    /// Ends rendering: stops spinners and lists warnings.
    pub fn finish(&mut self) {
        if let Some(tty) = &mut self.tty {
            for (_, (bar, name)) in std::mem::take(&mut tty.bars) {
                bar.abandon_with_message(format!("{name} (interrupted)"));
            }
        }
        if matches!(self.mode, ProgressMode::Plain | ProgressMode::Tty) {
            let n = self.state.warnings().len();
            if n > 0 {
                let mut lines = vec![String::new(), format!("{n} warning(s):")];
                for w in self.state.warnings() {
                    lines.extend(w.plain().into_iter().map(|l| format!("  {l}")));
                }
                for l in lines {
                    self.note(&l);
                }
            }
        }
    }
}

fn tty_event(tty: &mut TtyView, ev: &Event) {
    use indicatif::{ProgressBar, ProgressStyle};
    match ev {
        Event::Started { index, name } => {
            let bar = tty.multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner} #{prefix} {wide_msg} {elapsed:>5}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(index.to_string());
            bar.set_message(name.clone());
            bar.enable_steady_tick(Duration::from_millis(120));
            tty.bars.insert(*index, (bar, name.clone()));
        }
        Event::Cached { index } => {
            if let Some((bar, name)) = tty.bars.remove(index) {
                bar.set_style(finished_style());
                bar.finish_with_message(format!("{name}  CACHED"));
            }
        }
        Event::Done { index, elapsed } => {
            if let Some((bar, name)) = tty.bars.remove(index) {
                bar.set_style(finished_style());
                let d = elapsed.map(secs).unwrap_or_default();
                bar.finish_with_message(format!("{name}  {d}"));
            }
            tty.logs.remove(index);
        }
        Event::Error { index, message } => {
            if let Some((bar, name)) = tty.bars.remove(index) {
                bar.set_style(finished_style());
                bar.finish_with_message(format!("{name}  ERROR"));
            }
            if let Some(lines) = tty.logs.remove(index) {
                for l in lines {
                    let _ = tty.multi.println(format!("#{index} {l}"));
                }
            }
            let _ = tty.multi.println(format!("#{index} ERROR: {message}"));
        }
        Event::Log { index, line, .. } => {
            let buf = tty.logs.entry(*index).or_default();
            buf.push_back(line.clone());
            while buf.len() > TTY_LOG_TAIL {
                buf.pop_front();
            }
            if let Some((bar, name)) = tty.bars.get(index) {
                bar.set_message(format!("{name} │ {line}"));
            }
        }
        Event::Status { .. } => {}
        Event::Warning { .. } => {
            for l in ev.plain() {
                let _ = tty.multi.println(l);
            }
        }
    }
}

fn finished_style() -> indicatif::ProgressStyle {
    indicatif::ProgressStyle::with_template("  #{prefix} {wide_msg}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner())
}

/// RFC 3339 UTC text of a protobuf timestamp (`2026-08-01T12:00:00.123456789Z`).
pub fn rfc3339(t: &prost_types::Timestamp) -> String {
    // Days-from-civil inverse (Howard Hinnant's algorithm).
    let secs = t.seconds;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        t.nanos.clamp(0, 999_999_999)
    )
}

/// One status message as JSON, with buildctl's `rawjson` field names.
pub fn status_json(resp: &StatusResponse) -> serde_json::Value {
    use base64::Engine as _;
    use serde_json::{json, Map, Value};
    let t = |t: &Option<prost_types::Timestamp>| t.as_ref().map(rfc3339);
    let mut obj = Map::new();
    if !resp.vertexes.is_empty() {
        obj.insert(
            "vertexes".into(),
            Value::Array(
                resp.vertexes
                    .iter()
                    .map(|v| {
                        let mut m = Map::new();
                        m.insert("digest".into(), json!(v.digest));
                        if !v.inputs.is_empty() {
                            m.insert("inputs".into(), json!(v.inputs));
                        }
                        m.insert("name".into(), json!(v.name));
                        if v.cached {
                            m.insert("cached".into(), json!(true));
                        }
                        if let Some(s) = t(&v.started) {
                            m.insert("started".into(), json!(s));
                        }
                        if let Some(s) = t(&v.completed) {
                            m.insert("completed".into(), json!(s));
                        }
                        if !v.error.is_empty() {
                            m.insert("error".into(), json!(v.error));
                        }
                        Value::Object(m)
                    })
                    .collect(),
            ),
        );
    }
    if !resp.statuses.is_empty() {
        obj.insert(
            "statuses".into(),
            Value::Array(
                resp.statuses
                    .iter()
                    .map(|s| {
                        let mut m = Map::new();
                        m.insert("id".into(), json!(s.id));
                        m.insert("vertex".into(), json!(s.vertex));
                        if !s.name.is_empty() {
                            m.insert("name".into(), json!(s.name));
                        }
                        m.insert("current".into(), json!(s.current));
                        if s.total != 0 {
                            m.insert("total".into(), json!(s.total));
                        }
                        if let Some(x) = t(&s.timestamp) {
                            m.insert("timestamp".into(), json!(x));
                        }
                        if let Some(x) = t(&s.started) {
                            m.insert("started".into(), json!(x));
                        }
                        if let Some(x) = t(&s.completed) {
                            m.insert("completed".into(), json!(x));
                        }
                        Value::Object(m)
                    })
                    .collect(),
            ),
        );
    }
    if !resp.logs.is_empty() {
        obj.insert(
            "logs".into(),
            Value::Array(
                resp.logs
                    .iter()
                    .map(|l| {
                        json!({
                            "vertex": l.vertex,
                            "stream": l.stream,
                            // Go's encoding/json writes []byte as base64, as buildctl does.
                            "data": base64::engine::general_purpose::STANDARD.encode(&l.msg),
                            "timestamp": t(&l.timestamp),
                        })
                    })
                    .collect(),
            ),
        );
    }
    if !resp.warnings.is_empty() {
        obj.insert(
            "warnings".into(),
            Value::Array(
                resp.warnings
                    .iter()
                    .map(|w| {
                        json!({
                            "vertex": w.vertex,
                            "level": w.level,
                            "short": base64::engine::general_purpose::STANDARD.encode(&w.short),
                            "detail": w.detail.iter().map(|d| base64::engine::general_purpose::STANDARD.encode(d)).collect::<Vec<_>>(),
                            "url": w.url,
                        })
                    })
                    .collect(),
            ),
        );
    }
    Value::Object(obj)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::moby::buildkit::v1::{VertexLog, VertexStatus, VertexWarning};
    use std::sync::{Arc, Mutex};

    fn t(s: i64, ms: i32) -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp {
            seconds: s,
            nanos: ms * 1_000_000,
        })
    }

    fn vx(d: &str, name: &str, started: Option<(i64, i32)>, done: Option<(i64, i32)>) -> Vertex {
        Vertex {
            digest: d.into(),
            name: name.into(),
            started: started.and_then(|(s, m)| t(s, m)),
            completed: done.and_then(|(s, m)| t(s, m)),
            ..Default::default()
        }
    }

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn modes_parse_and_resolve() {
        assert_eq!(
            "rawjson".parse::<ProgressMode>().unwrap(),
            ProgressMode::RawJson
        );
        assert!("fancy"
            .parse::<ProgressMode>()
            .unwrap_err()
            .contains("auto, tty"));
        assert_eq!(ProgressMode::Auto.resolve(true), ProgressMode::Tty);
        assert_eq!(ProgressMode::Auto.resolve(false), ProgressMode::Plain);
        assert_eq!(ProgressMode::Quiet.resolve(true), ProgressMode::Quiet);
    }

    #[test]
    fn merges_incremental_updates_and_renders_plain() {
        let buf = Buf::default();
        let mut r = Renderer::with_writer(ProgressMode::Plain, Box::new(buf.clone()));
        // Pending vertex: not shown yet.
        r.handle(&StatusResponse {
            vertexes: vec![vx("sha256:a", "docker-image://busybox", None, None)],
            ..Default::default()
        });
        // Started, then a resolve status completes.
        r.handle(&StatusResponse {
            vertexes: vec![vx(
                "sha256:a",
                "docker-image://busybox",
                Some((100, 0)),
                None,
            )],
            statuses: vec![VertexStatus {
                id: "resolve".into(),
                vertex: "sha256:a".into(),
                name: "resolve docker.io/library/busybox".into(),
                started: t(100, 0),
                completed: t(100, 100),
                ..Default::default()
            }],
            ..Default::default()
        });
        // The name is not repeated on completion updates.
        r.handle(&StatusResponse {
            vertexes: vec![vx("sha256:a", "", Some((100, 0)), Some((101, 200)))],
            ..Default::default()
        });
        // A cached vertex.
        let mut c = vx(
            "sha256:b",
            "[internal] load metadata",
            Some((102, 0)),
            Some((102, 0)),
        );
        c.cached = true;
        r.handle(&StatusResponse {
            vertexes: vec![c],
            ..Default::default()
        });
        // A RUN with logs split across messages, then failure.
        r.handle(&StatusResponse {
            vertexes: vec![vx("sha256:c", "/bin/sh -c echo hi", Some((103, 0)), None)],
            logs: vec![VertexLog {
                vertex: "sha256:c".into(),
                timestamp: t(103, 123),
                stream: 1,
                msg: b"hel".to_vec(),
            }],
            ..Default::default()
        });
        r.handle(&StatusResponse {
            logs: vec![VertexLog {
                vertex: "sha256:c".into(),
                timestamp: t(103, 500),
                stream: 1,
                msg: b"lo\nworld\ntail".to_vec(),
            }],
            warnings: vec![VertexWarning {
                vertex: "sha256:c".into(),
                short: b"something odd".to_vec(),
                detail: vec![b"because".to_vec()],
                ..Default::default()
            }],
            ..Default::default()
        });
        let mut failed = vx(
            "sha256:c",
            "/bin/sh -c echo hi",
            Some((103, 0)),
            Some((104, 0)),
        );
        failed.error = "exit code: 1".into();
        r.handle(&StatusResponse {
            vertexes: vec![failed],
            ..Default::default()
        });
        r.finish();
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let want = "\
#1 docker-image://busybox
#1 resolve docker.io/library/busybox 0.1s done
#1 DONE 1.2s

#2 [internal] load metadata
#2 CACHED

#3 /bin/sh -c echo hi
#3 0.500 hello
#3 0.500 world
#3 WARN: something odd
#3 because
#3 1.000 tail
#3 ERROR: exit code: 1

1 warning(s):
  #3 WARN: something odd
  #3 because
";
        assert_eq!(text, want);
        assert_eq!(r.state().failed().len(), 1);
    }

    #[test]
    fn statuses_and_logs_come_before_the_completion_they_arrived_with() {
        let mut s = ProgressState::new();
        let evs = s.apply(&StatusResponse {
            vertexes: vec![vx("d", "pull", Some((1, 0)), Some((2, 0)))],
            statuses: vec![VertexStatus {
                id: "layer".into(),
                vertex: "d".into(),
                current: 10,
                total: 10,
                started: t(1, 0),
                completed: t(2, 0),
                ..Default::default()
            }],
            ..Default::default()
        });
        let lines: Vec<String> = evs.iter().flat_map(Event::plain).collect();
        assert_eq!(
            lines,
            ["#1 pull", "#1 layer 10B / 10B 1.0s done", "#1 DONE 1.0s"]
        );
    }

    #[test]
    fn repeated_completion_is_reported_once() {
        let mut s = ProgressState::new();
        let done = StatusResponse {
            vertexes: vec![vx("d", "x", Some((1, 0)), Some((2, 0)))],
            ..Default::default()
        };
        assert_eq!(s.apply(&done).len(), 2);
        assert!(s.apply(&done).is_empty());
    }

    #[test]
    fn rawjson_and_quiet() {
        let buf = Buf::default();
        let mut r = Renderer::with_writer(ProgressMode::RawJson, Box::new(buf.clone()));
        r.handle(&StatusResponse {
            vertexes: vec![vx("sha256:a", "n", Some((0, 0)), None)],
            logs: vec![VertexLog {
                vertex: "sha256:a".into(),
                timestamp: t(86_400 * 365, 5),
                stream: 2,
                msg: b"hi".to_vec(),
            }],
            ..Default::default()
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(
            v["vertexes"][0]["started"],
            "1970-01-01T00:00:00.000000000Z"
        );
        assert_eq!(v["logs"][0]["data"], "aGk=");
        assert_eq!(v["logs"][0]["timestamp"], "1971-01-01T00:00:00.005000000Z");

        let buf = Buf::default();
        let mut q = Renderer::with_writer(ProgressMode::Quiet, Box::new(buf.clone()));
        q.handle(&StatusResponse {
            vertexes: vec![vx("sha256:a", "n", Some((0, 0)), Some((1, 0)))],
            ..Default::default()
        });
        q.note("x");
        q.finish();
        assert!(buf.0.lock().unwrap().is_empty());
    }

    #[test]
    fn formats_bytes_and_dates() {
        assert_eq!(human_bytes(999), "999B");
        assert_eq!(human_bytes(1_234_567), "1.23MB");
        let d = prost_types::Timestamp {
            seconds: 1_785_585_600,
            nanos: 0,
        };
        assert_eq!(rfc3339(&d), "2026-08-01T12:00:00.000000000Z");
    }
}
