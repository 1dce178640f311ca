#![forbid(unsafe_code)]

/// mimalloc instead of glibc's malloc: under load glibc's arena and
/// free-list work was a third of the answering node's CPU (perf, issue 17;
/// docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // Install ring as the only rustls provider before anything can build a TLS config.
    liaison::tls::install_provider();
    liaison::cli::main()
}
