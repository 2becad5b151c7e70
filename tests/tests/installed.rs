//! The installed extension does not depend on its checkout: with the checkout's MiniLM directory moved away, a new
//! title is still embedded (the weights are installed beside the extension, as libtorch is).
use postgres::{Client, NoTls};
use recsys_integration_tests::{shared_cluster, Loading};
use std::path::{Path, PathBuf};

/// Moves a directory aside and puts it back when dropped, also when the test fails.
struct MovedAside {
    original: PathBuf,
    aside: PathBuf,
}

impl MovedAside {
    fn new(original: PathBuf) -> Self {
        let aside = original.with_extension("moved-by-test");
        std::fs::rename(&original, &aside).unwrap();
        Self { original, aside }
    }
}

impl Drop for MovedAside {
    fn drop(&mut self) {
        std::fs::rename(&self.aside, &self.original).unwrap();
    }
}

#[test]
fn new_titles_are_embedded_with_the_checkouts_minilm_moved_away() {
    let cluster = shared_cluster(Loading::Preloaded);
    cluster.trained_demo_database("installed_minilm").unwrap();
    let checkout_minilm = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.deps/all-MiniLM-L6-v2");
    let _moved = MovedAside::new(checkout_minilm);
    let mut db = Client::connect(&cluster.connection_string("postgres", "installed_minilm"), NoTls).unwrap();
    let title = format!("A Title Embedded Without The Checkout {}", std::process::id());
    let score: f32 = db.query_one("SELECT recsys.recsys_predict_new(1, $1, ARRAY['Drama'])", &[&title]).unwrap().get(0);
    assert!((0.5..=5.0).contains(&score));
}
