use clap::Parser;

fn main() {
    let cli = shipdeck::cli::Cli::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("shipdeck: cannot start the async runtime: {e}");
            std::process::exit(2);
        }
    };
    let code = match runtime.block_on(shipdeck::cli::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!(
                "shipdeck: {}",
                shipdeck::model::text::sanitize(&format!("{e:#}"))
            );
            2
        }
    };
    std::process::exit(code);
}
