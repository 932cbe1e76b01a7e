//! Bakes into keygate the OAuth clients a packager registered: the file
//! `KEYGATE_CLIENTS_FILE` names (install.sh's `--clients FILE` sets it),
//! in git config syntax, one `[keygate "URL"]` section per server with
//! its `clientId` and, where the forge wants one, the `clientSecret` its
//! app treats as public. Without the variable nothing is baked in.
//! docs/packaging.md says more; src/config/baked.rs reads the result.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;
use std::process::exit;

// Shared with the library, whose unit tests cover it.
#[path = "src/config/baked_file.rs"]
mod baked_file;

use baked_file::parse;

fn main() {
    println!("cargo:rerun-if-env-changed=KEYGATE_CLIENTS_FILE");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/config/baked_file.rs");
    let entries = match env::var_os("KEYGATE_CLIENTS_FILE").filter(|v| !v.is_empty()) {
        None => Vec::new(),
        Some(path) => {
            let path = PathBuf::from(path);
            println!("cargo:rerun-if-changed={}", path.display());
            let text = fs::read_to_string(&path).unwrap_or_else(|error| {
                fail(&format!("KEYGATE_CLIENTS_FILE={}: {error}", path.display()))
            });
            parse(&text)
                .unwrap_or_else(|(line, why)| fail(&format!("{}:{line}: {why}", path.display())))
        }
    };
    let mut code = String::from(
        "// Written by build.rs from KEYGATE_CLIENTS_FILE.\nconst BAKED: &[Baked] = &[\n",
    );
    for entry in &entries {
        let _ = writeln!(
            code,
            "    Baked {{ url: {:?}, client_id: {:?}, client_secret: {:?} }},",
            entry.url,
            entry.client_id.as_deref().unwrap_or_default(),
            entry.client_secret.as_deref()
        );
    }
    code.push_str("];\n");
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_else(|| fail("cargo set no OUT_DIR")));
    if let Err(error) = fs::write(out.join("baked_clients.rs"), code) {
        fail(&format!("cannot write baked_clients.rs: {error}"));
    }
}

fn fail(message: &str) -> ! {
    eprintln!("keygate build: {message}");
    exit(1)
}
