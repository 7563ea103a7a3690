//! Errors of the LLB builder, the marshaller and the decoder.

use crate::error::Hint;

/// Everything that can go wrong building, marshalling or reading LLB.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlbError {
    /// An image reference that is not a valid Docker reference.
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference {
        /// The reference as given.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A digest that is not `sha256:` followed by 64 lowercase hex digits.
    #[error("invalid digest {0:?}: expected sha256:<64 hex digits>")]
    InvalidDigest(String),
    /// An exec op without a command.
    #[error("exec op has no arguments")]
    EmptyArgs,
    /// Marshalling a scratch state: there is no op to return.
    #[error("cannot marshal an empty (scratch) state")]
    EmptyState,
    /// A mount whose options contradict each other (e.g. a tmpfs with a source).
    #[error("invalid mount at {dest}: {reason}")]
    InvalidMount {
        /// The mount point.
        dest: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Two mounts with the same destination in one exec.
    #[error("two mounts target {0}")]
    DuplicateMount(String),
    /// A Definition that is too short to hold a result.
    #[error("definition has {0} ops; at least 2 are needed (one op and the terminal op)")]
    TooFewOps(usize),
    /// A `def` entry that is not a valid `pb.Op`.
    #[error("op {index} does not decode: {reason}")]
    BadOp {
        /// Position in `Definition.def`.
        index: usize,
        /// The protobuf decode error.
        reason: String,
    },
    /// An input naming a digest that is not in the Definition (or that comes later).
    #[error("op {op} has input {digest} which is not defined before it")]
    DanglingInput {
        /// Digest of the op with the bad input.
        op: String,
        /// The missing digest.
        digest: String,
    },
    /// An input with a negative output index.
    #[error("op {op} has input {digest} with negative index {index}")]
    NegativeIndex {
        /// Digest of the op with the bad input.
        op: String,
        /// The input's digest.
        digest: String,
        /// The index.
        index: i64,
    },
    /// The last op is not a terminal `Op{inputs:[result]}`.
    #[error("the last op must be a terminal op with exactly one input and no operation")]
    BadTerminal,
    /// Bytes that are not a `pb.Definition`.
    #[error("bytes are not a pb.Definition: {0}")]
    Decode(String),
    /// The daemon lacks an LLB cap the graph cannot do without.
    #[error("this BuildKit cannot do {feature}: it lacks the LLB cap `{cap}`, which BuildKit {since} added")]
    Unsupported {
        /// The cap ID.
        cap: String,
        /// What the cap is for.
        feature: String,
        /// The first BuildKit release with it.
        since: String,
    },
}

impl Hint for LlbError {
    fn hint(&self) -> Option<String> {
        match self {
            Self::InvalidReference { .. } => Some(
                "use a Docker reference such as `ubuntu:22.04`, `pytorch/pytorch:TAG` or \
                 `registry.example.com/team/image:TAG`, lowercase"
                    .into(),
            ),
            Self::InvalidDigest(_) => {
                Some("pin images with the manifest digest `sha256:` + 64 hex digits".into())
            }
            Self::EmptyArgs => Some("give the exec a command, e.g. Exec::shell(\"…\")".into()),
            Self::EmptyState => {
                Some("start the graph from an image or local source, not scratch".into())
            }
            Self::TooFewOps(_) | Self::BadTerminal => Some(
                "a Definition must end with a terminal op naming the result; \
                 produce it with llb::marshal"
                    .into(),
            ),
            Self::DanglingInput { .. } | Self::NegativeIndex { .. } => Some(
                "the Definition was edited or truncated; regenerate it with `torchkit llb`".into(),
            ),
            Self::Decode(_) | Self::BadOp { .. } => {
                Some("the input is not LLB; `torchkit llb` writes a protobuf pb.Definition".into())
            }
            Self::Unsupported { since, .. } => Some(format!(
                "build on a daemon with BuildKit {since} or newer (`--addr`); \
                 docs/compatibility.md lists what each BuildKit can do"
            )),
            Self::InvalidMount { .. } | Self::DuplicateMount(_) => None,
        }
    }
}
