//! Vertex AI Pipelines: the `PipelineJob` REST body for a compiled spec, and submitting it.
//!
//! The body is `{displayName, pipelineSpec, runtimeConfig: {gcsOutputDirectory, parameterValues},
//! labels}`; it is POSTed to
//! `https://{region}-aiplatform.googleapis.com/v1/projects/{project}/locations/{region}/pipelineJobs?pipelineJobId={id}`
//! with a bearer token. [`SubmitRequest`] is built (and unit-tested) separately from sending it.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::graph::Pipeline;
use crate::spec::{SpecError, err};

/// What a PipelineJob needs besides the spec.
#[derive(Clone, Debug, PartialEq)]
pub struct JobConfig {
    /// Pipeline root, e.g. `gs://bucket/pipeline-root`.
    pub gcs_output_directory: String,
    /// Values for pipeline parameters (others keep their defaults).
    pub parameter_values: BTreeMap<String, Value>,
    pub display_name: Option<String>,
    pub labels: BTreeMap<String, String>,
}

/// The PipelineJob REST body.
pub fn pipeline_job(p: &Pipeline, spec: Value, cfg: &JobConfig) -> Result<Value, Vec<SpecError>> {
    if !cfg.gcs_output_directory.starts_with("gs://") {
        return Err(vec![err("gcs_output_directory", format!("{:?} must be a gs:// URI", cfg.gcs_output_directory))]);
    }
    let values = p.parameter_values(&cfg.parameter_values)?;
    let mut body = json!({
        "displayName": cfg.display_name.clone().unwrap_or_else(|| p.spec.name.clone()),
        "pipelineSpec": spec,
        "runtimeConfig": {"gcsOutputDirectory": cfg.gcs_output_directory, "parameterValues": values},
    });
    if !cfg.labels.is_empty() {
        body["labels"] = json!(cfg.labels);
    }
    Ok(body)
}

/// Where and how to submit.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub project: String,
    pub region: String,
    /// `^[a-z][-a-z0-9]{0,127}$`; derived from the pipeline name and a timestamp when absent.
    pub job_id: Option<String>,
}

/// A fully built submission, before it is sent.
#[derive(Clone, Debug, PartialEq)]
pub struct SubmitRequest {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

fn valid_job_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && id.len() <= 128
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Builds the request: URL from project/region/job id, bearer token header, JSON body.
pub fn submit_request(
    target: &Target,
    token: &str,
    body: Value,
    pipeline_name: &str,
    now: &str,
) -> Result<SubmitRequest, String> {
    let bad = |what: &str, v: &str| format!("invalid {what} {v:?}");
    if target.project.is_empty() || !target.project.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(bad("project", &target.project));
    }
    if target.region.is_empty()
        || !target.region.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(bad("region", &target.region));
    }
    if token.trim().is_empty() {
        return Err("empty bearer token".into());
    }
    let id = match &target.job_id {
        Some(id) => id.clone(),
        None => {
            let stamp: String = now.chars().filter(char::is_ascii_digit).take(14).collect();
            format!("{}-{stamp}", crate::graph::sanitize(pipeline_name))
        }
    };
    if !valid_job_id(&id) {
        return Err(bad("job id (expected ^[a-z][-a-z0-9]{0,127}$)", &id));
    }
    let url = format!(
        "https://{r}-aiplatform.googleapis.com/v1/projects/{p}/locations/{r}/pipelineJobs?pipelineJobId={id}",
        r = target.region,
        p = target.project
    );
    Ok(SubmitRequest {
        url,
        headers: vec![
            ("Authorization".into(), format!("Bearer {}", token.trim())),
            ("Content-Type".into(), "application/json; charset=utf-8".into()),
        ],
        body,
    })
}

/// Sends a built request; returns the response body (the created PipelineJob).
pub async fn send(req: &SubmitRequest) -> anyhow::Result<Value> {
    let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(60)).build()?;
    let mut r = client.post(&req.url);
    for (k, v) in &req.headers {
        r = r.header(k, v);
    }
    let resp = r.body(serde_json::to_vec(&req.body)?).send().await?;
    let status = resp.status();
    let text = resp.text().await?;
    if !status.is_success() {
        anyhow::bail!("Vertex AI answered {status}: {text}");
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
}
