#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    // Install ring as the only rustls provider before anything can build a TLS config.
    liaison::tls::install_provider();
    liaison::cli::main()
}
