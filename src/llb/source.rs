//! Source ops: `docker-image://` images, `local://` directories from the client session,
//! and scratch (no op at all). Mirrors Go `client/llb/source.go`.

use std::collections::BTreeMap;

use super::platform::Platform;
use super::state::{op_meta_setters, Node, OpKind, OpMeta, State, StateMeta};
use super::{caps, LlbError};

/// The empty filesystem. It has no op; an exec on it mounts nothing at `/` (input −1).
pub fn scratch() -> State {
    State {
        output: None,
        meta: std::sync::Arc::new(StateMeta::default()),
    }
}

/// How the daemon resolves an image reference (`image.resolvemode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResolveMode {
    /// The daemon's default (no attribute is written).
    #[default]
    Default,
    /// Always pull from the registry (`pull`).
    ForcePull,
    /// Prefer an image already in the local store (`local`).
    PreferLocal,
}

impl ResolveMode {
    fn attr(self) -> Option<&'static str> {
        match self {
            Self::Default => None,
            Self::ForcePull => Some("pull"),
            Self::PreferLocal => Some("local"),
        }
    }
}

/// A `docker-image://` source under construction; convert it into a [`State`].
#[derive(Debug, Clone)]
#[must_use]
pub struct Image {
    reference: String,
    digest: Option<String>,
    resolve_mode: ResolveMode,
    platform: Option<Platform>,
    meta: OpMeta,
}

/// An image source. The name is normalized like the Go client does
/// (`ubuntu` → `docker.io/library/ubuntu:latest`); errors surface from `marshal`.
pub fn image(reference: &str) -> Image {
    Image {
        reference: reference.to_owned(),
        digest: None,
        resolve_mode: ResolveMode::Default,
        platform: None,
        meta: OpMeta::default(),
    }
}

impl Image {
    /// Pins the image by manifest digest: the identifier becomes `name:tag@sha256:…` (the tag,
    /// implied `latest` included, is kept like the Dockerfile frontend's pinned references;
    /// a reference given as `name@sha256:…` stays tagless). `None` leaves it unpinned.
    pub fn digest(mut self, digest: Option<&str>) -> Self {
        self.digest = digest.map(str::to_owned);
        self
    }

    /// How the daemon resolves the reference.
    pub fn resolve_mode(mut self, mode: ResolveMode) -> Self {
        self.resolve_mode = mode;
        self
    }

    /// The platform to pull; defaults to [`Platform::linux_amd64`]. Later execs inherit it.
    pub fn platform(mut self, platform: Platform) -> Self {
        self.platform = Some(platform);
        self
    }

    /// The normalized identifier this image marshals to (`docker-image://…`).
    pub fn identifier(&self) -> Result<String, LlbError> {
        let normalized = normalize_image_ref(&self.reference)?;
        let full = match &self.digest {
            None => normalized,
            Some(d) => {
                check_digest(d)?;
                // Like the Dockerfile frontend (`TagNameOnly` then `WithDigest`): the tag,
                // `latest` included, stays in front of the digest.
                let name = normalized.split('@').next().unwrap_or(&normalized);
                format!("{name}@{d}")
            }
        };
        Ok(format!("docker-image://{full}"))
    }

    /// The state of the image's root filesystem.
    pub fn into_state(self) -> State {
        State::from(self)
    }
}

op_meta_setters!(Image, meta);

impl From<Image> for State {
    fn from(img: Image) -> State {
        let platform = img.platform.clone().unwrap_or_default();
        let (identifier, error) = match img.identifier() {
            Ok(id) => (id, None),
            Err(e) => (format!("docker-image://{}", img.reference), Some(e)),
        };
        let mut attrs = BTreeMap::new();
        let mut meta = img.meta;
        meta.caps.insert(caps::SOURCE_IMAGE.to_owned());
        if let Some(mode) = img.resolve_mode.attr() {
            attrs.insert("image.resolvemode".to_owned(), mode.to_owned());
            meta.caps.insert(caps::SOURCE_IMAGE_RESOLVE_MODE.to_owned());
        }
        let node = Node {
            op: OpKind::Source {
                identifier,
                attrs,
                platform: Some(platform.clone()),
                error,
            },
            meta,
        };
        State::from_node(
            node,
            0,
            StateMeta {
                platform: Some(platform),
                ..StateMeta::default()
            },
        )
    }
}

/// How the daemon compares files of a local source with its previous sync (`local.differ`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Differ {
    /// Compare metadata (size, mtime, mode); BuildKit's default.
    Metadata,
    /// Do not compare; copy everything.
    None,
}

/// A `local://` source (a directory the client session serves) under construction.
#[derive(Debug, Clone)]
#[must_use]
pub struct Local {
    name: String,
    session_id: Option<String>,
    unique_id: Option<String>,
    include: Vec<String>,
    exclude: Vec<String>,
    follow: Vec<String>,
    shared_key_hint: Option<String>,
    differ: Option<Differ>,
    meta: OpMeta,
}

/// A local source named `name` (the key of the directory in the session's FileSync).
pub fn local(name: &str) -> Local {
    Local {
        name: name.to_owned(),
        session_id: None,
        unique_id: None,
        include: Vec::new(),
        exclude: Vec::new(),
        follow: Vec::new(),
        shared_key_hint: None,
        differ: None,
        meta: OpMeta::default(),
    }
}

impl Local {
    /// The session that serves the directory (`local.session`).
    pub fn session_id(mut self, id: &str) -> Self {
        self.session_id = Some(id.to_owned());
        self
    }

    /// `local.unique`: a caller-chosen ID that keeps the source from sharing cache with
    /// others. The Go client invents a random one when no session is set; this pure builder
    /// never does, so pass one if you need it.
    pub fn unique_id(mut self, id: &str) -> Self {
        self.unique_id = Some(id.to_owned());
        self
    }

    /// Only send paths matching these patterns (`local.includepattern`, a JSON array).
    pub fn include_patterns<S: AsRef<str>>(
        mut self,
        patterns: impl IntoIterator<Item = S>,
    ) -> Self {
        self.include = patterns
            .into_iter()
            .map(|s| s.as_ref().to_owned())
            .collect();
        self
    }

    /// Never send paths matching these patterns (`local.excludepatterns`, a JSON array).
    pub fn exclude_patterns<S: AsRef<str>>(
        mut self,
        patterns: impl IntoIterator<Item = S>,
    ) -> Self {
        self.exclude = patterns
            .into_iter()
            .map(|s| s.as_ref().to_owned())
            .collect();
        self
    }

    /// Symlinks to follow when sending (`local.followpaths`, a JSON array).
    pub fn follow_paths<S: AsRef<str>>(mut self, paths: impl IntoIterator<Item = S>) -> Self {
        self.follow = paths.into_iter().map(|s| s.as_ref().to_owned()).collect();
        self
    }

    /// Key for incremental sync across sessions (`local.sharedkeyhint`).
    pub fn shared_key_hint(mut self, hint: &str) -> Self {
        self.shared_key_hint = Some(hint.to_owned());
        self
    }

    /// How changed files are detected (`local.differ`).
    pub fn differ(mut self, differ: Differ) -> Self {
        self.differ = Some(differ);
        self
    }

    /// The directory's state.
    pub fn into_state(self) -> State {
        State::from(self)
    }
}

op_meta_setters!(Local, meta);

impl From<Local> for State {
    fn from(l: Local) -> State {
        let mut attrs = BTreeMap::new();
        let mut meta = l.meta;
        let mut set = |key: &str, value: String, cap: &str| {
            attrs.insert(key.to_owned(), value);
            meta.caps.insert(cap.to_owned());
        };
        if let Some(s) = l.session_id {
            set("local.session", s, caps::SOURCE_LOCAL_SESSION_ID);
        }
        if let Some(u) = l.unique_id {
            set("local.unique", u, caps::SOURCE_LOCAL_UNIQUE);
        }
        if !l.include.is_empty() {
            set(
                "local.includepattern",
                go_json_strings(&l.include),
                caps::SOURCE_LOCAL_INCLUDE_PATTERNS,
            );
        }
        if !l.exclude.is_empty() {
            set(
                "local.excludepatterns",
                go_json_strings(&l.exclude),
                caps::SOURCE_LOCAL_EXCLUDE_PATTERNS,
            );
        }
        if !l.follow.is_empty() {
            set(
                "local.followpaths",
                go_json_strings(&l.follow),
                caps::SOURCE_LOCAL_FOLLOW_PATHS,
            );
        }
        if let Some(h) = l.shared_key_hint {
            set("local.sharedkeyhint", h, caps::SOURCE_LOCAL_SHARED_KEY_HINT);
        }
        if let Some(d) = l.differ {
            let v = match d {
                Differ::Metadata => "metadata",
                Differ::None => "none",
            };
            // As Go's `llb.Differ(t, false)`: the attribute without its cap, which a
            // daemon older than the cap (BuildKit < v0.9) ignores instead of refusing the
            // whole Definition.
            attrs.insert("local.differ".to_owned(), v.to_owned());
        }
        meta.caps.insert(caps::SOURCE_LOCAL.to_owned());
        let node = Node {
            op: OpKind::Source {
                identifier: format!("local://{}", l.name),
                attrs,
                platform: None,
                error: None,
            },
            meta,
        };
        State::from_node(node, 0, StateMeta::default())
    }
}

/// A JSON array of strings as Go's `encoding/json` writes it: compact, with `<`, `>`, `&`,
/// U+2028 and U+2029 escaped.
fn go_json_strings(items: &[String]) -> String {
    let s = serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned());
    s.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

fn check_digest(d: &str) -> Result<(), LlbError> {
    match d.strip_prefix("sha256:") {
        Some(hex)
            if hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            Ok(())
        }
        _ => Err(LlbError::InvalidDigest(d.to_owned())),
    }
}

/// Whether a reference names a tag (a `:` after the last `/`, before any `@`).
fn has_tag(reference: &str) -> bool {
    let name = reference.split('@').next().unwrap_or(reference);
    let last = name.rsplit('/').next().unwrap_or(name);
    last.contains(':')
}

/// The short form Docker prints and the Dockerfile frontend matches named build contexts
/// against (`reference.FamiliarString`, `:latest` dropped): `docker.io/library/ubuntu:latest`
/// → `ubuntu`, `docker.io/pytorch/pytorch:2.8.0-…` → `pytorch/pytorch:2.8.0-…`; other
/// registries are kept. Normalizes first, so any spelling of one image gives one name.
pub fn familiar_image_ref(reference: &str) -> Result<String, LlbError> {
    let full = normalize_image_ref(reference)?;
    let short = full
        .strip_prefix("docker.io/library/")
        .or_else(|| full.strip_prefix("docker.io/"))
        .unwrap_or(&full);
    Ok(short.strip_suffix(":latest").unwrap_or(short).to_string())
}

/// Normalizes a Docker image reference like `reference.ParseNormalizedNamed` +
/// `TagNameOnly` in Go: adds the `docker.io` domain, the `library/` namespace for official
/// images and the `latest` tag when neither tag nor digest is given.
///
/// `ubuntu` → `docker.io/library/ubuntu:latest`;
/// `pytorch/pytorch:2.4.0` → `docker.io/pytorch/pytorch:2.4.0`;
/// `nvcr.io/nvidia/pytorch:24.05-py3` is kept as is.
pub fn normalize_image_ref(reference: &str) -> Result<String, LlbError> {
    let bad = |reason: &str| LlbError::InvalidReference {
        reference: reference.to_owned(),
        reason: reason.to_owned(),
    };
    let (name_tag, digest) = match reference.split_once('@') {
        Some((n, d)) => {
            check_digest(d)?;
            (n, Some(d))
        }
        None => (reference, None),
    };
    let (name, tag) = if has_tag(name_tag) {
        let (n, t) = name_tag.rsplit_once(':').ok_or_else(|| bad("bad tag"))?;
        (n, Some(t))
    } else {
        (name_tag, None)
    };
    if name.is_empty() {
        return Err(bad("empty name"));
    }
    if let Some(t) = tag {
        let ok = !t.is_empty()
            && t.len() <= 128
            && !t.starts_with(['.', '-'])
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !ok {
            return Err(bad(
                "tags are up to 128 of [A-Za-z0-9_.-], not starting with . or -",
            ));
        }
    }
    let (domain, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first, rest.to_owned())
        }
        _ => ("docker.io", name.to_owned()),
    };
    let domain = if domain == "index.docker.io" {
        "docker.io"
    } else {
        domain
    };
    let path = if domain == "docker.io" && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    let path_ok = path.split('/').all(|c| {
        !c.is_empty()
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            && c.as_bytes()[0].is_ascii_alphanumeric()
            && c.as_bytes()[c.len() - 1].is_ascii_alphanumeric()
    });
    if !path_ok {
        return Err(bad(
            "repository path components are lowercase letters, digits and . _ -",
        ));
    }
    let domain_ok = domain
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b".-:".contains(&b));
    if domain.is_empty() || !domain_ok {
        return Err(bad("bad registry host"));
    }
    let mut out = format!("{domain}/{path}");
    match (tag, digest) {
        (Some(t), _) => {
            out.push(':');
            out.push_str(t);
        }
        (None, None) => out.push_str(":latest"),
        (None, Some(_)) => {}
    }
    if let Some(d) = digest {
        out.push('@');
        out.push_str(d);
    }
    Ok(out)
}
