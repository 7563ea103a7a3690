//! `torchkit.toml`: parse, then validate into a [`Spec`] that cannot hold invalid states.
//!
//! Two layers, as uv's `OptionsWire` → `Options`: [`wire`] mirrors the TOML with
//! `deny_unknown_fields` and spans; [`parse`] turns it into typed values and reports the
//! first problem as a [`SpecError`] with `file:line:column`, the offending line and a hint
//! ("did you mean `version`?"). A leading `# syntax=…` line is an ordinary TOML comment.
//!
//! Pure: takes text, returns data. Reading the file is the caller's business.

mod marker;
mod wire;

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Serialize;

use crate::error::Hint;
use crate::resolve::{self, ResolveError};
use crate::vocab::{CudaRequest, Flavor, GpuList, Overrides, ParseError, Profile, Step};
use wire::{CommandWire, CopyWire, SpecWire, KEYS, S};

/// A validated `torchkit.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Spec {
    /// The file name used in messages and source maps (e.g. `torchkit.toml`).
    pub filename: String,
    /// `[torch]`.
    pub torch: Torch,
    /// `[target]`.
    pub target: Target,
    /// `[python]`.
    pub python: Python,
    /// `[system]`.
    pub system: System,
    /// `[image]`.
    pub image: Image,
    /// `[cache]`.
    pub cache: Cache,
    /// `[base]`.
    pub base: Base,
    /// `[verify]`.
    pub verify: Verify,
    /// Where each key was written (`"python.packages"` → span), for source maps and
    /// for errors found after parsing (an impossible torch/CUDA pair, say).
    #[serde(skip)]
    pub locations: BTreeMap<String, Span>,
    /// The text as read, for source maps (`Definition.Source`).
    #[serde(skip)]
    pub text: String,
}

/// `[torch]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Torch {
    /// Release, "2.8.0".
    pub version: String,
    /// CUDA request.
    pub cuda: CudaRequest,
    /// Image flavour.
    pub flavor: Flavor,
    /// torchvision override.
    pub torchvision: Option<String>,
    /// torchaudio override.
    pub torchaudio: Option<String>,
    /// A release newer than the matrix may be looked up online (PyPI, the registry).
    pub online: bool,
}

/// `[target]`: the host the image will run on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Target {
    /// Driver version, "535.104.05".
    pub driver: Option<String>,
    /// Compute capabilities ("9.0") or product names ("H100").
    pub gpus: Vec<String>,
    /// Probe this host for driver and GPUs.
    pub detect: bool,
}

/// `[python]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Python {
    /// PEP 508 requirement strings.
    pub packages: Vec<String>,
    /// A requirements file, relative to the build context.
    pub requirements: Option<String>,
    /// Replaces PyPI as the main index.
    pub index_url: Option<String>,
    /// Extra indexes.
    pub extra_index_urls: Vec<String>,
    /// Build secrets the pip steps mount (credentials for a private index).
    pub secrets: Vec<SecretMount>,
}

/// `[system]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct System {
    /// Debian/Ubuntu packages, optionally `name=version`.
    pub apt: Vec<String>,
    /// Build secrets the apt step mounts (an `auth.conf` for a private repository).
    pub secrets: Vec<SecretMount>,
}

/// The id of the CA bundle secret torchkit passes to downloading steps itself.
pub const CA_SECRET_ID: &str = "torchkit-ca";

/// A build secret a step mounts while it runs (`--secret id=…,src=…`); never in a layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretMount {
    /// The secret's id.
    pub id: String,
    /// Where it is mounted: `dest`, or `/run/secrets/<id>`.
    pub dest: String,
}

/// `[image]`: the runtime configuration of the result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Image {
    /// Absolute working directory.
    pub workdir: String,
    /// The user the image runs as.
    pub user: User,
    /// Environment, sorted.
    pub env: BTreeMap<String, String>,
    /// Labels, sorted.
    pub labels: BTreeMap<String, String>,
    /// ENTRYPOINT.
    pub entrypoint: Option<Vec<String>>,
    /// CMD.
    pub cmd: Option<Vec<String>>,
    /// Context copies, applied last.
    pub copy: Vec<Copy>,
}

/// The runtime user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// Name, `app` by default.
    pub name: String,
    /// uid (and gid), 1000 by default, 0 for root.
    pub uid: u32,
}

impl User {
    /// True for root: no user is created.
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }
}

/// One context copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Copy {
    /// Path in the build context (relative, no `..`).
    pub src: String,
    /// Absolute destination in the image.
    pub dest: String,
}

/// `[cache]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cache {
    /// The cache profile.
    pub profile: Profile,
    /// Steps to force to re-run.
    pub bust: Vec<Step>,
    /// A string whose change re-runs the dependency steps.
    pub epoch: Option<String>,
}

/// `[base]`: overrides of the resolved base image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Base {
    /// Use this image instead of the resolved one.
    pub image: Option<String>,
    /// Pin to this digest (`sha256:…`).
    pub digest: Option<String>,
    /// Registry mirror prefix for Docker Hub names (`mirror.example.com/dockerhub`).
    pub mirror: Option<String>,
}

/// `[verify]`: the checks run in the built image before it is exported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verify {
    /// Check the image (on unless `enabled = false`; `--skip-verify` turns it off too).
    pub enabled: bool,
    /// The project's own tests, run in the image after the checks, in order.
    pub run: Vec<Command>,
    /// The tests may use the network (off by default).
    pub network: bool,
    /// Attach every GPU of the daemon to the checks and the tests (as `--gpus all`).
    pub gpu: bool,
}

impl Default for Verify {
    fn default() -> Self {
        Verify {
            enabled: true,
            run: vec![],
            network: false,
            gpu: false,
        }
    }
}

/// A command of `[verify] run`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// Run by `/bin/sh -c`.
    Shell(String),
    /// Run as this argv.
    Exec(Vec<String>),
}

impl Command {
    /// The argv the exec runs.
    pub fn argv(&self) -> Vec<String> {
        match self {
            Command::Shell(s) => vec!["/bin/sh".into(), "-c".into(), s.clone()],
            Command::Exec(a) => a.clone(),
        }
    }

    /// The command as a user wrote it, for progress and messages.
    pub fn display(&self) -> String {
        match self {
            Command::Shell(s) => s.clone(),
            Command::Exec(a) => a.join(" "),
        }
    }
}

/// A region of the spec, 1-based lines and columns (columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Span {
    /// First line.
    pub line: u32,
    /// First column.
    pub col: u32,
    /// Last line.
    pub end_line: u32,
    /// Column after the last character.
    pub end_col: u32,
}

impl Span {
    /// Convert a byte range of `text` to lines and columns.
    pub fn from_range(text: &str, r: Range<usize>) -> Span {
        let (line, col) = line_col(text, r.start);
        let (end_line, end_col) = line_col(text, r.end.max(r.start));
        Span {
            line,
            col,
            end_line,
            end_col,
        }
    }
}

fn line_col(text: &str, offset: usize) -> (u32, u32) {
    let offset = offset.min(text.len());
    let before = &text[..floor_char_boundary(text, offset)];
    let line = before.matches('\n').count() as u32 + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u32 + 1;
    (line, col)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// A problem in the spec, located in the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{col}: {message}", line = .span.line, col = .span.col)]
pub struct SpecError {
    /// File name.
    pub file: String,
    /// Where.
    pub span: Span,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub help: Option<String>,
    /// The offending line, for display.
    pub source_line: String,
}

impl Hint for SpecError {
    fn hint(&self) -> Option<String> {
        self.help.clone()
    }
}

impl SpecError {
    /// A new error at a byte range of `text`.
    pub fn at(
        file: &str,
        text: &str,
        range: Range<usize>,
        message: impl Into<String>,
        help: Option<String>,
    ) -> Self {
        let span = Span::from_range(text, range);
        Self::at_span(file, text, span, message, help)
    }

    /// A new error at a known span.
    pub fn at_span(
        file: &str,
        text: &str,
        span: Span,
        message: impl Into<String>,
        help: Option<String>,
    ) -> Self {
        let source_line = text
            .lines()
            .nth(span.line.saturating_sub(1) as usize)
            .unwrap_or("")
            .to_string();
        SpecError {
            file: file.to_string(),
            span,
            message: message.into(),
            help,
            source_line,
        }
    }

    /// The location arrow, the offending line and a caret underline (rustc style).
    pub fn snippet(&self) -> String {
        let n = self.span.line.to_string();
        let pad = " ".repeat(n.len());
        let width = if self.span.end_line == self.span.line && self.span.end_col > self.span.col {
            (self.span.end_col - self.span.col) as usize
        } else {
            1
        };
        format!(
            "{pad}--> {}:{}:{}\n{pad} |\n{n} | {}\n{pad} | {}{}",
            self.file,
            self.span.line,
            self.span.col,
            self.source_line,
            " ".repeat(self.span.col.saturating_sub(1) as usize),
            "^".repeat(width),
        )
    }

    /// Message, snippet and hint, as the CLI prints them.
    pub fn render(&self) -> String {
        let mut out = format!("{}\n{}", self.message, self.snippet());
        if let Some(h) = &self.help {
            out.push_str(&format!("\nhint: {h}"));
        }
        out
    }
}

/// Parse and validate a spec. `filename` is only used in messages and source maps.
pub fn parse(text: &str, filename: &str) -> Result<Spec, SpecError> {
    let wire: SpecWire = toml::from_str(text).map_err(|e| toml_error(text, filename, &e))?;
    Validator {
        text,
        file: filename,
        locations: BTreeMap::new(),
    }
    .spec(wire)
}

/// Turn a TOML/serde error into a located [`SpecError`] with a "did you mean" hint.
fn toml_error(text: &str, file: &str, e: &toml::de::Error) -> SpecError {
    let range = e.span().unwrap_or(0..0);
    let msg = e.message().trim().to_string();
    // serde's unknown-field message: "unknown field `x`, expected one of `a`, `b`"
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let unknown = rest.split('`').next().unwrap_or("");
        let table = table_at(text, range.start);
        let known: Vec<&str> = KEYS
            .iter()
            .find(|(t, _)| *t == table)
            .map(|(_, k)| k.to_vec())
            .unwrap_or_default();
        let where_ = if table.is_empty() {
            "at the top level".to_string()
        } else {
            format!("in [{table}]")
        };
        let help = match did_you_mean(unknown, &known) {
            Some(s) => Some(format!("did you mean `{s}`?")),
            None => Some(format!(
                "known keys {where_}: {}",
                known
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        };
        return SpecError::at(
            file,
            text,
            range,
            format!("unknown key `{unknown}` {where_}"),
            help,
        );
    }
    if let Some(rest) = msg.strip_prefix("invalid type: ") {
        return SpecError::at(
            file,
            text,
            range,
            format!("wrong type: {rest}"),
            Some("see docs/spec.md for the type of each key".into()),
        );
    }
    SpecError::at(
        file,
        text,
        range,
        format!("invalid TOML: {msg}"),
        Some("check the TOML syntax at this position (quotes, brackets, `=`)".into()),
    )
}

/// The `[table]` header in force at byte `offset` (empty for the top level).
fn table_at(text: &str, offset: usize) -> String {
    let before = &text[..floor_char_boundary(text, offset.min(text.len()))];
    for line in before.lines().rev() {
        let l = line.trim();
        if l.starts_with('[') && !l.starts_with("[[") {
            return l.trim_matches(|c| c == '[' || c == ']').trim().to_string();
        }
    }
    String::new()
}

/// The closest known word, if it is close enough to be a likely typo.
pub fn did_you_mean<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(word, k), *k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

struct Validator<'a> {
    text: &'a str,
    file: &'a str,
    locations: BTreeMap<String, Span>,
}

type R<T> = Result<T, SpecError>;

impl Validator<'_> {
    fn err<T>(&self, range: Range<usize>, msg: impl Into<String>, help: impl Into<String>) -> R<T> {
        Err(SpecError::at(
            self.file,
            self.text,
            range,
            msg,
            Some(help.into()),
        ))
    }

    /// A value in the vocabulary's spelling (src/vocab.rs), located at its span when refused.
    fn value<T: std::str::FromStr<Err = ParseError>>(&self, v: &S<String>) -> R<T> {
        v.get_ref()
            .parse()
            .or_else(|e: ParseError| self.err(v.span(), e.to_string(), e.help))
    }

    fn mark<T>(&mut self, key: impl Into<String>, v: &S<T>) {
        self.locations
            .insert(key.into(), Span::from_range(self.text, v.span()));
    }

    fn spec(mut self, w: SpecWire) -> R<Spec> {
        let torch = match w.torch {
            Some(t) => {
                self.mark("torch", &t);
                self.torch(t.into_inner())?
            }
            None => {
                return Err(SpecError::at_span(
                    self.file,
                    self.text,
                    Span {
                        line: 1,
                        col: 1,
                        end_line: 1,
                        end_col: 1,
                    },
                    "missing [torch] table",
                    Some("add:\n[torch]\nversion = \"2.8.0\"".into()),
                ))
            }
        };
        let target = match w.target {
            Some(t) => {
                self.mark("target", &t);
                self.target(t.into_inner())?
            }
            None => Target::default(),
        };
        let python = match w.python {
            Some(p) => {
                self.mark("python", &p);
                self.python(p.into_inner())?
            }
            None => Python::default(),
        };
        let system = match w.system {
            Some(s) => {
                self.mark("system", &s);
                self.system(s.into_inner())?
            }
            None => System::default(),
        };
        let image = match w.image {
            Some(i) => {
                self.mark("image", &i);
                self.image(i.into_inner())?
            }
            None => self.image(wire::ImageWire {
                workdir: None,
                user: None,
                uid: None,
                env: None,
                labels: None,
                entrypoint: None,
                cmd: None,
                copy: None,
            })?,
        };
        let cache = match w.cache {
            Some(c) => {
                self.mark("cache", &c);
                self.cache(c.into_inner())?
            }
            None => Cache {
                profile: Profile::Dev,
                bust: vec![],
                epoch: None,
            },
        };
        let base = match w.base {
            Some(b) => {
                self.mark("base", &b);
                self.base(b.into_inner())?
            }
            None => Base::default(),
        };
        let verify = match w.verify {
            Some(v) => {
                self.mark("verify", &v);
                self.verify(v.into_inner())?
            }
            None => Verify::default(),
        };
        Ok(Spec {
            filename: self.file.to_string(),
            torch,
            target,
            python,
            system,
            image,
            cache,
            base,
            verify,
            locations: self.locations,
            text: self.text.to_string(),
        })
    }

    fn torch(&mut self, t: wire::TorchWire) -> R<Torch> {
        let Some(version) = t.version else {
            let at = self.locations["torch"];
            return Err(SpecError::at_span(
                self.file,
                self.text,
                at,
                "[torch] needs `version`",
                Some("add `version = \"2.8.0\"` under [torch]".into()),
            ));
        };
        self.mark("torch.version", &version);
        // The resolver's own form check, so a spec accepts what `--torch` accepts and says
        // why in the same words (the accepted form, the newest release, the matrix date).
        if let Err(ResolveError::InvalidTorch {
            input,
            why,
            newest,
            gathered,
        }) = resolve::torch_form(version.get_ref())
        {
            return self.err(
                version.span(),
                format!("`{input}` is not a torch release: {why}"),
                resolve::invalid_torch_hint(&newest, &gathered, "CUDA goes in `cuda`"),
            );
        }
        let cuda = match &t.cuda {
            None => CudaRequest::Auto,
            Some(c) => {
                self.mark("torch.cuda", c);
                self.value(c)?
            }
        };
        let flavor = match &t.flavor {
            None => Flavor::Runtime,
            Some(f) => {
                self.mark("torch.flavor", f);
                self.value(f)?
            }
        };
        let mut companion = |key: &'static str, v: Option<S<String>>| -> R<Option<String>> {
            match v {
                None => Ok(None),
                Some(v) => {
                    self.mark(key, &v);
                    if is_release(v.get_ref()) {
                        Ok(Some(v.into_inner()))
                    } else {
                        self.err(
                            v.span(),
                            format!("`{}` is not a release version", v.get_ref()),
                            "write MAJOR.MINOR.PATCH, or leave it out to get the release that matches torch",
                        )
                    }
                }
            }
        };
        let torchvision = companion("torch.torchvision", t.torchvision)?;
        let torchaudio = companion("torch.torchaudio", t.torchaudio)?;
        let online = match t.online {
            None => false,
            Some(o) => {
                self.mark("torch.online", &o);
                o.into_inner()
            }
        };
        Ok(Torch {
            version: version.into_inner().trim().to_string(),
            cuda,
            flavor,
            torchvision,
            torchaudio,
            online,
        })
    }

    fn target(&mut self, t: wire::TargetWire) -> R<Target> {
        let driver = match t.driver {
            None => None,
            Some(d) => {
                self.mark("target.driver", &d);
                if !is_dotted_numeric(d.get_ref(), 2, 3) {
                    return self.err(
                        d.span(),
                        format!("`{}` is not an NVIDIA driver version", d.get_ref()),
                        "copy `Driver Version` from nvidia-smi, e.g. \"535.104.05\", or set detect = true",
                    );
                }
                Some(d.into_inner())
            }
        };
        let mut gpus = GpuList::default();
        if let Some(list) = t.gpus {
            self.mark("target.gpus", &list);
            for g in list.into_inner() {
                gpus.extend(self.value(&g)?);
            }
        }
        Ok(Target {
            driver,
            gpus: gpus.0,
            detect: t.detect.map(|d| d.into_inner()).unwrap_or(false),
        })
    }

    fn python(&mut self, p: wire::PythonWire) -> R<Python> {
        let mut packages = vec![];
        if let Some(list) = p.packages {
            self.mark("python.packages", &list);
            for pkg in list.into_inner() {
                if let Err(why) = check_requirement(pkg.get_ref()) {
                    return self.err(
                        pkg.span(),
                        format!("`{}` is not a valid requirement: {why}", pkg.get_ref()),
                        "write PEP 508 requirements such as \"numpy==2.1.0\" or \"transformers>=4.40\"",
                    );
                }
                packages.push(pkg.get_ref().trim().to_string());
            }
        }
        let requirements = match p.requirements {
            None => None,
            Some(r) => {
                self.mark("python.requirements", &r);
                Some(self.context_path(&r, "requirements")?)
            }
        };
        let index_url = match p.index_url {
            None => None,
            Some(u) => {
                self.mark("python.index_url", &u);
                Some(self.url(&u)?)
            }
        };
        let secrets = self.secrets("python.secrets", p.secrets)?;
        let mut extra_index_urls = vec![];
        if let Some(list) = p.extra_index_urls {
            self.mark("python.extra_index_urls", &list);
            for u in list.into_inner() {
                extra_index_urls.push(self.url(&u)?);
            }
        }
        Ok(Python {
            packages,
            requirements,
            index_url,
            extra_index_urls,
            secrets,
        })
    }

    fn url(&self, u: &S<String>) -> R<String> {
        let s = u.get_ref();
        let ok = (s.starts_with("https://") || s.starts_with("http://"))
            && !s.chars().any(|c| c.is_whitespace() || c.is_control());
        if ok {
            Ok(s.clone())
        } else {
            self.err(
                u.span(),
                format!("`{s}` is not an http(s) URL"),
                "write the index URL in full, e.g. \"https://pypi.org/simple\"",
            )
        }
    }

    fn context_path(&self, p: &S<String>, what: &str) -> R<String> {
        let s = p.get_ref().trim();
        let bad = s.is_empty()
            || s.starts_with('/')
            || s.split('/').any(|c| c == "..")
            || s.chars().any(|c| c.is_control());
        if bad {
            return self.err(
                p.span(),
                format!("`{s}` is not a path inside the build context"),
                format!("give the {what} path relative to the build context, without `..`"),
            );
        }
        Ok(s.trim_start_matches("./").to_string())
    }

    fn secrets(
        &mut self,
        key: &'static str,
        list: Option<S<Vec<S<wire::SecretWire>>>>,
    ) -> R<Vec<SecretMount>> {
        let mut out: Vec<SecretMount> = vec![];
        let Some(list) = list else {
            return Ok(out);
        };
        self.mark(key, &list);
        for w in list.into_inner() {
            let span = w.span();
            let w = w.into_inner();
            let ok_id = !w.id.is_empty()
                && w.id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !ok_id {
                return self.err(
                    span,
                    format!("`{}` is not a secret id", w.id),
                    "use letters, digits, `-`, `_` and `.`, the id you pass as --secret id=…",
                );
            }
            if w.id == CA_SECRET_ID {
                return self.err(
                    span,
                    format!("`{}` is torchkit's CA bundle secret", w.id),
                    "pass a CA bundle with --ca-bundle (it is mounted for you); name your secret otherwise",
                );
            }
            let dest = match w.dest {
                Some(d) if !d.starts_with('/') || d.split('/').any(|c| c == "..") => {
                    return self.err(
                        span,
                        format!("secret destination `{d}` is not an absolute path without `..`"),
                        "write where the step should find it, such as \"/root/.netrc\"",
                    )
                }
                Some(d) => d,
                None => format!("/run/secrets/{}", w.id),
            };
            if out.iter().any(|m| m.dest == dest || m.id == w.id) {
                return self.err(
                    span,
                    format!("secret `{}` is listed twice", w.id),
                    "list each secret once",
                );
            }
            out.push(SecretMount { id: w.id, dest });
        }
        Ok(out)
    }

    fn system(&mut self, s: wire::SystemWire) -> R<System> {
        let mut apt = vec![];
        if let Some(list) = s.apt {
            self.mark("system.apt", &list);
            for p in list.into_inner() {
                if !is_apt_package(p.get_ref()) {
                    return self.err(
                        p.span(),
                        format!("`{}` is not a Debian package name", p.get_ref()),
                        "apt package names are lower case letters, digits and + - . (optionally `name=version`)",
                    );
                }
                apt.push(p.into_inner());
            }
        }
        let secrets = self.secrets("system.secrets", s.secrets)?;
        Ok(System { apt, secrets })
    }

    fn image(&mut self, i: wire::ImageWire) -> R<Image> {
        let workdir = match i.workdir {
            None => "/workspace".to_string(),
            Some(w) => {
                self.mark("image.workdir", &w);
                if !w.get_ref().starts_with('/') {
                    return self.err(
                        w.span(),
                        format!("workdir `{}` is not an absolute path", w.get_ref()),
                        "use an absolute path such as \"/workspace\"",
                    );
                }
                if w.get_ref().split('/').any(|c| c == "..") {
                    return self.err(
                        w.span(),
                        format!("workdir `{}` goes up with `..`", w.get_ref()),
                        "write the directory it means without `..`, such as \"/workspace\"",
                    );
                }
                w.into_inner()
            }
        };
        let name = match &i.user {
            None => "app".to_string(),
            Some(u) => {
                self.mark("image.user", u);
                if !is_user_name(u.get_ref()) {
                    return self.err(
                        u.span(),
                        format!("`{}` is not a valid user name", u.get_ref()),
                        "use lower case letters, digits, `_` and `-`, starting with a letter, e.g. \"app\"",
                    );
                }
                u.get_ref().clone()
            }
        };
        let uid = match i.uid {
            None if name == "root" => 0,
            None => 1000,
            Some(u) => {
                self.mark("image.uid", &u);
                let v = *u.get_ref();
                if !(0..=60000).contains(&v) || (v == 0) != (name == "root") {
                    return self.err(
                        u.span(),
                        format!("uid {v} does not fit user `{name}`"),
                        "uid 0 is only for user \"root\"; other users take 1..=60000 (default 1000)",
                    );
                }
                v as u32
            }
        };
        let mut env = BTreeMap::new();
        if let Some(map) = i.env {
            self.mark("image.env", &map);
            for (k, v) in map.into_inner() {
                if !is_env_name(k.get_ref()) {
                    return self.err(
                        k.span(),
                        format!("`{}` is not a valid environment variable name", k.get_ref()),
                        "use letters, digits and `_`, not starting with a digit",
                    );
                }
                env.insert(k.into_inner(), v.into_inner());
            }
        }
        let mut labels = BTreeMap::new();
        if let Some(map) = i.labels {
            self.mark("image.labels", &map);
            for (k, v) in map.into_inner() {
                if k.get_ref().is_empty() || k.get_ref().chars().any(|c| c.is_whitespace()) {
                    return self.err(
                        k.span(),
                        format!("`{}` is not a valid label key", k.get_ref()),
                        "label keys are non-empty, without spaces, e.g. \"org.example.team\"",
                    );
                }
                labels.insert(k.into_inner(), v.into_inner());
            }
        }
        let entrypoint = i.entrypoint.map(|e| {
            self.mark("image.entrypoint", &e);
            e.into_inner()
        });
        let cmd = i.cmd.map(|c| {
            self.mark("image.cmd", &c);
            c.into_inner()
        });
        let mut copy = vec![];
        if let Some(list) = i.copy {
            self.mark("image.copy", &list);
            for (n, c) in list.into_inner().into_iter().enumerate() {
                // Each entry's own place (`image.copy.0`, …), for errors about its source.
                self.mark(format!("image.copy.{n}"), &c);
                let span = c.span();
                let (src, dest) = match c.into_inner() {
                    CopyWire::Path(p) => (p, None),
                    CopyWire::Table(t) => (t.src, t.dest),
                };
                let src = self.context_path(&S::new(span.clone(), src), "copy source")?;
                let dest = match dest {
                    None => join(&workdir, src.trim_end_matches('/')),
                    Some(d) if d.starts_with('/') => d,
                    Some(d) => join(&workdir, &d),
                };
                if dest.split('/').any(|c| c == "..") {
                    return self.err(
                        span,
                        format!("copy destination `{dest}` leaves its directory"),
                        "remove `..` from the destination",
                    );
                }
                copy.push(Copy { src, dest });
            }
        }
        Ok(Image {
            workdir,
            user: User { name, uid },
            env,
            labels,
            entrypoint,
            cmd,
            copy,
        })
    }

    fn cache(&mut self, c: wire::CacheWire) -> R<Cache> {
        let profile = match c.profile {
            None => Profile::Dev,
            Some(p) => {
                self.mark("cache.profile", &p);
                self.value(&p)?
            }
        };
        let mut bust: Vec<Step> = vec![];
        if let Some(list) = c.bust {
            self.mark("cache.bust", &list);
            for s in list.into_inner() {
                let step = self.value(&s)?;
                if !bust.contains(&step) {
                    bust.push(step);
                }
            }
        }
        let epoch = c.epoch.map(|e| {
            self.mark("cache.epoch", &e);
            e.into_inner()
        });
        Ok(Cache {
            profile,
            bust,
            epoch,
        })
    }

    fn verify(&mut self, v: wire::VerifyWire) -> R<Verify> {
        let flag = |this: &mut Self, key: &str, f: Option<S<bool>>, default: bool| match f {
            None => default,
            Some(f) => {
                this.mark(format!("verify.{key}"), &f);
                f.into_inner()
            }
        };
        let enabled = flag(self, "enabled", v.enabled, true);
        let network = flag(self, "network", v.network, false);
        let gpu = flag(self, "gpu", v.gpu, false);
        let mut run = vec![];
        if let Some(list) = v.run {
            self.mark("verify.run", &list);
            for (i, c) in list.into_inner().into_iter().enumerate() {
                self.mark(format!("verify.run.{i}"), &c);
                let span = c.span();
                run.push(match c.into_inner() {
                    CommandWire::Shell(s) if s.trim().is_empty() => {
                        return self.err(
                            span,
                            "an empty command",
                            "write the command to run, such as \"pytest -q tests/\"",
                        )
                    }
                    CommandWire::Shell(s) => Command::Shell(s),
                    CommandWire::Exec(a) if a.first().is_none_or(|p| p.is_empty()) => {
                        return self.err(
                            span,
                            "an argv array needs a program as its first item",
                            "write [\"pytest\", \"-q\", \"tests/\"], or a string for /bin/sh -c",
                        )
                    }
                    CommandWire::Exec(a) => Command::Exec(a),
                });
            }
        }
        Ok(Verify {
            enabled,
            run,
            network,
            gpu,
        })
    }

    fn base(&mut self, b: wire::BaseWire) -> R<Base> {
        let image = match b.image {
            None => None,
            Some(i) => {
                self.mark("base.image", &i);
                let s = i.get_ref();
                if s.is_empty()
                    || s.chars().any(|c| c.is_whitespace() || c.is_control())
                    || s.contains("://")
                {
                    return self.err(
                        i.span(),
                        format!("`{s}` is not an image reference"),
                        "write a reference like \"pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime\" (no scheme)",
                    );
                }
                Some(i.into_inner())
            }
        };
        let digest = match b.digest {
            None => None,
            Some(d) => {
                self.mark("base.digest", &d);
                if !is_sha256_digest(d.get_ref()) {
                    return self.err(
                        d.span(),
                        format!("`{}` is not a sha256 digest", d.get_ref()),
                        "write \"sha256:\" followed by 64 lower-case hex digits (see `docker buildx imagetools inspect`)",
                    );
                }
                Some(d.into_inner())
            }
        };
        let mirror = match b.mirror {
            None => None,
            Some(m) => {
                self.mark("base.mirror", &m);
                let s = m.get_ref().trim_end_matches('/');
                if s.is_empty() || s.contains("://") || s.chars().any(|c| c.is_whitespace()) {
                    return self.err(
                        m.span(),
                        format!("`{}` is not a registry prefix", m.get_ref()),
                        "write host[:port][/path] without a scheme, e.g. \"mirror.example.com/dockerhub\"",
                    );
                }
                Some(s.to_string())
            }
        };
        Ok(Base {
            image,
            digest,
            mirror,
        })
    }
}

fn join(dir: &str, rel: &str) -> String {
    let rel = rel.trim_start_matches("./");
    if dir.ends_with('/') {
        format!("{dir}{rel}")
    } else {
        format!("{dir}/{rel}")
    }
}

fn is_dotted_numeric(s: &str, min: usize, max: usize) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    (min..=max).contains(&parts.len())
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 6 && p.chars().all(|c| c.is_ascii_digit()))
}

/// A torchvision or torchaudio release: two or three numeric fields (torch's own version is
/// checked by [`resolve::torch_form`]).
fn is_release(s: &str) -> bool {
    is_dotted_numeric(s, 2, 3)
}

/// `sha256:` + 64 lower-case hex digits.
pub fn is_sha256_digest(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    })
}

fn is_user_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_ascii_lowercase() || f == '_')
        && s.len() <= 32
        && c.all(|x| x.is_ascii_lowercase() || x.is_ascii_digit() || x == '_' || x == '-')
}

fn is_env_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

fn is_apt_package(s: &str) -> bool {
    let (name, version) = match s.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (s, None),
    };
    let name_ok = name.len() >= 2
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
    let ver_ok = version.is_none_or(|v| {
        !v.is_empty()
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".+-~:".contains(c))
    });
    name_ok && ver_ok
}

/// A light PEP 508 check: a distribution name, optional extras, then an optional version
/// specifier, URL or marker. It rejects what would break a pip command line (whitespace
/// inside names, option-like strings, control characters) rather than re-implementing pip.
fn check_requirement(s: &str) -> Result<(), String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("it is empty".into());
    }
    if s.starts_with('-') {
        return Err("pip options are not requirements".into());
    }
    if s.chars().any(|c| c.is_control()) {
        return Err("it contains control characters".into());
    }
    let name_end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || "._-".contains(c)))
        .unwrap_or(s.len());
    let name = &s[..name_end];
    if name.is_empty()
        || !name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        || !name
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric())
    {
        return Err("it does not start with a package name".into());
    }
    let rest = s[name_end..].trim_start();
    let ok_next = rest.is_empty()
        || rest.starts_with('[')
        || rest.starts_with(['=', '<', '>', '!', '~', ';', '@', '(']);
    if !ok_next {
        return Err("unexpected text after the package name".into());
    }
    // The environment marker: after `;`, or after ` ;` in the URL form (`name @ URL ;`),
    // whose URL may hold a `;` of its own.
    let marker = if rest.starts_with('@') {
        rest.find(" ;").map(|i| &rest[i + 2..])
    } else {
        rest.find(';').map(|i| &rest[i + 1..])
    };
    match marker {
        Some(m) => marker::check(m).map_err(|e| format!("its environment marker is wrong: {e}")),
        None => Ok(()),
    }
}

impl Spec {
    /// The span of a key (`"torch.version"`), falling back to its table, then line 1.
    pub fn span_of(&self, key: &str) -> Span {
        let table = key.split('.').next().unwrap_or("");
        self.locations
            .get(key)
            .or_else(|| self.locations.get(table))
            .copied()
            .unwrap_or(Span {
                line: 1,
                col: 1,
                end_line: 1,
                end_col: 1,
            })
    }

    /// An error located at a key, for problems found after parsing.
    pub fn error_at(
        &self,
        key: &str,
        message: impl Into<String>,
        help: Option<String>,
    ) -> SpecError {
        SpecError::at_span(&self.filename, &self.text, self.span_of(key), message, help)
    }

    /// The resolver request this spec makes once `o` (flags, environment variables or
    /// build-args) is applied: an override wins over the spec's value. Host probing comes
    /// after, in the CLI.
    pub fn request_with(&self, o: &Overrides) -> crate::resolve::Request {
        crate::resolve::Request {
            torch: self.torch.version.clone(),
            cuda: self.torch.cuda.clone(),
            flavor: self.torch.flavor,
            driver: self.target.driver.clone(),
            gpus: self.target.gpus.clone(),
            torchvision: self.torch.torchvision.clone(),
            torchaudio: self.torch.torchaudio.clone(),
            online: self.torch.online,
        }
        .overridden(o)
    }

    /// The resolver request this spec makes, with no override.
    pub fn request(&self) -> crate::resolve::Request {
        self.request_with(&Overrides::default())
    }

    /// The cache profile in force: the override's, else `[cache] profile`.
    pub fn profile_with(&self, o: Option<Profile>) -> Profile {
        o.unwrap_or(self.cache.profile)
    }
}

#[cfg(test)]
mod tests;
