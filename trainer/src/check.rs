//! `trainer check`: libtorch loads in this process, the database answers, and pg_recsys is installed there.
use crate::connection::ConnectionArgs;
use anyhow::{bail, Result};

pub fn run(connection: &ConnectionArgs) -> Result<()> {
    let libtorch = recsys_model::runtime::libtorch_version().unwrap_or_else(|| "unknown".into());
    println!("trainer {}  libtorch {libtorch}  threads {}", env!("CARGO_PKG_VERSION"), recsys_model::runtime::intra_op_threads());
    let mut client = connection.connect()?;
    let server: String = client.query_one("SELECT current_setting('server_version')", &[])?.get(0);
    println!("server   PostgreSQL {server}");
    let installed = client.query_opt("SELECT extversion FROM pg_extension WHERE extname = 'pg_recsys'", &[])?;
    let Some(row) = installed else {
        bail!("pg_recsys is not installed in this database: run CREATE EXTENSION pg_recsys");
    };
    let extension_version: String = row.get(0);
    let backend_libtorch: Option<String> = client.query_one("SELECT libtorch_version FROM recsys.recsys_version_info()", &[])?.get(0);
    println!("database pg_recsys {extension_version}  backend libtorch {}", backend_libtorch.as_deref().unwrap_or("unknown"));
    Ok(())
}
