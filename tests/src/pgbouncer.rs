//! PgBouncer (Debian's package) in transaction pooling mode in front of a test cluster: started as the postgres user
//! with its own configuration beside the cluster, stopped when dropped.
use super::{empty_root, free_port, hand_to_postgres_user, run_as_pg_owner, TempCluster};
use anyhow::{bail, Context, Result};
use postgres::{Client, NoTls};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// A running pgbouncer in transaction mode.
pub struct PgBouncer {
    dir: PathBuf,
    port: u16,
}

impl PgBouncer {
    /// Starts pgbouncer on a free loopback port in front of every database of `cluster` (trust authentication, as the
    /// test clusters use).
    pub fn start(cluster: &TempCluster, server_connections: u32) -> Result<Self> {
        let (socket, cluster_port) = cluster.socket_and_port();
        let dir = empty_root(socket.parent().context("cluster root")?, "pgbouncer")?;
        let port = free_port()?;
        let config = format!(
            "[databases]\n* = host={socket} port={cluster_port}\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n\
             unix_socket_dir =\nauth_type = trust\nauth_file = {dir}/users.txt\npool_mode = transaction\n\
             default_pool_size = {server_connections}\nmax_client_conn = 100\nlogfile = {dir}/pgbouncer.log\n\
             pidfile = {dir}/pgbouncer.pid\nignore_startup_parameters = extra_float_digits,options\n",
            socket = socket.display(),
            dir = dir.display(),
        );
        std::fs::write(dir.join("pgbouncer.ini"), config)?;
        std::fs::write(dir.join("users.txt"), "\"postgres\" \"\"\n")?;
        hand_to_postgres_user(&dir.join("pgbouncer.ini"))?;
        hand_to_postgres_user(&dir.join("users.txt"))?;
        run_as_pg_owner(Command::new("/usr/sbin/pgbouncer").arg("-d").arg(dir.join("pgbouncer.ini"))).context("starting pgbouncer")?;
        let bouncer = Self { dir, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Client::connect(&bouncer.connection_string("postgres"), NoTls).is_err() {
            if Instant::now() > deadline {
                bail!("pgbouncer did not accept connections: {}", std::fs::read_to_string(bouncer.dir.join("pgbouncer.log")).unwrap_or_default());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(bouncer)
    }

    /// A libpq-style connection string to `database` through pgbouncer.
    pub fn connection_string(&self, database: &str) -> String {
        format!("host=127.0.0.1 port={} user=postgres dbname={database}", self.port)
    }

    /// A client connection to `database` through pgbouncer (use the simple query protocol: in transaction mode a
    /// prepared statement does not follow the client from one server connection to the next).
    pub fn connect(&self, database: &str) -> Result<Client> {
        Ok(Client::connect(&self.connection_string(database), NoTls)?)
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("pgbouncer.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
