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

/// The files with MiniLM weights (its `model.safetensors` or the bfloat16 copy) a server process has mapped.
fn mapped_weight_files(pid: i32) -> Vec<String> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let mut files: Vec<String> = maps
        .lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .filter(|path| path.ends_with("/model.safetensors") || path.ends_with(".bfloat16.safetensors"))
        .map(str::to_string)
        .collect();
    files.dedup();
    files
}

#[test]
fn backends_embed_titles_with_weights_mapped_from_one_shared_file() {
    let cluster = shared_cluster(Loading::Preloaded);
    cluster.trained_demo_database("shared_minilm").unwrap();
    let connect = || Client::connect(&cluster.connection_string("postgres", "shared_minilm"), NoTls).unwrap();
    let (mut first, mut second) = (connect(), connect());
    let mut mapped = Vec::new();
    for (index, db) in [&mut first, &mut second].into_iter().enumerate() {
        let pid: i32 = db.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
        assert!(mapped_weight_files(pid).is_empty(), "nothing mapped before MiniLM is used");
        let title = format!("A Title Only Backend {index} Embeds {}", std::process::id());
        db.query_one("SELECT recsys.recsys_predict_new(1, $1, ARRAY['Drama'])", &[&title]).unwrap();
        mapped.push(mapped_weight_files(pid));
    }
    let data_dir: String = first.query_one("SELECT current_setting('data_directory')", &[]).unwrap().get(0);
    let bfloat16: bool = first.query_one("SELECT current_setting('recsys.bfloat16')::bool", &[]).unwrap().get(0);
    let avx512_bf16 = std::fs::read_to_string("/proc/cpuinfo").unwrap().contains("avx512_bf16");
    let expected = if bfloat16 && avx512_bf16 {
        format!("{data_dir}/pg_recsys/all-MiniLM-L6-v2.bfloat16.safetensors")
    } else {
        let sharedir: String = first.query_one("SELECT setting FROM pg_config WHERE name = 'SHAREDIR'", &[]).unwrap().get(0);
        format!("{sharedir}/extension/pg_recsys_minilm/model.safetensors")
    };
    assert_eq!(mapped, vec![vec![expected.clone()], vec![expected]], "both backends map the same weights file and nothing else");

    first.batch_execute("SET recsys.bfloat16 = off").unwrap();
    let pid: i32 = first.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    first.query_one("SELECT recsys.recsys_predict_new(1, 'A Float32 Title', ARRAY['Drama'])", &[]).unwrap();
    assert_eq!(mapped_weight_files(pid).len(), 1, "switching precision unmaps the other file");
    assert!(mapped_weight_files(pid)[0].ends_with("/model.safetensors"), "{:?}", mapped_weight_files(pid));
}
