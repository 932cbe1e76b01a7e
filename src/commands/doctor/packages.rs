//! `keygate doctor <url>`'s lines for the package managers that ask
//! keygate in protocols of their own: whether the container tools' auth
//! files send the URL's registry to `docker-credential-keygate`, and
//! whether cargo's registries on the URL's server name keygate as their
//! provider. A line only where such a client is set up for the URL's
//! server: most URLs are no registry.

use std::path::Path;

use url::Url;

use super::Check;
use crate::commands::{cargo, docker};
use crate::config::{self, GitConfig, Provider};

const DOCKER: &str = "docker";
const CARGO: &str = "cargo";

pub(super) fn checks(config: &GitConfig, url: &Url) -> Vec<Check> {
    let mut checks = Vec::new();
    checks.extend(docker_check(url));
    checks.extend(cargo_checks(config, url));
    checks
}

/// The `credHelpers` entries for the URL's registry host, in the files
/// podman, skopeo and Docker read.
fn docker_check(url: &Url) -> Option<Check> {
    let host = crate::docker_credential::registry_host(url);
    let entries = docker::helper_entries(&host);
    let (path, other) = match entries.iter().find(|(_, helper)| helper != docker::HELPER) {
        Some((path, helper)) => (path, Some(helper)),
        None => (&entries.first()?.0, None),
    };
    let setup = format!("keygate setup docker {host}");
    Some(match other {
        Some(helper) => Check::warn(
            DOCKER,
            format!(
                "{}: credHelpers[{host}] is {helper:?}: container clients ask docker-credential-{helper}, not keygate",
                path.display()
            ),
            setup,
        ),
        None if !docker::on_path(docker::PROGRAM) => Check::fail(
            DOCKER,
            format!(
                "credHelpers[{host}] is keygate, but {} is not on PATH",
                docker::PROGRAM
            ),
            "run install.sh, which links it beside keygate",
        ),
        None => Check::ok(
            DOCKER,
            format!(
                "credHelpers[{host}] is keygate in {}",
                entries
                    .iter()
                    .map(|(path, _)| path.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
    })
}

/// One line per registry in cargo's configuration whose index is on the
/// URL's server and which keygate serves.
fn cargo_checks(config: &GitConfig, url: &Url) -> Vec<Check> {
    let Some(found) = cargo::configured_registries() else {
        return Vec::new();
    };
    let origin = config::origin_of(url);
    let file = found.file.display();
    found
        .registries
        .iter()
        .filter(|registry| {
            registry.url.as_ref().is_some_and(|index| {
                config::origin_of(index) == origin
                    && matches!(Provider::resolve(config, index), Ok(Some(_)))
            })
        })
        .map(|registry| {
            let name = &registry.name;
            let setup = format!("keygate setup cargo {} --name {name}", registry.index);
            match &registry.program {
                Some(program) if !cargo::names_keygate(program) => Check::warn(
                    CARGO,
                    format!(
                        "registry {name} in {file}: credential-provider {program:?}: cargo never asks keygate"
                    ),
                    setup,
                ),
                Some(program) if Path::new(program).is_absolute() && !Path::new(program).is_file() => {
                    Check::fail(
                        CARGO,
                        format!("registry {name} in {file}: cargo would run {program}, which is not there"),
                        setup,
                    )
                }
                Some(program) => Check::ok(CARGO, format!("registry {name} in {file}: cargo asks {program}")),
                None if found.global_names_keygate => Check::ok(
                    CARGO,
                    format!("registry {name} in {file}: cargo asks keygate through global-credential-providers"),
                ),
                None => Check::warn(
                    CARGO,
                    format!(
                        "registry {name} in {file} has no credential-provider: cargo never asks keygate"
                    ),
                    setup,
                ),
            }
        })
        .collect()
}
