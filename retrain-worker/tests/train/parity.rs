//! ONNX Runtime, running the exported file, answers what candle answers.

use ndarray::Array4;
use ort::session::Session;
use ort::value::Tensor as OrtTensor;
use retrain_worker::train::{self, Arch, Hyperparameters, Quiet, export};

use crate::{onnx_runtime, test_digits, train_digits};

/// Largest difference allowed between ORT's and candle's probabilities.
const TOLERANCE: f32 = 1e-4;

fn check_parity(arch: Arch) {
    let hyper = Hyperparameters {
        epochs: 1,
        ..Hyperparameters::for_arch(arch, 7)
    };
    let trained = train::train(arch, &hyper, &train_digits(2_000), &mut Quiet).unwrap();
    let metadata = vec![
        ("model".to_string(), arch.model_name().to_string()),
        ("training_seed".to_string(), "7".to_string()),
    ];
    let onnx = train::export_onnx(&trained.network, &metadata).unwrap();

    let mut session = Session::builder(onnx_runtime())
        .unwrap()
        .with_intra_threads(1)
        .unwrap()
        .commit_from_memory(&onnx)
        .unwrap();
    assert_eq!(session.inputs().len(), 1);
    assert_eq!(session.inputs()[0].name(), export::INPUT);
    assert_eq!(session.outputs()[0].name(), export::OUTPUT);
    let meta = session.metadata().unwrap();
    assert_eq!(meta.custom("model").as_deref(), Some(arch.model_name()));
    assert_eq!(meta.custom("training_seed").as_deref(), Some("7"));
    drop(meta);

    let digits = test_digits(100);
    let expected = trained
        .network
        .probabilities(&train::input_tensor(&digits.images).unwrap())
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let mut worst = 0.0_f32;
    let mut agree = 0;
    // The batch dimension is dynamic: the same digits in batches of 100, 1 and 7.
    for batch in [100, 1, 7] {
        for (start, images) in digits
            .images
            .chunks(batch)
            .enumerate()
            .map(|(i, c)| (i * batch, c))
        {
            let input =
                Array4::from_shape_vec((images.len(), 1, 28, 28), digits::to_input_batch(images))
                    .unwrap();
            let outputs = session
                .run(ort::inputs![export::INPUT => OrtTensor::from_array(input).unwrap()])
                .unwrap();
            let probabilities = outputs[export::OUTPUT].try_extract_array::<f32>().unwrap();
            assert_eq!(probabilities.shape(), &[images.len(), 10]);
            for (row, got) in probabilities.outer_iter().enumerate() {
                let want = &expected[start + row];
                let sum: f32 = got.iter().sum();
                assert!((sum - 1.0).abs() < 1e-5, "probabilities sum to {sum}");
                for (g, w) in got.iter().zip(want) {
                    worst = worst.max((g - w).abs());
                }
                let argmax = |values: &mut dyn Iterator<Item = f32>| {
                    values
                        .enumerate()
                        .fold(
                            (0, f32::MIN),
                            |best, (i, v)| if v > best.1 { (i, v) } else { best },
                        )
                        .0
                };
                if argmax(&mut got.iter().copied()) == argmax(&mut want.iter().copied()) {
                    agree += 1;
                }
            }
        }
    }
    eprintln!("{arch}: largest difference between ONNX Runtime and candle {worst:e}");
    assert!(
        worst <= TOLERANCE,
        "{arch}: ORT and candle differ by {worst}"
    );
    assert_eq!(agree, 300, "{arch}: some predictions differ");
}

#[test]
fn exported_mlp_matches_candle_in_onnx_runtime() {
    check_parity(Arch::Mlp);
}

#[test]
fn exported_cnn_matches_candle_in_onnx_runtime() {
    check_parity(Arch::Cnn);
}
