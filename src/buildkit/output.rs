//! Parsing of the build flags that describe where results and caches go, as buildx and
//! buildctl spell them:
//!
//! - `--output` / `-o`: `type=image,name=…[,push=true]`, `type=docker,dest=…`,
//!   `type=oci,dest=…`, `type=local,dest=…`, `type=tar,dest=…`, and the shorthand
//!   `-o <dir>` (= `type=local,dest=<dir>`) or `-o -` (= `type=tar,dest=-`, stdout);
//! - `--tag` / `-t`: shorthand for `type=image,name=…` (several tags join into one exporter);
//! - `--import-cache` / `--export-cache`: `type=registry,ref=…`, `type=local,src=…|dest=…`,
//!   `type=inline`, plus `gha`, `s3` and `azblob` passed through; a bare `ref` means registry;
//! - `--secret`: `id=…,src=…` (file) or `id=…,env=…`.
//!
//! Values are comma-separated `key=value` fields with CSV quoting (`"name=a,b"`), like
//! buildx. Client-side destinations (`dest` of local/tar/oci/docker) stay on the client:
//! they are not sent to the daemon, whose output reaches them through the session's
//! `FileSend` service.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use crate::error::Hint;

/// An invalid output, cache or secret flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {flag} `{value}`: {reason}")]
pub struct OutputError {
    /// The flag (`--output`, `--export-cache`, …).
    pub flag: &'static str,
    /// The value as given.
    pub value: String,
    /// What is wrong.
    pub reason: String,
    /// An example of a valid value.
    pub example: &'static str,
}

impl Hint for OutputError {
    fn hint(&self) -> Option<String> {
        Some(format!("for example `{} {}`", self.flag, self.example))
    }
}

/// Splits `a=b,"c=d,e",f` into fields, honouring double quotes like Go's encoding/csv.
fn csv_fields(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    let mut in_quotes = false;
    while let Some(c) = chars.next() {
        match c {
            '"' if in_quotes && chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    if in_quotes {
        return Err("unterminated double quote".into());
    }
    out.push(cur);
    Ok(out)
}

/// Parses `k=v,k=v` into an ordered map; duplicate keys and fields without `=` are errors.
fn kv(s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut m = BTreeMap::new();
    for f in csv_fields(s)? {
        let f = f.trim();
        if f.is_empty() {
            continue;
        }
        let Some((k, v)) = f.split_once('=') else {
            return Err(format!("field `{f}` is not `key=value`"));
        };
        let k = k.trim().to_ascii_lowercase();
        if m.insert(k.clone(), v.trim().to_string()).is_some() {
            return Err(format!("`{k}` is given twice"));
        }
    }
    Ok(m)
}

/// Where an exporter writes on the client side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// Nothing on the client (image store or registry).
    None,
    /// A directory (`type=local`).
    Dir(PathBuf),
    /// A file (`type=tar|oci|docker`).
    File(PathBuf),
    /// Standard output (`dest=-`); only for the driver, never in frontend mode.
    Stdout,
}

/// One exporter, ready for `SolveRequest.Exporters`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exporter {
    /// `image`, `docker`, `oci`, `local`, `tar` (or another daemon-known type).
    pub kind: String,
    /// Attributes sent to the daemon (without the client-side `dest`).
    pub attrs: BTreeMap<String, String>,
    /// Where the bytes land on the client.
    pub dest: Destination,
}

impl Exporter {
    /// The protobuf message.
    pub fn to_proto(&self) -> crate::proto::moby::buildkit::v1::Exporter {
        crate::proto::moby::buildkit::v1::Exporter {
            r#type: self.kind.clone(),
            attrs: self.attrs.clone(),
        }
    }

    /// Whether the daemon sends output through the session (`FileSend`).
    pub fn needs_file_send(&self) -> bool {
        !matches!(self.dest, Destination::None)
    }
}

impl fmt::Display for Exporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "type={}", self.kind)?;
        for (k, v) in &self.attrs {
            write!(f, ",{k}={v}")?;
        }
        match &self.dest {
            Destination::None => Ok(()),
            Destination::Dir(p) | Destination::File(p) => write!(f, ",dest={}", p.display()),
            Destination::Stdout => write!(f, ",dest=-"),
        }
    }
}

const OUTPUT_EXAMPLE: &str = "type=image,name=localhost:5000/app:1,push=true";

/// Parses one `--output` value.
pub fn parse_output(value: &str) -> Result<Exporter, OutputError> {
    let err = |reason: String| OutputError {
        flag: "--output",
        value: value.to_string(),
        reason,
        example: OUTPUT_EXAMPLE,
    };
    if value.trim().is_empty() {
        return Err(err("empty value".into()));
    }
    // Shorthands: `-o -` and `-o <dir>`.
    if !value.contains('=') {
        return Ok(if value == "-" {
            Exporter {
                kind: "tar".into(),
                attrs: BTreeMap::new(),
                dest: Destination::Stdout,
            }
        } else {
            Exporter {
                kind: "local".into(),
                attrs: BTreeMap::new(),
                dest: Destination::Dir(PathBuf::from(value)),
            }
        });
    }
    let mut attrs = kv(value).map_err(err)?;
    let kind = attrs
        .remove("type")
        .ok_or_else(|| err("missing `type=` (image, docker, oci, local or tar)".into()))?;
    let dest = attrs.remove("dest");
    let dest = match (kind.as_str(), dest) {
        ("image" | "moby" | "registry", Some(_)) => {
            return Err(err(format!(
            "`type={kind}` writes to an image store or registry and takes no `dest`; use `name=`"
        )))
        }
        ("image" | "moby" | "registry", None) => Destination::None,
        ("local", Some(d)) if d == "-" => {
            return Err(err("`type=local` needs a directory, not `-`".into()))
        }
        ("local", Some(d)) if !d.is_empty() => Destination::Dir(PathBuf::from(d)),
        ("local", _) => return Err(err("`type=local` needs `dest=<directory>`".into())),
        ("tar" | "oci" | "docker", Some(d)) if d == "-" => Destination::Stdout,
        ("tar" | "oci" | "docker", Some(d)) if !d.is_empty() => Destination::File(PathBuf::from(d)),
        ("tar" | "oci" | "docker", _) => {
            return Err(err(format!(
                "`type={kind}` needs `dest=<file>` (or `dest=-` for stdout)"
            )))
        }
        (other, _) => {
            return Err(err(format!(
                "unknown exporter type `{other}`; expected image, docker, oci, local or tar"
            )))
        }
    };
    let kind = if kind == "registry" {
        // buildx's alias: an image pushed to a registry.
        attrs.insert("push".into(), "true".into());
        "image".to_string()
    } else {
        kind
    };
    for key in [
        "push",
        "unpack",
        "oci-mediatypes",
        "force-compression",
        "store",
    ] {
        if let Some(v) = attrs.get(key) {
            if !matches!(v.as_str(), "true" | "false" | "") {
                return Err(err(format!("`{key}` must be true or false, not `{v}`")));
            }
        }
    }
    if kind == "image"
        && attrs.get("push").map(String::as_str) == Some("true")
        && attrs.get("name").is_none_or(|n| n.is_empty())
    {
        return Err(err(
            "`push=true` needs `name=<registry>/<repo>:<tag>`".into()
        ));
    }
    Ok(Exporter { kind, attrs, dest })
}

/// Merges `--tag` values into one `type=image,name=a,b` exporter (none if no tags).
pub fn tags_to_exporter(tags: &[String]) -> Result<Option<Exporter>, OutputError> {
    let mut names = Vec::new();
    for t in tags {
        if t.is_empty() || t.contains(',') || t.chars().any(char::is_whitespace) {
            return Err(OutputError {
                flag: "--tag",
                value: t.clone(),
                reason: "a tag is one image name without spaces or commas".into(),
                example: "localhost:5000/app:1",
            });
        }
        names.push(t.as_str());
    }
    if names.is_empty() {
        return Ok(None);
    }
    Ok(Some(Exporter {
        kind: "image".into(),
        attrs: BTreeMap::from([("name".to_string(), names.join(","))]),
        dest: Destination::None,
    }))
}

/// Combines `--output` and `--tag` values into the exporter list: a tag joins an existing
/// `type=image` output (adding its name), otherwise it adds one.
pub fn exporters(outputs: &[String], tags: &[String]) -> Result<Vec<Exporter>, OutputError> {
    let mut list = outputs
        .iter()
        .map(|o| parse_output(o))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(tagged) = tags_to_exporter(tags)? {
        let tag_names = tagged.attrs["name"].clone();
        if let Some(img) = list.iter_mut().find(|e| e.kind == "image") {
            let name = img.attrs.entry("name".into()).or_default();
            if name.is_empty() {
                *name = tag_names;
            } else {
                name.push(',');
                name.push_str(&tag_names);
            }
        } else {
            list.push(tagged);
        }
    }
    let stdout = list
        .iter()
        .filter(|e| e.dest == Destination::Stdout)
        .count();
    if stdout > 1 {
        return Err(OutputError {
            flag: "--output",
            value: outputs.join(" "),
            reason: "only one output can go to stdout (`dest=-`)".into(),
            example: "type=tar,dest=-",
        });
    }
    Ok(list)
}

/// Whether a cache flag is for import or export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheDirection {
    /// `--import-cache` / `--cache-from`.
    Import,
    /// `--export-cache` / `--cache-to`.
    Export,
}

/// One cache import or export, ready for `CacheOptionsEntry`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// `registry`, `local`, `inline`, `gha`, `s3`, `azblob`.
    pub kind: String,
    /// Attributes (`ref`, `src`, `dest`, `mode`, …).
    pub attrs: BTreeMap<String, String>,
}

impl CacheEntry {
    /// The Control API message.
    pub fn to_proto(&self) -> crate::proto::moby::buildkit::v1::CacheOptionsEntry {
        crate::proto::moby::buildkit::v1::CacheOptionsEntry {
            r#type: self.kind.clone(),
            attrs: self.attrs.clone(),
        }
    }

    /// The gateway message (for `LLBBridge.Solve` `CacheImports`).
    pub fn to_gateway(&self) -> crate::proto::moby::buildkit::v1::frontend::CacheOptionsEntry {
        crate::proto::moby::buildkit::v1::frontend::CacheOptionsEntry {
            r#type: self.kind.clone(),
            attrs: self.attrs.clone(),
        }
    }
}

/// Parses one `--import-cache` or `--export-cache` value.
pub fn parse_cache(value: &str, dir: CacheDirection) -> Result<CacheEntry, OutputError> {
    let (flag, example) = match dir {
        CacheDirection::Import => (
            "--import-cache",
            "type=registry,ref=localhost:5000/app:cache",
        ),
        CacheDirection::Export => (
            "--export-cache",
            "type=registry,ref=localhost:5000/app:cache,mode=max",
        ),
    };
    let err = |reason: String| OutputError {
        flag,
        value: value.to_string(),
        reason,
        example,
    };
    if value.trim().is_empty() {
        return Err(err("empty value".into()));
    }
    if !value.contains('=') {
        // buildx: a bare reference is a registry cache.
        return Ok(CacheEntry {
            kind: "registry".into(),
            attrs: BTreeMap::from([("ref".to_string(), value.to_string())]),
        });
    }
    let mut attrs = kv(value).map_err(err)?;
    let kind = attrs.remove("type").ok_or_else(|| {
        err("missing `type=` (registry, local, inline, gha, s3 or azblob)".into())
    })?;
    match (kind.as_str(), dir) {
        ("registry", _) => {
            if attrs.get("ref").is_none_or(|r| r.is_empty()) {
                return Err(err(
                    "`type=registry` needs `ref=<registry>/<repo>:<tag>`".into()
                ));
            }
        }
        ("local", CacheDirection::Import) => {
            if attrs.get("src").is_none_or(|r| r.is_empty()) {
                return Err(err("`type=local` import needs `src=<directory>`".into()));
            }
        }
        ("local", CacheDirection::Export) => {
            if attrs.get("dest").is_none_or(|r| r.is_empty()) {
                return Err(err("`type=local` export needs `dest=<directory>`".into()));
            }
        }
        ("inline", CacheDirection::Export) => {}
        ("inline", CacheDirection::Import) => {
            return Err(err(
                "inline cache is imported from the image itself: use `type=registry,ref=<image>`"
                    .into(),
            ))
        }
        ("gha" | "s3" | "azblob", _) => {}
        (other, _) => {
            return Err(err(format!(
                "unknown cache type `{other}`; expected registry, local, inline, gha, s3 or azblob"
            )))
        }
    }
    if dir == CacheDirection::Export {
        if let Some(m) = attrs.get("mode") {
            if !matches!(m.as_str(), "min" | "max") {
                return Err(err(format!("`mode` must be min or max, not `{m}`")));
            }
        }
    }
    Ok(CacheEntry { kind, attrs })
}

/// Where a secret's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A file read when the daemon asks.
    File(PathBuf),
    /// An environment variable of the client.
    Env(String),
}

/// One `--secret`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSpec {
    /// The ID RUN mounts refer to.
    pub id: String,
    /// Where its value comes from.
    pub source: SecretSource,
}

/// Parses one `--secret` value: `id=…,src=…|source=…` (file), `id=…,env=…`, or just
/// `id=…` (the environment variable of that name, as buildx does).
pub fn parse_secret(value: &str) -> Result<SecretSpec, OutputError> {
    let err = |reason: String| OutputError {
        flag: "--secret",
        value: value.to_string(),
        reason,
        example: "id=hostca,src=/etc/ssl/certs/ca-certificates.crt",
    };
    let attrs = kv(value).map_err(err)?;
    let mut id = None;
    let mut src = None;
    let mut env = None;
    let mut typ = None;
    for (k, v) in attrs {
        match k.as_str() {
            "id" => id = Some(v),
            "src" | "source" => {
                if src.replace(v).is_some() {
                    return Err(err("give `src` or `source`, not both".into()));
                }
            }
            "env" => env = Some(v),
            "type" => typ = Some(v),
            other => {
                return Err(err(format!(
                    "unknown key `{other}`; expected id, src (or source), env, type"
                )))
            }
        }
    }
    let id = id
        .filter(|i| !i.is_empty())
        .ok_or_else(|| err("missing `id=`".into()))?;
    let source = match (typ.as_deref(), src, env) {
        (_, Some(_), Some(_)) => return Err(err("give `src` or `env`, not both".into())),
        (None | Some("file"), Some(s), None) if !s.is_empty() => SecretSource::File(s.into()),
        (Some("env"), Some(s), None) if !s.is_empty() => SecretSource::Env(s),
        (None | Some("env"), None, Some(e)) if !e.is_empty() => SecretSource::Env(e),
        (Some("file"), None, None) => SecretSource::File(id.clone().into()),
        (None | Some("env"), None, None) => SecretSource::Env(id.clone()),
        (Some(t), _, _) if t != "file" && t != "env" => {
            return Err(err(format!(
                "unknown secret type `{t}`; expected file or env"
            )))
        }
        _ => return Err(err("empty `src` or `env`".into())),
    };
    Ok(SecretSpec { id, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn outputs() {
        let e = parse_output("type=image,name=localhost:5000/a:1,push=true").unwrap();
        assert_eq!(e.kind, "image");
        assert_eq!(
            e.attrs,
            m(&[("name", "localhost:5000/a:1"), ("push", "true")])
        );
        assert_eq!(e.dest, Destination::None);
        assert!(!e.needs_file_send());

        let e = parse_output("type=tar,dest=out.tar").unwrap();
        assert_eq!(
            (e.kind.as_str(), e.dest),
            ("tar", Destination::File("out.tar".into()))
        );
        assert!(e.attrs.is_empty());

        let e = parse_output("type=oci,dest=-").unwrap();
        assert_eq!(e.dest, Destination::Stdout);
        let e = parse_output("type=docker,dest=img.tar,name=x:1").unwrap();
        assert_eq!(e.attrs, m(&[("name", "x:1")]));
        let e = parse_output("type=local,dest=out").unwrap();
        assert_eq!(e.dest, Destination::Dir("out".into()));

        assert_eq!(
            parse_output("./out").unwrap().dest,
            Destination::Dir("./out".into())
        );
        let e = parse_output("-").unwrap();
        assert_eq!((e.kind.as_str(), e.dest), ("tar", Destination::Stdout));

        let e = parse_output("type=image,\"name=a:1,b:2\"").unwrap();
        assert_eq!(e.attrs["name"], "a:1,b:2");
        let e = parse_output("type=registry,name=localhost:5000/a:1").unwrap();
        assert_eq!(
            (e.kind.as_str(), e.attrs["push"].as_str()),
            ("image", "true")
        );
        assert_eq!(
            e.to_string(),
            "type=image,name=localhost:5000/a:1,push=true"
        );
    }

    #[test]
    fn output_errors_are_specific() {
        let cases = [
            ("name=x", "missing `type=`"),
            ("type=tar", "needs `dest=<file>`"),
            ("type=local", "needs `dest=<directory>`"),
            ("type=image,dest=x", "takes no `dest`"),
            ("type=image,push=true", "needs `name="),
            ("type=image,push=yes,name=a", "must be true or false"),
            ("type=zip,dest=a", "unknown exporter type `zip`"),
            ("type=tar,dest=a,dest=b", "given twice"),
            ("type=tar,\"dest=a", "unterminated"),
            ("type=tar,junk", "not `key=value`"),
            ("", "empty"),
        ];
        for (v, want) in cases {
            let e = parse_output(v).unwrap_err();
            assert!(e.to_string().contains(want), "{v}: {e}");
            assert!(e.hint().unwrap().contains("--output"));
        }
    }

    #[test]
    fn tags_merge_into_image_outputs() {
        let l = exporters(&[], &["a:1".into(), "b:2".into()]).unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].attrs["name"], "a:1,b:2");

        let l = exporters(
            &[
                "type=image,name=r/x:1,push=true".into(),
                "type=tar,dest=o.tar".into(),
            ],
            &["r/x:latest".into()],
        )
        .unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].attrs["name"], "r/x:1,r/x:latest");

        let l = exporters(&["type=tar,dest=o.tar".into()], &["t".into()]).unwrap();
        assert_eq!(l.len(), 2);
        assert!(exporters(&[], &["a b".into()]).is_err());
        assert!(exporters(&["-".into(), "type=oci,dest=-".into()], &[]).is_err());
    }

    #[test]
    fn caches() {
        let i = parse_cache("type=registry,ref=r/a:cache", CacheDirection::Import).unwrap();
        assert_eq!(
            (i.kind.as_str(), i.attrs["ref"].as_str()),
            ("registry", "r/a:cache")
        );
        let i = parse_cache("r/a:cache", CacheDirection::Import).unwrap();
        assert_eq!(i.kind, "registry");
        let e = parse_cache("type=local,dest=/tmp/c,mode=max", CacheDirection::Export).unwrap();
        assert_eq!(e.attrs, m(&[("dest", "/tmp/c"), ("mode", "max")]));
        assert_eq!(e.to_proto().r#type, "local");
        assert!(parse_cache("type=inline", CacheDirection::Export).is_ok());
        assert!(parse_cache("type=gha,scope=x", CacheDirection::Import).is_ok());

        let cases = [
            ("type=registry", CacheDirection::Import, "needs `ref="),
            ("type=local,dest=x", CacheDirection::Import, "needs `src="),
            ("type=local,src=x", CacheDirection::Export, "needs `dest="),
            (
                "type=inline",
                CacheDirection::Import,
                "imported from the image",
            ),
            (
                "type=registry,ref=a,mode=all",
                CacheDirection::Export,
                "min or max",
            ),
            (
                "type=nfs,ref=a",
                CacheDirection::Export,
                "unknown cache type",
            ),
        ];
        for (v, d, want) in cases {
            let e = parse_cache(v, d).unwrap_err();
            assert!(e.to_string().contains(want), "{v}: {e}");
        }
        assert!(parse_cache("type=registry", CacheDirection::Export)
            .unwrap_err()
            .to_string()
            .starts_with("invalid --export-cache"));
    }

    #[test]
    fn secrets() {
        assert_eq!(
            parse_secret("id=hostca,src=/etc/ca.crt").unwrap(),
            SecretSpec {
                id: "hostca".into(),
                source: SecretSource::File("/etc/ca.crt".into())
            }
        );
        assert_eq!(
            parse_secret("id=tok,env=HF_TOKEN").unwrap().source,
            SecretSource::Env("HF_TOKEN".into())
        );
        assert_eq!(
            parse_secret("id=HF_TOKEN").unwrap().source,
            SecretSource::Env("HF_TOKEN".into())
        );
        assert_eq!(
            parse_secret("type=file,id=x,source=a").unwrap().source,
            SecretSource::File("a".into())
        );
        let cases = [
            ("src=/a", "missing `id=`"),
            ("id=a,src=b,env=c", "not both"),
            ("id=a,src=b,source=c", "not both"),
            ("id=a,path=b", "unknown key `path`"),
            ("id=a,type=ssh", "unknown secret type"),
            ("id=a,src=", "empty"),
        ];
        for (v, want) in cases {
            let e = parse_secret(v).unwrap_err();
            assert!(e.to_string().contains(want), "{v}: {e}");
        }
    }
}
