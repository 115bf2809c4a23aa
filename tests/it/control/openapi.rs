//! The OpenAPI 3.1 document and Swagger UI: every route the code serves
//! under `/api/v1` is documented (a route added without docs fails here),
//! the UI's assets come from the gateway itself, and both pass the Host
//! check while every documented operation still needs the management key.
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::common::{Gateway, repo_root};
use crate::gateway::{HEAD, demo_upstream};

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// `(path, method)` of every `.route("/api/v1/…", get(…).post(…)…)` in `src/`.
fn served_routes() -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    let mut files = vec![repo_root().join("src")];
    while let Some(entry) = files.pop() {
        if entry.is_dir() {
            files.extend(
                std::fs::read_dir(&entry)
                    .unwrap()
                    .map(|e| e.unwrap().path()),
            );
        } else if entry.extension().is_some_and(|ext| ext == "rs") {
            routes_in(&entry, &mut routes);
        }
    }
    routes
}

fn routes_in(file: &Path, routes: &mut BTreeSet<(String, String)>) {
    let text = std::fs::read_to_string(file).unwrap();
    for chunk in text.split(".route(").skip(1) {
        let path = chunk.split('"').nth(1).unwrap_or_default();
        if !path.starts_with("/api/v1/") {
            continue;
        }
        // The method router ends where the next builder call starts.
        let router = chunk
            .split(".with_state(")
            .next()
            .and_then(|c| c.split(".merge(").next())
            .and_then(|c| c.split(".layer(").next())
            .unwrap_or_default();
        let mut found = false;
        for method in METHODS {
            let call = format!("{method}(");
            let called = router.match_indices(&call).any(|(at, _)| {
                !router[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':')
            });
            if called {
                routes.insert((path.to_owned(), method.to_owned()));
                found = true;
            }
        }
        assert!(found, "no method found for {path} in {}", file.display());
    }
}

/// `(path, method)` of every operation in the document.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .into_iter()
                .filter(|m| item.get(*m).is_some())
                .map(|m| (path.clone(), m.to_owned()))
        })
        .collect()
}

/// Every `$ref` in `value`.
fn collect_refs(value: &Value, refs: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                refs.push(reference.clone());
            }
            map.values().for_each(|v| collect_refs(v, refs));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, refs)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_covers_every_route_and_ui_is_self_hosted() {
    let config = format!("{HEAD}{}", demo_upstream("echo", "\"echo\""));
    let gw = Gateway::builder(&config).with_auth().start();

    let response = gw
        .http()
        .get(gw.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let doc: Value = response.json().await.unwrap();
    assert!(
        doc["openapi"]
            .as_str()
            .unwrap_or_default()
            .starts_with("3.1"),
        "{}",
        doc["openapi"]
    );

    let served = served_routes();
    assert!(
        served.len() >= 20,
        "route scan found too little: {served:?}"
    );
    let documented = documented(&doc);
    let undocumented: Vec<_> = served.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "served but not in openapi.json: {undocumented:?}"
    );
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        unserved.is_empty(),
        "in openapi.json but not served: {unserved:?}"
    );
    for (path, method) in &documented {
        let op = &doc["paths"][path][method];
        assert!(
            op["responses"].as_object().is_some_and(|r| !r.is_empty()),
            "{method} {path}"
        );
    }
    assert!(doc["components"]["schemas"]["ProblemDetails"].is_object());
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for reference in refs {
        let pointer = reference.strip_prefix('#').expect("local $ref");
        assert!(doc.pointer(pointer).is_some(), "dangling $ref {reference}");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["management_key"]["scheme"],
        "bearer"
    );

    // The operations themselves still need the key; the Host check covers the docs.
    let refused = gw
        .http()
        .get(gw.url("/api/v1/upstreams"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    for path in ["/api/v1/openapi.json", "/api/docs/"] {
        let foreign = gw
            .http()
            .get(gw.url(path))
            .header("Host", "evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(foreign.status(), 403, "{path}");
    }

    // Swagger UI: HTML whose every asset is served by the gateway itself.
    let page = gw.http().get(gw.url("/api/docs/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let content_type = page.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let html = page.text().await.unwrap();
    let assets: Vec<&str> = ["src=\"", "href=\""]
        .iter()
        .flat_map(|attr| html.split(attr).skip(1))
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert!(assets.iter().any(|a| a.ends_with(".js")), "{html}");
    assert!(assets.iter().any(|a| a.ends_with(".css")), "{html}");
    for asset in &assets {
        assert!(
            !asset.contains("//") && !asset.starts_with('/'),
            "asset {asset} does not load from /api/docs/"
        );
        let url = gw.url(&format!("/api/docs/{}", asset.trim_start_matches("./")));
        let response = gw
            .http()
            .get(&url)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{url}");
        assert!(!response.bytes().await.unwrap().is_empty(), "{url}");
    }
    let init = gw
        .http()
        .get(gw.url("/api/docs/swagger-initializer.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(init.contains("/api/v1/openapi.json"), "{init}");
    // Nothing leaves the gateway: no CDN, no validator badge from swagger.io.
    let compact: String = init.split_whitespace().collect();
    assert!(compact.contains(r#""validatorUrl":"none""#), "{init}");
    for text in [&html, &init] {
        assert!(
            !text.contains("http://") && !text.contains("https://"),
            "{text}"
        );
    }
}
