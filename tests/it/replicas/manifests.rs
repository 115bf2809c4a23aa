//! `deploy/kubernetes/` validates against the Kubernetes schemas (the PyPI
//! package `kubernetes-validate`, which bundles them: no network needed),
//! and the validator does refuse a broken manifest.
use std::process::Command;

use crate::common::{self, peers};

/// Runs `kubernetes-validate --strict` over `files` → (success, output).
fn validate(validator: &std::path::Path, files: &[std::path::PathBuf]) -> (bool, String) {
    let out = Command::new(validator)
        .args(["--strict", "--quiet"])
        .args(files)
        .output()
        .expect("run kubernetes-validate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn kubernetes_manifests_validate_against_the_schemas() {
    let Some(peers) = peers() else { return };
    let validator = peers.venv_bin.join("kubernetes-validate");
    if !validator.is_file() {
        common::skip("kubernetes-validate is not installed (tests/peers/requirements.txt)");
        return;
    }
    let dir = common::repo_root().join("deploy/kubernetes");
    let mut manifests: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        // Kustomize's own file is no Kubernetes resource.
        .filter(|path| !path.ends_with("kustomization.yaml"))
        .collect();
    manifests.sort();
    let text: String = manifests
        .iter()
        .map(|path| std::fs::read_to_string(path).unwrap())
        .collect();
    for kind in [
        "kind: Deployment",
        "kind: Service",
        "kind: PodDisruptionBudget",
        "kind: ConfigMap",
        "kind: Secret",
        "path: /ready",
        "path: /health",
    ] {
        assert!(text.contains(kind), "deploy/kubernetes lacks `{kind}`");
    }
    let (ok, output) = validate(&validator, &manifests);
    assert!(ok, "deploy/kubernetes does not validate:\n{output}");
    assert!(!output.contains("ERROR"), "{output}");

    // The validator is not a rubber stamp: a misspelt field fails.
    let broken = tempfile::tempdir().unwrap();
    let path = broken.path().join("pdb.yaml");
    let pdb = std::fs::read_to_string(dir.join("pdb.yaml")).unwrap();
    std::fs::write(&path, pdb.replace("maxUnavailable", "maxUnavailabel")).unwrap();
    let (ok, output) = validate(&validator, &[path]);
    assert!(!ok, "a misspelt field passed:\n{output}");
    assert!(output.contains("maxUnavailabel"), "{output}");
}
