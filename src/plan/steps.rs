//! The steps of an image build ([`plan`]), and the pieces the lock's resolution run shares
//! with it: the base, the helper nodes, the commands and env of the download steps.

use std::collections::BTreeMap;

use crate::resolve::Resolution;
use crate::spec::Spec;
use crate::vocab::{Profile, Step as StepName};

use super::policy::Policy;
use super::verify::{self, VerifyStage};
use super::{
    BasePlan, CaSecret, CacheRule, CacheSharing, CompileError, CompileOptions, Exec, ImagePlan,
    LockedSet, Mount, Node, NodeFile, NodeId, NodeSource, Output, Plan, ResolveRun, Run, Step,
    APT_CACHE_DIR, CA_IF_PRESENT, CA_SECRET_ID, CA_SECRET_PATH, CONSTRAINTS_MOUNT, DEFAULT_PATH,
    LOCK_MOUNT, PIP_CACHE_DIR, REQUIREMENTS_MOUNT, RESOLVED_DIR, RESOLVED_FILE, RESOLVED_MOUNT,
    RESOLVE_SCRIPT, RESOLVE_SCRIPT_MOUNT,
};

/// The platform torchkit builds for.
pub(super) const PLATFORM: &str = "linux/amd64";

/// Build the plan: the steps with their commands and mounts, then one pass of cache rules
/// for the profile, then the helper nodes the steps use. A `release` plan of an unpinned
/// base is planned like any other; only building it is refused ([`Plan::check_buildable`]).
pub fn plan(spec: &Spec, res: &Resolution, opts: &CompileOptions) -> Result<Plan, CompileError> {
    let profile = spec.profile_with(opts.profile);
    let base = base_plan(spec, res, opts)?;
    let policy = Policy::for_build(spec, opts, profile);
    let b = Builder {
        spec,
        opts,
        cached: policy.caches_downloads(),
        cuda_ns: res
            .cuda
            .as_deref()
            .map_or("cpu".to_string(), |c| format!("cu{}", c.replace('.', ""))),
    };
    let user = &spec.image.user;

    let mut steps: Vec<Step> = vec![base_step(spec, &base)];
    let locked = opts.lock.as_ref();
    if !spec.system.apt.is_empty() {
        steps.push(b.apt(locked));
    }
    let has_python = !spec.python.packages.is_empty() || spec.python.requirements.is_some();
    match locked {
        Some(l) if has_python => steps.push(b.locked_pip(l)),
        Some(_) => {}
        None => {
            if !spec.python.packages.is_empty() {
                let list = spec.python.packages.join(" ");
                steps.push(b.resolved(
                    StepName::Pip,
                    format!("pip install {list}"),
                    list,
                    spec.python.packages.clone(),
                    "python.packages",
                ));
            }
            if let Some(req) = &spec.python.requirements {
                steps.push(b.resolved(
                    StepName::Requirements,
                    format!("pip install -r {req}"),
                    format!("-r {req}"),
                    vec!["-r".into(), REQUIREMENTS_MOUNT.into()],
                    "python.requirements",
                ));
            }
        }
    }

    let user_summary = if user.is_root() {
        format!("workdir {}", spec.image.workdir)
    } else {
        format!(
            "user {} (uid {}), workdir {}",
            user.name, user.uid, spec.image.workdir
        )
    };
    steps.push(step(
        spec,
        StepName::User,
        user_summary,
        b.exec(
            user_command(&user.name, user.uid, &spec.image.workdir),
            vec![],
            vec![],
        ),
        None,
        if spec.locations.contains_key("image.user") {
            "image.user"
        } else {
            "image"
        },
    ));

    if !spec.image.copy.is_empty() {
        let copies: Vec<(String, String)> = spec
            .image
            .copy
            .iter()
            .map(|c| (c.src.clone(), c.dest.clone()))
            .collect();
        let summary = copies
            .iter()
            .map(|(s, d)| format!("{s} → {d}"))
            .collect::<Vec<_>>()
            .join(", ");
        steps.push(step(
            spec,
            StepName::Copy,
            format!("copy {summary}"),
            Run::Copy {
                from: NodeId::Context,
                copies,
                uid: user.uid,
                gid: user.uid,
            },
            None,
            "image.copy",
        ));
    }

    if let Some(t) = opts.target.filter(|t| *t != StepName::Verify) {
        match steps.iter().position(|s| s.name == t) {
            Some(i) => steps.truncate(i + 1),
            None => return Err(CompileError::StepNotInPlan(t)),
        }
    }
    number(&mut steps, "torchkit");

    // The verify stage shares the cache pass: `[cache] bust`, `--no-cache` and the release
    // profile apply to it as to any step.
    let skipped = verify::skipped(spec, opts);
    let (mut verify_plan, verify_nodes) = match &skipped {
        None => {
            let (p, n) = verify::steps(spec, res, opts, b.cached, &b.cuda_ns);
            (Some(p), n)
        }
        Some(_) => (None, vec![]),
    };
    if opts.target == Some(StepName::Verify) && verify_plan.is_none() {
        return Err(CompileError::StepNotInPlan(StepName::Verify));
    }
    let image_len = steps.len();
    if let Some(v) = &mut verify_plan {
        steps.append(&mut v.steps);
    }
    let applied = policy.apply(&mut steps)?;
    let mut catalogue = vec![
        constraints_node(res),
        resolver_node(),
        context_node(spec, opts),
    ];
    if let Some(l) = locked {
        catalogue.push(lock_node(l));
    }
    catalogue.extend(verify_nodes);
    catalogue.extend(applied.nodes);
    let nodes = used_nodes(&steps, catalogue)?;
    let verify = match verify_plan {
        Some(mut v) => {
            v.steps = steps.split_off(image_len);
            VerifyStage::Planned(Box::new(v))
        }
        None => VerifyStage::Skipped {
            reason: skipped.unwrap_or_default(),
        },
    };

    let image = image_plan(spec, res, &base, profile, opts);
    Ok(Plan {
        spec: spec.filename.clone(),
        spec_text: spec.text.clone(),
        profile,
        platform: PLATFORM.into(),
        base,
        resolution: res.clone(),
        epoch: spec.cache.epoch.clone(),
        busted: applied.busted,
        ca_secret: opts.ca_secret,
        nodes,
        steps,
        output: if opts.target == Some(StepName::Verify) {
            Output::Verify
        } else {
            Output::Image(Box::new(image))
        },
        verify,
    })
}

/// What every exec step of a build shares.
struct Builder<'a> {
    spec: &'a Spec,
    opts: &'a CompileOptions,
    /// The profile keeps download caches (all but `release`).
    cached: bool,
    /// The CUDA variant that namespaces the download caches (`cu128`, `cpu`).
    cuda_ns: String,
}

impl Builder<'_> {
    /// An exec as root from `/`, with `SOURCE_DATE_EPOCH` after the step's env.
    fn exec(&self, args: Vec<String>, env: Vec<(String, String)>, mounts: Vec<Mount>) -> Run {
        exec_run(args, env, mounts, self.opts.source_date_epoch)
    }

    /// The download cache of `tool` at `dest`, when the profile keeps download caches, and
    /// the CA secret, when asked for.
    fn download_mounts(&self, tool: &str, dest: &str) -> Vec<Mount> {
        let mut m = vec![];
        if self.cached {
            m.push(Mount::Cache {
                dest: dest.into(),
                id: format!("torchkit/{tool}/{}", self.cuda_ns),
                sharing: CacheSharing::Locked,
                owner: None,
            });
        }
        m.extend(ca_mount(self.opts.ca_secret));
        m.extend(secret_mounts(match tool {
            "apt" => &self.spec.system.secrets,
            _ => &self.spec.python.secrets,
        }));
        m
    }

    fn apt(&self, locked: Option<&LockedSet>) -> Step {
        let spec = self.spec;
        let (apt, title): (&[String], String) = match locked {
            Some(l) if !l.apt.is_empty() => (
                &l.apt,
                format!(
                    "apt-get install {} (locked: {} packages)",
                    spec.system.apt.join(" "),
                    l.apt.len()
                ),
            ),
            _ => (
                &spec.system.apt,
                format!("apt-get install {}", spec.system.apt.join(" ")),
            ),
        };
        step(
            spec,
            StepName::Apt,
            title,
            self.exec(
                apt_command(apt, self.cached, self.opts.ca_secret),
                vec![("DEBIAN_FRONTEND".into(), "noninteractive".into())],
                self.download_mounts("apt", APT_CACHE_DIR),
            ),
            None,
            "system.apt",
        )
    }

    /// The one pip step of a locked build: the lock's files, exactly, no resolver.
    fn locked_pip(&self, l: &LockedSet) -> Step {
        let spec = self.spec;
        let mut args = pip_install(self.cached);
        args.extend(["--require-hashes", "--no-deps", "-r", LOCK_MOUNT].map(String::from));
        args.extend(index_args(spec));
        let mut mounts = self.download_mounts("pip", PIP_CACHE_DIR);
        mounts.push(constraints_mount());
        mounts.push(Mount::node(LOCK_MOUNT, NodeId::Lock, "/lock.txt"));
        step(
            spec,
            StepName::Pip,
            format!(
                "pip install --require-hashes -r torchkit.lock ({} packages)",
                l.python_count
            ),
            self.exec(
                with_ca(self.opts.ca_secret, args),
                pip_env(self.opts.ca_secret),
                mounts,
            ),
            None,
            if spec.python.packages.is_empty() {
                "python.requirements"
            } else {
                "python.packages"
            },
        )
    }

    /// An unlocked dependency step: resolve `reqs`, then install exactly the resolved set
    /// (see [`ResolveRun`]).
    fn resolved(
        &self,
        name: StepName,
        title: String,
        what: String,
        reqs: Vec<String>,
        origin: &'static str,
    ) -> Step {
        let spec = self.spec;
        let mut install = pip_install(self.cached);
        install.extend(["--no-deps", "-r", RESOLVED_MOUNT].map(String::from));
        install.extend(index_args(spec));
        let mut mounts = self.download_mounts("pip", PIP_CACHE_DIR);
        mounts.push(Mount::Output {
            dest: RESOLVED_MOUNT.into(),
            step: name,
            exec: Exec::Resolve,
            mount: RESOLVED_DIR.into(),
            path: format!("/{RESOLVED_FILE}"),
            readonly: true,
        });

        let mut args: Vec<String> = vec![
            "python".into(),
            RESOLVE_SCRIPT_MOUNT.into(),
            format!("{RESOLVED_DIR}/{RESOLVED_FILE}"),
        ];
        if !self.cached {
            args.push("--no-cache-dir".into());
        }
        args.extend(["-c".into(), CONSTRAINTS_MOUNT.into()]);
        args.extend(index_args(spec));
        args.extend(reqs);
        let mut resolve_mounts = vec![
            Mount::node(RESOLVE_SCRIPT_MOUNT, NodeId::Resolver, "/resolve.py"),
            Mount::Scratch {
                dest: RESOLVED_DIR.into(),
            },
        ];
        resolve_mounts.extend(self.download_mounts("pip", PIP_CACHE_DIR));
        // The constraints steer a resolution; the install of a resolved set needs none.
        resolve_mounts.push(constraints_mount());
        if let (Some(path), StepName::Requirements) = (&spec.python.requirements, name) {
            resolve_mounts.push(Mount::node(
                REQUIREMENTS_MOUNT,
                NodeId::Context,
                &format!("/{path}"),
            ));
        }
        step(
            spec,
            name,
            title,
            self.exec(
                with_ca(self.opts.ca_secret, install),
                pip_env(self.opts.ca_secret),
                mounts,
            ),
            Some(ResolveRun {
                title: format!("resolve {what}"),
                args: with_ca(self.opts.ca_secret, args),
                mounts: resolve_mounts,
                ignore_cache: false,
            }),
            origin,
        )
    }
}

/// A step before the cache pass: rule `Reuse`, title without its number.
pub(super) fn step(
    spec: &Spec,
    name: StepName,
    title: String,
    run: Run,
    resolve: Option<ResolveRun>,
    origin: &'static str,
) -> Step {
    Step {
        name,
        title,
        run,
        cache: CacheRule::Reuse,
        ignore_cache: false,
        resolve,
        origin,
        span: spec.span_of(origin),
    }
}

/// The first step: pull the base.
pub(super) fn base_step(spec: &Spec, base: &BasePlan) -> Step {
    step(
        spec,
        StepName::Base,
        base.pinned_reference(),
        Run::Image,
        None,
        if spec.base.image.is_some() {
            "base.image"
        } else {
            "torch.version"
        },
    )
}

/// An exec as root from `/`, with `SOURCE_DATE_EPOCH` after `env`.
pub(super) fn exec_run(
    args: Vec<String>,
    mut env: Vec<(String, String)>,
    mounts: Vec<Mount>,
    source_date_epoch: Option<i64>,
) -> Run {
    if let Some(t) = source_date_epoch {
        env.push(("SOURCE_DATE_EPOCH".into(), t.to_string()));
    }
    Run::Exec {
        args,
        env,
        user: "root".into(),
        cwd: "/".into(),
        mounts,
        offline: false,
        devices: vec![],
    }
}

/// The spec's secrets of a step (`[python] secrets`, `[system] secrets`): required.
pub(super) fn secret_mounts(secrets: &[crate::spec::SecretMount]) -> Vec<Mount> {
    secrets
        .iter()
        .map(|s| Mount::Secret {
            dest: s.dest.clone(),
            id: s.id.clone(),
            optional: false,
        })
        .collect()
}

/// The CA bundle secret, unless the plan has none; optional as [`CaSecret::Optional`].
pub(super) fn ca_mount(ca: CaSecret) -> Option<Mount> {
    ca.is_mounted().then(|| Mount::Secret {
        dest: CA_SECRET_PATH.into(),
        id: CA_SECRET_ID.into(),
        optional: ca == CaSecret::Optional,
    })
}

/// An argv that downloads with pip, as it runs under `ca`: unchanged, or, with an optional
/// secret, behind [`CA_IF_PRESENT`] (the argv stays an argv: no shell parses it).
pub(super) fn with_ca(ca: CaSecret, args: Vec<String>) -> Vec<String> {
    match ca {
        CaSecret::None | CaSecret::Required => args,
        CaSecret::Optional => ["/bin/sh", "-c", CA_IF_PRESENT, "sh"]
            .into_iter()
            .map(String::from)
            .chain(args)
            .collect(),
    }
}

/// For an apt shell script under `ca`: what runs first and the options every `apt-get`
/// takes. A required secret is always apt's CA file; an optional one only when it is there
/// and not empty (`$ca` then holds the option, else nothing).
pub(super) fn apt_ca(ca: CaSecret) -> (String, String) {
    match ca {
        CaSecret::None => (String::new(), String::new()),
        CaSecret::Required => (
            String::new(),
            format!(" -o Acquire::https::CAInfo={CA_SECRET_PATH}"),
        ),
        CaSecret::Optional => (
            format!("ca=; if [ -s {CA_SECRET_PATH} ]; then ca='-o Acquire::https::CAInfo={CA_SECRET_PATH}'; fi; "),
            " $ca".to_string(),
        ),
    }
}

/// The torch constraints, read-only.
pub(super) fn constraints_mount() -> Mount {
    Mount::node(CONSTRAINTS_MOUNT, NodeId::Constraints, "/constraints.txt")
}

/// Titles as progress shows them: `[torchkit 2/5] apt: apt-get install git`; a resolve
/// half shares its step's number.
pub(super) fn number(steps: &mut [Step], prefix: &str) {
    let n = steps.len();
    for (i, s) in steps.iter_mut().enumerate() {
        let head = format!("[{prefix} {}/{n}] {}: ", i + 1, s.name);
        s.title = format!("{head}{}", s.title);
        if let Some(r) = &mut s.resolve {
            r.title = format!("{head}{}", r.title);
        }
    }
}

/// A node of files on scratch, each written 0644.
pub(super) fn files_node(id: NodeId, name: String, files: Vec<(&str, String)>) -> Node {
    Node {
        id,
        name,
        source: NodeSource::Files {
            files: files
                .into_iter()
                .map(|(path, content)| NodeFile {
                    path: path.into(),
                    mode: 0o644,
                    content,
                    owner: None,
                })
                .collect(),
        },
        origin: None,
        span: None,
    }
}

/// `torch==…`, `torchvision==…`, `torchaudio==…`: what every resolution is held to.
pub(super) fn constraints_node(res: &Resolution) -> Node {
    files_node(
        NodeId::Constraints,
        format!(
            "[torchkit] constraints: torch=={} torchvision=={} torchaudio=={}",
            res.torch, res.torchvision, res.torchaudio
        ),
        vec![(
            "/constraints.txt",
            format!(
                "torch=={}\ntorchvision=={}\ntorchaudio=={}\n",
                res.torch, res.torchvision, res.torchaudio
            ),
        )],
    )
}

fn resolver_node() -> Node {
    files_node(
        NodeId::Resolver,
        "[torchkit] resolver script".into(),
        vec![("/resolve.py", RESOLVE_SCRIPT.into())],
    )
}

fn lock_node(l: &LockedSet) -> Node {
    files_node(
        NodeId::Lock,
        format!(
            "[torchkit] lock: {} python packages on {}",
            l.python_count, l.digest
        ),
        vec![("/lock.txt", l.python.clone())],
    )
}

fn context_node(spec: &Spec, opts: &CompileOptions) -> Node {
    Node {
        id: NodeId::Context,
        name: "[torchkit] context".into(),
        source: NodeSource::Local {
            name: "context".into(),
            shared_key_hint: "context".into(),
            session_id: opts.session_id.clone(),
            exclude_patterns: opts.context_excludes.clone(),
            include_patterns: context_paths(spec, opts).unwrap_or_default(),
        },
        origin: None,
        span: None,
    }
}

/// The paths of the build context the build reads (the requirements file, the `[image] copy`
/// sources), as the context's include patterns: nothing else crosses the wire. None: the
/// whole context, which `[verify] run` mounts for the tests (and a copy of `.`).
pub fn context_paths(spec: &Spec, opts: &CompileOptions) -> Option<Vec<String>> {
    if !spec.verify.run.is_empty() && verify::skipped(spec, opts).is_none() {
        return None;
    }
    let mut paths: Vec<String> = vec![];
    let used = spec
        .python
        .requirements
        .iter()
        .chain(spec.image.copy.iter().map(|c| &c.src));
    for p in used {
        let p = p.trim_start_matches("./").trim_end_matches('/');
        if p.is_empty() || p == "." {
            return None;
        }
        if !paths.iter().any(|q| q == p) {
            paths.push(p.to_string());
        }
    }
    Some(paths)
}

/// The nodes of `catalogue` that the steps mount or copy from, in the order of first use;
/// the rest are left out, so that the plan lists exactly the graph's nodes.
pub(super) fn used_nodes(steps: &[Step], catalogue: Vec<Node>) -> Result<Vec<Node>, CompileError> {
    let mut ids: Vec<NodeId> = vec![];
    for s in steps {
        let from = match &s.run {
            Run::Copy { from, .. } => Some(*from),
            _ => None,
        };
        let mounted = s.mounts().filter_map(|m| match m {
            Mount::Node { node, .. } => Some(*node),
            _ => None,
        });
        for id in mounted.chain(from) {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    let mut by_id: BTreeMap<NodeId, Node> = catalogue.into_iter().map(|n| (n.id, n)).collect();
    ids.into_iter()
        .map(|id| {
            by_id.remove(&id).ok_or_else(|| {
                CompileError::BadPlan(format!("a step uses the node `{id}`, which was not made"))
            })
        })
        .collect()
}

/// The env the base config defines (`config.Env`, in its order), or the `pytorch/pytorch`
/// images' PATH when the config is not known.
pub(super) fn config_env(config: Option<&serde_json::Value>) -> Vec<(String, String)> {
    let from_config: Option<Vec<(String, String)>> = config
        .and_then(|c| c.pointer("/config/Env"))
        .and_then(|e| e.as_array())
        .map(|list| {
            list.iter()
                .filter_map(|v| v.as_str())
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        });
    from_config.unwrap_or_else(|| vec![("PATH".into(), DEFAULT_PATH.into())])
}

/// The env the steps start with: the base config's, sorted by name (one value per name),
/// then `[image] env`.
fn step_env(spec: &Spec, config: Option<&serde_json::Value>) -> Vec<(String, String)> {
    let sorted: BTreeMap<String, String> = config_env(config).into_iter().collect();
    let mut env: Vec<(String, String)> = sorted.into_iter().collect();
    for (k, v) in &spec.image.env {
        env.retain(|(ek, _)| ek != k);
        env.push((k.clone(), v.clone()));
    }
    env
}

/// The base image a spec builds on: the resolved (or overridden) reference with the mirror
/// applied, pinned by the spec's digest, else the lock's, else `opts.base.digest`; or, with
/// `opts.base_source`, that image instead.
pub fn base_plan(
    spec: &Spec,
    res: &Resolution,
    opts: &CompileOptions,
) -> Result<BasePlan, CompileError> {
    if let Some(source) = &opts.base_source {
        let (reference, digest) = split_digest(crate::llb::normalize_image_ref(source)?);
        return Ok(BasePlan {
            reference,
            digest: digest.or_else(|| opts.base.digest.clone()),
            env: step_env(spec, opts.base.config.as_ref()),
        });
    }
    let (mut reference, digest) =
        split_digest(crate::llb::normalize_image_ref(&base_name(spec, res))?);
    if let Some(m) = &spec.base.mirror {
        if let Some(rest) = reference.strip_prefix("docker.io/") {
            reference = format!("{m}/{rest}");
        }
    }
    // A lock made on this base pins it, unless the spec pins it itself.
    let locked = opts
        .lock
        .as_ref()
        .filter(|l| l.reference == reference && !l.digest.is_empty())
        .map(|l| l.digest.clone());
    let digest = spec
        .base
        .digest
        .clone()
        .or(digest)
        .or(locked)
        .or_else(|| opts.base.digest.clone());
    Ok(BasePlan {
        reference,
        digest,
        env: step_env(spec, opts.base.config.as_ref()),
    })
}

/// The base as the spec names it (`[base] image`) or the resolver picked it.
fn base_name(spec: &Spec, res: &Resolution) -> String {
    match &spec.base.image {
        Some(i) => i.clone(),
        None => res.image.full(),
    }
}

/// A normalized reference split into name and `@sha256:` digest.
fn split_digest(reference: String) -> (String, Option<String>) {
    match reference.split_once('@') {
        Some((n, d)) => (n.to_string(), Some(d.to_string())),
        None => (reference, None),
    }
}

/// The names a named build context can replace the base by, in the Dockerfile frontend's
/// familiar form (`pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime`, what `FROM` would say):
/// the image the spec or the resolver chose and, when `[base] mirror` rewrites it, the
/// mirrored reference.
pub fn base_context_names(spec: &Spec, res: &Resolution) -> Result<Vec<String>, CompileError> {
    let (chosen, _) = split_digest(crate::llb::normalize_image_ref(&base_name(spec, res))?);
    let mirrored = base_plan(spec, res, &CompileOptions::default())?.reference;
    let mut names = vec![crate::llb::familiar_image_ref(&chosen)?];
    let m = crate::llb::familiar_image_ref(&mirrored)?;
    if !names.contains(&m) {
        names.push(m);
    }
    Ok(names)
}

pub(super) fn apt_command(pkgs: &[String], keep: bool, ca: CaSecret) -> Vec<String> {
    // No binary package caches (/var/cache/apt/pkgcache.bin and srcpkgcache.bin, 78 MB on
    // Debian bookworm) in the layer, as Docker's debian images' docker-clean does; bases
    // without that file would otherwise keep them.
    let mut opts = String::from(" -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=");
    if keep {
        opts.push_str(&format!(
            " -o Dir::Cache::Archives={APT_CACHE_DIR}/archives -o APT::Keep-Downloaded-Packages=true"
        ));
    } else {
        // No cache mount (release): the .debs land in /var/cache/apt/archives, which the
        // layer would keep on the same bases (tests/e2e_layers.rs found them); apt-get
        // deletes what it downloaded once the install succeeds.
        opts.push_str(" -o APT::Keep-Downloaded-Packages=false");
    }
    let (ca_setup, ca_opt) = apt_ca(ca);
    opts.push_str(&ca_opt);
    let mkdir = if keep {
        format!("mkdir -p {APT_CACHE_DIR}/archives/partial; ")
    } else {
        String::new()
    };
    // Package names were validated by the spec (letters, digits, + - . = ~ :), so they
    // are safe to join into the shell line.
    let script = format!(
        "set -eu; {ca_setup}{mkdir}apt-get{opts} update; apt-get{opts} install -y --no-install-recommends {}; rm -rf /var/lib/apt/lists/*",
        pkgs.join(" ")
    );
    vec!["/bin/sh".into(), "-c".into(), script]
}

/// `python -m pip install`, with `--no-cache-dir` when no cache is mounted.
pub(super) fn pip_install(cache: bool) -> Vec<String> {
    let mut a: Vec<String> = ["python", "-m", "pip", "install"]
        .map(String::from)
        .to_vec();
    if !cache {
        a.push("--no-cache-dir".into());
    }
    a
}

pub(super) fn index_args(spec: &Spec) -> Vec<String> {
    let mut a = vec![];
    if let Some(u) = &spec.python.index_url {
        a.extend(["--index-url".into(), u.clone()]);
    }
    for u in &spec.python.extra_index_urls {
        a.extend(["--extra-index-url".into(), u.clone()]);
    }
    a
}

/// pip's env; with a required CA secret, pip and Python's `ssl` trust only the bundle (an
/// optional one is set by [`with_ca`] when present).
pub(super) fn pip_env(ca: CaSecret) -> Vec<(String, String)> {
    let mut env = vec![
        ("PIP_DISABLE_PIP_VERSION_CHECK".into(), "1".into()),
        ("PIP_NO_INPUT".into(), "1".into()),
        ("PIP_ROOT_USER_ACTION".into(), "ignore".into()),
    ];
    if ca == CaSecret::Required {
        env.push(("PIP_CERT".into(), CA_SECRET_PATH.into()));
        env.push(("SSL_CERT_FILE".into(), CA_SECRET_PATH.into()));
    }
    env
}

fn user_command(name: &str, uid: u32, workdir: &str) -> Vec<String> {
    let script = if uid == 0 {
        format!("set -eu; mkdir -p '{workdir}'")
    } else {
        // Debian/Ubuntu have groupadd/useradd; busybox-based images have addgroup/adduser.
        // A uid or name already taken by someone else is an error, not a silent reuse.
        format!(
            "set -eu; \
             if getent passwd {name} >/dev/null; then \
               [ \"$(id -u {name})\" = {uid} ] || {{ echo \"torchkit: user {name} exists with another uid\" >&2; exit 1; }}; \
             elif getent passwd {uid} >/dev/null; then \
               echo \"torchkit: uid {uid} is taken by $(getent passwd {uid} | cut -d: -f1); set [image] uid\" >&2; exit 1; \
             else \
               getent group {uid} >/dev/null || groupadd -g {uid} {name} 2>/dev/null || addgroup -g {uid} {name}; \
               useradd -m -u {uid} -g {uid} -s /bin/sh {name} 2>/dev/null || adduser -D -u {uid} -G {name} -s /bin/sh {name}; \
             fi; \
             mkdir -p '{workdir}'; chown {uid}:{uid} '{workdir}'"
        )
    };
    vec!["/bin/sh".into(), "-c".into(), script]
}

fn image_plan(
    spec: &Spec,
    res: &Resolution,
    base: &BasePlan,
    profile: Profile,
    opts: &CompileOptions,
) -> ImagePlan {
    let mut env = BTreeMap::new();
    env.insert("NVIDIA_VISIBLE_DEVICES".to_string(), "all".to_string());
    env.insert(
        "NVIDIA_DRIVER_CAPABILITIES".to_string(),
        "compute,utility".to_string(),
    );
    for (k, v) in &spec.image.env {
        env.insert(k.clone(), v.clone());
    }
    let mut labels = BTreeMap::new();
    let mut l = |k: &str, v: String| {
        labels.insert(k.to_string(), v);
    };
    l("org.opencontainers.image.base.name", base.reference.clone());
    if let Some(d) = &base.digest {
        l("org.opencontainers.image.base.digest", d.clone());
        l("torchkit.base.digest", d.clone());
    }
    l(
        "org.opencontainers.image.description",
        format!(
            "PyTorch {} ({}) built by torchkit",
            res.torch,
            res.cuda
                .as_deref()
                .map_or("CPU".to_string(), |c| format!("CUDA {c}"))
        ),
    );
    l("torchkit.torch", res.torch.clone());
    l("torchkit.torchvision", res.torchvision.clone());
    l("torchkit.torchaudio", res.torchaudio.clone());
    l(
        "torchkit.cuda",
        res.cuda.clone().unwrap_or_else(|| "cpu".into()),
    );
    if let Some(c) = &res.cudnn {
        l("torchkit.cudnn", c.clone());
    }
    if let Some(d) = &res.min_driver {
        l("torchkit.min-driver", d.clone());
    }
    l("torchkit.python", res.python.clone());
    l("torchkit.profile", profile.to_string());
    l("torchkit.base", base.reference.clone());
    for (k, v) in spec.image.labels.iter().chain(opts.labels.iter()) {
        labels.insert(k.clone(), v.clone());
    }
    ImagePlan {
        user: spec.image.user.name.clone(),
        workdir: spec.image.workdir.clone(),
        env,
        labels,
        entrypoint: spec.image.entrypoint.clone(),
        cmd: spec.image.cmd.clone(),
        created: opts.source_date_epoch.map(super::image_config::rfc3339),
        base_config: opts.base.config.clone(),
    }
}
