"""Cargo sparse registries served by git_server.py, on the git server's
origin (so git and cargo share one keygate account, as on GitLab or Gitea).

Two registries, both with `"auth-required": true` in their config.json and
every route (config, index files, downloads, publish) refusing a request
without a valid token:

    /cargo/index/   tokens the OAuth server's introspection says are active
                    (git_server.py checks them, as for git); serves the
                    crate `keygate-hello` 0.1.0 and takes `cargo publish`
                    (PUT /cargo/api/v1/crates/new) into its index
    /static/index/  only the fixed token STATIC_TOKEN, sent raw, as
                    cargo's own `cargo:token` provider sends it: the
                    registry keygate is not configured for (tests name it
                    through `localhost` rather than 127.0.0.1)

And files a user of the forge put on it (as GitLab's `/-/raw/` serves a
repository's files), open to anyone, under the origin keygate serves:

    /uploads/index/ an index someone else wrote, whose config.json says
                    `auth-required` and sends downloads to another host
                    (`localhost`, standing for the uploader's); each
                    request is logged with the token it carried, if any

A test holds one request to make time pass in the middle of a cargo run:
it writes a path prefix (after the registry's, e.g. `index/ke/`) to
DIR/cargo-hold; the first request under it is logged as `held` and waits
(up to a minute) until DIR/cargo-release exists.

Index entries, download URLs and the API URL are built from the request's
Host, so either name of the server works. `.crate` files are gzipped tars
made here, deterministically; an index line's `cksum` is the SHA-256 of the
file served. Python stdlib only.
"""

import gzip
import hashlib
import io
import json
import os
import struct
import tarfile
import threading
import time

STATIC_TOKEN = "static-registry-token"

LIB_RS = {
    "keygate-hello": 'pub fn greet() -> &\'static str {\n    "hello from the keygate registry"\n}\n',
    "static-hello": 'pub fn greet() -> &\'static str {\n    "hello from the static registry"\n}\n',
    "uploads-hello": 'pub fn greet() -> &\'static str {\n    "hello from somebody\'s uploads"\n}\n',
}


def crate_file(name, version, lib_rs):
    """A .crate: NAME-VERSION/{Cargo.toml,src/lib.rs}, gzipped, stable bytes."""
    manifest = (
        '[package]\nname = "%s"\nversion = "%s"\nedition = "2021"\n'
        'description = "keygate test crate"\nlicense = "MIT"\n\n[lib]\npath = "src/lib.rs"\n'
    ) % (name, version)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for path, text in (("Cargo.toml", manifest), ("src/lib.rs", lib_rs)):
            data = text.encode()
            info = tarfile.TarInfo("%s-%s/%s" % (name, version, path))
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 1704067200
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def index_path(name):
    """The sparse index file of a crate, per cargo's layout."""
    name = name.lower()
    if len(name) <= 2:
        return "%d/%s" % (len(name), name)
    if len(name) == 3:
        return "3/%s/%s" % (name[0], name)
    return "%s/%s/%s" % (name[:2], name[2:4], name)


class Registry:
    """One registry: its crates (name -> {version: bytes}) and index lines."""

    def __init__(self, prefix, crates, dl_host=None):
        self.prefix = prefix
        # Where config.json sends downloads, when not the request's Host.
        self.dl_host = dl_host
        self.lock = threading.Lock()
        self.files = {}
        self.lines = {}
        for name, version in crates:
            self.add(name, version, crate_file(name, version, LIB_RS[name]), [], {})

    def add(self, name, version, data, deps, features):
        entry = {
            "name": name,
            "vers": version,
            "deps": deps,
            "cksum": hashlib.sha256(data).hexdigest(),
            "features": features,
            "yanked": False,
        }
        with self.lock:
            self.files[(name, version)] = data
            self.lines.setdefault(name.lower(), []).append(json.dumps(entry))

    def config(self, base, port):
        dl_base = "https://%s:%d" % (self.dl_host, port) if self.dl_host else base
        return {
            "dl": "%s/%s/dl/{crate}/{version}/download" % (dl_base, self.prefix),
            "api": "%s/%s" % (base, self.prefix),
            "auth-required": True,
        }

    def index_file(self, rel):
        with self.lock:
            for name, lines in self.lines.items():
                if index_path(name) == rel:
                    return ("\n".join(lines) + "\n").encode()
        return None

    def download(self, name, version):
        with self.lock:
            return self.files.get((name, version))

    def publish(self, body):
        """Takes a `cargo publish` body (registry web API); returns the crate name and version."""
        (json_len,) = struct.unpack_from("<I", body, 0)
        meta = json.loads(body[4 : 4 + json_len].decode())
        (crate_len,) = struct.unpack_from("<I", body, 4 + json_len)
        start = 8 + json_len
        data = body[start : start + crate_len]
        if len(data) != crate_len:
            raise ValueError("short crate file")
        deps = []
        for dep in meta.get("deps", []):
            renamed = dep.get("explicit_name_in_toml")
            entry = {
                "name": renamed or dep["name"],
                "req": dep["version_req"],
                "features": dep.get("features", []),
                "optional": dep.get("optional", False),
                "default_features": dep.get("default_features", True),
                "target": dep.get("target"),
                "kind": dep.get("kind", "normal"),
                "registry": dep.get("registry"),
            }
            if renamed:
                entry["package"] = dep["name"]
            deps.append(entry)
        self.add(meta["name"], meta["vers"], data, deps, meta.get("features", {}))
        return meta["name"], meta["vers"]


REGISTRIES = {
    "cargo": Registry("cargo", [("keygate-hello", "0.1.0")]),
    "static": Registry("static", [("static-hello", "0.1.0")]),
    "uploads": Registry("uploads", [("uploads-hello", "0.1.0")], dl_host="localhost"),
}


def hold_if_asked(cert_dir, rest, note_held):
    """Holds the first request under the prefix in DIR/cargo-hold until DIR/cargo-release exists."""
    hold = os.path.join(cert_dir, "cargo-hold")
    taken = hold + ".taken"
    try:
        with open(hold) as f:
            prefix = f.read().strip()
        if not rest.startswith(prefix):
            return
        # One request only: whoever renames the file holds.
        os.rename(hold, taken)
    except OSError:
        return
    note_held()
    deadline = time.monotonic() + 60
    while not os.path.exists(os.path.join(cert_dir, "cargo-release")) and time.monotonic() < deadline:
        time.sleep(0.05)


def which(path):
    """The registry a path belongs to and the rest of it, or (None, None)."""
    for prefix, registry in REGISTRIES.items():
        if path.startswith("/%s/" % prefix):
            return registry, path[len(prefix) + 2 :]
    return None, None


def handle(handler, registry, rest, body, kind, extra):
    """Answers an authenticated request for `registry` (`rest`: the path
    after its prefix) through git_server.py's handler."""
    host = handler.headers.get("Host") or "127.0.0.1:%d" % handler.server.server_address[1]
    base = "https://" + host
    extra["registry"] = registry.prefix
    if handler.command == "GET" and rest == "index/config.json":
        handler.send_json(200, registry.config(base, handler.server.server_address[1]), kind, extra)
    elif handler.command == "GET" and rest.startswith("index/"):
        data = registry.index_file(rest[len("index/") :])
        if data is None:
            extra["reason"] = "no such crate"
            handler.send_bytes(404, b"not found\n", "text/plain", kind, extra)
        else:
            handler.send_bytes(200, data, "text/plain", kind, extra)
    elif handler.command == "GET" and rest.startswith("dl/") and rest.endswith("/download"):
        parts = rest.split("/")
        data = registry.download(parts[1], parts[2]) if len(parts) == 4 else None
        if data is None:
            handler.send_bytes(404, b"not found\n", "text/plain", kind, extra)
        else:
            extra["download"] = "%s-%s" % (parts[1], parts[2])
            handler.send_bytes(200, data, "application/x-tar", kind, extra)
    elif handler.command == "PUT" and rest == "api/v1/crates/new":
        try:
            name, version = registry.publish(body)
        except Exception as e:
            extra["reason"] = "bad publish body: %s" % e
            handler.send_json(400, {"errors": [{"detail": extra["reason"]}]}, kind, extra)
            return
        extra["published"] = "%s-%s" % (name, version)
        warnings = {"invalid_categories": [], "invalid_badges": [], "other": []}
        handler.send_json(200, {"warnings": warnings}, kind, extra)
    else:
        extra["reason"] = "not found"
        handler.send_bytes(404, b"not found\n", "text/plain", kind, extra)
