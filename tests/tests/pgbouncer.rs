//! pg_recsys behind PgBouncer in transaction mode: many clients share two server connections, each statement may run
//! in another backend, and every backend's model cache still serves the active model: the same scores as a direct
//! connection, and an activation reaches every pooled client on its next statement.
use postgres::{Client, SimpleQueryMessage};
use recsys_integration_tests::{shared_cluster, Loading, PgBouncer};

/// The first column of the first row of `sql`, run with the simple query protocol (as poolers need).
fn first_value(client: &mut Client, sql: &str) -> String {
    client
        .simple_query(sql)
        .unwrap()
        .into_iter()
        .find_map(|message| match message {
            SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{sql} returned no row"))
}

const SCORES: &str = "SELECT string_agg(recsys.recsys_predict(u, m)::text, ',' ORDER BY u, m) FROM generate_series(1, 4) u, generate_series(1, 6) m";
const TOP5: &str = "SELECT string_agg(movie_id::text, ',' ORDER BY rank) FROM recsys.recsys_recommend(3, 5)";

#[test]
fn pooled_clients_in_transaction_mode_are_served_the_active_model() {
    let cluster = shared_cluster(Loading::Preloaded);
    let mut direct = cluster.trained_demo_database("bouncer").unwrap();
    cluster.quick_train("bouncer", &["--seed", "5"]).unwrap();
    let bouncer = PgBouncer::start(cluster, 2).unwrap();
    let mut clients: Vec<Client> = (0..6).map(|_| bouncer.connect("bouncer").unwrap()).collect();

    let (scores_v1, top_v1) = (first_value(&mut direct, SCORES), first_value(&mut direct, TOP5));
    for (index, client) in clients.iter_mut().enumerate() {
        assert_eq!(first_value(client, SCORES), scores_v1, "client {index} through pgbouncer");
        assert_eq!(first_value(client, TOP5), top_v1, "client {index} through pgbouncer");
    }
    let in_transaction = first_value(&mut clients[0], "BEGIN; SELECT recsys.recsys_predict(1, 1)::text; COMMIT;");
    assert!(scores_v1.starts_with(&in_transaction), "a transaction through the pool: {in_transaction}");

    assert_eq!(first_value(&mut clients[1], "SELECT recsys.recsys_activate(2)"), "2", "an admin call through the pool");
    let mut fresh = Client::connect(&cluster.connection_string("postgres", "bouncer"), postgres::NoTls).unwrap();
    let (scores_v2, top_v2) = (first_value(&mut fresh, SCORES), first_value(&mut fresh, TOP5));
    assert_ne!(scores_v2, scores_v1, "version 2 scores differently");
    for round in 0..2 {
        for (index, client) in clients.iter_mut().enumerate() {
            assert_eq!(first_value(client, SCORES), scores_v2, "round {round}, client {index}: the activation reached its backend");
            assert_eq!(first_value(client, TOP5), top_v2, "round {round}, client {index}");
        }
    }
    let servers: i64 = direct
        .query_one("SELECT count(*) FROM pg_stat_activity WHERE datname = 'bouncer' AND backend_type = 'client backend' AND client_addr IS NULL AND pid <> pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    assert!(servers <= 2 + 1, "six clients shared at most two server connections (and the fresh direct one): {servers}");
}
