//! BuildKit's `llb.ImageMetaResolver`: look an image reference up without building it.
//!
//! The Go client resolves `FROM` images through this interface, implemented both by the
//! gateway client (`ResolveImageConfig` on the daemon) and by `imagemetaresolver` (the
//! registry, no daemon). torchkit does the same: the gateway `Bridge` (the buildkit edge)
//! answers through the daemon, `RegistryClient` (the registry edge) through the OCI
//! distribution API, and `plan::pin_base` pins a build's base through either.
//!
//! Only the trait is here: an implementation does IO, the trait does not.

use std::future::Future;

use super::Platform;

/// What an image reference resolves to for one platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageMeta {
    /// The digest the reference points at (an index's digest for a multi-platform image),
    /// what to pin `name@digest` to.
    pub digest: String,
    /// The platform's image config JSON (the OCI image config).
    pub config: Vec<u8>,
}

/// Resolves image references to their digest and config (`llb.ImageMetaResolver`).
pub trait ImageMetaResolver {
    /// Why a lookup failed; the hint says how to fix it.
    type Error: std::error::Error + crate::error::Hint + Send + Sync + 'static;

    /// The digest and config of `reference` for `platform`.
    fn resolve_image_meta(
        &self,
        reference: &str,
        platform: &Platform,
    ) -> impl Future<Output = Result<ImageMeta, Self::Error>> + Send;
}
