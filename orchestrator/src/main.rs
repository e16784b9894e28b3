//! `pm-orchestrator`: validate, draw, run, compile and submit pipelines.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use pm_core::artifacts::store::Store;
use pm_orchestrator::{dot, kfp, load_file, local, parse_param, summary, typed_params, vertex};

#[derive(Debug, Parser)]
#[command(
    name = "pm-orchestrator",
    version,
    about = "Run pipeline DAGs locally, or compile them for Kubeflow Pipelines v2 / Vertex AI"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a pipeline file; prints every error with its YAML path.
    Validate { pipeline: PathBuf },
    /// Print the DAG as Graphviz DOT or Mermaid.
    Graph {
        pipeline: PathBuf,
        #[arg(long, default_value = "dot", value_parser = ["dot", "mermaid"])]
        format: String,
    },
    /// Run the pipeline locally, each step a child process of its component binary.
    Run(RunArgs),
    /// Compile to a Kubeflow Pipelines v2 PipelineSpec (`kfp`) or a Vertex AI PipelineJob body (`vertex`).
    Compile(CompileArgs),
    /// Submit to Vertex AI Pipelines (POSTs the PipelineJob with a bearer token from the environment).
    Submit(SubmitArgs),
    /// Inspect local runs.
    Runs {
        #[command(subcommand)]
        command: RunsCommand,
    },
    /// Print the JSON Schema of the pipeline format.
    Schema,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    pipeline: PathBuf,
    /// Pipeline root (URL or path): artifacts, cache and run records.
    #[arg(long, env = "PM_PIPELINE_ROOT", default_value = "local-bucket")]
    root: String,
    /// Folder of the component binaries (default: this binary's folder when it holds them, as
    /// in the pm-pipeline image and target/debug; else target/debug).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// How steps run: `process` (a child process of the binary) or `podman` (the component's
    /// image, see `make images`).
    #[arg(long, env = "PM_RUNNER", value_parser = ["process", "podman"], default_value = "process")]
    runner: String,
    /// KFP output parameter: the run's id.
    #[arg(long)]
    run_id_output_file: Option<PathBuf>,
    /// Pipeline parameters, NAME=VALUE (repeatable).
    #[arg(long = "param", short = 'p', value_parser = parse_param)]
    params: Vec<(String, String)>,
    /// Steps running at once.
    #[arg(long, default_value_t = 2)]
    parallelism: usize,
    /// Ignore the cache (still writes it).
    #[arg(long)]
    no_cache: bool,
    /// Continue this run: keep its finished steps, run the rest in the same run folder.
    #[arg(long)]
    resume: Option<String>,
    /// Also write the compiled KFP and Vertex specs next to the run.
    #[arg(long)]
    emit_specs: bool,
    /// Local scratch folder (default: a folder in the system temp dir).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Seconds between SIGTERM and SIGKILL when a step times out.
    #[arg(long, default_value_t = 5)]
    kill_grace_secs: u64,
}

#[derive(Debug, clap::Args)]
struct CompileArgs {
    pipeline: PathBuf,
    #[arg(long, value_parser = ["kfp", "vertex"])]
    target: String,
    /// Output file (default: standard output).
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Vertex: the pipeline root (gs://...).
    #[arg(long, default_value = "gs://pm-example-bucket/pipeline-root")]
    gcs_output_directory: String,
    /// Vertex: parameter values, NAME=VALUE.
    #[arg(long = "param", short = 'p', value_parser = parse_param)]
    params: Vec<(String, String)>,
    /// Pull the `localhost/...` images from this registry instead (where `make push-images`
    /// put them), e.g. europe-west4-docker.pkg.dev/PROJECT/REPO.
    #[arg(long, env = "PM_IMAGE_REGISTRY")]
    image_registry: Option<String>,
}

#[derive(Debug, clap::Args)]
struct SubmitArgs {
    pipeline: PathBuf,
    #[arg(long, env = "GOOGLE_CLOUD_PROJECT")]
    project: String,
    #[arg(long, env = "GOOGLE_CLOUD_REGION", default_value = "us-central1")]
    region: String,
    #[arg(long)]
    gcs_output_directory: String,
    #[arg(long = "param", short = 'p', value_parser = parse_param)]
    params: Vec<(String, String)>,
    #[arg(long)]
    job_id: Option<String>,
    /// Pull the `localhost/...` images from this registry instead (see `compile`).
    #[arg(long, env = "PM_IMAGE_REGISTRY")]
    image_registry: Option<String>,
    /// Environment variable holding the OAuth bearer token (e.g. from `gcloud auth print-access-token`).
    #[arg(long, default_value = "GOOGLE_OAUTH_ACCESS_TOKEN")]
    token_env: String,
    /// Print the request instead of sending it.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, Subcommand)]
enum RunsCommand {
    List {
        #[arg(long, env = "PM_PIPELINE_ROOT", default_value = "local-bucket")]
        root: String,
    },
    Show {
        run_id: String,
        #[arg(long, env = "PM_PIPELINE_ROOT", default_value = "local-bucket")]
        root: String,
        /// The whole run record as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn to_json(v: &serde_json::Value) -> Result<String> {
    Ok(serde_json::to_string_pretty(v)? + "\n")
}

fn write_out(output: Option<&PathBuf>, text: &str) -> Result<()> {
    match output {
        Some(p) => std::fs::write(p, text).with_context(|| format!("writing {}", p.display())),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

fn compiled(p: &pm_orchestrator::graph::Pipeline) -> Result<serde_json::Value> {
    kfp::compile(p)
        .map_err(|errs| anyhow::anyhow!("{}", errs.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")))
}

fn vertex_body(
    p: &pm_orchestrator::graph::Pipeline,
    gcs: &str,
    params: &[(String, String)],
) -> Result<serde_json::Value> {
    let cfg = vertex::JobConfig {
        gcs_output_directory: gcs.to_string(),
        parameter_values: typed_params(p, params)?,
        display_name: None,
        labels: BTreeMap::from([("system".to_string(), "pm".to_string())]),
    };
    vertex::pipeline_job(p, compiled(p)?, &cfg)
        .map_err(|errs| anyhow::anyhow!("{}", errs.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")))
}

async fn main_async(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Validate { pipeline } => {
            let (p, _) = load_file(&pipeline)?;
            const SHOWN: usize = 12;
            let mut order = p.order.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(" -> ");
            if p.order.len() > SHOWN {
                order.push_str(&format!(" -> … ({} more)", p.order.len() - SHOWN));
            }
            println!("{}: valid ({} steps: {order})", pipeline.display(), p.order.len());
        }
        Command::Graph { pipeline, format } => {
            let (p, _) = load_file(&pipeline)?;
            print!("{}", if format == "mermaid" { dot::mermaid(&p) } else { dot::dot(&p) });
        }
        Command::Schema => print!("{}", to_json(&pm_orchestrator::spec::json_schema())?),
        Command::Compile(a) => {
            let (p, _) = load_file(&a.pipeline)?;
            let p = match &a.image_registry {
                Some(r) => p.with_image_registry(r),
                None => p,
            };
            let v =
                if a.target == "kfp" { compiled(&p)? } else { vertex_body(&p, &a.gcs_output_directory, &a.params)? };
            write_out(a.output.as_ref(), &to_json(&v)?)?;
        }
        Command::Submit(a) => {
            let (p, _) = load_file(&a.pipeline)?;
            let p = match &a.image_registry {
                Some(r) => p.with_image_registry(r),
                None => p,
            };
            let body = vertex_body(&p, &a.gcs_output_directory, &a.params)?;
            let token = std::env::var(&a.token_env).unwrap_or_default();
            let target = vertex::Target { project: a.project, region: a.region, job_id: a.job_id };
            let req = vertex::submit_request(
                &target,
                if a.dry_run && token.is_empty() { "DRY-RUN" } else { &token },
                body,
                &p.spec.name,
                &pm_core::data::time::now_rfc3339(),
            )
            .map_err(|e| {
                anyhow::anyhow!("{e} (set {} to a token, e.g. `gcloud auth print-access-token`)", a.token_env)
            })?;
            if a.dry_run {
                println!("POST {}", req.url);
                println!("{}", to_json(&req.body)?);
            } else {
                let job = vertex::send(&req).await?;
                println!(
                    "submitted: {}",
                    job.get("name").and_then(|n| n.as_str()).unwrap_or("(no name in the response)")
                );
            }
        }
        Command::Runs { command } => match command {
            RunsCommand::List { root } => {
                let store = Store::open(&root)?;
                for r in local::list_runs(&store).await? {
                    println!("{:<44} {:<10} {:>7.1} s  {}", r.run_id, r.status, r.duration_secs, r.started_at);
                }
            }
            RunsCommand::Show { run_id, root, json } => {
                let r = local::load_run(&Store::open(&root)?, &run_id).await?;
                if json {
                    print!("{}", to_json(&serde_json::to_value(&r)?)?);
                } else {
                    let order: Vec<String> = r.steps.keys().cloned().collect();
                    print!("{}", summary::render(&r, &order));
                }
            }
        },
        Command::Run(a) => {
            let (p, text) = load_file(&a.pipeline)?;
            let root = Store::open(&a.root)?;
            let bin_dir = a.bin_dir.clone().unwrap_or_else(default_bin_dir);
            let bin_dir =
                std::fs::canonicalize(&bin_dir).with_context(|| format!("--bin-dir {}", bin_dir.display()))?;
            let runner = match a.runner.as_str() {
                "podman" => {
                    // Containers reach artifacts through the store, never through this machine's
                    // folders or memory.
                    if root.url().starts_with("file://") || root.url().starts_with("memory://") {
                        anyhow::bail!(
                            "--runner podman needs a pipeline root that containers can reach (s3://, gs://, az://), not {}",
                            root.url()
                        );
                    }
                    local::Runner::Container { engine: "podman".into() }
                }
                _ => local::Runner::Process,
            };
            let work_dir = match a.work_dir {
                Some(w) => w,
                // Per user: a container's unprivileged user must not collide with the host's.
                None => std::env::temp_dir().join(format!("pm-orchestrator-{}", nix::unistd::getuid())),
            };
            let order = p.order.clone();
            let specs = if a.emit_specs {
                Some((compiled(&p)?, vertex_body(&p, "gs://pm-example-bucket/pipeline-root", &a.params)?))
            } else {
                None
            };
            let opts = local::LocalOptions {
                root: root.clone(),
                bin_dir,
                parallelism: a.parallelism,
                params: typed_params(&p, &a.params)?,
                resume: a.resume,
                use_cache: !a.no_cache,
                work_dir,
                kill_grace_secs: a.kill_grace_secs,
                env: BTreeMap::new(),
                show_progress: true,
                runner,
            };
            let rec = local::run(p, opts, &text).await?;
            println!("{}", summary::render(&rec, &order));
            let dir = root.join(&format!("runs/{}", rec.run_id));
            println!("run record:       {}", dir.url_of("run.json"));
            if let Some((kfp_spec, vertex_job)) = specs {
                dir.put("pipeline.kfp.json", to_json(&kfp_spec)?.into()).await?;
                dir.put("pipeline.vertex.json", to_json(&vertex_job)?.into()).await?;
                println!("Kubeflow spec:    {}", dir.url_of("pipeline.kfp.json"));
                println!("Vertex AI job:    {}", dir.url_of("pipeline.vertex.json"));
            }
            pm_core::cli::write_output_parameter(a.run_id_output_file.as_deref(), &rec.run_id)?;
            if rec.status != "succeeded" {
                anyhow::bail!("run {} failed", rec.run_id);
            }
        }
    }
    Ok(())
}

/// The folder of this executable when the step binaries sit next to it, else `target/debug`.
fn default_bin_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
        .filter(|d| d.join("pm-ingest").exists())
        .unwrap_or_else(|| PathBuf::from("target/debug"))
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    pm_core::cli::run_main_with("pm-orchestrator", main_async(cli), pm_orchestrator::local::stop_running_steps)
}
