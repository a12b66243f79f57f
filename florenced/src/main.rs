//! florenced: the Florence-2 service, and a command-line entry point to the engine.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use gstflorence::engine::{SessionOptions, model_dir};

#[derive(Parser)]
#[command(version, about = "Florence-2 captioning, VQA and vision tasks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Open every graph of a model directory, validate it, and print its signature as JSON.
    Signature {
        /// Model directory in the onnx-community layout.
        #[arg(long, env = "FLORENCED_MODEL_DIR")]
        model_dir: PathBuf,
        /// Variant suffix (`_quantized`, `_fp16`, ...); empty for fp32.
        #[arg(long, default_value = "")]
        variant: String,
        /// Path of libonnxruntime.so (else ORT_DYLIB_PATH, the project folder, the system).
        #[arg(long, env = "FLORENCED_ORT_LIBRARY")]
        ort_library: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Signature {
            model_dir,
            variant,
            ort_library,
        } => {
            let options = SessionOptions {
                variant,
                ort_library,
                ..SessionOptions::default()
            };
            let graphs = model_dir::describe(&model_dir, &options)
                .with_context(|| format!("cannot open model directory {}", model_dir.display()))?;
            println!("{}", serde_json::to_string_pretty(&graphs)?);
        }
    }
    Ok(())
}
