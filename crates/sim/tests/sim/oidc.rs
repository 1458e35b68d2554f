//! The token issuer as an OpenID Connect provider: discovery, the login page, the authorization
//! code flow with PKCE (by hand, as the service's client speaks it), and each
//! way Keycloak refuses a request.

use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use codeserver_sim::issuer::{DEFAULT_AUDIENCE, Issuer, OidcClient, TokenSpec};
use serde_json::Value;
use sha2::{Digest, Sha256};
use url::Url;

const CLIENT: &str = "codeserver-web";
/// Characters that must be form-urlencoded in HTTP Basic (RFC 6749 §2.3.1).
const SECRET: &str = "s3cr3t:+/ &é%";
const REDIRECT: &str = "http://127.0.0.1:9/oauth2/callback";
/// RFC 7636 Appendix B: this verifier's S256 challenge is [`CHALLENGE`].
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn http() -> reqwest::Client {
    let _already = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn provider() -> (Issuer, reqwest::Client) {
    let issuer = Issuer::start().await.unwrap();
    issuer.register_client(OidcClient {
        client_id: CLIENT.into(),
        client_secret: SECRET.into(),
        redirect_uris: vec![REDIRECT.into()],
    });
    issuer.set_login_users(vec![
        TokenSpec::new("alice").roles(&["developer"]),
        TokenSpec::new("bob"),
    ]);
    (issuer, http())
}

/// Changes to a request: a parameter and its new value (`None` removes it).
type Changes<'a> = &'a [(&'a str, Option<&'a str>)];

/// The service's authorization request, with `changes` applied.
fn auth_params(changes: Changes<'_>) -> Vec<(String, String)> {
    let mut params: Vec<(String, String)> = [
        ("response_type", "code"),
        ("client_id", CLIENT),
        ("redirect_uri", REDIRECT),
        ("scope", "openid email"),
        ("state", "st-123"),
        ("nonce", "n-456"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    for (name, value) in changes {
        params.retain(|(k, _)| k != name);
        if let Some(value) = value {
            params.push(((*name).to_owned(), (*value).to_owned()));
        }
    }
    params
}

fn encode(params: &[(String, String)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

async fn get_auth(
    issuer: &Issuer,
    http: &reqwest::Client,
    params: &[(String, String)],
) -> reqwest::Response {
    let url = format!("{}?{}", issuer.authorization_url(), encode(params));
    http.get(url).send().await.unwrap()
}

async fn post_form(
    http: &reqwest::Client,
    url: &str,
    params: &[(String, String)],
    authorization: Option<String>,
) -> reqwest::Response {
    let mut request = http
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(params));
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    request.send().await.unwrap()
}

fn location(response: &reqwest::Response) -> Url {
    assert_eq!(response.status(), 302, "expected a redirect");
    let location = response.headers()["location"].to_str().unwrap();
    Url::parse(location).unwrap()
}

fn query(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The form fields of a login page, as a browser would post them (hidden fields only).
fn hidden_fields(html: &str) -> Vec<(String, String)> {
    let attr = |line: &str, name: &str| -> Option<String> {
        let start = line.find(&format!("{name}=\""))? + name.len() + 2;
        let end = start + line[start..].find('"')?;
        Some(
            line[start..end]
                .replace("&quot;", "\"")
                .replace("&#39;", "'")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&"),
        )
    };
    html.lines()
        .filter(|l| l.contains("type=\"hidden\""))
        .map(|l| (attr(l, "name").unwrap(), attr(l, "value").unwrap()))
        .collect()
}

/// Logs `user` in with the authorization request `params` (as the login form posts it).
async fn login(
    issuer: &Issuer,
    http: &reqwest::Client,
    params: &[(String, String)],
    user: &str,
) -> reqwest::Response {
    let mut form = params.to_vec();
    form.push(("username".into(), user.into()));
    post_form(http, &issuer.authorization_url(), &form, None).await
}

/// A fresh code for `user` from the service's usual request.
async fn code_for(issuer: &Issuer, http: &reqwest::Client, user: &str) -> String {
    let response = login(issuer, http, &auth_params(&[]), user).await;
    query(&location(&response), "code").unwrap()
}

/// `Authorization: Basic` with id and secret form-urlencoded first (RFC 6749 §2.3.1).
fn basic(id: &str, secret: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", enc(id), enc(secret)))
    )
}

/// A token request for `code` by the registered client (Basic), with `changes` to the body.
async fn exchange(
    issuer: &Issuer,
    http: &reqwest::Client,
    code: &str,
    changes: &[(&str, Option<&str>)],
) -> (u16, Value) {
    exchange_as(issuer, http, code, changes, Some(basic(CLIENT, SECRET))).await
}

async fn exchange_as(
    issuer: &Issuer,
    http: &reqwest::Client,
    code: &str,
    changes: &[(&str, Option<&str>)],
    authorization: Option<String>,
) -> (u16, Value) {
    let mut params: Vec<(String, String)> = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    for (name, value) in changes {
        params.retain(|(k, _)| k != name);
        if let Some(value) = value {
            params.push(((*name).to_owned(), (*value).to_owned()));
        }
    }
    let response = post_form(http, &issuer.token_url(), &params, authorization).await;
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

fn assert_oauth_error(got: &(u16, Value), status: u16, error: &str, description: &str) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["error"], error, "{}", got.1);
    assert_eq!(got.1["error_description"], description, "{}", got.1);
}

#[tokio::test]
async fn discovery_document_is_complete() {
    let (issuer, http) = provider().await;
    let doc: Value = http
        .get(issuer.discovery_url())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let iss = issuer.issuer_url();
    assert_eq!(doc["issuer"], iss);
    assert_eq!(
        doc["authorization_endpoint"],
        format!("{iss}/protocol/openid-connect/auth")
    );
    assert_eq!(
        doc["token_endpoint"],
        format!("{iss}/protocol/openid-connect/token")
    );
    assert_eq!(
        doc["userinfo_endpoint"],
        format!("{iss}/protocol/openid-connect/userinfo")
    );
    assert_eq!(
        doc["end_session_endpoint"],
        format!("{iss}/protocol/openid-connect/logout")
    );
    assert_eq!(doc["jwks_uri"], issuer.jwks_url());
    assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(
        doc["subject_types_supported"],
        serde_json::json!(["public"])
    );
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        serde_json::json!(["RS256"])
    );
    assert_eq!(
        doc["grant_types_supported"],
        serde_json::json!(["authorization_code"])
    );
    let strings = |v: &Value| -> Vec<String> {
        let mut s: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_owned())
            .collect();
        s.sort();
        s
    };
    assert_eq!(
        strings(&doc["code_challenge_methods_supported"]),
        ["S256", "plain"]
    );
    assert_eq!(
        strings(&doc["token_endpoint_auth_methods_supported"]),
        ["client_secret_basic", "client_secret_post"]
    );
    for scope in ["openid", "profile", "email"] {
        assert!(strings(&doc["scopes_supported"]).contains(&scope.to_owned()));
    }
    for claim in ["sub", "iss", "aud", "preferred_username", "email"] {
        assert!(strings(&doc["claims_supported"]).contains(&claim.to_owned()));
    }

    // The JWKS it names is the issuer's.
    let jwks: Value = http
        .get(doc["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn login_page_lists_each_user_as_a_button() {
    let (issuer, http) = provider().await;
    let response = get_auth(&issuer, &http, &auth_params(&[])).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = response.text().await.unwrap();
    assert!(html.contains(&format!(
        "<form id=\"kc-form-login\" method=\"post\" action=\"{}\">",
        issuer.authorization_url()
    )));
    assert!(html.contains(
        "<button type=\"submit\" name=\"username\" value=\"alice\" id=\"login-alice\">Sign in as alice</button>"
    ));
    assert!(html.contains("id=\"login-bob\""));
    // The hidden fields carry the request unchanged.
    let mut fields = hidden_fields(&html);
    let mut expected = auth_params(&[]);
    fields.sort();
    expected.sort();
    assert_eq!(fields, expected);
    assert_eq!(issuer.authorization_requests(), 1);
    assert_eq!(issuer.logins(), 0);
}

#[tokio::test]
async fn code_flow_with_pkce_issues_verified_tokens() {
    let (issuer, http) = provider().await;
    let page = get_auth(&issuer, &http, &auth_params(&[]))
        .await
        .text()
        .await
        .unwrap();
    let response = login(&issuer, &http, &hidden_fields(&page), "alice").await;
    let back = location(&response);
    assert_eq!(&back.as_str()[..REDIRECT.len()], REDIRECT);
    assert_eq!(query(&back, "state").as_deref(), Some("st-123"));
    assert_eq!(query(&back, "iss"), Some(issuer.issuer_url()));
    assert!(back.as_str().contains(&format!(
        "iss={}",
        url::form_urlencoded::byte_serialize(issuer.issuer_url().as_bytes()).collect::<String>()
    )));
    let session_state = query(&back, "session_state").unwrap();
    let code = query(&back, "code").unwrap();
    assert_eq!(issuer.logins(), 1);

    let mut request = vec![
        ("grant_type".to_owned(), "authorization_code".to_owned()),
        ("code".to_owned(), code),
        ("redirect_uri".to_owned(), REDIRECT.to_owned()),
        ("code_verifier".to_owned(), VERIFIER.to_owned()),
    ];
    request.sort();
    let response = post_form(
        &http,
        &issuer.token_url(),
        &request,
        Some(basic(CLIENT, SECRET)),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["not-before-policy"], 0);
    assert_eq!(body["session_state"], session_state.as_str());
    assert_eq!(body["scope"], "openid email profile");
    assert_eq!(issuer.token_requests(), 1);

    // The access token is what the API accepts: Issuer::mint's, for the default audience.
    let access = issuer
        .verify(body["access_token"].as_str().unwrap())
        .unwrap();
    assert_eq!(access.aud, DEFAULT_AUDIENCE);
    assert_eq!(access.preferred_username, "alice");
    assert_eq!(access.realm_access.roles, ["developer"]);

    // The ID token, checked as a relying party does, and with a plain JWKS-based check.
    let id_token = body["id_token"].as_str().unwrap();
    let claims = issuer.verify_id_token(id_token, CLIENT).unwrap();
    assert_eq!(claims.nonce.as_deref(), Some("n-456"));
    assert_eq!(claims.aud, CLIENT);
    assert_eq!(claims.azp, CLIENT);
    assert_eq!(claims.sub, "sub-alice");
    assert_eq!(claims.preferred_username, "alice");
    assert_eq!(claims.email.as_deref(), Some("alice@devplatform.local"));
    assert!(claims.email_verified);
    assert_eq!(claims.realm_access.roles, ["developer"]);
    assert_eq!(claims.typ, "ID");
    assert_eq!(claims.sid, session_state);
    assert!(claims.exp - claims.iat == 3600);
    assert!(claims.auth_time <= claims.iat);
    let digest = Sha256::digest(body["access_token"].as_str().unwrap().as_bytes());
    assert_eq!(claims.at_hash, URL_SAFE_NO_PAD.encode(&digest[..16]));
    assert!(issuer.verify_id_token(id_token, "another-client").is_err());

    let header = jsonwebtoken::decode_header(id_token).unwrap();
    assert_eq!(header.kid.as_deref(), Some(issuer.current_kid().as_str()));
    let jwks: Value = http
        .get(issuer.jwks_url())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwk = &jwks["keys"][0];
    let key = jsonwebtoken::DecodingKey::from_rsa_components(
        jwk["n"].as_str().unwrap(),
        jwk["e"].as_str().unwrap(),
    )
    .unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[CLIENT]);
    validation.set_issuer(&[issuer.issuer_url()]);
    let raw = jsonwebtoken::decode::<Value>(id_token, &key, &validation)
        .unwrap()
        .claims;
    assert_eq!(raw["nonce"], "n-456");
    assert_eq!(raw["aud"], CLIENT);
}

#[tokio::test]
async fn wrong_or_missing_code_verifier_is_refused() {
    let (issuer, http) = provider().await;
    let code = code_for(&issuer, &http, "alice").await;
    let other = "x".repeat(43);
    let got = exchange(&issuer, &http, &code, &[("code_verifier", Some(&other))]).await;
    assert_oauth_error(
        &got,
        400,
        "invalid_grant",
        "PKCE verification failed: Code mismatch",
    );

    let code = code_for(&issuer, &http, "alice").await;
    let got = exchange(&issuer, &http, &code, &[("code_verifier", None)]).await;
    assert_oauth_error(
        &got,
        400,
        "invalid_grant",
        "PKCE code verifier not specified",
    );

    let code = code_for(&issuer, &http, "alice").await;
    let got = exchange(&issuer, &http, &code, &[("code_verifier", Some("short"))]).await;
    assert_oauth_error(
        &got,
        400,
        "invalid_grant",
        "PKCE verification failed: Invalid code verifier",
    );

    // A request without PKCE cannot present a verifier.
    let params = auth_params(&[("code_challenge", None), ("code_challenge_method", None)]);
    let code = query(
        &location(&login(&issuer, &http, &params, "alice").await),
        "code",
    )
    .unwrap();
    let got = exchange(&issuer, &http, &code, &[]).await;
    assert_oauth_error(
        &got,
        400,
        "invalid_grant",
        "PKCE code verifier specified but challenge not present in authorization",
    );
    assert_eq!(issuer.token_requests(), 4);
}

#[tokio::test]
async fn code_is_single_use() {
    let (issuer, http) = provider().await;
    let code = code_for(&issuer, &http, "alice").await;
    let ok = exchange(&issuer, &http, &code, &[]).await;
    assert_eq!(ok.0, 200, "{}", ok.1);
    let got = exchange(&issuer, &http, &code, &[]).await;
    assert_oauth_error(&got, 400, "invalid_grant", "Code not valid");
    let got = exchange(&issuer, &http, "made-up", &[]).await;
    assert_oauth_error(&got, 400, "invalid_grant", "Code not valid");
    let got = exchange(&issuer, &http, &code, &[("code", None)]).await;
    assert_oauth_error(&got, 400, "invalid_request", "Missing parameter: code");
}

#[tokio::test]
async fn code_exchange_needs_the_same_redirect_uri() {
    let (issuer, http) = provider().await;
    let code = code_for(&issuer, &http, "alice").await;
    let got = exchange(
        &issuer,
        &http,
        &code,
        &[("redirect_uri", Some("http://127.0.0.1:9/other"))],
    )
    .await;
    assert_oauth_error(&got, 400, "invalid_grant", "Incorrect redirect_uri");
    // As in Keycloak, the code was spent by the failed attempt.
    let got = exchange(&issuer, &http, &code, &[]).await;
    assert_oauth_error(&got, 400, "invalid_grant", "Code not valid");
}

#[tokio::test]
async fn expired_code_is_refused() {
    let (issuer, http) = provider().await;
    issuer.set_code_lifetime(std::time::Duration::ZERO);
    let code = code_for(&issuer, &http, "alice").await;
    let got = exchange(&issuer, &http, &code, &[]).await;
    assert_oauth_error(&got, 400, "invalid_grant", "Code is expired");
}

#[tokio::test]
async fn code_of_another_client_is_refused() {
    let (issuer, http) = provider().await;
    issuer.register_client(OidcClient {
        client_id: "other".into(),
        client_secret: "other-secret".into(),
        redirect_uris: vec![REDIRECT.into()],
    });
    let code = code_for(&issuer, &http, "alice").await;
    let got = exchange_as(
        &issuer,
        &http,
        &code,
        &[],
        Some(basic("other", "other-secret")),
    )
    .await;
    assert_oauth_error(
        &got,
        400,
        "invalid_grant",
        "Auth error: Found different client_id in clientSession",
    );
}

#[tokio::test]
async fn wrong_secret_and_unknown_client_are_unauthorized() {
    let (issuer, http) = provider().await;
    let code = code_for(&issuer, &http, "alice").await;
    let got = exchange_as(&issuer, &http, &code, &[], Some(basic(CLIENT, "wrong"))).await;
    assert_oauth_error(
        &got,
        401,
        "unauthorized_client",
        "Invalid client or Invalid client credentials",
    );
    // Basic without the form-urlencoding of RFC 6749 §2.3.1 is a wrong secret too.
    let raw = format!("Basic {}", STANDARD.encode(format!("{CLIENT}:{SECRET}")));
    let got = exchange_as(&issuer, &http, &code, &[], Some(raw)).await;
    assert_eq!(got.0, 401, "{}", got.1);
    let got = exchange_as(&issuer, &http, &code, &[("client_id", Some(CLIENT))], None).await;
    assert_oauth_error(
        &got,
        401,
        "unauthorized_client",
        "Invalid client or Invalid client credentials",
    );
    let got = exchange_as(&issuer, &http, &code, &[], Some(basic("nobody", SECRET))).await;
    assert_oauth_error(
        &got,
        401,
        "invalid_client",
        "Invalid client or Invalid client credentials",
    );
    let got = exchange_as(&issuer, &http, &code, &[], None).await;
    assert_oauth_error(&got, 400, "invalid_client", "Missing client_id parameter");
    // None of these spent the code.
    let ok = exchange(&issuer, &http, &code, &[]).await;
    assert_eq!(ok.0, 200, "{}", ok.1);
}

#[tokio::test]
async fn client_secret_post_and_plain_pkce_are_accepted() {
    let (issuer, http) = provider().await;
    let params = auth_params(&[
        ("code_challenge", Some(VERIFIER)),
        ("code_challenge_method", None),
    ]);
    let code = query(
        &location(&login(&issuer, &http, &params, "bob").await),
        "code",
    )
    .unwrap();
    let got = exchange_as(
        &issuer,
        &http,
        &code,
        &[("client_id", Some(CLIENT)), ("client_secret", Some(SECRET))],
        None,
    )
    .await;
    assert_eq!(got.0, 200, "{}", got.1);
    let claims = issuer
        .verify_id_token(got.1["id_token"].as_str().unwrap(), CLIENT)
        .unwrap();
    assert_eq!(claims.preferred_username, "bob");
}

#[tokio::test]
async fn unknown_client_and_unregistered_redirect_uri_get_error_pages() {
    let (issuer, http) = provider().await;
    let response = get_auth(
        &issuer,
        &http,
        &auth_params(&[("client_id", Some("nobody"))]),
    )
    .await;
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("Client not found."));

    for uri in [
        "http://127.0.0.1:9/oauth2/callback/../evil",
        "http://evil.example/cb",
    ] {
        let response = get_auth(&issuer, &http, &auth_params(&[("redirect_uri", Some(uri))])).await;
        assert_eq!(response.status(), 400, "{uri}");
        assert!(
            response
                .text()
                .await
                .unwrap()
                .contains("Invalid parameter: redirect_uri")
        );
    }
    let response = get_auth(&issuer, &http, &auth_params(&[("redirect_uri", None)])).await;
    assert_eq!(response.status(), 400);
    let response = get_auth(&issuer, &http, &auth_params(&[("client_id", None)])).await;
    assert_eq!(response.status(), 400);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("Missing parameter: client_id")
    );
    assert_eq!(issuer.authorization_requests(), 0);
}

#[tokio::test]
async fn authorization_errors_go_back_to_the_client() {
    let (issuer, http) = provider().await;
    let cases: [(Changes, &str, Option<&str>); 7] = [
        (
            &[("response_type", Some("fancy"))],
            "unsupported_response_type",
            None,
        ),
        (
            &[("response_type", None)],
            "invalid_request",
            Some("Missing parameter: response_type"),
        ),
        (
            &[("scope", Some("email"))],
            "invalid_scope",
            Some("Invalid scopes: email"),
        ),
        (
            &[("scope", Some("openid admin"))],
            "invalid_scope",
            Some("Invalid scopes: openid admin"),
        ),
        (
            &[("code_challenge_method", Some("S512"))],
            "invalid_request",
            Some("Invalid parameter: code_challenge_method"),
        ),
        (
            &[("code_challenge", Some("tooshort"))],
            "invalid_request",
            Some("Invalid parameter: code_challenge"),
        ),
        (&[("prompt", Some("none"))], "login_required", None),
    ];
    for (changes, error, description) in cases {
        let back = location(&get_auth(&issuer, &http, &auth_params(changes)).await);
        assert_eq!(&back.as_str()[..REDIRECT.len()], REDIRECT, "{changes:?}");
        assert_eq!(query(&back, "error").as_deref(), Some(error), "{changes:?}");
        assert_eq!(
            query(&back, "error_description").as_deref(),
            description,
            "{changes:?}"
        );
        assert_eq!(
            query(&back, "state").as_deref(),
            Some("st-123"),
            "{changes:?}"
        );
        assert_eq!(
            query(&back, "iss"),
            Some(issuer.issuer_url()),
            "{changes:?}"
        );
        assert_eq!(query(&back, "code"), None);
    }
    assert_eq!((issuer.authorization_requests(), issuer.logins()), (0, 0));
}

#[tokio::test]
async fn unknown_username_is_refused() {
    let (issuer, http) = provider().await;
    let response = login(&issuer, &http, &auth_params(&[]), "mallory").await;
    assert_eq!(response.status(), 400);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("Invalid username or password.")
    );
    // The login repeats the checks of the request.
    let response = login(
        &issuer,
        &http,
        &auth_params(&[("client_id", Some("nobody"))]),
        "alice",
    )
    .await;
    assert_eq!(response.status(), 400);
    assert_eq!(issuer.logins(), 0);
}

#[tokio::test]
async fn userinfo_answers_for_our_access_tokens() {
    let (issuer, http) = provider().await;
    let code = code_for(&issuer, &http, "alice").await;
    let (_, body) = exchange(&issuer, &http, &code, &[]).await;
    let access = body["access_token"].as_str().unwrap();
    let response = http
        .get(issuer.userinfo_url())
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let info: Value = response.json().await.unwrap();
    assert_eq!(info["sub"], "sub-alice");
    assert_eq!(info["preferred_username"], "alice");
    assert_eq!(info["email"], "alice@devplatform.local");

    let response = http
        .get(issuer.userinfo_url())
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\"")
    );
    let response = http.get(issuer.userinfo_url()).send().await.unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn logout_redirects_only_to_registered_uris() {
    let (issuer, http) = provider().await;
    let home = "http://127.0.0.1:9/";
    issuer.set_post_logout_redirect_uris(CLIENT, vec![home.into()]);
    let logout = |params: &[(&str, &str)]| {
        let url = format!(
            "{}?{}",
            issuer.logout_url(),
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(params)
                .finish()
        );
        http.get(url).send()
    };

    let response = logout(&[]).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("You are logged out")
    );

    let response = logout(&[
        ("client_id", CLIENT),
        ("post_logout_redirect_uri", home),
        ("state", "bye"),
    ])
    .await
    .unwrap();
    let back = location(&response);
    assert_eq!(back.as_str(), format!("{home}?state=bye"));

    // With the ID token as the hint, and to a redirect URI (Keycloak's `+`).
    let code = code_for(&issuer, &http, "alice").await;
    let (_, body) = exchange(&issuer, &http, &code, &[]).await;
    let id_token = body["id_token"].as_str().unwrap();
    let response = logout(&[
        ("id_token_hint", id_token),
        ("post_logout_redirect_uri", REDIRECT),
    ])
    .await
    .unwrap();
    assert_eq!(location(&response).as_str(), REDIRECT);
    assert_eq!(issuer.logouts(), 3);

    let refused: [(&[(&str, &str)], &str); 4] = [
        (
            &[
                ("client_id", CLIENT),
                ("post_logout_redirect_uri", "http://evil.example/"),
            ],
            "Invalid redirect uri",
        ),
        (
            &[("post_logout_redirect_uri", home)],
            "Missing parameter: id_token_hint",
        ),
        (
            &[
                ("id_token_hint", "garbage"),
                ("post_logout_redirect_uri", home),
            ],
            "Invalid parameter: id_token_hint",
        ),
        (
            &[("id_token_hint", id_token), ("client_id", "other")],
            "Invalid parameter: id_token_hint",
        ),
    ];
    for (params, message) in refused {
        let response = logout(params).await.unwrap();
        assert_eq!(response.status(), 400, "{params:?}");
        assert!(
            response.text().await.unwrap().contains(message),
            "{params:?}"
        );
    }
    assert_eq!(issuer.logouts(), 3);
}
