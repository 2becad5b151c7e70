//! Serving state is fresh at every statement execution, not once per client message: a change made earlier in the
//! same multi-statement message, DO block or procedure (a deleted movie, another active version, a user's new
//! ratings) is what the next prediction in it sees.
use postgres::Client;
use recsys_integration_tests::{shared_cluster, sql_error, Loading};

/// The three ways one client message runs several statements.
#[derive(Debug, Clone, Copy)]
enum Form {
    Message,
    DoBlock,
    Procedure,
}

const FORMS: [Form; 3] = [Form::Message, Form::DoBlock, Form::Procedure];

/// Runs `statements` (each valid in SQL and in PL/pgSQL) as one message in `form`.
fn run(db: &mut Client, form: Form, statements: &[String]) -> Result<(), postgres::Error> {
    let body = statements.iter().map(|s| format!("{s};")).collect::<Vec<_>>().join("\n");
    match form {
        Form::Message => db.batch_execute(&body),
        Form::DoBlock => db.batch_execute(&format!("DO $probe$ BEGIN\n{body}\nEND $probe$")),
        Form::Procedure => {
            db.batch_execute(&format!("CREATE OR REPLACE PROCEDURE public.probe() LANGUAGE plpgsql AS $probe$ BEGIN\n{body}\nEND $probe$"))?;
            db.batch_execute("CALL public.probe()")
        }
    }
}

/// Records the value of `expression` as step `step` of the probe.
fn record(step: i32, expression: &str) -> String {
    format!("INSERT INTO public.seen SELECT {step}, ({expression})::text")
}

fn seen(db: &mut Client) -> Vec<String> {
    db.query("SELECT value FROM public.seen ORDER BY step", &[]).unwrap().iter().map(|row| row.get(0)).collect()
}

fn value(db: &mut Client, expression: &str) -> String {
    db.query_one(&format!("SELECT ({expression})::text"), &[]).unwrap().get(0)
}

fn probe_database(name: &str) -> Client {
    let mut db = shared_cluster(Loading::Preloaded).trained_demo_database(name).unwrap();
    db.batch_execute("CREATE TABLE public.seen (step int PRIMARY KEY, value text)").unwrap();
    db
}

#[test]
fn a_movie_deleted_earlier_in_the_same_message_is_not_predicted() {
    let mut db = probe_database("fresh_delete");
    let statements =
        [record(1, "recsys.recsys_predict(1, 7)"), "DELETE FROM recsys.movies WHERE movie_id = 7".into(), record(2, "recsys.recsys_predict(1, 7)")];
    for form in FORMS {
        let error = run(&mut db, form, &statements).expect_err("the second prediction fails");
        let code = error.as_db_error().map(|e| e.code().code().to_string());
        assert_eq!(code.as_deref(), Some("42704"), "{form:?}: the deleted movie is unknown to the next statement: {error}");
        assert_eq!(value(&mut db, "(SELECT count(*) FROM recsys.movies WHERE movie_id = 7)"), "1", "the failed message rolled back");
    }
    let (code, _) = sql_error(
        &mut db,
        "BEGIN; SELECT recsys.recsys_predict(1, 7); DELETE FROM recsys.movies WHERE movie_id = 7; SELECT recsys.recsys_predict(1, 7); ROLLBACK;",
    );
    assert_eq!(code, "42704", "the issue's probe");
}

#[test]
fn a_version_activated_earlier_in_the_same_message_serves_the_next_statement() {
    let cluster = shared_cluster(Loading::Preloaded);
    let mut db = probe_database("fresh_activate");
    let first = value(&mut db, "(SELECT version FROM recsys.models WHERE status = 'active')");
    cluster.quick_train("fresh_activate", &["--seed", "5"]).unwrap();
    let second = value(&mut db, "(SELECT max(version) FROM recsys.models)");
    let score = "recsys.recsys_predict(1, 3)";
    let by_first = value(&mut db, score);
    db.batch_execute(&format!("SELECT recsys.recsys_activate({second})")).unwrap();
    let by_second = value(&mut db, score);
    assert_ne!(by_first, by_second, "the two versions predict differently");
    for form in FORMS {
        db.batch_execute(&format!("TRUNCATE public.seen; SELECT recsys.recsys_activate({first})")).unwrap();
        let statements = [record(1, score), record(2, &format!("recsys.recsys_activate({second})")), record(3, score)];
        run(&mut db, form, &statements).unwrap();
        assert_eq!(seen(&mut db), vec![by_first.clone(), second.clone(), by_second.clone()], "{form:?}");
    }
}

#[test]
fn ratings_inserted_earlier_in_the_same_message_are_folded_in() {
    let mut db = probe_database("fresh_ratings");
    let score = "recsys.recsys_predict(900001, 5)";
    let average_user = value(&mut db, score);
    let insert_ratings = "INSERT INTO recsys.ratings (user_id, movie_id, rating, rated_at) \
                          SELECT 900001, movie_id, 0.5, now() FROM recsys.movies WHERE movie_id BETWEEN 10 AND 30";
    let add_user = "INSERT INTO recsys.users (user_id) VALUES (900001)";
    db.batch_execute(&format!("BEGIN; {add_user}; {insert_ratings}; COMMIT")).unwrap();
    let folded = value(&mut db, score);
    assert_ne!(average_user, folded, "twenty half-star ratings move the user's prediction");
    for form in FORMS {
        db.batch_execute("TRUNCATE public.seen; DELETE FROM recsys.ratings WHERE user_id = 900001").unwrap();
        run(&mut db, form, &[record(1, score), insert_ratings.into(), record(2, score)]).unwrap();
        assert_eq!(seen(&mut db), vec![average_user.clone(), folded.clone()], "{form:?}");
    }
}
