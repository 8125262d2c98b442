//! The `rehydrate` binary: parse the command line, run, print the error chain once, and map the
//! result onto the exit codes (0 ok, 1 could not proceed, 2 usage, 3 some events failed).

use clap::Parser;
use rehydrate::action::sql::Dialect;
use rehydrate::cli::{Cli, Command, PopulateTarget, RunPlanArgs};
use rehydrate::{report, resume, run, Error, Result};

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
            run::preview(
                args.source.to_spec(&args.aws).await?,
                args.filter.to_spec()?,
                args.limit,
                args.format,
            )
            .await
        }
        Command::Report(args) => {
            if !report::remote::is_remote(&args.report_dir) {
                report::query::run(&args.sql, &args.report_dir, args.format).await?;
                return Ok(0);
            }
            let dir = report::remote::Remote::open(&args.report_dir, &rehydrate::aws::AwsArgs::from_env())
                .await?
                .download_all()
                .await?;
            let result = report::query::run(&args.sql, &dir, args.format).await;
            let _ = std::fs::remove_dir_all(&dir);
            result.map(|()| 0)
        }
        Command::Run(args) if args.check => check_plan(&args).await,
        Command::Resume(args) => continue_run(args, false).await,
        Command::Redrive(args) => continue_run(args, true).await,
        command => {
            let aws = command
                .aws_args()
                .cloned()
                .unwrap_or_else(rehydrate::aws::AwsArgs::from_env);
            match run_spec(command).await? {
                Some(spec) => run::execute(with_remote_reports(spec, &aws).await?).await,
                None => Err(Error::Internal("not an actioning command".into())),
            }
        }
    }
}

/// A run reporting to S3 writes its folder in the staging folder and uploads it.
async fn with_remote_reports(mut spec: run::RunSpec, aws: &rehydrate::aws::AwsArgs) -> Result<run::RunSpec> {
    if report::remote::is_remote(&spec.report_dir) && spec.report_remote.is_none() {
        let remote = report::remote::Remote::open(&spec.report_dir, aws).await?;
        spec.report_dir = remote.staging();
        spec.report_remote = Some(std::sync::Arc::new(remote));
    }
    Ok(spec)
}

/// `resume` (`redrive` false) or `redrive` a saved run.
async fn continue_run(args: rehydrate::cli::ResumeArgs, redrive: bool) -> Result<i32> {
    // Reports on S3 come down first (into a folder of their own); the new run goes up beside them.
    let (remote, report_dir) = match report::remote::is_remote(&args.report_dir) {
        true => {
            let r = report::remote::Remote::open(&args.report_dir, &rehydrate::aws::AwsArgs::from_env()).await?;
            let downloaded = r.download_all().await?;
            (Some(std::sync::Arc::new(r)), downloaded)
        }
        // Where the runs are, before moving to the directory the run was started in.
        false => (None, std::path::absolute(&args.report_dir)?),
    };
    let loaded = resume::load(&report_dir, &args.run_id, redrive);
    let report_dir = match &remote {
        Some(r) => {
            let _ = std::fs::remove_dir_all(&report_dir);
            r.staging()
        }
        None => report_dir,
    };
    let r = loaded?;
    std::env::set_current_dir(&r.spec.cwd)?;
    let recorded = Cli::try_parse_from(std::iter::once("rehydrate".to_owned()).chain(r.spec.argv.clone()))
        .map_err(|e| Error::usage(format!("the saved command of {} no longer parses: {e}", r.run_id)))?;
    let Some(mut spec) = run_spec(recorded.command).await? else {
        return Err(Error::usage(format!("{} is not a run that can be resumed", r.run_id)));
    };
    spec.report_dir = report_dir;
    spec.report_remote = remote;
    spec.argv = r.spec.argv;
    if redrive {
        eprintln!(
            "rehydrate: re-driving {}: {} events that ended failed, rejected or skipped",
            r.run_id, r.done.events
        );
    } else {
        eprintln!(
            "rehydrate: resuming {}: {} events already have an outcome and are left out",
            r.run_id, r.done.events
        );
    }
    if r.in_flight.events > 0 {
        eprintln!(
            "rehydrate: {} events were in flight when {} stopped: their delivery is unknown, so they are sent again",
            r.in_flight.events, r.run_id
        );
    }
    if !r.starts.is_empty() {
        let complete = r
            .starts
            .values()
            .filter(|s| matches!(s, rehydrate::source::Start::Complete))
            .count();
        eprintln!(
            "rehydrate: {complete} of the origins read before are settled and not read again; {} start at their last checkpoint",
            r.starts.len() - complete
        );
    }
    spec.source.starts = std::sync::Arc::new(r.starts);
    spec.in_flight = Some(std::sync::Arc::new(r.in_flight));
    spec.resume = Some((r.run_id, std::sync::Arc::new(r.done), redrive));
    run::execute(spec).await
}

/// A plan's routes, each parsed as its command's command line.
fn plan_commands(args: &RunPlanArgs) -> Result<(rehydrate::plan::Plan, Vec<Command>)> {
    let plan = rehydrate::plan::Plan::load(&args.plan, &args.forwarded())?;
    let mut commands = Vec::new();
    for r in &plan.routes {
        let cli = Cli::try_parse_from(std::iter::once("rehydrate".to_owned()).chain(r.argv.iter().cloned())).map_err(
            |e| {
                let text = e.to_string();
                let first = text.lines().next().unwrap_or("").trim_start_matches("error: ");
                Error::usage(format!("{}: route {}: {first}", plan.path, r.name))
            },
        )?;
        commands.push(cli.command);
    }
    Ok((plan, commands))
}

/// `rehydrate run --check`: every route's options, SQL and pattern checked, the routes printed;
/// nothing is read and no target is contacted.
async fn check_plan(args: &RunPlanArgs) -> Result<i32> {
    let (plan, commands) = plan_commands(args)?;
    let mut lines = vec![format!(
        "{}: {} routes, one read of the source",
        plan.path,
        plan.routes.len()
    )];
    for (r, command) in plan.routes.iter().zip(&commands) {
        let in_route = |e: Error| match e {
            Error::Usage(m) => Error::usage(format!("route {}: {m}", r.name)),
            Error::Sql(m) => Error::Sql(format!("route {}: {m}", r.name)),
            e => e,
        };
        let filter = command
            .filter_args()
            .ok_or_else(|| Error::usage(format!("route {}: not an actioning command", r.name)))?
            .to_spec()
            .map_err(in_route)?;
        run::check_filter(&filter).await.map_err(in_route)?;
        let options: Vec<&str> = r
            .argv
            .iter()
            .skip(r.action.split(' ').count())
            .map(String::as_str)
            .collect();
        lines.push(format!(
            "  {}: {} — {}\n      {}",
            r.name,
            r.action,
            r.filter,
            options.join(" ")
        ));
    }
    println!("{}", lines.join("\n"));
    Ok(0)
}

/// The run spec of a plan: the first route's source, read once, for every route.
async fn plan_spec(args: &RunPlanArgs) -> Result<run::RunSpec> {
    let (plan, commands) = plan_commands(args)?;
    let mut source = None;
    let mut routes = Vec::new();
    for (r, command) in plan.routes.iter().zip(commands) {
        let Some(spec) = Box::pin(run_spec(command)).await? else {
            return Err(Error::usage(format!("route {}: not an actioning command", r.name)));
        };
        source.get_or_insert(spec.source);
        // A route that is itself several (invoke --rules-from-bus) keeps their names under its own.
        for mut route in spec.routes {
            route.name = Some(match route.name.take() {
                Some(inner) => format!("{}/{inner}", r.name),
                None => r.name.clone(),
            });
            routes.push(route);
        }
    }
    let source = source.ok_or_else(|| Error::usage(format!("{}: the plan has no routes", plan.path)))?;
    args.run.spec(source, routes, Some("run".to_owned()))
}

/// The run spec of an actioning command (`None` for the others).
async fn run_spec(command: Command) -> Result<Option<run::RunSpec>> {
    Ok(Some(match command {
        Command::Run(args) => plan_spec(&args).await?,
        Command::Populate(PopulateTarget::Parquet(args)) => args.to_spec().await?,
        Command::Populate(PopulateTarget::Dynamodb(args)) => args.to_spec().await?,
        Command::Populate(PopulateTarget::Postgres(args)) => args.to_spec(Dialect::Postgres).await?,
        Command::Populate(PopulateTarget::Mysql(args)) => args.to_spec(Dialect::MySql).await?,
        Command::Populate(PopulateTarget::Opensearch(args)) => args.to_spec().await?,
        Command::Populate(PopulateTarget::Redshift(args)) => args.to_spec().await?,
        Command::Replay(args) => args.to_spec().await?,
        Command::Invoke(args) => args.to_spec().await?,
        Command::Preview(_) | Command::Report(_) | Command::Resume(_) | Command::Redrive(_) => return Ok(None),
    }))
}
