#!/usr/bin/env bash
# Usage: make_oci_image.sh DIR [TEXT]
# Writes a tiny OCI image layout (https://github.com/opencontainers/image-spec,
# image-layout.md) into DIR, tagged `latest`: one gzipped layer holding
# /hello.txt with TEXT, a config, a manifest and index.json. Made from
# nothing, no registry or network: skopeo copies it with `oci:DIR:latest`.
set -euo pipefail
dir="${1:?usage: make_oci_image.sh DIR [TEXT]}"
text="${2:-hello from the keygate test image}"
mkdir -p "$dir/blobs/sha256"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Adds FILE to the blobs; prints its digest (hex) and size.
blob() {
  local digest size
  digest="$(sha256sum "$1" | cut -d' ' -f1)"
  size="$(stat -c %s "$1")"
  cp "$1" "$dir/blobs/sha256/$digest"
  echo "$digest $size"
}

mkdir "$tmp/rootfs"
printf '%s\n' "$text" > "$tmp/rootfs/hello.txt"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$tmp/rootfs" -cf "$tmp/layer.tar" hello.txt
diff_id="$(sha256sum "$tmp/layer.tar" | cut -d' ' -f1)"
gzip -n -c "$tmp/layer.tar" > "$tmp/layer.tar.gz"
read -r layer layer_size < <(blob "$tmp/layer.tar.gz")

cat > "$tmp/config.json" <<JSON
{"architecture":"amd64","os":"linux","config":{"Cmd":["/hello.txt"]},"rootfs":{"type":"layers","diff_ids":["sha256:$diff_id"]}}
JSON
read -r config config_size < <(blob "$tmp/config.json")

cat > "$tmp/manifest.json" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:$config","size":$config_size},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:$layer","size":$layer_size}]}
JSON
read -r manifest manifest_size < <(blob "$tmp/manifest.json")

printf '{"imageLayoutVersion":"1.0.0"}\n' > "$dir/oci-layout"
cat > "$dir/index.json" <<JSON
{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:$manifest","size":$manifest_size,"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}
JSON
