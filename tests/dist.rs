//! What dist/ ships besides the unit: the Prometheus alerting rules and the Grafana dashboard
//! name only metrics loghost exports, and the dashboard is valid JSON with a query in every
//! panel. (`promtool check rules` and `promtool test rules` run in scripts/test.sh.)

use std::collections::BTreeSet;

/// Every `loghost_…` metric name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("loghost_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .unwrap_or(tail.len());
        // `loghost_…` preceded by a letter is part of another word.
        let before = rest[..at].chars().last();
        if !before.is_some_and(|c| c.is_ascii_alphanumeric()) {
            out.insert(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    out
}

fn exported() -> BTreeSet<String> {
    let src = std::fs::read_to_string("src/metrics.rs").expect("src/metrics.rs");
    src.split('"')
        .filter(|s| {
            s.starts_with("loghost_") && s.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn the_alert_rules_and_the_dashboard_use_only_exported_metrics() {
    let exported = exported();
    assert!(exported.len() >= 15, "{exported:?}");
    for file in [
        "dist/prometheus/loghost.rules.yml",
        "dist/grafana/loghost.json",
    ] {
        let text = std::fs::read_to_string(file).expect(file);
        let used = metric_names(&text);
        assert!(used.len() >= 8, "{file}: {used:?}");
        let unknown: Vec<_> = used.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "{file} uses metrics loghost does not export: {unknown:?}"
        );
    }
}

#[test]
fn the_dashboard_is_valid_json_with_a_query_in_every_panel() {
    let text = std::fs::read_to_string("dist/grafana/loghost.json").expect("dashboard");
    let dash: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let panels = dash["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10);
    for p in panels {
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{p}");
        for t in targets {
            assert!(
                t["expr"].as_str().is_some_and(|e| e.contains("loghost_")),
                "{p}"
            );
        }
    }
    // Alerts the issue asks for are all there.
    let rules = std::fs::read_to_string("dist/prometheus/loghost.rules.yml").expect("rules");
    for metric in [
        "loghost_rewrite_alarms_total",
        "loghost_host_stale",
        "loghost_last_anchor_age_seconds",
        "loghost_archive_failures_total",
        "loghost_receiver_refused_total",
        "loghost_store_free_bytes",
    ] {
        assert!(rules.contains(metric), "no alert on {metric}");
    }
}
