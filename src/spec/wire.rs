//! The TOML layout of `torchkit.toml`, exactly as written: serde structs with
//! `deny_unknown_fields` and spans. This is the only place that knows key names;
//! [`super::Spec`] is the validated meaning built from it.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_spanned::Spanned;

pub(super) type S<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SpecWire {
    pub torch: Option<S<TorchWire>>,
    pub target: Option<S<TargetWire>>,
    pub python: Option<S<PythonWire>>,
    pub system: Option<S<SystemWire>>,
    pub image: Option<S<ImageWire>>,
    pub cache: Option<S<CacheWire>>,
    pub base: Option<S<BaseWire>>,
    pub verify: Option<S<VerifyWire>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TorchWire {
    pub version: Option<S<String>>,
    pub cuda: Option<S<String>>,
    pub flavor: Option<S<String>>,
    pub torchvision: Option<S<String>>,
    pub torchaudio: Option<S<String>>,
    pub online: Option<S<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TargetWire {
    pub driver: Option<S<String>>,
    pub gpus: Option<S<Vec<S<String>>>>,
    pub detect: Option<S<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PythonWire {
    pub packages: Option<S<Vec<S<String>>>>,
    pub requirements: Option<S<String>>,
    pub index_url: Option<S<String>>,
    pub extra_index_urls: Option<S<Vec<S<String>>>>,
    pub secrets: Option<S<Vec<S<SecretWire>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SystemWire {
    pub apt: Option<S<Vec<S<String>>>>,
    pub secrets: Option<S<Vec<S<SecretWire>>>>,
}

/// One `secrets` entry: `"netrc"` (mounted at /run/secrets/netrc) or
/// `{ id = "netrc", dest = "/root/.netrc" }`.
#[derive(Debug)]
pub(super) struct SecretWire {
    pub id: String,
    pub dest: Option<String>,
}

const SECRET_EXPECTED: &str =
    "a secret id (\"netrc\") or a table with `id` and an optional `dest` ({ id = \"netrc\", dest = \"/root/.netrc\" })";

impl<'de> Deserialize<'de> for SecretWire {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = SecretWire;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(SECRET_EXPECTED)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SecretWire, E> {
                Ok(SecretWire {
                    id: v.to_owned(),
                    dest: None,
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<SecretWire, A::Error> {
                use serde::de::Error as _;
                let (mut id, mut dest) = (None, None);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "id" => id = Some(map.next_value::<String>()?),
                        "dest" => dest = Some(map.next_value::<String>()?),
                        other => {
                            return Err(A::Error::custom(format!(
                                "unknown key `{other}` in a secret table: it takes `id` and an optional `dest`"
                            )))
                        }
                    }
                }
                let id = id.ok_or_else(|| {
                    A::Error::custom("a secret table needs `id` (and takes an optional `dest`)")
                })?;
                Ok(SecretWire { id, dest })
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ImageWire {
    pub workdir: Option<S<String>>,
    pub user: Option<S<String>>,
    pub uid: Option<S<i64>>,
    pub env: Option<S<BTreeMap<S<String>, S<String>>>>,
    pub labels: Option<S<BTreeMap<S<String>, S<String>>>>,
    pub entrypoint: Option<S<Vec<String>>>,
    pub cmd: Option<S<Vec<String>>>,
    pub copy: Option<S<Vec<S<CopyWire>>>>,
}

/// One `[image] copy` entry. Read by hand rather than as an untagged enum, whose only
/// error is "data did not match any variant": each wrong shape says what an entry takes.
#[derive(Debug)]
pub(super) enum CopyWire {
    /// `"src/"`: copied to the same relative path under the workdir.
    Path(String),
    /// `{ src = "src/", dest = "/workspace/src" }`.
    Table(CopyTableWire),
}

#[derive(Debug)]
pub(super) struct CopyTableWire {
    pub src: String,
    pub dest: Option<String>,
}

/// What a copy entry is, for serde's "invalid type" messages.
const COPY_EXPECTED: &str =
    "a path (\"src/\") or a table with `src` and an optional `dest` ({ src = \"src/\", dest = \"/opt/src\" })";

impl<'de> Deserialize<'de> for CopyWire {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = CopyWire;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(COPY_EXPECTED)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<CopyWire, E> {
                Ok(CopyWire::Path(v.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<CopyWire, A::Error> {
                use serde::de::Error as _;
                let (mut src, mut dest) = (None, None);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "src" => src = Some(map.next_value::<String>()?),
                        "dest" => dest = Some(map.next_value::<String>()?),
                        other => {
                            return Err(A::Error::custom(format!(
                                "unknown key `{other}` in a copy table: it takes `src` and an optional `dest`"
                            )))
                        }
                    }
                }
                let src = src.ok_or_else(|| {
                    A::Error::custom("a copy table needs `src` (and takes an optional `dest`)")
                })?;
                Ok(CopyWire::Table(CopyTableWire { src, dest }))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CacheWire {
    pub profile: Option<S<String>>,
    pub bust: Option<S<Vec<S<String>>>>,
    pub epoch: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BaseWire {
    pub image: Option<S<String>>,
    pub digest: Option<S<String>>,
    pub mirror: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct VerifyWire {
    pub enabled: Option<S<bool>>,
    pub run: Option<S<Vec<S<CommandWire>>>>,
    pub network: Option<S<bool>>,
    pub gpu: Option<S<bool>>,
}

/// One `[verify] run` entry: a string for `/bin/sh -c`, or an argv array (as Dockerfile's
/// shell and exec forms). Read by hand for a message that says both.
#[derive(Debug)]
pub(super) enum CommandWire {
    /// `"pytest -q tests/"`.
    Shell(String),
    /// `["pytest", "-q", "tests/"]`.
    Exec(Vec<String>),
}

/// What a run entry is, for serde's "invalid type" messages.
const COMMAND_EXPECTED: &str =
    "a command string (\"pytest -q tests/\", run by /bin/sh -c) or an array of strings ([\"pytest\", \"-q\"], run as is)";

impl<'de> Deserialize<'de> for CommandWire {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = CommandWire;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(COMMAND_EXPECTED)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<CommandWire, E> {
                Ok(CommandWire::Shell(v.to_owned()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<CommandWire, A::Error> {
                let mut argv = Vec::new();
                while let Some(a) = seq.next_element::<String>()? {
                    argv.push(a);
                }
                Ok(CommandWire::Exec(argv))
            }
        }
        d.deserialize_any(V)
    }
}

/// Every key the schema knows, per table, for "did you mean" hints.
pub(super) const KEYS: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "torch", "target", "python", "system", "image", "cache", "base", "verify",
        ],
    ),
    (
        "torch",
        &[
            "version",
            "cuda",
            "flavor",
            "torchvision",
            "torchaudio",
            "online",
        ],
    ),
    ("target", &["driver", "gpus", "detect"]),
    (
        "python",
        &[
            "packages",
            "requirements",
            "index_url",
            "extra_index_urls",
            "secrets",
        ],
    ),
    ("system", &["apt", "secrets"]),
    (
        "image",
        &[
            "workdir",
            "user",
            "uid",
            "env",
            "labels",
            "entrypoint",
            "cmd",
            "copy",
        ],
    ),
    ("cache", &["profile", "bust", "epoch"]),
    ("base", &["image", "digest", "mirror"]),
    ("verify", &["enabled", "run", "network", "gpu"]),
];
