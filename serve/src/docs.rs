//! The OpenAPI 3.1 document (`/openapi.json`) and a self-contained docs page (`/docs`, no
//! scripts or CDN: it works on an air-gapped plant network).
//!
//! The document is written here, next to the handlers, and kept honest by tests: every route of
//! the router is in it, and every request example in it is accepted by its endpoint.

use axum::Json;
use axum::extract::State;
use axum::response::Html;
use pm_core::contract::Contract;
use serde_json::{Value, json};

use crate::state::AppState;
use pm_core::html::escape as esc;

fn reading_schema(c: &Contract, with_machine: bool) -> Value {
    let mut props = serde_json::Map::new();
    let mut required = vec![json!("datetime")];
    if with_machine {
        props.insert(
            "machineID".into(),
            json!({ "type": "integer", "minimum": 0, "description": "Machine id (also accepted as machine_id)." }),
        );
    }
    props.insert(
        "datetime".into(),
        json!({ "type": "string", "examples": ["2015-06-01 12:00:00"], "description": "Time of the reading: 'YYYY-MM-DD HH:MM:SS' (a 'T' and trailing 'Z' are accepted) or 'M/D/YYYY H:MM:SS AM'." }),
    );
    for s in &c.sensors {
        props.insert(s.clone(), json!({ "type": "number", "description": format!("{s}: finite, within the server's physical bounds (see /model/info).") }));
        required.push(json!(s));
    }
    json!({ "type": "object", "properties": props, "required": required, "additionalProperties": false })
}

fn event_schema(key: &str, names: &[String], with_machine: bool) -> Value {
    let mut props = serde_json::Map::new();
    if with_machine {
        props.insert("machineID".into(), json!({ "type": "integer", "minimum": 0 }));
    }
    props.insert("datetime".into(), json!({ "type": "string" }));
    props.insert(key.into(), json!({ "type": "string", "enum": names }));
    json!({ "type": "object", "properties": props, "required": ["datetime", key], "additionalProperties": false })
}

fn example_reading(c: &Contract, machine: Option<u32>, hour: u32) -> Value {
    let mut m = serde_json::Map::new();
    if let Some(id) = machine {
        m.insert("machineID".into(), json!(id));
    }
    m.insert("datetime".into(), json!(format!("2015-06-01 {hour:02}:00:00")));
    let typical = [170.0, 446.0, 100.0, 40.0];
    for (i, s) in c.sensors.iter().enumerate() {
        m.insert(s.clone(), json!(typical.get(i).copied().unwrap_or(1.0) + f64::from(hour % 3)));
    }
    Value::Object(m)
}

/// The request examples of the document: `(method, path, body)`. The telemetry example comes
/// first so that the stateful examples after it find their machine.
pub fn examples(c: &Contract, model_name: &str) -> Vec<(&'static str, String, Value)> {
    let model = c.models.first().cloned().unwrap_or_default();
    let err = c.error_types.first().cloned().unwrap_or_default();
    let comp = c.components.first().cloned().unwrap_or_default();
    let telemetry = json!({
        "machines": [{ "machineID": 1, "model": model, "age": 18 }],
        "maint": [{ "machineID": 1, "datetime": "2015-05-20 06:00:00", "comp": comp }],
        "errors": [{ "machineID": 1, "datetime": "2015-06-01 10:00:00", "errorID": err }],
        "readings": (8..12).map(|h| example_reading(c, Some(1), h)).collect::<Vec<_>>(),
    });
    let mut seed_shape = example_reading(c, Some(1), 12);
    seed_shape["return_features"] = json!(false);
    let window = json!({
        "machineID": 2,
        "history": {
            "machine": { "model": model, "age": 7 },
            "readings": (0..4).map(|h| example_reading(c, None, h)).collect::<Vec<_>>(),
            "errors": [{ "datetime": "2015-06-01 02:00:00", "errorID": err }],
            "maint": [{ "datetime": "2015-05-01 06:00:00", "comp": comp }],
        }
    });
    vec![
        ("POST", "/telemetry".into(), telemetry),
        ("POST", "/predict".into(), json!({ "machineID": 1 })),
        ("POST", "/predict".into(), seed_shape),
        ("POST", "/predict".into(), window.clone()),
        ("POST", "/predict/batch".into(), json!({ "predictions": [{ "machineID": 1 }, window.clone()] })),
        ("POST", format!("/v1/models/{model_name}:predict"), json!({ "instances": [{ "machineID": 1 }] })),
        (
            "POST",
            format!("/v2/models/{model_name}/infer"),
            json!({ "id": "1", "inputs": [{ "name": "machine_id", "datatype": "INT64", "shape": [1], "data": [1] }] }),
        ),
    ]
}

/// The OpenAPI 3.1 document, for the served model's data contract (the default contract before
/// a model is loaded).
pub fn openapi(st: &AppState) -> Value {
    let model = st.slot.get();
    let contract = model.as_ref().map_or_else(Contract::azure_pdm, |m| m.bundle.feature_spec.contract.clone());
    let c = &contract;
    let name = &st.cfg.model_name;
    let ex = examples(c, name);
    let example_for = |method: &str, path: &str| -> Value {
        let found: Vec<&Value> = ex.iter().filter(|(m, p, _)| *m == method && p == path).map(|(_, _, b)| b).collect();
        let mut out = serde_json::Map::new();
        for (i, b) in found.into_iter().enumerate() {
            out.insert(format!("example{}", i + 1), json!({ "value": b }));
        }
        Value::Object(out)
    };
    let r = |s: &str| json!({ "$ref": format!("#/components/schemas/{s}") });
    let json_body = |schema: Value, examples: Value| json!({ "required": true, "content": { "application/json": { "schema": schema, "examples": examples } } });
    let ok = |desc: &str, schema: Value| json!({ "description": desc, "content": { "application/json": { "schema": schema } } });
    let errors = json!({
        "400": { "description": "Body is not JSON.", "content": { "application/json": { "schema": r("Error") } } },
        "404": { "description": "Unknown machine (no telemetry, or not described).", "content": { "application/json": { "schema": r("Error") } } },
        "408": { "description": "Request timed out.", "content": { "application/json": { "schema": r("Error") } } },
        "413": { "description": "Body or batch over the limit.", "content": { "application/json": { "schema": r("Error") } } },
        "415": { "description": "Not application/json, or a Content-Encoding other than gzip or deflate.", "content": { "application/json": { "schema": r("Error") } } },
        "422": { "description": "A value is invalid (the field is named).", "content": { "application/json": { "schema": r("Error") } } },
        "503": { "description": "No model loaded, or overloaded (Retry-After).", "content": { "application/json": { "schema": r("Error") } } },
    });
    let with_errors = |mut responses: Value| {
        if let (Some(m), Some(e)) = (responses.as_object_mut(), errors.as_object()) {
            for (k, v) in e {
                m.insert(k.clone(), v.clone());
            }
        }
        responses
    };
    let plain_get = |summary: &str, desc: &str| json!({ "get": { "summary": summary, "responses": { "200": { "description": desc } } } });
    let mut paths = serde_json::Map::new();
    paths.insert("/".into(), plain_get("Service description and endpoints", "Service, version, model, endpoints."));
    paths.insert("/health".into(), json!({ "get": { "summary": "Liveness (always 200 while the process answers); status ok | degraded | no_model", "responses": { "200": ok("Health", r("Health")) } } }));
    paths.insert("/ready".into(), json!({ "get": { "summary": "Readiness: 200 when a model is loaded, 503 otherwise", "responses": { "200": { "description": "Ready" }, "503": { "description": "No model", "content": { "application/json": { "schema": r("Error") } } } } } }));
    paths.insert("/predict".into(), json!({ "post": {
        "summary": "Predict one machine: from its buffered state, from a reading appended to it, or from a history window in the request. A body with `instances` is answered as a Vertex AI request.",
        "requestBody": json_body(r("PredictRequest"), example_for("POST", "/predict")),
        "responses": with_errors(json!({ "200": ok("The prediction", r("Prediction")), "409": { "description": "A different reading already exists at that time.", "content": { "application/json": { "schema": r("Error") } } } })),
    } }));
    paths.insert("/predict/batch".into(), json!({ "post": {
        "summary": format!("Predict up to {} items (--max-batch); every item is answered, in order, with its prediction or its error", st.cfg.max_batch),
        "requestBody": json_body(r("BatchRequest"), example_for("POST", "/predict/batch")),
        "responses": with_errors(json!({ "200": ok("One answer per item", r("BatchAnswer")) })),
    } }));
    paths.insert("/telemetry".into(), json!({ "post": {
        "summary": "Add readings, error and maintenance events, and machine descriptions to the fleet's buffered state (any order; retries are idempotent)",
        "requestBody": json_body(r("Telemetry"), example_for("POST", "/telemetry")),
        "responses": with_errors(json!({ "200": ok("What was applied", r("TelemetryAnswer")) })),
    } }));
    paths.insert(
        "/model/info".into(),
        plain_get(
            "The served model: version, hash, threshold, features, validation metrics, loader status",
            "Model information.",
        ),
    );
    paths.insert("/metrics".into(), json!({ "get": { "summary": "Prometheus metrics (text format 0.0.4)", "responses": { "200": { "description": "Metrics", "content": { "text/plain": {} } } } } }));
    paths.insert("/metrics/summary".into(), plain_get("A JSON summary of the metrics (for dashboards)", "Summary."));
    paths.insert(
        "/dashboard".into(),
        plain_get("Live dashboard (HTML): request rate, latency, risk levels, model version, drift", "An HTML page."),
    );
    paths.insert("/openapi.json".into(), plain_get("This document", "OpenAPI 3.1."));
    paths.insert("/docs".into(), plain_get("This document as a page", "HTML."));
    let name_param = json!({ "name": "name", "in": "path", "required": true, "schema": { "type": "string" } });
    let v1 = format!("/v1/models/{name}:predict");
    paths.insert(v1.clone(), json!({ "post": {
        "summary": "Vertex AI / KServe V1: {\"instances\": [...]} → {\"predictions\": [...]} (instances are /predict requests)",
        "requestBody": json_body(r("VertexRequest"), example_for("POST", &v1)),
        "responses": with_errors(json!({ "200": ok("One prediction (or error) per instance", r("VertexAnswer")) })),
    } }));
    paths.insert("/v1/models".into(), plain_get("KServe V1: the served models", "{\"models\": [\"pm-failure\"]}"));
    paths.insert(
        "/v1/models/{name}".into(),
        json!({ "get": { "summary": "KServe V1 model readiness: {\"name\", \"ready\"} (503 without a model)", "parameters": [name_param], "responses": { "200": { "description": "Ready" }, "404": { "description": "Unknown model" }, "503": { "description": "No model loaded" } } } }),
    );
    for (route, what) in [(&st.cfg.vertex_predict_route, "predict"), (&st.cfg.vertex_health_route, "health")] {
        if let Some(p) = route {
            let op = if what == "predict" {
                json!({ "post": { "summary": "Vertex AI predict route (AIP_PREDICT_ROUTE)", "requestBody": json_body(r("VertexRequest"), json!({})), "responses": with_errors(json!({ "200": ok("Predictions", r("VertexAnswer")) })) } })
            } else {
                json!({ "get": { "summary": "Vertex AI health route (AIP_HEALTH_ROUTE): readiness", "responses": { "200": { "description": "Ready" }, "503": { "description": "Not ready" } } } })
            };
            paths.insert(p.clone(), op);
        }
    }
    paths.insert("/v2".into(), plain_get("OIP v2 server metadata", "Server metadata."));
    paths.insert("/v2/health/live".into(), plain_get("OIP v2 liveness", "{\"live\": true}"));
    paths.insert("/v2/health/ready".into(), plain_get("OIP v2 readiness (503 without a model)", "{\"ready\": true}"));
    let version_param = json!({ "name": "version", "in": "path", "required": true, "schema": { "type": "string" } });
    for (suffix, summary) in
        [("", "OIP v2 model metadata: inputs, outputs, feature names"), ("/ready", "OIP v2 model readiness")]
    {
        paths.insert(format!("/v2/models/{{name}}{suffix}"), json!({ "get": { "summary": summary, "parameters": [name_param], "responses": { "200": { "description": "OK" }, "404": { "description": "Unknown model" } } } }));
        paths.insert(format!("/v2/models/{{name}}/versions/{{version}}{suffix}"), json!({ "get": { "summary": summary, "parameters": [name_param, version_param], "responses": { "200": { "description": "OK" }, "404": { "description": "Unknown model or version" } } } }));
    }
    // The binary tensor data extension: the JSON, then the tensors' bytes.
    let binary = json!({
        "schema": { "type": "string", "contentMediaType": "application/octet-stream",
        "description": "The JSON (Inference-Header-Content-Length bytes), then each binary tensor's bytes in order: little-endian numbers, one byte per BOOL, BYTES as a 4-byte length and the bytes." },
    });
    let length_header = json!({ "name": "Inference-Header-Content-Length", "in": "header", "required": false, "description": "Binary tensor data extension: the length of the JSON that starts the body.", "schema": { "type": "integer", "minimum": 0 } });
    let infer_op = |params: Value, examples: Value| {
        let mut params = params;
        if let Some(p) = params.as_array_mut() {
            p.push(length_header.clone());
        }
        let mut body = json_body(r("InferRequest"), examples);
        body["content"]["application/octet-stream"] = binary.clone();
        let mut answer = ok("Inference response", r("InferResponse"));
        answer["content"]["application/octet-stream"] = binary.clone();
        answer["headers"] = json!({ "Inference-Header-Content-Length": { "description": "With binary outputs: the length of the JSON that starts the body.", "schema": { "type": "integer" } } });
        json!({ "post": {
        "summary": "OIP v2 inference: input `machine_id` (INT64 [N]: score buffered states) or `features` (FP32/FP64 [N, F]); outputs failure_probability, failure_prediction, risk_level (and component_probabilities); JSON tensors, or binary ones after the JSON (Inference-Header-Content-Length, the binary tensor data extension)",
        "parameters": params,
        "requestBody": body,
        "responses": { "200": answer, "400": { "description": "Bad tensor: {\"error\": \"message\"}" }, "404": { "description": "Unknown model, version or machine" } },
    } })
    };
    paths.insert(
        "/v2/models/{name}/infer".into(),
        infer_op(json!([name_param]), example_for("POST", &format!("/v2/models/{name}/infer"))),
    );
    paths.insert(
        "/v2/models/{name}/versions/{version}/infer".into(),
        infer_op(json!([name_param, version_param]), json!({})),
    );

    let schemas = json!({
        "Reading": reading_schema(c, true),
        "HistoryReading": reading_schema(c, false),
        "ErrorEvent": event_schema("errorID", &c.error_types, true),
        "MaintEvent": event_schema("comp", &c.components, true),
        "Machine": { "type": "object", "properties": { "machineID": { "type": "integer" }, "model": { "type": "string", "enum": c.models }, "age": { "type": "number", "minimum": 0 } }, "required": ["model", "age"], "additionalProperties": false },
        "Telemetry": { "type": "object", "additionalProperties": false, "properties": {
            "readings": { "type": "array", "items": r("Reading") }, "errors": { "type": "array", "items": r("ErrorEvent") },
            "maint": { "type": "array", "items": r("MaintEvent") }, "machines": { "type": "array", "items": r("Machine") } } },
        "TelemetryAnswer": { "type": "object", "properties": {
            "accepted": r("Counts"), "duplicates": r("Counts"), "fleet_machines": { "type": "integer" },
            "rejected": { "type": "array", "items": { "type": "object", "properties": { "item": { "type": "string" }, "machine": { "type": "integer" }, "message": { "type": "string" } } } } } },
        "Counts": { "type": "object", "properties": { "readings": { "type": "integer" }, "errors": { "type": "integer" }, "maint": { "type": "integer" }, "machines": { "type": "integer" } } },
        "History": { "type": "object", "additionalProperties": false, "required": ["readings"], "properties": {
            "readings": { "type": "array", "minItems": 1, "items": r("HistoryReading") },
            "errors": { "type": "array", "items": event_schema("errorID", &c.error_types, false) },
            "maint": { "type": "array", "items": event_schema("comp", &c.components, false) },
            "machine": r("Machine") } },
        "PredictRequest": {
            "description": "Exactly one machine. With only machineID: its buffered state. With datetime and every sensor: that reading is appended to its state first (the Python service's request, plus the time). With history: that window, the state untouched.",
            "type": "object",
            "properties": { "machineID": { "type": "integer", "minimum": 0 }, "history": r("History"), "return_features": { "type": "boolean" }, "datetime": { "type": "string" } },
            "required": ["machineID"] },
        "Prediction": { "type": "object", "properties": {
            "machineID": { "type": "integer" }, "datetime": { "type": "string", "description": "Time of the scored reading (RFC 3339)." },
            "failure_probability": { "type": "number" }, "failure_prediction": { "type": "boolean", "description": "failure_probability >= threshold" },
            "threshold": { "type": "number" }, "risk_level": { "type": "string", "enum": ["LOW", "MEDIUM", "HIGH"] },
            "component_probabilities": { "type": "object", "additionalProperties": { "type": "number" } },
            "model_name": { "type": "string" }, "model_version": { "type": "string" }, "mode": { "type": "string", "enum": ["state", "window"] },
            "history_hours": { "type": "number" }, "prediction_timestamp": { "type": "string", "format": "date-time" },
            "warnings": { "type": "array", "items": { "type": "string" } },
            "features": { "type": "object", "additionalProperties": { "type": ["number", "null"] } } } },
        "BatchRequest": { "type": "object", "properties": { "predictions": { "type": "array", "maxItems": st.cfg.max_batch, "items": r("PredictRequest") }, "instances": { "type": "array", "maxItems": st.cfg.max_batch, "items": r("PredictRequest") } } },
        "BatchAnswer": { "type": "object", "properties": {
            "predictions": { "type": "array", "items": { "oneOf": [r("Prediction"), r("ItemError")] } },
            "total_predictions": { "type": "integer" }, "failed": { "type": "integer" }, "model_version": { "type": "string" }, "processing_time_seconds": { "type": "number" } } },
        "ItemError": { "type": "object", "properties": { "index": { "type": "integer" }, "error": r("ErrorBody") } },
        "VertexRequest": { "type": "object", "required": ["instances"], "properties": { "instances": { "type": "array", "minItems": 1, "items": r("PredictRequest") }, "parameters": { "type": "object" } } },
        "VertexAnswer": { "type": "object", "properties": { "predictions": { "type": "array", "items": { "oneOf": [r("Prediction"), r("ItemError")] } } } },
        "ErrorBody": { "type": "object", "required": ["code", "message"], "properties": { "code": { "type": "string" }, "message": { "type": "string" }, "field": { "type": "string" } } },
        "Error": { "type": "object", "required": ["error"], "properties": { "error": r("ErrorBody") } },
        "Health": { "type": "object", "properties": { "status": { "type": "string", "enum": ["ok", "degraded", "no_model"] }, "model_loaded": { "type": "boolean" }, "model_version": { "type": ["string", "null"] }, "uptime_seconds": { "type": "number" } } },
        "Tensor": { "type": "object", "required": ["name", "datatype", "shape", "data"], "properties": { "name": { "type": "string" }, "datatype": { "type": "string" }, "shape": { "type": "array", "items": { "type": "integer" } }, "data": { "type": "array" }, "parameters": { "type": "object" } } },
        "InferRequest": { "type": "object", "required": ["inputs"], "properties": { "id": { "type": "string" }, "parameters": { "type": "object" }, "inputs": { "type": "array", "items": r("Tensor") }, "outputs": { "type": "array", "items": { "type": "object", "properties": { "name": { "type": "string" } } } } } },
        "InferResponse": { "type": "object", "properties": { "model_name": { "type": "string" }, "model_version": { "type": "string" }, "id": { "type": "string" }, "outputs": { "type": "array", "items": r("Tensor") } } },
    });
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "pm-serve",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Predictive maintenance predictions with features computed by the same code as in training. Errors everywhere are {\"error\": {\"code\", \"message\", \"field\"}} (OIP v2 routes: {\"error\": \"message\"} as that protocol specifies).",
        },
        "paths": paths,
        "components": { "schemas": schemas },
    })
}

pub async fn openapi_json(State(st): State<AppState>) -> Json<Value> {
    Json(openapi(&st))
}

/// The document as one HTML page: every operation, its summary and request example, and the
/// schemas.
pub async fn docs_page(State(st): State<AppState>) -> Html<String> {
    let doc = openapi(&st);
    let mut h = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>pm-serve API</title><style>\
         body{font:15px/1.45 system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em;color:#1d2330}\
         h1{margin-bottom:.2em}.op{border:1px solid #d5dae3;border-radius:6px;margin:1em 0;padding:.6em 1em}\
         .m{font-weight:700;display:inline-block;min-width:4em}.get{color:#17653a}.post{color:#1b4fa0}\
         code,pre{font:13px ui-monospace,monospace;background:#f3f5f8}pre{padding:.6em;overflow:auto}\
         details{margin:.3em 0}</style></head><body>",
    );
    h.push_str(&format!(
        "<h1>pm-serve API</h1><p>{}</p><p>Machine-readable: <a href=\"/openapi.json\">/openapi.json</a> (OpenAPI {}).</p>",
        esc(doc["info"]["description"].as_str().unwrap_or("")),
        esc(doc["openapi"].as_str().unwrap_or(""))
    ));
    if let Some(paths) = doc["paths"].as_object() {
        for (path, ops) in paths {
            let Some(ops) = ops.as_object() else { continue };
            for (method, op) in ops {
                h.push_str(&format!(
                    "<div class=\"op\" id=\"{}\"><span class=\"m {method}\">{}</span> <code>{}</code><p>{}</p>",
                    esc(&format!("{method}-{path}")),
                    method.to_uppercase(),
                    esc(path),
                    esc(op["summary"].as_str().unwrap_or(""))
                ));
                if let Some(exs) = op["requestBody"]["content"]["application/json"]["examples"].as_object() {
                    for (name, ex) in exs {
                        let body = serde_json::to_string_pretty(&ex["value"]).unwrap_or_default();
                        h.push_str(&format!(
                            "<details><summary>{}</summary><pre>curl -s -X {} localhost:8080{} -H 'Content-Type: application/json' -d '{}'</pre></details>",
                            esc(name),
                            method.to_uppercase(),
                            esc(path),
                            esc(&body)
                        ));
                    }
                }
                h.push_str("</div>");
            }
        }
    }
    h.push_str("<h2>Schemas</h2>");
    if let Some(schemas) = doc["components"]["schemas"].as_object() {
        for (name, s) in schemas {
            h.push_str(&format!(
                "<details id=\"schema-{}\"><summary><code>{}</code></summary><pre>{}</pre></details>",
                esc(name),
                esc(name),
                esc(&serde_json::to_string_pretty(s).unwrap_or_default())
            ));
        }
    }
    h.push_str("</body></html>");
    Html(h)
}
