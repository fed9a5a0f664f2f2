use clap::Parser;

fn main() {
    let cli = match sso_sidecar::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                sso_sidecar::cli::EXIT_INVALID
            } else {
                0
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    std::process::exit(sso_sidecar::cli::main(cli));
}
