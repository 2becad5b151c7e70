//! The `trainer` command line: one subcommand per job, each in its own module.
use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

mod check;
mod connection;
mod import;
mod synth;
mod train;

/// pg_recsys trainer: learns the hybrid recommender from the data in PostgreSQL.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    connection: connection::ConnectionArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Checks that libtorch loads here and that the database is reachable and has pg_recsys installed.
    Check,
    /// Imports data files into the recsys tables (one transaction per run; re-imports merge).
    #[command(subcommand)]
    Import(ImportCommand),
    /// Trains the hybrid model on the database's ratings, evaluates it and registers it as a new model version.
    Train(Box<train::TrainArgs>),
    /// Scores a registered model version (default: the active one) or an artefact directory on a hold-out split.
    Evaluate(train::evaluate::EvaluateArgs),
    /// Writes deterministic synthetic data (MovieLens + IMDb formats) for demos and benchmarks.
    Synth(synth::SynthArgs),
}

#[derive(Subcommand)]
enum ImportCommand {
    /// A MovieLens release directory: ML-100K, ML-1M/10M (.dat) or a CSV release (ml-latest, ML-20M/25M).
    Movielens {
        /// Directory holding the release's files.
        dir: PathBuf,
        /// links.csv from another release (movie ids are stable across releases), e.g. for ML-1M.
        #[arg(long)]
        links: Option<PathBuf>,
        /// Skip malformed lines (and report how many) instead of stopping at the first.
        #[arg(long)]
        skip_bad_lines: bool,
    },
    /// IMDb's TSV files (title.basics, title.crew, title.principals, name.basics; .tsv or .tsv.gz) for the
    /// movies already imported: matched by IMDb id, else by title and year.
    Imdb {
        /// Directory holding the four files.
        dir: PathBuf,
        /// Skip malformed lines (and report how many) instead of stopping at the first.
        #[arg(long)]
        skip_bad_lines: bool,
    },
}

fn main() -> Result<()> {
    recsys_model::float_mode::enable_on_this_thread();
    let cli = Cli::parse();
    match cli.command {
        Command::Check => check::run(&cli.connection),
        Command::Synth(args) => synth::run(&args),
        Command::Evaluate(args) => train::evaluate::run_evaluate(&mut cli.connection.connect()?, &args),
        Command::Train(args) => train::run(&mut cli.connection.connect()?, &args, &cli.connection),
        Command::Import(ImportCommand::Movielens { dir, links, skip_bad_lines }) => {
            let mut client = cli.connection.connect()?;
            let report = import::movielens_load::import(&mut client, &dir, links.as_deref(), skip_bad_lines)?;
            println!(
                "imported {} movies, {} users with demographics, {} ratings read ({} new, {} updated, {} skipped lines) in {:.2} s ({:.0} ratings/s)",
                report.movies,
                report.users,
                report.ratings_read,
                report.ratings_new,
                report.ratings_updated,
                report.skipped_lines,
                report.seconds,
                report.ratings_read as f64 / report.seconds
            );
            Ok(())
        }
        Command::Import(ImportCommand::Imdb { dir, skip_bad_lines }) => {
            let mut client = cli.connection.connect()?;
            let r = import::imdb_load::import(&mut client, &dir, skip_bad_lines)?;
            println!(
                "matched {} of {} movies ({} by title and year), {} persons, {} credits ({} without a name skipped), {} skipped lines, in {:.2} s",
                r.matched_titles, r.movies_in_database, r.matched_by_title, r.persons, r.credits, r.credits_without_name, r.skipped_lines, r.seconds
            );
            Ok(())
        }
    }
}
