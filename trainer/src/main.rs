//! The `trainer` command line: one subcommand per job, each in its own module.
use anyhow::Result;
use clap::{Parser, Subcommand};

mod check;
mod connection;

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
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Check => check::run(&cli.connection),
    }
}
