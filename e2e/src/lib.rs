//! Cross-service tests live in `tests/e2e/`: every service started together on free ports,
//! against the real PostgreSQL, Redis and ONNX Runtime, with requests through the gateway.
