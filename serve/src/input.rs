//! Request bodies → validated domain values, against the served model's data contract.
//!
//! Parsing is by hand over `serde_json::Value` so that every refusal names the field by its path
//! (`instances[2].history.readings[5].volt`) and says what was expected and what came. Field names
//! are the CSV columns of the data set (`machineID`, `datetime`, the sensor names, `errorID`,
//! `comp`, `model`, `age`); `machine_id` and `error` are accepted as snake-case spellings.

use std::collections::HashMap;

use pm_core::data::contract::Contract;
use pm_core::data::time::Timestamp;
use serde_json::{Map, Value};

use crate::error::ApiError;

mod fast;

/// Name → index lookups of a contract, and the physical bounds of its sensors.
#[derive(Clone, Debug)]
pub struct Vocab {
    pub sensors: Vec<String>,
    error_types: HashMap<String, u16>,
    components: HashMap<String, u16>,
    models: HashMap<String, u16>,
    /// Inclusive bounds per sensor, in contract order.
    pub bounds: Vec<(f64, f64)>,
    pub age_bounds: (f64, f64),
}

fn index(names: &[String]) -> HashMap<String, u16> {
    names.iter().enumerate().map(|(i, n)| (n.clone(), i as u16)).collect()
}

impl Vocab {
    /// The physical bounds of each sensor are the contract's (what ingest checked the training
    /// data against), unless `overrides` (the operator's `--bound NAME=MIN:MAX`) names the
    /// sensor. A contract saved before sensors had bounds (bundles of format 1) takes the
    /// built-in contract's bounds for a sensor of the same name; otherwise a sensor accepts any
    /// finite value.
    pub fn new(contract: &Contract, overrides: &[(String, f64, f64)]) -> Self {
        let builtin = Contract::azure_pdm();
        let sensor_bounds = contract
            .sensors
            .iter()
            .map(|s| {
                if let Some(&(_, lo, hi)) = overrides.iter().find(|(n, _, _)| *n == s.name) {
                    return (lo, hi);
                }
                match (s.min, s.max) {
                    (None, None) => builtin
                        .sensor_index(&s.name)
                        .map_or((f64::NEG_INFINITY, f64::INFINITY), |i| builtin.sensors[i].bounds()),
                    _ => s.bounds(),
                }
            })
            .collect();
        Vocab {
            sensors: contract.sensor_names(),
            error_types: index(&contract.error_types),
            components: index(&contract.components),
            models: index(&contract.models),
            bounds: sensor_bounds,
            age_bounds: (contract.age.min, contract.age.max),
        }
    }

    pub fn model_index(&self, name: &str) -> Option<u16> {
        self.models.get(name).copied()
    }
}

/// A validated reading.
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    pub machine: Option<u32>,
    pub time: i64,
    /// One value per contract sensor, in contract order.
    pub values: Values,
}

/// A reading's sensor values: inline up to eight sensors (the schema has four), so that a window
/// of readings is not one allocation per reading.
pub type Values = smallvec::SmallVec<[f64; 8]>;

/// A validated error or maintenance event (`kind` indexes the contract's vocabulary).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Event {
    pub machine: Option<u32>,
    pub time: i64,
    pub kind: u16,
}

/// Model (contract index) and age of a machine.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MachineMeta {
    pub machine: Option<u32>,
    pub model: u16,
    pub age: f64,
}

/// A `/telemetry` body.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TelemetryBatch {
    pub readings: Vec<Reading>,
    pub errors: Vec<Event>,
    pub maint: Vec<Event>,
    pub machines: Vec<MachineMeta>,
}

impl TelemetryBatch {
    pub fn len(&self) -> usize {
        self.readings.len() + self.errors.len() + self.maint.len() + self.machines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The recent history of one machine, sent with a prediction request (stateless mode).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Window {
    pub readings: Vec<Reading>,
    pub errors: Vec<Event>,
    pub maint: Vec<Event>,
    pub machine: Option<MachineMeta>,
}

impl Window {
    /// Items may repeat the machine id, which must be the request's: the first item about another
    /// machine (its list, and that machine), if any.
    pub fn foreign_item(&self, machine: u32) -> Option<(&'static str, u32)> {
        self.readings
            .iter()
            .map(|r| ("readings", r.machine))
            .chain(self.errors.iter().map(|e| ("errors", e.machine)))
            .chain(self.maint.iter().map(|e| ("maint", e.machine)))
            .chain(self.machine.iter().map(|m| ("machine", m.machine)))
            .find_map(|(what, id)| id.filter(|&id| id != machine).map(|id| (what, id)))
    }
}

/// What a prediction is computed from.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// The machine's buffered state (after `/telemetry`).
    State,
    /// Append this reading to the machine's state, then score the state (the seed's request shape,
    /// plus the reading's time).
    Reading(Reading),
    /// Score the history carried by the request; the server's state is not touched.
    Window(Window),
}

/// One prediction request.
#[derive(Clone, Debug, PartialEq)]
pub struct PredictRequest {
    pub machine: u32,
    pub source: Source,
    /// Return the feature vector with the prediction.
    pub return_features: bool,
}

/// Joins a path and a key: `a` + `b` → `a.b`.
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

/// `a` + 3 → `a[3]`.
pub fn at(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// The refusal of `v` at `path` where `what` is expected: "expected `what`, got <v's kind>".
fn wrong_type(path: impl Into<String>, what: &str, v: &Value) -> ApiError {
    ApiError::invalid(path, format!("expected {what}, got {}", kind_of(v)))
}

fn kind_of(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => {
            let short: String = s.chars().take(40).collect();
            format!("string {short:?}")
        }
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

fn object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, ApiError> {
    v.as_object().ok_or_else(|| wrong_type(path, "an object", v))
}

fn array<'a>(v: &'a Value, path: &str) -> Result<&'a Vec<Value>, ApiError> {
    v.as_array().ok_or_else(|| wrong_type(path, "an array", v))
}

/// The object itself, taken out of `v`.
pub fn into_object(v: Value, path: &str) -> Result<Map<String, Value>, ApiError> {
    match v {
        Value::Object(m) => Ok(m),
        other => Err(wrong_type(path, "an object", &other)),
    }
}

/// The array itself, taken out of `v`.
pub fn into_array(v: Value, path: &str) -> Result<Vec<Value>, ApiError> {
    match v {
        Value::Array(a) => Ok(a),
        other => Err(wrong_type(path, "an array", &other)),
    }
}

/// Refuses keys outside `allowed` (and the sensors, when `sensors` is given).
fn check_keys(map: &Map<String, Value>, path: &str, allowed: &[&str], sensors: Option<&Vocab>) -> Result<(), ApiError> {
    for key in map.keys() {
        // A scan of a few names is cheaper than hashing the key.
        let ok = allowed.contains(&key.as_str()) || sensors.is_some_and(|v| v.sensors.iter().any(|s| s == key));
        if !ok {
            let mut expected: Vec<&str> = allowed.to_vec();
            if let Some(v) = sensors {
                expected.extend(v.sensors.iter().map(String::as_str));
            }
            return Err(ApiError::invalid(
                join(path, key),
                format!("unknown field; expected one of: {}", expected.join(", ")),
            ));
        }
    }
    Ok(())
}

/// The value under `key` or its alias.
fn field<'a>(map: &'a Map<String, Value>, key: &str, alias: Option<&str>) -> Option<(&'a Value, String)> {
    if let Some(v) = map.get(key) {
        return Some((v, key.to_string()));
    }
    alias.and_then(|a| map.get(a).map(|v| (v, a.to_string())))
}

/// A machine id: a non-negative integer, also written as a number with no fraction (`7.0`, as
/// JSON Schema counts integers and Python's `json.dumps` writes a float id).
pub fn machine_id(v: &Value, path: &str) -> Result<u32, ApiError> {
    let whole = v.as_f64().filter(|x| x.fract() == 0.0 && *x >= 0.0 && *x < 2f64.powi(64)).map(|x| x as u64);
    match v.as_u64().or(whole) {
        Some(id) => u32::try_from(id)
            .map_err(|_| ApiError::invalid(path, format!("machine id {id} is larger than {}", u32::MAX))),
        None => Err(wrong_type(path, "a non-negative integer machine id", v)),
    }
}

fn optional_machine(map: &Map<String, Value>, path: &str) -> Result<Option<u32>, ApiError> {
    match field(map, "machineID", Some("machine_id")) {
        Some((v, key)) => machine_id(v, &join(path, &key)).map(Some),
        None => Ok(None),
    }
}

fn required_machine(map: &Map<String, Value>, path: &str) -> Result<u32, ApiError> {
    optional_machine(map, path)?.ok_or_else(|| ApiError::invalid(join(path, "machineID"), "required field is missing"))
}

fn datetime(map: &Map<String, Value>, path: &str) -> Result<i64, ApiError> {
    // The common case without building the field's path; the error path below names it.
    if let Some(t) = map.get("datetime").and_then(Value::as_str).and_then(|s| Timestamp::parse(s.as_bytes()).ok()) {
        return Ok(t.0);
    }
    let p = join(path, "datetime");
    let v = map.get("datetime").ok_or_else(|| ApiError::invalid(&p, "required field is missing"))?;
    let s = v.as_str().ok_or_else(|| wrong_type(&p, "a datetime string", v))?;
    Timestamp::parse(s.as_bytes())
        .map(|t| t.0)
        .map_err(|e| ApiError::invalid(&p, format!("{s:?} is not a datetime: {e}")))
}

fn number(v: &Value, path: &str) -> Result<f64, ApiError> {
    let x = v.as_f64().ok_or_else(|| wrong_type(path, "a number", v))?;
    if x.is_finite() { Ok(x) } else { Err(ApiError::invalid(path, format!("{x} is not a finite number"))) }
}

fn bounded(x: f64, (lo, hi): (f64, f64), path: &str) -> Result<f64, ApiError> {
    if x < lo || x > hi {
        return Err(ApiError::invalid(path, format!("{x} is outside the physical bounds [{lo}, {hi}]"))
            .with_code("out_of_bounds"));
    }
    Ok(x)
}

fn label(map: &HashMap<String, u16>, v: &Value, path: &str, what: &str, names: &[&str]) -> Result<u16, ApiError> {
    let s = v.as_str().ok_or_else(|| wrong_type(path, &format!("a {what} name"), v))?;
    map.get(s).copied().ok_or_else(|| {
        let mut known: Vec<&str> = names.to_vec();
        known.sort_unstable();
        ApiError::invalid(path, format!("unknown {what} {s:?}; known: {}", known.join(", "))).with_code("unknown_label")
    })
}

fn keys_of(map: &HashMap<String, u16>) -> Vec<&str> {
    map.keys().map(String::as_str).collect()
}

impl Vocab {
    /// The sensor values of an object: each finite and within bounds, or missing (absent or
    /// `null`: NaN, as the batch reader keeps an empty value).
    fn sensor_values(&self, map: &Map<String, Value>, path: &str) -> Result<Values, ApiError> {
        let mut values = Values::with_capacity(self.sensors.len());
        for (i, name) in self.sensors.iter().enumerate() {
            // The common case without building the field's path; the error path below names it.
            let (lo, hi) = self.bounds[i];
            let x = match map.get(name) {
                None | Some(Value::Null) => f64::NAN,
                Some(v) => match v.as_f64() {
                    Some(x) if x.is_finite() && x >= lo && x <= hi => x,
                    _ => {
                        let p = join(path, name);
                        bounded(number(v, &p)?, self.bounds[i], &p)?
                    }
                },
            };
            values.push(x);
        }
        Ok(values)
    }

    fn has_sensor(&self, map: &Map<String, Value>) -> bool {
        self.sensors.iter().any(|s| map.contains_key(s))
    }

    /// `{"machineID"?, "datetime", <sensors>}`.
    pub fn reading(&self, v: &Value, path: &str) -> Result<Reading, ApiError> {
        let map = object(v, path)?;
        check_keys(map, path, &["machineID", "machine_id", "datetime"], Some(self))?;
        Ok(Reading {
            machine: optional_machine(map, path)?,
            time: datetime(map, path)?,
            values: self.sensor_values(map, path)?,
        })
    }

    /// `{"machineID"?, "datetime", "errorID"}`.
    pub fn error_event(&self, v: &Value, path: &str) -> Result<Event, ApiError> {
        let map = object(v, path)?;
        check_keys(map, path, &["machineID", "machine_id", "datetime", "errorID", "error"], None)?;
        let (kv, key) = field(map, "errorID", Some("error"))
            .ok_or_else(|| ApiError::invalid(join(path, "errorID"), "required field is missing"))?;
        Ok(Event {
            machine: optional_machine(map, path)?,
            time: datetime(map, path)?,
            kind: label(&self.error_types, kv, &join(path, &key), "error type", &keys_of(&self.error_types))?,
        })
    }

    /// `{"machineID"?, "datetime", "comp"}`.
    pub fn maint_event(&self, v: &Value, path: &str) -> Result<Event, ApiError> {
        let map = object(v, path)?;
        check_keys(map, path, &["machineID", "machine_id", "datetime", "comp"], None)?;
        let kv = map.get("comp").ok_or_else(|| ApiError::invalid(join(path, "comp"), "required field is missing"))?;
        Ok(Event {
            machine: optional_machine(map, path)?,
            time: datetime(map, path)?,
            kind: label(&self.components, kv, &join(path, "comp"), "component", &keys_of(&self.components))?,
        })
    }

    /// `{"machineID"?, "model", "age"}`.
    pub fn machine_meta(&self, v: &Value, path: &str) -> Result<MachineMeta, ApiError> {
        let map = object(v, path)?;
        check_keys(map, path, &["machineID", "machine_id", "model", "age"], None)?;
        let mv = map.get("model").ok_or_else(|| ApiError::invalid(join(path, "model"), "required field is missing"))?;
        let av = map.get("age").ok_or_else(|| ApiError::invalid(join(path, "age"), "required field is missing"))?;
        let age_path = join(path, "age");
        Ok(MachineMeta {
            machine: optional_machine(map, path)?,
            model: label(&self.models, mv, &join(path, "model"), "machine model", &keys_of(&self.models))?,
            age: bounded(number(av, &age_path)?, self.age_bounds, &age_path)?,
        })
    }

    /// A list under `key` of `map` (absent = empty), each element parsed by `one`.
    fn list<T>(
        &self,
        map: &Map<String, Value>,
        path: &str,
        key: &str,
        one: impl Fn(&Self, &Value, &str) -> Result<T, ApiError>,
    ) -> Result<Vec<T>, ApiError> {
        let Some(v) = map.get(key) else { return Ok(Vec::new()) };
        let p = join(path, key);
        // Parsing is pure: an item is parsed again with its full path only to word its error, so
        // the common case builds no path strings.
        array(v, &p)?.iter().enumerate().map(|(i, x)| one(self, x, "").or_else(|_| one(self, x, &at(&p, i)))).collect()
    }

    /// A `/telemetry` body: `{"readings"?, "errors"?, "maint"?, "machines"?}`; every event names
    /// its machine. All items are checked before anything is applied.
    pub fn telemetry(&self, v: &Value) -> Result<TelemetryBatch, ApiError> {
        let map = object(v, "")?;
        check_keys(map, "", &["readings", "errors", "maint", "machines"], None)?;
        let batch = TelemetryBatch {
            readings: self.list(map, "", "readings", Self::reading)?,
            errors: self.list(map, "", "errors", Self::error_event)?,
            maint: self.list(map, "", "maint", Self::maint_event)?,
            machines: self.list(map, "", "machines", Self::machine_meta)?,
        };
        // Every item must say which machine it is about.
        let missing = batch
            .readings
            .iter()
            .position(|r| r.machine.is_none())
            .map(|i| at("readings", i))
            .or_else(|| batch.errors.iter().position(|r| r.machine.is_none()).map(|i| at("errors", i)))
            .or_else(|| batch.maint.iter().position(|r| r.machine.is_none()).map(|i| at("maint", i)))
            .or_else(|| batch.machines.iter().position(|r| r.machine.is_none()).map(|i| at("machines", i)));
        if let Some(p) = missing {
            return Err(ApiError::invalid(join(&p, "machineID"), "required field is missing"));
        }
        if batch.is_empty() {
            return Err(ApiError::invalid(
                "",
                "nothing to ingest: send at least one of readings, errors, maint, machines (non-empty arrays)",
            ));
        }
        Ok(batch)
    }

    /// `{"readings", "errors"?, "maint"?, "machine"?}` of one machine.
    fn window(&self, v: &Value, path: &str, machine: u32) -> Result<Window, ApiError> {
        let map = object(v, path)?;
        check_keys(map, path, &["readings", "errors", "maint", "machine"], None)?;
        if !map.contains_key("readings") {
            return Err(ApiError::invalid(join(path, "readings"), "required field is missing"));
        }
        let w = Window {
            readings: self.list(map, path, "readings", Self::reading)?,
            errors: self.list(map, path, "errors", Self::error_event)?,
            maint: self.list(map, path, "maint", Self::maint_event)?,
            machine: match map.get("machine") {
                Some(m) => Some(self.machine_meta(m, &join(path, "machine"))?),
                None => None,
            },
        };
        if w.readings.is_empty() {
            return Err(ApiError::invalid(join(path, "readings"), "the history needs at least one reading"));
        }
        if let Some((what, id)) = w.foreign_item(machine) {
            return Err(ApiError::invalid(
                join(path, what),
                format!("an item is about machine {id}, but the request is for machine {machine}"),
            ));
        }
        Ok(w)
    }

    /// [`Self::predict_request`] straight from a body's bytes, for a valid request of the native
    /// shape; `None` for anything else — then parse the body as a `Value` and call
    /// `predict_request`, which says what is wrong (see `fast`).
    pub fn predict_request_fast(&self, body: &[u8]) -> Option<PredictRequest> {
        fast::predict_request(self, body)
    }

    /// [`Self::predict_request`] for every item of a list body `{"<field>": [...]}` (`field` one
    /// of `fields`) straight from its bytes, when the list is not empty and every item is valid;
    /// `None` for anything else — then parse the body as a `Value`, which answers item by item.
    pub fn request_list_fast(
        &self,
        body: &[u8],
        fields: &[&'static str],
    ) -> Option<(&'static str, Vec<PredictRequest>)> {
        fast::request_list(self, body, fields)
    }

    /// One prediction request: `{"machineID"}`, `{"machineID", "datetime", <sensors>}` or
    /// `{"machineID", "history": {...}}`, each with an optional `"return_features": true`.
    pub fn predict_request(&self, v: &Value, path: &str) -> Result<PredictRequest, ApiError> {
        let map = object(v, path)?;
        check_keys(map, path, &["machineID", "machine_id", "datetime", "history", "return_features"], Some(self))?;
        let machine = required_machine(map, path)?;
        let return_features = match map.get("return_features") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(wrong_type(join(path, "return_features"), "true or false", other));
            }
        };
        let has_reading = self.has_sensor(map) || map.contains_key("datetime");
        let source = match (map.get("history"), has_reading) {
            (Some(_), true) => {
                return Err(ApiError::invalid(
                    path,
                    "send either a reading (datetime and sensor values) or a history, not both",
                ));
            }
            (Some(h), false) => Source::Window(self.window(h, &join(path, "history"), machine)?),
            (None, true) => {
                // The values first: a wrong value is the more specific complaint.
                let values = self.sensor_values(map, path)?;
                if !map.contains_key("datetime") {
                    return Err(ApiError::invalid(
                        join(path, "datetime"),
                        "required with a reading: features are computed over time windows, so the reading needs its time",
                    ));
                }
                Source::Reading(Reading { machine: Some(machine), time: datetime(map, path)?, values })
            }
            (None, false) => Source::State,
        };
        Ok(PredictRequest { machine, source, return_features })
    }
}
