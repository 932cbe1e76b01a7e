#!/usr/bin/env bash
# Usage: make_repo.sh ROOT NAME
# Creates the bare repository ROOT/NAME.git with one commit (README.md) on
# branch main, HEAD -> main, and http.receivepack=true so pushes over
# git_server.py work. Fails if ROOT/NAME.git already exists.
set -euo pipefail
root="${1:?usage: make_repo.sh ROOT NAME}"
name="${2:?usage: make_repo.sh ROOT NAME}"
mkdir -p "$root"
root="$(cd "$root" && pwd)"
bare="$root/$name.git"
if [[ -e "$bare" ]]; then
  echo "make_repo.sh: $bare already exists" >&2
  exit 1
fi
# Isolate from the user's/machine's git config.
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
export GIT_AUTHOR_NAME="keygate test" GIT_AUTHOR_EMAIL="test@example.invalid"
export GIT_COMMITTER_NAME="keygate test" GIT_COMMITTER_EMAIL="test@example.invalid"
export GIT_AUTHOR_DATE="2024-01-01T00:00:00Z" GIT_COMMITTER_DATE="2024-01-01T00:00:00Z"

git init -q --bare --initial-branch=main "$bare"
git -C "$bare" config http.receivepack true
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
git init -q --initial-branch=main "$work"
printf '# %s\n\ntest repository for keygate\n' "$name" > "$work/README.md"
git -C "$work" add README.md
git -C "$work" commit -q -m "initial commit"
git -C "$work" push -q "$bare" main:main
