//! Errors as the daemon and the docker CLI understand them: a `google.rpc.Status` for
//! `LLBBridge.Return`, with an `errdefs.Source` detail when the error has a place in the
//! spec, so that `docker build` prints the offending lines of `torchkit.toml` the way it
//! prints a Dockerfile's.
//!
//! How BuildKit carries the detail (`util/grpcerrors/grpcerrors.go` `withDetails`,
//! `solver/errdefs/vertex.go`, `source.go`): the message `errdefs.Source { pb.SourceInfo
//! info = 1; repeated pb.Range ranges = 2; }` is registered with typeurl as
//! `github.com/moby/buildkit/errdefs.Source+json` and encoded with Go's `encoding/json`,
//! not as protobuf. The gateway decodes `Return.error` with `grpcerrors.FromGRPC`, keeps
//! the source through the solve, and the client (`Source.Print`) shows the file name, the
//! line and the lines around it. The `+json` type URL and the lower-case JSON field names
//! were checked against dockerd 26.1.5 (BuildKit v0.13.2), so no protobuf schema is needed
//! for the detail.

use base64::Engine as _;

use crate::proto::google::rpc::Status as RpcStatus;
use crate::spec::{Span, SpecError};

/// The type URL of BuildKit's `errdefs.Source` error detail.
pub const SOURCE_DETAIL_TYPE_URL: &str = "github.com/moby/buildkit/errdefs.Source+json";

/// gRPC `Unknown`, what BuildKit uses for errors that name no code. Any other code is
/// printed as a prefix once per gRPC hop (`InvalidArgument: InvalidArgument: …` through the
/// gateway, the `# syntax=` hop and the Control API), so every status uses this one.
pub const UNKNOWN: i32 = 2;

/// A status with `message` (and the hint as a `hint:` line), code Unknown.
pub fn plain(message: &str, hint: Option<&str>) -> RpcStatus {
    RpcStatus {
        code: UNKNOWN,
        message: with_hint(message, hint),
        details: Vec::new(),
    }
}

fn with_hint(message: &str, hint: Option<&str>) -> String {
    match hint {
        Some(h) if !h.is_empty() => format!("{message}\nhint: {h}"),
        _ => message.to_string(),
    }
}

/// The `errdefs.Source` JSON for the span of `e` in `text`: lines are 1-based, characters
/// 0-based, as the Dockerfile frontend writes them.
pub fn source_detail_json(e: &SpecError, text: &str) -> serde_json::Value {
    serde_json::json!({
        "info": {
            "filename": e.file,
            "data": base64::engine::general_purpose::STANDARD.encode(text.as_bytes()),
            "language": "toml",
        },
        "ranges": [range_json(e.span)],
    })
}

/// A spec span as BuildKit's `pb.Range` JSON (lines 1-based, characters 0-based), the end
/// never before the start. Shared by `errdefs.Source` and the subrequest answers.
pub fn range_json(span: Span) -> serde_json::Value {
    let pos =
        |line: u32, col: u32| serde_json::json!({"line": line, "character": col.saturating_sub(1)});
    let end_line = span.end_line.max(span.line);
    let end_col = if end_line == span.line {
        span.end_col.max(span.col)
    } else {
        span.end_col
    };
    serde_json::json!({"start": pos(span.line, span.col), "end": pos(end_line, end_col)})
}

/// A located spec error: the message (`torchkit.toml:3:1: …`) and hint, plus the
/// `errdefs.Source` detail pointing at the line in `text` (the spec as read).
pub fn spec_error(e: &SpecError, text: &str) -> RpcStatus {
    let value = serde_json::to_vec(&source_detail_json(e, text)).unwrap_or_default();
    RpcStatus {
        code: UNKNOWN,
        message: with_hint(&e.to_string(), e.help.as_deref()),
        details: vec![prost_types::Any {
            type_url: SOURCE_DETAIL_TYPE_URL.to_string(),
            value,
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_errors_carry_the_source_as_buildkit_json() {
        let text = "# syntax=x\n[torch]\nversoin = \"2.8.0\"\n";
        let e = crate::spec::parse(text, "torchkit.toml").unwrap_err();
        let st = spec_error(&e, text);
        assert_eq!(st.code, 2);
        assert!(
            st.message
                .starts_with("torchkit.toml:3:1: unknown key `versoin`"),
            "{}",
            st.message
        );
        assert!(
            st.message.contains("\nhint: did you mean `version`?"),
            "{}",
            st.message
        );
        assert_eq!(st.details.len(), 1);
        assert_eq!(st.details[0].type_url, SOURCE_DETAIL_TYPE_URL);
        let v: serde_json::Value = serde_json::from_slice(&st.details[0].value).unwrap();
        assert_eq!(v["info"]["filename"], "torchkit.toml");
        assert_eq!(v["info"]["language"], "toml");
        let data = base64::engine::general_purpose::STANDARD
            .decode(v["info"]["data"].as_str().unwrap())
            .unwrap();
        assert_eq!(data, text.as_bytes());
        assert_eq!(v["ranges"][0]["start"]["line"], 3);
        assert_eq!(v["ranges"][0]["start"]["character"], 0);
        assert_eq!(v["ranges"][0]["end"]["line"], 3);
    }

    #[test]
    fn plain_errors_keep_the_hint() {
        let st = plain("no", Some("do this"));
        assert_eq!(st.message, "no\nhint: do this");
        assert!(st.details.is_empty());
        assert_eq!(plain("no", None).message, "no");
    }
}
