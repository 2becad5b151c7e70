//! Connecting to PostgreSQL the way Postgres tools do: a connection URL or key=value string from `--url`
//! (or `DATABASE_URL`), else the standard `PG*` environment variables (PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD).
use anyhow::{Context, Result};
use clap::Args;
use postgres::{Client, Config, NoTls};

#[derive(Args, Debug)]
pub struct ConnectionArgs {
    /// Connection URL (postgresql://user@host:port/db) or libpq key=value string; overrides the PG* variables.
    #[arg(long, global = true, env = "DATABASE_URL")]
    pub url: Option<String>,
}

impl ConnectionArgs {
    /// The connection settings these arguments and the environment describe.
    pub fn config(&self) -> Result<Config> {
        if let Some(url) = &self.url {
            return url.parse::<Config>().context("--url is not a valid PostgreSQL connection string");
        }
        let mut config = Config::new();
        let env = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        let user = env("PGUSER").or_else(|| env("USER")).unwrap_or_else(|| "postgres".into());
        config.host(&env("PGHOST").unwrap_or_else(|| "/var/run/postgresql".into()));
        config.port(env("PGPORT").map(|port| port.parse()).transpose().context("PGPORT is not a port number")?.unwrap_or(5432));
        config.dbname(&env("PGDATABASE").unwrap_or_else(|| user.clone()));
        config.user(&user);
        if let Some(password) = env("PGPASSWORD") {
            config.password(password);
        }
        config.application_name("pg_recsys trainer");
        Ok(config)
    }

    /// Opens a connection, naming where it tried to connect when that fails.
    pub fn connect(&self) -> Result<Client> {
        let config = self.config()?;
        config.connect(NoTls).with_context(|| {
            format!("cannot connect to PostgreSQL at {:?}:{:?} (set PG* variables or --url)", config.get_hosts(), config.get_ports())
        })
    }
}
