//! The snapshot the training data is read in: taken while no transaction writing recsys.ratings is in progress, so
//! every rating with a load number up to the data's last one is in it. Otherwise a rating written by a transaction
//! still open got a lower number than ratings committed before the read, and counted as seen by the version trained
//! on that read (`loaded_until`) without being in its data.
use crate::connection::ConnectionArgs;
use anyhow::{bail, Context, Result};
use postgres::error::SqlState;
use postgres::Client;
use std::time::{Duration, Instant};

/// How long one attempt to lock recsys.ratings waits: writers that start meanwhile queue behind it at most this long.
const LOCK_ATTEMPT: &str = "200ms";

/// Pause between two attempts, while the writers in progress finish.
const BETWEEN_ATTEMPTS: Duration = Duration::from_millis(500);

/// Begins a REPEATABLE READ, READ ONLY transaction on `client` in a snapshot no rating writer is in progress in: a
/// second connection takes recsys.ratings in SHARE mode (which waits for the writers in progress and holds off new
/// ones), exports its snapshot to `client` and lets go, so writers wait milliseconds, not for the whole read. A role
/// that may not take the lock (it needs UPDATE on recsys.ratings, as `recsys_admin` has) reads in a plain snapshot,
/// with a warning.
pub fn begin_settled(client: &mut Client, connection: &ConnectionArgs) -> Result<()> {
    let mut locker = connection.connect()?;
    let mut lock = locker.transaction()?;
    lock.batch_execute(&format!("SET LOCAL lock_timeout = '{LOCK_ATTEMPT}'"))?;
    let started = Instant::now();
    let mut said_waiting = false;
    loop {
        lock.batch_execute("SAVEPOINT attempt")?;
        match lock.batch_execute("LOCK TABLE recsys.ratings IN SHARE MODE") {
            Ok(()) => {
                lock.batch_execute("RELEASE SAVEPOINT attempt")?;
                break;
            }
            Err(error) if error.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {
                lock.batch_execute("ROLLBACK TO SAVEPOINT attempt; RELEASE SAVEPOINT attempt")?;
                if !said_waiting {
                    eprintln!(
                        "waiting for the transactions writing recsys.ratings to finish, so the training data holds all of their ratings or none"
                    );
                    said_waiting = true;
                }
                std::thread::sleep(BETWEEN_ATTEMPTS);
            }
            Err(error) if error.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => {
                eprintln!("warning: this role may not lock recsys.ratings (it needs UPDATE on it); a rating written by a transaction open during the read may count as seen by this version without being in its data");
                drop(lock);
                client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
                return Ok(());
            }
            Err(error) => return Err(error).context("locking recsys.ratings for a settled snapshot"),
        }
    }
    if said_waiting {
        eprintln!("the writers finished after {:.1} s", started.elapsed().as_secs_f64());
    }
    let snapshot: String = lock.query_one("SELECT pg_catalog.pg_export_snapshot()", &[])?.get(0);
    // SET TRANSACTION SNAPSHOT takes no parameters: the id is the server's own, and checked to be one.
    if snapshot.is_empty() || !snapshot.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        bail!("the server exported a snapshot id of an unexpected form: {snapshot:?}");
    }
    client.batch_execute(&format!("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '{snapshot}'"))?;
    lock.commit()?;
    Ok(())
}
