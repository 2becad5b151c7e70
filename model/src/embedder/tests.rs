//! The embedder against rust-bert's sentence-embeddings pipeline (the reference implementation of the same
//! model), across precisions, batches and the shared bfloat16 copy.
use super::*;
use rust_bert::pipelines::sentence_embeddings::{SentenceEmbeddingsConfig, SentenceEmbeddingsModel};
use rust_bert::resources::LocalResource;

fn embedder() -> TitleEmbedder {
    TitleEmbedder::load(&TitleEmbedder::default_dir()).expect("MiniLM weights installed by scripts/bootstrap.sh")
}

fn cosine(a: &Tensor, b: &Tensor) -> f64 {
    a.dot(b).double_value(&[]) / (a.norm().double_value(&[]) * b.norm().double_value(&[]))
}

#[test]
fn similar_titles_are_closer_than_unrelated_ones() {
    let vectors = embedder().embed(&["The Lord of the Rings: The Two Towers", "The Lord of the Rings: The Return of the King", "Toy Story"]).unwrap();
    assert_eq!(vectors.size(), vec![3, TITLE_DIM]);
    let (two_towers, return_king, toy_story) = (vectors.get(0), vectors.get(1), vectors.get(2));
    assert!((two_towers.norm().double_value(&[]) - 1.0).abs() < 1e-4, "normalised");
    assert!(cosine(&two_towers, &return_king) > cosine(&two_towers, &toy_story) + 0.2);
}

#[test]
fn batches_match_single_titles_and_odd_inputs_work() {
    let model = embedder();
    let long = "word ".repeat(2_000);
    let titles: Vec<&str> = vec!["Heat", "", long.as_str(), "Amélie"];
    let together = model.embed(&titles).unwrap();
    for (index, title) in titles.iter().enumerate() {
        let alone = model.embed(&[title]).unwrap().get(0);
        assert!(together.get(index as i64).allclose(&alone, 1e-4, 1e-5, false), "{title:?}");
    }
}

#[test]
fn bfloat16_embeddings_stay_close_to_float32_ones() {
    let fast = TitleEmbedder::load_in(&TitleEmbedder::default_dir(), Precision::Bfloat16).unwrap();
    let titles = ["Heat", "The Lord of the Rings: The Two Towers", "Amélie"];
    let (exact, approximate) = (embedder().embed(&titles).unwrap(), fast.embed(&titles).unwrap());
    assert_eq!(approximate.kind(), Kind::Float);
    for row in 0..titles.len() as i64 {
        let similarity = cosine(&exact.get(row), &approximate.get(row));
        assert!(similarity > 0.999 && similarity < 1.0 + 1e-6, "{}: cosine {similarity}", titles[row as usize]);
    }
    assert!(exact.ne_tensor(&approximate).any().int64_value(&[]) == 1, "bfloat16 really computed differently");
}

#[test]
fn a_missing_model_file_is_named() {
    let error = TitleEmbedder::load(Path::new("/nonexistent/minilm")).err().unwrap();
    assert!(error.to_string().contains("/nonexistent/minilm/config.json"), "{error}");
}

/// rust-bert's pipeline over the same files: the reference the encoder must reproduce.
fn reference(dir: &Path) -> SentenceEmbeddingsModel {
    let local = |name: &str| -> Box<LocalResource> { Box::new(LocalResource::from(dir.join(name))) };
    SentenceEmbeddingsModel::new(SentenceEmbeddingsConfig {
        modules_config_resource: local("modules.json"),
        transformer_type: ModelType::Bert,
        transformer_config_resource: local("config.json"),
        transformer_weights_resource: local("model.safetensors"),
        pooling_config_resource: local("1_Pooling/config.json"),
        dense_config_resource: None,
        dense_weights_resource: None,
        sentence_bert_config_resource: local("sentence_bert_config.json"),
        tokenizer_config_resource: local("tokenizer_config.json"),
        tokenizer_vocab_resource: local("vocab.txt"),
        tokenizer_merges_resource: None,
        device: Device::Cpu,
        kind: None,
    })
    .unwrap()
}

#[test]
fn the_encoder_reproduces_rust_berts_sentence_embeddings() {
    let long = "word ".repeat(400);
    let titles = ["Heat", "The Lord of the Rings: The Two Towers", "Amélie", "", "Crouching Tiger, Hidden Dragon (2000)", long.as_str()];
    let ours = embedder().embed(&titles).unwrap();
    let theirs = reference(&TitleEmbedder::default_dir()).encode_as_tensor(&titles).unwrap().embeddings;
    let largest = (&ours - &theirs).abs().max().double_value(&[]);
    assert!(largest < 1e-5, "largest coordinate difference {largest}");
}

#[test]
fn a_shared_bfloat16_copy_is_written_once_then_mapped_by_every_load() {
    let copies = std::env::temp_dir().join(format!("recsys-minilm-copies-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&copies);
    let dir = TitleEmbedder::default_dir();
    let first = TitleEmbedder::load_shared(&dir, Precision::Bfloat16, &copies).unwrap();
    let copy = first.weights_file().expect("bfloat16 weights are views of the copy").to_path_buf();
    assert!(copy.starts_with(&copies), "{}", copy.display());
    let written = std::fs::metadata(&copy).unwrap().modified().unwrap();
    let second = TitleEmbedder::load_shared(&dir, Precision::Bfloat16, &copies).unwrap();
    assert_eq!(std::fs::metadata(&copy).unwrap().modified().unwrap(), written, "reused, not rewritten");
    let in_memory = TitleEmbedder::load_in(&dir, Precision::Bfloat16).unwrap();
    assert_eq!(in_memory.weights_file(), None, "converted weights are not views of the float32 file");
    let titles = ["Heat", "Amélie", "2001: A Space Odyssey"];
    let expected = in_memory.embed(&titles).unwrap();
    assert!(first.embed(&titles).unwrap().equal(&expected) && second.embed(&titles).unwrap().equal(&expected));

    std::fs::write(&copy, b"not the copy of this source").unwrap();
    let rewritten = TitleEmbedder::load_shared(&dir, Precision::Bfloat16, &copies).unwrap();
    assert!(rewritten.embed(&titles).unwrap().equal(&expected), "a stale or broken copy is replaced");
    assert_eq!(TitleEmbedder::load_shared(&dir, Precision::Float32, &copies).unwrap().weights_file(), Some(dir.join("model.safetensors").as_path()));
    std::fs::remove_dir_all(&copies).unwrap();
}
