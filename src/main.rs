use clap::Parser;

fn main() {
    shipdeck::logging::mark_start();
    let cli = shipdeck::cli::Cli::parse();
    // The console and the CLI keep their memory small; the sandbox (gigabytes of fixtures at
    // 50,000 apps) keeps the kernel's huge pages.
    if !matches!(cli.command, Some(shipdeck::cli::Command::Sandbox(_))) {
        shipdeck::memory::no_huge_pages();
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(shipdeck::memory::on_park)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("shipdeck: cannot start the async runtime: {e}");
            std::process::exit(2);
        }
    };
    use shipdeck::cli::Command;
    // A theme that does not exist is a usage error for every command, with the list.
    if let Some(name) = cli.console.theme.as_deref()
        && let Err(e) = shipdeck::tui::theme::check_theme(name)
    {
        eprintln!("shipdeck: {}", shipdeck::model::text::sanitize(&e));
        std::process::exit(shipdeck::cli::exit::USAGE);
    }
    // The two front ends side by side: the console (no subcommand, `demo`) or the CLI.
    let work = async move {
        match cli.command {
            None => shipdeck::tui::run::run(cli.console).await.map(|()| 0),
            Some(Command::Demo(args)) => shipdeck::tui::run::demo(cli.console, args.options())
                .await
                .map(|()| 0),
            Some(cmd) => shipdeck::cli::run(&cli.console, cmd).await,
        }
    };
    let code = match runtime.block_on(work) {
        Ok(code) => code,
        Err(e) => {
            eprintln!(
                "shipdeck: {}",
                shipdeck::model::text::sanitize(&format!("{e:#}"))
            );
            2
        }
    };
    // Notifications still queued get a short bounded wait; one not delivered is a warning,
    // never a failure exit (the action's result is already printed).
    for w in shipdeck::ops::notify::flush_all(shipdeck::ops::notify::EXIT_FLUSH) {
        eprintln!("shipdeck: warning: {}", shipdeck::model::text::sanitize(&w));
    }
    // A console ended by a signal exits 128 + its number, like a program the signal killed.
    std::process::exit(shipdeck::tui::terminal::exit_status(code));
}
