//! The `tailmeter` command: `serve` runs the gateway, `check` validates a configuration.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tailmeter::config;

#[derive(Parser)]
#[command(
    name = "tailmeter",
    version,
    about = "An LLM metering gateway for your tailnet"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy and the admin listener.
    Serve {
        /// The configuration file.
        #[arg(long, env = "TAILMETER_CONFIG", default_value = "tailmeter.toml")]
        config: PathBuf,
    },
    /// Validate a configuration and print what it resolves to.
    Check {
        /// The configuration file.
        #[arg(long, env = "TAILMETER_CONFIG", default_value = "tailmeter.toml")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config: path } => match config::load(&path) {
            Ok(config) => {
                println!("{}: ok\n{}", path.display(), config.summary());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Serve { config: path } => match config::load(&path) {
            Ok(config) => {
                tailmeter::logging::init(config.log.level.as_deref());
                tailmeter::server::run(&config, &path);
                tailmeter::logging::flush();
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
