//! Telemetry end to end: a real OTLP/HTTP receiver in the test decodes the
//! gateway's protobuf export; the traced demo server reports the trace
//! context it was sent (stdio `_meta`, remote header).
mod otlp;
mod traces;
