//! W3C trace-context propagation, OpenTelemetry spans and RED metrics as tower layers for axum, tonic and hyper.
