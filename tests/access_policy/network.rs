//! What a workspace may reach and what may reach it: its NetworkPolicies, for hostile ids
//! and subs too.

use super::*;

#[test]
fn hostile_subs_render_the_same_objects_as_any_other() {
    // No object names the `sub` any more (the gatekeeper reads the instance's record), so
    // no `sub` stops a render: not a wildcard, not a slash, not a control character.
    let long = "s".repeat(300);
    let subs = [
        "o'brien\"; rm -rf /",
        "a/b/../c",
        "日本語-ユーザー",
        long.as_str(),
        "{{ 7 + 7 }} {% if true %}",
        "- x\n",
        "line\u{2028}separator",
        "a, b",
        "*",
        "alice*",
        "tab\there",
    ];
    let plain = render_for(&owner("alice", Some(ALICE_SUB))).expect("alice renders");
    let kinds = |objects: &[Value]| -> Vec<String> {
        objects
            .iter()
            .map(|o| format!("{}/{}", o["kind"], o["metadata"]["name"]))
            .collect()
    };
    for sub in subs {
        let objects =
            render_for(&owner("alice", Some(sub))).unwrap_or_else(|e| panic!("{sub:?}: {e}"));
        assert_eq!(kinds(&objects), kinds(&plain), "{sub:?}");
    }
}

#[test]
fn the_printed_manifests_restrict_egress_and_name_no_access_policy() {
    let printed = render_alice(&["--jwt-issuer", ISSUER]).expect("renders");
    let docs: Vec<Value> = printed
        .split("\n---\n")
        .map(|d| serde_yaml_ng::from_str(d.trim_start_matches("---\n")).expect("YAML"))
        .collect();
    // Who opens the workspace is the gatekeeper's decision, not an object per user.
    assert!(
        docs.iter().all(|d| d["kind"] != "AuthorizationPolicy"),
        "no per-instance access policy"
    );
    let network = docs
        .iter()
        .find(|d| d["kind"] == "NetworkPolicy")
        .expect("a NetworkPolicy is printed");
    assert_eq!(network["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    let egress = network["spec"]["egress"].as_array().expect("egress rules");
    let text = serde_json::to_string(egress).expect("JSON");
    assert!(text.contains("\"port\":53"), "DNS: {text}");
    assert!(
        text.contains("\"app.kubernetes.io/name\":\"gitea\""),
        "Gitea: {text}"
    );
    for block in egress
        .iter()
        .flat_map(|r| r["to"].as_array().into_iter().flatten())
        .filter_map(|peer| peer.get("ipBlock"))
    {
        let except = strings(&block["except"]);
        if block["cidr"] == "0.0.0.0/0" {
            for never in ["169.254.169.254/32", "10.244.0.0/16", "10.96.0.0/12"] {
                assert!(except.contains(&never.to_owned()), "{never} not excluded");
            }
        }
    }
    // NB: egress never selects pods of the instances namespace or the service's pods.
    for peer in egress
        .iter()
        .flat_map(|r| r["to"].as_array().into_iter().flatten())
    {
        assert_ne!(
            peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
            "codeserver-instances"
        );
        if peer.get("namespaceSelector").is_some() {
            assert!(
                peer["podSelector"]["matchLabels"]
                    .as_object()
                    .is_some_and(|m| !m.is_empty()),
                "a namespace rule names its pods: {peer}"
            );
        }
    }

    // Without JWT_ISSUER the same manifests: nothing rendered names the issuer.
    assert_eq!(
        render_alice(&[]).expect("renders without an issuer"),
        printed
    );
}

#[test]
fn an_egress_block_inside_an_excluded_range_is_refused() {
    let templates = Templates::builtin().expect("the built-in templates load");
    let set = "networkPolicy.egress.allowed=null".to_owned();
    // A block inside the pod CIDR would open other users' pods.
    let mut values = render::build_values(
        &templates,
        &settings(),
        &owner("alice", Some(ALICE_SUB)),
        &[repo()],
        &[set],
    )
    .expect("values");
    std::sync::Arc::make_mut(&mut values.extra)["networkPolicy"]["egress"]["allowed"] =
        json!([{"cidr": "10.244.3.0/24", "ports": [{"port": 8080, "protocol": "TCP"}]}]);
    let err = templates.render(&values).expect_err("refused").to_string();
    assert!(
        err.contains("10.244.3.0/24 lies inside the excluded block 10.244.0.0/16"),
        "{err}"
    );
    // The metadata address alone, too.
    std::sync::Arc::make_mut(&mut values.extra)["networkPolicy"]["egress"]["allowed"] =
        json!([{"cidr": "169.254.169.254/32", "ports": [{"port": 80, "protocol": "TCP"}]}]);
    assert!(templates.render(&values).is_err());
}

/// Whether `selector` (a `matchLabels` map) selects a pod with `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .is_some_and(|m| !m.is_empty() && m.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

#[test]
fn the_sync_jobs_pod_is_held_to_dns_and_gitea_and_nothing_reaches_it() {
    let templates = Templates::builtin().expect("the built-in templates load");
    let alice = owner("alice", Some(ALICE_SUB));
    let values =
        render::build_values(&templates, &settings(), &alice, &[repo()], &[]).expect("values");
    let job = templates
        .render_sync_job(
            &values,
            &render::JobValues {
                name: "sync-alice".to_owned(),
                node: None,
            },
        )
        .expect("the sync Job renders");
    let job = serde_json::to_value(&job).expect("JSON");
    let pod_labels = &job["spec"]["template"]["metadata"]["labels"];
    let objects = render_for(&alice).expect("alice renders");
    let selecting: Vec<&Value> = objects
        .iter()
        .filter(|o| o["kind"] == "NetworkPolicy")
        .filter(|o| selects(&o["spec"]["podSelector"]["matchLabels"], pod_labels))
        .collect();
    assert_eq!(
        selecting.len(),
        1,
        "one policy selects the sync pod: {pod_labels}"
    );
    let policy = selecting[0];
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert!(
        policy["spec"].get("ingress").is_none(),
        "no ingress: {policy}"
    );
    let peers: Vec<&Value> = policy["spec"]["egress"]
        .as_array()
        .expect("egress rules")
        .iter()
        .flat_map(|r| r["to"].as_array().into_iter().flatten())
        .collect();
    let namespaces: Vec<&Value> = peers
        .iter()
        .map(|p| &p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"])
        .collect();
    assert_eq!(namespaces, [&json!("kube-system"), &json!("dev-platform")]);
    assert!(
        peers.iter().all(|p| p.get("ipBlock").is_none()),
        "no address blocks (the allow list is the workspace's, not the Job's): {policy}"
    );

    // Bob's sync pod is not alice's: her policy does not select it.
    let bob = render_for(&owner("bob", Some(BOB_SUB))).expect("bob renders");
    let bob_sync = bob
        .iter()
        .find(|o| o["kind"] == "NetworkPolicy" && o["metadata"]["name"] == "sync-bob")
        .expect("bob's sync policy");
    assert!(!selects(
        &bob_sync["spec"]["podSelector"]["matchLabels"],
        pod_labels
    ));
}

/// The `render` command, in-process, for alice (sub `S-1`) and devteam/api with `extra`
/// arguments: what it printed, or why it failed.
fn render_alice(extra: &[&str]) -> Result<String, cli::CliError> {
    let mut args = vec![
        "render",
        "--user",
        "alice",
        "--sub",
        "S-1",
        "--repo-owner",
        "devteam",
        "--repo-name",
        "api",
    ];
    args.extend_from_slice(extra);
    let (result, out) = run_command(&args);
    result.map(|()| out)
}
