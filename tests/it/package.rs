//! The Debian package (contrib/deb/build.sh) as installed on this
//! machine. .ci/package builds it from the build .ci/run tested (which
//! has tests/support/package/clients baked in), installs it with
//! `apt-get install ./keygate_*.deb`, runs this module with `--ignored`
//! and `KEYGATE_PACKAGE_TEST=installed`, and purges it afterwards.
//! Anywhere else the test is ignored; asked for without the package, it
//! fails rather than pass having shown nothing.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::common::{Options, World, ok, text};

/// The address tests/support/package/clients bakes a client in for:
/// outside Linux's ephemeral port range, so no other test's server takes it.
const GIT_PORT: u16 = 7443;
const BAKED_CLIENT: &str = "keygate-packaged";
const BAKED_SECRET: &str = "packaged-public-secret";
const KEYGATE: &str = "/usr/bin/keygate";
const HELPER: &str = "/usr/bin/git-credential-keygate";

fn require_installed_package() {
    let asked = std::env::var("KEYGATE_PACKAGE_TEST").unwrap_or_default();
    assert_eq!(
        asked, "installed",
        "KEYGATE_PACKAGE_TEST=installed is set by .ci/package once `apt-get install ./keygate_*.deb` \
         has run; without the package this test would show nothing"
    );
    for program in [KEYGATE, HELPER] {
        let owner = Command::new("dpkg").args(["-S", program]).output().unwrap();
        assert_eq!(text(&owner.stdout).trim(), format!("keygate: {program}"));
    }
}

/// A world in which git knows only the package's programs: keygate is
/// the helper by the package's path, PATH holds nothing of the build's,
/// and the server is configured without a client id.
fn world_with_package() -> World {
    let mut world = World::start_on(Options::default(), &[], GIT_PORT);
    assert_eq!(world.git_url, format!("https://127.0.0.1:{GIT_PORT}"));
    let config = format!(
        "[user]\n\tname = Test\n\temail = test@example.com\n\
         [init]\n\tdefaultBranch = main\n\
         [credential]\n\thelper = {HELPER}\n\
         [keygate \"{git}\"]\n\tauthUrl = {auth}\n\ttokenUrl = {token}\n\
         \tscopes = git\n\tloginTimeout = 20\n\
         [http]\n\tsslCAInfo = {ca}\n",
        git = world.git_url,
        auth = world.oidc["authorization_endpoint"].as_str().unwrap(),
        token = world.oidc["token_endpoint"].as_str().unwrap(),
        ca = world.ca().display(),
    );
    std::fs::write(world.gitconfig_path(), config).unwrap();
    world.set_env("PATH", "/usr/bin:/bin");
    world
}

fn installed_keygate(world: &World, args: &[&str]) -> Output {
    world.command(KEYGATE).args(args).output().unwrap()
}

#[test]
#[ignore = "needs the Debian package installed: .ci/package runs it"]
fn a_clone_through_the_installed_package_needs_no_client_id() {
    require_installed_package();
    let world = world_with_package();
    let config = std::fs::read_to_string(world.gitconfig_path()).unwrap();
    assert!(
        !config.to_ascii_lowercase().contains("clientid"),
        "{config}"
    );

    let clone = world.git(&["clone", &world.repo_url(), "clone"]);
    ok(&clone);
    assert!(world.dir.path().join("clone/README.md").exists());
    // The tokens were issued to the client baked into the package.
    let account = world.stored_account();
    assert_eq!(account["issuer"]["client_id"], BAKED_CLIENT, "{account}");
    assert_eq!(world.token_requests("authorization_code"), 1);

    let status = installed_keygate(&world, &["status", "--json"]);
    ok(&status);
    let accounts: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(accounts[0]["client_id_from"], "baked-in", "{accounts}");
    let human = installed_keygate(&world, &["status"]);
    assert!(
        text(&human.stdout).contains("client id: baked-in"),
        "{}",
        text(&human.stdout)
    );

    let doctor = installed_keygate(&world, &["doctor", &world.repo_url()]);
    let out = text(&doctor.stdout);
    assert!(doctor.status.success(), "{out}");
    assert!(
        out.contains("client id from baked into this build"),
        "{out}"
    );
    assert!(out.contains(&format!("git runs {HELPER}")), "{out}");
    for output in [&clone, &status, &human, &doctor] {
        let all = format!("{}{}", text(&output.stdout), text(&output.stderr));
        assert!(
            !all.contains(BAKED_SECRET),
            "the baked secret was printed:\n{all}"
        );
    }

    // The person's config still wins over what the packager baked in.
    std::fs::write(
        world.gitconfig_path(),
        format!(
            "{config}[keygate \"{}\"]\n\tclientId = keygate-test\n",
            world.git_url
        ),
    )
    .unwrap();
    let status = installed_keygate(&world, &["status", "--json"]);
    let accounts: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(accounts[0]["client_id_from"], "config", "{accounts}");

    // The pages are where man looks, with no MANPATH.
    let man = Command::new("man")
        .args(["-w", "keygate"])
        .env_remove("MANPATH")
        .output()
        .unwrap();
    assert_eq!(text(&man.stdout).trim(), "/usr/share/man/man1/keygate.1.gz");
    assert!(Path::new("/usr/share/bash-completion/completions/keygate").is_file());
}
