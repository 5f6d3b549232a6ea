//! One order's trace, from the in-memory span exporter, drawn as a tree across both
//! services.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{SpanId, SpanKind, Status};
use opentelemetry_sdk::trace::SpanData;

/// One span, reduced to what the tree shows.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) trace: String,
    pub(crate) id: SpanId,
    pub(crate) parent: SpanId,
    pub(crate) name: String,
    pub(crate) kind: &'static str,
    pub(crate) service: String,
    pub(crate) start: SystemTime,
    pub(crate) duration: Duration,
    pub(crate) error: bool,
    pub(crate) attributes: Vec<(String, String)>,
}

/// Attributes worth showing, in this order.
const SHOWN: [&str; 8] = [
    "http.request.method",
    "http.route",
    "http.response.status_code",
    "rpc.method",
    "rpc.grpc.status_code",
    "rpc.status_code",
    "http.request.resend_count",
    "order.id",
];

impl Node {
    pub(crate) fn from_span(span: &SpanData) -> Self {
        let attr = |key: &str| {
            span.attributes
                .iter()
                .find(|kv| kv.key.as_str() == key)
                .map(|kv| kv.value.to_string())
        };
        // Which service: a `service.name` attribute if a layer sets one, else the crate
        // the span was created in (tracing-opentelemetry records `code.namespace`).
        let service = attr("service.name")
            .or_else(|| {
                attr("code.namespace")
                    .or_else(|| attr("code.module.name"))
                    .map(|ns| ns.split("::").next().unwrap_or_default().replace('_', "-"))
            })
            .unwrap_or_else(|| span.instrumentation_scope.name().replace('_', "-"));
        Self {
            trace: span.span_context.trace_id().to_string(),
            id: span.span_context.span_id(),
            parent: span.parent_span_id,
            name: span.name.to_string(),
            kind: match span.span_kind {
                SpanKind::Server => "SERVER",
                SpanKind::Client => "CLIENT",
                SpanKind::Producer => "PRODUCER",
                SpanKind::Consumer => "CONSUMER",
                SpanKind::Internal => "INTERNAL",
            },
            service,
            start: span.start_time,
            duration: span
                .end_time
                .duration_since(span.start_time)
                .unwrap_or_default(),
            error: matches!(span.status, Status::Error { .. }),
            attributes: SHOWN
                .iter()
                .filter_map(|k| attr(k).map(|v| ((*k).to_owned(), v)))
                .collect(),
        }
    }
}

/// Picks the most interesting trace: among traces that contain a span named `anchor`,
/// one that crosses both services, preferably an order that was retried and still
/// accepted (`201`), then the one with the most spans.
pub(crate) fn pick<'a>(nodes: &'a [Node], anchor: &str) -> Option<&'a str> {
    let mut by_trace: HashMap<&str, Vec<&Node>> = HashMap::new();
    for n in nodes {
        by_trace.entry(n.trace.as_str()).or_default().push(n);
    }
    by_trace
        .into_iter()
        .filter(|(_, spans)| spans.iter().any(|s| s.name == anchor))
        .max_by_key(|(trace, spans)| {
            let attr = |s: &Node, k: &str| s.attributes.iter().any(|(key, _)| key == k);
            let crosses = spans
                .iter()
                .any(|s| s.kind == "SERVER" && attr(s, "rpc.method"));
            let accepted = spans.iter().any(|s| {
                s.attributes
                    .iter()
                    .any(|(k, v)| k == "http.response.status_code" && v == "201")
            });
            let retried = spans.iter().any(|s| attr(s, "http.request.resend_count"));
            (
                crosses,
                accepted && retried,
                accepted,
                spans.len(),
                std::cmp::Reverse(*trace),
            )
        })
        .map(|(trace, _)| trace)
}

/// Draws the spans of `trace` as a tree, children in start order.
pub(crate) fn render(nodes: &[Node], trace: &str) -> String {
    let spans: Vec<&Node> = nodes.iter().filter(|n| n.trace == trace).collect();
    let ids: Vec<SpanId> = spans.iter().map(|n| n.id).collect();
    let mut children: HashMap<SpanId, Vec<&Node>> = HashMap::new();
    let mut roots = Vec::new();
    for n in &spans {
        if n.parent == SpanId::INVALID || !ids.contains(&n.parent) {
            roots.push(*n);
        } else {
            children.entry(n.parent).or_default().push(n);
        }
    }
    roots.sort_by_key(|n| n.start);
    for c in children.values_mut() {
        c.sort_by_key(|n| n.start);
    }
    let t0 = roots.first().map_or(SystemTime::UNIX_EPOCH, |r| r.start);
    let mut out = format!("trace {trace}\n");
    for (i, root) in roots.iter().enumerate() {
        draw(&mut out, root, &children, t0, "", i + 1 == roots.len(), "");
    }
    out
}

/// Which service a span belongs to. Both services share one process (and one tracer
/// provider) in the demo, so this is read from the tree: a SERVER span starts a service
/// (gRPC: the inventory service, HTTP: the order service), and other spans belong to
/// the service of the SERVER span above them.
fn service_of(node: &Node, inherited: &str) -> String {
    if node.kind == "SERVER" {
        let grpc = node.attributes.iter().any(|(k, _)| k == "rpc.method");
        return if grpc {
            "inventory-service"
        } else {
            "order-service"
        }
        .to_owned();
    }
    if inherited.is_empty() {
        node.service.clone()
    } else {
        inherited.to_owned()
    }
}

fn draw(
    out: &mut String,
    node: &Node,
    children: &HashMap<SpanId, Vec<&Node>>,
    t0: SystemTime,
    prefix: &str,
    last: bool,
    inherited: &str,
) {
    let service = service_of(node, inherited);
    let offset = node.start.duration_since(t0).unwrap_or_default();
    let attrs: Vec<String> = node
        .attributes
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let _ = writeln!(
        out,
        "{prefix}{} [{}] {} {} +{:.1}ms {:.1}ms{}{}",
        if last { "└─" } else { "├─" },
        service,
        node.kind,
        node.name,
        offset.as_secs_f64() * 1000.0,
        node.duration.as_secs_f64() * 1000.0,
        if node.error { " ERROR" } else { "" },
        if attrs.is_empty() {
            String::new()
        } else {
            format!("  {}", attrs.join(" "))
        },
    );
    let child_prefix = format!("{prefix}{}", if last { "   " } else { "│  " });
    if let Some(kids) = children.get(&node.id) {
        for (i, kid) in kids.iter().enumerate() {
            draw(
                out,
                kid,
                children,
                t0,
                &child_prefix,
                i + 1 == kids.len(),
                &service,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(trace: &str, id: u64, parent: u64, name: &str, service: &str, start_ms: u64) -> Node {
        Node {
            trace: trace.to_owned(),
            id: SpanId::from(id),
            parent: if parent == 0 {
                SpanId::INVALID
            } else {
                SpanId::from(parent)
            },
            name: name.to_owned(),
            kind: "INTERNAL",
            service: service.to_owned(),
            start: SystemTime::UNIX_EPOCH + Duration::from_millis(start_ms),
            duration: Duration::from_millis(1),
            error: false,
            attributes: vec![],
        }
    }

    fn with(mut n: Node, kind: &'static str, attr: &str, value: &str) -> Node {
        n.kind = kind;
        n.attributes.push((attr.to_owned(), value.to_owned()));
        n
    }

    #[test]
    fn draws_children_in_start_order_across_services() {
        let nodes = vec![
            with(
                node("t1", 1, 0, "POST /orders", "example-telemetry", 0),
                "SERVER",
                "http.response.status_code",
                "201",
            ),
            with(
                node("t1", 3, 1, "Reserve", "example-telemetry", 5),
                "CLIENT",
                "http.request.resend_count",
                "1",
            ),
            node("t1", 2, 1, "place_order", "order-service", 1),
            with(
                node("t1", 4, 3, "Reserve", "example-telemetry", 6),
                "SERVER",
                "rpc.method",
                "Reserve",
            ),
            node("t1", 5, 4, "sqlite.reserve", "inventory-service", 7),
            node("t2", 9, 0, "place_order", "order-service", 0),
        ];
        assert_eq!(pick(&nodes, "place_order"), Some("t1"));
        let tree = render(&nodes, "t1");
        let lines: Vec<&str> = tree.lines().collect();
        assert_eq!(lines.len(), 6, "{tree}");
        assert!(
            lines[1].starts_with("└─ [order-service] SERVER POST /orders"),
            "{tree}"
        );
        assert!(
            lines[2].starts_with("   ├─ [order-service] INTERNAL place_order"),
            "{tree}"
        );
        assert!(
            lines[3].starts_with("   └─ [order-service] CLIENT Reserve"),
            "{tree}"
        );
        assert!(
            lines[4].starts_with("      └─ [inventory-service] SERVER Reserve"),
            "{tree}"
        );
        assert!(
            lines[5].starts_with("         └─ [inventory-service] INTERNAL sqlite.reserve"),
            "{tree}"
        );
    }
}
