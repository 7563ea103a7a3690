//! The gateway side of a build, shared by both ways torchkit builds:
//! - the driver (`torchkit build`) runs it in-client, over the Control connection;
//! - the `# syntax=` frontend (`torchkit frontend`) runs it inside BuildKit, over stdio.
//!
//! Either way it is the same code over a [`Bridge`]: pin the base with ResolveImageConfig,
//! call the one pure [`crate::plan::compile`], Solve the Definition and Return the result
//! with the image config. Logs go to stderr only: in frontend mode stdout is the gRPC pipe.

pub mod solve;
