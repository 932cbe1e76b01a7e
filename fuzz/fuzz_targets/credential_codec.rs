//! git's credential protocol codec (`Credential::read` / `Credential::write`).
//!
//! Checks: decoding arbitrary bytes never panics; whatever decodes encodes
//! without error (a decoded value can hold no newline, NUL or CR) and
//! decodes back to an equal credential; the encoding is a fixed point; and
//! decoding stops at the first blank line, so trailing input after it
//! changes nothing.
#![no_main]

use keygate::credential::Credential;
use libfuzzer_sys::fuzz_target;

fn encode(credential: &Credential) -> Vec<u8> {
    let mut out = Vec::new();
    credential
        .write(&mut out)
        .expect("a decoded credential must always encode");
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(credential) = Credential::read(data) else {
        return;
    };
    let encoded = encode(&credential);
    assert!(
        !encoded.windows(2).any(|w| w == b"\n\n") && !encoded.starts_with(b"\n"),
        "the encoding must not contain a blank line: {:?}",
        String::from_utf8_lossy(&encoded)
    );
    let again = Credential::read(&encoded[..]).expect("an encoded credential must decode");
    assert_eq!(again, credential, "round trip changed the credential");
    assert_eq!(encode(&again), encoded, "the encoding is not a fixed point");

    // A blank line ends the description: anything after it is ignored.
    let mut framed = encoded.clone();
    framed.extend_from_slice(b"\n");
    framed.extend_from_slice(data);
    let framed = Credential::read(&framed[..]).expect("a framed credential must decode");
    assert_eq!(framed, credential, "input after the blank line leaked in");
});
