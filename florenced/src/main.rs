//! florenced: the Florence-2 REST service (a drop-in for hailo-florence), and a
//! command-line entry point to the engine.
//!
//! ```sh
//! florenced --model-dir tests/fixtures/tiny-florence2      # serve on 127.0.0.1:11438
//! florenced --print-config                                # effective configuration
//! florenced run --model-dir DIR image.jpg                 # one-shot, JSON lines
//! florenced bench --model-dir DIR                         # timing requests on stdin (scripts/bench.sh)
//! florenced pull florence-2-base-ft                       # download a model into the Hugging Face cache
//! ```

use florenced::drawings::Drawings;
use florenced::{bench, config, lifecycle, logging, pull, serve};

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use gstflorence::engine::image_io::{self, ImageLimits};
use gstflorence::engine::onnx::describe::describe;
use gstflorence::engine::task::{Task, TaskInput};
use gstflorence::engine::{
    BackendChoice, ExecutionProvider, Florence, GenerationOptions, LoadOptions, Request,
    SessionOptions,
};

#[derive(Parser)]
#[command(
    version,
    about = "Florence-2 captioning, VQA and vision tasks over HTTP (port 11438)",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

/// Serving flags; each overrides the configuration file and FLORENCED_* variables.
#[derive(Args)]
struct ServeArgs {
    /// YAML configuration file [default: $FLORENCED_CONFIG, else
    /// /etc/hailo/hailo-florence.yaml when it exists]; FLORENCED_CONFIG empty: none.
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Print the effective configuration (secrets redacted) and exit.
    #[arg(long)]
    print_config: bool,
    /// Model directory in the onnx-community layout.
    #[arg(long, value_name = "DIR")]
    model_dir: Option<PathBuf>,
    /// Address to bind [default: 127.0.0.1].
    #[arg(long)]
    host: Option<String>,
    /// Port [default: 11438]; 0 picks a free one (logged at start-up).
    #[arg(long)]
    port: Option<u16>,
    /// auto, onnx or hailo.
    #[arg(long)]
    backend: Option<String>,
    /// ONNX Runtime threads per graph (0: the process's one pool, one thread per physical core).
    #[arg(long)]
    threads: Option<u32>,
    /// ONNX Runtime execution provider: cpu (default), cuda, openvino, ...
    /// (must be in the loaded library).
    #[arg(long, value_name = "NAME")]
    execution_provider: Option<String>,
    /// json, text or auto (json unless stderr is a terminal).
    #[arg(long)]
    log_format: Option<String>,
    /// Any configuration key: --set queue_depth=4 --set limits.max_width=4096.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

impl ServeArgs {
    fn overrides(&self) -> Result<Vec<config::Override>, config::ConfigError> {
        let mut out = config::env_overrides(std::env::vars());
        let flag = |key: &str, value: String| config::Override {
            key: key.into(),
            value,
            source_name: format!("--{}", key.replace('_', "-")),
        };
        if let Some(v) = &self.model_dir {
            out.push(flag("model_dir", v.display().to_string()));
        }
        if let Some(v) = &self.host {
            out.push(flag("host", v.clone()));
        }
        if let Some(v) = self.port {
            out.push(flag("port", v.to_string()));
        }
        if let Some(v) = &self.backend {
            out.push(flag("backend", v.clone()));
        }
        if let Some(v) = self.threads {
            out.push(flag("threads", v.to_string()));
        }
        if let Some(v) = &self.execution_provider {
            out.push(flag("execution_provider", v.clone()));
        }
        if let Some(v) = &self.log_format {
            out.push(flag("log_format", v.clone()));
        }
        for s in &self.set {
            out.push(config::Override::parse_set(s)?);
        }
        Ok(out)
    }
}

fn serve_main(args: &ServeArgs) -> ExitCode {
    let loaded = args.overrides().and_then(|o| {
        // Read by hand rather than clap's `env`: clap refuses the empty value
        // that means "no file".
        let path = args
            .config
            .clone()
            .or_else(|| std::env::var_os(config::CONFIG_FILE_ENV).map(PathBuf::from));
        let config = config::Config::load(config::ConfigFile::from_arg(path.as_deref()), &o)?;
        // SIGHUP reads the same file with the same overrides again.
        let loader: lifecycle::Loader = std::sync::Arc::new(move || {
            let file = config::ConfigFile::from_arg(path.as_deref());
            let mut config = config::Config::load(file, &o).map_err(|e| e.to_string())?;
            if let Some(dir) = &config.model_dir {
                config.model_dir = Some(pull::resolve_model_dir(dir).map_err(|e| e.to_string())?);
            }
            Ok(config)
        });
        Ok((config, loader))
    });
    let (config, loader) = match loaded {
        Ok(c) => c,
        Err(e) => {
            eprintln!("florenced: {e}");
            return ExitCode::from(2);
        }
    };
    if args.print_config {
        print!("{}", config.redacted_yaml());
        return ExitCode::SUCCESS;
    }
    let mut config = config;
    if let Some(dir) = &config.model_dir {
        match pull::resolve_model_dir(dir) {
            Ok(dir) => config.model_dir = Some(dir),
            Err(e) => {
                eprintln!("florenced: {e}");
                return ExitCode::from(2);
            }
        }
    }
    logging::init(config.log_format, &config.log_level);
    match serve::serve(config, loader) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "florenced failed");
            eprintln!("florenced: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Args)]
struct ModelArgs {
    /// Model directory in the onnx-community layout.
    #[arg(long, env = "FLORENCED_MODEL_DIR")]
    model_dir: PathBuf,
    /// Variant suffix (`_quantized`, `_int8`, ...); empty for fp32.
    #[arg(long, default_value = "")]
    variant: String,
    /// Path of libonnxruntime.so (else ORT_DYLIB_PATH, the project folder, the system).
    #[arg(long, env = "FLORENCED_ORT_LIBRARY")]
    ort_library: Option<PathBuf>,
    /// Threads per graph of their own (default: the process's one pool, one thread per physical core).
    #[arg(long, env = "FLORENCED_THREADS")]
    threads: Option<usize>,
    /// Input resolution: 768 or 384 (a quarter of the vision work; default: the model's own).
    #[arg(long)]
    image_size: Option<u32>,
    /// Where captions run: auto (the Hailo device when the model has the split
    /// and the device answers, else ONNX Runtime), onnx or hailo; as the
    /// daemon's `backend`. HailoRT and its bridge are found at run time
    /// (FLORENCE_HAILORT_LIBRARY and FLORENCE_HAILO_BRIDGE_DIR override where).
    #[arg(long, default_value_t = BackendChoice::Auto)]
    backend: BackendChoice,
    /// ONNX Runtime execution provider: cpu (default), cuda, openvino, xnnpack,
    /// ... or ONNX Runtime's own name; one the library lacks fails, naming
    /// what it offers.
    #[arg(long, default_value_t = ExecutionProvider::cpu())]
    execution_provider: ExecutionProvider,
}

impl ModelArgs {
    /// The model directory, a Hub repository id resolved from the cache.
    fn dir(&self) -> anyhow::Result<PathBuf> {
        Ok(pull::resolve_model_dir(&self.model_dir)?)
    }

    /// Loading options: the sessions, and the backend choice.
    fn load_options(&self) -> LoadOptions {
        LoadOptions {
            session: self.options(),
            backend: self.backend,
            ..LoadOptions::default()
        }
    }

    fn options(&self) -> SessionOptions {
        let mut o = SessionOptions {
            variant: self.variant.clone(),
            ort_library: self.ort_library.clone(),
            image_size: self.image_size,
            execution_provider: self.execution_provider.clone(),
            ..SessionOptions::default()
        };
        if let Some(t) = self.threads {
            o.intra_threads = t;
        }
        o
    }
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Task token or name: '<CAPTION>', od, ocr_with_region, vqa, ...
    #[arg(long, default_value = "<CAPTION>")]
    task: String,
    /// Text input (phrase, category, the question for vqa, or a region task's
    /// region in Florence-2's notation: '<loc_52><loc_332><loc_932><loc_774>').
    #[arg(long)]
    text: Option<String>,
    /// Region input for region tasks: x1,y1,x2,y2 in image pixels.
    #[arg(long, value_parser = gstflorence::engine::task::parse_region, allow_hyphen_values = true)]
    region: Option<[f64; 4]>,
    /// Maximum new tokens (default from generation_config.json, else 1024).
    #[arg(long)]
    max_new_tokens: Option<usize>,
    #[arg(long)]
    min_new_tokens: Option<usize>,
    /// Beams (default from generation_config.json: 3 for Florence-2).
    #[arg(long)]
    num_beams: Option<usize>,
    /// > 0 samples at this temperature.
    #[arg(long)]
    temperature: Option<f32>,
    #[arg(long)]
    seed: Option<u64>,
    /// Print per-stage timings and token ids too.
    #[arg(long)]
    verbose: bool,
    /// Also write each image with its result drawn on it (regions with
    /// their labels, text along the bottom) as DIR/<image name>.png;
    /// each line then names its file under "drawn".
    #[arg(long, value_name = "DIR")]
    draw: Option<PathBuf>,
    /// Image files.
    #[arg(required = true)]
    images: Vec<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run one Florence-2 task on image files and print the results as JSON lines.
    Run(Box<RunArgs>),
    /// Load the model once, then answer JSON requests from stdin with timings (scripts/bench.sh).
    Bench {
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Open every graph of a model directory, validate it, and print its signature as JSON.
    Signature {
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Download a model from the Hugging Face Hub into its cache (shared with Python
    /// tools), check that it loads, and print its directory.
    Pull(pull::PullArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Some(command) = cli.command else {
        return serve_main(&cli.serve);
    };
    match one_shot(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:?}");
            ExitCode::FAILURE
        }
    }
}

fn one_shot(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Bench { model } => bench::serve(&model.dir()?, model.load_options())?,
        Command::Pull(args) => println!("{}", pull::run(&args)?.display()),
        Command::Signature { model } => {
            let dir = model.dir()?;
            let graphs = describe(&dir, &model.options())
                .with_context(|| format!("cannot open model directory {}", dir.display()))?;
            println!("{}", serde_json::to_string_pretty(&graphs)?);
        }
        Command::Run(args) => {
            let RunArgs {
                model,
                task,
                text,
                region,
                max_new_tokens,
                min_new_tokens,
                num_beams,
                temperature,
                seed,
                verbose,
                draw,
                images,
            } = *args;
            let task: Task = task.parse()?;
            let dir = model.dir()?;
            let florence = Florence::load(&dir, model.load_options())
                .with_context(|| format!("cannot load model directory {}", dir.display()))?;
            let request = Request {
                task,
                input: TaskInput { text, region },
                options: GenerationOptions {
                    max_new_tokens,
                    min_new_tokens,
                    num_beams,
                    temperature,
                    seed,
                    ..GenerationOptions::default()
                },
            };
            let mut drawings = draw.map(Drawings::new).transpose()?;
            for path in images {
                let image = image_io::read(&path, &ImageLimits::default())
                    .with_context(|| format!("cannot read image {}", path.display()))?;
                let out = florence
                    .run(&image, &request)
                    .with_context(|| format!("inference failed on {}", path.display()))?;
                let mut line = serde_json::json!({
                    "image": path.display().to_string(),
                    "task": out.task,
                    "result": out.result,
                    "token_count": out.token_count,
                    "inference_time_ms": out.timings.total_ms.round(),
                });
                if verbose {
                    line["backend"] = out.backend.name().into();
                    line["backend_reason"] = florence.backend_reason().into();
                    line["execution_provider"] = florence.execution_provider().name().into();
                    line["raw_text"] = out.raw_text.clone().into();
                    line["ids"] = serde_json::to_value(&out.ids)?;
                    line["timings"] = serde_json::to_value(&out.timings)?;
                }
                if let Some(drawings) = &mut drawings {
                    let file = drawings.write(&path, &image, &out.result)?;
                    line["drawn"] = file.display().to_string().into();
                }
                println!("{line}");
            }
        }
    }
    Ok(())
}
