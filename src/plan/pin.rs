//! Pinning a build's base: the one sequence the driver, the frontend, `torchkit lock` and
//! `--resolve-digest` share, over any [`ImageMetaResolver`] (the daemon's
//! ResolveImageConfig through the gateway bridge, or the registry).

use crate::error::Hint;
use crate::llb::{ImageMetaResolver, Platform};
use crate::resolve::Resolution;
use crate::spec::Spec;

use super::{base_plan, BaseMeta, CompileError, CompileOptions};

/// Why the base could not be pinned.
#[derive(Debug, thiserror::Error)]
pub enum PinError<E> {
    /// The base reference is not an image name.
    #[error(transparent)]
    Plan(#[from] CompileError),
    /// The resolver could not look the base up.
    #[error("cannot resolve the base image {reference}: {source}")]
    Resolve {
        /// What was looked up (`name` or `name@sha256:…`).
        reference: String,
        /// The resolver's error.
        source: E,
    },
    /// The base's image config is not JSON.
    #[error("the config of base image {reference} is not valid JSON: {error}")]
    Config {
        /// What was looked up.
        reference: String,
        /// The parse error.
        error: String,
    },
}

impl<E: Hint> Hint for PinError<E> {
    fn hint(&self) -> Option<String> {
        match self {
            PinError::Plan(e) => e.hint(),
            PinError::Resolve { source, .. } => source.hint(),
            PinError::Config { .. } => Some(
                "the registry served a config torchkit cannot read; check the image with `docker buildx imagetools inspect --raw`".into(),
            ),
        }
    }
}

/// A base pinned by digest, with its config.
#[derive(Debug, Clone, PartialEq)]
pub struct PinnedBase {
    /// The normalized reference, without the digest (`docker.io/pytorch/pytorch:…`).
    pub reference: String,
    /// The digest to pin it by.
    pub digest: String,
    /// The base's image config.
    pub config: serde_json::Value,
}

impl From<PinnedBase> for BaseMeta {
    fn from(p: PinnedBase) -> BaseMeta {
        BaseMeta {
            digest: Some(p.digest),
            config: Some(p.config),
        }
    }
}

/// Pin the base of the build `opts` describes and fetch its config (for
/// [`CompileOptions::base`], through `BaseMeta::from`).
///
/// The reference is [`base_plan`]'s: the `--build-context` image when `opts.base_source`
/// names one, else the spec's or resolver's image with `[base] mirror` applied, pinned by
/// the spec's `[base] digest`, else a current lock's digest. It is looked up for the plan's
/// platform (linux/amd64). The digest kept is that pin when there is one (a lookup by
/// digest answers the same digest), else the resolver's; the config is always the
/// resolver's, so the image inherits the base's env and history.
pub async fn pin_base<R: ImageMetaResolver>(
    spec: &Spec,
    res: &Resolution,
    opts: &CompileOptions,
    resolver: &R,
) -> Result<PinnedBase, PinError<R::Error>> {
    let base = base_plan(spec, res, opts)?;
    let reference = base.pinned_reference();
    let meta = resolver
        .resolve_image_meta(&reference, &Platform::linux_amd64())
        .await
        .map_err(|source| PinError::Resolve {
            reference: reference.clone(),
            source,
        })?;
    let config = serde_json::from_slice(&meta.config).map_err(|e| PinError::Config {
        reference,
        error: e.to_string(),
    })?;
    Ok(PinnedBase {
        reference: base.reference,
        digest: base.digest.unwrap_or(meta.digest),
        config,
    })
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::sync::Mutex;
    use std::task::{Context, Poll, Waker};

    use super::*;
    use crate::llb::ImageMeta;

    const PINNED: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const RESOLVED: &str =
        "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    #[derive(Debug, thiserror::Error)]
    #[error("no such image")]
    struct Missing;

    impl Hint for Missing {
        fn hint(&self) -> Option<String> {
            Some("check the name".into())
        }
    }

    /// Answers every lookup with `config`, recording what was asked.
    struct Fake {
        config: &'static str,
        fail: bool,
        asked: Mutex<Vec<(String, String)>>,
    }

    impl Fake {
        fn new(config: &'static str) -> Self {
            Fake {
                config,
                fail: false,
                asked: Mutex::new(vec![]),
            }
        }
    }

    impl ImageMetaResolver for Fake {
        type Error = Missing;

        async fn resolve_image_meta(
            &self,
            reference: &str,
            platform: &Platform,
        ) -> Result<ImageMeta, Missing> {
            self.asked
                .lock()
                .unwrap()
                .push((reference.to_string(), platform.to_string()));
            if self.fail {
                return Err(Missing);
            }
            let digest = match reference.split_once('@') {
                Some((_, d)) => d.to_string(),
                None => RESOLVED.to_string(),
            };
            Ok(ImageMeta {
                digest,
                config: self.config.as_bytes().to_vec(),
            })
        }
    }

    /// Drive a future that never waits (the fake answers at once).
    fn now<F: Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("the fake resolver never waits"),
        }
    }

    fn spec(extra: &str) -> (Spec, Resolution) {
        let spec = crate::spec::parse(
            &format!("[torch]\nversion = \"2.8.0\"\ncuda = \"12.8\"\n{extra}"),
            "torchkit.toml",
        )
        .unwrap();
        let res = crate::resolve::resolve(&spec.request()).unwrap();
        (spec, res)
    }

    const CONFIG: &str = r#"{"config":{"Env":["PATH=/usr/bin"]}}"#;
    const BASE: &str = "docker.io/pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime";

    #[test]
    fn an_unpinned_base_takes_the_resolvers_digest_and_config() {
        let (spec, res) = spec("");
        let fake = Fake::new(CONFIG);
        let p = now(pin_base(&spec, &res, &CompileOptions::default(), &fake)).unwrap();
        assert_eq!(p.reference, BASE);
        assert_eq!(p.digest, RESOLVED);
        assert_eq!(p.config["config"]["Env"][0], "PATH=/usr/bin");
        assert_eq!(
            *fake.asked.lock().unwrap(),
            [(BASE.to_string(), "linux/amd64".to_string())]
        );
        let meta = BaseMeta::from(p);
        assert_eq!(meta.digest.as_deref(), Some(RESOLVED));
        assert!(meta.config.is_some());
    }

    #[test]
    fn the_specs_digest_pins_the_lookup() {
        let (spec, res) = spec(&format!("[base]\ndigest = \"{PINNED}\"\n"));
        let fake = Fake::new(CONFIG);
        let p = now(pin_base(&spec, &res, &CompileOptions::default(), &fake)).unwrap();
        assert_eq!(p.digest, PINNED);
        assert_eq!(fake.asked.lock().unwrap()[0].0, format!("{BASE}@{PINNED}"));
    }

    #[test]
    fn a_lock_on_this_base_pins_it_and_one_on_another_does_not() {
        let (spec, res) = spec("");
        let lock = |reference: &str| CompileOptions {
            lock: Some(crate::plan::LockedSet {
                reference: reference.into(),
                digest: PINNED.into(),
                ..Default::default()
            }),
            ..CompileOptions::default()
        };
        let fake = Fake::new(CONFIG);
        let p = now(pin_base(&spec, &res, &lock(BASE), &fake)).unwrap();
        assert_eq!(p.digest, PINNED);
        let p = now(pin_base(
            &spec,
            &res,
            &lock("docker.io/library/other:1"),
            &fake,
        ))
        .unwrap();
        assert_eq!(p.digest, RESOLVED);
    }

    #[test]
    fn a_build_context_replaces_the_base_and_the_specs_pin() {
        let (spec, res) = spec(&format!("[base]\ndigest = \"{PINNED}\"\n"));
        let opts = CompileOptions {
            base_source: Some("mirror.example/pytorch:2.8.0".into()),
            ..CompileOptions::default()
        };
        let fake = Fake::new(CONFIG);
        let p = now(pin_base(&spec, &res, &opts, &fake)).unwrap();
        assert_eq!(p.reference, "mirror.example/pytorch:2.8.0");
        assert_eq!(p.digest, RESOLVED);
    }

    #[test]
    fn failures_name_the_base_and_keep_the_resolvers_hint() {
        let (spec, res) = spec("");
        let mut fake = Fake::new(CONFIG);
        fake.fail = true;
        let e = now(pin_base(&spec, &res, &CompileOptions::default(), &fake)).unwrap_err();
        assert!(matches!(&e, PinError::Resolve { reference, .. } if reference == BASE));
        assert!(e.to_string().contains(BASE), "{e}");
        assert_eq!(e.hint().as_deref(), Some("check the name"));

        let e = now(pin_base(
            &spec,
            &res,
            &CompileOptions::default(),
            &Fake::new("not json"),
        ))
        .unwrap_err();
        assert!(matches!(e, PinError::Config { .. }), "{e}");
    }
}
