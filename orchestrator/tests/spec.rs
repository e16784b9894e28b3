//! The pipeline format: broken documents and their exact errors, golden compiled specs of every
//! pipeline in `pipelines/`, the committed JSON Schema, graphs, and the Vertex AI request.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pm_orchestrator::graph::load;
use pm_orchestrator::{dot, kfp, vertex};

/// A minimal valid pipeline; tests break one thing at a time.
const BASE: &str = r#"
name: demo
parameters:
  horizon: {type: int, default: 24}
  source: {type: uri, default: data/raw}
components:
  ingest:
    image: localhost/pm/ingest:test
    command: [/usr/local/bin/pm-ingest]
    inputs: {source: {type: uri}}
    outputs: {dataset: {type: Dataset}}
    args: ["--input-uri={{inputs.source}}", --output-uri, "{{outputs.dataset.uri}}"]
  train:
    image: localhost/pm/train:test
    command: [/usr/local/bin/pm-train]
    inputs: {data: {type: Dataset}, horizon: {type: int, default: 24}}
    outputs: {model: {type: Model}, auc: {type: float}}
    args: [--features-uri, "{{inputs.data.uri}}", "--h={{inputs.horizon}}", --output-uri, "{{outputs.model.uri}}", --auc-output-file, "{{outputs.auc.file}}"]
steps:
  ingest: {component: ingest, with: {source: "{{params.source}}"}}
  train: {component: train, with: {data: "{{steps.ingest.outputs.dataset}}", horizon: "{{params.horizon}}"}}
"#;

/// Validates `yaml` and returns every error, rendered.
fn errors(yaml: &str) -> Vec<String> {
    match load(yaml) {
        Ok(_) => vec![],
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

fn check(yaml: &str, expected: &[&str]) {
    assert_eq!(errors(yaml), expected, "\n{yaml}");
}

#[test]
fn the_base_pipeline_is_valid() {
    let p = load(BASE).unwrap();
    assert_eq!(p.order, vec!["ingest", "train"]);
}

#[test]
fn b01_unknown_keys_are_all_reported_with_their_paths() {
    let yaml = BASE
        .replace("name: demo", "name: demo\nowner: me")
        .replace("{component: train,", "{component: train, retry: {max: 2},");
    check(
        &yaml,
        &[
            "owner: unknown key; expected one of name, description, parameters, defaults, components, steps",
            "steps.train.retry: unknown key; expected one of component, with, when, after, retries, timeout_seconds, cache, resources, env, display_name",
        ],
    );
}

#[test]
fn b02_unknown_step_in_a_reference() {
    check(
        &BASE.replace("steps.ingest.outputs.dataset", "steps.ingset.outputs.dataset"),
        &["steps.train.with.data: unknown step \"ingset\""],
    );
}

#[test]
fn b03_unknown_output() {
    check(
        &BASE.replace("steps.ingest.outputs.dataset", "steps.ingest.outputs.data"),
        &["steps.train.with.data: step \"ingest\" has no output \"data\""],
    );
}

#[test]
fn b04_cycle() {
    let yaml = BASE.replace(
        "ingest: {component: ingest, with: {source: \"{{params.source}}\"}}",
        "ingest: {component: ingest, with: {source: \"{{params.source}}\"}, after: [train]}",
    );
    check(&yaml, &["steps.train: dependency cycle: train -> ingest -> train"]);
}

#[test]
fn b05_type_mismatch_between_artifacts() {
    let yaml = BASE.replace("outputs: {dataset: {type: Dataset}}", "outputs: {dataset: {type: Model}}");
    check(&yaml, &["steps.train.with.data: type mismatch: input \"data\" is Dataset, the value is Model"]);
}

#[test]
fn b06_missing_required_input() {
    check(
        &BASE.replace("with: {data: \"{{steps.ingest.outputs.dataset}}\", horizon", "with: {horizon"),
        &["steps.train.with: missing required input \"data\" (Dataset)"],
    );
}

#[test]
fn b07_bad_reference_syntax() {
    check(
        &BASE.replace("{{params.horizon}}", "{{param.horizon}}"),
        &[
            "steps.train.with.horizon: unknown reference {{param.horizon}} (expected params.NAME or steps.STEP.outputs.NAME)",
        ],
    );
}

#[test]
fn b08_duplicate_names() {
    let yaml = BASE.replace("  train: {component: train,", "  train_x: {component: train, with: {data: \"{{steps.ingest.outputs.dataset}}\"}}\n  train-x: {component: train,");
    let e = errors(&yaml);
    assert!(
        e.contains(&"steps.train_x: duplicate name: \"train_x\" and \"train-x\" both become \"train-x\"".to_string()),
        "{e:?}"
    );
}

#[test]
fn b09_duplicate_yaml_key() {
    let yaml = BASE.replace(
        "  ingest: {component: ingest",
        "  train: {component: ingest, with: {source: x}}\n  ingest: {component: ingest",
    );
    let e = errors(&yaml);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0], "line 20, column 3: steps: duplicate entry with key \"train\"");
}

#[test]
fn b10_unknown_parameter_and_literal_of_the_wrong_type() {
    let yaml = BASE.replace("horizon: \"{{params.horizon}}\"", "horizon: \"{{params.hrizon}}\"");
    check(&yaml, &["steps.train.with.horizon: unknown parameter \"hrizon\""]);
    let yaml = BASE.replace("horizon: \"{{params.horizon}}\"", "horizon: twenty");
    check(&yaml, &["steps.train.with.horizon: type mismatch: \"twenty\" is not an int"]);
    let yaml = BASE.replacen("horizon: {type: int, default: 24}", "horizon: {type: int, default: 2.5}", 1);
    check(&yaml, &["parameters.horizon.default: 2.5 is not an int"]);
}

#[test]
fn b11_bad_placeholders_in_component_args() {
    let yaml = BASE
        .replace("\"--h={{inputs.horizon}}\"", "\"--h={{input.horizon}}\"")
        .replace("\"{{outputs.auc.file}}\"", "\"{{outputs.auc.uri}}\"");
    check(
        &yaml,
        &[
            "components.train.args[2]: unknown placeholder {{input.horizon}} (expected inputs.NAME, inputs.NAME.uri, outputs.NAME.uri, outputs.NAME.path or outputs.NAME.file)",
            "components.train.args[6]: \"auc\" is a parameter output; use {{outputs.auc.file}}",
        ],
    );
}

/// A parameter value given as its own argument after `--flag` would be read as an option when
/// it starts with '-' (`--param min_improvement=-1` broke pm-evaluate): `--flag=VALUE` is
/// required. A URI, a text after `=`, or a flag that is itself a placeholder are fine.
#[test]
fn b17_a_value_on_its_own_after_a_flag_is_refused() {
    let yaml = BASE.replace("\"--h={{inputs.horizon}}\"", "--h, \"{{inputs.horizon}}\"");
    check(
        &yaml,
        &[
            "components.train.args[3]: write \"--h={{inputs.horizon}}\": a value given as its own argument after --h is read as an option when it starts with '-'",
        ],
    );
    assert!(errors(&BASE.replace("\"--h={{inputs.horizon}}\"", "-h, \"{{inputs.horizon}}\"")).is_empty());
}

#[test]
fn b12_conditions_must_compare_values_of_the_right_type() {
    let gated = BASE.replace("horizon: \"{{params.horizon}}\"}}", "horizon: \"{{params.horizon}}\"}}\n  again: {component: train, with: {data: \"{{steps.ingest.outputs.dataset}}\"}, when: \"{{steps.train.outputs.model}} == true\"}");
    check(&gated, &["steps.again.when: conditions compare values, not Model artifacts"]);
    let gated = gated.replace("{{steps.train.outputs.model}} == true", "{{steps.train.outputs.auc}} >= high");
    check(&gated, &["steps.again.when: type mismatch: \"high\" is not a float"]);
    let gated = gated.replace("{{steps.train.outputs.auc}} >= high", "{{steps.train.outputs.auc}}");
    assert!(
        errors(&gated)[0]
            .starts_with("steps.again.when: \"{{steps.train.outputs.auc}}\": expected `<reference> <op> <value>`")
    );
}

#[test]
fn b13_unknown_component_invalid_name_and_several_errors_at_once() {
    let yaml = BASE
        .replace("name: demo", "name: Demo Pipeline")
        .replace("{component: train,", "{component: trainer,")
        .replace("source: \"{{params.source}}\"", "source: \"{{params.src}}\"");
    check(
        &yaml,
        &[
            "name: \"Demo Pipeline\" must be lower-case letters, digits and dashes, starting with a letter, at most 113 characters",
            "steps.ingest.with.source: unknown parameter \"src\"",
            "steps.train.component: unknown component \"trainer\"",
        ],
    );
}

#[test]
fn b14_wrong_value_types_are_located() {
    let yaml = BASE.replacen("horizon: {type: int, default: 24}", "horizon: {type: integer, default: 24}", 1);
    let e = errors(&yaml);
    assert_eq!(e.len(), 1);
    assert_eq!(
        e[0],
        "line 4, column 19: parameters.horizon.type: unknown variant `integer`, expected one of `string`, `int`, `float`, `bool`, `uri`, `Dataset`, `Model`, `Metrics`, `ClassificationMetrics`, `HTML`, `Artifact`"
    );
}

/// Names become paths of the local backend: anything but a plain name is refused, with its path.
#[test]
fn b15_names_that_could_leave_the_run_folder_are_refused() {
    let yaml = BASE
        .replace("  horizon: {type: int", "  \"../p\": {type: string, default: x}\n  horizon: {type: int")
        .replace(
            "components:\n",
            "components:\n  \"evil/c\":\n    image: i\n    command: [c]\n    inputs: {\"a b\": {type: string, default: x}}\n    outputs: {\"../../etc/passwd\": {type: string}, \"..\": {type: Dataset}}\n",
        )
        .replace(
            "steps:\n",
            "steps:\n  \"../../../../x\": {component: ingest, with: {source: x}}\n  /tmp/abs: {component: ingest, with: {source: x}}\n",
        );
    check(
        &yaml,
        &[
            "components.evil/c: \"evil/c\" is not a valid name: use letters, digits, '_' and '-', starting with a letter, at most 63 characters",
            "components.evil/c.inputs.a b: \"a b\" is not a valid name: use letters, digits and '_', not starting with a digit, at most 63 characters",
            "components.evil/c.outputs...: \"..\" is not a valid name: use letters, digits and '_', not starting with a digit, at most 63 characters",
            "components.evil/c.outputs.../../etc/passwd: \"../../etc/passwd\" is not a valid name: use letters, digits and '_', not starting with a digit, at most 63 characters",
            "parameters.../p: \"../p\" is not a valid name: use letters, digits and '_', not starting with a digit, at most 63 characters",
            "steps.../../../../x: \"../../../../x\" is not a valid name: use letters, digits, '_' and '-', starting with a letter, at most 63 characters",
            "steps./tmp/abs: \"/tmp/abs\" is not a valid name: use letters, digits, '_' and '-', starting with a letter, at most 63 characters",
        ],
    );
    let long = "s".repeat(64);
    let e = errors(&BASE.replace(
        "  ingest: {component: ingest",
        &format!("  {long}: {{component: ingest, with: {{source: x}}}}\n  ingest: {{component: ingest"),
    ));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with(&format!("steps.{long}: ")), "{e:?}");
}

/// Every number of a step's settings is bounded, in `defaults` and in each step, so that no
/// backend meets a number it cannot use (these used to panic the orchestrator at the first retry).
#[test]
fn b16_numbers_out_of_bounds_are_refused() {
    let yaml = BASE
        .replace(
            "steps:\n",
            "defaults:\n  retries: {max: 4294967295}\n  timeout_seconds: 99999999999\n  resources: {cpu_limit: nan, memory_limit: \"-1G\"}\nsteps:\n",
        )
        .replace(
            "{component: train,",
            "{component: train, retries: {max: 1, backoff_seconds: 1e300, backoff_max_seconds: 1e300, backoff_factor: 0.5}, resources: {cpu_request: \"4\", cpu_limit: 500m, memory_request: 8Gi, memory_limit: 1G},",
        );
    check(
        &yaml,
        &[
            "defaults.resources.cpu_limit: \"nan\" is not a quantity above 0 and at most 1024 cores",
            "defaults.resources.memory_limit: \"-1G\" is not a quantity above 0 and at most 1000000 GB",
            "defaults.retries.max: 4294967295 is more than 100 retries",
            "defaults.timeout_seconds: 99999999999 is not between 1 and 604800 seconds (a week)",
            "steps.train.resources.cpu_request: \"4\" is more than cpu_limit \"500m\"",
            "steps.train.resources.memory_request: \"8Gi\" is more than memory_limit \"1G\"",
            "steps.train.retries.backoff_factor: 0.5 is not between 1 and 100",
            "steps.train.retries.backoff_max_seconds: 1e300 is not between backoff_seconds (1e300) and 86400 seconds",
            "steps.train.retries.backoff_seconds: 1e300 is not between 0 and 86400 seconds",
        ],
    );
    check(
        &BASE.replace("{component: train,", "{component: train, timeout_seconds: 0,"),
        &["steps.train.timeout_seconds: 0 is not between 1 and 604800 seconds (a week)"],
    );
}

/// Validation is linear in the pipeline's size (4,000 chained steps took 1.9 s, 8,000 7.5 s), and
/// a document nested too deep is refused before the YAML parser, whose time is quadratic in the
/// depth (100,000 nested `[` took 70 s).
#[test]
fn b18_large_pipelines_validate_in_linear_time_and_deep_nesting_is_refused() {
    let n = 40_000;
    let mut yaml = String::from(
        "name: big\ncomponents:\n  c: {image: i, command: [c], inputs: {x: {type: string, default: a}}, outputs: {o: {type: string}}, args: [\"--v={{inputs.x}}\", --f, \"{{outputs.o.file}}\"]}\nsteps:\n  s0: {component: c}\n",
    );
    for i in 1..n {
        yaml.push_str(&format!("  s{i}: {{component: c, with: {{x: \"{{{{steps.s{}.outputs.o}}}}\"}}}}\n", i - 1));
    }
    let t = std::time::Instant::now();
    let p = load(&yaml).unwrap();
    let took = t.elapsed();
    assert_eq!(p.order.len(), n);
    assert!(p.order.iter().enumerate().all(|(i, s)| *s == format!("s{i}")), "the chain's order");
    // Quadratic validation took minutes here; linear takes a few seconds even unoptimised.
    assert!(took < std::time::Duration::from_secs(60), "{n} chained steps took {took:?}");

    let deep = format!("name: x\nsteps: {}\n", "[".repeat(100_000));
    let t = std::time::Instant::now();
    assert_eq!(errors(&deep), ["line 2, column 72: flow collections nested deeper than 64 levels"]);
    assert!(t.elapsed() < std::time::Duration::from_secs(5), "{:?}", t.elapsed());
    // Brackets in quoted or plain text and in comments are not nesting.
    let texty = BASE.replace(
        "name: demo",
        &format!("name: demo\ndescription: \"{}\"  # {}\n# {}", "[".repeat(100), "{".repeat(100), "[".repeat(100)),
    );
    assert_eq!(errors(&texty), Vec::<String>::new());
    let plain = BASE.replace("name: demo", &format!("name: demo\ndescription: a {} b", "[".repeat(100)));
    assert_eq!(errors(&plain), Vec::<String>::new());
    let huge = format!("name: x\ndescription: {}\n", "a".repeat(pm_orchestrator::spec::MAX_DOCUMENT_BYTES));
    assert_eq!(errors(&huge), [format!("the document is {} bytes; at most 16777216 are accepted", huge.len())]);
}

fn pipelines_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines")
}

fn compiled_pair(path: &Path) -> (serde_json::Value, serde_json::Value) {
    let (p, _) = pm_orchestrator::load_file(path).unwrap();
    let spec = kfp::compile(&p).unwrap();
    let cfg = vertex::JobConfig {
        gcs_output_directory: "gs://pm-example-bucket/pipeline-root".into(),
        parameter_values: BTreeMap::new(),
        display_name: None,
        labels: BTreeMap::from([("system".to_string(), "pm".to_string())]),
    };
    let job = vertex::pipeline_job(&p, spec.clone(), &cfg).unwrap();
    (spec, job)
}

/// Golden files: `pipelines/compiled/<name>.kfp.json` and `<name>.vertex.json` for every pipeline.
/// `UPDATE_GOLDEN=1 cargo test -p pm-orchestrator --test spec` rewrites them.
#[test]
fn every_pipeline_compiles_to_its_golden_specs() {
    let dir = pipelines_dir();
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        seen += 1;
        let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
        let (spec, job) = compiled_pair(&path);
        for (suffix, v) in [("kfp", spec), ("vertex", job)] {
            let golden = dir.join("compiled").join(format!("{stem}.{suffix}.json"));
            let text = serde_json::to_string_pretty(&v).unwrap() + "\n";
            if std::env::var("UPDATE_GOLDEN").is_ok() {
                std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
                std::fs::write(&golden, &text).unwrap();
            }
            let want = std::fs::read_to_string(&golden)
                .unwrap_or_else(|_| panic!("{} is missing: run with UPDATE_GOLDEN=1", golden.display()));
            assert_eq!(text, want, "{} is out of date: run with UPDATE_GOLDEN=1 and review the diff", golden.display());
        }
    }
    assert!(seen >= 1);
}

#[test]
fn the_training_spec_has_the_gate_as_a_condition_group() {
    let (spec, job) = compiled_pair(&pipelines_dir().join("training.yaml"));
    let root = &spec["root"]["dag"]["tasks"];
    assert_eq!(
        root["condition-1"]["triggerPolicy"]["condition"],
        "inputs.parameter_values['pipelinechannel--evaluate-blessed'] == true"
    );
    assert_eq!(root["condition-1"]["dependentTasks"], serde_json::json!(["evaluate", "train"]));
    let inner = &spec["components"]["comp-condition-1"]["dag"]["tasks"]["deploy"];
    assert_eq!(inner["inputs"]["artifacts"]["model"]["componentInputArtifact"], "pipelinechannel--train-model");
    assert_eq!(inner["cachingOptions"], serde_json::json!({}));
    assert_eq!(root["features"]["inputs"]["artifacts"]["dataset"]["taskOutputArtifact"]["producerTask"], "ingest");
    let args = &spec["deploymentSpec"]["executors"]["exec-evaluate"]["container"]["args"];
    assert!(args.as_array().unwrap().contains(&serde_json::json!("{{$.outputs.parameters['blessed'].output_file}}")));
    assert_eq!(
        spec["deploymentSpec"]["executors"]["exec-train"]["container"]["resources"]["resourceMemoryLimit"],
        "8G"
    );
    assert_eq!(spec["root"]["inputDefinitions"]["parameters"]["label_horizon_hours"]["defaultValue"], 24.0);
    assert_eq!(job["runtimeConfig"]["gcsOutputDirectory"], "gs://pm-example-bucket/pipeline-root");
    // The IR has no task timeout: each step's `timeout_seconds` travels as its container's variable.
    let env = &spec["deploymentSpec"]["executors"]["exec-train"]["container"]["env"];
    assert!(
        env.as_array().unwrap().contains(&serde_json::json!({"name": pm_core::cli::STEP_TIMEOUT_ENV, "value": "3600"})),
        "{env}"
    );
    // Every step logs JSON lines for Cloud Logging.
    for (name, exec) in spec["deploymentSpec"]["executors"].as_object().unwrap() {
        let env = exec["container"]["env"].as_array().unwrap();
        assert!(
            env.contains(&serde_json::json!({"name": pm_core::cli::LOG_FORMAT_ENV, "value": "json"})),
            "{name}: {env:?}"
        );
    }
}

/// The JSON Schema in the repository is the one the parser implies.
#[test]
fn the_committed_json_schema_is_current() {
    let path = pipelines_dir().join("pipeline.schema.json");
    let text = serde_json::to_string_pretty(&pm_orchestrator::spec::json_schema()).unwrap() + "\n";
    if std::env::var("UPDATE_GOLDEN").is_ok() {
        std::fs::write(&path, &text).unwrap();
    }
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "run with UPDATE_GOLDEN=1");
}

#[test]
fn graphs_in_dot_and_mermaid() {
    let p = load(BASE).unwrap();
    let d = dot::dot(&p);
    assert!(d.contains("\"ingest\" -> \"train\" [label=\"dataset → data\"];"), "{d}");
    let m = dot::mermaid(&p);
    assert!(m.starts_with("flowchart LR\n"));
    assert!(m.contains("ingest -- \"dataset → data\" --> train"), "{m}");
}

#[test]
fn the_vertex_submission_request() {
    let p = load(BASE).unwrap();
    let cfg = vertex::JobConfig {
        gcs_output_directory: "gs://b/root".into(),
        parameter_values: BTreeMap::from([("horizon".to_string(), serde_json::json!(72))]),
        display_name: Some("nightly".into()),
        labels: BTreeMap::new(),
    };
    let body = vertex::pipeline_job(&p, kfp::compile(&p).unwrap(), &cfg).unwrap();
    assert_eq!(body["runtimeConfig"]["parameterValues"]["horizon"], 72.0);
    assert_eq!(body["displayName"], "nightly");
    let target = vertex::Target { project: "acme-ml".into(), region: "europe-west4".into(), job_id: None };
    let req = vertex::submit_request(&target, "tok123", body.clone(), "demo", "2026-11-26T10:00:00Z").unwrap();
    assert_eq!(
        req.url,
        "https://europe-west4-aiplatform.googleapis.com/v1/projects/acme-ml/locations/europe-west4/pipelineJobs?pipelineJobId=demo-20261126100000"
    );
    assert!(req.headers.contains(&("Authorization".to_string(), "Bearer tok123".to_string())));
    assert_eq!(req.body, body);
    // Refusals: no token, a bad job id, unknown or mistyped parameters, a non-gs root.
    assert_eq!(vertex::submit_request(&target, " ", body.clone(), "demo", "").unwrap_err(), "empty bearer token");
    let bad = vertex::Target { job_id: Some("9-lives".into()), ..target };
    assert!(vertex::submit_request(&bad, "t", body, "demo", "").unwrap_err().starts_with("invalid job id"));
    let wrong = vertex::JobConfig {
        parameter_values: BTreeMap::from([
            ("horizon".to_string(), serde_json::json!("x")),
            ("nope".to_string(), serde_json::json!(1)),
        ]),
        ..cfg.clone()
    };
    let e: Vec<String> = vertex::pipeline_job(&p, serde_json::Value::Null, &wrong)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(e, vec!["parameters.horizon: \"x\" is not an int", "parameters.nope: unknown parameter"]);
    let local = vertex::JobConfig { gcs_output_directory: "/tmp/x".into(), ..cfg };
    assert!(vertex::pipeline_job(&p, serde_json::Value::Null, &local).is_err());
}

/// The real KFP SDK (kfp 2.17.3, installed into a venv by scripts/test.sh) loads every emitted
/// spec and compiles a pipeline that calls it.
#[test]
fn the_kfp_sdk_accepts_every_emitted_spec() {
    let python = std::env::var("PM_KFP_PYTHON")
        .unwrap_or_else(|_| panic!("PM_KFP_PYTHON is not set: run the tests with `make test`, which installs kfp"));
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(pipelines_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) == Some("yaml") {
            let (spec, job) = compiled_pair(&path);
            let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
            for (suffix, v) in [("kfp", spec), ("vertex", job)] {
                let f = dir.path().join(format!("{stem}.{suffix}.json"));
                std::fs::write(&f, serde_json::to_vec(&v).unwrap()).unwrap();
                files.push(f);
            }
        }
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/kfp_check.py");
    let out = std::process::Command::new(python).arg(script).args(&files).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.lines().filter(|l| l.starts_with("ok ")).count(), files.len(), "{stdout}");
}

/// `--image-registry`: the `localhost/` images `make images` builds are pulled from a registry in
/// the emitted specs; other images are left alone.
#[test]
fn image_registry_rewrites_local_images_only() {
    let (p, _) = pm_orchestrator::load_file(&pipelines_dir().join("monitoring.yaml")).unwrap();
    let mut p = p.with_image_registry("europe-west4-docker.pkg.dev/proj/pm-repo/");
    p.spec.components.get_mut("ingest").unwrap().image = "ghcr.io/acme/ingest:7".into();
    let spec = kfp::compile(&p).unwrap();
    let images: Vec<String> = spec["deploymentSpec"]["executors"]
        .as_object()
        .unwrap()
        .values()
        .map(|e| e["container"]["image"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(images.len(), 3);
    assert!(images.contains(&"europe-west4-docker.pkg.dev/proj/pm-repo/pm/pm-monitor:0.1.0".to_string()), "{images:?}");
    assert!(
        images.contains(&"europe-west4-docker.pkg.dev/proj/pm-repo/pm/pm-pipeline:0.1.0".to_string()),
        "{images:?}"
    );
    assert!(images.contains(&"ghcr.io/acme/ingest:7".to_string()), "{images:?}");
}

/// Every `localhost/` image a pipeline names is one `make images` builds, at this version.
#[test]
fn pipeline_images_are_the_ones_make_images_builds() {
    let mut checked = 0;
    for entry in std::fs::read_dir(pipelines_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let (p, _) = pm_orchestrator::load_file(&path).unwrap();
        for (name, c) in &p.spec.components {
            let Some(rest) = c.image.strip_prefix("localhost/pm/") else { continue };
            let (image, tag) = rest.split_once(':').unwrap();
            assert_eq!(tag, env!("CARGO_PKG_VERSION"), "{}: component {name}", path.display());
            let containerfile = pipelines_dir().join(format!("../deploy/images/{image}.Containerfile"));
            assert!(
                containerfile.exists(),
                "{}: component {name} names {image}, which no Containerfile builds",
                path.display()
            );
            let binary = c.command[0].rsplit('/').next().unwrap();
            let text = std::fs::read_to_string(&containerfile).unwrap();
            assert!(text.contains(&format!("bin/{binary}")), "{image} does not contain {binary}");
            checked += 1;
        }
    }
    assert!(checked >= 8, "{checked}");
}
