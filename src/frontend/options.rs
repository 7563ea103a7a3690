//! What the daemon tells a `# syntax=` frontend: the environment it runs in and the
//! frontend options of the build, parsed into [`FrontendOptions`].
//!
//! Every environment variable and option key the frontend reads is named here, once
//! (`buildkit-protocol.md` §2; BuildKit `frontend/dockerui/config.go`). Options torchkit
//! does not know are ignored, as the Dockerfile frontend does; options it knows but cannot
//! honour (`platform=linux/arm64`, a renamed context) are refused with a message that says
//! what to do instead.

use std::collections::BTreeMap;

use super::subrequest::Subrequest;
use crate::buildkit::output::CacheEntry;
use crate::error::Hint;
use crate::plan::{CaSecret, NoCache};
use crate::vocab::{names, BuildArgError, Overrides, ParseError, Step};

/// `BUILDKIT_FRONTEND_OPT_<i>`: one `key=value` frontend option each, `i` = 0, 1, …
pub const ENV_FRONTEND_OPT_PREFIX: &str = "BUILDKIT_FRONTEND_OPT_";
/// `BUILDKIT_SESSION_ID`: the client session that serves the locals.
pub const ENV_SESSION_ID: &str = "BUILDKIT_SESSION_ID";

/// The spec's file name inside the `dockerfile` local (`docker build -f`).
pub const OPT_FILENAME: &str = "filename";
/// Renames the local that carries the spec.
pub const OPT_DOCKERFILE_KEY: &str = "dockerfilekey";
/// Renames the build context local.
pub const OPT_CONTEXT_KEY: &str = "contextkey";
/// `--target`: stop after this step.
pub const OPT_TARGET: &str = "target";
/// `--no-cache` (empty value) and `--no-cache-filter` (a comma list).
pub const OPT_NO_CACHE: &str = "no-cache";
/// `--platform`, a comma list.
pub const OPT_PLATFORM: &str = "platform";
/// `--cache-from`, as JSON `[{Type, Attrs}]`.
pub const OPT_CACHE_IMPORTS: &str = "cache-imports";
/// Set on subrequests (`--call outline`, `--print`), which torchkit does not answer.
pub const OPT_REQUEST_ID: &str = "requestid";
/// Prefix of `--build-arg` options.
pub const OPT_BUILD_ARG: &str = "build-arg:";
/// Prefix of `--label` options.
pub const OPT_LABEL: &str = "label:";
/// Prefix of named build contexts (`--build-context NAME=VALUE`), optionally with a
/// `::<platform>` suffix on the name, as the Dockerfile frontend reads them.
pub const OPT_CONTEXT: &str = "context:";
/// The kind of named context torchkit takes: an image to build on instead of the base.
pub const IMAGE_CONTEXT_SCHEME: &str = "docker-image://";

// The override build-args (`TORCHKIT_CUDA`, `…_FLAVOR`, `…_DRIVER`, `…_GPU`, `…_PROFILE`)
// are the vocabulary's: `crate::vocab::names`, read by `Overrides::from_build_args`.
/// `--build-arg TORCHKIT_CA_SECRET=…`: how the steps that download get the secret
/// `torchkit-ca` (a CA bundle, passed with `--secret id=torchkit-ca,src=…`). Unset: mounted
/// when the build has it and used only then ([`CaSecret::Optional`]), so the secret alone
/// is enough; `1`: required, a build without it fails; `0`: never mounted.
pub const ARG_CA_SECRET: &str = "TORCHKIT_CA_SECRET";
/// The same as [`ARG_CA_SECRET`], as `torchkit build --frontend` sends it (`1` with
/// `--ca-bundle`, `0` when the driver has no CA secret to give).
pub const ARG_CA_BUNDLE: &str = "TORCHKIT_CA_BUNDLE";
/// `--build-arg TORCHKIT_LOCKED=1`: fail unless `torchkit.lock` beside the spec is current
/// (what `torchkit build --locked` is for the driver).
pub const ARG_LOCKED: &str = "TORCHKIT_LOCKED";
/// `--build-arg SOURCE_DATE_EPOCH=…`: the image's `created` time, as for Dockerfiles.
pub const ARG_SOURCE_DATE_EPOCH: &str = "SOURCE_DATE_EPOCH";

/// Every `TORCHKIT_*` build-arg the frontend reads: the override names of [`names`] and the
/// switches above. Any other `TORCHKIT_*` build-arg is refused (a misspelt override would
/// otherwise be ignored without a word).
pub const KNOWN_BUILD_ARGS: &[&str] = &[
    names::CUDA,
    names::FLAVOR,
    names::DRIVER,
    names::GPU,
    names::PROFILE,
    names::ONLINE,
    names::SKIP_VERIFY,
    names::GPUS,
    ARG_CA_SECRET,
    ARG_CA_BUNDLE,
    ARG_LOCKED,
];

/// The prefix of torchkit's build-args, matched in any case.
const TORCHKIT_PREFIX: &str = "TORCHKIT_";

/// The names the Dockerfile frontend uses for the two locals.
pub const DEFAULT_DOCKERFILE_KEY: &str = "dockerfile";
/// See [`DEFAULT_DOCKERFILE_KEY`].
pub const DEFAULT_CONTEXT_KEY: &str = "context";
/// `filename` when the client sends none.
pub const DEFAULT_FILENAME: &str = "Dockerfile";

/// The only platform torchkit builds (the `pytorch/pytorch` images are amd64-only).
pub const PLATFORM: &str = "linux/amd64";

/// A frontend option torchkit refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    /// `--platform` other than linux/amd64.
    #[error("torchkit builds only for linux/amd64, and this build asks for platform `{0}`")]
    Platform(String),
    /// `cache-imports` is not the JSON list BuildKit clients send.
    #[error("invalid frontend option cache-imports: {0}")]
    CacheImports(String),
    /// An override build-arg (`TORCHKIT_CUDA`, …) has a value its type refuses.
    #[error(transparent)]
    Override(#[from] BuildArgError),
    /// A switch build-arg (`TORCHKIT_CA_SECRET`, `TORCHKIT_LOCKED`, `SOURCE_DATE_EPOCH`)
    /// has a bad value.
    #[error("invalid --build-arg {arg}={value}: {why}")]
    BuildArg {
        /// The build-arg name.
        arg: &'static str,
        /// Its value.
        value: String,
        /// What is wrong.
        why: String,
    },
    /// `--target` or `--no-cache-filter` names no torchkit step.
    #[error("{option}: {source}")]
    UnknownStep {
        /// `--target` or `--no-cache-filter`.
        option: &'static str,
        /// Why the name is refused.
        source: ParseError,
    },
    /// A renamed build context (`contextkey`); the compiled graph reads `context`.
    #[error("torchkit reads the build context from the local named `context`, and this build renames it to `{0}`")]
    ContextKey(String),
    /// A named build context that is not an image (`local:`, `git`, `oci-layout://`, …).
    #[error("--build-context {name}={value}: torchkit takes a named context only as an image to build on instead of its base (docker-image://…)")]
    NamedContext {
        /// The context's name.
        name: String,
        /// What it was given.
        value: String,
    },
    /// A `TORCHKIT_*` build-arg torchkit does not read (a misspelling, say).
    #[error("unknown build-arg {0}: torchkit reads no such build-arg")]
    UnknownBuildArg(String),
    /// A subrequest torchkit does not answer (`--call check`, say).
    #[error("the torchkit frontend does not answer the subrequest `{0}`")]
    Subrequest(String),
}

impl Hint for OptionsError {
    fn hint(&self) -> Option<String> {
        match self {
            OptionsError::Platform(_) => Some(
                "drop --platform (or pass --platform linux/amd64); PyTorch CUDA images exist only for amd64".into(),
            ),
            OptionsError::CacheImports(_) => {
                Some("pass caches with --cache-from type=registry,ref=…".into())
            }
            OptionsError::Override(e) => e.hint(),
            OptionsError::BuildArg { arg, .. } => Some(match *arg {
                ARG_CA_SECRET | ARG_CA_BUNDLE | ARG_LOCKED => format!("use {arg}=1 (or 0)"),
                ARG_SOURCE_DATE_EPOCH => "SOURCE_DATE_EPOCH is seconds since 1970 (`date +%s`)".into(),
                _ => "see docs/frontend.md".into(),
            }),
            OptionsError::UnknownStep { source, .. } => source.hint(),
            OptionsError::ContextKey(_) => {
                Some("build without renaming the context (no `contextkey` option)".into())
            }
            OptionsError::NamedContext { .. } => Some(
                "replace the base with `--build-context <base>=docker-image://<image>` (`torchkit plan` prints the base); copy files with [image] copy".into(),
            ),
            OptionsError::UnknownBuildArg(name) => {
                let known = KNOWN_BUILD_ARGS.join(", ");
                Some(match crate::vocab::closest(name, KNOWN_BUILD_ARGS) {
                    Some(k) => format!("did you mean {k}? torchkit reads {known}"),
                    None => format!("torchkit reads {known} (see docs/frontend.md)"),
                })
            }
            OptionsError::Subrequest(_) => Some(format!(
                "torchkit answers {}; or run the build without --print/--call",
                Subrequest::ALL
                    .iter()
                    .map(|s| s.id().trim_start_matches("frontend."))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

/// The parsed options of one frontend run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontendOptions {
    /// The spec's name in the dockerfile local.
    pub filename: String,
    /// The local carrying the spec.
    pub dockerfile_key: String,
    /// The local carrying the build context.
    pub context_key: String,
    /// The session serving the locals (`BUILDKIT_SESSION_ID`).
    pub session_id: Option<String>,
    /// `--target`.
    pub target: Option<Step>,
    /// `--no-cache` / `--no-cache-filter`.
    pub no_cache: NoCache,
    /// `--label`s.
    pub labels: BTreeMap<String, String>,
    /// `--cache-from`.
    pub cache_imports: Vec<CacheEntry>,
    /// `TORCHKIT_CUDA`, `…_FLAVOR`, `…_DRIVER`, `…_GPU`, `…_PROFILE`.
    pub overrides: Overrides,
    /// `TORCHKIT_CA_SECRET` (or `TORCHKIT_CA_BUNDLE`): optional unless set.
    pub ca_secret: CaSecret,
    /// `TORCHKIT_LOCKED`: a missing or stale `torchkit.lock` fails the build.
    pub locked: bool,
    /// `SOURCE_DATE_EPOCH`.
    pub source_date_epoch: Option<i64>,
    /// `requestid`: answer this subrequest instead of building.
    pub subrequest: Option<Subrequest>,
    /// Named build contexts: name → the image given for it (see [`base_source`]).
    pub named_contexts: BTreeMap<String, String>,
}

/// The frontend options in the environment (`BUILDKIT_FRONTEND_OPT_<i>`, in index order;
/// a later duplicate key wins) and the session id.
pub fn from_env_vars(
    vars: impl IntoIterator<Item = (String, String)>,
) -> (BTreeMap<String, String>, Option<String>) {
    let mut indexed: Vec<(u64, String)> = Vec::new();
    let mut session = None;
    for (k, v) in vars {
        if k == ENV_SESSION_ID {
            session = Some(v).filter(|s| !s.is_empty());
        } else if let Some(i) = k.strip_prefix(ENV_FRONTEND_OPT_PREFIX) {
            if let Ok(i) = i.parse::<u64>() {
                indexed.push((i, v));
            }
        }
    }
    indexed.sort_by_key(|(i, _)| *i);
    let opts = indexed
        .into_iter()
        .map(|(_, kv)| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv, String::new()),
        })
        .collect();
    (opts, session)
}

/// The named contexts among `opts` (`context:NAME[::PLATFORM]` → `docker-image://IMAGE`):
/// name → image. A name for another platform than linux/amd64 is not this build's and is
/// skipped; `NAME::linux/amd64` wins over a plain `NAME`, as in the Dockerfile frontend (it
/// sorts after it, so it is inserted last). Any other kind of context is refused.
pub fn named_contexts(
    opts: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, OptionsError> {
    let mut out = BTreeMap::new();
    for (key, value) in opts {
        let Some(name) = key.strip_prefix(OPT_CONTEXT) else {
            continue;
        };
        let name = match name.split_once("::") {
            Some((n, p)) if is_amd64(p) => n,
            Some(_) => continue,
            None => name,
        };
        let image = value
            .trim()
            .strip_prefix(IMAGE_CONTEXT_SCHEME)
            .map(str::trim)
            .filter(|i| !i.is_empty())
            .ok_or_else(|| OptionsError::NamedContext {
                name: name.to_string(),
                value: value.clone(),
            })?;
        out.insert(name.to_string(), image.to_string());
    }
    Ok(out)
}

/// Which of `contexts` replaces the base, given the names the base answers to
/// ([`crate::plan::base_context_names`]; a context name is compared in the same familiar
/// form, so `docker.io/pytorch/pytorch:…` and `pytorch/pytorch:…` are one name). Returns the
/// image to build on, if any, and a warning for each context that names nothing in this
/// build.
pub fn base_source(
    contexts: &BTreeMap<String, String>,
    base_names: &[String],
) -> (Option<String>, Vec<String>) {
    let mut source = None;
    let mut warnings = Vec::new();
    for (name, image) in contexts {
        let familiar = crate::llb::familiar_image_ref(name).unwrap_or_else(|_| name.clone());
        if base_names.contains(&familiar) {
            source = Some(image.clone());
        } else {
            warnings.push(format!(
                "--build-context {name} names no image of this build and is ignored; the base is {}",
                base_names.first().map(String::as_str).unwrap_or("?")
            ));
        }
    }
    (source, warnings)
}

fn step(option: &'static str, s: &str) -> Result<Step, OptionsError> {
    s.parse()
        .map_err(|source| OptionsError::UnknownStep { option, source })
}

fn is_amd64(p: &str) -> bool {
    let p = p.trim().to_ascii_lowercase();
    matches!(
        p.as_str(),
        "linux/amd64" | "linux/x86_64" | "linux/amd64/v1" | "amd64" | "x86_64"
    )
}

#[derive(serde::Deserialize)]
struct CacheImportJson {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "Attrs", default)]
    attrs: BTreeMap<String, String>,
}

/// Parse the options of one build.
pub fn parse(
    opts: &BTreeMap<String, String>,
    session_id: Option<String>,
) -> Result<FrontendOptions, OptionsError> {
    let subrequest = match opts.get(OPT_REQUEST_ID).filter(|v| !v.is_empty()) {
        None => None,
        Some(id) => {
            Some(Subrequest::from_id(id).ok_or_else(|| OptionsError::Subrequest(id.clone()))?)
        }
    };
    if let Some(p) = opts.get(OPT_PLATFORM) {
        for one in p.split(',').filter(|s| !s.trim().is_empty()) {
            if !is_amd64(one) {
                return Err(OptionsError::Platform(one.trim().to_string()));
            }
        }
    }
    let nonempty = |k: &str| opts.get(k).filter(|v| !v.is_empty()).cloned();
    let context_key = nonempty(OPT_CONTEXT_KEY).unwrap_or_else(|| DEFAULT_CONTEXT_KEY.into());
    if context_key != DEFAULT_CONTEXT_KEY {
        return Err(OptionsError::ContextKey(context_key));
    }
    let target = match nonempty(OPT_TARGET) {
        Some(t) => Some(step("--target", &t)?),
        None => None,
    };
    let no_cache = match opts.get(OPT_NO_CACHE) {
        None => NoCache::Off,
        Some(v) if v.trim().is_empty() => NoCache::All,
        Some(v) => NoCache::Steps(
            v.split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|s| step("--no-cache-filter", s))
                .collect::<Result<_, _>>()?,
        ),
    };
    let labels = opts
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(OPT_LABEL)?.to_string(), v.clone())))
        .collect();
    let cache_imports = match nonempty(OPT_CACHE_IMPORTS) {
        None => Vec::new(),
        Some(json) => serde_json::from_str::<Vec<CacheImportJson>>(&json)
            .map_err(|e| OptionsError::CacheImports(e.to_string()))?
            .into_iter()
            .map(|c| CacheEntry {
                kind: c.kind,
                attrs: c.attrs,
            })
            .collect(),
    };

    let arg = |name: &str| {
        opts.get(&format!("{OPT_BUILD_ARG}{name}"))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let bad = |arg: &'static str, value: &str, why: &str| OptionsError::BuildArg {
        arg,
        value: value.to_string(),
        why: why.to_string(),
    };
    if let Some(unknown) = opts
        .keys()
        .filter_map(|k| k.strip_prefix(OPT_BUILD_ARG))
        .find(|n| {
            n.get(..TORCHKIT_PREFIX.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(TORCHKIT_PREFIX))
                && !KNOWN_BUILD_ARGS.contains(n)
        })
    {
        return Err(OptionsError::UnknownBuildArg(unknown.to_string()));
    }
    let overrides = Overrides::from_build_args(opts)?;
    // Unset: optional. `1` (either name) makes it required; `0` turns it off.
    let mut ca_secret = CaSecret::Optional;
    for name in [ARG_CA_SECRET, ARG_CA_BUNDLE] {
        ca_secret = match (arg(name).as_deref(), ca_secret) {
            (None, ca) => ca,
            (Some("0") | Some("false"), CaSecret::Required) => CaSecret::Required,
            (Some("0") | Some("false"), _) => CaSecret::None,
            (Some("1") | Some("true"), _) => CaSecret::Required,
            (Some(v), _) => return Err(bad(name, v, "expected 1 or 0")),
        };
    }
    let locked = match arg(ARG_LOCKED).as_deref() {
        None | Some("0") | Some("false") => false,
        Some("1") | Some("true") => true,
        Some(v) => return Err(bad(ARG_LOCKED, v, "expected 1 or 0")),
    };
    let source_date_epoch = match arg(ARG_SOURCE_DATE_EPOCH) {
        None => None,
        Some(v) => Some(
            v.parse::<i64>()
                .map_err(|_| bad(ARG_SOURCE_DATE_EPOCH, &v, "not an integer"))?,
        ),
    };

    Ok(FrontendOptions {
        filename: nonempty(OPT_FILENAME).unwrap_or_else(|| DEFAULT_FILENAME.into()),
        dockerfile_key: nonempty(OPT_DOCKERFILE_KEY)
            .unwrap_or_else(|| DEFAULT_DOCKERFILE_KEY.into()),
        context_key,
        session_id,
        target,
        no_cache,
        labels,
        cache_imports,
        overrides,
        ca_secret,
        locked,
        source_date_epoch,
        subrequest,
        named_contexts: named_contexts(opts)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::{CudaRequest, Flavor, GpuList, Profile};

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn env_vars_in_index_order_and_session() {
        let vars = vec![
            ("BUILDKIT_FRONTEND_OPT_10".into(), "label:b=2".into()),
            (
                "BUILDKIT_FRONTEND_OPT_2".into(),
                "filename=torchkit.toml".into(),
            ),
            ("BUILDKIT_FRONTEND_OPT_0".into(), "no-cache".into()),
            ("BUILDKIT_FRONTEND_OPT_X".into(), "ignored=1".into()),
            ("BUILDKIT_SESSION_ID".into(), "s1".into()),
            ("PATH".into(), "/bin".into()),
        ];
        let (o, s) = from_env_vars(vars);
        assert_eq!(s.as_deref(), Some("s1"));
        assert_eq!(
            o,
            opts(&[
                ("no-cache", ""),
                ("filename", "torchkit.toml"),
                ("label:b", "2")
            ])
        );
    }

    #[test]
    fn defaults_as_the_dockerfile_frontend() {
        let o = parse(&BTreeMap::new(), None).unwrap();
        assert_eq!(o.filename, "Dockerfile");
        assert_eq!(o.dockerfile_key, "dockerfile");
        assert_eq!(o.context_key, "context");
        assert_eq!(o.no_cache, NoCache::Off);
        assert!(o.target.is_none() && o.labels.is_empty() && o.cache_imports.is_empty());
        // The CA secret is mounted when the build has it: `--secret id=torchkit-ca` alone
        // is enough.
        assert_eq!(o.ca_secret, CaSecret::Optional);
    }

    #[test]
    fn the_ca_secret_is_optional_unless_a_build_arg_says_otherwise() {
        let ca = |pairs: &[(&str, &str)]| parse(&opts(pairs), None).unwrap().ca_secret;
        assert_eq!(ca(&[]), CaSecret::Optional);
        for name in ["TORCHKIT_CA_SECRET", "TORCHKIT_CA_BUNDLE"] {
            let key = format!("build-arg:{name}");
            assert_eq!(ca(&[(&key, "1")]), CaSecret::Required, "{name}=1");
            assert_eq!(ca(&[(&key, "true")]), CaSecret::Required, "{name}=true");
            assert_eq!(ca(&[(&key, "0")]), CaSecret::None, "{name}=0");
            assert_eq!(ca(&[(&key, "false")]), CaSecret::None, "{name}=false");
        }
        // A `1` under either name wins over a `0` under the other.
        assert_eq!(
            ca(&[
                ("build-arg:TORCHKIT_CA_SECRET", "0"),
                ("build-arg:TORCHKIT_CA_BUNDLE", "1")
            ]),
            CaSecret::Required
        );
        assert_eq!(
            ca(&[
                ("build-arg:TORCHKIT_CA_SECRET", "1"),
                ("build-arg:TORCHKIT_CA_BUNDLE", "0")
            ]),
            CaSecret::Required
        );
        assert!(parse(&opts(&[("build-arg:TORCHKIT_CA_SECRET", "yes")]), None).is_err());
    }

    #[test]
    fn unknown_options_are_ignored() {
        let o = parse(
            &opts(&[
                ("image-resolve-mode", "default"),
                ("cmdline", "localhost:5000/torchkit/frontend:dev"),
                ("source", "localhost:5000/torchkit/frontend:dev"),
                ("add-hosts", ""),
                ("build-arg:BUILDKIT_SYNTAX", "x"),
                ("attest:provenance", "mode=min"),
            ]),
            Some("sess".into()),
        )
        .unwrap();
        assert_eq!(o.session_id.as_deref(), Some("sess"));
    }

    #[test]
    fn overrides_labels_target_no_cache() {
        let o = parse(
            &opts(&[
                ("filename", "torchkit.toml"),
                ("build-arg:TORCHKIT_DRIVER", "570.124.06"),
                ("build-arg:TORCHKIT_GPU", "H100, 8.9"),
                ("build-arg:TORCHKIT_CUDA", "cu12.8"),
                ("build-arg:TORCHKIT_PROFILE", "test"),
                ("build-arg:TORCHKIT_CA_SECRET", "1"),
                ("build-arg:TORCHKIT_FLAVOR", "devel"),
                ("build-arg:SOURCE_DATE_EPOCH", "1700000000"),
                ("label:org.example.a", "1"),
                ("target", "user"),
                ("no-cache", "pip,requirements"),
                ("platform", "linux/amd64"),
            ]),
            None,
        )
        .unwrap();
        assert_eq!(o.filename, "torchkit.toml");
        assert_eq!(
            o.overrides,
            Overrides {
                cuda: Some(CudaRequest::Version("12.8".into())),
                flavor: Some(Flavor::Devel),
                driver: Some("570.124.06".into()),
                gpus: Some(GpuList(vec!["H100".into(), "8.9".into()])),
                profile: Some(Profile::Test),
                online: None,
                skip_verify: None,
                gpus_attached: None,
            }
        );
        assert_eq!(o.ca_secret, CaSecret::Required);
        assert_eq!(o.source_date_epoch, Some(1_700_000_000));
        assert_eq!(o.labels.get("org.example.a").map(String::as_str), Some("1"));
        assert_eq!(o.target, Some(Step::User));
        assert_eq!(
            o.no_cache,
            NoCache::Steps(vec![Step::Pip, Step::Requirements])
        );
        let all = parse(&opts(&[("no-cache", "")]), None).unwrap();
        assert_eq!(all.no_cache, NoCache::All);
        let driver_style = parse(&opts(&[("build-arg:TORCHKIT_CA_BUNDLE", "1")]), None).unwrap();
        assert_eq!(driver_style.ca_secret, CaSecret::Required);
    }

    #[test]
    fn refusals_say_what_to_do() {
        let e = parse(&opts(&[("platform", "linux/amd64,linux/arm64")]), None).unwrap_err();
        assert_eq!(e, OptionsError::Platform("linux/arm64".into()));
        assert!(e.to_string().contains("only for linux/amd64"));
        assert!(e.hint().unwrap().contains("--platform"));

        let e = parse(&opts(&[("target", "pipp")]), None).unwrap_err();
        assert!(e.hint().unwrap().contains("did you mean `pip`?"), "{e:?}");
        let e = parse(&opts(&[("no-cache", "pip,nope")]), None).unwrap_err();
        assert!(
            matches!(e, OptionsError::UnknownStep { ref source, .. } if source.input == "nope")
        );
        let e = parse(&opts(&[("build-arg:TORCHKIT_PROFILE", "prod")]), None).unwrap_err();
        assert!(e.to_string().contains("TORCHKIT_PROFILE=prod"));
        let e = parse(&opts(&[("contextkey", "ctx2")]), None).unwrap_err();
        assert!(matches!(e, OptionsError::ContextKey(_)));
        let e = parse(&opts(&[("requestid", "frontend.lint")]), None).unwrap_err();
        assert!(matches!(e, OptionsError::Subrequest(_)));
        assert!(
            e.hint()
                .unwrap()
                .contains("outline, targets, subrequests.describe"),
            "{:?}",
            e.hint()
        );
        let o = parse(&opts(&[("requestid", "frontend.targets")]), None).unwrap();
        assert_eq!(o.subrequest, Some(Subrequest::Targets));
    }

    #[test]
    fn cache_imports_json() {
        let o = parse(
            &opts(&[(
                "cache-imports",
                r#"[{"Type":"registry","Attrs":{"ref":"localhost:5000/app:cache"}}]"#,
            )]),
            None,
        )
        .unwrap();
        assert_eq!(o.cache_imports.len(), 1);
        assert_eq!(o.cache_imports[0].kind, "registry");
        assert_eq!(o.cache_imports[0].attrs["ref"], "localhost:5000/app:cache");
        assert!(matches!(
            parse(&opts(&[("cache-imports", "{")]), None),
            Err(OptionsError::CacheImports(_))
        ));
    }

    #[test]
    fn locked_build_arg() {
        assert!(!parse(&opts(&[]), None).unwrap().locked);
        let o = parse(&opts(&[("build-arg:TORCHKIT_LOCKED", "1")]), None).unwrap();
        assert!(o.locked);
        let e = parse(&opts(&[("build-arg:TORCHKIT_LOCKED", "yes")]), None).unwrap_err();
        assert!(
            e.hint().unwrap().contains("TORCHKIT_LOCKED=1"),
            "{:?}",
            e.hint()
        );
    }

    #[test]
    fn named_contexts_take_images_for_this_platform() {
        let o = parse(
            &opts(&[
                (
                    "context:pytorch/pytorch:2.8.0",
                    "docker-image://a.example/pytorch:1",
                ),
                ("context:ubuntu", "docker-image://a.example/ubuntu:1"),
                (
                    "context:ubuntu::linux/amd64",
                    " docker-image://b.example/ubuntu:2 ",
                ),
                (
                    "context:ubuntu::linux/arm64",
                    "docker-image://c.example/ubuntu:3",
                ),
                ("label:x", "1"),
            ]),
            None,
        )
        .unwrap();
        assert_eq!(
            o.named_contexts,
            opts(&[
                ("pytorch/pytorch:2.8.0", "a.example/pytorch:1"),
                ("ubuntu", "b.example/ubuntu:2"),
            ])
        );
        for bad in [
            "local:src",
            "oci-layout://./layout",
            "docker-image://",
            "input:base",
        ] {
            let e = parse(&opts(&[("context:base", bad)]), None).unwrap_err();
            assert!(
                matches!(&e, OptionsError::NamedContext { name, value } if name == "base" && value == bad),
                "{bad}: {e:?}"
            );
            assert!(e.hint().unwrap().contains("docker-image://"));
        }
    }

    #[test]
    fn the_base_source_is_matched_in_any_spelling_and_the_rest_warned_about() {
        let names = vec!["pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime".to_string()];
        let contexts = opts(&[
            (
                "docker.io/pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime",
                "mirror.example/pytorch:2.8.0",
            ),
            (
                "pytorch/pytorch:2.7.1-cuda12.6-cudnn9-runtime",
                "x.example/y:1",
            ),
        ]);
        let (source, warnings) = base_source(&contexts, &names);
        assert_eq!(source.as_deref(), Some("mirror.example/pytorch:2.8.0"));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].starts_with(
            "--build-context pytorch/pytorch:2.7.1-cuda12.6-cudnn9-runtime names no image"
        ));
        assert_eq!(base_source(&BTreeMap::new(), &names), (None, vec![]));
    }

    #[test]
    fn an_empty_gpu_entry_is_refused_as_the_flag_refuses_it() {
        for v in [",,,", "H100,,8.9", " , "] {
            let e = parse(&opts(&[("build-arg:TORCHKIT_GPU", v)]), None).unwrap_err();
            assert!(
                matches!(e, OptionsError::Override(ref b) if b.name == "TORCHKIT_GPU"),
                "{v}: {e:?}"
            );
            assert!(e.hint().unwrap().contains("no empty entry"), "{v}: {e:?}");
        }
    }

    #[test]
    fn an_unknown_torchkit_build_arg_is_refused_with_a_suggestion() {
        let e = parse(&opts(&[("build-arg:TORCHKIT_CUDAA", "12.8")]), None).unwrap_err();
        assert!(e.to_string().contains("TORCHKIT_CUDAA"), "{e}");
        assert!(
            e.hint().unwrap().contains("did you mean TORCHKIT_CUDA"),
            "{:?}",
            e.hint()
        );
        let e = parse(&opts(&[("build-arg:TORCHKIT_NOPE", "1")]), None).unwrap_err();
        assert!(
            e.hint().unwrap().contains("TORCHKIT_LOCKED"),
            "{:?}",
            e.hint()
        );
        // Every name torchkit reads is known, and other build-args are not torchkit's.
        let mut all: Vec<(String, &str)> = KNOWN_BUILD_ARGS
            .iter()
            .map(|n| (format!("build-arg:{n}"), ""))
            .collect();
        all.push(("build-arg:HTTP_PROXY".into(), "http://proxy"));
        let all: Vec<(&str, &str)> = all.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        parse(&opts(&all), None).unwrap();
        // The prefix in another case is a misspelling too.
        let e = parse(&opts(&[("build-arg:torchkit_cuda", "12.8")]), None).unwrap_err();
        assert!(
            e.hint().unwrap().contains("did you mean TORCHKIT_CUDA"),
            "{:?}",
            e.hint()
        );
        // Every override the driver hands the frontend image is one it knows: an override
        // added to the vocabulary but not to the list would be refused here.
        let every = Overrides {
            cuda: Some(CudaRequest::Version("12.8".into())),
            flavor: Some(Flavor::Devel),
            driver: Some("570.124.06".into()),
            gpus: Some(GpuList(vec!["H100".into()])),
            profile: Some(Profile::Test),
            online: Some(true),
            skip_verify: Some(true),
            gpus_attached: Some(crate::vocab::Gpus::all()),
        };
        for n in every.to_build_args().keys() {
            assert!(KNOWN_BUILD_ARGS.contains(&n.as_str()), "{n}");
        }
    }
}
