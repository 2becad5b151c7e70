//! Unit tests of the preference part: what it learns on a tiny problem, how the rating blend enters the order, and
//! that an artefact keeps it.
use super::*;
use crate::config::{NeighbourInput, PreferenceChoices};
use crate::network::tests::{content, small_config};
use crate::ranking::{rank_by_preference, RankOptions, RatingUsers, Retrieval};
use crate::scoring::Precision;
use crate::train::preference::PreferenceOptions;
use crate::train::validation::Histories;
use tch::{nn, Device};

fn config_with_preference() -> crate::ModelConfig {
    let mut config = small_config();
    config.cardinalities.movies = 6;
    config.cardinalities.users = 40;
    config.preference = Some(PreferenceConfig {
        dim: 8,
        positives: Positives::Liked,
        neighbours: 0,
        similar_movies: Default::default(),
        neighbour_input: Default::default(),
        user_vectors: true,
        similar_users: Default::default(),
    });
    config
}

fn options(epochs: usize) -> PreferenceOptions {
    PreferenceOptions {
        epochs,
        batch_users: 16,
        learning_rate: 0.05,
        input_dropout: 0.5,
        id_dropout: 0.0,
        weight_decay: 0.0,
        patience: 100,
        blend_users: 100,
        seed: 3,
    }
}

/// 30 movies. Users 1–20 rated movie 1 and liked movie 3 (rated 4); users 21–40 rated movie 2 and liked movie 4;
/// movie 5 is rated 5 by user 1 alone; nobody rated movies 6–30. Every fourth user's liked movie is held out for
/// validation.
fn two_groups() -> (Histories, Histories) {
    let mut fit: Histories = vec![Vec::new(); 41];
    let mut validation: Histories = vec![Vec::new(); 41];
    for user in 1..=40usize {
        let (marker, liked) = if user <= 20 { (1, 3) } else { (2, 4) };
        fit[user].push((marker, 3.0));
        if user % 4 == 0 {
            validation[user].push((liked, 4.5));
        } else {
            fit[user].push((liked, 4.0));
        }
    }
    fit[1].push((5, 5.0));
    (fit, validation)
}

#[test]
fn the_preference_part_learns_which_movies_a_group_picks_and_stores_its_blend() {
    tch::manual_seed(2);
    let store = nn::VarStore::new(Device::Cpu);
    let mut config = config_with_preference();
    config.cardinalities.movies = 30;
    let network = HybridRecommender::new(&store.root(), &config);
    let encoded = tch::no_grad(|| network.encode_content(&content(31, &config))).unwrap();
    let (fit, validation) = two_groups();
    let report = network.train_preference(&encoded, &fit, &validation, None, &options(300)).unwrap();
    assert_eq!(report.validation_users, 10, "users 4, 8, …, 40 have a held-out liked movie");
    let best = report.validation_recall.iter().map(|(_, r)| *r).fold(0.0, f64::max);
    assert_eq!(best, 1.0, "every held-out liked movie is in its user's top 10 of 29: {report:?}");
    assert_eq!(report.blend_recall.len(), crate::train::blend::BLEND_WEIGHTS.len(), "no neighbourhood: the rating weights alone");
    for choice in [&report.similar_movies, &report.similar_users] {
        assert_eq!(choice.users, 10, "the similarity choices are made on the validation users: {choice:?}");
        let [(Representation::Rating, by_rating), (Representation::Preference, by_preference)] = choice.quality[..] else {
            panic!("both representations are scored: {choice:?}")
        };
        let better = if by_preference > by_rating { Representation::Preference } else { Representation::Rating };
        assert_eq!(choice.chosen, better, "the better representation on validation is chosen: {choice:?}");
    }

    let rows = Tensor::arange_start(1, 31, (Kind::Int64, Device::Cpu));
    let positions = encoded.narrow(0, 1, 30);
    let scorer = network.preference_scorer(&rows, &positions).unwrap().expect("a preference part");
    assert_eq!(scorer.blend(), report.blend, "the chosen blend is stored with the weights");
    for (marker, liked, other) in [(0usize, 2usize, 3usize), (1, 3, 2)] {
        let scores: Vec<f32> = Vec::try_from(scorer.scores(&[scorer.user(&[(marker, 3.0)]).unwrap()]).unwrap().get(0)).unwrap();
        assert!(scores[liked] > scores[other] && scores[liked] > scores[4], "the group's movie first: {scores:?}");
    }
    assert!(scorer.user(&[(30, 4.0)]).is_err(), "a position outside the catalogue is an error");
    let stored = network.preference.as_ref().unwrap().users.as_ref().expect("user vectors are stored").shallow_clone();
    for user in [1usize, 4, 21, 40] {
        let history: Vec<(usize, f32)> = fit[user].iter().map(|(row, rating)| ((*row - 1) as usize, *rating)).collect();
        let expected = scorer.user(&history).unwrap().vector;
        let got: Vec<f32> = Vec::try_from(stored.get(user as i64)).unwrap();
        assert!(got.iter().zip(&expected).all(|(a, b)| (a - b).abs() < 1e-5), "user {user}: stored {got:?}, built {expected:?}");
    }
    let neighbours = scorer.similar_users(4, 5).unwrap();
    assert_eq!(neighbours.len(), 5);
    assert!(neighbours.iter().all(|(row, _)| *row != 4 && *row != 0), "{neighbours:?}");
    assert!(neighbours.iter().all(|(row, _)| (1..=20).contains(row)), "a user's nearest share their group's marker movie: {neighbours:?}");
    assert!(neighbours.windows(2).all(|pair| pair[0].1 >= pair[1].1), "{neighbours:?}");

    assert_eq!(scorer.user(&[]).unwrap().vector, vec![0.0; 8], "no ratings: the biases alone");
}

#[test]
fn lists_follow_preference_plus_the_blend_and_return_the_predicted_rating() {
    tch::manual_seed(4);
    let store = nn::VarStore::new(Device::Cpu);
    let config = config_with_preference();
    let network = HybridRecommender::new(&store.root(), &config);
    let encoded = tch::no_grad(|| network.encode_content(&content(6, &config))).unwrap();
    let rows = Tensor::from_slice(&[1i64, 2, 3, 4, 5, 6]);
    let ratings = network.catalogue_scorer(&rows, &encoded).unwrap();
    let ids: Vec<i32> = (10..16).collect();
    let exhaustive = RankOptions { k: 3, precision: Precision::Float32, retrieval: Retrieval::Exhaustive };
    let two_stage = RankOptions { retrieval: Retrieval::TwoStage { candidates: 100 }, ..exhaustive };
    for (blend, options) in [0.0, 1.0, 50.0].into_iter().flat_map(|blend| [(blend, exhaustive), (blend, two_stage)]) {
        let _ = tch::no_grad(|| network.preference.as_ref().unwrap().blend.shallow_clone().fill_(blend));
        let preference = network.preference_scorer(&rows, &encoded).unwrap().unwrap();
        let vector = preference.user(&[(0, 4.0)]).unwrap();
        let listed =
            rank_by_preference(&ratings, &preference, RatingUsers::Rows(&[2]), std::slice::from_ref(&vector), |_| (1..6).collect(), &ids, options)
                .unwrap();
        let prefer: Vec<f32> = Vec::try_from(preference.scores(&[vector]).unwrap().get(0)).unwrap();
        let mut expected: Vec<(usize, f32)> = (1..6).map(|p| (p, prefer[p] + blend as f32 * ratings.raw_score(2, p).unwrap())).collect::<Vec<_>>();
        expected.sort_by(|a, b| b.1.total_cmp(&a.1));
        let order: Vec<usize> = listed[0].iter().map(|(p, _)| *p).collect();
        assert_eq!(order, expected.iter().take(3).map(|(p, _)| *p).collect::<Vec<_>>(), "blend {blend}, {:?}", options.retrieval);
        for (position, score) in &listed[0] {
            assert_eq!(*score, ratings.score(2, *position).unwrap(), "the score is the predicted rating");
        }
    }
}

#[test]
fn an_artefact_keeps_the_preference_part() {
    let store = nn::VarStore::new(Device::Cpu);
    let config = config_with_preference();
    let network = HybridRecommender::new(&store.root(), &config);
    let _ = tch::no_grad(|| network.preference.as_ref().unwrap().blend.shallow_clone().fill_(0.25));
    let vocabulary = crate::Vocabulary::new(
        (1..=40).collect(),
        (1..=6).collect(),
        vec!["a".into(), "b".into(), "c".into()],
        vec![1, 2],
        vec![1, 2, 3],
        crate::Standardiser { mean: 0.0, std: 1.0 },
        crate::Standardiser { mean: 0.0, std: 1.0 },
    );
    let artefact =
        crate::Artefact::capture(&store, &config, &vocabulary, crate::DataFingerprint::default(), serde_json::json!({}), serde_json::json!({}))
            .unwrap();
    assert_eq!(config.parameter_count(), Some(store.variables().values().map(|t| t.numel() as u64).sum()));
    let (_loaded_store, loaded) = artefact.build().unwrap();
    let encoded = tch::no_grad(|| network.encode_content(&content(6, &config))).unwrap();
    let rows = Tensor::from_slice(&[1i64, 2, 3, 4, 5, 6]);
    let (before, after) = (network.preference_scorer(&rows, &encoded).unwrap().unwrap(), loaded.preference_scorer(&rows, &encoded).unwrap().unwrap());
    assert_eq!(after.blend(), 0.25);
    let vector = before.user(&[(1, 4.0), (2, 2.0)]).unwrap();
    assert_eq!(vector, after.user(&[(1, 4.0), (2, 2.0)]).unwrap());
    let difference =
        before.scores(std::slice::from_ref(&vector)).unwrap().f_sub(&after.scores(&[vector]).unwrap()).unwrap().abs().max().double_value(&[]);
    assert!(difference < 1e-6, "{difference}");
}

#[test]
fn similar_movies_by_preference_are_the_nearest_input_and_output_vectors_side_by_side() {
    tch::manual_seed(5);
    let store = nn::VarStore::new(Device::Cpu);
    let config = config_with_preference();
    let network = HybridRecommender::new(&store.root(), &config);
    let encoded = tch::no_grad(|| network.encode_content(&content(6, &config))).unwrap();
    let rows = Tensor::from_slice(&[1i64, 2, 3, 4, 5, 6]);
    let scorer = network.preference_scorer(&rows, &encoded).unwrap().unwrap();
    assert!(!scorer.serves_similar_movies(), "a configuration without the trainer's choice keeps the rating network's");
    let joined = Tensor::cat(&[&scorer.inputs, &scorer.outputs], 1);
    let unit = &joined / joined.norm_scalaropt_dim(2, [1i64].as_slice(), true);
    let cosines: Vec<f32> = Vec::try_from(unit.matmul(&unit.get(2))).unwrap();
    let mut expected: Vec<(usize, f32)> = cosines.iter().copied().enumerate().filter(|(p, _)| *p != 2).collect();
    expected.sort_by(|a, b| b.1.total_cmp(&a.1));
    let listed = scorer.similar_movies(2, 3, |_| true).unwrap();
    assert_eq!(listed.iter().map(|(p, _)| *p).collect::<Vec<_>>(), expected.iter().take(3).map(|(p, _)| *p).collect::<Vec<_>>());
    for ((_, got), (_, want)) in listed.iter().zip(&expected) {
        assert!((got - want).abs() < 1e-5, "{listed:?} vs {expected:?}");
    }
    let without_first = scorer.similar_movies(2, 2, |p| p != expected[0].0).unwrap();
    assert_eq!(without_first.iter().map(|(p, _)| *p).collect::<Vec<_>>(), vec![expected[1].0, expected[2].0], "allowed filters candidates");
}

#[test]
fn the_similar_movies_choice_travels_in_the_manifest_and_older_manifests_keep_the_rating_representation() {
    let older: PreferenceConfig = serde_json::from_str(r#"{"dim": 8, "positives": "liked", "neighbours": 0}"#).unwrap();
    assert_eq!(
        (older.similar_movies, older.similar_users, older.neighbour_input),
        (Representation::Rating, Representation::Rating, NeighbourInput::Rated)
    );
    assert!(!older.user_vectors, "older manifests store no user vectors");
    let mut config = config_with_preference();
    let store = nn::VarStore::new(Device::Cpu);
    let mut network = HybridRecommender::new(&store.root(), &config);
    let choices = PreferenceChoices {
        similar_movies: Representation::Preference,
        similar_users: Representation::Preference,
        neighbour_input: NeighbourInput::LikedTwice,
    };
    network.set_preference_choices(&choices);
    let recorded = network.config().preference.unwrap();
    assert_eq!(
        (recorded.similar_movies, recorded.similar_users, recorded.neighbour_input),
        (Representation::Preference, Representation::Preference, NeighbourInput::LikedTwice)
    );
    config.preference.as_mut().unwrap().similar_movies = Representation::Preference;
    config.preference.as_mut().unwrap().similar_users = Representation::Preference;
    let json = serde_json::to_value(&config).unwrap();
    assert_eq!(json["preference"]["similar_movies"], "preference");
    let loaded: crate::ModelConfig = serde_json::from_value(json).unwrap();
    let loaded_network = HybridRecommender::new(&nn::VarStore::new(Device::Cpu).root(), &loaded);
    let encoded = tch::no_grad(|| network.encode_content(&content(6, &config))).unwrap();
    let rows = Tensor::from_slice(&[1i64, 2, 3, 4, 5, 6]);
    let loaded_scorer = loaded_network.preference_scorer(&rows, &encoded).unwrap().unwrap();
    assert!(loaded_scorer.serves_similar_movies() && loaded_scorer.serves_similar_users());
    config.preference.as_mut().unwrap().user_vectors = false;
    let without = HybridRecommender::new(&nn::VarStore::new(Device::Cpu).root(), &config);
    let scorer = without.preference_scorer(&rows, &encoded).unwrap().unwrap();
    assert!(!scorer.serves_similar_users(), "without stored user vectors similar users stay on the rating network's");
    assert!(scorer.similar_users(1, 3).is_err());
}

/// Item-item weights over six movies: movie 0 points to movie 3 (0.5), movie 1 to movie 4 (0.25); the user rated movie
/// 0 five stars and movie 1 two. Counting rated movies once, movie 3 gains 0.5 and movie 4 0.25; counting liked ones
/// twice, movie 3 gains 1.0 (movie 0 is liked) and movie 4 still 0.25.
#[test]
fn liked_movies_count_twice_in_the_neighbourhood_when_the_trainer_chose_so() {
    let mut config = config_with_preference();
    config.preference.as_mut().unwrap().neighbours = 2;
    let store = nn::VarStore::new(Device::Cpu);
    let mut network = HybridRecommender::new(&store.root(), &config);
    let item_item = Tensor::zeros([6, 6], (Kind::Float, Device::Cpu));
    let _ = item_item.get(0).get(3).fill_(0.5);
    let _ = item_item.get(1).get(4).fill_(0.25);
    let weight = {
        let neighbours = network.preference.as_ref().unwrap().neighbours.as_ref().unwrap();
        neighbours.set_from(&item_item).unwrap();
        neighbours.weight.shallow_clone()
    };
    let _ = tch::no_grad(|| weight.shallow_clone().fill_(1.0));
    let encoded = tch::no_grad(|| network.encode_content(&content(6, &config))).unwrap();
    let rows = Tensor::from_slice(&[1i64, 2, 3, 4, 5, 6]);
    let history = [(0usize, 5.0f32), (1, 2.0)];
    let mut gained = Vec::new();
    for input in [NeighbourInput::Rated, NeighbourInput::LikedTwice] {
        network.set_preference_choices(&PreferenceChoices { neighbour_input: input, ..Default::default() });
        let scorer = network.preference_scorer(&rows, &encoded).unwrap().unwrap();
        let user = scorer.user(&history).unwrap();
        let with: Vec<f32> = Vec::try_from(scorer.scores(std::slice::from_ref(&user)).unwrap().get(0)).unwrap();
        let _ = tch::no_grad(|| weight.shallow_clone().fill_(0.0));
        let without: Vec<f32> = Vec::try_from(network.preference_scorer(&rows, &encoded).unwrap().unwrap().scores(&[user]).unwrap().get(0)).unwrap();
        let _ = tch::no_grad(|| weight.shallow_clone().fill_(1.0));
        gained.push(with.iter().zip(&without).map(|(a, b)| a - b).collect::<Vec<f32>>());
    }
    let close = |got: &[f32], want: [f32; 6]| got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-6);
    assert!(close(&gained[0], [0.0, 0.0, 0.0, 0.5, 0.25, 0.0]), "every rated movie once: {:?}", gained[0]);
    assert!(close(&gained[1], [0.0, 0.0, 0.0, 1.0, 0.25, 0.0]), "a liked movie twice: {:?}", gained[1]);
}

/// With no validation share (`--validation-fraction 0`) nothing is checked, and the order takes `UNVALIDATED_ORDER`'s
/// weights instead of the preference part alone: the neighbourhood's when there is one, the rating's either way.
#[test]
fn with_no_validation_share_the_order_takes_the_unvalidated_weights() {
    use crate::train::blend::UNVALIDATED_ORDER;
    let (fit, _) = two_groups();
    let no_validation: Histories = vec![Vec::new(); fit.len()];
    for neighbours in [0i64, 2] {
        tch::manual_seed(2);
        let mut config = config_with_preference();
        config.cardinalities.movies = 30;
        config.preference.as_mut().unwrap().neighbours = neighbours;
        let store = nn::VarStore::new(Device::Cpu);
        let network = HybridRecommender::new(&store.root(), &config);
        let encoded = tch::no_grad(|| network.encode_content(&content(31, &config))).unwrap();
        let item_item = Tensor::eye(30, (Kind::Float, Device::Cpu)).roll([1], [1]);
        let report = network.train_preference(&encoded, &fit, &no_validation, Some(&item_item), &options(3)).unwrap();
        assert_eq!((report.validation_users, report.blend_users, report.best_epoch), (0, 0, 3), "{report:?}");
        assert!(report.blend_recall.is_empty(), "nothing is tried without users to try it on: {report:?}");
        assert_eq!(report.blend, UNVALIDATED_ORDER.rating_weight, "{report:?}");
        let rows = Tensor::arange_start(1, 31, (Kind::Int64, Device::Cpu));
        let scorer = network.preference_scorer(&rows, &encoded.narrow(0, 1, 30)).unwrap().expect("a preference part");
        assert_eq!(scorer.blend(), UNVALIDATED_ORDER.rating_weight, "the rating weight is stored with the weights");
        let stored = network.preference.as_ref().unwrap().neighbours.as_ref().map(|n| n.weight.double_value(&[0]) as f32);
        match neighbours {
            0 => assert_eq!((stored, report.neighbour_weight), (None, 0.0), "{report:?}"),
            _ => {
                assert_eq!(stored, Some(UNVALIDATED_ORDER.neighbour_weight), "the neighbourhood weight is stored");
                assert_eq!(
                    (report.neighbour_weight, report.neighbour_input),
                    (UNVALIDATED_ORDER.neighbour_weight, UNVALIDATED_ORDER.neighbour_input)
                );
            }
        }
    }
}
