//! The importers against a real cluster: every MovieLens format, IMDb files, malformed input, re-imports and
//! incremental imports, the bulk path's schema, and a pg_dump/pg_restore round trip of the extension's tables.
use postgres::Client;
use recsys_integration_tests::{shared_cluster, Loading, ScratchDir, TempCluster};

fn cluster() -> &'static TempCluster {
    shared_cluster(Loading::Preloaded)
}

fn count(client: &mut Client, table: &str) -> i64 {
    client.query_one(&format!("SELECT count(*) FROM recsys.{table}"), &[]).unwrap().get(0)
}

fn counts(client: &mut Client) -> [i64; 6] {
    ["users", "movies", "ratings", "movie_genres", "persons", "movie_persons"].map(|table| count(client, table))
}

const CSV_MOVIES: &str = "movieId,title,genres\n1,Toy Story (1995),Adventure|Animation|Children\n11,\"American President, The (1995)\",Comedy|Drama|Romance\n20,Unrated Film (2001),(no genres listed)\n";
const CSV_LINKS: &str = "movieId,imdbId,tmdbId\n1,0114709,862\n11,0112346,9087\n20,0999999,\n";
const CSV_RATINGS: &str = "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,11,3.5,964981247\n2,1,0.5,964982224\n";

fn write_csv_release(dir: &ScratchDir, ratings: &str) -> String {
    dir.write("ml/movies.csv", CSV_MOVIES).unwrap();
    dir.write("ml/links.csv", CSV_LINKS).unwrap();
    dir.write("ml/ratings.csv", ratings).unwrap();
    dir.0.join("ml").display().to_string()
}

#[test]
fn csv_release_imports_titles_links_and_half_stars() {
    let mut db = cluster().fresh_database("import_csv").unwrap();
    let dir = ScratchDir::new("csv").unwrap();
    let path = write_csv_release(&dir, CSV_RATINGS);
    cluster().trainer_ok("import_csv", &["import", "movielens", &path]).unwrap();
    assert_eq!(counts(&mut db)[..4], [2, 3, 3, 6]);
    let row = db.query_one("SELECT title, year, imdb_id, tmdb_id FROM recsys.movies WHERE movie_id = 11", &[]).unwrap();
    assert_eq!(row.get::<_, String>(0), "The American President");
    assert_eq!(row.get::<_, Option<i32>>(1), Some(1995));
    assert_eq!(row.get::<_, Option<String>>(2).as_deref(), Some("tt0112346"));
    assert_eq!(row.get::<_, Option<i32>>(3), Some(9087));
    let rating: f32 = db.query_one("SELECT rating FROM recsys.ratings WHERE user_id = 1 AND movie_id = 11", &[]).unwrap().get(0);
    assert_eq!(rating, 3.5);
    let rated_at: String = db
        .query_one("SELECT to_char(rated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') FROM recsys.ratings WHERE user_id = 1 AND movie_id = 1", &[])
        .unwrap()
        .get(0);
    assert_eq!(rated_at, "2000-07-30 18:45:03");
}

#[test]
fn ml100k_release_imports_demographics_genre_flags_and_latin1() {
    let mut db = cluster().fresh_database("import_100k").unwrap();
    let dir = ScratchDir::new("ml100k").unwrap();
    let flags = |on: &[usize]| (0..19).map(|i| if on.contains(&i) { "1" } else { "0" }).collect::<Vec<_>>().join("|");
    let mut items =
        format!("1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)|{}\n", flags(&[3, 4, 5])).into_bytes();
    items.extend_from_slice(b"2|Cit\xe9 des enfants perdus, La (1995)|01-Jan-1995||http://x|");
    items.extend_from_slice(flags(&[9, 15]).as_bytes());
    items.push(b'\n');
    dir.write("ml/u.item", items).unwrap();
    dir.write("ml/u.user", "1|24|M|technician|85711\n2|53|F|other|94043\n").unwrap();
    dir.write("ml/u.data", "1\t1\t5\t874965758\n1\t2\t3\t876893171\n2\t1\t4\t878542960\n").unwrap();
    let path = dir.0.join("ml").display().to_string();
    cluster().trainer_ok("import_100k", &["import", "movielens", &path]).unwrap();
    assert_eq!(counts(&mut db)[..4], [2, 2, 3, 5]);
    let title: String = db.query_one("SELECT title FROM recsys.movies WHERE movie_id = 2", &[]).unwrap().get(0);
    assert_eq!(title, "La Cité des enfants perdus");
    let user = db.query_one("SELECT gender, age, occupation, zip_code FROM recsys.users WHERE user_id = 2", &[]).unwrap();
    assert_eq!(
        (user.get::<_, String>(0), user.get::<_, i32>(1), user.get::<_, String>(2), user.get::<_, String>(3)),
        ("F".into(), 53, "other".into(), "94043".into())
    );
    let genres: Vec<String> = db
        .query("SELECT g.name FROM recsys.movie_genres mg JOIN recsys.genres g USING (genre_id) WHERE movie_id = 1 ORDER BY 1", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(genres, ["Animation", "Children's", "Comedy"]);
}

#[test]
fn ml1m_dat_release_takes_links_from_another_release() {
    let mut db = cluster().fresh_database("import_1m").unwrap();
    let dir = ScratchDir::new("ml1m").unwrap();
    dir.write("ml/movies.dat", b"1::Toy Story (1995)::Animation|Children's|Comedy\n2::Jumanji (1995)::Adventure|Children's|Fantasy\n").unwrap();
    dir.write("ml/users.dat", "1::F::1::10::48067\n2::M::56::16::70072\n").unwrap();
    dir.write("ml/ratings.dat", "1::1::5::978300760\n2::2::3::978302109\n").unwrap();
    let links = dir.write("links.csv", "movieId,imdbId,tmdbId\n1,0114709,862\n2,0113497,8844\n").unwrap();
    let path = dir.0.join("ml").display().to_string();
    cluster().trainer_ok("import_1m", &["import", "movielens", &path, "--links", &links.display().to_string()]).unwrap();
    assert_eq!(counts(&mut db)[..3], [2, 2, 2]);
    let occupation: String = db.query_one("SELECT occupation FROM recsys.users WHERE user_id = 1", &[]).unwrap().get(0);
    assert_eq!(occupation, "K-12 student");
    let imdb: String = db.query_one("SELECT imdb_id FROM recsys.movies WHERE movie_id = 2", &[]).unwrap().get(0);
    assert_eq!(imdb, "tt0113497");
}

#[test]
fn malformed_line_is_named_and_leaves_the_database_unchanged() {
    let mut db = cluster().fresh_database("import_bad").unwrap();
    let dir = ScratchDir::new("bad").unwrap();
    let path = write_csv_release(&dir, CSV_RATINGS);
    cluster().trainer_ok("import_bad", &["import", "movielens", &path]).unwrap();
    let before = counts(&mut db);
    write_csv_release(&dir, "userId,movieId,rating,timestamp\n3,1,4.0,964982703\n3,11,7.0,964981247\n");
    let output = cluster().run_trainer("import_bad", &["import", "movielens", &path]).unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("ratings.csv:3: rating 7 is not a half-star value"), "{stderr}");
    assert_eq!(counts(&mut db), before, "a failed import must not change anything");

    let skipped = cluster().trainer_ok("import_bad", &["import", "movielens", &path, "--skip-bad-lines"]).unwrap();
    assert!(skipped.contains("1 skipped lines"), "{skipped}");
    assert_eq!(count(&mut db, "ratings"), before[2] + 1);
}

#[test]
fn unknown_movie_and_missing_file_get_clear_errors() {
    let mut db = cluster().fresh_database("import_unknown").unwrap();
    let dir = ScratchDir::new("unknown").unwrap();
    let path = write_csv_release(&dir, "userId,movieId,rating,timestamp\n1,999,4.0,964982703\n");
    let output = cluster().run_trainer("import_unknown", &["import", "movielens", &path]).unwrap();
    assert!(String::from_utf8_lossy(&output.stderr).contains("movies that are in no movie file and not in the database: 999 (1 ratings)"));
    assert_eq!(counts(&mut db), [0; 6]);
    let empty = ScratchDir::new("empty").unwrap();
    let output = cluster().run_trainer("import_unknown", &["import", "movielens", &empty.0.display().to_string()]).unwrap();
    assert!(String::from_utf8_lossy(&output.stderr).contains("no MovieLens movie file"));
    let output = cluster().run_trainer("import_unknown", &["import", "imdb", &empty.0.display().to_string()]).unwrap();
    assert!(String::from_utf8_lossy(&output.stderr).contains("missing title.basics.tsv"));
    dir.write("ml/movies.csv", b"movieId,title,genres\n1,Cit\xe9 (1995),Drama\n").unwrap();
    let output = cluster().run_trainer("import_unknown", &["import", "movielens", &path]).unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("movies.csv:2: not valid UTF-8"), "a wrongly encoded file is named with its line: {stderr}");
}

#[test]
fn reimport_adds_nothing_and_incremental_import_keeps_the_latest_rating() {
    let mut db = cluster().fresh_database("import_incremental").unwrap();
    let dir = ScratchDir::new("incremental").unwrap();
    let path = write_csv_release(&dir, CSV_RATINGS);
    cluster().trainer_ok("import_incremental", &["import", "movielens", &path]).unwrap();
    let first = counts(&mut db);
    let again = cluster().trainer_ok("import_incremental", &["import", "movielens", &path]).unwrap();
    assert!(again.contains("(0 new, 0 updated"), "{again}");
    assert_eq!(counts(&mut db), first);

    let newer = "userId,movieId,rating,timestamp\n1,1,2.0,964999999\n1,11,5.0,900000000\n3,20,4.5,965000000\n";
    write_csv_release(&dir, newer);
    let report = cluster().trainer_ok("import_incremental", &["import", "movielens", &path]).unwrap();
    assert!(report.contains("(1 new, 1 updated"), "{report}");
    assert_eq!(count(&mut db, "users"), first[0] + 1);
    assert_eq!(count(&mut db, "ratings"), first[2] + 1);
    let rating = |db: &mut Client, movie: i32| -> f32 {
        db.query_one("SELECT rating FROM recsys.ratings WHERE user_id = 1 AND movie_id = $1", &[&movie]).unwrap().get(0)
    };
    assert_eq!(rating(&mut db, 1), 2.0, "a later rating replaces the earlier one");
    assert_eq!(rating(&mut db, 11), 3.5, "an older rating does not replace a newer one");
}

#[test]
fn a_reimport_sends_only_the_rows_that_can_change_something_and_ends_as_a_full_merge_would() {
    let mut db = cluster().fresh_database("import_delta").unwrap();
    let dir = ScratchDir::new("delta").unwrap();
    let stored = "userId,movieId,rating,timestamp\n1,1,4.0,1000\n1,11,3.5,1100\n1,20,3.0,1200\n2,1,0.5,1000\n2,11,2.0,1300\n3,20,5.0,900\n";
    let path = write_csv_release(&dir, stored);
    cluster().trainer_ok("import_delta", &["import", "movielens", &path]).unwrap();
    let next_week = "userId,movieId,rating,timestamp\n1,1,4.0,1000\n1,11,3.5,1100\n1,20,3.0,1200\n1,1,2.5,1500\n2,1,0.5,1000\n\
                     2,11,2.0,1300\n2,20,4.0,1400\n3,20,4.0,900\n4,1,3.0,1000\n";
    write_csv_release(&dir, next_week);
    let output = cluster().run_trainer("import_delta", &["import", "movielens", &path]).unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(
        stderr.contains(
            "re-import: 3 rows newer than their user's stored ratings; 1 users whose older rows differ (1 rows); 5 rows unchanged, not sent"
        ),
        "a re-rating, a new pair and a new user are sent; user 3's edited old rating sends user 3's older rows: {stderr}"
    );
    assert!(stdout.contains("(2 new, 2 updated"), "{stdout}");
    let ratings: Vec<(i32, i32, f32, i64)> = db
        .query("SELECT user_id, movie_id, rating, extract(epoch FROM rated_at)::int8 FROM recsys.ratings ORDER BY 1, 2", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    let merged = [
        (1, 1, 2.5, 1500),
        (1, 11, 3.5, 1100),
        (1, 20, 3.0, 1200),
        (2, 1, 0.5, 1000),
        (2, 11, 2.0, 1300),
        (2, 20, 4.0, 1400),
        (3, 20, 4.0, 900),
        (4, 1, 3.0, 1000),
    ];
    assert_eq!(ratings, merged, "what merging every row of the file gives: the later re-rating, the edited rating at the same time, the new rows");

    let catalogue_version = |db: &mut Client| -> i64 { db.query_one("SELECT version FROM recsys.catalogue_state", &[]).unwrap().get(0) };
    let catalogue_before = catalogue_version(&mut db);
    let output = cluster().run_trainer("import_delta", &["import", "movielens", &path]).unwrap();
    assert_eq!(catalogue_version(&mut db), catalogue_before, "unchanged movies are not written: backends keep their encoded catalogue");
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(
        stderr.contains("re-import: 0 rows newer than their user's stored ratings; 1 users whose older rows differ (4 rows); 5 rows unchanged"),
        "the same file again: only user 1, whose superseded rating is still in the file, is sent again: {stderr}"
    );
    assert!(stdout.contains("(0 new, 0 updated"), "{stdout}");
}

fn schema_of_ratings(db: &mut Client) -> Vec<String> {
    db.query(
        "SELECT conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'recsys.ratings'::regclass
         UNION ALL SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = 'recsys.ratings'::regclass ORDER BY 1",
        &[],
    )
    .unwrap()
    .iter()
    .map(|row| row.get(0))
    .collect()
}

#[test]
fn bulk_first_import_rebuilds_the_same_constraints_and_keeps_latest_duplicates() {
    let mut db = cluster().fresh_database("import_bulk").unwrap();
    let fresh = schema_of_ratings(&mut db);
    let dir = ScratchDir::new("bulk").unwrap();
    let path = write_csv_release(&dir, "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,1,2.5,964999999\n2,11,3.0,964981247\n");
    let report = cluster().trainer_ok("import_bulk", &["import", "movielens", &path]).unwrap();
    assert!(report.contains("3 ratings read (2 new"), "{report}");
    assert_eq!(schema_of_ratings(&mut db), fresh);
    let rating: f32 = db.query_one("SELECT rating FROM recsys.ratings WHERE user_id = 1 AND movie_id = 1", &[]).unwrap().get(0);
    assert_eq!(rating, 2.5);
}

fn write_imdb(dir: &ScratchDir, gzip: bool) -> String {
    let files = [
        ("title.basics.tsv", "tconst\ttitleType\tprimaryTitle\toriginalTitle\tisAdult\tstartYear\tendYear\truntimeMinutes\tgenres\ntt0114709\tmovie\tToy Story\tToy Story\t0\t1995\t\\N\t81\tAdventure,Animation,Comedy\ntt0112346\tmovie\tThe American President\tThe American President\t0\t1995\t\\N\t114\tComedy,Drama,Romance\ntt0200000\tmovie\tUnrated Film\tUnrated Film\t0\t2001\t\\N\t95\tDocumentary\ntt7777777\tmovie\tSomething Else\tSomething Else\t0\t2001\t\\N\t90\tDrama\n"),
        ("title.crew.tsv", "tconst\tdirectors\twriters\ntt0114709\tnm0005124\tnm0230032,nm0004056\ntt0112346\tnm0001661\tnm0815070\ntt0200000\tnm0000001\t\\N\ntt7777777\tnm0000002\t\\N\n"),
        ("title.principals.tsv", "tconst\tordering\tnconst\tcategory\tjob\tcharacters\ntt0114709\t1\tnm0000158\tactor\t\\N\t[\"Woody\"]\ntt0114709\t2\tnm0000741\tactor\t\\N\t[\"Buzz Lightyear\"]\ntt0114709\t3\tnm0005124\tdirector\t\\N\t\\N\ntt0112346\t1\tnm0000243\tactor\t\\N\t[\"President Andrew Shepherd\"]\ntt0112346\t2\tnm0000008\tactress\t\\N\t\\N\ntt0200000\t1\tnm0000003\tself\t\\N\t[\"Herself\"]\n"),
        ("name.basics.tsv", "nconst\tprimaryName\tbirthYear\tdeathYear\tprimaryProfession\tknownForTitles\nnm0000001\tDoc Maker\t\\N\t\\N\tdirector\t\\N\nnm0000002\tOther Person\t\\N\t\\N\tdirector\t\\N\nnm0000003\tShe Herself\t\\N\t\\N\tself\t\\N\nnm0000008\tAnnette Bening\t1958\t\\N\tactress\t\\N\nnm0000158\tTom Hanks\t1956\t\\N\tactor\t\\N\nnm0000243\tMichael Douglas\t1944\t\\N\tactor\t\\N\nnm0000741\tTim Allen\t1953\t\\N\tactor\t\\N\nnm0001661\tRob Reiner\t1947\t\\N\tdirector\t\\N\nnm0004056\tPete Docter\t1968\t\\N\twriter\t\\N\nnm0005124\tJohn Lasseter\t1957\t\\N\tdirector\t\\N\nnm0230032\tAndrew Stanton\t1965\t\\N\twriter\t\\N\nnm0815070\tAaron Sorkin\t1961\t\\N\twriter\t\\N\n"),
    ];
    for (name, contents) in files {
        if gzip {
            let compressed = std::process::Command::new("gzip")
                .arg("-c")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .and_then(|mut child| {
                    use std::io::Write;
                    child.stdin.take().unwrap().write_all(contents.as_bytes())?;
                    child.wait_with_output()
                });
            dir.write(&format!("imdb/{name}.gz"), compressed.unwrap().stdout).unwrap();
        } else {
            dir.write(&format!("imdb/{name}"), contents).unwrap();
        }
    }
    dir.0.join("imdb").display().to_string()
}

#[test]
fn imdb_import_matches_by_id_and_by_title_and_is_idempotent() {
    let mut db = cluster().fresh_database("import_imdb").unwrap();
    let dir = ScratchDir::new("imdb").unwrap();
    let ml = write_csv_release(&dir, CSV_RATINGS);
    std::fs::write(dir.0.join("ml/links.csv"), "movieId,imdbId,tmdbId\n1,0114709,862\n11,0112346,9087\n").unwrap();
    cluster().trainer_ok("import_imdb", &["import", "movielens", &ml]).unwrap();
    for gzip in [true, false] {
        let imdb = write_imdb(&dir, gzip);
        let report = cluster().trainer_ok("import_imdb", &["import", "imdb", &imdb]).unwrap();
        let by_title = if gzip { 1 } else { 0 };
        assert!(report.contains(&format!("matched 3 of 3 movies ({by_title} by title and year)")), "{report}");
        assert_eq!(counts(&mut db)[4..], [11, 11], "11 people of the matched films, 11 credits");
    }
    type Credit = (String, String, Option<i16>, Option<Vec<String>>);
    let cast: Vec<Credit> = db
        .query("SELECT p.name, mp.role, mp.billing_order, mp.characters FROM recsys.movie_persons mp JOIN recsys.persons p USING (person_id) WHERE movie_id = 1 ORDER BY mp.role, mp.billing_order NULLS LAST, p.name", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(cast[0], ("Tom Hanks".into(), "actor".into(), Some(1), Some(vec!["Woody".into()])));
    assert_eq!(cast[1].0, "Tim Allen");
    assert!(cast.iter().any(|c| c.0 == "John Lasseter" && c.1 == "director"));
    assert_eq!(cast.iter().filter(|c| c.1 == "writer").count(), 2);
    let unrated = db.query_one("SELECT imdb_id, runtime_minutes FROM recsys.movies WHERE movie_id = 20", &[]).unwrap();
    assert_eq!((unrated.get::<_, String>(0), unrated.get::<_, i32>(1)), ("tt0200000".into(), 95), "matched by title and year");
    let genres: i64 = db.query_one("SELECT count(*) FROM recsys.movie_genres WHERE movie_id = 20", &[]).unwrap().get(0);
    assert_eq!(genres, 1, "IMDb genres fill in for a movie without any");
}

#[test]
fn pg_dump_and_restore_keep_the_rows_of_extension_tables() {
    let mut db = cluster().fresh_database("dump_source").unwrap();
    let dir = ScratchDir::new("dump").unwrap();
    let ml = write_csv_release(&dir, CSV_RATINGS);
    cluster().trainer_ok("dump_source", &["import", "movielens", &ml]).unwrap();
    cluster().trainer_ok("dump_source", &["import", "imdb", &write_imdb(&dir, false)]).unwrap();
    let before = counts(&mut db);
    let (socket, port) = cluster().socket_and_port();
    let dump = dir.0.join("recsys.dump");
    let run = |program: &str, args: &[&str]| {
        let status = std::process::Command::new(format!("/usr/lib/postgresql/15/bin/{program}"))
            .args(["-h", &socket.display().to_string(), "-p", &port.to_string(), "-U", "postgres"])
            .args(args)
            .status()
            .unwrap();
        assert!(status.success(), "{program} {args:?} failed");
    };
    run("pg_dump", &["-Fc", "-f", &dump.display().to_string(), "dump_source"]);
    let mut admin = cluster().connect().unwrap();
    admin.batch_execute("DROP DATABASE IF EXISTS dump_target").unwrap();
    admin.batch_execute("CREATE DATABASE dump_target").unwrap();
    run("pg_restore", &["--exit-on-error", "-d", "dump_target", &dump.display().to_string()]);
    let mut restored = Client::connect(&cluster().connection_string("postgres", "dump_target"), postgres::NoTls).unwrap();
    assert_eq!(counts(&mut restored), before);
    let next_person: i32 = restored.query_one("INSERT INTO recsys.persons (name) VALUES ('New Person') RETURNING person_id", &[]).unwrap().get(0);
    assert!(i64::from(next_person) > before[4], "identity sequences are restored too");
}
