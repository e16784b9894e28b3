//! The OpenAPI 3.1 document (`/openapi.json`) and a self-contained docs page (`/docs`, no
//! scripts or CDN: it works on an air-gapped plant network).
//!
//! The document is written here, next to the handlers, and kept honest by tests: every route of
//! the router is in it, and every request example in it is accepted by its endpoint.

use axum::Json;
use axum::extract::State;
use axum::response::Html;
use pm_core::data::contract::Contract;
use serde_json::{Value, json};

use crate::input::Vocab;
use crate::state::AppState;
use pm_core::html::escape as esc;

/// The datetime forms every route reads: `YYYY-MM-DD HH:MM:SS` (a `T` for the space and a
/// trailing `Z` are accepted) or `M/D/YYYY H:MM:SS AM|PM`.
const DATETIME_PATTERN: &str = r"^([0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])[ T]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z?|([1-9]|1[0-2])/([1-9]|1[0-9]|2[0-8])/[0-9]{4} ([1-9]|1[0-2]):[0-5][0-9]:[0-5][0-9] (AM|PM))$";

fn datetime_schema() -> Value {
    json!({ "type": "string", "pattern": DATETIME_PATTERN, "examples": ["2015-06-01 12:00:00"], "description": "Time of the reading or event: 'YYYY-MM-DD HH:MM:SS' (a 'T' and trailing 'Z' are accepted) or 'M/D/YYYY H:MM:SS AM'. Any valid date is read; the pattern shows the first 28 days of each month." })
}

fn machine_id_schema() -> Value {
    json!({ "type": "integer", "minimum": 0, "maximum": u32::MAX, "description": "Machine id (also accepted as machine_id)." })
}

/// Where a machine id goes in an item: required in `/telemetry` (each item says which machine it
/// is about); in a request's history an item may repeat the request's machine id, and only that
/// one, which a schema cannot say, so there it is left out of the schema.
#[derive(Clone, Copy, PartialEq)]
enum Machine {
    Required,
    InHistory,
}

fn with_machine(mut props: serde_json::Map<String, Value>, mut required: Vec<Value>, machine: Machine) -> Value {
    let mut s = json!({ "type": "object", "additionalProperties": false });
    match machine {
        Machine::Required => {
            props.insert("machineID".into(), machine_id_schema());
            required.insert(0, json!("machineID"));
        }
        Machine::InHistory => s["description"] = json!("May also repeat the request's machineID (that one only)."),
    }
    s["properties"] = Value::Object(props);
    s["required"] = json!(required);
    s
}

/// A sensor value: a number within the server's physical bounds for it, or missing (`null` or
/// absent), as an empty value of the data set is.
fn sensor_schema(name: &str, (lo, hi): (f64, f64)) -> Value {
    let mut s = json!({ "type": ["number", "null"], "description": format!("{name}: within the physical bounds of the model's data contract (see /model/info); null or absent when the sensor gave no value.") });
    if lo.is_finite() {
        s["minimum"] = json!(lo);
    }
    if hi.is_finite() {
        s["maximum"] = json!(hi);
    }
    s
}

fn sensor_props(v: &Vocab) -> serde_json::Map<String, Value> {
    v.sensors.iter().zip(&v.bounds).map(|(n, b)| (n.clone(), sensor_schema(n, *b))).collect()
}

fn reading_schema(v: &Vocab, machine: Machine) -> Value {
    let mut props = sensor_props(v);
    props.insert("datetime".into(), datetime_schema());
    with_machine(props, vec![json!("datetime")], machine)
}

fn event_schema(key: &str, names: &[String], machine: Machine) -> Value {
    let mut props = serde_json::Map::new();
    props.insert("datetime".into(), datetime_schema());
    props.insert(key.into(), json!({ "type": "string", "enum": names }));
    with_machine(props, vec![json!("datetime"), json!(key)], machine)
}

fn machine_schema(c: &Contract, (lo, hi): (f64, f64), machine: Machine) -> Value {
    let mut props = serde_json::Map::new();
    props.insert("model".into(), json!({ "type": "string", "enum": c.models }));
    props.insert(
        "age".into(),
        json!({ "type": "number", "minimum": lo, "maximum": hi, "description": "Age in years." }),
    );
    with_machine(props, vec![json!("model"), json!("age")], machine)
}

fn example_reading(c: &Contract, machine: Option<u32>, hour: u32) -> Value {
    let mut m = serde_json::Map::new();
    if let Some(id) = machine {
        m.insert("machineID".into(), json!(id));
    }
    m.insert("datetime".into(), json!(format!("2016-06-01 {hour:02}:00:00")));
    let typical = [170.0, 446.0, 100.0, 40.0];
    for (i, s) in c.sensors.iter().enumerate() {
        m.insert(s.name.clone(), json!(typical.get(i).copied().unwrap_or(1.0) + f64::from(hour % 3)));
    }
    Value::Object(m)
}

/// The machine of the document's stateful examples: one of the default fleet, so that on a
/// server primed with its data (`make serve`) they answer in any order; their times (June 2016)
/// come after that data's end.
pub const EXAMPLE_MACHINE: u32 = 1;

/// The request examples of the document: `(method, path, body)`. The telemetry example comes
/// first so that, on a server that holds nothing yet, the stateful examples after it find their
/// machine.
pub fn examples(c: &Contract, model_name: &str) -> Vec<(&'static str, String, Value)> {
    let model = c.models.first().cloned().unwrap_or_default();
    let err = c.error_types.first().cloned().unwrap_or_default();
    let comp = c.components.first().cloned().unwrap_or_default();
    let telemetry = json!({
        "machines": [{ "machineID": EXAMPLE_MACHINE, "model": model, "age": 18 }],
        "maint": [{ "machineID": EXAMPLE_MACHINE, "datetime": "2016-05-20 06:00:00", "comp": comp }],
        "errors": [{ "machineID": EXAMPLE_MACHINE, "datetime": "2016-06-01 10:00:00", "errorID": err }],
        "readings": (8..12).map(|h| example_reading(c, Some(EXAMPLE_MACHINE), h)).collect::<Vec<_>>(),
    });
    let mut seed_shape = example_reading(c, Some(EXAMPLE_MACHINE), 12);
    seed_shape["return_features"] = json!(false);
    let window = json!({
        "machineID": 2,
        "history": {
            "machine": { "model": model, "age": 7 },
            "readings": (0..4).map(|h| example_reading(c, None, h)).collect::<Vec<_>>(),
            "errors": [{ "datetime": "2016-06-01 02:00:00", "errorID": err }],
            "maint": [{ "datetime": "2016-05-01 06:00:00", "comp": comp }],
        }
    });
    vec![
        ("POST", "/telemetry".into(), telemetry),
        ("POST", "/predict".into(), json!({ "machineID": EXAMPLE_MACHINE })),
        ("POST", "/predict".into(), seed_shape),
        ("POST", "/predict".into(), window.clone()),
        ("POST", "/predict/batch".into(), json!({ "predictions": [{ "machineID": EXAMPLE_MACHINE }, window.clone()] })),
        (
            "POST",
            format!("/v1/models/{model_name}:predict"),
            json!({ "instances": [{ "machineID": EXAMPLE_MACHINE }] }),
        ),
        (
            "POST",
            format!("/v2/models/{model_name}/infer"),
            json!({ "id": "1", "inputs": [{ "name": "machine_id", "datatype": "INT64", "shape": [1], "data": [EXAMPLE_MACHINE] }] }),
        ),
    ]
}

/// The OpenAPI 3.1 document, for the served model's data contract and this server's bounds (the
/// default contract before a model is loaded). It says what the handlers do, down to the
/// mutually exclusive shapes of a request: a standard fuzzer (schemathesis, in `make test`)
/// checks the two against each other.
pub fn openapi(st: &AppState) -> Value {
    let model = st.slot.get();
    let vocab = match &model {
        Some(m) => m.vocab.clone(),
        None => Vocab::new(&Contract::azure_pdm(), &st.cfg.rules.bounds),
    };
    let contract = model.as_ref().map_or_else(Contract::azure_pdm, |m| m.bundle.feature_spec.contract.clone());
    let c = &contract;
    let name = &st.cfg.model_name;
    let max_batch = st.cfg.max_batch;
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
    let error =
        |desc: &str| json!({ "description": desc, "content": { "application/json": { "schema": r("Error") } } });
    let oip_error =
        |desc: &str| json!({ "description": desc, "content": { "application/json": { "schema": r("OipError") } } });
    // The refusals a route with a JSON body can answer, besides its own.
    let body_errors = [
        ("400", "The body is not JSON."),
        ("408", "The request timed out (--request-timeout-ms)."),
        ("413", "The body, or the batch, is over the limit (--body-limit-bytes, --max-batch)."),
        ("415", "Not application/json, or a Content-Encoding other than gzip or deflate."),
        ("422", "A value is invalid, a key appears twice, or an unknown field is sent (the field is named)."),
        ("503", "No model loaded, or overloaded (Retry-After)."),
    ];
    let with_errors = |mut responses: Value, extra: &[(&str, &str)]| {
        if let Some(m) = responses.as_object_mut() {
            for (code, desc) in body_errors.iter().chain(extra) {
                m.insert((*code).to_string(), error(desc));
            }
        }
        responses
    };
    let get = |summary: &str, responses: Value| json!({ "get": { "summary": summary, "responses": responses } });
    let json_get = |summary: &str, desc: &str| get(summary, json!({ "200": ok(desc, json!({ "type": "object" })) }));
    let page = |summary: &str, media: &str| {
        get(
            summary,
            json!({ "200": { "description": summary, "content": { media: { "schema": { "type": "string" } } } } }),
        )
    };
    let mut paths = serde_json::Map::new();
    paths.insert("/".into(), json_get("Service description and endpoints", "Service, version, model, endpoints."));
    paths.insert(
        "/health".into(),
        get(
            "Liveness (always 200 while the process answers); status ok | degraded | no_model",
            json!({ "200": ok("Health", r("Health")) }),
        ),
    );
    paths.insert("/ready".into(), get("Readiness: 200 when a model is loaded, 503 otherwise", json!({ "200": ok("Ready", json!({ "type": "object" })), "503": ok("No model", json!({ "type": "object" })) })));
    paths.insert("/predict".into(), json!({ "post": {
        "summary": "Predict one machine: from its buffered state, from a reading appended to it, or from a history window in the request. A body with `instances` is answered as a Vertex AI request.",
        "requestBody": json_body(r("PredictBody"), example_for("POST", "/predict")),
        "responses": with_errors(
            json!({ "200": ok("The prediction (a Vertex AI body: one per instance)", json!({ "oneOf": [r("Prediction"), r("VertexAnswer")] })) }),
            &[("404", "Unknown machine (no telemetry, or not described)."), ("409", "The reading conflicts with the machine's buffer: a different reading at that time, or older than the buffer.")],
        ),
    } }));
    paths.insert("/predict/batch".into(), json!({ "post": {
        "summary": format!("Predict up to {max_batch} items (--max-batch); every item is answered, in order, with its prediction or its error"),
        "requestBody": json_body(r("BatchRequest"), example_for("POST", "/predict/batch")),
        "responses": with_errors(json!({ "200": ok("One answer per item", r("BatchAnswer")) }), &[]),
    } }));
    paths.insert("/telemetry".into(), json!({ "post": {
        "summary": "Add readings, error and maintenance events, and machine descriptions to the fleet's buffered state (any order; retries are idempotent; items the buffers refuse are listed in `rejected`)",
        "requestBody": json_body(r("Telemetry"), example_for("POST", "/telemetry")),
        "responses": with_errors(
            json!({ "200": ok("What was applied (the items refused, each with its reason, in `rejected`)", r("TelemetryAnswer")) }),
            &[("409", "Every item was refused for a conflict with the buffers (a different reading at that time, or one older than the buffer); `rejected` lists them.")],
        ),
    } }));
    paths.insert(
        "/model/info".into(),
        get(
            "The served model: version, hash, threshold, features, validation metrics, loader status",
            json!({ "200": ok("Model information.", json!({ "type": "object" })), "503": error("No model loaded.") }),
        ),
    );
    paths.insert("/metrics".into(), page("Prometheus metrics (text format 0.0.4)", "text/plain"));
    paths.insert("/metrics/summary".into(), json_get("A JSON summary of the metrics (for dashboards)", "Summary."));
    paths.insert(
        "/dashboard".into(),
        page("Live dashboard (HTML): request rate, latency, risk levels, model version, drift", "text/html"),
    );
    paths.insert("/openapi.json".into(), json_get("This document", "OpenAPI 3.1."));
    paths.insert("/docs".into(), page("This document as a page", "text/html"));
    let name_param = json!({ "name": "name", "in": "path", "required": true, "schema": { "type": "string" } });
    let v1 = format!("/v1/models/{name}:predict");
    paths.insert(v1.clone(), json!({ "post": {
        "summary": "Vertex AI / KServe V1: {\"instances\": [...]} → {\"predictions\": [...]} (instances are /predict requests)",
        "requestBody": json_body(r("VertexRequest"), example_for("POST", &v1)),
        "responses": with_errors(json!({ "200": ok("One prediction (or error) per instance", r("VertexAnswer")) }), &[]),
    } }));
    paths.insert("/v1/models".into(), json_get("KServe V1: the served models", "{\"models\": [\"pm-failure\"]}"));
    paths.insert(
        "/v1/models/{name}".into(),
        json!({
            "get": { "summary": "KServe V1 model readiness: {\"name\", \"ready\"} (503 without a model)", "parameters": [name_param], "responses": { "200": ok("Ready", json!({ "type": "object" })), "404": oip_error("Unknown model"), "503": ok("No model loaded", json!({ "type": "object" })) } },
            "post": { "summary": format!("KServe V1 predict of another model (`<name>:predict`): this server serves only {v1}, so any other name is unknown (404)"), "parameters": [name_param], "responses": { "404": error("Unknown model, or no such route"), "503": error("No model loaded.") } },
        }),
    );
    for (route, what) in [(&st.cfg.vertex_predict_route, "predict"), (&st.cfg.vertex_health_route, "health")] {
        if let Some(p) = route {
            let op = if what == "predict" {
                json!({ "post": { "summary": "Vertex AI predict route (AIP_PREDICT_ROUTE)", "requestBody": json_body(r("VertexRequest"), json!({})), "responses": with_errors(json!({ "200": ok("Predictions", r("VertexAnswer")) }), &[]) } })
            } else {
                get(
                    "Vertex AI health route (AIP_HEALTH_ROUTE): readiness",
                    json!({ "200": ok("Ready", json!({ "type": "object" })), "503": ok("Not ready", json!({ "type": "object" })) }),
                )
            };
            paths.insert(p.clone(), op);
        }
    }
    paths.insert("/v2".into(), json_get("OIP v2 server metadata", "Server metadata."));
    paths.insert("/v2/health/live".into(), json_get("OIP v2 liveness", "{\"live\": true}"));
    paths.insert("/v2/health/ready".into(), get("OIP v2 readiness (503 without a model)", json!({ "200": ok("{\"ready\": true}", json!({ "type": "object" })), "503": ok("{\"ready\": false}", json!({ "type": "object" })) })));
    let version_param = json!({ "name": "version", "in": "path", "required": true, "schema": { "type": "string" } });
    for (suffix, summary) in
        [("", "OIP v2 model metadata: inputs, outputs, feature names"), ("/ready", "OIP v2 model readiness")]
    {
        let answers = json!({ "200": ok("OK", json!({ "type": "object" })), "404": oip_error("Unknown model or version"), "503": ok("No model loaded", json!({ "type": "object" })) });
        paths.insert(
            format!("/v2/models/{{name}}{suffix}"),
            json!({ "get": { "summary": summary, "parameters": [name_param], "responses": answers } }),
        );
        paths.insert(
            format!("/v2/models/{{name}}/versions/{{version}}{suffix}"),
            json!({ "get": { "summary": summary, "parameters": [name_param, version_param], "responses": answers } }),
        );
    }
    // The binary tensor data extension: the JSON, then the tensors' bytes.
    let binary = json!({
        "schema": { "type": "string", "contentMediaType": "application/octet-stream",
        "description": "With the header Inference-Header-Content-Length (required for this media type; without it the body is refused with 415): the JSON request (that many bytes), then each binary tensor's bytes in order: little-endian numbers, one byte per BOOL, BYTES as a 4-byte length and the bytes." },
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
        "responses": {
            "200": answer,
            "400": oip_error("Bad tensor, shape or binary data"),
            "404": oip_error("Unknown model, version or machine"),
            "408": oip_error("The request timed out"),
            "413": oip_error("The body or the batch is over the limit"),
            "415": oip_error("Another content type, octet-stream without Inference-Header-Content-Length, or an unsupported Content-Encoding"),
            "422": oip_error("A value is invalid, out of its bounds, or a key appears twice"),
            "503": oip_error("No model loaded, or overloaded"),
        },
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

    let bare = |props: Value, required: &[&str]| json!({ "type": "object", "properties": props, "required": required, "additionalProperties": false });
    let mut reading_request = sensor_props(&vocab);
    reading_request.insert("machineID".into(), machine_id_schema());
    reading_request.insert("datetime".into(), datetime_schema());
    reading_request.insert("return_features".into(), json!({ "type": "boolean" }));
    let reading_required = vec!["machineID", "datetime"];
    // A list's items are answered one by one: an item that is not a valid request gets its own
    // error, in its place in a 200 answer (as Vertex AI and the Python service answer), so the
    // request takes any values; each should be a PredictRequest.
    let item = json!({ "description": "A PredictRequest (see its schema); anything else is answered with its error in its place." });
    let list = |item: Value| json!({ "type": "array", "minItems": 1, "maxItems": max_batch, "items": item });
    let batch_list = json!({ "type": "array", "maxItems": max_batch, "items": item.clone() });
    let non_empty = |key: &str| json!({ "required": [key], "properties": { key: { "minItems": 1 } } });
    let schemas = json!({
        "Reading": reading_schema(&vocab, Machine::Required),
        "HistoryReading": reading_schema(&vocab, Machine::InHistory),
        "ErrorEvent": event_schema("errorID", &c.error_types, Machine::Required),
        "MaintEvent": event_schema("comp", &c.components, Machine::Required),
        "Machine": machine_schema(c, vocab.age_bounds, Machine::Required),
        "Telemetry": {
            "type": "object", "additionalProperties": false,
            "description": "At least one non-empty list.",
            "properties": {
                "readings": { "type": "array", "items": r("Reading") }, "errors": { "type": "array", "items": r("ErrorEvent") },
                "maint": { "type": "array", "items": r("MaintEvent") }, "machines": { "type": "array", "items": r("Machine") } },
            "anyOf": [non_empty("readings"), non_empty("errors"), non_empty("maint"), non_empty("machines")] },
        "TelemetryAnswer": { "type": "object", "properties": {
            "accepted": r("Counts"), "duplicates": r("Counts"), "fleet_machines": { "type": "integer" },
            "rejected": { "type": "array", "items": { "type": "object", "properties": { "item": { "type": "string" }, "machine": { "type": "integer" }, "message": { "type": "string" } } } } } },
        "Counts": { "type": "object", "properties": { "readings": { "type": "integer" }, "errors": { "type": "integer" }, "maint": { "type": "integer" }, "machines": { "type": "integer" } } },
        "History": bare(json!({
            "readings": { "type": "array", "minItems": 1, "items": r("HistoryReading") },
            "errors": { "type": "array", "items": event_schema("errorID", &c.error_types, Machine::InHistory) },
            "maint": { "type": "array", "items": event_schema("comp", &c.components, Machine::InHistory) },
            "machine": machine_schema(c, vocab.age_bounds, Machine::InHistory) }), &["readings"]),
        "StateRequest": bare(json!({ "machineID": machine_id_schema(), "return_features": { "type": "boolean" } }), &["machineID"]),
        "ReadingRequest": bare(Value::Object(reading_request), &reading_required),
        "WindowRequest": bare(json!({ "machineID": machine_id_schema(), "history": r("History"), "return_features": { "type": "boolean" } }), &["machineID", "history"]),
        "PredictRequest": {
            "description": "Exactly one machine, in one of three shapes. With only machineID: its buffered state. With datetime and every sensor: that reading is appended to its state first (the Python service's request, plus the time). With history: that window, the state untouched.",
            "oneOf": [r("StateRequest"), r("ReadingRequest"), r("WindowRequest")] },
        "PredictBody": { "oneOf": [r("StateRequest"), r("ReadingRequest"), r("WindowRequest"), r("VertexRequest")] },
        "Prediction": {
            "type": "object", "additionalProperties": false,
            "required": ["machineID", "datetime", "failure_probability", "failure_prediction", "threshold", "risk_level", "model_name", "model_version", "mode", "history_hours", "prediction_timestamp"],
            "properties": {
            "machineID": { "type": "integer" }, "datetime": { "type": "string", "description": "Time of the scored reading (RFC 3339)." },
            "failure_probability": { "type": "number" }, "failure_prediction": { "type": "boolean", "description": "failure_probability >= threshold" },
            "threshold": { "type": "number" }, "risk_level": { "type": "string", "enum": ["LOW", "MEDIUM", "HIGH"] },
            "component_probabilities": { "type": "object", "additionalProperties": { "type": "number" } },
            "model_name": { "type": "string" }, "model_version": { "type": "string" }, "mode": { "type": "string", "enum": ["state", "window"] },
            "history_hours": { "type": "number" }, "prediction_timestamp": { "type": "string", "format": "date-time" },
            "warnings": { "type": "array", "items": { "type": "string" } },
            "features": { "type": "object", "additionalProperties": { "type": ["number", "null"] } } } },
    });
    let more = json!({
        "BatchRequest": { "description": "Either list; an empty one is answered with no predictions (as the Python service did).", "oneOf": [
            bare(json!({ "predictions": batch_list.clone() }), &["predictions"]),
            bare(json!({ "instances": batch_list }), &["instances"]) ] },
        "BatchAnswer": { "type": "object", "properties": {
            "predictions": { "type": "array", "items": { "oneOf": [r("Prediction"), r("ItemError")] } },
            "total_predictions": { "type": "integer" }, "failed": { "type": "integer" }, "model_version": { "type": "string" }, "processing_time_seconds": { "type": "number" } } },
        "ItemError": bare(json!({ "index": { "type": "integer" }, "error": r("ErrorBody") }), &["index", "error"]),
        "VertexRequest": bare(json!({ "instances": list(item), "parameters": { "type": "object", "description": "Accepted and ignored (no prediction parameters)." } }), &["instances"]),
        "VertexAnswer": { "type": "object", "required": ["predictions"], "additionalProperties": false, "properties": { "predictions": { "type": "array", "items": { "oneOf": [r("Prediction"), r("ItemError")] } } } },
        "ErrorBody": { "type": "object", "required": ["code", "message"], "properties": { "code": { "type": "string" }, "message": { "type": "string" }, "field": { "type": "string" } } },
        "Error": { "type": "object", "required": ["error"], "properties": { "error": r("ErrorBody") } },
        "OipError": { "type": "object", "required": ["error"], "properties": { "error": { "type": "string" }, "code": { "type": "string" }, "field": { "type": ["string", "null"] } } },
        "Health": { "type": "object", "properties": { "status": { "type": "string", "enum": ["ok", "degraded", "no_model"] }, "model_loaded": { "type": "boolean" }, "model_version": { "type": ["string", "null"] }, "uptime_seconds": { "type": "number" } } },
        "Tensor": { "type": "object", "required": ["name", "datatype", "shape"], "properties": {
            "name": { "type": "string", "enum": ["machine_id", "features"] },
            "datatype": { "type": "string", "enum": ["INT64", "INT32", "UINT64", "UINT32", "FP32", "FP64"] },
            "shape": { "type": "array", "minItems": 1, "maxItems": 2, "items": { "type": "integer", "minimum": 0 } },
            "data": { "type": "array", "description": "The values, flat or nested (or parameters.binary_data_size with the binary extension)." },
            "parameters": { "type": "object" } } },
        "InferRequest": { "type": "object", "required": ["inputs"], "additionalProperties": false, "properties": {
            "id": { "type": "string" }, "parameters": { "type": "object" },
            "model_name": { "type": "string", "description": "Must be the URL's model (KServe's client sends it)." },
            "model_version": { "type": "string", "description": "Must be the URL's version, or the served one." },
            "inputs": { "type": "array", "minItems": 1, "maxItems": 1, "items": r("Tensor"), "description": "Exactly one input tensor: machine_id or features." },
            "outputs": { "type": "array", "items": { "type": "object", "required": ["name"], "properties": { "name": { "type": "string", "enum": OUTPUT_NAMES }, "parameters": { "type": "object" } } } } } },
        "InferResponse": { "type": "object", "properties": { "model_name": { "type": "string" }, "model_version": { "type": "string" }, "id": { "type": "string" }, "outputs": { "type": "array", "items": { "type": "object" } }, "parameters": { "type": "object" } } },
    });
    let mut schemas = schemas;
    if let (Some(all), Value::Object(more)) = (schemas.as_object_mut(), more) {
        all.extend(more);
    }
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

/// The output tensors a `/v2` request may name.
const OUTPUT_NAMES: [&str; 4] = ["failure_probability", "failure_prediction", "risk_level", "component_probabilities"];

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
