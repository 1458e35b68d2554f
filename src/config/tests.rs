//! The configuration's own checks: its clap definition, defaults, error lines and the
//! conversions into the parts' settings.

use std::time::Duration;

use clap::Parser;

use super::*;

fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("codeserver-service").chain(args.iter().copied()))
}

#[test]
fn clap_definition_is_consistent() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
}

#[test]
fn serve_requires_gitea_but_render_does_not() {
    let err = parse(&["serve"]).unwrap_err();
    let line = one_line_error(&err);
    assert!(line.contains("GITEA_URL") && !line.contains('\n'), "{line}");
    let cli = parse(&[
        "render",
        "--user",
        "u",
        "--repo-owner",
        "o",
        "--repo-name",
        "n",
    ])
    .unwrap();
    assert!(matches!(cli.command, Some(Command::Render(_))));
}

#[test]
fn defaults_match_the_specification() {
    let cli = parse(&["--gitea-url", "http://gitea:3000", "--gitea-token", "t"]).unwrap();
    let s = &cli.serve;
    assert_eq!(
        (
            s.port,
            s.metrics_port,
            s.shutdown_timeout,
            s.codeserver_timeout
        ),
        (8082, 9092, 30, 300)
    );
    let i = &s.instance.settings();
    assert_eq!(i.namespace, "codeserver-instances");
    assert_eq!(
        (i.pvc_storage_class.as_str(), i.pvc_size.as_str()),
        ("standard", "10Gi")
    );
    assert_eq!((i.cpu.as_str(), i.memory.as_str()), ("500m", "1Gi"));
    assert_eq!(i.base_domain, "devplatform.local");
    assert_eq!(i.image, "codercom/code-server:latest");
    assert_eq!(
        format!("{i:?}"),
        format!("{:?}", InstanceSettings::default())
    );
}

#[test]
fn secrets_never_show_in_debug_output() {
    let cli = parse(&[
        "--gitea-url",
        "http://g",
        "--gitea-token",
        "tok-123",
        "--jwt-secret",
        "hunter2",
    ])
    .unwrap();
    let shown = format!("{cli:?}");
    assert!(
        !shown.contains("tok-123") && !shown.contains("hunter2"),
        "{shown}"
    );
    assert_eq!(
        cli.serve.jwt_secret.as_ref().map(Secret::expose),
        Some("hunter2")
    );
}

#[test]
fn malformed_values_name_the_variable_the_value_and_the_expectation() {
    let cases: [(&[&str], &str, &str); 4] = [
        (&["--pvc-size", "ten gigs"], "PVC_SIZE", "ten gigs"),
        (&["--cpu=-1"], "CODESERVER_CPU", "-1"),
        (&["--port", "70000"], "PORT", "70000"),
        (
            &["--base-domain", "Not A Domain"],
            "BASE_DOMAIN",
            "Not A Domain",
        ),
    ];
    for (args, var, value) in cases {
        let mut all = vec!["--gitea-url", "http://g", "--gitea-token", "t"];
        all.extend_from_slice(args);
        let line = one_line_error(&parse(&all).unwrap_err());
        assert!(line.contains(var) && line.contains(value), "{line}");
        assert!(!line.contains('\n'));
    }
}

// --- listen addresses, API limits and developer tools ---

#[test]
fn graphiql_and_introspection_are_off_in_production_unless_enabled() {
    let base = ["--gitea-url", "http://g", "--gitea-token", "t"];
    let settings = |extra: &[&str]| {
        let mut all = base.to_vec();
        all.extend_from_slice(extra);
        parse(&all).unwrap().serve.api_settings()
    };
    let development = settings(&[]);
    assert!(development.graphiql && development.introspection);
    let production = settings(&["--environment", "production"]);
    assert!(!production.graphiql && !production.introspection);
    let enabled = settings(&[
        "--environment",
        "production",
        "--graphiql",
        "true",
        "--graphql-introspection",
        "true",
    ]);
    assert!(enabled.graphiql && enabled.introspection);
    let off = settings(&["--graphiql", "false"]);
    assert!(!off.graphiql && off.introspection);
}

#[test]
fn limits_have_their_documented_defaults() {
    let cli = parse(&["--gitea-url", "http://g", "--gitea-token", "t"]).unwrap();
    let api = cli.serve.api_settings();
    assert_eq!(
        (
            api.query.max_size,
            api.query.max_root_fields,
            api.query.max_mutations,
            api.max_requests_per_caller
        ),
        (2_000, 10, 3, 4)
    );
    assert_eq!(api.server.request_timeout, Duration::from_secs(600));
    assert_eq!(api.server.header_read_timeout, Duration::from_secs(10));
    assert_eq!(cli.serve.api.bind_address.to_string(), "0.0.0.0");
    assert!(cli.serve.check().is_ok());
    let line = one_line_error(
        &parse(&[
            "--gitea-url",
            "http://g",
            "--gitea-token",
            "t",
            "--bind-address",
            "all",
        ])
        .unwrap_err(),
    );
    assert!(
        line.contains("BIND_ADDRESS") && line.contains("all"),
        "{line}"
    );
}

#[test]
fn a_short_jwt_secret_is_refused_without_showing_it() {
    let cli = parse(&[
        "--gitea-url",
        "http://g",
        "--gitea-token",
        "t",
        "--jwt-secret",
        "hunter2",
    ])
    .unwrap();
    let error = cli.serve.check().unwrap_err();
    assert_eq!(error, SettingsError::ShortJwtSecret { len: 7 });
    assert!(!error.to_string().contains("hunter2"));
    let empty = parse(&[
        "--gitea-url",
        "http://g",
        "--gitea-token",
        "t",
        "--jwt-secret",
        "",
    ])
    .unwrap();
    assert!(empty.serve.check().is_ok(), "empty means unset");
}

#[test]
fn auth_settings_follow_the_configuration() {
    let cli = Cli::try_parse_from([
        "codeserver-service",
        "--gitea-url",
        "http://gitea:3000",
        "--gitea-token",
        "t",
        "--jwt-issuer",
        "http://keycloak:30080/realms/devplatform",
        "--jwt-audience",
        "",
        "--admin-role",
        "platform-admin",
        "--auth-trust-forwarded",
        "true",
        "--environment",
        "production",
    ])
    .unwrap();
    let settings = cli.serve.auth_settings();
    assert_eq!(
        settings.issuer.as_deref(),
        Some("http://keycloak:30080/realms/devplatform")
    );
    assert_eq!(settings.audience, None, "an empty audience is no audience");
    assert_eq!(settings.jwks_url, crate::auth::DEFAULT_JWKS_URL);
    assert_eq!(settings.admin_role, "platform-admin");
    assert!(settings.trust_forwarded && !settings.insecure_decode);
    assert_eq!(settings.environment, "production");
}

#[test]
fn the_gitea_service_url_wins_over_the_gitea_url() {
    let serve = |extra: &[&str]| {
        let mut args = vec!["--gitea-url", "http://gitea:3000", "--gitea-token", "t"];
        args.extend_from_slice(extra);
        parse(&args).unwrap().serve
    };
    let settings = serve(&[]).gitea_settings().unwrap();
    assert_eq!(settings.base_url, "http://gitea:3000");
    assert_eq!(settings.auth_mode, crate::gitea::AuthMode::Sudo);
    let settings = serve(&["--gitea-service-url", "http://gitea-service:8081"])
        .gitea_settings()
        .unwrap();
    assert_eq!(settings.base_url, "http://gitea-service:8081");
    let forward = serve(&["--gitea-auth-mode", "forward"])
        .gitea_settings()
        .unwrap();
    assert_eq!(forward.auth_mode, crate::gitea::AuthMode::Forward);
}

#[test]
fn idle_and_capacity_flags_become_their_settings() {
    let cli = parse(&[
        "--gitea-url",
        "http://g",
        "--gitea-token",
        "t",
        "--idle-timeout",
        "600",
        "--idle-warning",
        "60",
        "--max-running-instances",
        "7",
    ])
    .unwrap();
    let idle = cli.serve.idle.settings();
    assert_eq!(idle.policy.timeout, Duration::from_secs(600));
    assert_eq!(idle.policy.warning, Duration::from_secs(60));
    assert_eq!(idle.check_interval, Duration::from_secs(60));
    assert_eq!(idle.healthz_url, crate::activity::DEFAULT_HEALTHZ_URL);
    let capacity = cli.serve.capacity.settings();
    assert_eq!(capacity.max_running_instances, 7);
    assert_eq!(
        (
            capacity.max_concurrent_starts,
            capacity.mutations_per_minute
        ),
        (20, 30)
    );
    assert_eq!(
        cli.serve.timeouts().ready,
        Duration::from_secs(300),
        "CODESERVER_TIMEOUT"
    );
}

#[test]
fn listen_addresses_bracket_an_ipv6_host() {
    let cli = parse(&[
        "--gitea-url",
        "http://g",
        "--gitea-token",
        "t",
        "--bind-address",
        "::1",
    ])
    .unwrap();
    assert_eq!(cli.serve.api_addr(), "[::1]:8082");
    assert_eq!(cli.serve.metrics_addr(), "0.0.0.0:9092");
}

#[test]
fn kube_rate_defaults_and_refuses_what_is_not_a_rate() {
    let base = ["--gitea-url", "http://g", "--gitea-token", "t"];
    let cli = parse(&base).unwrap();
    let rate = cli.serve.kube_rate.rate().unwrap();
    assert_eq!((rate.qps(), rate.burst()), (50.0, 100));
    let cli = parse(&[&base[..], &["--kube-qps", "2.5", "--kube-burst", "7"]].concat()).unwrap();
    assert_eq!(
        (cli.serve.kube_rate.qps, cli.serve.kube_rate.burst),
        (2.5, 7)
    );
    for (flag, value) in [
        ("--kube-qps", "0"),
        ("--kube-qps", "-3"),
        ("--kube-qps", "fast"),
        ("--kube-qps", "inf"),
        ("--kube-burst", "0"),
        ("--kube-burst", "-1"),
    ] {
        let err = parse(&[&base[..], &[flag, value]].concat()).unwrap_err();
        let line = one_line_error(&err);
        assert!(line.contains(value) && !line.contains('\n'), "{line}");
    }
}
