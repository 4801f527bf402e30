//! The same seed gives the same weights; another seed gives others.

use retrain_worker::train::{self, Arch, Hyperparameters, Network, Quiet};

use crate::{test_digits, train_digits};

fn weights(network: &Network) -> Vec<(String, Vec<f32>)> {
    network
        .vars()
        .iter()
        .map(|(name, var)| {
            let values = var
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            (name.clone(), values)
        })
        .collect()
}

fn check(arch: Arch) {
    let data = train_digits(640);
    let run = |seed| {
        let hyper = Hyperparameters {
            epochs: 2,
            ..Hyperparameters::for_arch(arch, seed)
        };
        train::train(arch, &hyper, &data, &mut Quiet).unwrap()
    };
    let (first, second, other) = (run(11), run(11), run(12));
    assert_eq!(
        weights(&first.network),
        weights(&second.network),
        "{arch}: the same seed gave different weights"
    );
    assert_eq!(first.train_loss.to_bits(), second.train_loss.to_bits());
    assert_ne!(weights(&first.network), weights(&other.network));

    let test = test_digits(500);
    let evaluate = |trained: &train::Trained| train::evaluate(&trained.network, &test).unwrap();
    assert_eq!(evaluate(&first), evaluate(&second));
    // Even 20 steps on 640 digits do much better than chance (10 %).
    assert!(evaluate(&first).accuracy > 0.4, "{:?}", evaluate(&first));
}

#[test]
fn mlp_training_is_deterministic() {
    check(Arch::Mlp);
}

#[test]
fn cnn_training_is_deterministic() {
    check(Arch::Cnn);
}
