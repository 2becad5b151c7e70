//! A small tch module saved as safetensors and loaded into a fresh VarStore gives the same output:
//! the storage path model artefacts rely on.
use tch::{nn, nn::Module, Device, Kind, Tensor};

fn tiny_network(path: &nn::Path) -> impl Module {
    nn::seq().add(nn::linear(path / "hidden", 8, 16, Default::default())).add_fn(|x| x.relu()).add(nn::linear(
        path / "out",
        16,
        1,
        Default::default(),
    ))
}

#[test]
fn save_then_load_gives_identical_predictions() {
    tch::manual_seed(7);
    let trained = nn::VarStore::new(Device::Cpu);
    let network = tiny_network(&trained.root());
    let input = Tensor::randn([32, 8], (Kind::Float, Device::Cpu));
    let expected = network.forward(&input);

    let dir = std::env::temp_dir().join(format!("recsys_model_roundtrip_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("weights.safetensors");
    trained.save(&file).unwrap();

    tch::manual_seed(99);
    let mut restored = nn::VarStore::new(Device::Cpu);
    let restored_network = tiny_network(&restored.root());
    assert!(!restored_network.forward(&input).allclose(&expected, 1e-6, 1e-6, false), "fresh weights must differ");
    restored.load(&file).unwrap();
    let actual = restored_network.forward(&input);
    std::fs::remove_dir_all(&dir).unwrap();

    assert_eq!(actual.size(), vec![32, 1]);
    assert!(actual.equal(&expected), "outputs differ after the safetensors round trip");
}

#[test]
fn loading_a_truncated_file_is_an_error() {
    let store = nn::VarStore::new(Device::Cpu);
    let _network = tiny_network(&store.root());
    let dir = std::env::temp_dir().join(format!("recsys_model_truncated_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("weights.safetensors");
    store.save(&file).unwrap();
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();

    let mut reloaded = nn::VarStore::new(Device::Cpu);
    let _network = tiny_network(&reloaded.root());
    let outcome = reloaded.load(&file);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(outcome.is_err(), "a truncated safetensors file must not load");
}
