//! `torchkit lock`'s resolution run as a [`Plan`]: inside the pinned base, ask apt and pip
//! what they would install, without installing it (docs/lock.md).
//!
//! The run is the build's dependency steps in their dry-run form, planned as a `release`
//! build (a pinned base, nothing from the cache, no download caches) and lowered by the same
//! [`super::lower`]:
//! - `apt`: `apt-get install -s --no-install-recommends` of the apt list, whose
//!   `Inst name (version …)` lines name every package and dependency with its version, into
//!   [`APT_SIMULATION`];
//! - `pip`: `pip install --dry-run --ignore-installed --report` (pip ≥ 22.2) of the spec's
//!   packages and requirements under the build's torch constraints and indexes, into
//!   [`PIP_REPORT`].
//!
//! Both write to a directory mounted at [`RESOLUTION_OUT_DIR`] (the second continues the
//! first's), which is the plan's output, exported with the `local` exporter. The packages
//! and the requirements go in as helper nodes (files, bind-mounted read-only), and pip's
//! arguments are an argv, so no requirement string or index URL is parsed by a shell.

use crate::resolve::Resolution;
use crate::spec::Spec;
use crate::vocab::{Profile, Step as StepName};

use super::policy::Policy;
use super::steps::{
    apt_ca, base_plan, base_step, ca_mount, constraints_mount, constraints_node, exec_run,
    files_node, index_args, number, pip_env, pip_install, secret_mounts, step, used_nodes, with_ca,
    PLATFORM,
};
use super::{
    BaseMeta, CaSecret, CompileError, CompileOptions, Exec, Mount, NodeId, Output, Plan,
    CONSTRAINTS_MOUNT, REQUIREMENTS_MOUNT,
};

/// Where the run's execs write their answers (the plan's output directory).
pub const RESOLUTION_OUT_DIR: &str = "/out";
/// The pip report, relative to the output directory.
pub const PIP_REPORT: &str = "pip-report.json";
/// apt's simulated install, relative to the output directory.
pub const APT_SIMULATION: &str = "apt-simulate.txt";
/// Where the spec's `[python] packages` are mounted as a requirements file.
pub const PACKAGES_MOUNT: &str = "/run/torchkit/packages.txt";

/// What the resolution run needs.
#[derive(Debug, Clone)]
pub struct ResolutionInputs<'a> {
    /// The spec.
    pub spec: &'a Spec,
    /// Its resolution.
    pub resolution: &'a Resolution,
    /// The base as looked up (ResolveImageConfig): its digest pins the run unless the spec
    /// pins it; its config gives the env.
    pub base: BaseMeta,
    /// The requirements file's content (`[python] requirements`, read from the context).
    pub requirements: Option<&'a [u8]>,
    /// How the downloads get the `torchkit-ca` secret.
    pub ca_secret: CaSecret,
}

/// The plan of the resolution run, or `None` when the spec has neither apt nor Python
/// packages: then there is nothing to ask, and a lock pins the base alone.
pub fn resolution_run(i: &ResolutionInputs<'_>) -> Result<Option<Plan>, CompileError> {
    let spec = i.spec;
    let has_apt = !spec.system.apt.is_empty();
    let has_python = !spec.python.packages.is_empty() || i.requirements.is_some();
    if !has_apt && !has_python {
        return Ok(None);
    }
    let opts = CompileOptions {
        base: i.base.clone(),
        ca_secret: i.ca_secret,
        ..CompileOptions::default()
    };
    let base = base_plan(spec, i.resolution, &opts)?;
    let policy = Policy::resolution_run();
    let out = RESOLUTION_OUT_DIR;

    let mut steps = vec![base_step(spec, &base)];
    // The first exec writes a fresh directory; the next continues it.
    let mut out_mount = Mount::Scratch { dest: out.into() };
    if has_apt {
        let (ca_setup, ca) = apt_ca(i.ca_secret);
        // Names were validated by the spec (letters, digits, + - . = ~ :).
        let script = format!(
            "set -eu; {ca_setup}apt-get{ca} update -qq >/dev/null; apt-get{ca} install -s --no-install-recommends {} > {out}/{APT_SIMULATION}",
            spec.system.apt.join(" ")
        );
        let mut mounts = vec![out_mount];
        mounts.extend(ca_mount(i.ca_secret));
        mounts.extend(secret_mounts(&spec.system.secrets));
        steps.push(step(
            spec,
            StepName::Apt,
            format!("apt-get install -s {}", spec.system.apt.join(" ")),
            exec_run(
                vec!["/bin/sh".into(), "-c".into(), script],
                vec![("DEBIAN_FRONTEND".into(), "noninteractive".into())],
                mounts,
                None,
            ),
            None,
            "system.apt",
        ));
        out_mount = Mount::Output {
            dest: out.into(),
            step: StepName::Apt,
            exec: Exec::Run,
            mount: out.into(),
            path: "/".into(),
            readonly: false,
        };
    }
    let mut nodes = vec![constraints_node(i.resolution)];
    if has_python {
        let mut args = pip_install(policy.caches_downloads());
        args.extend(
            [
                "--dry-run",
                "--ignore-installed",
                "--quiet",
                "--report",
                &format!("{out}/{PIP_REPORT}"),
                "-c",
                CONSTRAINTS_MOUNT,
            ]
            .map(String::from),
        );
        args.extend(index_args(spec));
        let mut mounts = vec![out_mount];
        mounts.extend(ca_mount(i.ca_secret));
        mounts.extend(secret_mounts(&spec.python.secrets));
        mounts.push(constraints_mount());
        let mut what = vec![];
        if !spec.python.packages.is_empty() {
            args.extend(["-r".into(), PACKAGES_MOUNT.into()]);
            mounts.push(Mount::node(
                PACKAGES_MOUNT,
                NodeId::Packages,
                "/packages.txt",
            ));
            let mut list = spec.python.packages.join("\n");
            list.push('\n');
            nodes.push(files_node(
                NodeId::Packages,
                format!(
                    "[torchkit lock] packages: {}",
                    spec.python.packages.join(" ")
                ),
                vec![("/packages.txt", list)],
            ));
            what.push(spec.python.packages.join(" "));
        }
        if let Some(content) = i.requirements {
            let name = spec
                .python
                .requirements
                .as_deref()
                .unwrap_or("requirements.txt");
            args.extend(["-r".into(), REQUIREMENTS_MOUNT.into()]);
            mounts.push(Mount::node(
                REQUIREMENTS_MOUNT,
                NodeId::Requirements,
                "/requirements.txt",
            ));
            nodes.push(files_node(
                NodeId::Requirements,
                format!("[torchkit lock] requirements: {name}"),
                vec![(
                    "/requirements.txt",
                    String::from_utf8_lossy(content).into_owned(),
                )],
            ));
            what.push(format!("-r {name}"));
        }
        steps.push(step(
            spec,
            StepName::Pip,
            format!("pip install --dry-run --report {}", what.join(" ")),
            exec_run(
                with_ca(i.ca_secret, args),
                pip_env(i.ca_secret),
                mounts,
                None,
            ),
            None,
            if spec.python.packages.is_empty() {
                "python.requirements"
            } else {
                "python.packages"
            },
        ));
    }
    number(&mut steps, "torchkit lock");
    let applied = policy.apply(&mut steps)?;
    nodes.extend(applied.nodes);
    let nodes = used_nodes(&steps, nodes)?;
    Ok(Some(Plan {
        spec: spec.filename.clone(),
        spec_text: spec.text.clone(),
        profile: Profile::Release,
        platform: PLATFORM.into(),
        base,
        resolution: i.resolution.clone(),
        ca_secret: i.ca_secret,
        epoch: None,
        busted: applied.busted,
        nodes,
        steps,
        verify: super::VerifyStage::Skipped {
            reason: "torchkit lock builds no image".into(),
        },
        output: Output::Directory { dest: out.into() },
    }))
}
