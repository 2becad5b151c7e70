//! `cargo bench -p recsys_model --bench title_embedding`: latency of embedding one unseen title with
//! all-MiniLM-L6-v2 (the cold-start path of `recsys_predict_new`) per precision and libtorch thread count, and how
//! far bfloat16 embeddings lie from float32 ones.
use recsys_model::embedder::TitleEmbedder;
use recsys_model::scoring::Precision;
use std::time::Instant;
use tch::Kind;

const TITLES: [&str; 8] = [
    "Toy Story (1995)",
    "Heat",
    "The Lord of the Rings: The Return of the King",
    "Amélie",
    "Crouching Tiger, Hidden Dragon",
    "2001: A Space Odyssey",
    "Night of the Living Dead",
    "A Never Seen Title Number 7 Returns",
];

fn main() {
    let dir = TitleEmbedder::default_dir();
    let exact = TitleEmbedder::load_in(&dir, Precision::Float32).expect("MiniLM installed by scripts/bootstrap.sh");
    let fast = TitleEmbedder::load_in(&dir, Precision::fastest_available()).unwrap();
    for (name, embedder) in [("float32", &exact), ("fastest available", &fast)] {
        for threads in [1, 2] {
            tch::set_num_threads(threads);
            let mut samples: Vec<f64> = (0..200)
                .map(|i| {
                    let title = format!("{} {i}", TITLES[i % TITLES.len()]);
                    let started = Instant::now();
                    let _ = embedder.embed(&[title.as_str()]).unwrap();
                    started.elapsed().as_secs_f64() * 1000.0
                })
                .collect();
            samples.sort_by(f64::total_cmp);
            println!("one title, {name}, {threads} thread(s): p50 {:.2} ms, p90 {:.2} ms", samples[100], samples[180]);
        }
    }
    let (a, b) = (exact.embed(&TITLES).unwrap(), fast.embed(&TITLES).unwrap());
    let cosine = (&a * &b).sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
    let largest = (&a - &b).abs().max().double_value(&[]);
    println!("fastest vs float32 embeddings: lowest cosine {:.5}, largest coordinate difference {largest:.5}", cosine.min().double_value(&[]));
}
