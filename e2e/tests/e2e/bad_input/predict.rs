//! The image upload routes (`/api/v1/predict`, `/api/v2/predict`) and the inference API
//! (`/v2/models/...`).

use super::*;

pub(super) fn predict_cases(user: &str, png: &[u8]) -> Vec<Case> {
    let mut cases = multipart_cases(user, png);
    cases.extend(bomb_and_size_cases(user, png));
    cases
}

/// Broken multipart bodies and files that are not a digit picture, on both versions.
fn multipart_cases(user: &str, png: &[u8]) -> Vec<Case> {
    let mut cases = Vec::new();
    let text = b"just some text, not an image at all".to_vec();
    let mut truncated_png = png.to_vec();
    truncated_png.truncate(60);
    let blank = digits::grid_to_png(&[0u8; digits::PIXELS]).unwrap();
    let bomb = bmp_bomb();
    let valid = file_form("d.png", png);
    let mut cut = valid.clone();
    cut.truncate(valid.len() / 2);
    for version in ["v1", "v2"] {
        let route = format!("/api/{version}/predict");
        let up = |name: &str| {
            post(
                "broken multipart",
                format!("{route}: {name}"),
                route.clone(),
            )
            .bearer(user)
        };
        let form_data = |params: &str| format!("multipart/form-data{params}");
        let no_closing = format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; \
             filename=\"d.png\"\r\n\r\nabc"
        );
        let sql_name = "x'; DROP TABLE feedback; --.png";
        cases.extend([
            up("multipart without a boundary").body(Some(form_data("").as_str()), valid.clone()),
            up("the wrong boundary")
                .body(Some(form_data("; boundary=other").as_str()), valid.clone()),
            up("a truncated body").multipart(cut.clone()),
            up("truncated part headers")
                .multipart(format!("--{BOUNDARY}\r\nContent-Disposition: form-da").into()),
            up("no closing boundary").multipart(no_closing.into()),
            up("no parts at all").multipart(format!("--{BOUNDARY}--\r\n").into()),
            up("no file field").multipart(form(&[("image", Some("d.png"), png)])),
            up("file as a plain field").multipart(form(&[("file", None, png)])),
            up("an empty file name").multipart(file_form("", png)),
            up("an empty file").multipart(file_form("d.png", b"")),
            up("random bytes").multipart(file_form("d.bin", &[0x13, 0x37, 0xde, 0xad])),
            up("a text file named .png").multipart(file_form("digit.png", &text)),
            up("a truncated PNG").multipart(file_form("d.png", &truncated_png)),
            up("only the PNG signature").multipart(file_form("d.png", b"\x89PNG\r\n\x1a\n")),
            up("a blank image").multipart(file_form("blank.png", &blank)),
            up("a 100,000-pixel-wide BMP header").multipart(file_form("bomb.bmp", &bomb)),
            up("a path-traversal file name on text")
                .multipart(file_form("../../etc/passwd", &text)),
            up("an SQL-injection file name on text").multipart(file_form(sql_name, &text)),
            up("JSON instead of multipart").json(r#"{"file": "iVBORw0KGgo="}"#),
            up("form-urlencoded instead of multipart")
                .body(Some("application/x-www-form-urlencoded"), "file=abc"),
            up("no body at all"),
        ]);
    }
    cases
}

fn bomb_and_size_cases(user: &str, png: &[u8]) -> Vec<Case> {
    let mut cases = Vec::new();
    // Decompression bombs (issue 15): refused from their header, 400 image_too_large.
    let bombs = [
        (
            "a 35-byte GIF with an 8192² canvas",
            "bomb.gif",
            digits::bombs::gif_canvas(8192),
        ),
        (
            "a 16-bit 8192² PNG",
            "bomb16.png",
            digits::bombs::png_zeros(8192, digits::bombs::PngPixels::Grey16).unwrap(),
        ),
        (
            "an RGBA 8192² PNG",
            "bomba.png",
            digits::bombs::png_zeros(8192, digits::bombs::PngPixels::Rgba8).unwrap(),
        ),
    ];
    for version in ["v1", "v2"] {
        let route = format!("/api/{version}/predict");
        for (name, file, bytes) in &bombs {
            cases.push(
                post(
                    "decompression bombs",
                    format!("{route}: {name}"),
                    route.clone(),
                )
                .bearer(user)
                .multipart(file_form(file, bytes))
                .expect(400),
            );
        }
    }
    let mut six_mib = png.to_vec();
    six_mib.resize(6 * MIB, 0);
    cases.push(
        post(
            "oversize",
            "/api/v2/predict: a 6 MiB file",
            "/api/v2/predict",
        )
        .bearer(user)
        .multipart(file_form("big.png", &six_mib))
        .expect(413),
    );
    let mut eleven_mib = png.to_vec();
    eleven_mib.resize(11 * MIB, 0);
    cases.push(
        post(
            "oversize",
            "/api/v1/predict: an 11 MiB file",
            "/api/v1/predict",
        )
        .bearer(user)
        .multipart(file_form("big.png", &eleven_mib))
        .expect(413),
    );
    cases.push(
        post(
            "oversize",
            "/api/v1/predict: 50 MiB declared, nothing sent",
            "/api/v1/predict",
        )
        .bearer(user)
        .declared(
            &format!("multipart/form-data; boundary={BOUNDARY}"),
            50 * MIB as u64,
        )
        .expect(413),
    );
    cases
}

pub(super) fn tensor(name: Value, shape: Value, datatype: Value, data: Value) -> String {
    let input = json!({"name": name, "shape": shape, "datatype": datatype, "data": data});
    json!({"id": "bad", "inputs": [input]}).to_string()
}

pub(super) fn inference_cases(user: &str) -> Vec<Case> {
    let mut cases = inference_body_cases(user);
    cases.extend(inference_value_cases(user));
    cases.extend(unknown_model_cases(user));
    cases
}

/// Broken JSON and malformed tensors.
fn inference_body_cases(user: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    for (name, body) in broken_json() {
        cases.push(
            post("broken JSON", format!("{INFER}: {name}"), INFER)
                .bearer(user)
                .json(body),
        );
    }
    let bodies = inference_bodies();
    for (group, name, body) in bodies {
        cases.push(
            post(group, format!("{INFER}: {name}"), INFER)
                .bearer(user)
                .json(body),
        );
    }
    cases
}

/// Huge numbers, deep nesting, wrong content types and oversize bodies.
fn inference_value_cases(user: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    let ok = ok_request();
    let one_e400 = ok.replacen("0.0", "1e400", 1);
    cases.push(
        post("huge numbers", format!("{INFER}: data 1e400"), INFER)
            .bearer(user)
            .json(one_e400),
    );
    let big_shape = ok.replace("[1,784]", "[18446744073709551616,784]");
    cases.push(
        post("huge numbers", format!("{INFER}: shape [2^64, 784]"), INFER)
            .bearer(user)
            .json(big_shape),
    );
    cases.push(
        post(
            "deeply nested JSON",
            format!("{INFER}: data 200 levels deep"),
            INFER,
        )
        .bearer(user)
        .json(fp32(json!([1, 784]), json!("@")).replace(r#""@""#, &nested_value(200))),
    );
    cases.push(
        post(
            "odd Unicode and NUL",
            format!("{INFER}: a lone surrogate in the id"),
            INFER,
        )
        .bearer(user)
        .json(ok.replace(r#""id":"bad""#, r#""id":"\ud800""#)),
    );
    for (name, ct) in [
        ("JSON sent as text/plain", Some("text/plain")),
        ("no Content-Type", None),
    ] {
        cases.push(
            post("wrong Content-Type", format!("{INFER}: {name}"), INFER)
                .bearer(user)
                .body(ct, ok.clone()),
        );
    }
    cases.push(
        post(
            "oversize",
            format!("{INFER}: 5 million zeros, 10 MB"),
            INFER,
        )
        .bearer(user)
        .json(fp32(json!([1, 784]), json!(vec![0; 5_000_000])))
        .expect(413),
    );
    cases.push(
        post(
            "oversize",
            format!("{INFER}: 11 MiB declared, nothing sent"),
            INFER,
        )
        .bearer(user)
        .declared("application/json", 11 * MIB as u64)
        .expect(413),
    );
    cases
}

/// Models and routes that do not exist.
fn unknown_model_cases(user: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    let ok = ok_request();
    for (name, model) in [
        ("an unknown model", "nope".to_owned()),
        ("an SQL-injection model name", enc(SQL_OR)),
        ("an emoji model name", enc("😀")),
        ("an invalid UTF-8 model name", "%FF%FE".to_owned()),
        ("a 1,000-character model name", "m".repeat(1000)),
    ] {
        cases.push(
            post(
                "unknown ids",
                format!("POST /v2/models/…/infer: {name}"),
                format!("/v2/models/{model}/infer"),
            )
            .bearer(user)
            .json(ok.clone()),
        );
        cases.push(
            get(
                "unknown ids",
                format!("GET /v2/models/…: {name}"),
                format!("/v2/models/{model}"),
            )
            .bearer(user),
        );
    }
    cases.push(
        get(
            "unknown ids",
            "GET /v2/models/mnist-cnn/nope",
            "/v2/models/mnist-cnn/nope",
        )
        .bearer(user),
    );
    cases.push(get("unknown ids", "GET /v2/health/nope", "/v2/health/nope"));
    cases.push(get("unknown ids", "GET /nope", "/nope"));
    cases.push(
        get(
            "unknown ids",
            "GET /internal/predictions/1",
            "/internal/predictions/1",
        )
        .bearer(user),
    );
    cases
}

/// A BMP header claiming 100,000 × 100,000 pixels: a decompression bomb, cheaply.
fn bmp_bomb() -> Vec<u8> {
    let mut bomb = b"BM".to_vec();
    bomb.extend_from_slice(&(54u32 + 64).to_le_bytes());
    bomb.extend_from_slice(&0u32.to_le_bytes());
    bomb.extend_from_slice(&54u32.to_le_bytes());
    bomb.extend_from_slice(&40u32.to_le_bytes());
    bomb.extend_from_slice(&100_000i32.to_le_bytes());
    bomb.extend_from_slice(&100_000i32.to_le_bytes());
    bomb.extend_from_slice(&1u16.to_le_bytes());
    bomb.extend_from_slice(&24u16.to_le_bytes());
    bomb.extend_from_slice(&[0u8; 24]);
    bomb.extend_from_slice(&[0u8; 64]);
    bomb
}

const INFER: &str = "/v2/models/mnist-cnn/infer";

fn zeros(n: usize) -> Value {
    json!(vec![0.0; n])
}

/// An FP32 tensor named `input` with this shape and data.
fn fp32(shape: Value, data: Value) -> String {
    tensor(json!("input"), shape, json!("FP32"), data)
}

/// A [1, 784] tensor of zeros with this name and datatype.
fn named(name: Value, datatype: Value) -> String {
    tensor(name, json!([1, 784]), datatype, zeros(784))
}

/// A request the route accepts.
fn ok_request() -> String {
    fp32(json!([1, 784]), zeros(784))
}

/// (group, case, body) of each bad inference request.
fn inference_bodies() -> Vec<(&'static str, &'static str, String)> {
    let mut all = missing_or_mistyped_tensors();
    all.extend(mistyped_tensors());
    all.extend(hostile_tensors());
    all
}

fn missing_or_mistyped_tensors() -> Vec<(&'static str, &'static str, String)> {
    let one = json!({"name": "input", "shape": [1, 784], "datatype": "FP32", "data": zeros(784)});
    let without = |field: &str| {
        let mut input = one.clone();
        input.as_object_mut().unwrap().remove(field);
        json!({"inputs": [input]}).to_string()
    };
    vec![
        (
            "missing fields",
            "no inputs",
            json!({"id": "x"}).to_string(),
        ),
        (
            "missing fields",
            "inputs empty",
            json!({"inputs": []}).to_string(),
        ),
        ("missing fields", "no data", without("data")),
        ("missing fields", "no name", without("name")),
        ("missing fields", "no shape", without("shape")),
        (
            "wrong types",
            "inputs a string",
            json!({"inputs": "input"}).to_string(),
        ),
        (
            "wrong types",
            "an input a number",
            json!({"inputs": [5]}).to_string(),
        ),
        (
            "wrong types",
            "two inputs",
            json!({"inputs": [one, one]}).to_string(),
        ),
        (
            "wrong types",
            "name a number",
            named(json!(5), json!("FP32")),
        ),
        (
            "wrong types",
            "an unknown input name",
            named(json!("pixels"), json!("FP32")),
        ),
        (
            "wrong types",
            "datatype INT8",
            named(json!("input"), json!("INT8")),
        ),
        (
            "wrong types",
            "datatype fp32 in lower case",
            named(json!("input"), json!("fp32")),
        ),
        (
            "wrong types",
            "datatype a number",
            named(json!("input"), json!(32)),
        ),
        (
            "wrong types",
            "shape [1, 783]",
            fp32(json!([1, 783]), zeros(783)),
        ),
    ]
}

fn mistyped_tensors() -> Vec<(&'static str, &'static str, String)> {
    vec![
        (
            "wrong types",
            "shape [0, 784]",
            fp32(json!([0, 784]), json!([])),
        ),
        (
            "wrong types",
            "shape [-1, 784]",
            fp32(json!([-1, 784]), zeros(784)),
        ),
        (
            "wrong types",
            "shape [257, 784]",
            fp32(json!([257, 784]), zeros(784)),
        ),
        (
            "wrong types",
            "shape a string",
            fp32(json!("1,784"), zeros(784)),
        ),
        (
            "wrong types",
            "shape of floats",
            fp32(json!([1.0, 784.0]), zeros(784)),
        ),
        (
            "wrong types",
            "data strings",
            fp32(json!([1, 784]), json!(vec!["0"; 784])),
        ),
        (
            "wrong types",
            "data too short",
            fp32(json!([1, 784]), zeros(783)),
        ),
        (
            "wrong types",
            "data too long",
            fp32(json!([1, 784]), zeros(785)),
        ),
        (
            "wrong types",
            "data for 1, shape for 2",
            fp32(json!([2, 784]), zeros(784)),
        ),
        (
            "wrong types",
            "data null",
            fp32(json!([1, 784]), json!(null)),
        ),
        (
            "wrong types",
            "data an object",
            fp32(json!([1, 784]), json!({"a": 1})),
        ),
        (
            "wrong types",
            "data true",
            fp32(json!([1, 784]), json!(true)),
        ),
    ]
}

fn hostile_tensors() -> Vec<(&'static str, &'static str, String)> {
    let ok = ok_request();
    vec![
        (
            "wrong types",
            "id a number",
            ok.replace(r#""id":"bad""#, r#""id":5"#),
        ),
        (
            "wrong types",
            "id an object",
            ok.replace(r#""id":"bad""#, r#""id":{"a":1}"#),
        ),
        (
            "huge numbers",
            "shape [i64::MAX, 784]",
            fp32(json!([i64::MAX, 784]), zeros(784)),
        ),
        (
            "huge numbers",
            "shape [i64::MIN, 784]",
            fp32(json!([i64::MIN, 784]), zeros(784)),
        ),
        (
            "huge numbers",
            "shape [2^64-1, 784]",
            fp32(json!([u64::MAX, 784]), zeros(784)),
        ),
        (
            "huge numbers",
            "data 1e39, beyond FP32",
            fp32(json!([1, 784]), json!(vec![1e39; 784])),
        ),
        (
            "odd Unicode and NUL",
            "a NUL in the input name",
            named(json!("input\u{0}"), json!("FP32")),
        ),
        (
            "odd Unicode and NUL",
            "an RTL mark in the datatype",
            named(json!("input"), json!("\u{200f}FP32")),
        ),
        (
            "SQL injection",
            "input name ' OR 1=1 --",
            named(json!(SQL_OR), json!("FP32")),
        ),
    ]
}
