//! The gateway bridge as an [`ImageMetaResolver`]: `LLBBridge.ResolveImageConfig` on the
//! daemon, as the Go gateway client implements `llb.ImageMetaResolver`. The daemon applies
//! its registry mirrors, credentials (through the session's Auth) and source policies.

use crate::llb::{ImageMeta, ImageMetaResolver, Platform};

use super::client::BridgeError;
use super::Bridge;

impl ImageMetaResolver for Bridge {
    type Error = BridgeError;

    async fn resolve_image_meta(
        &self,
        reference: &str,
        platform: &Platform,
    ) -> Result<ImageMeta, BridgeError> {
        let r = self
            .resolve_image_config(reference, Some(platform.to_pb()))
            .await?;
        Ok(ImageMeta {
            digest: r.digest,
            config: r.config,
        })
    }
}
