//! The OCI image config exported with the result (`containerimage.config`): the base
//! image's config, with torchkit's env, user, workdir, labels, entrypoint and history.
//! Deterministic: the base's key order is kept, torchkit's additions are sorted.

use serde_json::{json, Map, Value};

use super::{CompileError, ImagePlan, Plan, Run};

/// The image config JSON of a plan that builds `image` (its [`super::Output::Image`]).
pub fn image_config(plan: &Plan, image: &ImagePlan) -> Result<Vec<u8>, CompileError> {
    let mut root = match &image.base_config {
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(CompileError::BaseConfig("not a JSON object".into())),
        None => Map::new(),
    };
    root.insert("architecture".into(), json!("amd64"));
    root.insert("os".into(), json!("linux"));
    match &image.created {
        Some(t) => {
            root.insert("created".into(), json!(t));
        }
        None => {
            root.remove("created");
        }
    }
    let mut config = match root.remove("config") {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };

    // Env: the base's, in order, with torchkit's values replacing or appended (sorted).
    let mut env: Vec<(String, String)> = super::steps::config_env(image.base_config.as_ref());
    for (k, v) in &image.env {
        match env.iter_mut().find(|(ek, _)| ek == k) {
            Some(slot) => slot.1 = v.clone(),
            None => env.push((k.clone(), v.clone())),
        }
    }
    config.insert(
        "Env".into(),
        Value::Array(
            env.into_iter()
                .map(|(k, v)| json!(format!("{k}={v}")))
                .collect(),
        ),
    );
    config.insert("User".into(), json!(image.user));
    config.insert("WorkingDir".into(), json!(image.workdir));
    let mut labels = match config.remove("Labels") {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    for (k, v) in &image.labels {
        labels.insert(k.clone(), json!(v));
    }
    let mut sorted: Vec<(String, Value)> = labels.into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    config.insert("Labels".into(), Value::Object(sorted.into_iter().collect()));
    // ENTRYPOINT resets CMD, as in a Dockerfile.
    if let Some(ep) = &image.entrypoint {
        config.insert("Entrypoint".into(), json!(ep));
        config.insert(
            "Cmd".into(),
            image.cmd.as_ref().map_or(Value::Null, |c| json!(c)),
        );
    } else if let Some(cmd) = &image.cmd {
        config.insert("Cmd".into(), json!(cmd));
    }
    root.insert("config".into(), Value::Object(config));

    // History: one entry per layer torchkit adds, after the base's (only when the base's
    // history is known, so that the exporter can match entries to layers).
    if let Some(Value::Array(mut hist)) = root.remove("history") {
        for s in plan.steps.iter().filter(|s| !matches!(s.run, Run::Image)) {
            let mut h = Map::new();
            if let Some(t) = &image.created {
                h.insert("created".into(), json!(t));
            }
            h.insert("created_by".into(), json!(s.title));
            h.insert("comment".into(), json!("torchkit.v0"));
            hist.push(Value::Object(h));
        }
        root.insert("history".into(), Value::Array(hist));
    }
    serde_json::to_vec(&Value::Object(root)).map_err(|e| CompileError::BaseConfig(e.to_string()))
}

/// Seconds since the Unix epoch as an RFC 3339 UTC timestamp (proleptic Gregorian).
pub(crate) fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_known_values() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
