use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use kvm_wss::app::{self, EXIT_RUNTIME, EXIT_USAGE};
use kvm_wss::cli::Cli;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            eprintln!(
                "kvm-wss: {}",
                kvm_wss::cli::clap_error_line(&e.render().to_string())
            );
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if let Err(e) = kvm_wss::run::install_interrupt_handler() {
        eprintln!("kvm-wss: cannot install the Ctrl-C handler: {e}");
        return ExitCode::from(EXIT_RUNTIME);
    }
    match app::execute(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kvm-wss: {}", kvm_wss::error_chain(&e));
            ExitCode::from(e.exit_code())
        }
    }
}
