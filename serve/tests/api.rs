//! The HTTP API in-process (`app().oneshot`): the train/serve feature contract through HTTP,
//! endpoints, the bad-input corpus, Vertex AI and Open Inference Protocol shapes, metrics,
//! hot swaps and refusals, load shedding and timeouts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use pm_core::data::time::{HOUR, Timestamp};
use pm_serve::server::DEFAULT_HEADER_READ_TIMEOUT;
use pm_serve::{ServeConfig, app};
use serde_json::{Value, json};

/// The machine used by the stateful tests, and its reading indices.
fn machine_rows(machine: u32) -> std::ops::Range<usize> {
    let ds = &fixture().ds;
    let (_, r) = ds.telemetry.machine_ranges().into_iter().find(|(m, _)| *m == machine).unwrap();
    r
}

fn events_json(ds: &pm_core::data::contract::Dataset, machine: u32, upto: i64) -> (Vec<Value>, Vec<Value>) {
    let errors = (0..ds.errors.len())
        .filter(|&i| ds.errors.machine[i] == machine && ds.errors.time[i] <= upto)
        .map(|i| {
            json!({ "machineID": machine, "datetime": Timestamp(ds.errors.time[i]).to_string(),
                    "errorID": ds.contract.error_types[usize::from(ds.errors.kind[i])] })
        })
        .collect();
    let maint = (0..ds.maint.len())
        .filter(|&i| ds.maint.machine[i] == machine && ds.maint.time[i] <= upto)
        .map(|i| {
            json!({ "machineID": machine, "datetime": Timestamp(ds.maint.time[i]).to_string(),
                    "comp": ds.contract.components[usize::from(ds.maint.kind[i])] })
        })
        .collect();
    (errors, maint)
}

/// The acceptance test of the train/serve contract: telemetry streamed to the server in chunks
/// (readings shuffled within each chunk) gives, at every checkpoint, exactly the batch feature
/// row and the model's score of it; a request carrying the same history gives the same again.
#[tokio::test]
async fn stateful_and_window_features_equal_the_batch_features_bit_for_bit() {
    let f = fixture();
    let ds = &f.ds;
    let app = app(state());
    let machine = 3;
    let rows = machine_rows(machine);
    let names = f.spec.names();
    // Machine description and every event first (events may arrive before or after readings).
    let last_time = ds.telemetry.time[rows.end - 1];
    let (errors, maint) = events_json(ds, machine, last_time);
    let mi = ds.machines.position(machine).unwrap();
    let a = call(
        &app,
        "POST",
        "/telemetry",
        Some(json!({ "machines": [{ "machineID": machine, "model": ds.contract.models[usize::from(ds.machines.model[mi])], "age": ds.machines.age[mi] }],
                     "errors": errors, "maint": maint })),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let mut checked = 0;
    let mut start = rows.start;
    for chunk_end in [rows.start + 5, rows.start + 30, rows.start + 700, rows.start + 1900, rows.end] {
        let mut chunk: Vec<Value> = (start..chunk_end).map(|i| reading_json(ds, i, true)).collect();
        chunk.reverse(); // any order within a request
        let a = call(&app, "POST", "/telemetry", Some(json!({ "readings": chunk }))).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert_eq!(a.body["accepted"]["readings"], json!(chunk_end - start));
        start = chunk_end;

        let t = ds.telemetry.time[chunk_end - 1];
        let p = call(&app, "POST", "/predict", Some(json!({ "machineID": machine, "return_features": true }))).await;
        assert_eq!(p.status, StatusCode::OK, "{}", p.text);
        let row = row_of(&f.table, machine, t);
        let batch: Vec<f64> = f.table.columns.iter().map(|c| c[row]).collect();
        let online = features_of(&p.body, &names);
        assert!(same(&online, &batch), "stateful features differ from batch at {}", Timestamp(t));
        assert_eq!(p.body["datetime"], json!(Timestamp(t).rfc3339()));
        let x32: Vec<f32> = batch.iter().map(|&v| v as f32).collect();
        let expected = f.bundle.model.predict(&x32);
        assert_eq!(p.body["failure_probability"].as_f64().unwrap(), expected.failure);
        assert_eq!(p.body["failure_prediction"], json!(expected.failure >= f.bundle.threshold));
        let comps = p.body["component_probabilities"].as_object().unwrap();
        for (c, name) in ds.contract.components.iter().enumerate() {
            assert_eq!(comps[name].as_f64().unwrap(), expected.components[c]);
        }

        // Stateless: the request carries the history the windows need, plus the last replacement
        // of each component and the errors of the error windows.
        let keep = i64::from(f.spec.telemetry_history_hours());
        let mut readings: Vec<Value> = rows
            .clone()
            .filter(|&i| ds.telemetry.time[i] <= t && ds.telemetry.time[i] > t - keep * HOUR)
            .map(|i| reading_json(ds, i, false))
            .collect();
        if checked % 2 == 1 {
            readings.reverse(); // a history in any order
        }
        let (errors, maint) = events_json(ds, machine, t);
        let w = call(
            &app,
            "POST",
            "/predict",
            Some(json!({ "machineID": machine, "return_features": true, "history": {
                "readings": readings, "errors": errors, "maint": maint,
                "machine": { "model": ds.contract.models[usize::from(ds.machines.model[mi])], "age": ds.machines.age[mi] } } })),
        )
        .await;
        assert_eq!(w.status, StatusCode::OK, "{}", w.text);
        assert_eq!(w.body["mode"], "window");
        assert!(same(&features_of(&w.body, &names), &batch), "window features differ from batch at {}", Timestamp(t));
        assert_eq!(w.body["failure_probability"], p.body["failure_probability"]);
        checked += 1;
    }
    assert_eq!(checked, 5);
}

/// The Python service's request shape (one reading, now with its time) appends to the state.
#[tokio::test]
async fn a_reading_in_the_predict_request_is_appended_then_scored() {
    let f = fixture();
    let app = app(state());
    let rows = machine_rows(5);
    for i in rows.start..rows.start + 30 {
        let p = call(&app, "POST", "/predict", Some(reading_json(&f.ds, i, true))).await;
        assert_eq!(p.status, StatusCode::OK, "{}", p.text);
        assert_eq!(p.body["datetime"], json!(Timestamp(f.ds.telemetry.time[i]).rfc3339()));
    }
    let p = call(&app, "POST", "/predict", Some(json!({ "machineID": 5, "return_features": true }))).await;
    let t = f.ds.telemetry.time[rows.start + 29];
    let row = row_of(&f.table, 5, t);
    // Events were not sent: only the sensor features can match the batch row.
    let names = f.spec.names();
    let online = features_of(&p.body, &names);
    for (j, n) in names.iter().enumerate() {
        if n.starts_with("volt") || n.starts_with("rotate") || n.starts_with("pressure") || n.starts_with("vibration") {
            assert_eq!(online[j].to_bits(), f.table.columns[j][row].to_bits(), "{n}");
        }
    }
    assert_eq!(p.body["history_hours"], json!(30.0));
    // Sending the same reading again is an idempotent retry; a different value is a conflict.
    let again = call(&app, "POST", "/predict", Some(reading_json(&f.ds, rows.start + 29, true))).await;
    assert_eq!(again.status, StatusCode::OK);
    let mut changed = reading_json(&f.ds, rows.start + 29, true);
    changed["volt"] = json!(123.25);
    let c = call(&app, "POST", "/predict", Some(changed)).await;
    assert_eq!(c.status, StatusCode::CONFLICT, "{}", c.text);
    assert!(c.body["error"]["message"].as_str().unwrap().contains("already exists with different values"));
}

/// Each case: request → exact status, error code, and a message fragment.
#[tokio::test]
async fn bad_input_corpus_gets_clear_structured_errors() {
    let f = fixture();
    let cfg = ServeConfig { body_limit_bytes: 64 * 1024, ..ServeConfig::default() };
    let app = app(state_with(cfg));
    // Machine 1 gets some telemetry so that later readings can conflict.
    let first = machine_rows(1).start;
    let a = call(&app, "POST", "/telemetry", Some(json!({ "readings": [reading_json(&f.ds, first, true)] }))).await;
    assert_eq!(a.status, StatusCode::OK);
    let good = reading_json(&f.ds, first + 1, true);
    let with = |k: &str, v: Value| {
        let mut r = good.clone();
        r[k] = v;
        r
    };
    let without = |k: &str| {
        let mut r = good.clone();
        r.as_object_mut().unwrap().remove(k);
        r
    };
    let raw = |path: &str, ct: &str, body: &str| {
        Request::builder()
            .method("POST")
            .uri(path)
            .header("content-type", ct)
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    struct Case {
        name: &'static str,
        req: Request<Body>,
        status: StatusCode,
        code: &'static str,
        message: &'static str,
    }
    let post = |path: &str, body: Value| raw(path, "application/json", &body.to_string());
    let big = "x".repeat(70 * 1024);
    let cases = vec![
        Case {
            name: "a field twice (the fast path's shape)",
            req: raw("/predict", "application/json", "{\"machineID\": 7, \"machineID\": 8}"),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "duplicate_field",
            message: "machineID: appears twice in one object; send each field once",
        },
        Case {
            name: "a field twice in a history reading",
            req: raw(
                "/predict",
                "application/json",
                "{\"machineID\": 1, \"history\": {\"readings\": [{\"datetime\": \"2015-01-01 06:00:00\", \"volt\": 170, \"volt\": 171}]}}",
            ),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "duplicate_field",
            message: "history.readings[0].volt: appears twice",
        },
        Case {
            name: "a field twice in a Vertex instance",
            req: raw(
                "/predict",
                "application/json",
                "{\"instances\": [{\"machineID\": 1}, {\"machineID\": 1, \"machine_id\": 2, \"machineID\": 2}]}",
            ),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "duplicate_field",
            message: "instances[1].machineID: appears twice",
        },
        Case {
            name: "a field twice in telemetry",
            req: raw("/telemetry", "application/json", "{\"readings\": [], \"readings\": []}"),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "duplicate_field",
            message: "readings: appears twice",
        },
        Case {
            name: "not JSON",
            req: raw("/predict", "application/json", "{machineID: 1}"),
            status: StatusCode::BAD_REQUEST,
            code: "invalid_json",
            message: "the body is not valid JSON (line 1, column 2): key must be a string",
        },
        Case {
            name: "truncated JSON",
            req: raw("/predict", "application/json", "{\"machineID\": 1"),
            status: StatusCode::BAD_REQUEST,
            code: "invalid_json",
            message: "(line 1, column 15): EOF while parsing an object",
        },
        Case {
            name: "empty body",
            req: raw("/predict", "application/json", ""),
            status: StatusCode::BAD_REQUEST,
            code: "invalid_json",
            message: "the request body is empty",
        },
        Case {
            name: "wrong content type",
            req: raw("/predict", "text/csv", "machineID\n1"),
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "unsupported_media_type",
            message: "expected Content-Type: application/json, got \"text/csv\"",
        },
        Case {
            name: "body over the limit",
            req: raw("/telemetry", "application/json", &format!("{{\"x\": \"{big}\"}}")),
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "body_too_large",
            message: "larger than this server accepts",
        },
        Case {
            name: "number beyond f64",
            req: raw("/predict", "application/json", "{\"machineID\": 1, \"volt\": 1e400}"),
            status: StatusCode::BAD_REQUEST,
            code: "invalid_json",
            message: "number out of range",
        },
        Case {
            name: "array instead of object",
            req: post("/predict", json!([1, 2])),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_input",
            message: "expected an object, got an array",
        },
        Case {
            name: "missing machine id",
            req: post("/predict", json!({ "return_features": true })),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_input",
            message: "machineID: required field is missing",
        },
        Case {
            name: "negative machine id",
            req: post("/predict", json!({ "machineID": -3 })),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_input",
            message: "machineID: expected a non-negative integer machine id, got number -3",
        },
        Case {
            name: "machine id as text",
            req: post("/predict", json!({ "machine_id": "7" })),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_input",
            message: "machine_id: expected a non-negative integer machine id, got string \"7\"",
        },
        Case {
            name: "fractional machine id",
            req: post("/predict", json!({ "machineID": 1.5 })),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_input",
            message: "got number 1.5",
        },
        Case {
            name: "NaN as a string",
            req: post("/predict", with("volt", json!("nan"))),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_input",
            message: "volt: expected a number, got string \"nan\"",
        },
        Case {
            name: "negative sensor value",
            req: post("/predict", with("rotate", json!(-5.0))),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "out_of_bounds",
            message: "rotate: -5 is outside the physical bounds [0, 10000]",
        },
        Case {
            name: "sensor value in the wrong unit",
            req: post("/predict", with("pressure", json!(101325.0))),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "out_of_bounds",
            message: "pressure: 101325 is outside the physical bounds [0, 1000]",
        },
        Case {
            name: "a sensor value that is not a number or null",
            req: post("/predict", with("vibration", json!("n/a"))),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_input",
            message: "vibration: expected a number, got string \"n/a\"",
        },
        Case {
            name: "reading without time",
            req: post("/predict", without("datetime")),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_input",
            message: "datetime: required with a reading",
        },
        Case {
            name: "impossible date",
            req: post("/predict", with("datetime", json!("2015-02-30 06:00:00"))),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_input",
            message: "datetime: \"2015-02-30 06:00:00\" is not a datetime: day 30 out of range for 2015-02",
        },
        Case {
            name: "unknown field",
            req: post("/predict", with("temperature", json!(20.0))),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_input",
            message: "temperature: unknown field; expected one of: machineID, machine_id, datetime, history, return_features, volt, rotate, pressure, vibration",
        },
        Case {
            name: "reading and history together",
            req: post("/predict", with("history", json!({ "readings": [] }))),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_input",
            message: "send either a reading (datetime and sensor values) or a history, not both",
        },
        Case {
            name: "empty history",
            req: post("/predict", json!({ "machineID": 2, "history": { "readings": [] } })),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_input",
            message: "history.readings: the history needs at least one reading",
        },
        Case {
            name: "history of another machine",
            req: post("/predict", json!({ "machineID": 2, "history": { "readings": [good.clone()] } })),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_input",
            message: "history.readings: an item is about machine 1, but the request is for machine 2",
        },
        Case {
            // Replayed in time order; the refusal names the reading by its place in the request.
            name: "two readings at one time in an unordered history",
            req: post(
                "/predict",
                json!({ "machineID": 1, "history": { "readings": [
                    { "datetime": "2015-03-01 07:00:00", "volt": 170, "rotate": 450, "pressure": 100, "vibration": 40 },
                    { "datetime": "2015-03-01 06:00:00", "volt": 170, "rotate": 450, "pressure": 100, "vibration": 40 },
                    { "datetime": "2015-03-01 06:00:00", "volt": 171, "rotate": 450, "pressure": 100, "vibration": 40 },
                ] } }),
            ),
            status: StatusCode::CONFLICT,
            code: "conflict",
            message: "history.readings[2]: a reading for machine 1 at 2015-03-01 06:00:00 already exists with different values",
        },
        Case {
            name: "return_features not a boolean",
            req: post("/predict", json!({ "machineID": 1, "return_features": "yes" })),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_input",
            message: "return_features: expected true or false, got string \"yes\"",
        },
        Case {
            name: "unknown machine",
            req: post("/predict", json!({ "machineID": 4242 })),
            status: StatusCode::NOT_FOUND,
            code: "unknown_machine",
            message: "machine 4242 has no readings in this server",
        },
        Case {
            name: "undescribed machine",
            req: post(
                "/predict",
                json!({ "machineID": 4242, "history": { "readings": [{ "datetime": "2015-03-01 06:00:00", "volt": 170, "rotate": 450, "pressure": 100, "vibration": 40 }] } }),
            ),
            status: StatusCode::NOT_FOUND,
            code: "unknown_machine",
            message: "machine 4242 is not in the model's fleet and its model and age are unknown",
        },
        Case {
            name: "unknown error type",
            req: post(
                "/telemetry",
                json!({ "errors": [{ "machineID": 1, "datetime": "2015-01-02 06:00:00", "errorID": "error9" }] }),
            ),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "unknown_label",
            message: "errors[0].errorID: unknown error type \"error9\"; known: error1, error2, error3, error4, error5",
        },
        Case {
            name: "unknown machine model",
            req: post("/telemetry", json!({ "machines": [{ "machineID": 1, "model": "model9", "age": 3 }] })),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "unknown_label",
            message: "machines[0].model: unknown machine model \"model9\"",
        },
        Case {
            name: "negative age",
            req: post("/telemetry", json!({ "machines": [{ "machineID": 1, "model": "model1", "age": -1 }] })),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "out_of_bounds",
            message: "machines[0].age: -1 is outside the physical bounds [0, 100]",
        },
        Case {
            name: "telemetry item without machine",
            req: post("/telemetry", json!({ "readings": [reading_json(&f.ds, first, false)] })),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_input",
            message: "readings[0].machineID: required field is missing",
        },
        Case {
            name: "nothing to ingest",
            req: post("/telemetry", json!({ "readings": [] })),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_input",
            message: "nothing to ingest",
        },
        Case {
            name: "conflicting reading",
            req: post(
                "/telemetry",
                json!({ "readings": [{ "machineID": 1, "datetime": Timestamp(f.ds.telemetry.time[first]).to_string(), "volt": 1.0, "rotate": 1.0, "pressure": 1.0, "vibration": 1.0 }] }),
            ),
            status: StatusCode::CONFLICT,
            code: "rejected",
            message: "none of the 1 items was applied; first refusal: a reading for machine 1 at",
        },
        Case {
            name: "batch over the limit",
            req: post("/predict/batch", json!({ "predictions": vec![json!({ "machineID": 1 }); 101] })),
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "batch_too_large",
            message: "predictions has 101 items; this server accepts at most 100 per request (--max-batch)",
        },
        Case {
            name: "batch with both lists",
            req: post("/predict/batch", json!({ "predictions": [], "instances": [] })),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_input",
            message: "send either predictions or instances, not both",
        },
        Case {
            name: "batch list not an array",
            req: post("/predict/batch", json!({ "instances": "machine 1" })),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_input",
            message: "instances: expected an array, got string \"machine 1\"",
        },
        Case {
            name: "batch body not an object",
            req: post("/predict/batch", json!([{ "machineID": 1 }])),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_input",
            message: "expected an object, got an array",
        },
        Case {
            name: "Vertex body with an unknown field",
            req: post("/predict", json!({ "instances": [{ "machineID": 1 }], "params": {} })),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_input",
            message: "params: unknown field; expected instances and optional parameters",
        },
        Case {
            name: "Vertex instances not an array",
            req: post("/predict", json!({ "instances": 3 })),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_input",
            message: "instances: expected an array, got number 3",
        },
        Case {
            name: "empty Vertex instances",
            req: post("/predict", json!({ "instances": [] })),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_input",
            message: "instances: must not be empty",
        },
    ];
    assert!(cases.len() >= 37);
    for c in cases {
        let a = send(&app, c.req).await;
        assert_eq!(a.status, c.status, "{}: {}", c.name, a.text);
        assert_eq!(a.body["error"]["code"], c.code, "{}: {}", c.name, a.text);
        let msg = a.body["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains(c.message), "{}: message {msg:?} does not contain {:?}", c.name, c.message);
    }
    // Wrong method and unknown route answer in the same format.
    let a = call(&app, "GET", "/predict", None).await;
    assert_eq!(
        (a.status, a.body["error"]["code"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed"))
    );
    let a = call(&app, "GET", "/nope", None).await;
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("no_route")));
    // The server is still serving.
    let a = call(&app, "POST", "/predict", Some(json!({ "machineID": 1 }))).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
}

#[tokio::test]
async fn batch_answers_every_item_in_order_with_per_item_errors() {
    let f = fixture();
    let app = app(state());
    let rows = machine_rows(2);
    let readings: Vec<Value> = (rows.start..rows.start + 48).map(|i| reading_json(&f.ds, i, true)).collect();
    assert_eq!(call(&app, "POST", "/telemetry", Some(json!({ "readings": readings }))).await.status, StatusCode::OK);
    let items = vec![
        json!({ "machineID": 2 }),
        json!({ "machineID": 999 }),
        json!({ "machineID": 2, "volt": "high" }),
        json!({ "machineID": 2 }),
    ];
    let a = call(&app, "POST", "/predict/batch", Some(json!({ "predictions": items }))).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let p = a.body["predictions"].as_array().unwrap();
    assert_eq!(p.len(), 4);
    assert_eq!(a.body["total_predictions"], 2);
    assert_eq!(a.body["failed"], 2);
    assert_eq!(p[0]["machineID"], 2);
    assert_eq!((p[1]["index"].as_u64(), p[1]["error"]["code"].as_str()), (Some(1), Some("unknown_machine")));
    assert_eq!(p[2]["error"]["field"], "predictions[2].volt");
    assert_eq!(p[3]["failure_probability"], p[0]["failure_probability"]);
    // Exactly the limit passes (on the blocking pool: more than a few items).
    let a =
        call(&app, "POST", "/predict/batch", Some(json!({ "instances": vec![json!({ "machineID": 2 }); 100] }))).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["total_predictions"], 100);
    // The Python service accepted an empty batch: so do we.
    let a = call(&app, "POST", "/predict/batch", Some(json!({ "predictions": [] }))).await;
    assert_eq!((a.status, a.body["total_predictions"].as_u64()), (StatusCode::OK, Some(0)));
}

#[tokio::test]
async fn vertex_ai_routes_from_the_environment_and_the_instances_contract() {
    let cfg = ServeConfig {
        vertex_predict_route: Some("/v1/endpoints/123/deployedModels/456:predict".into()),
        vertex_health_route: Some("/v1/endpoints/123/deployedModels/456".into()),
        ..ServeConfig::default()
    };
    // Not ready before a model is loaded: Vertex must not route traffic yet.
    let empty = pm_serve::AppState::new(cfg.clone(), "memory://none").unwrap();
    let empty = app(empty);
    let a = call(&empty, "GET", "/v1/endpoints/123/deployedModels/456", None).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(a.headers["retry-after"], "5");
    // Nor on KServe V1's readiness route.
    let a = call(&empty, "GET", "/v1/models/pm-failure", None).await;
    assert_eq!(
        (a.status, a.body.clone()),
        (StatusCode::SERVICE_UNAVAILABLE, json!({ "name": "pm-failure", "ready": false }))
    );
    assert_eq!(call(&empty, "GET", "/v1/models", None).await.body, json!({ "models": [] }));

    let f = fixture();
    let app = app(state_with(cfg));
    assert_eq!(call(&app, "GET", "/v1/endpoints/123/deployedModels/456", None).await.status, StatusCode::OK);
    let rows = machine_rows(4);
    let readings: Vec<Value> = (rows.start..rows.start + 24).map(|i| reading_json(&f.ds, i, true)).collect();
    call(&app, "POST", "/telemetry", Some(json!({ "readings": readings }))).await;
    let body = json!({ "instances": [{ "machineID": 4 }, { "machineID": 77 }], "parameters": {} });
    let a = call(&app, "POST", "/v1/endpoints/123/deployedModels/456:predict", Some(body.clone())).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let obj = a.body.as_object().unwrap();
    assert_eq!(obj.keys().collect::<Vec<_>>(), vec!["predictions"]);
    let p = a.body["predictions"].as_array().unwrap();
    assert_eq!(p.len(), 2);
    assert_eq!(p[0]["machineID"], 4);
    assert_eq!(p[1]["error"]["code"], "unknown_machine");
    // The KServe V1 route and /predict take the same body.
    for path in ["/v1/models/pm-failure:predict", "/predict"] {
        let b = call(&app, "POST", path, Some(body.clone())).await;
        assert_eq!(b.body["predictions"][0]["failure_probability"], p[0]["failure_probability"], "{path}");
    }
    // KServe V1's other routes: liveness at /, the model list, the model's readiness; another
    // model's :predict is a 404 that names the served one.
    assert_eq!(call(&app, "GET", "/", None).await.body["status"], "alive");
    assert_eq!(call(&app, "GET", "/v1/models", None).await.body, json!({ "models": ["pm-failure"] }));
    assert_eq!(
        call(&app, "GET", "/v1/models/pm-failure", None).await.body,
        json!({ "name": "pm-failure", "ready": true })
    );
    let other = call(&app, "GET", "/v1/models/other", None).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    let other = call(&app, "POST", "/v1/models/other:predict", Some(body.clone())).await;
    assert_eq!(
        (other.status, other.body["error"]["message"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown model \"other\"; this server serves \"pm-failure\""))
    );
    let bare = call(&app, "POST", "/v1/models/pm-failure", Some(body.clone())).await;
    assert_eq!(
        (bare.status, bare.body["error"]["message"].as_str()),
        (
            StatusCode::NOT_FOUND,
            Some("no route POST /v1/models/pm-failure; predictions are at /v1/models/pm-failure:predict")
        )
    );
    // Instances that carry their history too. Without "parameters" a list of valid requests is
    // read straight from the bytes (the fast path); with it, through a JSON value: the same
    // answers, item errors included, on both routes that take lists.
    let history = json!({ "readings": readings, "machine": { "model": "model3", "age": 18 } });
    let instances = json!([{ "machineID": 4 }, { "machineID": 77 }, { "machineID": 4, "history": history }]);
    let answers = |b: Value| {
        let mut list = b["predictions"].as_array().unwrap().clone();
        for p in &mut list {
            p.as_object_mut().unwrap().remove("prediction_timestamp");
        }
        list
    };
    let slow = call(&app, "POST", "/predict", Some(json!({ "instances": instances, "parameters": {} }))).await;
    assert_eq!(slow.status, StatusCode::OK, "{}", slow.text);
    let slow = answers(slow.body);
    assert_eq!(
        (slow.len(), &slow[2]["mode"], &slow[1]["error"]["code"]),
        (3, &json!("window"), &json!("unknown_machine"))
    );
    for (path, body) in
        [("/predict", json!({ "instances": instances })), ("/predict/batch", json!({ "instances": instances }))]
    {
        let fast = call(&app, "POST", path, Some(body)).await;
        assert_eq!(fast.status, StatusCode::OK, "{path}: {}", fast.text);
        assert_eq!(answers(fast.body), slow, "{path}");
    }
    // AIP_PREDICT_ROUTE may be /predict itself (Google's local runs use it): no clash.
    let clash = ServeConfig {
        vertex_predict_route: Some("/predict".into()),
        vertex_health_route: Some("/health".into()),
        ..ServeConfig::default()
    };
    let app2 = pm_serve::app(state_with(clash));
    assert_eq!(call(&app2, "GET", "/health", None).await.body["ready"], true);
}

#[tokio::test]
async fn open_inference_protocol_v2() {
    let f = fixture();
    let app = app(state());
    let a = call(&app, "GET", "/v2/health/live", None).await;
    assert_eq!((a.status, a.body.clone()), (StatusCode::OK, json!({ "live": true })));
    assert_eq!(call(&app, "GET", "/v2/health/ready", None).await.body, json!({ "ready": true }));
    assert_eq!(call(&app, "GET", "/v2", None).await.body["name"], "pm-serve");
    let meta = call(&app, "GET", "/v2/models/pm-failure", None).await.body;
    let n = f.spec.n_features();
    assert_eq!(meta["inputs"][1], json!({ "name": "features", "datatype": "FP32", "shape": [-1, n] }));
    assert_eq!(meta["outputs"].as_array().unwrap().len(), 4, "per-component model: 4 outputs");
    assert_eq!(meta["versions"], json!(["v1"]));
    assert_eq!(
        call(&app, "GET", "/v2/models/pm-failure/versions/v1/ready", None).await.body,
        json!({ "name": "pm-failure", "ready": true })
    );
    let a = call(&app, "GET", "/v2/models/other", None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(
        a.body["error"], "unknown model \"other\"; this server serves \"pm-failure\"",
        "OIP error shape: a string"
    );
    assert_eq!(call(&app, "GET", "/v2/models/pm-failure/versions/v9", None).await.status, StatusCode::NOT_FOUND);

    // machine_id input: the buffered state, as /predict scores it.
    let rows = machine_rows(6);
    let readings: Vec<Value> = (rows.start..rows.start + 40).map(|i| reading_json(&f.ds, i, true)).collect();
    call(&app, "POST", "/telemetry", Some(json!({ "readings": readings }))).await;
    let p = call(&app, "POST", "/predict", Some(json!({ "machineID": 6, "return_features": true }))).await.body;
    let infer = json!({ "id": "req-1", "inputs": [{ "name": "machine_id", "datatype": "INT64", "shape": [2, 1], "data": [[6], [6]] }] });
    let a = call(&app, "POST", "/v2/models/pm-failure/infer", Some(infer)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["id"], "req-1");
    // A tensor naming itself twice is refused, the field named, in the protocol's error shape.
    let twice =
        r#"{"inputs": [{"name": "machine_id", "datatype": "INT64", "name": "features", "shape": [1], "data": [6]}]}"#;
    let req = Request::builder()
        .method("POST")
        .uri("/v2/models/pm-failure/infer")
        .header("content-type", "application/json")
        .body(Body::from(twice))
        .unwrap();
    let dup = send(&app, req).await;
    assert_eq!(dup.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", dup.text);
    assert_eq!(
        (dup.body["code"].as_str(), dup.body["field"].as_str()),
        (Some("duplicate_field"), Some("inputs[0].name"))
    );
    assert!(dup.body["error"].as_str().unwrap().contains("appears twice"), "{}", dup.text);
    assert_eq!(a.body["model_version"], "v1");
    let out = |name: &str| a.body["outputs"].as_array().unwrap().iter().find(|o| o["name"] == name).unwrap().clone();
    assert_eq!(out("failure_probability")["shape"], json!([2]));
    assert_eq!(out("failure_probability")["data"][0], p["failure_probability"]);
    assert_eq!(out("component_probabilities")["shape"], json!([2, 4]));
    assert_eq!(out("component_probabilities")["data"][1], p["component_probabilities"]["comp2"]);

    // features input, nested or flat, with the requested outputs only: same probability.
    let x: Vec<Value> = f.spec.names().iter().map(|n| p["features"][n].clone()).collect();
    let infer = json!({ "inputs": [{ "name": "features", "datatype": "FP64", "shape": [1, n], "data": [x] }], "outputs": [{ "name": "failure_probability" }] });
    let b = call(&app, "POST", "/v2/models/pm-failure/versions/v1/infer", Some(infer)).await;
    assert_eq!(b.status, StatusCode::OK, "{}", b.text);
    assert_eq!(b.body["outputs"].as_array().unwrap().len(), 1);
    assert_eq!(b.body["outputs"][0]["data"][0], p["failure_probability"]);
    // The features are held to the sensors' physical bounds, as /predict holds readings: a volt
    // of 1e30 is refused (it used to be scored), here in the raw reading and in a rolling mean.
    for name in ["volt", "volt_24h_mean"] {
        let j = f.spec.names().iter().position(|m| m == name).unwrap();
        let mut bad = x.clone();
        bad[j] = json!(1e30);
        let infer = json!({ "inputs": [{ "name": "features", "datatype": "FP64", "shape": [1, n], "data": bad }] });
        let a = call(&app, "POST", "/v2/models/pm-failure/infer", Some(infer)).await;
        assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.text);
        assert_eq!(
            (a.body["code"].as_str(), a.body["field"].as_str()),
            (Some("out_of_bounds"), Some(format!("inputs[0].data[{j}]").as_str()))
        );
        assert!(
            a.body["error"].as_str().unwrap().contains(&format!("feature {name} = 1e30 is outside its range [")),
            "{}",
            a.text
        );
    }
    // FP32 in JSON is FP32: a value too large for it is refused (binary FP32 cannot carry one),
    // and the others are rounded to FP32, as binary FP32 tensors are.
    let mut big = x.clone();
    big[n - 1] = json!(1e39);
    let infer = json!({ "inputs": [{ "name": "features", "datatype": "FP32", "shape": [1, n], "data": big }] });
    let a = call(&app, "POST", "/v2/models/pm-failure/infer", Some(infer)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
    assert_eq!(a.body["error"], format!("inputs[0].data[{}]: 1e+39 does not fit in FP32", n - 1));
    let single: Vec<Value> = x.iter().map(|v| v.as_f64().map_or(Value::Null, |y| json!(f64::from(y as f32)))).collect();
    let as_fp32 = |data: &Vec<Value>| json!({ "inputs": [{ "name": "features", "datatype": "FP32", "shape": [1, n], "data": data }] });
    let as_fp64 = json!({ "inputs": [{ "name": "features", "datatype": "FP64", "shape": [1, n], "data": single }] });
    let (r32, r64) = (
        call(&app, "POST", "/v2/models/pm-failure/infer", Some(as_fp32(&x))).await,
        call(&app, "POST", "/v2/models/pm-failure/infer", Some(as_fp64)).await,
    );
    assert_eq!(r32.body["outputs"][0]["data"], r64.body["outputs"][0]["data"], "FP32 values count as rounded");

    // KServe's client names the model in the body too: it must agree with the URL.
    let ids = json!([{ "name": "machine_id", "datatype": "INT64", "shape": [1], "data": [6] }]);
    let named = |extra: Value| {
        let mut b = json!({ "inputs": ids });
        b.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        b
    };
    let ok = call(
        &app,
        "POST",
        "/v2/models/pm-failure/infer",
        Some(named(json!({ "model_name": "pm-failure", "model_version": "v1" }))),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    for (path, extra, status, message) in [
        (
            "/v2/models/pm-failure/infer",
            json!({ "model_name": "other" }),
            StatusCode::BAD_REQUEST,
            "model_name: the body names model \"other\", the URL \"pm-failure\"",
        ),
        (
            "/v2/models/pm-failure/infer",
            json!({ "model_name": 3 }),
            StatusCode::BAD_REQUEST,
            "model_name: expected a string, got 3",
        ),
        (
            "/v2/models/pm-failure/versions/v1/infer",
            json!({ "model_version": "v0" }),
            StatusCode::BAD_REQUEST,
            "model_version: the body names version \"v0\", the URL \"v1\"",
        ),
        (
            "/v2/models/pm-failure/infer",
            json!({ "model_version": "v0" }),
            StatusCode::NOT_FOUND,
            "model \"pm-failure\" version \"v0\" is not served; the served version is \"v1\"",
        ),
    ] {
        let a = call(&app, "POST", path, Some(named(extra.clone()))).await;
        assert_eq!((a.status, a.body["error"].as_str()), (status, Some(message)), "{extra}");
    }

    // Tensor errors: 400 with the protocol's {"error": "..."}.
    let bad = [
        (
            json!({ "inputs": [{ "name": "features", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3] }] }),
            format!("inputs[0].shape: expected [N, {n}] (the model's {n} features), got [1, 3]"),
        ),
        (
            json!({ "inputs": [{ "name": "machine_id", "datatype": "INT64", "shape": [3], "data": [1, 2] }] }),
            "inputs[0].data: shape [3] needs 3 values, got 2".to_string(),
        ),
        (
            json!({ "inputs": [{ "name": "machine_id", "datatype": "FP32", "shape": [1], "data": [1] }] }),
            "inputs[0].datatype: machine_id must be an integer tensor, got \"FP32\"".to_string(),
        ),
        (
            json!({ "inputs": [{ "name": "image", "datatype": "FP32", "shape": [1], "data": [1] }] }),
            "inputs[0].name: unknown input \"image\"; expected machine_id or features".to_string(),
        ),
        (
            json!({ "inputs": [] }),
            "inputs: expected exactly one input tensor (machine_id or features), got 0".to_string(),
        ),
    ];
    for (body, msg) in bad {
        let a = call(&app, "POST", "/v2/models/pm-failure/infer", Some(body)).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
        assert_eq!(a.body["error"], msg);
    }
    let a = call(
        &app,
        "POST",
        "/v2/models/pm-failure/infer",
        Some(json!({ "inputs": [{ "name": "machine_id", "datatype": "INT64", "shape": [1], "data": [555] }] })),
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert!(a.body["error"].as_str().unwrap().starts_with("machine 555 has no readings"));
}

/// A request of the binary tensor data extension (the JSON, then `tail`), and the answer's JSON
/// and the bytes after it.
async fn infer_binary(
    app: &pm_serve::App,
    json: &Value,
    tail: &[u8],
    length: &str,
    ct: &str,
) -> (StatusCode, Value, Vec<u8>) {
    let mut body = json.to_string().into_bytes();
    body.extend_from_slice(tail);
    let req = Request::builder()
        .method("POST")
        .uri("/v2/models/pm-failure/infer")
        .header("content-type", ct)
        .header("inference-header-content-length", length)
        .body(Body::from(body))
        .unwrap();
    let resp = tower::ServiceExt::oneshot(app.clone(), req).await.unwrap();
    let status = resp.status();
    let header = resp.headers().get("inference-header-content-length").map(|h| h.to_str().unwrap().parse().unwrap());
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    let n = header.unwrap_or(bytes.len());
    (status, serde_json::from_slice(&bytes[..n]).unwrap(), bytes[n..].to_vec())
}

/// The binary tensor data extension (Triton's clients use it by default): binary inputs of each
/// numeric datatype give what their JSON twins give, outputs come back binary when the request
/// or the output asks, and a malformed binary request is a 400 naming what is wrong.
#[tokio::test]
async fn open_inference_protocol_binary_tensors() {
    let f = fixture();
    let app = app(state());
    assert_eq!(call(&app, "GET", "/v2", None).await.body["extensions"], json!(["binary_tensor_data"]));
    let rows = machine_rows(6);
    let readings: Vec<Value> = (rows.start..rows.start + 40).map(|i| reading_json(&f.ds, i, true)).collect();
    call(&app, "POST", "/telemetry", Some(json!({ "readings": readings }))).await;
    let p = call(&app, "POST", "/predict", Some(json!({ "machineID": 6, "return_features": true }))).await.body;

    // machine_id as INT32 bytes; every output binary (the request's binary_data_output).
    let ids: Vec<u8> = [6i32, 6].iter().flat_map(|x| x.to_le_bytes()).collect();
    let req = json!({ "parameters": { "binary_data_output": true }, "inputs": [{ "name": "machine_id", "datatype": "INT32", "shape": [2], "parameters": { "binary_data_size": 8 } }] });
    let (status, head, tail) =
        infer_binary(&app, &req, &ids, &req.to_string().len().to_string(), "application/octet-stream").await;
    assert_eq!(status, StatusCode::OK, "{head}");
    let mut at = 0;
    let mut parts = std::collections::HashMap::new();
    for o in head["outputs"].as_array().unwrap() {
        assert!(o.get("data").is_none(), "{o}");
        let size = o["parameters"]["binary_data_size"].as_u64().unwrap() as usize;
        parts.insert(o["name"].as_str().unwrap().to_string(), tail[at..at + size].to_vec());
        at += size;
    }
    assert_eq!(at, tail.len(), "the outputs' sizes add up to the bytes after the JSON");
    let f64s = |b: &[u8]| b.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect::<Vec<_>>();
    let prob = p["failure_probability"].as_f64().unwrap();
    assert_eq!(f64s(&parts["failure_probability"]), [prob, prob]);
    let decision = u8::from(p["failure_prediction"].as_bool().unwrap());
    assert_eq!(parts["failure_prediction"], [decision, decision]);
    let risk = p["risk_level"].as_str().unwrap();
    let mut level = (risk.len() as u32).to_le_bytes().to_vec();
    level.extend_from_slice(risk.as_bytes());
    assert_eq!(parts["risk_level"], [level.clone(), level].concat());
    let comps = f64s(&parts["component_probabilities"]);
    assert_eq!(comps.len(), 8);
    assert_eq!(json!(comps[1]), p["component_probabilities"]["comp2"]);

    // features as FP64 bytes give /predict's probability; as FP32 bytes, what the same f32
    // values give as JSON. One output binary, one not: only the binary one follows the JSON.
    let x: Vec<f64> = f.spec.names().iter().map(|n| p["features"][n].as_f64().unwrap_or(f64::NAN)).collect();
    let n = x.len();
    let outputs = json!([{ "name": "failure_probability", "parameters": { "binary_data": true } }, { "name": "risk_level", "parameters": { "binary_data": false } }]);
    let features = |dtype: &str, size: usize| json!({ "outputs": outputs, "inputs": [{ "name": "features", "datatype": dtype, "shape": [1, n], "parameters": { "binary_data_size": size } }] });
    let fp64: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    let req = features("FP64", fp64.len());
    let (status, head, tail) =
        infer_binary(&app, &req, &fp64, &req.to_string().len().to_string(), "application/json").await;
    assert_eq!(status, StatusCode::OK, "{head}");
    assert_eq!(f64s(&tail), [prob]);
    assert_eq!(head["outputs"][1], json!({ "name": "risk_level", "datatype": "BYTES", "shape": [1], "data": [risk] }));
    let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let fp32: Vec<u8> = x32.iter().flat_map(|v| v.to_le_bytes()).collect();
    let req = features("FP32", fp32.len());
    let (status, head, tail) =
        infer_binary(&app, &req, &fp32, &req.to_string().len().to_string(), "application/json").await;
    assert_eq!(status, StatusCode::OK, "{head}");
    let as_json: Vec<Value> = x32.iter().map(|&v| if v.is_nan() { Value::Null } else { json!(f64::from(v)) }).collect();
    let twin = json!({ "inputs": [{ "name": "features", "datatype": "FP32", "shape": [1, n], "data": as_json }], "outputs": [{ "name": "failure_probability" }] });
    let j = call(&app, "POST", "/v2/models/pm-failure/infer", Some(twin)).await;
    assert_eq!(json!(f64s(&tail)), j.body["outputs"][0]["data"], "{}", j.text);

    // Malformed binary requests: 400 (415 for the media type), the message naming what is wrong.
    let input = |data: Value, size: u64| {
        let mut t = json!({ "name": "machine_id", "datatype": "INT64", "shape": [1], "parameters": { "binary_data_size": size } });
        if !data.is_null() {
            t["data"] = data;
        }
        json!({ "inputs": [t] })
    };
    let one = input(Value::Null, 8);
    let len = |v: &Value| v.to_string().len().to_string();
    let six = 6i64.to_le_bytes();
    let refused = async |req: &Value, tail: &[u8], length: &str, ct: &str| {
        let (s, head, _) = infer_binary(&app, req, tail, length, ct).await;
        (s, head["error"].as_str().unwrap_or_default().to_string())
    };
    let bad = StatusCode::BAD_REQUEST;
    assert_eq!(
        refused(&one, &six, "eight", "application/json").await,
        (bad, "Inference-Header-Content-Length: expected the JSON header's length in bytes, got \"eight\"".into())
    );
    let whole = one.to_string().len() + 8;
    assert_eq!(
        refused(&one, &six, "9999", "application/json").await,
        (
            bad,
            format!(
                "Inference-Header-Content-Length: the JSON header is said to be 9999 bytes long, but the body has {whole} bytes"
            )
        )
    );
    assert_eq!(
        refused(&one, &six, &len(&one), "text/plain").await,
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected Content-Type: application/json or application/octet-stream, got \"text/plain\"".into()
        )
    );
    assert_eq!(
        refused(&one, &six[..4], &len(&one), "application/json").await,
        (
            bad,
            "inputs[0].parameters.binary_data_size: 8 bytes, but 4 bytes of binary data follow the JSON header".into()
        )
    );
    assert_eq!(
        refused(&one, &[six, six].concat(), &len(&one), "application/json").await,
        (bad, "inputs: 8 bytes of binary data follow the JSON header that no input's binary_data_size claims".into())
    );
    let odd = input(Value::Null, 6);
    assert_eq!(
        refused(&odd, &six[..6], &len(&odd), "application/json").await,
        (
            bad,
            "inputs[0].parameters.binary_data_size: 6 bytes is not a whole number of INT64 values (8 bytes each)"
                .into()
        )
    );
    let both = input(json!([6]), 8);
    assert_eq!(
        refused(&both, &six, &len(&both), "application/json").await,
        (bad, "inputs[0]: carries both data and parameters.binary_data_size; send the values one way".into())
    );
    let mut flag = one.clone();
    flag["parameters"] = json!({ "binary_data_output": "yes" });
    assert_eq!(
        refused(&flag, &six, &len(&flag), "application/json").await,
        (bad, "parameters.binary_data_output: expected true or false, got \"yes\"".into())
    );
    let mut unnamed = one.clone();
    unnamed["outputs"] = json!([{ "parameters": { "binary_data": true } }]);
    assert_eq!(
        refused(&unnamed, &six, &len(&unnamed), "application/json").await,
        (bad, "outputs[0].name: required".into())
    );
    // The same request, well formed, is served.
    let (s, head, tail) = infer_binary(&app, &one, &six, &len(&one), "application/json").await;
    assert_eq!(s, StatusCode::OK, "{head}");
    assert!(tail.is_empty(), "JSON outputs unless asked otherwise");
    assert_eq!(head["outputs"][0]["data"], json!([prob]));
}

/// Runs a client script of `serve/tests/clients/` against `addr`, the job on its stdin; returns
/// the JSON it prints.
async fn run_client(script: &str, addr: &str, job: &Value) -> Value {
    let python = std::env::var("PM_OIP_PYTHON").unwrap_or_else(|_| {
        panic!("PM_OIP_PYTHON is not set: run the tests with `make test`, which installs the v2 clients")
    });
    let script = format!("{}/tests/clients/{script}", env!("CARGO_MANIFEST_DIR"));
    let (addr, job) = (addr.to_string(), job.to_string());
    let out = tokio::task::spawn_blocking(move || {
        let mut child = std::process::Command::new(&python)
            .args([&script, &addr, "pm-failure"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{python}: {e}"));
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), job.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "the client failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Standard clients work unchanged: Triton's `tritonclient[http]` (Open Inference Protocol, with
/// its defaults — binary tensors — with JSON tensors and with compressed bodies) and KServe's
/// `InferenceRESTClient` (its V1 and V2 protocols), both installed by `make test`, get what
/// `/predict` answers for the same machines and features, and read errors as errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_v2_and_kserve_clients_work_unchanged() {
    let f = fixture();
    let app = app(state());
    let mut expected = Vec::new();
    let mut features = Vec::new();
    for machine in [6, 9] {
        let rows = machine_rows(machine);
        let readings: Vec<Value> = (rows.start..rows.start + 30).map(|i| reading_json(&f.ds, i, true)).collect();
        call(&app, "POST", "/telemetry", Some(json!({ "readings": readings }))).await;
        let p =
            call(&app, "POST", "/predict", Some(json!({ "machineID": machine, "return_features": true }))).await.body;
        features.push(f.spec.names().iter().map(|n| p["features"][n].clone()).collect::<Vec<_>>());
        expected.push(p);
    }
    assert!(features.iter().flatten().any(Value::is_null), "some feature is missing: NaN goes through as binary");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = pm_serve::server::accept(listener, app.clone(), DEFAULT_HEADER_READ_TIMEOUT, std::future::pending());
    tokio::spawn(serving);
    let job = json!({ "ids": [6, 9, 6], "features": features });
    let of = |key: &str| -> Value { json!([0, 1, 0].iter().map(|&i| expected[i][key].clone()).collect::<Vec<_>>()) };
    let both = json!([expected[0]["failure_probability"], expected[1]["failure_probability"]]);
    let unknown = "unknown model \"no-such-model\"; this server serves \"pm-failure\"";

    let got = run_client("oip_triton.py", &addr.to_string(), &job).await;
    assert_eq!((&got["live"], &got["ready"], &got["model_ready"]), (&json!(true), &json!(true), &json!(true)));
    assert_eq!(got["metadata"]["name"], "pm-failure");
    assert_eq!(got["server"]["extensions"], json!(["binary_tensor_data"]));
    for mode in ["ids_default", "ids_json", "ids_gzip", "ids_deflate"] {
        assert_eq!(got[mode]["failure_probability"], of("failure_probability"), "{mode}");
        assert_eq!(got[mode]["risk_level"], of("risk_level"), "{mode}");
    }
    assert_eq!(got["ids_default"]["failure_prediction"], of("failure_prediction"));
    let comps = &got["ids_default"]["component_probabilities"];
    assert_eq!(comps[1][0], expected[1]["component_probabilities"]["comp1"], "{comps}");
    assert_eq!(got["features_FP64"]["failure_probability"], both);
    assert_eq!(got["features_FP64"]["id"], "features-FP64");
    // FP32 rounds the features; its answers are /v2's for the same rounded values sent as JSON.
    let rounded: Vec<Value> =
        features.iter().flatten().map(|v| v.as_f64().map_or(Value::Null, |x| json!(f64::from(x as f32)))).collect();
    let n = f.spec.n_features();
    let twin = json!({ "inputs": [{ "name": "features", "datatype": "FP32", "shape": [2, n], "data": rounded }] });
    let j = call(&app, "POST", "/v2/models/pm-failure/infer", Some(twin)).await;
    assert_eq!(got["features_FP32"]["failure_probability"], j.body["outputs"][0]["data"], "{}", j.text);
    let nan = got["nan_as_json"]["message"].as_str().unwrap_or_default();
    assert!(nan.contains("(NaN is not a JSON number: send null for a missing value"), "{}", got["nan_as_json"]);
    assert_eq!(got["unknown_model"]["status"], "404");
    assert_eq!(got["unknown_model"]["message"], unknown);

    let got = run_client("kserve_rest.py", &format!("http://{addr}"), &job).await;
    for probe in ["v1_live", "v1_model_ready", "v2_live", "v2_ready", "v2_model_ready"] {
        assert_eq!(got[probe], true, "{probe}");
    }
    for mode in ["v1", "v2_ids_binary", "v2_ids_json"] {
        assert_eq!(got[mode]["failure_probability"], of("failure_probability"), "{mode}");
        assert_eq!(got[mode]["risk_level"], of("risk_level"), "{mode}");
    }
    assert_eq!(got["v2_features_FP64"]["failure_probability"], both);
    for (key, route) in
        [("v2_unknown_model", "v2/models/no-such-model/infer"), ("v1_unknown_model", "v1/models/no-such-model:predict")]
    {
        assert_eq!(got[key]["status"], 404, "{key}");
        let message = got[key]["message"].as_str().unwrap_or_default();
        assert!(message.contains(unknown) && message.contains(route), "{key}: {message}");
    }
}

/// A body sent with `Content-Encoding: gzip` or `deflate` is decoded before it is read, within
/// the body limit (a small body that inflates past it is a 413); another encoding is a 415 and a
/// corrupt stream a 400, each saying so.
#[tokio::test]
async fn compressed_bodies_are_decoded_within_the_limit() {
    use std::io::Write;
    let f = fixture();
    let cfg = ServeConfig { body_limit_bytes: 16 * 1024, ..ServeConfig::default() };
    let app = app(state_with(cfg));
    let gzip = |b: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    };
    let deflate = |b: &[u8]| {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    };
    let post_to = async |app: &pm_serve::App, path: &str, encoding: &str, body: Vec<u8>| {
        let req = Request::builder()
            .method("POST")
            .uri(path)
            .header("content-type", "application/json")
            .header("content-encoding", encoding)
            .body(Body::from(body))
            .unwrap();
        send(app, req).await
    };
    let post = async |path: &str, encoding: &str, body: Vec<u8>| post_to(&app, path, encoding, body).await;
    let rows = machine_rows(6);
    let readings: Vec<Value> = (rows.start..rows.start + 30).map(|i| reading_json(&f.ds, i, true)).collect();
    let telemetry = json!({ "readings": readings }).to_string();
    let t = post("/telemetry", "deflate", deflate(telemetry.as_bytes())).await;
    assert_eq!((t.status, &t.body["accepted"]["readings"]), (StatusCode::OK, &json!(30)), "{}", t.text);
    let plain = call(&app, "POST", "/predict", Some(json!({ "machineID": 6 }))).await.body;
    let zipped = post("/predict", "gzip", gzip(br#"{"machineID": 6}"#)).await;
    assert_eq!(zipped.status, StatusCode::OK, "{}", zipped.text);
    assert_eq!(zipped.body["failure_probability"], plain["failure_probability"]);
    assert_eq!(post("/predict", "identity", br#"{"machineID": 6}"#.to_vec()).await.status, StatusCode::OK);

    let mut padded = br#"{"machineID": 6"#.to_vec();
    padded.extend(std::iter::repeat_n(b' ', 20 * 1024));
    padded.push(b'}');
    let bomb = gzip(&padded);
    assert!(bomb.len() < 1024, "the compressed body is small");
    let refused = post("/predict", "gzip", bomb).await;
    assert_eq!(
        (refused.status, refused.body["error"]["message"].as_str()),
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            Some("the request body, decompressed, is larger than this server accepts (--body-limit-bytes)")
        )
    );
    // A compressed body over 32 KB is decoded on the blocking pool: the same answer.
    let mut stored = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
    stored.write_all(br#"{"machineID": 6"#).unwrap();
    stored.write_all(&[b' '; 40 * 1024]).unwrap();
    stored.write_all(b"}").unwrap();
    let stored = stored.finish().unwrap();
    assert!(stored.len() > 40 * 1024, "stored, not compressed");
    let big_cfg = ServeConfig { body_limit_bytes: 64 * 1024, ..ServeConfig::default() };
    let big_app = pm_serve::app(state_with(big_cfg));
    call(&big_app, "POST", "/telemetry", Some(json!({ "readings": readings }))).await;
    let big = post_to(&big_app, "/predict", "gzip", stored).await;
    assert_eq!(big.status, StatusCode::OK, "{}", big.text);
    assert_eq!(big.body["failure_probability"], plain["failure_probability"]);
    let br = post("/predict", "br", br#"{"machineID": 6}"#.to_vec()).await;
    assert_eq!(
        (br.status, br.body["error"]["code"].as_str(), br.body["error"]["message"].as_str()),
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Some("unsupported_encoding"),
            Some("Content-Encoding \"br\" is not supported; send the body as is, gzip or deflate")
        )
    );
    let corrupt = post("/predict", "gzip", br#"{"machineID": 6}"#.to_vec()).await;
    assert_eq!((corrupt.status, corrupt.body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("bad_body")));
    let message = corrupt.body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("the body is not valid gzip data: "), "{message}");
    // OIP routes answer in that protocol's shape.
    let v2 = post("/v2/models/pm-failure/infer", "br", b"{}".to_vec()).await;
    assert_eq!(v2.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(v2.body["error"].as_str().unwrap().starts_with("Content-Encoding \"br\""), "{}", v2.text);
}

#[tokio::test]
async fn probes_info_and_summary() {
    let f = fixture();
    let empty = pm_serve::AppState::new(ServeConfig::default(), "memory://nothing").unwrap();
    let app0 = app(empty);
    let h = call(&app0, "GET", "/health", None).await;
    assert_eq!((h.status, h.body["status"].as_str()), (StatusCode::OK, Some("no_model")));
    let r = call(&app0, "GET", "/ready", None).await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("model_not_loaded"))
    );
    assert_eq!(
        call(&app0, "POST", "/predict", Some(json!({ "machineID": 1 }))).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(call(&app0, "GET", "/v2/health/ready", None).await.status, StatusCode::SERVICE_UNAVAILABLE);

    let app = app(state());
    let h = call(&app, "GET", "/health", None).await;
    assert_eq!((h.body["status"].as_str(), h.body["model_version"].as_str()), (Some("ok"), Some("v1")));
    let i = call(&app, "GET", "/model/info", None).await.body;
    assert_eq!(i["model_info"]["threshold"], json!(f.bundle.threshold));
    assert_eq!(i["feature_count"], json!(f.spec.n_features()));
    assert_eq!(i["model_info"]["per_component"], true);
    assert_eq!(i["risk_bands"]["HIGH"], json!(f.bundle.threshold));
    let root = call(&app, "GET", "/", None).await.body;
    assert_eq!(root["endpoints"]["predict_batch"], "/predict/batch");
    let s = call(&app, "GET", "/metrics/summary", None).await.body;
    assert_eq!(s["status"], "ok");
    assert!(s["metrics"]["requests_total"].as_u64().unwrap() >= 3);
}

/// A machine outside the training fleet can be described through /telemetry.
#[tokio::test]
async fn new_machines_are_described_through_telemetry() {
    let f = fixture();
    let app = app(state());
    let rows = machine_rows(1);
    let mut readings: Vec<Value> = (rows.start..rows.start + 10).map(|i| reading_json(&f.ds, i, true)).collect();
    for r in &mut readings {
        r["machineID"] = json!(500);
    }
    let a = call(&app, "POST", "/telemetry", Some(json!({ "readings": readings }))).await;
    assert_eq!(a.status, StatusCode::OK);
    let p = call(&app, "POST", "/predict", Some(json!({ "machineID": 500 }))).await;
    assert_eq!(p.status, StatusCode::NOT_FOUND, "{}", p.text);
    let a = call(
        &app,
        "POST",
        "/telemetry",
        Some(json!({ "machines": [{ "machineID": 500, "model": "model2", "age": 4 }] })),
    )
    .await;
    assert_eq!(a.body["accepted"]["machines"], 1);
    let p = call(&app, "POST", "/predict", Some(json!({ "machineID": 500 }))).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.text);
    assert!(p.body["warnings"][0].as_str().unwrap().starts_with("only 10 h of readings"));
}

#[tokio::test]
async fn metrics_are_prometheus_text_and_lint_clean() {
    let f = fixture();
    let cfg = ServeConfig {
        rules: pm_serve::model::InputRules { drift_window: 200, drift_sample: 1, ..ServeConfig::default().rules },
        ..ServeConfig::default()
    };
    let app = app(state_with(cfg));
    let rows = machine_rows(7);
    let readings: Vec<Value> = (rows.start..rows.start + 30).map(|i| reading_json(&f.ds, i, true)).collect();
    call(&app, "POST", "/telemetry", Some(json!({ "readings": readings }))).await;
    for _ in 0..120 {
        call(&app, "POST", "/predict", Some(json!({ "machineID": 7 }))).await;
    }
    call(&app, "POST", "/predict", Some(json!({ "machineID": 9999 }))).await;
    // Labelled by route pattern, never by the path asked for (bounded label values).
    call(&app, "GET", "/v2/models/pm-failure/ready", None).await;
    call(&app, "GET", "/v2/models/other/ready", None).await;
    call(&app, "GET", "/no/such/route/42", None).await;
    call(&app, "GET", "/predict", None).await;
    let m = call(&app, "GET", "/metrics", None).await;
    assert_eq!(m.status, StatusCode::OK);
    assert!(m.headers["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let t = &m.text;
    for needle in [
        "pm_http_requests_total{method=\"POST\",route=\"/predict\",status=\"200\"} 120",
        "pm_http_requests_total{method=\"POST\",route=\"/predict\",status=\"404\"} 1",
        "pm_http_request_duration_seconds_bucket{route=\"/predict\",le=\"0.00005\"}",
        "pm_http_requests_total{method=\"GET\",route=\"/v2/models/{name}/ready\",status=\"200\"} 1",
        "pm_http_requests_total{method=\"GET\",route=\"/v2/models/{name}/ready\",status=\"404\"} 1",
        "pm_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 1",
        "pm_http_requests_total{method=\"GET\",route=\"/predict\",status=\"405\"} 1",
        "pm_prediction_failures_total{code=\"unknown_machine\"} 1",
        "pm_model_info{algorithm=\"gbdt\",bundle_sha256=\"sha-v1\",name=\"pm-failure\",version=\"v1\"} 1",
        "pm_model_loaded 1",
        "pm_model_reloads_total{result=\"ok\"} 1",
        "pm_telemetry_items_total{kind=\"readings\",result=\"accepted\"} 30",
        "pm_feature_drift_window_rows 120",
        "pm_feature_drift_psi{feature=\"volt_24h_mean\"}",
        "pm_prediction_score_count 120",
        "process_resident_memory_bytes",
    ] {
        assert!(t.contains(needle), "missing {needle:?} in\n{t}");
    }
    let risk_total: u64 = ["LOW", "MEDIUM", "HIGH"]
        .iter()
        .map(|r| {
            let line = t.lines().find(|l| l.starts_with(&format!("pm_predictions_total{{risk=\"{r}\"}}"))).unwrap();
            line.rsplit(' ').next().unwrap().parse::<u64>().unwrap()
        })
        .sum();
    assert_eq!(risk_total, 120);
    // promtool's linter (PM_PROMTOOL, which `make test` provides).
    if let Some(promtool) = optional_tool("PM_PROMTOOL", "promtool's metrics lint") {
        use std::io::Write;
        let mut child = std::process::Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(t.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool check metrics: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test]
async fn drift_of_shifted_inputs_shows_in_the_psi_gauges() {
    let f = fixture();
    let cfg = ServeConfig {
        rules: pm_serve::model::InputRules { drift_window: 150, drift_sample: 1, ..ServeConfig::default().rules },
        ..ServeConfig::default()
    };
    let st = state_with(cfg);
    let app = app(st.clone());
    let rows = machine_rows(8);
    // Readings with every voltage 40 % above its real value.
    let readings: Vec<Value> = (rows.start..rows.start + 150)
        .map(|i| {
            let mut r = reading_json(&f.ds, i, true);
            r["volt"] = json!(r["volt"].as_f64().unwrap() * 1.4);
            r
        })
        .collect();
    for r in readings {
        assert_eq!(call(&app, "POST", "/predict", Some(r)).await.status, StatusCode::OK);
    }
    let psi = st.slot.get().unwrap().drift.psi().1;
    let get = |n: &str| psi.iter().find(|(name, _)| name == n).unwrap().1;
    assert!(get("volt") > 1.0, "volt PSI {}", get("volt"));
    assert!(get("rotate") < get("volt") / 5.0, "rotate PSI {} vs volt {}", get("rotate"), get("volt"));
}

/// Swaps: new models serve at once; a bundle for another model or contract is refused while the
/// current one keeps serving; health, readiness and metrics say so.
#[tokio::test]
async fn hot_swap_and_refusal() {
    let f = fixture();
    let st = state();
    let app = app(st.clone());
    let rows = machine_rows(9);
    let readings: Vec<Value> = (rows.start..rows.start + 30).map(|i| reading_json(&f.ds, i, true)).collect();
    call(&app, "POST", "/telemetry", Some(json!({ "readings": readings }))).await;
    let p1 = call(&app, "POST", "/predict", Some(json!({ "machineID": 9 }))).await.body;
    assert_eq!(p1["model_version"], "v1");
    assert!(st.offer("v2".into(), "sha-v2".into(), f.bundle2.clone(), "test"));
    let p2 = call(&app, "POST", "/predict", Some(json!({ "machineID": 9 }))).await.body;
    assert_eq!(p2["model_version"], "v2");
    assert_ne!(p1["failure_probability"], p2["failure_probability"], "the state carried over, the model changed");

    let mut other_contract = f.bundle.clone();
    other_contract.feature_spec.contract.sensors[0].name = "voltage".into();
    assert!(!st.offer("v3".into(), "sha-v3".into(), other_contract, "test"));
    let mut other_name = f.bundle.clone();
    other_name.name = "pm-other".into();
    assert!(!st.offer("v4".into(), "sha-v4".into(), other_name, "test"));
    let p = call(&app, "POST", "/predict", Some(json!({ "machineID": 9 }))).await;
    assert_eq!((p.status, p.body["model_version"].as_str()), (StatusCode::OK, Some("v2")));
    let h = call(&app, "GET", "/health", None).await.body;
    assert_eq!(h["status"], "degraded");
    assert_eq!(h["refused"]["version"], "v4");
    assert!(
        h["refused"]["reason"]
            .as_str()
            .unwrap()
            .contains("the bundle is model \"pm-other\", this server serves \"pm-failure\"")
    );
    let r = call(&app, "GET", "/ready", None).await;
    assert_eq!((r.status, r.body["refused"]["version"].as_str()), (StatusCode::OK, Some("v4")));
    let m = call(&app, "GET", "/metrics", None).await.text;
    assert!(m.contains("pm_model_reloads_total{result=\"refused\"} 2"), "{m}");
    assert!(m.contains("pm_model_refused 1"));
    assert!(m.contains("version=\"v2\"") && !m.contains("version=\"v1\""));
}

/// The physical bounds a reading is held to are the served model's data contract's (the ones
/// ingest held the training data to), shown in /model/info and the OpenAPI document; the
/// operator's `--bound` replaces one; a bundle saved before contracts had bounds gets the
/// built-in contract's for sensors of the same name.
#[tokio::test]
async fn physical_bounds_come_from_the_models_contract() {
    let f = fixture();
    let mut narrow = f.bundle.clone();
    narrow.feature_spec.contract.sensors[0].max = Some(300.0);
    let reading = |volt: f64| {
        let mut r = reading_json(&f.ds, machine_rows(2).start, true);
        r["volt"] = json!(volt);
        r
    };
    let serve = |bundle: pm_core::artifacts::bundle::ModelBundle, overrides: Vec<(String, f64, f64)>| {
        let cfg = ServeConfig {
            rules: pm_serve::model::InputRules { bounds: overrides, ..ServeConfig::default().rules },
            ..ServeConfig::default()
        };
        let st = pm_serve::AppState::new(cfg, "memory://test").unwrap();
        assert!(st.offer("v1".into(), "sha".into(), bundle, "test"));
        app(st)
    };

    let a = serve(narrow.clone(), vec![]);
    let p = call(&a, "POST", "/predict", Some(reading(400.0))).await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", p.text);
    assert_eq!(p.body["error"]["code"], "out_of_bounds");
    assert!(p.text.contains("volt: 400 is outside the physical bounds [0, 300]"), "{}", p.text);
    assert_eq!(call(&a, "POST", "/predict", Some(reading(299.0))).await.status, StatusCode::OK);
    let info = call(&a, "GET", "/model/info", None).await.body;
    assert_eq!(info["sensors"][0], json!({ "name": "volt", "min": 0.0, "max": 300.0 }));
    let doc = call(&a, "GET", "/openapi.json", None).await.body;
    assert_eq!(doc["components"]["schemas"]["Reading"]["properties"]["volt"]["maximum"], json!(300.0));

    let a = serve(narrow, vec![("volt".into(), 0.0, 500.0)]);
    assert_eq!(call(&a, "POST", "/predict", Some(reading(400.0))).await.status, StatusCode::OK);

    // Format 1 saved the sensors as bare names.
    let mut old = serde_json::to_value(&f.bundle).unwrap();
    old["feature_spec"]["contract"]["sensors"] = json!(["volt", "rotate", "pressure", "vibration"]);
    let old: pm_core::artifacts::bundle::ModelBundle = serde_json::from_value(old).unwrap();
    assert_eq!(old.feature_spec.contract.sensors[0].max, None);
    let a = serve(old, vec![]);
    let info = call(&a, "GET", "/model/info", None).await.body;
    assert_eq!(info["sensors"][0], json!({ "name": "volt", "min": 0.0, "max": 1000.0 }));
    assert_eq!(call(&a, "POST", "/predict", Some(reading(1000.5))).await.status, StatusCode::UNPROCESSABLE_ENTITY);
}

/// A `/predict` whose body has begun and does not go on until the sender does (or is dropped),
/// and a signal that fires once the server is reading it (waiting for the rest): by then the
/// request holds its permit and counts as in flight.
async fn stalled_predict()
-> (tokio::sync::mpsc::Sender<Result<bytes::Bytes, std::io::Error>>, Request<Body>, tokio::sync::oneshot::Receiver<()>)
{
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(1);
    let (reading_tx, reading) = tokio::sync::oneshot::channel();
    // (receiver, chunks handed out so far, the signal to fire when the next one is awaited)
    let stream = futures::stream::unfold((rx, 0u32, Some(reading_tx)), |(mut rx, served, mut signal)| async move {
        if served == 1
            && let Some(s) = signal.take()
        {
            let _ = s.send(());
        }
        rx.recv().await.map(|x| (x, (rx, served + 1, signal)))
    });
    let req = Request::builder()
        .method("POST")
        .uri("/predict")
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .unwrap();
    tx.send(Ok(bytes::Bytes::from_static(b"{\"machineID\""))).await.unwrap();
    (tx, req, reading)
}

/// Concurrency limit → 503 with Retry-After; a request over the timeout → 408. Probes are not
/// limited.
#[tokio::test]
async fn overload_is_shed_and_slow_requests_time_out() {
    let cfg = ServeConfig { max_inflight: 1, request_timeout: Duration::from_millis(300), ..ServeConfig::default() };
    let app = app(state_with(cfg));
    let rows = machine_rows(1);
    let readings: Vec<Value> = (rows.start..rows.start + 30).map(|i| reading_json(&fixture().ds, i, true)).collect();
    assert_eq!(call(&app, "POST", "/telemetry", Some(json!({ "readings": readings }))).await.status, StatusCode::OK);
    // A request whose body never finishes holds the one slot.
    let (tx, slow, reading) = stalled_predict().await;
    let app2 = app.clone();
    let held = tokio::spawn(async move { send(&app2, slow).await });
    reading.await.unwrap();
    let shed = call(&app, "POST", "/predict", Some(json!({ "machineID": 1 }))).await;
    assert_eq!(shed.status, StatusCode::SERVICE_UNAVAILABLE, "{}", shed.text);
    assert_eq!(shed.body["error"]["code"], "overloaded");
    assert_eq!(shed.headers["retry-after"], "1");
    assert_eq!(call(&app, "GET", "/health", None).await.status, StatusCode::OK, "probes are never shed");
    let slow = held.await.unwrap();
    assert_eq!(slow.status, StatusCode::REQUEST_TIMEOUT, "{}", slow.text);
    assert_eq!(slow.body["error"]["code"], "timeout");
    drop(tx);
    // The slot is free again: the machine is scored.
    let again = call(&app, "POST", "/predict", Some(json!({ "machineID": 1 }))).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
}

/// A request dropped unanswered (its client went away mid-body) gives back its permit and leaves
/// the in-flight gauge.
#[tokio::test]
async fn a_request_dropped_unanswered_leaves_no_trace_in_flight() {
    let cfg = ServeConfig { max_inflight: 1, ..ServeConfig::default() };
    let app = app(state_with(cfg));
    let in_flight = async || {
        let m = call(&app, "GET", "/metrics", None).await.text;
        let line = m.lines().find(|l| l.starts_with("pm_http_requests_in_flight ")).map(str::to_string);
        line.unwrap_or_else(|| panic!("no in-flight gauge in {m}"))
    };
    // The /metrics request counts itself.
    assert_eq!(in_flight().await, "pm_http_requests_in_flight 1");
    let (tx, slow, reading) = stalled_predict().await;
    let app2 = app.clone();
    let held = tokio::spawn(async move { send(&app2, slow).await });
    reading.await.unwrap();
    assert_eq!(in_flight().await, "pm_http_requests_in_flight 2");
    let shed = call(&app, "POST", "/predict", Some(json!({ "machineID": 1 }))).await;
    assert_eq!(shed.status, StatusCode::SERVICE_UNAVAILABLE, "the one permit is held: {}", shed.text);
    held.abort();
    assert!(held.await.is_err_and(|e| e.is_cancelled()));
    assert_eq!(in_flight().await, "pm_http_requests_in_flight 1");
    // The permit is back: the next request is answered (machine 1 has no readings here: 404).
    let after = call(&app, "POST", "/predict", Some(json!({ "machineID": 1 }))).await;
    assert_eq!((after.status, after.body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("unknown_machine")));
    drop(tx);
}

/// The OpenAPI document covers every route, and every request example in it works.
#[tokio::test]
async fn openapi_document_is_complete_and_its_examples_work() {
    let st = state();
    let app = app(st.clone());
    let doc = call(&app, "GET", "/openapi.json", None).await.body;
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/",
        "/health",
        "/ready",
        "/predict",
        "/predict/batch",
        "/telemetry",
        "/model/info",
        "/metrics",
        "/metrics/summary",
        "/openapi.json",
        "/docs",
        "/v1/models/pm-failure:predict",
        "/v1/models",
        "/v1/models/{name}",
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/{name}",
        "/v2/models/{name}/ready",
        "/v2/models/{name}/infer",
        "/v2/models/{name}/versions/{version}",
        "/v2/models/{name}/versions/{version}/ready",
        "/v2/models/{name}/versions/{version}/infer",
    ] {
        assert!(paths.contains_key(p), "{p} is not documented");
        // ... and is routed (a documented path that 404s with no_route would be a lie).
        let concrete = p.replace("{name}", "pm-failure").replace("{version}", "v1");
        let method = if paths[p].get("get").is_some() { "GET" } else { "POST" };
        let a = call(&app, method, &concrete, if method == "POST" { Some(json!({})) } else { None }).await;
        assert_ne!(a.body["error"]["code"], "no_route", "{p}");
    }
    for (method, path, body) in pm_serve::docs::examples(&pm_core::data::contract::Contract::azure_pdm(), "pm-failure")
    {
        let a = call(&app, method, &path, Some(body.clone())).await;
        assert_eq!(a.status, StatusCode::OK, "example {method} {path} {body}: {}", a.text);
        assert!(a.body.get("error").is_none());
    }
    // On a server that already holds the fleet (as `make serve` primes it), the examples answer
    // 200 in the order the document lists them, stateful ones before the telemetry example.
    let f = fixture();
    let primed = pm_serve::app(state());
    let rows = machine_rows(pm_serve::docs::EXAMPLE_MACHINE);
    let readings: Vec<Value> = (rows.end - 48..rows.end).map(|i| reading_json(&f.ds, i, true)).collect();
    assert_eq!(call(&primed, "POST", "/telemetry", Some(json!({ "readings": readings }))).await.status, StatusCode::OK);
    let mut listed = pm_serve::docs::examples(&pm_core::data::contract::Contract::azure_pdm(), "pm-failure");
    listed.sort_by(|a, b| a.1.cmp(&b.1));
    assert_ne!(listed[0].1, "/telemetry");
    for (method, path, body) in listed {
        let a = call(&primed, method, &path, Some(body.clone())).await;
        assert_eq!(a.status, StatusCode::OK, "example {method} {path} on a primed server {body}: {}", a.text);
    }
    let page = call(&app, "GET", "/docs", None).await.text;
    assert!(page.starts_with("<!doctype html>"));
    assert!(page.contains("/predict/batch") && page.contains("curl -s -X POST"));
}

/// The OpenAPI document validates against the OpenAPI 3.1 specification's schema
/// (openapi-spec-validator, installed by `make test`) — and the same document without its
/// required `info` object does not, so the check is live.
#[tokio::test]
async fn openapi_document_passes_a_standard_validator() {
    let python = std::env::var("PM_OPENAPI_PYTHON").unwrap_or_else(|_| {
        panic!("PM_OPENAPI_PYTHON is not set: run the tests with `make test`, which installs openapi-spec-validator")
    });
    let app = app(state());
    let doc = call(&app, "GET", "/openapi.json", None).await.body;
    let mut broken = doc.clone();
    broken.as_object_mut().unwrap().remove("info");
    let dir = tempfile::tempdir().unwrap();
    let validate = |name: &str, v: &Value| {
        let path = dir.path().join(name);
        std::fs::write(&path, serde_json::to_vec_pretty(v).unwrap()).unwrap();
        let out = std::process::Command::new(&python)
            .args(["-m", "openapi_spec_validator"])
            .arg(&path)
            .output()
            .unwrap_or_else(|e| panic!("{python}: {e}"));
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    };
    let (ok, text) = validate("openapi.json", &doc);
    assert!(ok, "the OpenAPI document does not validate:\n{text}");
    let (ok, text) = validate("broken.json", &broken);
    assert!(!ok && text.contains("info"), "a document without info validated:\n{text}");
}

/// Scoring a machine again without new telemetry gives the same row; any new reading or event,
/// or another model, shows at once.
#[tokio::test]
async fn a_machine_is_rescored_from_its_current_buffer_and_model() {
    let f = fixture();
    let st = state();
    let app = app(st.clone());
    let machine = 10;
    let rows = machine_rows(machine);
    let names = f.spec.names();
    let (errors, maint) = events_json(&f.ds, machine, f.ds.telemetry.time[rows.start + 40]);
    let readings: Vec<Value> = (rows.start..rows.start + 40).map(|i| reading_json(&f.ds, i, true)).collect();
    let a =
        call(&app, "POST", "/telemetry", Some(json!({ "readings": readings, "errors": errors, "maint": maint }))).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let ask = json!({ "machineID": machine, "return_features": true });
    let p1 = call(&app, "POST", "/predict", Some(ask.clone())).await.body;
    let p2 = call(&app, "POST", "/predict", Some(ask.clone())).await.body;
    assert_eq!(p1["datetime"], p2["datetime"]);
    assert!(same(&features_of(&p1, &names), &features_of(&p2, &names)));
    assert_eq!(p1["failure_probability"], p2["failure_probability"]);
    // One more reading: the row is the batch row of the new hour.
    let next = reading_json(&f.ds, rows.start + 40, true);
    call(&app, "POST", "/telemetry", Some(json!({ "readings": [next] }))).await;
    let p3 = call(&app, "POST", "/predict", Some(ask.clone())).await.body;
    let t = f.ds.telemetry.time[rows.start + 40];
    assert_eq!(p3["datetime"], json!(Timestamp(t).rfc3339()));
    let batch: Vec<f64> = f.table.columns.iter().map(|c| c[row_of(&f.table, machine, t)]).collect();
    assert!(same(&features_of(&p3, &names), &batch));
    // An error event changes the buffer too (error counts are features).
    let err = json!({ "machineID": machine, "datetime": Timestamp(t - 1800).rfc3339(), "errorID": f.ds.contract.error_types[0] });
    let a = call(&app, "POST", "/telemetry", Some(json!({ "errors": [err] }))).await;
    assert_eq!(a.body["accepted"]["errors"], 1, "{}", a.text);
    let p4 = call(&app, "POST", "/predict", Some(ask.clone())).await.body;
    assert!(!same(&features_of(&p4, &names), &batch), "the error event must show in the row");
    // Another model: scored with its own model on the same row.
    assert!(st.offer("v2".into(), "sha-v2".into(), f.bundle2.clone(), "test"));
    let p5 = call(&app, "POST", "/predict", Some(ask.clone())).await.body;
    assert_eq!(p5["model_version"], "v2");
    let x4 = features_of(&p4, &names);
    assert!(same(&features_of(&p5, &names), &x4));
    let x32: Vec<f32> = x4.iter().map(|&v| v as f32).collect();
    assert_eq!(p5["failure_probability"].as_f64().unwrap(), f.bundle2.model.predict(&x32).failure);
    // A replacement and a new description change the buffer: each shows in the next row.
    let comp = &f.ds.contract.components[0];
    let fix = json!({ "machineID": machine, "datetime": Timestamp(t - 900).rfc3339(), "comp": comp });
    let a = call(&app, "POST", "/telemetry", Some(json!({ "maint": [fix] }))).await;
    assert_eq!(a.body["accepted"]["maint"], 1, "{}", a.text);
    let p6 = call(&app, "POST", "/predict", Some(ask.clone())).await.body;
    let since = names.iter().position(|n| *n == format!("{comp}_hours_since_replacement")).unwrap();
    assert_eq!(p6["features"][&names[since]], json!(0.25), "{}", p6["features"]);
    let model = &f.ds.contract.models[0];
    let described = json!({ "machineID": machine, "model": model, "age": 42 });
    let a = call(&app, "POST", "/telemetry", Some(json!({ "machines": [described] }))).await;
    assert_eq!(a.body["accepted"]["machines"], 1, "{}", a.text);
    let p7 = call(&app, "POST", "/predict", Some(ask)).await.body;
    assert_eq!(p7["features"]["age"], json!(42.0), "{}", p7["features"]);
}

/// A client that trickles its request header (slowloris) is cut off at the header read timeout,
/// and so is one that connects and sends nothing; a client that sends its header at once is
/// answered on the same server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_trickles_its_header_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let timeout = Duration::from_millis(800);
    tokio::spawn(pm_serve::server::accept(listener, app(state()), timeout, std::future::pending()));

    // One byte of the header every 200 ms: the connection is closed after ~0.8 s, long before
    // the header would be complete (~9 s).
    let header = b"GET /health HTTP/1.1\r\nHost: x\r\nUser-Agent: slow-client/1.0\r\n\r\n";
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    let started = std::time::Instant::now();
    let mut sent = 0;
    let closed = loop {
        if slow.write_all(&header[sent..=sent]).await.is_err() {
            break true;
        }
        sent += 1;
        let mut buf = [0u8; 256];
        match tokio::time::timeout(Duration::from_millis(200), slow.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => {
                // hyper answers a timed-out header with 408 and closes.
                assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"), "{:?}", &buf[..n]);
            }
            Err(_) => {}
        }
        if sent == header.len() {
            break false;
        }
    };
    assert!(closed, "the trickling client was served to the end of its header");
    let took = started.elapsed();
    // (The server's clock starts at its first read, a little before ours.)
    assert!(took >= timeout * 3 / 4 && took < Duration::from_secs(5), "closed after {took:?}");
    assert!(sent < header.len() / 2, "{sent} of {} bytes were read first", header.len());

    // Connected, silent: closed too.
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf)).await.expect("not closed").unwrap_or(0);
    assert!(n == 0 || String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"));

    // A normal client meanwhile.
    let mut fast = tokio::net::TcpStream::connect(addr).await.unwrap();
    fast.write_all(header).await.unwrap();
    let n = fast.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
}

/// schemathesis (pinned, installed by `make test`) fuzzes every operation of the OpenAPI document
/// with `--checks all`: valid requests must be accepted, invalid ones refused, every answer
/// documented and shaped as documented. `serve/tests/schemathesis.toml` says what is configured
/// and why. The server holds the document's example machine and some of the fleet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_the_server_and_its_document_agree() {
    let python = std::env::var("PM_SCHEMATHESIS_PYTHON").unwrap_or_else(|_| {
        panic!("PM_SCHEMATHESIS_PYTHON is not set: run the tests with `make test`, which installs schemathesis")
    });
    let f = fixture();
    let app = app(state());
    for machine in [1, 2, 3] {
        let rows = machine_rows(machine);
        let readings: Vec<Value> = (rows.start..rows.start + 30).map(|i| reading_json(&f.ds, i, true)).collect();
        assert_eq!(
            call(&app, "POST", "/telemetry", Some(json!({ "readings": readings }))).await.status,
            StatusCode::OK
        );
    }
    // The document's telemetry example, after the fleet's (its times come later).
    for (method, path, body) in pm_serve::docs::examples(&f.ds.contract, "pm-failure").into_iter().take(1) {
        assert_eq!(call(&app, method, &path, Some(body)).await.status, StatusCode::OK);
    }
    let doc = call(&app, "GET", "/openapi.json", None).await.body;
    let documented: usize = doc["paths"].as_object().unwrap().values().map(|ops| ops.as_object().unwrap().len()).sum();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(pm_serve::server::accept(listener, app, DEFAULT_HEADER_READ_TIMEOUT, std::future::pending()));
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemathesis.toml");
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://{addr}/openapi.json");
    let out = tokio::process::Command::new(&python)
        .args(["-m", "schemathesis.cli", "--no-color", "--config-file", config, "run", &url, "--checks", "all"])
        .args(["--seed", "1"])
        .args(["--max-examples", "50", "--workers", "2", "--generation-database", "none"])
        .current_dir(dir.path())
        .output()
        .await
        .unwrap_or_else(|e| panic!("{python}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "schemathesis found disagreements:\n{text}");
    // It did test: every documented operation (but the document's own URL, which it leaves
    // out), with many cases.
    let tested = text.lines().find(|l| l.trim_start().starts_with("Tested:")).unwrap_or_default().to_string();
    assert!(doc["paths"]["/openapi.json"]["get"].is_object());
    assert_eq!(tested.trim(), format!("Tested: {}", documented - 1), "{text}");
    let generated = text.lines().find(|l| l.contains(" generated")).unwrap_or_default().to_string();
    let n: usize = generated.split_whitespace().next().and_then(|w| w.parse().ok()).unwrap_or(0);
    assert!(n > 500, "only {n} cases: {generated}");
}

/// A random machine history: irregular hours, sensor values, error and maintenance events (some
/// before the first reading), the machine's model and age.
#[derive(Clone, Debug)]
struct History {
    times: Vec<i64>,
    values: Vec<[f64; 4]>,
    errors: Vec<(i64, u16)>,
    maint: Vec<(i64, u16)>,
    model: u16,
    age: f64,
}

fn history() -> impl proptest::strategy::Strategy<Value = History> {
    use proptest::prelude::*;
    let t0 = 1_420_092_000i64;
    let gaps = prop::collection::vec(prop_oneof![7 => Just(1i64), 2 => 2i64..4, 1 => 10i64..60], 1..90);
    (
        gaps,
        any::<u64>(),
        prop::collection::vec((-120i64..300, 0u16..5), 0..25),
        prop::collection::vec((-500i64..300, 0u16..4), 0..8),
        0u16..4,
        0.0f64..25.0,
        prop::sample::select(vec![0.0f64, 0.1, 0.4]),
    )
        .prop_map(move |(gaps, seed, errors, maint, model, age, missing_rate)| {
            let mut t = t0;
            let times: Vec<i64> = gaps
                .iter()
                .map(|g| {
                    t += g * HOUR;
                    t
                })
                .collect();
            let mut rng = pm_core::rng::Rng::new(seed);
            let mean = [170.0, 450.0, 100.0, 40.0];
            // Sensor values missing (NaN) at a rate, as field data has them.
            let values = times
                .iter()
                .map(|_| {
                    mean.map(|m| {
                        let x = (m + 0.1 * m * rng.normal()).max(0.0);
                        if rng.chance(missing_rate) { f64::NAN } else { x }
                    })
                })
                .collect();
            let events = |list: Vec<(i64, u16)>| {
                let mut e: Vec<(i64, u16)> = list.into_iter().map(|(h, k)| (t0 + h * HOUR, k)).collect();
                e.sort();
                e.dedup();
                e
            };
            History { times, values, errors: events(errors), maint: events(maint), model, age }
        })
}

fn history_dataset(h: &History, machine: u32) -> pm_core::data::contract::Dataset {
    use pm_core::data::contract::{Contract, Events, Machines, Telemetry};
    let events = |list: &[(i64, u16)]| {
        let mut e = Events::default();
        for &(t, k) in list {
            e.push(machine, t, k);
        }
        e
    };
    pm_core::data::contract::Dataset {
        contract: Contract::azure_pdm(),
        telemetry: Telemetry {
            machine: vec![machine; h.times.len()],
            time: h.times.clone(),
            sensors: (0..4).map(|s| h.values.iter().map(|v| v[s]).collect()).collect(),
        },
        errors: events(&h.errors),
        maint: events(&h.maint),
        failures: Events::default(),
        machines: Machines { id: vec![machine], model: vec![h.model], age: vec![h.age] },
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 24, ..Default::default() })]

    /// The train/serve contract over random histories, through pm-serve itself: streamed to
    /// `/telemetry` reading by reading, every stateful `/predict` gives the batch row bit for
    /// bit; a window request carrying the history up to a reading gives it too. Sensor values
    /// are missing at random (sent as `null` or left out), as in field data.
    #[test]
    fn random_histories_give_the_batch_rows_through_the_stateful_and_window_paths(h in history()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let f = fixture();
            let machine = 500;
            let batch = pm_core::features::compute_batch_as::<f64>(&f.spec, &history_dataset(&h, machine));
            let names = f.spec.names();
            let c = pm_core::data::contract::Contract::azure_pdm();
            // A missing value is sent as `null` or left out, in turn.
            let reading = |i: usize, with_machine: bool| {
                let mut r = json!({ "datetime": Timestamp(h.times[i]).to_string() });
                for (s, name) in ["volt", "rotate", "pressure", "vibration"].into_iter().enumerate() {
                    let x = h.values[i][s];
                    if !x.is_nan() || (i + s).is_multiple_of(2) {
                        r[name] = json!(x);
                    }
                }
                if with_machine {
                    r["machineID"] = json!(machine);
                }
                r
            };
            let event = |(t, k): (i64, u16), key: &str, names: &[String], with_machine: bool| {
                let mut e = json!({ "datetime": Timestamp(t).to_string(), key: names[usize::from(k)] });
                if with_machine {
                    e["machineID"] = json!(machine);
                }
                e
            };
            let meta = json!({ "model": c.models[usize::from(h.model)], "age": h.age });
            let app = app(state());
            let mut described = meta.clone();
            described["machineID"] = json!(machine);
            // Events in time order with the readings, as a plant sends them.
            let (mut ei, mut mi) = (0, 0);
            call(&app, "POST", "/telemetry", Some(json!({ "machines": [described] }))).await;
            for (i, &t) in h.times.iter().enumerate() {
                let mut errors = Vec::new();
                while ei < h.errors.len() && h.errors[ei].0 <= t {
                    errors.push(event(h.errors[ei], "errorID", &c.error_types, true));
                    ei += 1;
                }
                let mut maint = Vec::new();
                while mi < h.maint.len() && h.maint[mi].0 <= t {
                    maint.push(event(h.maint[mi], "comp", &c.components, true));
                    mi += 1;
                }
                let body = json!({ "readings": [reading(i, true)], "errors": errors, "maint": maint });
                let a = call(&app, "POST", "/telemetry", Some(body)).await;
                proptest::prop_assert_eq!(a.status, StatusCode::OK, "{}", a.text);
                let p = call(&app, "POST", "/predict", Some(json!({ "machineID": machine, "return_features": true }))).await;
                proptest::prop_assert_eq!(p.status, StatusCode::OK, "{}", p.text);
                let row: Vec<f64> = batch.columns.iter().map(|col| col[i]).collect();
                proptest::prop_assert!(same(&features_of(&p.body, &names), &row), "stateful row {} differs", i);
                if i % 7 == 0 || i + 1 == h.times.len() {
                    let history = json!({
                        "readings": (0..=i).map(|k| reading(k, false)).collect::<Vec<_>>(),
                        "errors": h.errors.iter().filter(|e| e.0 <= t).map(|&e| event(e, "errorID", &c.error_types, false)).collect::<Vec<_>>(),
                        "maint": h.maint.iter().filter(|e| e.0 <= t).map(|&e| event(e, "comp", &c.components, false)).collect::<Vec<_>>(),
                        "machine": meta,
                    });
                    let w = call(&app, "POST", "/predict", Some(json!({ "machineID": machine, "return_features": true, "history": history }))).await;
                    proptest::prop_assert_eq!(w.status, StatusCode::OK, "{}", w.text);
                    proptest::prop_assert!(same(&features_of(&w.body, &names), &row), "window row {} differs", i);
                }
            }
            Ok(())
        })?;
    }
}
