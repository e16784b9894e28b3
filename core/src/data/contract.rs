//! The data contract: the five files of the Azure Predictive Maintenance schema, their columns,
//! the label vocabularies, and the typed in-memory tables they are read into.
//!
//! **API boundary.** The vocabularies are data, not code: a [`Contract`] is saved inside every
//! [`crate::features::FeatureSpec`], so a model always knows the sensor, error, component and
//! model names it was trained with.

use serde::{Deserialize, Serialize};

/// The five input files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    Telemetry,
    Errors,
    Maint,
    Failures,
    Machines,
}

impl FileKind {
    pub const ALL: [FileKind; 5] =
        [FileKind::Telemetry, FileKind::Errors, FileKind::Maint, FileKind::Failures, FileKind::Machines];

    /// The file name used by the original distribution.
    pub fn file_name(self) -> &'static str {
        match self {
            FileKind::Telemetry => "PdM_telemetry.csv",
            FileKind::Errors => "PdM_errors.csv",
            FileKind::Maint => "PdM_maint.csv",
            FileKind::Failures => "PdM_failures.csv",
            FileKind::Machines => "PdM_machines.csv",
        }
    }

    /// Short name used in reports and artifact file names.
    pub fn name(self) -> &'static str {
        match self {
            FileKind::Telemetry => "telemetry",
            FileKind::Errors => "errors",
            FileKind::Maint => "maint",
            FileKind::Failures => "failures",
            FileKind::Machines => "machines",
        }
    }

    /// For an event file: the column that holds the label, and its vocabulary.
    pub fn label_column(self) -> Option<&'static str> {
        match self {
            FileKind::Errors => Some("errorID"),
            FileKind::Maint => Some("comp"),
            FileKind::Failures => Some("failure"),
            FileKind::Telemetry | FileKind::Machines => None,
        }
    }
}

/// One telemetry sensor: its column name, unit, and the inclusive physical bounds of a reading.
///
/// A value outside the bounds is a bad row in ingest and refused by pm-serve: both read them from
/// here. In a contract file a sensor is `{name, unit, min, max}`; a bare name (how contracts were
/// saved before sensors had bounds, in `feature_spec.json` and bundles of format 1) reads as a
/// sensor without unit or bounds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Sensor {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

impl Sensor {
    pub fn new(name: &str, unit: Option<&str>, min: f64, max: f64) -> Self {
        Sensor { name: name.to_string(), unit: unit.map(String::from), min: Some(min), max: Some(max) }
    }

    /// The inclusive bounds; an unset side is unbounded.
    pub fn bounds(&self) -> (f64, f64) {
        (self.min.unwrap_or(f64::NEG_INFINITY), self.max.unwrap_or(f64::INFINITY))
    }

    /// Whether `x` (finite) is within the bounds.
    pub fn admits(&self, x: f64) -> bool {
        let (lo, hi) = self.bounds();
        (lo..=hi).contains(&x)
    }

    /// The bounds as a message shows them: `[0, 1000] V`.
    pub fn bounds_text(&self) -> String {
        let side = |v: Option<f64>, inf: &str| v.map_or(inf.to_string(), |v| v.to_string());
        let unit = self.unit.as_deref().map(|u| format!(" {u}")).unwrap_or_default();
        format!("[{}, {}]{unit}", side(self.min, "-inf"), side(self.max, "inf"))
    }
}

impl<'de> Deserialize<'de> for Sensor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Fields {
            name: String,
            #[serde(default)]
            unit: Option<String>,
            #[serde(default)]
            min: Option<f64>,
            #[serde(default)]
            max: Option<f64>,
        }
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Sensor;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a sensor: {name, unit, min, max} or a bare name")
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Sensor, E> {
                Ok(Sensor { name: name.to_string(), unit: None, min: None, max: None })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Sensor, A::Error> {
                let f = Fields::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(Sensor { name: f.name, unit: f.unit, min: f.min, max: f.max })
            }
        }
        d.deserialize_any(V)
    }
}

/// Column names and label vocabularies. [`Contract::azure_pdm`] is the real data set's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contract {
    /// Telemetry sensor columns, in file order after `datetime, machineID`.
    pub sensors: Vec<Sensor>,
    /// Values of `errorID` in the errors file.
    pub error_types: Vec<String>,
    /// Values of `comp` (maint) and `failure` (failures).
    pub components: Vec<String>,
    /// Values of `model` in the machines file.
    pub models: Vec<String>,
    /// Inclusive bounds of a machine's age, years.
    #[serde(default = "default_age")]
    pub age: AgeBounds,
}

/// Inclusive bounds of the machines file's `age`, years.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgeBounds {
    pub min: f64,
    pub max: f64,
}

fn default_age() -> AgeBounds {
    AgeBounds { min: 0.0, max: 100.0 }
}

impl Contract {
    /// The Microsoft Azure Predictive Maintenance schema.
    pub fn azure_pdm() -> Self {
        let names = |prefix: &str, n: usize| (1..=n).map(|i| format!("{prefix}{i}")).collect();
        // Wide ranges a working sensor can report (the data set's readings are volt 97-255,
        // rotate 138-695, pressure 51-186, vibration 14-76): they refuse negative readings and
        // unit mistakes by orders of magnitude, not unusual ones. The data set names no units
        // beyond what its column names say.
        Contract {
            sensors: vec![
                Sensor::new("volt", Some("V"), 0.0, 1_000.0),
                Sensor::new("rotate", Some("rpm"), 0.0, 10_000.0),
                Sensor::new("pressure", None, 0.0, 1_000.0),
                Sensor::new("vibration", None, 0.0, 1_000.0),
            ],
            error_types: names("error", 5),
            components: names("comp", 4),
            models: names("model", 4),
            age: default_age(),
        }
    }

    /// The sensor column names, in file order.
    pub fn sensor_names(&self) -> Vec<String> {
        self.sensors.iter().map(|s| s.name.clone()).collect()
    }

    /// Each sensor's inclusive bounds, in file order.
    pub fn sensor_bounds(&self) -> Vec<(f64, f64)> {
        self.sensors.iter().map(Sensor::bounds).collect()
    }

    /// Whether tables read under `other` have the same layout: the same sensors in the same order
    /// and the same vocabularies (units and bounds may differ: they govern what is admitted, not
    /// what is stored).
    pub fn same_layout(&self, other: &Contract) -> bool {
        self.sensor_names() == other.sensor_names()
            && self.error_types == other.error_types
            && self.components == other.components
            && self.models == other.models
    }

    /// The position of a sensor by name.
    pub fn sensor_index(&self, name: &str) -> Option<usize> {
        self.sensors.iter().position(|s| s.name == name)
    }

    /// Expected header of a file, in the original column order.
    pub fn columns(&self, kind: FileKind) -> Vec<String> {
        let s = |x: &str| x.to_string();
        match kind {
            FileKind::Telemetry => {
                let mut c = vec![s("datetime"), s("machineID")];
                c.extend(self.sensors.iter().map(|s| s.name.clone()));
                c
            }
            FileKind::Errors => vec![s("datetime"), s("machineID"), s("errorID")],
            FileKind::Maint => vec![s("datetime"), s("machineID"), s("comp")],
            FileKind::Failures => vec![s("datetime"), s("machineID"), s("failure")],
            FileKind::Machines => vec![s("machineID"), s("model"), s("age")],
        }
    }

    /// The vocabulary of an event file's label column.
    pub fn vocabulary(&self, kind: FileKind) -> &[String] {
        match kind {
            FileKind::Errors => &self.error_types,
            FileKind::Maint | FileKind::Failures => &self.components,
            FileKind::Machines => &self.models,
            FileKind::Telemetry => &[],
        }
    }
}

/// Hourly sensor readings, column-oriented, sorted by `(machine, time)` once validated.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Telemetry {
    pub machine: Vec<u32>,
    /// Seconds since the epoch.
    pub time: Vec<i64>,
    /// One column per contract sensor.
    pub sensors: Vec<Vec<f64>>,
}

impl Telemetry {
    pub fn with_sensors(n_sensors: usize) -> Self {
        Telemetry { machine: Vec::new(), time: Vec::new(), sensors: vec![Vec::new(); n_sensors] }
    }

    pub fn len(&self) -> usize {
        self.time.len()
    }

    pub fn is_empty(&self) -> bool {
        self.time.is_empty()
    }

    /// Row ranges of each machine (the table must be sorted by machine).
    pub fn machine_ranges(&self) -> Vec<(u32, std::ops::Range<usize>)> {
        ranges_by_key(&self.machine)
    }
}

/// Timestamped, labelled events (errors, maintenance, failures); `kind` indexes the contract
/// vocabulary of the file. Sorted by `(machine, time, kind)` once validated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Events {
    pub machine: Vec<u32>,
    pub time: Vec<i64>,
    pub kind: Vec<u16>,
}

impl Events {
    pub fn len(&self) -> usize {
        self.time.len()
    }

    pub fn is_empty(&self) -> bool {
        self.time.is_empty()
    }

    pub fn machine_ranges(&self) -> Vec<(u32, std::ops::Range<usize>)> {
        ranges_by_key(&self.machine)
    }

    pub fn push(&mut self, machine: u32, time: i64, kind: u16) {
        self.machine.push(machine);
        self.time.push(time);
        self.kind.push(kind);
    }
}

/// Machine metadata: model (contract vocabulary index) and age in years. Sorted by id.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Machines {
    pub id: Vec<u32>,
    pub model: Vec<u16>,
    pub age: Vec<f64>,
}

impl Machines {
    pub fn len(&self) -> usize {
        self.id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.id.is_empty()
    }

    /// Index of a machine id (the table must be sorted by id).
    pub fn position(&self, id: u32) -> Option<usize> {
        self.id.binary_search(&id).ok()
    }
}

/// All five tables of one data set, validated and sorted.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub contract: Contract,
    pub telemetry: Telemetry,
    pub errors: Events,
    pub maint: Events,
    pub failures: Events,
    pub machines: Machines,
}

impl Dataset {
    pub fn events(&self, kind: FileKind) -> Option<&Events> {
        match kind {
            FileKind::Errors => Some(&self.errors),
            FileKind::Maint => Some(&self.maint),
            FileKind::Failures => Some(&self.failures),
            FileKind::Telemetry | FileKind::Machines => None,
        }
    }
}

/// Contiguous runs of equal keys in a sorted column: `(key, row range)`.
pub fn ranges_by_key(keys: &[u32]) -> Vec<(u32, std::ops::Range<usize>)> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=keys.len() {
        if i == keys.len() || keys[i] != keys[start] {
            out.push((keys[start], start..i));
            start = i;
        }
    }
    out
}

/// The row range of `machine` in a column sorted by machine (empty if absent).
pub fn machine_range(keys: &[u32], machine: u32) -> std::ops::Range<usize> {
    let lo = keys.partition_point(|&m| m < machine);
    let hi = keys.partition_point(|&m| m <= machine);
    lo..hi
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn azure_contract_columns_match_the_real_headers() {
        let c = Contract::azure_pdm();
        assert_eq!(
            c.columns(FileKind::Telemetry),
            ["datetime", "machineID", "volt", "rotate", "pressure", "vibration"]
        );
        assert_eq!(c.columns(FileKind::Machines), ["machineID", "model", "age"]);
        assert_eq!(c.vocabulary(FileKind::Errors)[4], "error5");
        assert_eq!(c.vocabulary(FileKind::Failures), ["comp1", "comp2", "comp3", "comp4"]);
    }

    #[test]
    fn a_sensor_reads_from_an_object_or_from_a_bare_name() {
        let c: Contract = serde_json::from_str(
            r#"{"sensors": ["volt", {"name": "temp", "unit": "C", "min": -40, "max": 150}],
                "error_types": [], "components": [], "models": []}"#,
        )
        .unwrap();
        assert_eq!(c.sensors[0], Sensor { name: "volt".into(), unit: None, min: None, max: None });
        assert_eq!(c.sensors[0].bounds(), (f64::NEG_INFINITY, f64::INFINITY));
        assert_eq!(c.sensors[1], Sensor::new("temp", Some("C"), -40.0, 150.0));
        assert_eq!(c.sensors[1].bounds_text(), "[-40, 150] C");
        assert!(c.sensors[1].admits(150.0) && !c.sensors[1].admits(150.5));
        assert_eq!(c.age, AgeBounds { min: 0.0, max: 100.0 });
        let back: Contract = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        let err = serde_json::from_str::<Sensor>(r#"{"name": "t", "maximum": 3}"#).unwrap_err().to_string();
        assert!(err.contains("unknown field `maximum`"), "{err}");
    }

    #[test]
    fn ranges_split_sorted_keys() {
        assert_eq!(ranges_by_key(&[1, 1, 2, 5, 5, 5]), vec![(1, 0..2), (2, 2..3), (5, 3..6)]);
        assert!(ranges_by_key(&[]).is_empty());
        assert_eq!(machine_range(&[1, 1, 2, 5, 5, 5], 5), 3..6);
        assert_eq!(machine_range(&[1, 1, 2, 5, 5, 5], 3), 3..3);
    }
}
