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

    /// For an event file: the name of its label column in the product's own data set (the input
    /// file's name for it is the contract's, [`Columns`]).
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

/// How one input file is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    Csv,
    Parquet,
}

impl FileFormat {
    /// The format a file name's extension says: `.parquet`/`.pq` is Parquet, anything else CSV.
    pub fn of_path(path: &str) -> FileFormat {
        let lower = path.to_ascii_lowercase();
        if lower.ends_with(".parquet") || lower.ends_with(".pq") { FileFormat::Parquet } else { FileFormat::Csv }
    }
}

/// Where one of the five files is, inside the input folder, and its format.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    pub path: String,
    /// `csv` or `parquet`; unset, the extension decides ([`FileFormat::of_path`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<FileFormat>,
}

impl FileSpec {
    pub fn format(&self) -> FileFormat {
        self.format.unwrap_or_else(|| FileFormat::of_path(&self.path))
    }
}

/// The five files of a data set. Each defaults to the Azure distribution's name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Files {
    pub telemetry: FileSpec,
    pub errors: FileSpec,
    pub maint: FileSpec,
    pub failures: FileSpec,
    pub machines: FileSpec,
}

impl Files {
    pub fn get(&self, kind: FileKind) -> &FileSpec {
        match kind {
            FileKind::Telemetry => &self.telemetry,
            FileKind::Errors => &self.errors,
            FileKind::Maint => &self.maint,
            FileKind::Failures => &self.failures,
            FileKind::Machines => &self.machines,
        }
    }

    pub fn get_mut(&mut self, kind: FileKind) -> &mut FileSpec {
        match kind {
            FileKind::Telemetry => &mut self.telemetry,
            FileKind::Errors => &mut self.errors,
            FileKind::Maint => &mut self.maint,
            FileKind::Failures => &mut self.failures,
            FileKind::Machines => &mut self.machines,
        }
    }
}

impl Default for Files {
    fn default() -> Self {
        let azure = |kind: FileKind| FileSpec { path: kind.file_name().to_string(), format: None };
        Files {
            telemetry: azure(FileKind::Telemetry),
            errors: azure(FileKind::Errors),
            maint: azure(FileKind::Maint),
            failures: azure(FileKind::Failures),
            machines: azure(FileKind::Machines),
        }
    }
}

/// The names of the key and label columns in the input files (matched without regard to
/// case). Inside the product the keys are always `datetime` and `machineID`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Columns {
    /// The reading or event time, in every file but machines.
    pub datetime: String,
    /// The machine id (a non-negative integer), in every file.
    pub machine_id: String,
    /// The error type, in the errors file.
    pub error: String,
    /// The serviced component, in the maintenance file.
    pub maint_component: String,
    /// The failed component, in the failures file.
    pub failure_component: String,
    /// The machine model, in the machines file.
    pub model: String,
    /// The machine age in years, in the machines file.
    pub age: String,
}

impl Default for Columns {
    fn default() -> Self {
        let s = |x: &str| x.to_string();
        Columns {
            datetime: s("datetime"),
            machine_id: s("machineID"),
            error: s("errorID"),
            maint_component: s("comp"),
            failure_component: s("failure"),
            model: s("model"),
            age: s("age"),
        }
    }
}

/// A text form of the datetimes in CSV files (Parquet files carry typed timestamps).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DatetimeForm {
    /// `2015-01-05 06:00:00` (`T` for the space and a trailing `Z` accepted).
    Iso,
    /// `1/5/2015 6:00:00 AM`, as spreadsheet tools re-save it.
    Us,
}

impl DatetimeForm {
    /// The form of a datetime text that parsed.
    pub fn of(text: &[u8]) -> DatetimeForm {
        if text.len() >= 10 && text[4] == b'-' { DatetimeForm::Iso } else { DatetimeForm::Us }
    }

    pub fn name(self) -> &'static str {
        match self {
            DatetimeForm::Iso => "iso",
            DatetimeForm::Us => "us",
        }
    }
}

/// The expected spacing of a machine's readings, written `30s`, `10m`, `1h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cadence(pub i64);

impl Cadence {
    pub const HOURLY: Cadence = Cadence(3_600);

    pub fn parse(text: &str) -> Result<Cadence, String> {
        let t = text.trim();
        let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
        let n: i64 = num.parse().map_err(|_| format!("cadence {text:?}: expected a number and s, m or h, like 10m"))?;
        let secs = match unit {
            "s" => n,
            "m" => n.saturating_mul(60),
            "h" => n.saturating_mul(3_600),
            _ => return Err(format!("cadence {text:?}: expected a number and s, m or h, like 10m")),
        };
        if !(1..=7 * 86_400).contains(&secs) {
            return Err(format!("cadence {text:?}: must be between 1s and 168h"));
        }
        Ok(Cadence(secs))
    }
}

impl std::fmt::Display for Cadence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            s if s % 3_600 == 0 => write!(f, "{}h", s / 3_600),
            s if s % 60 == 0 => write!(f, "{}m", s / 60),
            s => write!(f, "{s}s"),
        }
    }
}

impl Serialize for Cadence {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cadence {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Cadence::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A fleet's data contract: where its five files are and in which format, the names of their
/// columns, each sensor with its unit and physical bounds, the label vocabularies, the cadence
/// of the readings and the accepted datetime forms. [`Contract::azure_pdm`] is the Azure data
/// set's and the default; every field but the sensors and vocabularies defaults to it, so the
/// contracts saved before those fields existed read unchanged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contract {
    /// A name for reports and logs.
    #[serde(default = "default_name")]
    pub name: String,
    /// The expected spacing of a machine's readings.
    #[serde(default = "default_cadence")]
    pub cadence: Cadence,
    /// The datetime text forms accepted in CSV files.
    #[serde(default = "default_forms")]
    pub datetime_forms: Vec<DatetimeForm>,
    #[serde(default)]
    pub files: Files,
    #[serde(default)]
    pub columns: Columns,
    /// Telemetry sensor columns (in the files, any order after the keys).
    pub sensors: Vec<Sensor>,
    /// Values of the errors file's error column.
    pub error_types: Vec<String>,
    /// Values of the maintenance and failures files' component columns.
    pub components: Vec<String>,
    /// Values of the machines file's model column.
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

fn default_name() -> String {
    "azure-pdm".to_string()
}

fn default_cadence() -> Cadence {
    Cadence::HOURLY
}

fn default_forms() -> Vec<DatetimeForm> {
    vec![DatetimeForm::Iso, DatetimeForm::Us]
}

/// Why a contract was refused: every problem, each naming its field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("data contract {source_name}: {}", problems.join("; "))]
pub struct ContractError {
    pub source_name: String,
    pub problems: Vec<String>,
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
            name: default_name(),
            cadence: Cadence::HOURLY,
            datetime_forms: default_forms(),
            files: Files::default(),
            columns: Columns::default(),
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

    /// Reads a contract from YAML or JSON text (JSON is YAML) and checks it; `source_name` (a
    /// path or URL) names it in errors.
    pub fn parse(text: &[u8], source_name: &str) -> Result<Contract, ContractError> {
        let fail = |p: String| ContractError { source_name: source_name.to_string(), problems: vec![p] };
        let text = std::str::from_utf8(text).map_err(|e| fail(format!("not UTF-8 text: {e}")))?;
        let c: Contract = yaml_serde::from_str(text).map_err(|e| fail(e.to_string()))?;
        c.check().map_err(|problems| ContractError { source_name: source_name.to_string(), problems })?;
        Ok(c)
    }

    /// Reads and checks the contract at a URL or local path (YAML or JSON). A contract that is
    /// not there is bad input, like one that does not parse: retrying cannot help.
    pub async fn load(location: &str) -> anyhow::Result<Contract> {
        use crate::artifacts::store::StoreError;
        let bytes = match crate::artifacts::store::read_location(location).await {
            Ok(b) => b,
            Err(e @ StoreError::NotFound { .. }) => return Err(crate::cli::BadInput(e.into()).into()),
            Err(e) => return Err(e.into()),
        };
        Ok(Contract::parse(&bytes, location)?)
    }

    /// The contract as YAML, as `pm-ingest contract --print-default` prints it.
    pub fn to_yaml(&self) -> String {
        yaml_serde::to_string(self).unwrap_or_default()
    }

    /// Every inconsistency of the contract, each naming its field.
    pub fn check(&self) -> Result<(), Vec<String>> {
        let mut p = Vec::new();
        let mut names = |field: &str, list: &[String], min: usize, max: usize| {
            if list.len() < min || list.len() > max {
                p.push(format!("{field}: needs {min} to {max} entries, has {}", list.len()));
            }
            let mut seen = std::collections::HashSet::new();
            for (i, n) in list.iter().enumerate() {
                if n.trim().is_empty() || n.trim() != n {
                    p.push(format!("{field}[{i}]: {n:?} must be a non-empty name without surrounding spaces"));
                } else if !seen.insert(n.to_ascii_lowercase()) {
                    p.push(format!("{field}[{i}]: {n:?} is listed twice"));
                }
            }
        };
        let sensor_names = self.sensor_names();
        names("sensors", &sensor_names, 1, 256);
        // Label indices are u16; the serving vocabularies are small.
        names("error_types", &self.error_types, 0, 1_000);
        names("components", &self.components, 1, 1_000);
        names("models", &self.models, 1, 1_000);
        let c = &self.columns;
        for (i, s) in self.sensors.iter().enumerate() {
            if let (Some(lo), Some(hi)) = (s.min, s.max)
                && lo > hi
            {
                p.push(format!("sensors[{i}] ({}): min {lo} is above max {hi}", s.name));
            }
            if [s.min, s.max].iter().flatten().any(|v| !v.is_finite()) {
                p.push(format!(
                    "sensors[{i}] ({}): bounds must be finite numbers (leave a side out to leave it open)",
                    s.name
                ));
            }
            for reserved in [&c.datetime, &c.machine_id, &"datetime".to_string(), &"machineID".to_string()] {
                if s.name.eq_ignore_ascii_case(reserved) {
                    p.push(format!("sensors[{i}]: {:?} is the name of a key column", s.name));
                    break;
                }
            }
        }
        if !(self.age.min <= self.age.max && self.age.min.is_finite() && self.age.max.is_finite()) {
            p.push(format!("age: min {} and max {} must be finite with min <= max", self.age.min, self.age.max));
        }
        if self.datetime_forms.is_empty() {
            p.push("datetime_forms: name at least one of iso, us".to_string());
        }
        let keyed = [
            ("columns.datetime", &c.datetime),
            ("columns.machine_id", &c.machine_id),
            ("columns.error", &c.error),
            ("columns.maint_component", &c.maint_component),
            ("columns.failure_component", &c.failure_component),
            ("columns.model", &c.model),
            ("columns.age", &c.age),
        ];
        for (field, v) in keyed {
            if v.trim().is_empty() {
                p.push(format!("{field}: must not be empty"));
            }
        }
        for kind in FileKind::ALL {
            let cols = self.columns(kind);
            for (i, a) in cols.iter().enumerate() {
                if cols[..i].iter().any(|b| b.eq_ignore_ascii_case(a)) {
                    p.push(format!("columns: {a:?} names two columns of the {} file", kind.name()));
                }
            }
            if self.files.get(kind).path.trim().is_empty() {
                p.push(format!("files.{}.path: must not be empty", kind.name()));
            }
        }
        if p.is_empty() { Ok(()) } else { Err(p) }
    }

    /// The expected spacing of readings, seconds.
    pub fn cadence_secs(&self) -> i64 {
        self.cadence.0
    }

    /// Whether CSV datetimes of `form` are accepted.
    pub fn accepts_form(&self, form: DatetimeForm) -> bool {
        self.datetime_forms.contains(&form)
    }

    /// The path of a file inside the input folder.
    pub fn file_name(&self, kind: FileKind) -> &str {
        &self.files.get(kind).path
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
    /// what is stored; file and column names and datetime forms govern only how files are read).
    pub fn same_layout(&self, other: &Contract) -> bool {
        self.sensor_names() == other.sensor_names()
            && self.error_types == other.error_types
            && self.components == other.components
            && self.models == other.models
            && self.cadence == other.cadence
    }

    /// The position of a sensor by name.
    pub fn sensor_index(&self, name: &str) -> Option<usize> {
        self.sensors.iter().position(|s| s.name == name)
    }

    /// Expected header of a file as the contract names its columns: the keys, then the label or
    /// the sensors.
    pub fn columns(&self, kind: FileKind) -> Vec<String> {
        let c = &self.columns;
        match kind {
            FileKind::Telemetry => {
                let mut v = vec![c.datetime.clone(), c.machine_id.clone()];
                v.extend(self.sensors.iter().map(|s| s.name.clone()));
                v
            }
            FileKind::Errors => vec![c.datetime.clone(), c.machine_id.clone(), c.error.clone()],
            FileKind::Maint => vec![c.datetime.clone(), c.machine_id.clone(), c.maint_component.clone()],
            FileKind::Failures => vec![c.datetime.clone(), c.machine_id.clone(), c.failure_component.clone()],
            FileKind::Machines => vec![c.machine_id.clone(), c.model.clone(), c.age.clone()],
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
    fn the_default_prints_as_yaml_and_reads_back_equal() {
        let c = Contract::azure_pdm();
        assert_eq!(Contract::parse(c.to_yaml().as_bytes(), "default").unwrap(), c);
        let json = serde_json::to_vec(&c).unwrap();
        assert_eq!(Contract::parse(&json, "default.json").unwrap(), c, "JSON reads as YAML");
    }

    #[test]
    fn a_contract_saved_before_files_columns_and_cadence_reads_as_the_azure_one() {
        let old = r#"{"sensors": ["volt", "rotate", "pressure", "vibration"], "error_types": ["error1", "error2",
            "error3", "error4", "error5"], "components": ["comp1", "comp2", "comp3", "comp4"],
            "models": ["model1", "model2", "model3", "model4"]}"#;
        let c: Contract = serde_json::from_str(old).unwrap();
        let azure = Contract::azure_pdm();
        assert_eq!(
            (c.cadence, &c.files, &c.columns, &c.datetime_forms),
            (azure.cadence, &azure.files, &azure.columns, &azure.datetime_forms)
        );
        assert!(c.same_layout(&azure));
    }

    #[test]
    fn another_fleets_contract_names_its_files_columns_and_cadence() {
        let c = Contract::parse(
            b"name: pumps\ncadence: 10m\ndatetime_forms: [us]\nfiles: {telemetry: {path: t.parquet}, machines: {path: m.dat, format: csv}}\n\
              columns: {datetime: ts, machine_id: pump}\nsensors: [{name: flow, unit: m3/h, min: 0, max: 500}]\n\
              error_types: []\ncomponents: [seal]\nmodels: [p1]\n",
            "pumps.yaml",
        )
        .unwrap();
        assert_eq!(c.cadence_secs(), 600);
        assert_eq!(c.cadence.to_string(), "10m");
        assert_eq!(c.columns(FileKind::Telemetry), ["ts", "pump", "flow"]);
        assert_eq!(c.columns(FileKind::Failures), ["ts", "pump", "failure"], "unnamed columns keep their default");
        assert_eq!(c.files.telemetry.format(), FileFormat::Parquet);
        assert_eq!(c.files.machines.format(), FileFormat::Csv);
        assert_eq!(c.file_name(FileKind::Errors), "PdM_errors.csv");
        assert!(c.accepts_form(DatetimeForm::Us) && !c.accepts_form(DatetimeForm::Iso));
        assert!(!c.same_layout(&Contract::azure_pdm()));
    }

    #[test]
    fn every_problem_of_a_contract_is_named_with_its_field() {
        let err = Contract::parse(
            b"cadence: 10m\ndatetime_forms: []\ncolumns: {datetime: t, machine_id: T}\n\
              sensors: [{name: a, min: 5, max: 1}, {name: A}, {name: machineID}]\nerror_types: [e1, e1]\ncomponents: []\nmodels: [' m']\n",
            "bad.yaml",
        )
        .unwrap_err();
        let text = err.to_string();
        for want in [
            "data contract bad.yaml: ",
            "sensors[0] (a): min 5 is above max 1",
            "sensors[1]: \"A\" is listed twice",
            "sensors[2]: \"machineID\" is the name of a key column",
            "error_types[1]: \"e1\" is listed twice",
            "components: needs 1 to 1000 entries, has 0",
            "models[0]: \" m\" must be a non-empty name without surrounding spaces",
            "datetime_forms: name at least one of iso, us",
            "columns: \"T\" names two columns of the telemetry file",
        ] {
            assert!(text.contains(want), "missing {want:?} in {text}");
        }
        for (text, want) in [
            (
                "cadence: 10 minutes\nsensors: [a]\nerror_types: []\ncomponents: [c]\nmodels: [m]",
                "cadence \"10 minutes\": expected a number",
            ),
            ("cadence: 0m\nsensors: [a]\nerror_types: []\ncomponents: [c]\nmodels: [m]", "must be between 1s and 168h"),
            ("sensors: [a]\nerror_types: []\ncomponents: [c]\nmodels: [m]\nunits: x", "unknown field `units`"),
            ("sensors: [a]\nerror_types: []\ncomponents: [c]", "missing field `models`"),
            (
                "files: {telemetry: {path: t.csv, format: xlsx}}\nsensors: [a]\nerror_types: []\ncomponents: [c]\nmodels: [m]",
                "unknown variant `xlsx`",
            ),
        ] {
            let e = Contract::parse(text.as_bytes(), "c.yaml").unwrap_err().to_string();
            assert!(e.starts_with("data contract c.yaml: ") && e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn cadences_read_and_print() {
        for (text, secs, shown) in
            [("1h", 3_600, "1h"), ("10m", 600, "10m"), ("90m", 5_400, "90m"), ("30s", 30, "30s"), ("120m", 7_200, "2h")]
        {
            let c = Cadence::parse(text).unwrap();
            assert_eq!((c.0, c.to_string().as_str()), (secs, shown));
        }
        for bad in ["", "m", "10", "10d", "-5m", "169h", "1.5h"] {
            assert!(Cadence::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ranges_split_sorted_keys() {
        assert_eq!(ranges_by_key(&[1, 1, 2, 5, 5, 5]), vec![(1, 0..2), (2, 2..3), (5, 3..6)]);
        assert!(ranges_by_key(&[]).is_empty());
        assert_eq!(machine_range(&[1, 1, 2, 5, 5, 5], 5), 3..6);
        assert_eq!(machine_range(&[1, 1, 2, 5, 5, 5], 3), 3..3);
    }
}
