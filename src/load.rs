//! The load pipeline the driver (`cli`) and the `# syntax=` frontend share, pure: what
//! happens between reading the files and compiling. The callers read the files (from disk,
//! or through the gateway) and run the same steps on what they read:
//!
//! 1. [`parse`] the spec text;
//! 2. apply the caller's overrides to `spec.request()` (flags and environment in the CLI,
//!    build-args in the frontend);
//! 3. [`resolve`] the request, a resolver error located at the spec line its input came
//!    from when the spec (not an override) asked for it;
//! 4. [`crate::lock::check`]: what the build does with `torchkit.lock`;
//! 5. pin the base ([`crate::plan::pin_base`]) and compile ([`crate::plan::compile`]).
//!
//! `.dockerignore` is read by one reader too (the buildkit edge's `ignorefile`), and the
//! per-build token comes from one helper (`buildkit::token`).

use crate::error::Hint;
use crate::resolve::{self, Request, Resolution, ResolveError};
use crate::spec::{self, Spec, SpecError};

/// The most bytes torchkit reads of a spec, or of the requirements file a spec names (1 MiB):
/// one limit for the CLI's reads from disk and the frontend's through the gateway. Real ones
/// are a few kilobytes; a larger file is the wrong file, and would otherwise pass `plan` and
/// fail in the build on BuildKit's gRPC message size.
pub const MAX_INPUT_BYTES: u64 = 1024 * 1024;

/// Refuse an input of `size` bytes over [`MAX_INPUT_BYTES`]; `file` names it in the error.
/// The callers check the size before reading the whole file where they can;
/// [`parse`] checks the text it is given too.
pub fn check_size(file: &str, size: u64) -> Result<(), LoadError> {
    if size > MAX_INPUT_BYTES {
        return Err(LoadError::TooLarge {
            file: file.to_string(),
            size,
        });
    }
    Ok(())
}

/// Why a spec could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The spec, or the requirements file it names, is over [`MAX_INPUT_BYTES`].
    #[error("{file} is {size} bytes, over torchkit's limit of 1 MiB ({MAX_INPUT_BYTES} bytes) for a spec or requirements file")]
    TooLarge {
        /// The file, as the caller names it.
        file: String,
        /// Its size in bytes (at least this many, when the reader stopped at the limit).
        size: u64,
    },
    /// A problem located in the spec: a parse error, or a resolver error caused by a value
    /// the spec sets (rendered with the spec's line).
    #[error("{0}")]
    Spec(SpecError),
    /// A resolver error caused by an override (a flag, an environment variable, a
    /// build-arg, a probed fact), not by the spec.
    #[error(transparent)]
    Resolve(Box<ResolveError>),
}

impl Hint for LoadError {
    fn hint(&self) -> Option<String> {
        match self {
            LoadError::Spec(e) => e.help.clone(),
            LoadError::Resolve(e) => e.hint(),
            LoadError::TooLarge { file, .. } => Some(format!(
                "check that {file} is the file you meant: a spec or a requirements file is a few kilobytes; generated or vendored content belongs in the build context"
            )),
        }
    }
}

/// Parse a spec's text; `filename` names it in errors.
pub fn parse(text: &str, filename: &str) -> Result<Spec, LoadError> {
    check_size(filename, text.len() as u64)?;
    spec::parse(text, filename).map_err(LoadError::Spec)
}

/// Resolve `req` (the spec's request with the caller's overrides), pointing at the spec line
/// when the bad input is the spec's own value.
pub fn resolve(spec: &Spec, req: &Request) -> Result<Resolution, LoadError> {
    resolve::resolve(req).map_err(|e| match locate(spec, req, &e) {
        Some(located) => LoadError::Spec(located),
        None => LoadError::Resolve(Box::new(e)),
    })
}

/// [`resolve`] for a release newer than the matrix, with the facts looked up online
/// (the edges look them up when [`crate::resolve::online_lookup`] asks for it).
pub fn resolve_online(
    spec: &Spec,
    req: &Request,
    facts: &crate::matrix::facts::ReleaseFacts,
) -> Result<Resolution, LoadError> {
    resolve::resolve_online(req, facts).map_err(|e| match locate(spec, req, &e) {
        Some(located) => LoadError::Spec(located),
        None => LoadError::Resolve(Box::new(e)),
    })
}

/// Locate a resolver error at the spec key its input came from, when that input is the
/// spec's own value (not an override or a probed fact), so an impossible torch/CUDA pair
/// points at the `cuda = …` line.
pub fn locate(spec: &Spec, req: &Request, e: &ResolveError) -> Option<SpecError> {
    use crate::resolve::ResolveError as E;
    let key = match e {
        E::InvalidTorch { .. } | E::UnknownTorch { .. } | E::Online { .. } => {
            (req.torch == spec.torch.version).then_some("torch.version")
        }
        E::InvalidCuda { .. } | E::CudaNotShipped { .. } => {
            (req.cuda == spec.torch.cuda).then_some("torch.cuda")
        }
        E::InvalidDriver { .. } => (req.driver == spec.target.driver).then_some("target.driver"),
        E::UnknownGpu { .. } | E::AmbiguousGpu { .. } => {
            (req.gpus == spec.target.gpus).then_some("target.gpus")
        }
        E::NoCompatibleVariant { .. } => {
            if req.driver.is_some() && req.driver == spec.target.driver {
                Some("target.driver")
            } else {
                (req.cuda == spec.torch.cuda).then_some("torch.cuda")
            }
        }
    }?;
    spec.locations.get(key)?;
    Some(spec.error_at(key, e.to_string(), e.hint()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_error_is_located() {
        let e = parse("[torch]\nversion = 2.8\n", "torchkit.toml").unwrap_err();
        let LoadError::Spec(e) = e else {
            panic!("{e:?}")
        };
        assert_eq!(e.span.line, 2);
    }

    #[test]
    fn resolve_errors_point_at_the_spec() {
        let spec = parse(
            "[torch]\nversion = \"2.8.0\"\ncuda = \"11.8\"\n",
            "torchkit.toml",
        )
        .unwrap();
        let req = spec.request();
        let LoadError::Spec(located) = resolve(&spec, &req).unwrap_err() else {
            panic!("the spec asked for CUDA 11.8")
        };
        assert_eq!(located.span.line, 3);
        assert!(located.message.contains("12.6"), "{}", located.message);
        // An override is not the spec's fault.
        let mut req2 = req.clone();
        req2.cuda = crate::vocab::CudaRequest::Version("11.7".into());
        let e = resolve(&spec, &req2).unwrap_err();
        assert!(matches!(e, LoadError::Resolve(_)), "{e:?}");
        assert!(e.hint().is_some());
    }

    #[test]
    fn a_spec_over_the_limit_is_refused_before_parsing() {
        let big = format!("# {}\n", "x".repeat(MAX_INPUT_BYTES as usize));
        let e = parse(&big, "torchkit.toml").unwrap_err();
        assert!(matches!(e, LoadError::TooLarge { size, .. } if size == big.len() as u64));
        let text = e.to_string();
        assert!(text.starts_with("torchkit.toml is 1048579 bytes"), "{text}");
        assert!(text.contains("1 MiB (1048576 bytes)"), "{text}");
        assert!(e.hint().unwrap().contains("torchkit.toml"));
        assert!(check_size("r.txt", MAX_INPUT_BYTES).is_ok());
        assert!(check_size("r.txt", MAX_INPUT_BYTES + 1).is_err());
    }

    #[test]
    fn a_good_spec_resolves() {
        let spec = parse(
            "[torch]\nversion = \"2.8.0\"\ncuda = \"12.8\"\n",
            "torchkit.toml",
        )
        .unwrap();
        let res = resolve(&spec, &spec.request()).unwrap();
        assert_eq!(res.cuda.as_deref(), Some("12.8"));
    }
}
