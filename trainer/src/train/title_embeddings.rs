//! Title embeddings through the database cache (`recsys.title_embeddings`, keyed by embedder and SHA-256 of the
//! title, read with the catalogue): only titles not cached yet are embedded (MiniLM loaded only then) and stored.
use super::data::Catalogue;
use crate::import::copy::CopyWriter;
use anyhow::Result;
use postgres::types::Type;
use postgres::Client;
use recsys_model::embedder::{TitleEmbedder, EMBEDDER_ID, TITLE_DIM};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use tch::Tensor;

/// Embeddings of every catalogue title, [N, 384], and how many had to be computed.
/// Titles embedded between two updates of the progress bar.
const EMBEDDING_CHUNK: usize = 256;

pub fn embed_titles(client: &mut Client, catalogue: &Catalogue) -> Result<(Tensor, usize)> {
    let titles: Vec<&String> = catalogue.contents.iter().map(|c| &c.title).collect();
    let hashes: Vec<Vec<u8>> = titles.iter().map(|t| Sha256::digest(t.as_bytes()).to_vec()).collect();
    let mut known: HashMap<Vec<u8>, Vec<f32>> = HashMap::new();
    for (hash, cached) in hashes.iter().zip(&catalogue.cached_titles) {
        if let Some(vector) = cached.as_ref().filter(|v| v.len() == TITLE_DIM as usize) {
            known.insert(hash.clone(), vector.clone());
        }
    }
    let mut seen = std::collections::HashSet::new();
    let unique_missing: Vec<usize> = (0..titles.len()).filter(|i| !known.contains_key(&hashes[*i]) && seen.insert(hashes[*i].clone())).collect();
    if !unique_missing.is_empty() {
        let embedder = TitleEmbedder::load(&TitleEmbedder::default_dir())?;
        let texts: Vec<&str> = unique_missing.iter().map(|i| titles[*i].as_str()).collect();
        let bar = super::phases::bar("embedding titles", texts.len() as u64, "titles");
        let mut parts = Vec::new();
        for chunk in texts.chunks(EMBEDDING_CHUNK) {
            parts.push(embedder.embed(chunk)?);
            bar.inc(chunk.len() as u64);
        }
        bar.finish_and_clear();
        let vectors = Tensor::f_cat(&parts, 0)?;
        let mut transaction = client.transaction()?;
        transaction.batch_execute("CREATE TEMP TABLE stage_title_embeddings (embedder text, text_sha256 bytea, embedding real[]) ON COMMIT DROP")?;
        {
            let mut copy = CopyWriter::start(
                &mut transaction,
                "stage_title_embeddings (embedder, text_sha256, embedding)",
                &[Type::TEXT, Type::BYTEA, Type::FLOAT4_ARRAY],
            )?;
            for (position, index) in unique_missing.iter().enumerate() {
                let values: Vec<f32> = Vec::try_from(vectors.get(position as i64))?;
                copy.row(&[&EMBEDDER_ID, &hashes[*index], &values])?;
                known.insert(hashes[*index].clone(), values);
            }
            copy.finish()?;
        }
        transaction.batch_execute(
            "INSERT INTO recsys.title_embeddings (embedder, text_sha256, embedding) SELECT * FROM stage_title_embeddings ON CONFLICT DO NOTHING",
        )?;
        transaction.commit()?;
    }
    let flat: Vec<f32> = hashes.iter().flat_map(|h| known[h].iter().copied()).collect();
    Ok((Tensor::f_from_slice(&flat)?.f_reshape([titles.len() as i64, TITLE_DIM])?, unique_missing.len()))
}
