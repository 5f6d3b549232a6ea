//! `OTEL_*` parsing: defaults, every supported value, and clear errors for bad ones.
#![cfg(feature = "otlp")]

use palisade_tracing_layer::propagators::Format;
use palisade_tracing_layer::telemetry::{
    LogFormat, ParentRoot, Protocol, SamplerConfig, ServerSpans, TelemetryConfig,
};

fn cfg(vars: &[(&str, &str)]) -> Result<TelemetryConfig, palisade_tracing_layer::TelemetryError> {
    TelemetryConfig::from_vars(
        "svc",
        vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    )
}

#[test]
fn defaults_export_nothing() {
    let c = cfg(&[]).unwrap();
    assert_eq!(c.service_name, "svc");
    assert_eq!(c.endpoint, None);
    assert_eq!(c.protocol, Protocol::Grpc);
    assert!(!c.disabled);
    assert_eq!(c.sampler, SamplerConfig::ParentBased(ParentRoot::AlwaysOn));
    assert_eq!(
        c.propagators.formats(),
        [Format::TraceContext, Format::Baggage]
    );
    assert_eq!(c.filter, "info");
    assert_eq!(c.log_format, LogFormat::Text);
    assert_eq!(c.server_spans, ServerSpans::Tracing);
}

#[test]
fn every_supported_value() {
    let c = cfg(&[
        ("OTEL_SERVICE_NAME", "orders"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ("OTEL_PROPAGATORS", "b3, b3multi,jaeger,tracecontext"),
        ("OTEL_SDK_DISABLED", "TRUE"),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment=prod,team=a",
        ),
        ("RUST_LOG", "debug,hyper=warn"),
        ("PALISADE_LOG_FORMAT", "json"),
        ("PALISADE_SERVER_SPANS", "otel"),
    ])
    .unwrap();
    assert_eq!(c.service_name, "orders");
    assert_eq!(
        c.endpoint.as_deref(),
        Some("http://127.0.0.1:4318/v1/traces")
    );
    assert_eq!(c.protocol, Protocol::HttpProtobuf);
    assert_eq!(
        c.sampler,
        SamplerConfig::ParentBased(ParentRoot::Ratio(0.25))
    );
    assert_eq!(
        c.propagators.formats(),
        [
            Format::B3,
            Format::B3Multi,
            Format::Jaeger,
            Format::TraceContext
        ]
    );
    assert!(c.disabled);
    assert_eq!(
        c.resource,
        [
            ("deployment.environment".to_owned(), "prod".to_owned()),
            ("team".to_owned(), "a".to_owned())
        ]
    );
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(c.server_spans, ServerSpans::Otel);
    assert_eq!(
        cfg(&[("PALISADE_SERVER_SPANS", "tracing")])
            .unwrap()
            .server_spans,
        ServerSpans::Tracing
    );
    for (s, expected) in [
        ("always_on", SamplerConfig::AlwaysOn),
        ("always_off", SamplerConfig::AlwaysOff),
        ("traceidratio", SamplerConfig::Ratio(1.0)),
        (
            "parentbased_always_off",
            SamplerConfig::ParentBased(ParentRoot::AlwaysOff),
        ),
    ] {
        assert_eq!(
            cfg(&[("OTEL_TRACES_SAMPLER", s)]).unwrap().sampler,
            expected
        );
    }
    assert!(
        cfg(&[("OTEL_PROPAGATORS", "none")])
            .unwrap()
            .propagators
            .formats()
            .is_empty()
    );
}

#[test]
fn bad_values_name_the_variable() {
    for (k, v) in [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_TRACES_SAMPLER", "sometimes"),
        ("OTEL_PROPAGATORS", "xray"),
        ("OTEL_SDK_DISABLED", "yes"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "not a url"),
        ("OTEL_RESOURCE_ATTRIBUTES", "novalue"),
        ("RUST_LOG", "=[{"),
        ("PALISADE_LOG_FORMAT", "xml"),
        ("PALISADE_SERVER_SPANS", "fast"),
    ] {
        let e = cfg(&[(k, v)]).unwrap_err();
        assert!(k.starts_with(e.field) || e.field == k, "{k}: {e}");
        assert!(e.to_string().contains(v) || k == "RUST_LOG", "{e}");
    }
    for arg in ["1.5", "-0.1", "half"] {
        let e = cfg(&[
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", arg),
        ])
        .unwrap_err();
        assert_eq!(e.field, "OTEL_TRACES_SAMPLER_ARG");
    }
}
