//! Test fixtures: throwaway PostgreSQL 15 clusters (run as the postgres user when we are root) that load the
//! pg_recsys extension installed in Debian's PostgreSQL, with or without `shared_preload_libraries`.
mod pgbouncer;

pub use pgbouncer::PgBouncer;

use anyhow::{bail, Context, Result};
use postgres::{Client, NoTls};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// PostgreSQL 15's programs (Debian's layout).
pub const PG_BINDIR: &str = "/usr/lib/postgresql/15/bin";

/// How a test cluster loads pg_recsys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Loading {
    /// `shared_preload_libraries = 'pg_cron,pg_recsys'`: libtorch is loaded once in the postmaster.
    Preloaded,
    /// Only pg_cron is preloaded; each backend loads pg_recsys (and libtorch) on first use.
    OnDemand,
}

/// A PostgreSQL cluster in a temporary directory, stopped and removed when dropped or when the test process exits.
pub struct TempCluster {
    root: PathBuf,
    port: u16,
}

impl TempCluster {
    /// Creates and starts a cluster; `extra_settings` are `name=value` server settings.
    pub fn start(name: &str, loading: Loading, extra_settings: &[&str]) -> Result<Self> {
        let base = std::env::var_os("RECSYS_TEST_CLUSTERS")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-clusters"));
        let cluster = Self { root: empty_root(&base, name)?, port: free_port()? };
        run_as_pg_owner(
            Command::new(format!("{PG_BINDIR}/initdb"))
                .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "-D"])
                .arg(cluster.data_dir()),
        )
        .context("initdb")?;
        cluster.start_server(name, loading, extra_settings)?;
        Ok(cluster)
    }

    fn start_server(&self, name: &str, loading: Loading, extra_settings: &[&str]) -> Result<()> {
        let cluster = self;
        let preload = match loading {
            Loading::Preloaded => "pg_cron,pg_recsys",
            Loading::OnDemand => "pg_cron",
        };
        let mut options =
            format!("-p {} -k {} -c listen_addresses='' -c shared_preload_libraries={preload} -c fsync=off", cluster.port, cluster.root.display());
        for setting in extra_settings {
            options.push_str(&format!(" -c {setting}"));
        }
        let log = cluster.root.join("postgres.log");
        let started = run_as_pg_owner(
            Command::new(format!("{PG_BINDIR}/pg_ctl"))
                .arg("-D")
                .arg(cluster.data_dir())
                .arg("-l")
                .arg(&log)
                .args(["-w", "-t", "60", "-o", &options, "start"]),
        );
        if let Err(error) = started {
            let log_text = std::fs::read_to_string(&log).unwrap_or_default();
            bail!("cluster {name} failed to start: {error}\n{log_text}");
        }
        Ok(())
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// A hot standby of `primary` (pg_basebackup -R over its Unix socket), started with the same loading.
    pub fn standby_of(primary: &TempCluster, name: &str, loading: Loading) -> Result<Self> {
        let base = primary.root.parent().context("cluster root")?;
        let cluster = Self { root: empty_root(base, name)?, port: free_port()? };
        run_as_pg_owner(
            Command::new(format!("{PG_BINDIR}/pg_basebackup"))
                .arg("-h")
                .arg(&primary.root)
                .args(["-p", &primary.port.to_string(), "-U", "postgres", "-R", "-X", "stream", "-D"])
                .arg(cluster.data_dir()),
        )
        .context("pg_basebackup")?;
        cluster.start_server(name, loading, &[])?;
        Ok(cluster)
    }

    /// The postmaster's process id.
    pub fn postmaster_pid(&self) -> Result<i32> {
        let pid_file = std::fs::read_to_string(self.data_dir().join("postmaster.pid"))?;
        Ok(pid_file.lines().next().context("empty postmaster.pid")?.trim().parse()?)
    }

    /// A libpq-style connection string for this cluster.
    pub fn connection_string(&self, user: &str, database: &str) -> String {
        format!("host={} port={} user={user} dbname={database}", self.root.display(), self.port)
    }

    /// Connects as the superuser to the `postgres` database.
    pub fn connect(&self) -> Result<Client> {
        Ok(Client::connect(&self.connection_string("postgres", "postgres"), NoTls)?)
    }

    /// Connects as the superuser to `database`, keeping every message the server sends it (NOTICE, WARNING, …) as
    /// "SEVERITY: message" in the returned list.
    pub fn connect_keeping_messages(&self, database: &str) -> Result<(Client, std::sync::Arc<Mutex<Vec<String>>>)> {
        let messages = std::sync::Arc::new(Mutex::new(Vec::new()));
        let sink = messages.clone();
        let mut config: postgres::Config = self.connection_string("postgres", database).parse()?;
        config.notice_callback(move |notice| sink.lock().unwrap().push(format!("{}: {}", notice.severity(), notice.message())));
        Ok((config.connect(NoTls)?, messages))
    }

    fn stop(&self) {
        let _ = run_as_pg_owner(Command::new(format!("{PG_BINDIR}/pg_ctl")).arg("-D").arg(self.data_dir()).args(["-m", "immediate", "-w", "stop"]));
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A cluster shared by all tests of one test binary, created on first use (with the extension created in the
/// `postgres` database) and stopped when the test process exits.
pub fn shared_cluster(loading: Loading) -> &'static TempCluster {
    static PRELOADED: OnceLock<TempCluster> = OnceLock::new();
    static ON_DEMAND: OnceLock<TempCluster> = OnceLock::new();
    let slot = match loading {
        Loading::Preloaded => &PRELOADED,
        Loading::OnDemand => &ON_DEMAND,
    };
    slot.get_or_init(|| {
        register_exit_cleanup();
        let name = match loading {
            Loading::Preloaded => "preloaded",
            Loading::OnDemand => "on-demand",
        };
        let cluster = TempCluster::start(name, loading, &[]).expect("start test cluster");
        cluster.connect().unwrap().batch_execute("CREATE EXTENSION IF NOT EXISTS pg_recsys").expect("CREATE EXTENSION pg_recsys");
        SHARED.lock().unwrap().push(cluster.data_dir());
        cluster
    })
}

static SHARED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn register_exit_cleanup() {
    static REGISTERED: OnceLock<()> = OnceLock::new();
    REGISTERED.get_or_init(|| {
        extern "C" fn stop_shared_clusters() {
            if let Ok(dirs) = SHARED.lock() {
                for data_dir in dirs.iter() {
                    let _ =
                        run_as_pg_owner(Command::new(format!("{PG_BINDIR}/pg_ctl")).arg("-D").arg(data_dir).args(["-m", "immediate", "-w", "stop"]));
                    if let Some(root) = data_dir.parent() {
                        let _ = std::fs::remove_dir_all(root);
                    }
                }
            }
        }
        // SAFETY: registering a plain function that only spawns pg_ctl and removes directories.
        unsafe { libc::atexit(stop_shared_clusters) };
    });
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn run_as_pg_owner(command: &mut Command) -> Result<()> {
    let mut actual = if is_root() {
        let mut wrapped = Command::new("runuser");
        wrapped.args(["-u", "postgres", "--"]).arg(command.get_program()).args(command.get_args());
        wrapped
    } else {
        std::mem::replace(command, Command::new("true"))
    };
    let output = actual.output().with_context(|| format!("running {:?}", actual.get_program()))?;
    if !output.status.success() {
        bail!("{:?} failed: {}{}", actual, String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    }
    Ok(())
}

fn hand_to_postgres_user(dir: &Path) -> Result<()> {
    if is_root() {
        let status = Command::new("chown").args(["postgres:postgres"]).arg(dir).status()?;
        if !status.success() {
            bail!("chown postgres {} failed", dir.display());
        }
    }
    Ok(())
}

/// `base/name-pid`, emptied and owned by the postgres user.
fn empty_root(base: &Path, name: &str) -> Result<PathBuf> {
    let root = base.join(format!("{name}-{}", std::process::id()));
    if root.exists() {
        std::fs::remove_dir_all(&root)?;
    }
    std::fs::create_dir_all(&root)?;
    hand_to_postgres_user(&root)?;
    Ok(root)
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The trainer binary built by `cargo build -p trainer` (scripts/test.sh builds it first); `RECSYS_TRAINER`
/// overrides the path.
pub fn trainer_binary() -> PathBuf {
    std::env::var_os("RECSYS_TRAINER").map(PathBuf::from).unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/trainer"))
}

impl TempCluster {
    /// Creates a database with pg_recsys installed and returns a connection to it.
    pub fn fresh_database(&self, name: &str) -> Result<Client> {
        let mut admin = self.connect()?;
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
        admin.batch_execute(&format!("CREATE DATABASE {name}"))?;
        let mut client = Client::connect(&self.connection_string("postgres", name), NoTls)?;
        client.batch_execute("CREATE EXTENSION pg_recsys")?;
        Ok(client)
    }

    /// A fresh database holding the demo data (seeds/) imported with the real importers.
    pub fn demo_database(&self, name: &str) -> Result<Client> {
        let client = self.fresh_database(name)?;
        let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../seeds/demo");
        self.trainer_ok(name, &["import", "movielens", &seeds.join("movielens").display().to_string()])?;
        self.trainer_ok(name, &["import", "imdb", &seeds.join("imdb").display().to_string()])?;
        Ok(client)
    }

    /// A demo database with a model trained quickly (two epochs, no cold-start run), registered and active.
    pub fn trained_demo_database(&self, name: &str) -> Result<Client> {
        let client = self.demo_database(name)?;
        self.quick_train(name, &["--activate"])?;
        Ok(client)
    }

    /// Trains a model on `database` in a few seconds (two epochs, no cold-start run, the preference part stopped after
    /// 4 stale checks instead of running all its epochs); `extra` are more flags.
    pub fn quick_train(&self, database: &str, extra: &[&str]) -> Result<String> {
        let mut args = vec!["train", "--epochs", "2", "--skip-cold-start", "--ranking-users", "10", "--preference-patience", "4"];
        args.extend_from_slice(extra);
        self.trainer_ok(database, &args)
    }

    /// The trainer with `args`, set up to reach `database` through the standard PG* variables.
    pub fn trainer_command(&self, database: &str, args: &[&str]) -> Command {
        let mut command = Command::new(trainer_binary());
        command
            .args(args)
            .env("PGHOST", &self.root)
            .env("PGPORT", self.port.to_string())
            .env("PGUSER", "postgres")
            .env("PGDATABASE", database)
            .env_remove("DATABASE_URL")
            .env_remove("MLFLOW_TRACKING_URI");
        command
    }

    /// Runs the trainer against `database` with the standard PG* variables; returns its output, failed or not.
    pub fn run_trainer(&self, database: &str, args: &[&str]) -> Result<std::process::Output> {
        Ok(self.trainer_command(database, args).output()?)
    }

    /// Runs the trainer and fails with its output unless it succeeds; returns its standard output.
    pub fn trainer_ok(&self, database: &str, args: &[&str]) -> Result<String> {
        let output = self.run_trainer(database, args)?;
        if !output.status.success() {
            bail!("trainer {args:?} failed:\n{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Runs `sql/<file>` (the user-facing SQL) with psql as the superuser, stopping at the first error, in unaligned
    /// tuples-only output; returns the output, or the error with psql's messages.
    pub fn psql_file(&self, database: &str, file: &str) -> Result<String> {
        self.psql_script(database, &Path::new(env!("CARGO_MANIFEST_DIR")).join("../sql").join(file))
    }

    /// Runs the SQL file at `path` with psql as the superuser, as `psql_file` does.
    pub fn psql_script(&self, database: &str, path: &Path) -> Result<String> {
        let file = path.display();
        let output = Command::new(format!("{PG_BINDIR}/psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-U", "postgres", "-d", database, "-p", &self.port.to_string(), "-h"])
            .arg(&self.root)
            .arg("-f")
            .arg(path)
            .output()?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            bail!("psql -f {file} failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
        }
        Ok(stdout)
    }

    /// The socket directory and port, for tools such as pg_dump.
    pub fn socket_and_port(&self) -> (PathBuf, u16) {
        (self.root.clone(), self.port)
    }
}

/// A scratch directory under the test clusters' base, removed when dropped.
pub struct ScratchDir(pub PathBuf);

impl ScratchDir {
    pub fn new(name: &str) -> Result<Self> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-scratch").join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }

    pub fn write(&self, relative: &str, contents: impl AsRef<[u8]>) -> Result<PathBuf> {
        let path = self.0.join(relative);
        std::fs::create_dir_all(path.parent().expect("file in a directory"))?;
        std::fs::write(&path, contents)?;
        Ok(path)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The SQLSTATE and message of a statement that must fail with a SQL error (not with a lost connection).
pub fn sql_error(client: &mut Client, sql: &str) -> (String, String) {
    let error = client.batch_execute(sql).unwrap_err();
    let db = error.as_db_error().unwrap_or_else(|| panic!("{sql}: expected a SQL error, got {error}"));
    (db.code().code().to_string(), db.message().to_string())
}
