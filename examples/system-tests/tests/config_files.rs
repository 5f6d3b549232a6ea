//! The deployment files are checked by the real validators: Compose's own parser,
//! hadolint and promtool (installed by `scripts/install-test-tools.sh`).

use std::path::PathBuf;
use std::process::Command;

use palisade_testkit::require_tool;

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(tool: PathBuf, args: &[&str]) {
    let out = Command::new(&tool)
        .args(args)
        .current_dir(examples_dir())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", tool.display()));
    assert!(
        out.status.success(),
        "{} {args:?} failed ({}):\n{}{}",
        tool.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn docker_compose_file_is_valid() {
    let Some(compose) = require_tool(
        "PALISADE_DOCKER_COMPOSE",
        "docker-compose",
        "docker_compose_file_is_valid",
    ) else {
        return;
    };
    run(
        compose.clone(),
        &["-f", "docker-compose.yml", "config", "-q"],
    );
    // The traffic generator sits behind a profile; validate it too.
    run(
        compose,
        &[
            "-f",
            "docker-compose.yml",
            "--profile",
            "traffic",
            "config",
            "-q",
        ],
    );
}

#[test]
fn dockerfile_passes_hadolint() {
    let Some(hadolint) = require_tool(
        "PALISADE_HADOLINT",
        "hadolint",
        "dockerfile_passes_hadolint",
    ) else {
        return;
    };
    run(hadolint, &["Dockerfile"]);
}

#[test]
fn prometheus_config_passes_promtool() {
    let Some(promtool) = require_tool(
        "PALISADE_PROMTOOL",
        "promtool",
        "prometheus_config_passes_promtool",
    ) else {
        return;
    };
    run(promtool, &["check", "config", "prometheus.yml"]);
}

/// The compose file, the Dockerfile and the k8s manifests agree with the services on
/// ports, probe paths and the drain delay.
#[test]
fn deployment_files_agree_with_the_services() {
    let read = |p: &str| std::fs::read_to_string(examples_dir().join(p)).unwrap();
    let compose = read("docker-compose.yml");
    let dockerfile = read("Dockerfile");
    let prometheus = read("prometheus.yml");
    let k8s_orders = read("k8s/order-service.yaml");
    let k8s_inventory = read("k8s/inventory-service.yaml");
    for needle in [
        "cr.jaegertracing.io/jaegertracing/jaeger:2.",
        "\"4317:4317\"",
        "\"4318:4318\"",
        "\"16686:16686\"",
        "13133",
        "OTEL_EXPORTER_OTLP_ENDPOINT: http://jaeger:4317",
        "http://127.0.0.1:8080/health/ready",
        "http://127.0.0.1:9091/health/ready",
        "INVENTORY_URL: http://inventory-service:50051",
    ] {
        assert!(
            compose.contains(needle),
            "docker-compose.yml lacks {needle}"
        );
    }
    assert!(
        prometheus.contains("order-service:8080") && prometheus.contains("inventory-service:9091")
    );
    assert!(
        dockerfile.contains("USER 10001"),
        "the Dockerfile runs as root"
    );
    assert!(dockerfile.contains("AS order-service") && dockerfile.contains("AS inventory-service"));
    // The preStop sleep matches the drain delay the services are given.
    for (k8s, var) in [
        (&k8s_orders, "ORDER_DRAIN_DELAY_MS"),
        (&k8s_inventory, "INVENTORY_DRAIN_DELAY_MS"),
    ] {
        let drain_ms: u64 = value_after(k8s, &format!("name: {var}\n"), "value: \"")
            .parse()
            .unwrap();
        let sleep_s: u64 = value_after(k8s, "preStop:\n", "seconds: ").parse().unwrap();
        assert_eq!(drain_ms, sleep_s * 1000, "{var} vs preStop");
        for probe in ["startupProbe:", "livenessProbe:", "readinessProbe:"] {
            assert!(k8s.contains(probe), "k8s manifest lacks {probe}");
        }
    }
}

/// The token after `marker` and then `prefix`, up to the next quote or newline.
fn value_after(text: &str, marker: &str, prefix: &str) -> String {
    let at = text.find(marker).unwrap_or_else(|| panic!("no {marker:?}")) + marker.len();
    let rest = &text[at..];
    let start = rest
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix:?} after {marker:?}"))
        + prefix.len();
    rest[start..]
        .chars()
        .take_while(|c| *c != '"' && *c != '\n')
        .collect()
}
