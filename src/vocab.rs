//! torchkit's vocabulary: the values users type, each with one parser.
//!
//! A CUDA request, an image flavour, a cache profile, a build step and a GPU list can be
//! written in `torchkit.toml`, as a flag (`--cuda`), as an environment variable
//! (`TORCHKIT_CUDA`) and as a frontend build-arg (`--build-arg TORCHKIT_CUDA=…`). Each type
//! here implements [`FromStr`] once, and serde (the spec), clap (the flags and their `env =`
//! fallbacks) and the frontend's build-args all go through it, so every accepted spelling
//! works everywhere or nowhere. [`Overrides`] is the set of those values a build can give
//! on top of the spec, read from flags/env or from build-args and written back to build-args
//! when the driver hands a build to the frontend image. [`names`] holds the option names.
//!
//! Pure: no IO. The environment is read by clap in the CLI, never here.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Hint;

/// The names of the override options, the same as flags, environment variables and
/// build-args (`--cuda`, `TORCHKIT_CUDA`, `--build-arg TORCHKIT_CUDA=…`).
pub mod names {
    /// `[torch] cuda`.
    pub const CUDA: &str = "TORCHKIT_CUDA";
    /// `[torch] flavor`.
    pub const FLAVOR: &str = "TORCHKIT_FLAVOR";
    /// `[target] driver`.
    pub const DRIVER: &str = "TORCHKIT_DRIVER";
    /// `[target] gpus`.
    pub const GPU: &str = "TORCHKIT_GPU";
    /// `[cache] profile`.
    pub const PROFILE: &str = "TORCHKIT_PROFILE";
    /// `[torch] online`.
    pub const ONLINE: &str = "TORCHKIT_ONLINE";
    /// `[verify] enabled = false` (`--skip-verify`).
    pub const SKIP_VERIFY: &str = "TORCHKIT_SKIP_VERIFY";
    /// `[verify] gpu` (`--gpus`): the GPUs the verify stage gets.
    pub const GPUS: &str = "TORCHKIT_GPUS";
    /// The prefix BuildKit gives build-args among the frontend options.
    pub const BUILD_ARG_PREFIX: &str = "build-arg:";
}

/// An on/off option (`--online`, `TORCHKIT_ONLINE`, `[torch] online`), spelled as BuildKit
/// and docker read booleans: `1`, `true`, `yes`, `on` or `0`, `false`, `no`, `off`, any case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Switch(pub bool);

impl FromStr for Switch {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(Switch(true)),
            "0" | "false" | "no" | "off" => Ok(Switch(false)),
            _ => Err(ParseError {
                what: "on or off",
                input: s.to_string(),
                help: "write true or false (1/0, yes/no and on/off work too)".into(),
            }),
        }
    }
}

impl fmt::Display for Switch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0 { "true" } else { "false" })
    }
}

/// A value that is not one of the accepted spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not {what}")]
pub struct ParseError {
    /// What was expected, with its article: "a CUDA version", "a cache profile".
    pub what: &'static str,
    /// The text as given.
    pub input: String,
    /// How to write it.
    pub help: String,
}

impl Hint for ParseError {
    fn hint(&self) -> Option<String> {
        Some(self.help.clone())
    }
}

fn did_you_mean_help(input: &str, known: &[&str], otherwise: String) -> String {
    match closest(input, known) {
        Some(k) => format!("did you mean `{k}`? {otherwise}"),
        None => otherwise,
    }
}

/// The name in `known` closest to a misspelt `input` (case-insensitive, at most two edits
/// away), for a "did you mean" hint.
pub fn closest<'a>(input: &str, known: &[&'a str]) -> Option<&'a str> {
    let input = input.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (strsim::levenshtein(&input, &k.to_ascii_lowercase()), *k))
        .min()
        .filter(|(d, _)| *d <= 2 && !input.is_empty())
        .map(|(_, k)| k)
}

/// Implements serde through `FromStr`/`Display`, so the spec accepts what flags accept.
macro_rules! serde_via_str {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// Enums whose values are fixed words: `FromStr` (case-insensitive), `Display`, the list.
macro_rules! word_enum {
    ($(#[$m:meta])* $t:ident, $what:literal, { $($(#[$vm:meta])* $v:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $t {
            $($(#[$vm])* $v),+
        }

        impl $t {
            /// Every value, in order.
            pub const ALL: &'static [$t] = &[$($t::$v),+];

            /// The value as written.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($t::$v => $s),+
                }
            }

            /// The accepted words, in order.
            pub fn names() -> Vec<&'static str> {
                Self::ALL.iter().map(|v| v.as_str()).collect()
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $t {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, ParseError> {
                let t = s.trim();
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str().eq_ignore_ascii_case(t))
                    .ok_or_else(|| ParseError {
                        what: $what,
                        input: s.to_string(),
                        help: did_you_mean_help(
                            t,
                            &Self::names(),
                            format!("use one of: {}", Self::names().join(", ")),
                        ),
                    })
            }
        }

        serde_via_str!($t);
    };
}

word_enum!(
    /// `runtime` or `devel` flavour of the base image.
    Flavor, "an image flavor", {
        /// `…-runtime`: no compiler toolchain.
        Runtime = "runtime",
        /// `…-devel`: nvcc and headers.
        Devel = "devel",
    }
);

// The enum comes from `word_enum!`, which cannot derive `Default` for every enum.
#[allow(clippy::derivable_impls)]
impl Default for Flavor {
    fn default() -> Self {
        Flavor::Runtime
    }
}

word_enum!(
    /// The cache profile: how much of the cache a build may reuse.
    Profile, "a cache profile", {
        /// Reuse layers and download caches.
        Dev = "dev",
        /// Re-resolve dependencies (fresh pip/requirements), keep download caches.
        Test = "test",
        /// Rebuild every step on a pinned base, no cache mounts.
        Release = "release",
    }
);

#[allow(clippy::derivable_impls)]
impl Default for Profile {
    fn default() -> Self {
        Profile::Dev
    }
}

word_enum!(
    /// A build step, in graph order: what users name in `[cache] bust`, `--no-cache-filter`
    /// and `--target`, and what progress shows.
    Step, "a build step", {
        /// Pull the base image.
        Base = "base",
        /// Install the apt packages.
        Apt = "apt",
        /// Install `[python] packages`.
        Pip = "pip",
        /// Install `[python] requirements`.
        Requirements = "requirements",
        /// Create the user and workdir.
        User = "user",
        /// Copy from the build context.
        Copy = "copy",
        /// Check the finished image and run `[verify] run`; not part of the image.
        Verify = "verify",
    }
);

impl Step {
    /// Steps that install dependencies: they re-run when `[cache] epoch` changes, and the
    /// `test` profile re-resolves them.
    pub fn is_dependency(self) -> bool {
        matches!(self, Step::Pip | Step::Requirements)
    }
}

/// The CUDA part of a request.
///
/// Accepted spellings (case-insensitive, surrounding blanks ignored): `auto`, `cpu`, a CUDA
/// version `X.Y` or `X.Y.Z` (the variant is `X.Y`), and PyTorch's wheel tags `cuXYZ` or
/// `cuX.Y` (`cu128` and `cu12.8` are `12.8`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub enum CudaRequest {
    /// Pick the best variant for the target.
    #[default]
    Auto,
    /// CPU-only torch.
    Cpu,
    /// An exact CUDA variant, `MAJOR.MINOR` ("12.8").
    Version(String),
}

impl FromStr for CudaRequest {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "auto" => return Ok(CudaRequest::Auto),
            "cpu" => return Ok(CudaRequest::Cpu),
            _ => {}
        }
        let err = |help: String| ParseError {
            what: "a CUDA version",
            input: s.to_string(),
            help,
        };
        let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
        let number = |x: &str| x.parse::<u32>().ok().map(|n| n.to_string());
        let version = if let Some(d) = t.strip_prefix("cu").filter(|d| digits(d) && d.len() >= 3) {
            // `cu128`: the last digit is the minor version.
            let (maj, min) = d.split_at(d.len() - 1);
            number(maj).zip(number(min))
        } else {
            let v = t.strip_prefix("cu").unwrap_or(&t);
            let parts: Vec<&str> = v.split('.').collect();
            if (2..=3).contains(&parts.len()) && parts.iter().all(|p| digits(p)) {
                number(parts[0]).zip(number(parts[1]))
            } else {
                None
            }
        };
        match version {
            Some((maj, min)) => Ok(CudaRequest::Version(format!("{maj}.{min}"))),
            None if digits(&t) && t.len() >= 3 => {
                let (maj, min) = t.split_at(t.len() - 1);
                Err(err(format!("write CUDA as MAJOR.MINOR: \"{maj}.{min}\"")))
            }
            None => Err(err(
                "use `auto` to let torchkit pick, `cpu`, or a CUDA version such as 12.8 (or cu128)"
                    .into(),
            )),
        }
    }
}

impl fmt::Display for CudaRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CudaRequest::Auto => f.write_str("auto"),
            CudaRequest::Cpu => f.write_str("cpu"),
            CudaRequest::Version(v) => f.write_str(v),
        }
    }
}

serde_via_str!(CudaRequest);

/// Target GPUs: compute capabilities (`9.0`) or product names (`H100`), comma-separated in
/// flags, environment variables and build-args (`H100,8.9`), a list in the spec (whose
/// entries are read the same way). Names are checked against the matrix by the resolver;
/// this only checks the form.
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct GpuList(pub Vec<String>);

impl GpuList {
    /// The GPUs, in the order written.
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    /// No GPU given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The list as written back to a flag or build-arg: `H100,8.9`.
    pub fn joined(&self) -> String {
        self.0.join(",")
    }

    /// Append the GPUs of another list (a repeated flag).
    pub fn extend(&mut self, other: GpuList) {
        self.0.extend(other.0);
    }
}

impl FromStr for GpuList {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let mut out = vec![];
        for g in s.split(',') {
            let g = g.trim();
            let err = |input: &str, help: &str| ParseError {
                what: "a GPU (a compute capability or a product name)",
                input: input.to_string(),
                help: help.to_string(),
            };
            if g.is_empty() || g.chars().any(|c| c.is_control()) {
                return Err(err(
                    s,
                    "give compute capabilities (\"9.0\") or product names (\"H100\"), comma-separated, with no empty entry",
                ));
            }
            if g.starts_with(|c: char| c.is_ascii_digit()) {
                let parts: Vec<&str> = g.split('.').collect();
                let ok = parts.len() == 2
                    && parts
                        .iter()
                        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
                if !ok {
                    return Err(ParseError {
                        what: "a compute capability",
                        input: g.to_string(),
                        help: "write it as MAJOR.MINOR, e.g. \"8.6\" or \"9.0\"".into(),
                    });
                }
            }
            out.push(g.to_string());
        }
        Ok(GpuList(out))
    }
}

/// GPUs to attach to the verify stage, as `docker run --gpus` spells them: `all`, or
/// `device=0,1` (indexes or UUIDs), or fully qualified CDI device names
/// (`nvidia.com/gpu=all`, as `RUN --device`). BuildKit attaches them as CDI devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gpus(pub Vec<String>);

impl Gpus {
    /// Every GPU: `nvidia.com/gpu=all`.
    pub fn all() -> Gpus {
        Gpus(vec![format!("{}=all", Self::KIND)])
    }

    /// The CDI kind of NVIDIA GPUs (the NVIDIA Container Toolkit's `nvidia-ctk cdi generate`).
    pub const KIND: &'static str = "nvidia.com/gpu";
}

impl FromStr for Gpus {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let t = s.trim();
        let err = |help: &str| ParseError {
            what: "a GPU request",
            input: s.to_string(),
            help: help.to_string(),
        };
        if t.eq_ignore_ascii_case("all") {
            return Ok(Gpus::all());
        }
        if let Some(list) = t.strip_prefix("device=") {
            let ids: Vec<&str> = list.split(',').map(str::trim).collect();
            if ids
                .iter()
                .any(|i| i.is_empty() || i.contains(char::is_whitespace))
            {
                return Err(err(
                    "write device=0,1 (GPU indexes or UUIDs, comma-separated)",
                ));
            }
            return Ok(Gpus(
                ids.iter().map(|i| format!("{}={i}", Self::KIND)).collect(),
            ));
        }
        if t.bytes().all(|b| b.is_ascii_digit()) && !t.is_empty() {
            return Err(err(
                "CDI attaches GPUs by name, not by count: write all, or device=0,1",
            ));
        }
        let names: Vec<&str> = t.split(',').map(str::trim).collect();
        let qualified = |n: &str| {
            n.split_once('=').is_some_and(|(kind, name)| {
                !name.is_empty()
                    && kind
                        .split_once('/')
                        .is_some_and(|(v, c)| !v.is_empty() && !c.is_empty())
            })
        };
        if names.iter().all(|n| qualified(n)) {
            return Ok(Gpus(names.iter().map(|n| n.to_string()).collect()));
        }
        Err(err(
            "write all, device=0,1, or CDI device names such as nvidia.com/gpu=all",
        ))
    }
}

impl fmt::Display for Gpus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(","))
    }
}

impl fmt::Display for GpuList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.joined())
    }
}

/// What a build gives on top of the spec: from flags and their environment variables in
/// the CLI, from build-args in the frontend. The spec applies them
/// ([`crate::spec::Spec::request_with`], [`crate::spec::Spec::profile_with`]); nothing else
/// merges them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Overrides {
    /// `TORCHKIT_CUDA` / `--cuda`: overrides `[torch] cuda`.
    pub cuda: Option<CudaRequest>,
    /// `TORCHKIT_FLAVOR` / `--flavor`: overrides `[torch] flavor`.
    pub flavor: Option<Flavor>,
    /// `TORCHKIT_DRIVER` / `--driver`: overrides `[target] driver`.
    pub driver: Option<String>,
    /// `TORCHKIT_GPU` / `--gpu`: overrides `[target] gpus` (None: keep the spec's).
    pub gpus: Option<GpuList>,
    /// `TORCHKIT_PROFILE` / `--profile`: overrides `[cache] profile`.
    pub profile: Option<Profile>,
    /// `TORCHKIT_ONLINE` / `--online`: overrides `[torch] online`.
    pub online: Option<bool>,
    /// `TORCHKIT_SKIP_VERIFY` / `--skip-verify`: true turns `[verify]` off.
    pub skip_verify: Option<bool>,
    /// `TORCHKIT_GPUS` / `--gpus`: GPUs for the verify stage (as `[verify] gpu = true`).
    pub gpus_attached: Option<Gpus>,
}

/// A build-arg that is not one of its option's spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--build-arg {name}={value}: {source}")]
pub struct BuildArgError {
    /// The build-arg (`TORCHKIT_CUDA`).
    pub name: &'static str,
    /// Its value.
    pub value: String,
    /// Why the value was refused.
    pub source: ParseError,
}

impl Hint for BuildArgError {
    fn hint(&self) -> Option<String> {
        Some(format!("{}: --build-arg {}=…", self.source.help, self.name))
    }
}

impl Overrides {
    /// Read the `build-arg:TORCHKIT_*` frontend options. An empty value is no override (as
    /// `--build-arg NAME=` is in the Dockerfile frontend).
    pub fn from_build_args(opts: &BTreeMap<String, String>) -> Result<Self, BuildArgError> {
        fn arg<T: FromStr<Err = ParseError>>(
            opts: &BTreeMap<String, String>,
            name: &'static str,
        ) -> Result<Option<T>, BuildArgError> {
            match opts
                .get(&format!("{}{name}", names::BUILD_ARG_PREFIX))
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
            {
                None => Ok(None),
                Some(v) => v.parse().map(Some).map_err(|source| BuildArgError {
                    name,
                    value: v.to_string(),
                    source,
                }),
            }
        }
        Ok(Overrides {
            cuda: arg(opts, names::CUDA)?,
            flavor: arg(opts, names::FLAVOR)?,
            driver: opts
                .get(&format!("{}{}", names::BUILD_ARG_PREFIX, names::DRIVER))
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty()),
            gpus: arg(opts, names::GPU)?,
            profile: arg(opts, names::PROFILE)?,
            online: arg::<Switch>(opts, names::ONLINE)?.map(|s| s.0),
            skip_verify: arg::<Switch>(opts, names::SKIP_VERIFY)?.map(|s| s.0),
            gpus_attached: arg(opts, names::GPUS)?,
        })
    }

    /// The overrides as build-args (`TORCHKIT_CUDA` → `12.8`), in the spellings
    /// [`Overrides::from_build_args`] reads back to the same values.
    pub fn to_build_args(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let mut put = |name: &str, v: Option<String>| {
            if let Some(v) = v {
                out.insert(name.to_string(), v);
            }
        };
        put(names::CUDA, self.cuda.as_ref().map(ToString::to_string));
        put(names::FLAVOR, self.flavor.map(|f| f.to_string()));
        put(names::DRIVER, self.driver.clone());
        put(names::GPU, self.gpus.as_ref().map(GpuList::joined));
        put(names::PROFILE, self.profile.map(|p| p.to_string()));
        put(names::ONLINE, self.online.map(|o| Switch(o).to_string()));
        put(
            names::SKIP_VERIFY,
            self.skip_verify.map(|o| Switch(o).to_string()),
        );
        put(
            names::GPUS,
            self.gpus_attached.as_ref().map(Gpus::to_string),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuda_spellings() {
        for (input, want) in [
            ("auto", CudaRequest::Auto),
            (" AUTO ", CudaRequest::Auto),
            ("cpu", CudaRequest::Cpu),
            ("12.8", CudaRequest::Version("12.8".into())),
            ("12.8.1", CudaRequest::Version("12.8".into())),
            ("cu128", CudaRequest::Version("12.8".into())),
            ("CU128", CudaRequest::Version("12.8".into())),
            ("cu12.8", CudaRequest::Version("12.8".into())),
            ("cu118", CudaRequest::Version("11.8".into())),
        ] {
            assert_eq!(input.parse::<CudaRequest>(), Ok(want), "{input}");
        }
        for bad in ["", "12", "cu12", "twelve", "12.x", "1.2.3.4", "cu", "12..8"] {
            let e = bad.parse::<CudaRequest>().unwrap_err();
            assert_eq!(e.input, bad);
            assert!(e.hint().is_some());
        }
        assert_eq!(
            "128".parse::<CudaRequest>().unwrap_err().help,
            "write CUDA as MAJOR.MINOR: \"12.8\""
        );
    }

    #[test]
    fn display_round_trips() {
        for c in ["auto", "cpu", "12.8"] {
            assert_eq!(c.parse::<CudaRequest>().unwrap().to_string(), c);
        }
        for p in Profile::ALL {
            assert_eq!(p.to_string().parse::<Profile>(), Ok(*p));
        }
        for s in Step::ALL {
            assert_eq!(s.to_string().parse::<Step>(), Ok(*s));
        }
        for f in Flavor::ALL {
            assert_eq!(f.to_string().parse::<Flavor>(), Ok(*f));
        }
    }

    #[test]
    fn words_suggest_the_nearest() {
        let e = "relase".parse::<Profile>().unwrap_err();
        assert_eq!(e.to_string(), "`relase` is not a cache profile");
        assert!(e.help.starts_with("did you mean `release`?"), "{}", e.help);
        let e = "runtim".parse::<Flavor>().unwrap_err();
        assert!(e.help.starts_with("did you mean `runtime`?"));
        let e = "zzz".parse::<Step>().unwrap_err();
        assert_eq!(
            e.help,
            "use one of: base, apt, pip, requirements, user, copy, verify"
        );
        assert_eq!("Devel".parse::<Flavor>(), Ok(Flavor::Devel));
    }

    #[test]
    fn gpu_lists() {
        assert_eq!(
            "H100, 8.9".parse::<GpuList>().unwrap().as_slice(),
            ["H100", "8.9"]
        );
        assert_eq!("9.0".parse::<GpuList>().unwrap().as_slice(), ["9.0"]);
        assert!("H100,,8.9".parse::<GpuList>().is_err());
        assert!("".parse::<GpuList>().is_err());
        let e = "9".parse::<GpuList>().unwrap_err();
        assert_eq!(e.what, "a compute capability");
        assert!("9.0.1".parse::<GpuList>().is_err());
    }

    #[test]
    fn gpus_take_dockers_spellings_and_cdi_names() {
        assert_eq!("all".parse::<Gpus>().unwrap().0, vec!["nvidia.com/gpu=all"]);
        assert_eq!(
            "device=0,GPU-3a2b".parse::<Gpus>().unwrap().0,
            vec!["nvidia.com/gpu=0", "nvidia.com/gpu=GPU-3a2b"]
        );
        assert_eq!(
            "nvidia.com/gpu=1,example.com/dev=x"
                .parse::<Gpus>()
                .unwrap()
                .0,
            vec!["nvidia.com/gpu=1", "example.com/dev=x"]
        );
        let e = "2".parse::<Gpus>().unwrap_err();
        assert!(e.help.contains("not by count"), "{}", e.help);
        assert!("device=".parse::<Gpus>().is_err());
        assert!("gpu".parse::<Gpus>().is_err());
        let g: Gpus = "device=0,1".parse().unwrap();
        assert_eq!(g.to_string().parse::<Gpus>().unwrap(), g);
    }

    #[test]
    fn overrides_round_trip_through_build_args() {
        let o = Overrides {
            cuda: Some(CudaRequest::Version("12.8".into())),
            flavor: Some(Flavor::Devel),
            driver: Some("570.124.06".into()),
            gpus: Some("H100,8.9".parse().unwrap()),
            profile: Some(Profile::Test),
            online: Some(true),
            skip_verify: Some(true),
            gpus_attached: Some("device=0,1".parse().unwrap()),
        };
        let opts: BTreeMap<String, String> = o
            .to_build_args()
            .into_iter()
            .map(|(k, v)| (format!("build-arg:{k}"), v))
            .collect();
        assert_eq!(Overrides::from_build_args(&opts), Ok(o));
        assert_eq!(
            Overrides::from_build_args(&BTreeMap::new()),
            Ok(Overrides::default())
        );
    }

    #[test]
    fn a_bad_build_arg_names_itself() {
        let opts = BTreeMap::from([("build-arg:TORCHKIT_PROFILE".into(), "prod".into())]);
        let e = Overrides::from_build_args(&opts).unwrap_err();
        assert_eq!(e.name, "TORCHKIT_PROFILE");
        assert!(e.to_string().contains("TORCHKIT_PROFILE=prod"), "{e}");
        assert!(e.hint().unwrap().contains("dev, test, release"));
    }
}
