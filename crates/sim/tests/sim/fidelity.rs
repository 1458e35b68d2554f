//! Where the simulated server must refuse what a real one refuses: custom resources against
//! their CRD schema, Service ports, and request bodies in a format it does not decode.

use super::*;

fn virtual_service_api(sim: &Sim) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "networking.istio.io",
        "v1",
        "VirtualService",
    ));
    Api::namespaced_with(sim.client(), NS, &ar)
}

fn virtual_service(name: &str, port: Value) -> Value {
    json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": name},
        "spec": {"hosts": ["*"], "gateways": ["istio-system/codeserver"],
            "http": [{"match": [{"uri": {"prefix": "/u/x/"}}],
                      "route": [{"destination": {"host": "code-server-x", "port": {"number": port}}}]}]}})
}

fn causes(status: &kube::core::Status) -> Vec<(String, String, String)> {
    status
        .details
        .as_ref()
        .map(|d| {
            d.causes
                .iter()
                .map(|c| (c.reason.clone(), c.field.clone(), c.message.clone()))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_virtual_service_is_checked_against_its_crd_schema() {
    let sim = Sim::start().await.unwrap();
    let vs = virtual_service_api(&sim);
    let pp = PatchParams::apply(MANAGER).force();

    let err = api_error(
        vs.patch("x", &pp, &Patch::Apply(virtual_service("x", json!("80"))))
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        err.message,
        "VirtualService.networking.istio.io \"x\" is invalid: spec.http[0].route[0].destination.port.number: Invalid value: \"string\": spec.http[0].route[0].destination.port.number in body must be of type integer: \"string\""
    );
    assert_eq!(
        causes(&err),
        [(
            "FieldValueTypeInvalid".to_string(),
            "spec.http[0].route[0].destination.port.number".to_string(),
            "Invalid value: \"string\": spec.http[0].route[0].destination.port.number in body must be of type integer: \"string\"".to_string()
        )]
    );
    assert!(sim.object("virtualservices", NS, "x").is_none());

    // The same through create (POST) and a required field left out.
    let mut missing_host = virtual_service("y", json!(80));
    missing_host["spec"]["http"][0]["route"][0]["destination"]
        .as_object_mut()
        .unwrap()
        .remove("host");
    let obj: DynamicObject = serde_json::from_value(missing_host).unwrap();
    let err = api_error(vs.create(&PostParams::default(), &obj).await.unwrap_err());
    assert_eq!(err.code, 422);
    assert_eq!(
        causes(&err),
        [(
            "FieldValueRequired".to_string(),
            "spec.http[0].route[0].destination.host".to_string(),
            "Required value".to_string()
        )]
    );

    // A valid one is stored; a later merge patch breaking it is refused and changes nothing.
    vs.patch("x", &pp, &Patch::Apply(virtual_service("x", json!(80))))
        .await
        .unwrap();
    let err = api_error(
        vs.patch(
            "x",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"hosts": "*"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(
        causes(&err),
        [(
            "FieldValueTypeInvalid".to_string(),
            "spec.hosts".to_string(),
            "Invalid value: \"string\": spec.hosts in body must be of type array: \"string\""
                .to_string()
        )]
    );
    assert_eq!(
        sim.object("virtualservices", NS, "x").unwrap()["spec"]["hosts"],
        json!(["*"])
    );
}

#[tokio::test]
async fn an_authorization_policy_enum_is_enforced() {
    let sim = Sim::start().await.unwrap();
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "security.istio.io",
        "v1",
        "AuthorizationPolicy",
    ));
    let aps: Api<DynamicObject> = Api::namespaced_with(sim.client(), NS, &ar);
    let policy = |action: &str| {
        json!({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
            "metadata": {"name": "owner-only"},
            "spec": {"action": action, "selector": {"matchLabels": {"app": "x"}},
                     "rules": [{"from": [{"source": {"requestPrincipals": ["issuer/alice"]}}]}]}})
    };
    let pp = PatchParams::apply(MANAGER).force();
    let err = api_error(
        aps.patch("owner-only", &pp, &Patch::Apply(policy("MAYBE")))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    let got = causes(&err);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        (got[0].0.as_str(), got[0].1.as_str()),
        ("FieldValueNotSupported", "spec.action")
    );
    assert!(
        got[0]
            .2
            .starts_with("Unsupported value: \"MAYBE\": supported values: \"ALLOW\", \"DENY\""),
        "{got:?}"
    );
    aps.patch("owner-only", &pp, &Patch::Apply(policy("ALLOW")))
        .await
        .unwrap();
}

#[tokio::test]
async fn unknown_fields_of_custom_resources_are_pruned_or_refused_when_strict() {
    let sim = Sim::start().await.unwrap();
    let vs = virtual_service_api(&sim);
    let mut odd = virtual_service("odd", json!(80));
    odd["spec"]["bogus"] = json!(true);
    odd["spec"]["http"][0]["route"][0]["destination"]["colour"] = json!("blue");
    odd["metadata"]["nonsense"] = json!(1);

    let strict = PatchParams {
        field_validation: Some(kube::api::ValidationDirective::Strict),
        ..PatchParams::apply(MANAGER).force()
    };
    let err = api_error(
        vs.patch("odd", &strict, &Patch::Apply(&odd))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 400);
    assert!(
        err.message.starts_with(
            "VirtualService in version \"v1\" cannot be handled as a VirtualService: strict decoding error:"
        ),
        "{}",
        err.message
    );
    for field in [
        "spec.bogus",
        "spec.http[0].route[0].destination.colour",
        "metadata.nonsense",
    ] {
        assert!(
            err.message.contains(&format!("unknown field \"{field}\"")),
            "{field}: {}",
            err.message
        );
    }

    vs.patch(
        "odd",
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&odd),
    )
    .await
    .unwrap();
    let stored = sim.object("virtualservices", NS, "odd").unwrap();
    assert!(stored["spec"].get("bogus").is_none(), "{stored:#}");
    assert!(
        stored["spec"]["http"][0]["route"][0]["destination"]
            .get("colour")
            .is_none()
    );
    assert!(stored["metadata"].get("nonsense").is_none());
    let managed = serde_json::to_string(&stored["metadata"]["managedFields"]).unwrap();
    assert!(
        !managed.contains("bogus") && !managed.contains("colour"),
        "{managed}"
    );
}

#[tokio::test]
async fn service_ports_are_validated_as_upstream() {
    let sim = Sim::start().await.unwrap();
    let services: Api<Service> = Api::namespaced(sim.client(), NS);
    let pp = PatchParams::apply(MANAGER).force();
    let service = |ports: Value| {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "code-server-x"},
            "spec": {"selector": {"app": "x"}, "ports": ports}})
    };
    let err = api_error(
        services
            .patch(
                "code-server-x",
                &pp,
                &Patch::Apply(service(json!([
                    {"name": "http", "port": 80, "targetPort": 8080},
                    {"name": "http", "port": 81, "targetPort": 8081}
                ]))),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    assert_eq!(
        err.message,
        "Service \"code-server-x\" is invalid: spec.ports[1].name: Duplicate value: \"http\""
    );
    assert_eq!(
        causes(&err),
        [(
            "FieldValueDuplicate".to_string(),
            "spec.ports[1].name".to_string(),
            "Duplicate value: \"http\"".to_string()
        )]
    );

    let err = api_error(
        services
            .patch(
                "code-server-x",
                &pp,
                &Patch::Apply(service(json!([
                    {"port": 80, "targetPort": 8080},
                    {"name": "metrics", "port": 80, "targetPort": 9090}
                ]))),
            )
            .await
            .unwrap_err(),
    );
    let fields: Vec<String> = causes(&err).into_iter().map(|c| c.1).collect();
    assert_eq!(fields, ["spec.ports[0].name", "spec.ports[1]"]);

    let err = api_error(
        services
            .patch(
                "code-server-x",
                &pp,
                &Patch::Apply(service(json!([
                    {"name": "http", "port": 0, "protocol": "ICMP", "targetPort": 8080}
                ]))),
            )
            .await
            .unwrap_err(),
    );
    let fields: Vec<String> = causes(&err).into_iter().map(|c| c.1).collect();
    assert_eq!(fields, ["spec.ports[0].port", "spec.ports[0].protocol"]);

    services
        .patch(
            "code-server-x",
            &pp,
            &Patch::Apply(service(json!([
                {"name": "http", "port": 80, "targetPort": 8080},
                {"name": "metrics", "port": 9090, "targetPort": "metrics"}
            ]))),
        )
        .await
        .unwrap();
}

/// A request with a body in `content_type`, through the kube client.
async fn send(
    sim: &Sim,
    method: &str,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> kube::core::Status {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .body(body)
        .unwrap();
    api_error(sim.client().request::<Value>(req).await.unwrap_err())
}

#[tokio::test]
async fn protobuf_bodies_get_415_on_every_write() {
    let sim = Sim::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(sim.client(), NS);
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "present"}, "data": {"a": "1"}}))
            .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    // NB: the bytes of a protobuf envelope (`k8s\0` and a varint-framed message).
    let proto = b"k8s\x00\x0a\x0c\x0a\x02v1\x12\x09Namespace".to_vec();
    let body_types = "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml";
    for (method, path) in [
        ("POST", "/api/v1/namespaces".to_string()),
        ("POST", format!("/api/v1/namespaces/{NS}/configmaps")),
        ("PUT", format!("/api/v1/namespaces/{NS}/configmaps/present")),
    ] {
        let err = send(
            &sim,
            method,
            &path,
            "application/vnd.kubernetes.protobuf",
            proto.clone(),
        )
        .await;
        assert_eq!(
            (err.code, err.reason.as_str(), err.message.as_str()),
            (415, "UnsupportedMediaType", body_types),
            "{method} {path}"
        );
    }
    let err = send(
        &sim,
        "PATCH",
        &format!("/api/v1/namespaces/{NS}/configmaps/present"),
        "application/vnd.kubernetes.protobuf",
        proto.clone(),
    )
    .await;
    assert_eq!(
        (err.code, err.message.as_str()),
        (
            415,
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml"
        )
    );
    let err = send(
        &sim,
        "PATCH",
        &format!("/apis/networking.istio.io/v1/namespaces/{NS}/virtualservices/x"),
        "application/strategic-merge-patch+json",
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(
        (err.code, err.message.as_str()),
        (
            415,
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
        )
    );
    assert!(sim.object("namespaces", "", "k8s").is_none());
    assert_eq!(
        sim.object("configmaps", NS, "present").unwrap()["data"],
        json!({"a": "1"})
    );
    // YAML bodies are decoded.
    let err = send(
        &sim,
        "POST",
        &format!("/api/v1/namespaces/{NS}/configmaps"),
        "application/yaml",
        b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: present}\n".to_vec(),
    )
    .await;
    assert_eq!(err.code, 409, "decoded, then refused as existing");
}
