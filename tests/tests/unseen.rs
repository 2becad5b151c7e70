//! "The ratings a version has not seen" is decided by what it was trained on, not by `rated_at`: a back-filled week
//! (ratings imported after training whose timestamps fall inside the trained period) is folded in, counted by the
//! refresh's prospective RMSE, and is what the champion comparison judges a challenger by; a rating written by a
//! transaction open while the trainer reads is never counted as seen without being read.
use postgres::{Client, NoTls};
use recsys_integration_tests::{shared_cluster, Loading, ScratchDir};
use std::path::Path;
use std::time::{Duration, Instant};

#[test]
fn a_back_filled_week_is_folded_in_counted_and_lets_a_better_challenger_win() {
    let cluster = shared_cluster(Loading::Preloaded);
    let name = "unseen_backfill";
    let mut db = cluster.trained_demo_database(name).unwrap();
    let trained_until: i64 =
        db.query_one("SELECT (fingerprint ->> 'max_rated_at')::int8 FROM recsys.models WHERE status = 'active'", &[]).unwrap().get(0);

    let scratch = ScratchDir::new(name).unwrap();
    let catalogue = Path::new(env!("CARGO_MANIFEST_DIR")).join("../seeds/catalogue.tsv").display().to_string();
    let out = scratch.0.join("backfill").display().to_string();
    let synth = ["synth", "--catalogue", &catalogue, "--users", "600", "--ratings", "3000", "--min-ratings-per-user", "1"];
    let dated = ["--seed", "20261206", "--first-timestamp", "940000000", "--out", &out];
    cluster.trainer_ok(name, &[&synth[..], &dated[..]].concat()).unwrap();
    cluster.trainer_ok(name, &["import", "movielens", &format!("{out}/movielens")]).unwrap();

    let new_to_model = "SELECT count(*), max(extract(epoch FROM r.rated_at))::int8 FROM recsys.ratings r, recsys.models m
                        WHERE m.status = 'active' AND r.loaded > (m.fingerprint ->> 'loaded_until')::int8";
    let row = db.query_one(new_to_model, &[]).unwrap();
    let (backfilled, newest): (i64, Option<i64>) = (row.get(0), row.get(1));
    assert!(backfilled > 1000, "the back-filled ratings are new to the model: {backfilled}");
    assert!(newest.is_some_and(|newest| newest < trained_until), "all of them are dated inside the trained period: {newest:?} < {trained_until}");

    let (user, movie): (i32, i32) = {
        let row = db
            .query_one(
                "SELECT r.user_id, (SELECT min(movie_id) FROM recsys.movies WHERE movie_id NOT IN (SELECT movie_id FROM recsys.ratings WHERE user_id = r.user_id))
                 FROM recsys.ratings r, recsys.models m
                 WHERE m.status = 'active' AND r.loaded > (m.fingerprint ->> 'loaded_until')::int8
                 GROUP BY r.user_id ORDER BY count(*) DESC, r.user_id LIMIT 1",
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    let predict = format!("SELECT recsys.recsys_predict({user}, {movie})");
    let folded: f32 = db.query_one(&predict, &[]).unwrap().get(0);
    db.batch_execute("SET recsys.fold_in = off").unwrap();
    let trained: f32 = db.query_one(&predict, &[]).unwrap().get(0);
    db.batch_execute("RESET recsys.fold_in").unwrap();
    assert_ne!(folded, trained, "user {user}'s back-filled ratings are folded into their vector");

    db.batch_execute("CALL recsys.recsys_refresh_batch(10)").unwrap();
    let counted: i64 =
        db.query_one("SELECT prospective_ratings FROM recsys.quality_log WHERE kind = 'refresh' ORDER BY run_id DESC LIMIT 1", &[]).unwrap().get(0);
    assert_eq!(counted, backfilled, "the refresh's prospective RMSE counts exactly the back-filled ratings");

    let printed =
        cluster.trainer_ok(name, &["train", "--activate-if-better", "--epochs", "2", "--skip-cold-start", "--ranking-users", "10"]).unwrap();
    assert!(printed.contains("hold-out ratings it has not seen"), "compared on back-filled ratings only:\n{printed}");
    let active: i64 = db.query_one("SELECT version FROM recsys.models WHERE status = 'active'", &[]).unwrap().get(0);
    assert_eq!(active, 2, "the challenger, trained on the back-filled week, wins on it:\n{printed}");
    let compared: i64 = db
        .query_one("SELECT (details #>> '{comparison,ratings}')::int8 FROM recsys.quality_log WHERE kind = 'train' ORDER BY run_id DESC LIMIT 1", &[])
        .unwrap()
        .get(0);
    assert!(compared > 0 && compared < backfilled, "the challenger's hold-out share of the back-filled ratings: {compared}");

    let unchanged =
        cluster.trainer_ok(name, &["train", "--activate-if-better", "--epochs", "2", "--skip-cold-start", "--ranking-users", "10"]).unwrap();
    assert!(unchanged.contains("not compared on ratings it was trained on"), "nothing new to the active model:\n{unchanged}");
    let still: i64 = db.query_one("SELECT version FROM recsys.models WHERE status = 'active'", &[]).unwrap().get(0);
    assert_eq!(still, 2, "with nothing to judge it by, the active model stays");
}

#[test]
fn a_rating_written_by_a_transaction_open_during_the_read_is_in_the_data_of_the_version_that_counts_it_as_seen() {
    let cluster = shared_cluster(Loading::Preloaded);
    let name = "unseen_open_writer";
    let mut db = cluster.trained_demo_database(name).unwrap();
    let unrated = "SELECT u.user_id, (SELECT min(movie_id) FROM recsys.movies WHERE movie_id NOT IN (SELECT movie_id FROM recsys.ratings WHERE user_id = u.user_id))
                   FROM recsys.users u ORDER BY u.user_id LIMIT 2";
    let pairs: Vec<(i32, i32)> = db.query(unrated, &[]).unwrap().iter().map(|row| (row.get(0), row.get(1))).collect();
    let insert = "INSERT INTO recsys.ratings (user_id, movie_id, rating, rated_at) VALUES ($1, $2, 4.5, now())";

    let mut open_writer = Client::connect(&cluster.connection_string("postgres", name), NoTls).unwrap();
    let mut writing = open_writer.transaction().unwrap();
    writing.execute(insert, &[&pairs[0].0, &pairs[0].1]).unwrap();
    db.execute(insert, &[&pairs[1].0, &pairs[1].1]).unwrap();
    let numbers = "SELECT loaded FROM recsys.ratings WHERE (user_id, movie_id) IN (($1, $2), ($3, $4)) ORDER BY loaded";
    let committed: Vec<i64> = db.query(numbers, &[&pairs[0].0, &pairs[0].1, &pairs[1].0, &pairs[1].1]).unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(committed.len(), 1, "only the committed rating is visible yet");

    let trainer = cluster
        .trainer_command(name, &["train", "--epochs", "1", "--skip-cold-start", "--no-refit", "--ranking-users", "10"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let waiting = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'pg_recsys trainer' AND wait_event_type = 'Lock'";
    let started = Instant::now();
    let mut waited = false;
    while started.elapsed() < Duration::from_secs(60) {
        if db.query_one(waiting, &[]).unwrap().get::<_, i64>(0) > 0 {
            waited = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1500));
    writing.commit().unwrap();
    let output = trainer.wait_with_output().unwrap();
    let printed = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{printed}");
    assert!(waited, "the trainer waits for the transaction writing a rating before it reads:\n{printed}");
    assert!(printed.contains("waiting for the transactions writing recsys.ratings"), "and says so while it retries:\n{printed}");

    let row = db
        .query_one(
            "SELECT (fingerprint ->> 'ratings')::int8, (fingerprint ->> 'loaded_until')::int8 FROM recsys.models ORDER BY version DESC LIMIT 1",
            &[],
        )
        .unwrap();
    let (read, loaded_until): (i64, i64) = (row.get(0), row.get(1));
    let counted_as_seen: i64 = db.query_one("SELECT count(*) FROM recsys.ratings WHERE loaded <= $1", &[&loaded_until]).unwrap().get(0);
    assert_eq!(counted_as_seen, read, "every rating the new version counts as seen is one it read (loaded_until {loaded_until})");
    let both: i64 = db
        .query_one(
            "SELECT count(*) FROM recsys.ratings WHERE (user_id, movie_id) IN (($1, $2), ($3, $4)) AND loaded <= $5",
            &[&pairs[0].0, &pairs[0].1, &pairs[1].0, &pairs[1].1, &loaded_until],
        )
        .unwrap()
        .get(0);
    assert_eq!(both, 2, "both ratings, the one committed while the trainer waited too, are in its data");
}
