//! Names keygate resolves itself (the release binary is a static PIE that
//! never calls getaddrinfo): a refresh against an OAuth server reached by
//! a name, not an IP literal.

use crate::common::{Options, World, credential_field, ok};

#[test]
fn refresh_reaches_the_token_endpoint_by_host_name() {
    let world = World::start(Options::default());
    // The token endpoint by name (the test certificate covers localhost);
    // the browser still goes to the authorization endpoint by IP.
    let token_url = world.oidc["token_endpoint"].as_str().unwrap();
    let by_name = token_url.replacen("https://127.0.0.1:", "https://localhost:", 1);
    assert_ne!(by_name, token_url, "the test server's issuer is 127.0.0.1");
    let config = std::fs::read_to_string(world.gitconfig_path()).unwrap();
    let config = config.replace(
        &format!("tokenUrl = {token_url}"),
        &format!("tokenUrl = {by_name}"),
    );
    assert!(config.contains(&by_name));
    std::fs::write(world.gitconfig_path(), config).unwrap();

    ok(&world.keygate(&["login", &world.repo_url()]));
    assert_eq!(world.token_requests("authorization_code"), 1);
    let old_token = world.stored_account()["access_token"].clone();
    world.expire_stored_token();

    let output = world.credential_fill();
    ok(&output);
    assert_eq!(world.token_requests("refresh_token"), 1, "one refresh");
    assert_eq!(world.browser_launches().len(), 1, "no second login");
    let password = credential_field(&output, "password").expect("a password");
    assert_ne!(serde_json::Value::from(password.as_str()), old_token);
    assert_eq!(world.stored_account()["access_token"], password.as_str());
    ok(&world.git(&["ls-remote", &world.repo_url()]));
}
