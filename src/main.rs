//! The `rehydrate` binary: parse the command line, run, print the error chain once, and map the
//! result onto the exit codes (0 ok, 1 could not proceed, 2 usage, 3 some events failed).

use clap::Parser;
use rehydrate::action::sql::Dialect;
use rehydrate::cli::{Cli, Command, PopulateTarget};
use rehydrate::{report, run, Result};

fn main() {
    let cli = Cli::parse(); // exits with 2 on usage errors
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("REHYDRATE_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("starting the async runtime");
    let code = match runtime.block_on(main_inner(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e}");
            e.exit_code()
        }
    };
    // Dropping the runtime could wait on a reader blocked on stdin; we are done either way.
    runtime.shutdown_background();
    std::process::exit(code);
}

async fn main_inner(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Preview(args) => {
            run::preview(args.source.to_spec()?, args.filter.to_spec()?, args.limit, args.format).await
        }
        Command::Populate(PopulateTarget::Parquet(args)) => run::execute(args.to_spec()?).await,
        Command::Populate(PopulateTarget::Dynamodb(args)) => run::execute(args.to_spec().await?).await,
        Command::Populate(PopulateTarget::Postgres(args)) => run::execute(args.to_spec(Dialect::Postgres)?).await,
        Command::Populate(PopulateTarget::Mysql(args)) => run::execute(args.to_spec(Dialect::MySql)?).await,
        Command::Replay(args) => run::execute(args.to_spec().await?).await,
        Command::Invoke(args) => run::execute(args.to_spec().await?).await,
        Command::Report(args) => {
            report::query::run(&args.sql, &args.report_dir, args.format).await?;
            Ok(0)
        }
    }
}
