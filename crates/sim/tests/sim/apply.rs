//! Server-side apply: ownership, conflicts, force, removal, merge keys, atomic lists,
//! admission and decoding, idempotence.

use super::*;

#[tokio::test]
async fn server_side_apply_ownership_conflicts_force_and_removal() {
    // No kubelet writing status in between: resourceVersions only move on our writes.
    let sim = Sim::start_with(SimOptions {
        lifecycle: false,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(sim.client(), NS);
    let manifest = pod_manifest("code-server-alice", "codercom/code-server:4.96.4");
    let pp = PatchParams::apply(MANAGER).force();
    let pod = pods
        .patch("code-server-alice", &pp, &Patch::Apply(&manifest))
        .await
        .unwrap();
    let mf = pod.metadata.managed_fields.clone().unwrap();
    assert_eq!(mf.len(), 1);
    assert_eq!(mf[0].manager.as_deref(), Some(MANAGER));
    assert_eq!(mf[0].operation.as_deref(), Some("Apply"));
    assert_eq!(mf[0].fields_type.as_deref(), Some("FieldsV1"));
    let fields = serde_json::to_value(mf[0].fields_v1.as_ref().unwrap()).unwrap();
    let c = &fields["f:spec"]["f:containers"]["k:{\"name\":\"code-server\"}"];
    assert_eq!(c["."], json!({}));
    assert_eq!(c["f:image"], json!({}));
    assert_eq!(
        c["f:ports"]["k:{\"containerPort\":8080,\"protocol\":\"TCP\"}"]["f:name"],
        json!({})
    );
    assert!(
        fields["f:spec"].get("f:restartPolicy").is_none(),
        "defaults are not owned by the applier"
    );
    // Defaults.
    let spec = pod.spec.clone().unwrap();
    assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
    assert_eq!(spec.termination_grace_period_seconds, Some(30));
    assert_eq!(
        spec.containers[0].ports.as_ref().unwrap()[0]
            .protocol
            .as_deref(),
        Some("TCP")
    );
    assert_eq!(
        spec.containers[0].image_pull_policy.as_deref(),
        Some("IfNotPresent")
    );

    // Re-applying the same thing is a no-op: same resourceVersion.
    let again = pods
        .patch("code-server-alice", &pp, &Patch::Apply(&manifest))
        .await
        .unwrap();
    assert_eq!(
        again.metadata.resource_version,
        pod.metadata.resource_version
    );

    // Another manager touching an owned field conflicts, with the real message and cause.
    let other = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "code-server-alice", "labels": {"devplatform.io/user": "mallory"}}});
    let err = api_error(
        pods.patch(
            "code-server-alice",
            &PatchParams::apply("other-manager"),
            &Patch::Apply(&other),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code, 409);
    assert_eq!(err.reason, "Conflict");
    assert_eq!(
        err.message,
        "Apply failed with 1 conflict: conflict with \"codeserver-service\": .metadata.labels.devplatform.io/user"
    );
    let cause = &err.details.unwrap().causes[0];
    assert_eq!(cause.reason, "FieldManagerConflict");
    assert_eq!(cause.field, ".metadata.labels.devplatform.io/user");
    // Force moves ownership.
    let forced = pods
        .patch(
            "code-server-alice",
            &PatchParams::apply("other-manager").force(),
            &Patch::Apply(&other),
        )
        .await
        .unwrap();
    assert_eq!(forced.labels()["devplatform.io/user"], "mallory");
    let managers: Vec<String> = forced
        .metadata
        .managed_fields
        .unwrap()
        .iter()
        .filter(|m| m.operation.as_deref() == Some("Apply"))
        .map(|m| m.manager.clone().unwrap())
        .collect();
    assert_eq!(managers, vec![MANAGER, "other-manager"]);

    // A manager that stops applying a field it alone owns removes it...
    let mut fewer = manifest.clone();
    fewer["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("app.kubernetes.io/name");
    fewer["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("devplatform.io/user");
    let pruned = pods
        .patch("code-server-alice", &pp, &Patch::Apply(&fewer))
        .await
        .unwrap();
    assert!(!pruned.labels().contains_key("app.kubernetes.io/name"));
    // ...but a field another manager still owns stays (other-manager owns the user label now).
    assert_eq!(pruned.labels()["devplatform.io/user"], "mallory");

    // Pod specs are immutable except images: dropping env is refused like the real server does.
    let mut no_env = fewer.clone();
    no_env["spec"]["containers"][0]
        .as_object_mut()
        .unwrap()
        .remove("env");
    let err = api_error(
        pods.patch("code-server-alice", &pp, &Patch::Apply(&no_env))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    assert_eq!(err.reason, "Invalid");
    assert!(err.message.starts_with("Pod \"code-server-alice\" is invalid: spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`"), "{}", err.message);
    assert_eq!(err.details.unwrap().causes[0].field, "spec");
    // ...while an image change goes through.
    let mut new_image = fewer.clone();
    new_image["spec"]["containers"][0]["image"] = json!("codercom/code-server:4.97.0");
    let updated = pods
        .patch("code-server-alice", &pp, &Patch::Apply(&new_image))
        .await
        .unwrap();
    assert_eq!(
        updated.spec.unwrap().containers[0].image.as_deref(),
        Some("codercom/code-server:4.97.0")
    );

    // List elements merge by key and go when their applier drops them (Service ports).
    let svcs: Api<Service> = Api::namespaced(sim.client(), NS);
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "code-server-alice"},
        "spec": {"selector": {"app": "x"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}, {"name": "metrics", "port": 9090}]}});
    let s1 = svcs
        .patch("code-server-alice", &pp, &Patch::Apply(&svc))
        .await
        .unwrap();
    let spec1 = s1.spec.clone().unwrap();
    assert_eq!(spec1.type_.as_deref(), Some("ClusterIP"));
    assert_eq!(spec1.session_affinity.as_deref(), Some("None"));
    assert!(spec1.cluster_ip.as_deref().unwrap().starts_with("10.96."));
    let ports = spec1.ports.unwrap();
    assert_eq!(
        ports[1].target_port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(9090))
    );
    let mut one_port = svc.clone();
    one_port["spec"]["ports"].as_array_mut().unwrap().pop();
    let s2 = svcs
        .patch("code-server-alice", &pp, &Patch::Apply(&one_port))
        .await
        .unwrap();
    let spec2 = s2.spec.unwrap();
    assert_eq!(spec2.ports.unwrap().len(), 1);
    assert_eq!(spec2.cluster_ip, spec1.cluster_ip, "clusterIP is kept");

    // The allocated clusterIP is immutable.
    let mut moved = one_port.clone();
    moved["spec"]["clusterIP"] = json!("10.96.99.99");
    let err = api_error(
        svcs.patch("code-server-alice", &pp, &Patch::Apply(&moved))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    assert!(
        err.message.contains("spec.clusterIPs[0]: Invalid value"),
        "{}",
        err.message
    );

    // Emptied maps disappear, as Go's omitempty drops them on the real server.
    let cms: Api<ConfigMap> = Api::namespaced(sim.client(), NS);
    let full = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "labels": {"a": "1"}}, "data": {"k": "v"}});
    cms.patch("cfg", &pp, &Patch::Apply(&full)).await.unwrap();
    let bare = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}});
    cms.patch("cfg", &pp, &Patch::Apply(&bare)).await.unwrap();
    let raw = sim.object("configmaps", NS, "cfg").unwrap();
    assert!(raw.get("data").is_none(), "{raw}");
    assert!(raw["metadata"].get("labels").is_none(), "{raw}");

    // Applied bodies with managedFields are refused.
    let mut bad = manifest.clone();
    bad["metadata"]["managedFields"] = json!([{"manager": "x"}]);
    let err = api_error(
        pods.patch("code-server-alice", &pp, &Patch::Apply(&bad))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 400);
}

#[tokio::test]
async fn istio_virtual_service_in_two_versions_and_atomic_lists() {
    let sim = Sim::start().await.unwrap();
    let ar = |v: &str| {
        ApiResource::from_gvk(&GroupVersionKind::gvk(
            "networking.istio.io",
            v,
            "VirtualService",
        ))
    };
    let v1: Api<DynamicObject> = Api::namespaced_with(sim.client(), NS, &ar("v1"));
    let v1beta1: Api<DynamicObject> = Api::namespaced_with(sim.client(), NS, &ar("v1beta1"));
    let vs = json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "code-server-frank"},
        "spec": {"hosts": ["code-frank.example.com", "alt.example.com"], "gateways": ["dev-platform/gw"],
            "http": [{"route": [{"destination": {"host": "code-server-frank", "port": {"number": 80}}}]}]}});
    let a = v1
        .patch(
            "code-server-frank",
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&vs),
        )
        .await
        .unwrap();
    let b = v1beta1.get("code-server-frank").await.unwrap();
    assert_eq!(b.types.unwrap().api_version, "networking.istio.io/v1beta1");
    assert_eq!(a.metadata.uid, b.metadata.uid);
    let fields = serde_json::to_value(
        a.metadata.managed_fields.unwrap()[0]
            .fields_v1
            .clone()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        fields["f:spec"]["f:hosts"],
        json!({}),
        "atomic list owned as a whole"
    );
    assert_eq!(fields["f:spec"]["f:http"], json!({}));

    // Another manager replacing an atomic list conflicts as a whole; forced, it replaces it.
    let other = json!({"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService", "metadata": {"name": "code-server-frank"},
        "spec": {"hosts": ["other.example.com"]}});
    let err = api_error(
        v1beta1
            .patch(
                "code-server-frank",
                &PatchParams::apply("istio-tool"),
                &Patch::Apply(&other),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(
        err.message,
        "Apply failed with 1 conflict: conflict with \"codeserver-service\": .spec.hosts"
    );
    let forced = v1beta1
        .patch(
            "code-server-frank",
            &PatchParams::apply("istio-tool").force(),
            &Patch::Apply(&other),
        )
        .await
        .unwrap();
    assert_eq!(forced.data["spec"]["hosts"], json!(["other.example.com"]));
    assert_eq!(sim.list_objects("virtualservices").len(), 1);
    assert_eq!(
        sim.object_in(
            "networking.istio.io",
            "v1beta1",
            "virtualservices",
            NS,
            "code-server-frank"
        )
        .unwrap()["apiVersion"],
        "networking.istio.io/v1beta1"
    );

    // NetworkPolicy rules are atomic too.
    let np_ar = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
    ));
    let nps: Api<DynamicObject> = Api::namespaced_with(sim.client(), NS, &np_ar);
    let np = |port: i64| {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "code-server-frank"},
        "spec": {"podSelector": {"matchLabels": {"app": "x"}}, "ingress": [{"ports": [{"port": port}]}]}})
    };
    let p1 = nps
        .patch(
            "code-server-frank",
            &PatchParams::apply(MANAGER),
            &Patch::Apply(np(8080)),
        )
        .await
        .unwrap();
    assert_eq!(p1.data["spec"]["policyTypes"], json!(["Ingress"]));
    assert_eq!(p1.data["spec"]["ingress"][0]["ports"][0]["protocol"], "TCP");
    let p2 = nps
        .patch(
            "code-server-frank",
            &PatchParams::apply(MANAGER),
            &Patch::Apply(np(9090)),
        )
        .await
        .unwrap();
    assert_eq!(p2.data["spec"]["ingress"].as_array().unwrap().len(), 1);
    assert_eq!(p2.metadata.generation, Some(2));

    // Unknown paths answer 404 like the real server: a Status for an unknown resource in a
    // served group/version, plain text elsewhere.
    let req = http::Request::get("/api/v1/namespaces/default/widgets")
        .body(Vec::new())
        .unwrap();
    let err = api_error(sim.client().request_text(req).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (404, "NotFound"));
    assert_eq!(
        err.message,
        "the server could not find the requested resource"
    );
    let raw = raw_get(&sim.url(), "/apis/nope.example.com/v1/things").await;
    assert_eq!(raw, (404, "404 page not found\n".to_string()));
}

#[tokio::test]
async fn reapplying_everything_is_a_no_op() {
    let sim = Sim::start().await.unwrap();
    let client = sim.client();
    let pp = PatchParams::apply(MANAGER).force();
    let gvk = |g: &str, v: &str, k: &str| ApiResource::from_gvk(&GroupVersionKind::gvk(g, v, k));
    let mut pod = pod_manifest("code-server-gus", "codercom/code-server:4.96.4");
    pod["spec"]["automountServiceAccountToken"] = json!(false);
    pod["spec"]["volumes"] =
        json!([{"name": "workspace", "persistentVolumeClaim": {"claimName": "workspace-gus"}}]);
    pod["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": "workspace", "mountPath": "/home/coder"}]);
    // Quantities as a template might render them: stored canonical, re-applied without change.
    pod["spec"]["containers"][0]["resources"] =
        json!({"requests": {"cpu": 0.25, "memory": "512Mi"}, "limits": {"memory": "2048Mi"}});
    pod["spec"]["securityContext"] =
        json!({"runAsNonRoot": true, "runAsUser": 1000, "fsGroup": 1000});
    let objects = vec![
        (
            gvk("", "v1", "PersistentVolumeClaim"),
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "workspace-gus", "annotations": {"devplatform.io/repos": "[\"team/app\"]"}},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}}}),
        ),
        (gvk("", "v1", "Pod"), pod),
        (
            gvk("", "v1", "Service"),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "code-server-gus"},
            "spec": {"selector": {"app.kubernetes.io/instance": "code-server-gus"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}),
        ),
        (
            gvk("networking.istio.io", "v1", "VirtualService"),
            json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "code-server-gus"}, "spec": {"hosts": ["code-gus.example.com"], "gateways": ["dev-platform/gw"],
            "http": [{"route": [{"destination": {"host": "code-server-gus", "port": {"number": 80}}}]}]}}),
        ),
        (
            gvk("networking.k8s.io", "v1", "NetworkPolicy"),
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "code-server-gus"}, "spec": {"podSelector": {"matchLabels": {"app.kubernetes.io/instance": "code-server-gus"}},
            "policyTypes": ["Ingress"], "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "istio-system"}}}],
            "ports": [{"port": 8080, "protocol": "TCP"}]}]}}),
        ),
    ];
    for (ar, obj) in &objects {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, ar);
        api.patch(
            obj["metadata"]["name"].as_str().unwrap(),
            &pp,
            &Patch::Apply(obj),
        )
        .await
        .unwrap();
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    wait_ready(&pods, "code-server-gus").await;
    let live = sim.object("pods", NS, "code-server-gus").unwrap();
    assert_eq!(
        live["spec"]["containers"][0]["resources"],
        json!({"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}})
    );
    // Once the lifecycle has settled (pod ready, claim bound), re-apply everything.
    let bound = sim
        .wait_for(
            "persistentvolumeclaims",
            NS,
            "workspace-gus",
            Duration::from_secs(5),
            |p| p.is_some_and(|p| p["status"]["phase"] == "Bound"),
        )
        .await;
    assert!(bound, "the claim binds");
    let rv_before = sim.resource_version();
    for (ar, obj) in &objects {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, ar);
        let name = obj["metadata"]["name"].as_str().unwrap();
        let before = api.get(name).await.unwrap();
        let after = api.patch(name, &pp, &Patch::Apply(obj)).await.unwrap();
        assert_eq!(
            before.metadata.resource_version, after.metadata.resource_version,
            "{name} ({}) changed on re-apply",
            ar.kind
        );
        assert_eq!(
            before.metadata.managed_fields,
            after.metadata.managed_fields
        );
    }
    assert_eq!(sim.resource_version(), rv_before, "no write happened");
}

#[tokio::test]
async fn admission_unknown_fields_secrets_and_finalizers() {
    let sim = Sim::start().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(sim.client(), NS);
    let pp = PatchParams::apply(MANAGER).force();
    // Admission: API token volume unless automount is off, default tolerations always.
    let with_token = pods
        .patch(
            "tok",
            &pp,
            &Patch::Apply(pod_manifest("tok", "codercom/code-server:4.96.4")),
        )
        .await
        .unwrap();
    let spec = with_token.spec.unwrap();
    let vols = spec.volumes.unwrap();
    assert!(vols[0].name.starts_with("kube-api-access-"), "{vols:?}");
    let mounts = spec.containers[0].volume_mounts.clone().unwrap();
    assert_eq!(
        mounts[0].mount_path,
        "/var/run/secrets/kubernetes.io/serviceaccount"
    );
    assert_eq!(spec.tolerations.unwrap().len(), 2);
    let mut no_token = pod_manifest("notok", "codercom/code-server:4.96.4");
    no_token["spec"]["automountServiceAccountToken"] = json!(false);
    let p = pods
        .patch("notok", &pp, &Patch::Apply(&no_token))
        .await
        .unwrap();
    assert!(p.spec.unwrap().volumes.is_none());

    // Unknown fields: dropped (with their ownership), or refused under Strict.
    let mut typo = pod_manifest("typo", "codercom/code-server:4.96.4");
    typo["spec"]["containers"][0]["imagePullPolcy"] = json!("Always");
    let p = pods.patch("typo", &pp, &Patch::Apply(&typo)).await.unwrap();
    let raw = sim.object("pods", NS, "typo").unwrap();
    assert!(raw["spec"]["containers"][0].get("imagePullPolcy").is_none());
    let fields = serde_json::to_value(
        p.metadata.managed_fields.unwrap()[0]
            .fields_v1
            .clone()
            .unwrap(),
    )
    .unwrap();
    assert!(
        fields["f:spec"]["f:containers"]["k:{\"name\":\"code-server\"}"]
            .get("f:imagePullPolcy")
            .is_none()
    );
    let strict = PatchParams {
        field_validation: Some(kube::api::ValidationDirective::Strict),
        ..pp.clone()
    };
    let err = api_error(
        pods.patch("typo", &strict, &Patch::Apply(&typo))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 400);
    assert!(
        err.message
            .contains("strict decoding error: unknown field \"spec.containers[0].imagePullPolcy\""),
        "{}",
        err.message
    );
    let mut wrong_type = pod_manifest("wrong", "codercom/code-server:4.96.4");
    wrong_type["spec"]["containers"][0]["ports"][0]["containerPort"] = json!("8080");
    let err = api_error(
        pods.patch("wrong", &pp, &Patch::Apply(&wrong_type))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 400);
    assert!(
        err.message
            .starts_with("Pod in version \"v1\" cannot be handled as a Pod"),
        "{}",
        err.message
    );

    // Secrets fold stringData into data.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(sim.client(), NS);
    let s = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"token": "abc"}});
    let stored = secrets.patch("s", &pp, &Patch::Apply(&s)).await.unwrap();
    assert_eq!(stored.type_.as_deref(), Some("Opaque"));
    assert_eq!(stored.data.unwrap()["token"].0, b"abc".to_vec());
    assert!(stored.string_data.is_none());

    // A custom finalizer holds a delete until it is removed.
    let cms: Api<ConfigMap> = Api::namespaced(sim.client(), NS);
    let cm: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}),
    )
    .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let pending = cms
        .delete("held", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .unwrap();
    assert!(pending.metadata.deletion_timestamp.is_some());
    assert!(cms.get("held").await.is_ok());
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    let err = api_error(cms.get("held").await.unwrap_err());
    assert_eq!(err.code, 404);
}
