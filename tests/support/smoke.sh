#!/usr/bin/env bash
# End-to-end demonstration of the test-support servers (no keygate involved):
#   oidc server + git server, scripted browser through a PKCE S256 code flow,
#   code redemption, refresh-token rotation, git clone with the access token,
#   client_credentials clone, /__test/revoke-all, device flow, cleanup.
# Usage: tests/support/smoke.sh   (exits 0 on success; KEEP=1 keeps the tmp dir)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
T="$(mktemp -d "${TMPDIR:-/tmp}/keygate-smoke.XXXXXX")"
PIDS=()
cleanup() {
  local rc=$?
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [[ $rc -ne 0 ]]; then
    echo "---- oidc stderr (tail)" >&2; tail -20 "$T/oidc.err" >&2 || true
    echo "---- git stderr (tail)" >&2; tail -20 "$T/git.err" >&2 || true
    echo "smoke: FAILED (rc=$rc), files in $T" >&2
  elif [[ -z "${KEEP:-}" ]]; then
    rm -rf "$T"
  fi
  exit $rc
}
trap cleanup EXIT
step() { printf '\n== %s\n' "$*"; }
fail() { echo "smoke: FAIL: $*" >&2; exit 1; }
json() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(d'"$1"')'; }

# Our own trust settings, overriding whatever the machine exports.
export SSL_CERT_FILE="$T/ca.pem" CURL_CA_BUNDLE="$T/ca.pem" GIT_SSL_CAINFO="$T/ca.pem" \
  NODE_EXTRA_CA_CERTS="$T/ca.pem" KEYGATE_TEST_CA="$T/ca.pem"
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null GIT_TERMINAL_PROMPT=0
unset GIT_ASKPASS SSH_ASKPASS || true
export no_proxy='*' NO_PROXY='*'

# Wait for a process to print its first stdout line into FILE.
wait_line() {
  local file=$1 pid=$2
  for _ in $(seq 1 100); do
    [[ -s "$file" ]] && grep -q '}' "$file" && return 0
    kill -0 "$pid" 2>/dev/null || fail "process $pid died (see $file / stderr)"
    sleep 0.1
  done
  fail "timeout waiting for $file"
}

step "certs"
"$HERE/mkcerts.sh" "$T"
openssl verify -CAfile "$T/ca.pem" "$T/server.pem"

step "oidc server"
if [[ ! -d "$HERE/oidc/node_modules/oidc-provider" ]]; then
  (cd "$HERE/oidc" && npm ci --no-audit --no-fund >&2)
fi
ACCESS_TOKEN_TTL=30 node "$HERE/oidc/server.mjs" --dir "$T" >"$T/oidc.out" 2>"$T/oidc.err" &
PIDS+=($!); wait_line "$T/oidc.out" $!
cat "$T/oidc.out"
[[ $(wc -l <"$T/oidc.out") -eq 1 ]] || fail "oidc stdout is not exactly one line"
ISSUER=$(json '["issuer"]' <"$T/oidc.out")
TOKEN_EP=$(json '["token_endpoint"]' <"$T/oidc.out")
INTROSPECT=$(json '["introspection_endpoint"]' <"$T/oidc.out")
DEVICE_EP=$(json '["device_authorization_endpoint"]' <"$T/oidc.out")

step "git server + repo"
"$HERE/make_repo.sh" "$T/repos" demo
python3 "$HERE/git_server.py" --root "$T/repos" --dir "$T" --introspect "$INTROSPECT" >"$T/git.out" 2>"$T/git.err" &
PIDS+=($!); wait_line "$T/git.out" $!
cat "$T/git.out"
GIT_URL=$(json '["url"]' <"$T/git.out")
code=$(curl -s -o /dev/null -w '%{http_code}' "$GIT_URL/demo.git/info/refs?service=git-upload-pack")
[[ $code == 401 ]] || fail "unauthenticated request got $code"
curl -s -D - -o /dev/null "$GIT_URL/demo.git/info/refs?service=git-upload-pack" | grep -i '^www-authenticate'

step "authorization code flow with PKCE S256 via browser.py"
python3 - "$ISSUER" "$HERE/browser.py" "$T/flow.json" <<'PY'
import base64, hashlib, http.server, json, os, secrets, subprocess, sys, threading, urllib.parse
issuer, browser, out = sys.argv[1:4]
verifier = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
state = secrets.token_urlsafe(16)
got = {}
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        got.update(urllib.parse.parse_qsl(u.query)); got["_path"] = u.path
        self.send_response(200); self.send_header("Content-Length", "3"); self.end_headers(); self.wfile.write(b"ok\n")
    def log_message(self, *a): pass
srv = http.server.HTTPServer(("127.0.0.1", 0), H)
threading.Thread(target=srv.serve_forever, daemon=True).start()
redirect = "http://127.0.0.1:%d/callback" % srv.server_address[1]
url = issuer + "/auth?" + urllib.parse.urlencode(dict(
    client_id="keygate-test", response_type="code", redirect_uri=redirect, scope="git",
    code_challenge=challenge, code_challenge_method="S256", state=state))
rc = subprocess.run([sys.executable, browser, url]).returncode
srv.shutdown()
assert rc == 0, "browser.py exit %d" % rc
assert got.get("_path") == "/callback", got
assert got.get("state") == state, "state mismatch"
assert "code" in got, got
json.dump({"code": got["code"], "verifier": verifier, "redirect_uri": redirect}, open(out, "w"))
print("got code on", redirect)
PY
CODE=$(json '["code"]' <"$T/flow.json"); VERIFIER=$(json '["verifier"]' <"$T/flow.json")
REDIRECT=$(json '["redirect_uri"]' <"$T/flow.json")

step "redeem code"
curl -s "$TOKEN_EP" -d grant_type=authorization_code -d client_id=keygate-test \
  --data-urlencode "code=$CODE" --data-urlencode "code_verifier=$VERIFIER" \
  --data-urlencode "redirect_uri=$REDIRECT" >"$T/tok1.json"
AT1=$(json '["access_token"]' <"$T/tok1.json"); RT1=$(json '["refresh_token"]' <"$T/tok1.json")
json '["expires_in"]' <"$T/tok1.json" | grep -qx 30 || fail "expires_in != ACCESS_TOKEN_TTL"
tail -1 "$T/events.jsonl" | grep -q '"grant_type":"authorization_code"' || fail "token event missing"
echo "access + refresh token issued (expires_in=30)"

step "refresh rotates"
curl -s "$TOKEN_EP" -d grant_type=refresh_token -d client_id=keygate-test --data-urlencode "refresh_token=$RT1" >"$T/tok2.json"
AT2=$(json '["access_token"]' <"$T/tok2.json"); RT2=$(json '["refresh_token"]' <"$T/tok2.json")
[[ "$RT2" != "$RT1" ]] || fail "refresh token did not rotate"
echo "new refresh token issued"

step "clone with Bearer access token"
git -c http.extraHeader="Authorization: Bearer $AT2" clone -q "$GIT_URL/demo.git" "$T/clone1"
test -f "$T/clone1/README.md"
tail -1 "$T/git-requests.jsonl"

step "push with Basic user:token via a credential helper"
git -C "$T/clone1" -c user.name=t -c user.email=t@example.invalid commit -q --allow-empty -m pushed
git -C "$T/clone1" -c credential.helper= -c credential.helper="!f(){ echo username=alice; echo password=$AT2; }; f" push -q origin main
git -C "$T/repos/demo.git" log --oneline -1 main | grep -q pushed || fail "push not received"
echo "push ok"

step "code replay is rejected"
curl -s "$TOKEN_EP" -d grant_type=authorization_code -d client_id=keygate-test \
  --data-urlencode "code=$CODE" --data-urlencode "code_verifier=$VERIFIER" \
  --data-urlencode "redirect_uri=$REDIRECT" | grep -q invalid_grant || fail "code replay not rejected"
echo "ok (note: a code replay revokes the grant: RT2/AT2 are dead now)"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $AT2" "$GIT_URL/demo.git/info/refs?service=git-upload-pack")
[[ $code == 401 ]] || fail "AT2 still accepted after code replay ($code)"

step "old refresh token is single-use (reuse -> invalid_grant)"
curl -s "$TOKEN_EP" -d grant_type=refresh_token -d client_id=keygate-test --data-urlencode "refresh_token=$RT1" | tee "$T/reuse.json"; echo
grep -q invalid_grant "$T/reuse.json" || fail "reused refresh token accepted"
tail -1 "$T/events.jsonl" | grep -q '"status":400' || fail "event missing status 400"

step "client_credentials (keygate-ci, basic + keygate-ci-post, post) and clone"
curl -s -u keygate-ci:ci-secret-do-not-leak "$TOKEN_EP" -d grant_type=client_credentials >"$T/cc.json"
CC=$(json '["access_token"]' <"$T/cc.json")
curl -s "$TOKEN_EP" -d grant_type=client_credentials -d client_id=keygate-ci-post -d client_secret=ci-secret-do-not-leak | grep -q access_token || fail "client_secret_post"
git -c http.extraHeader="Authorization: Bearer $CC" clone -q "$GIT_URL/demo.git" "$T/clone2"
test -f "$T/clone2/README.md"; echo "clone with client_credentials token ok"

step "fresh code flow for the revoke test (custom scheme redirect + scheme handler)"
cat >"$T/handler.sh" <<'SH'
#!/bin/sh
printf '%s\n' "$1" > "$(dirname "$0")/scheme-url.txt"
SH
chmod +x "$T/handler.sh"
python3 - "$ISSUER" >"$T/pkce.json" <<'PY'
import base64, hashlib, json, secrets, sys, urllib.parse
v = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
c = base64.urlsafe_b64encode(hashlib.sha256(v.encode()).digest()).rstrip(b"=").decode()
url = sys.argv[1] + "/auth?" + urllib.parse.urlencode(dict(client_id="keygate-test", response_type="code",
    redirect_uri="com.example.keygate:/callback", code_challenge=c, code_challenge_method="S256", state="s1"))
print(json.dumps({"verifier": v, "url": url}))
PY
KEYGATE_TEST_SCHEME_HANDLER="$T/handler.sh" KEYGATE_TEST_BROWSER_LOG="$T/browser.jsonl" \
  python3 "$HERE/browser.py" "$(json '["url"]' <"$T/pkce.json")"
CODE3=$(python3 -c 'import sys,urllib.parse; print(dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(open(sys.argv[1]).read().strip()).query))["code"])' "$T/scheme-url.txt")
curl -s "$TOKEN_EP" -d grant_type=authorization_code -d client_id=keygate-test \
  --data-urlencode "code=$CODE3" --data-urlencode "code_verifier=$(json '["verifier"]' <"$T/pkce.json")" \
  --data-urlencode "redirect_uri=com.example.keygate:/callback" >"$T/tok3.json"
RT3=$(json '["refresh_token"]' <"$T/tok3.json"); AT3=$(json '["access_token"]' <"$T/tok3.json")
[[ $(wc -l <"$T/browser.jsonl") -eq 1 ]] || fail "browser log"
echo "custom-scheme flow ok"

step "revoke-all, then refresh fails and git rejects the access tokens"
curl -s -X POST "$ISSUER/__test/revoke-all"; echo
curl -s "$TOKEN_EP" -d grant_type=refresh_token -d client_id=keygate-test --data-urlencode "refresh_token=$RT3" | tee "$T/after.json"; echo
grep -q invalid_grant "$T/after.json" || fail "refresh after revoke-all did not fail"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $AT3" "$GIT_URL/demo.git/info/refs?service=git-upload-pack")
[[ $code == 401 ]] || fail "revoked access token got $code from git server"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $CC" "$GIT_URL/demo.git/info/refs?service=git-upload-pack")
[[ $code == 401 ]] || fail "revoked client_credentials token got $code from git server"
echo "revoked tokens rejected"

step "device flow approved with /__test/approve-device"
curl -s "$DEVICE_EP" -d client_id=keygate-test >"$T/dev.json"
DC=$(json '["device_code"]' <"$T/dev.json"); UC=$(json '["user_code"]' <"$T/dev.json")
curl -s "$TOKEN_EP" -d client_id=keygate-test -d grant_type=urn:ietf:params:oauth:grant-type:device_code -d "device_code=$DC" | grep -q authorization_pending || fail "not pending"
curl -s -X POST "$ISSUER/__test/approve-device" -d "user_code=$UC"; echo
curl -s "$TOKEN_EP" -d client_id=keygate-test -d grant_type=urn:ietf:params:oauth:grant-type:device_code -d "device_code=$DC" >"$T/dtok.json"
DAT=$(json '["access_token"]' <"$T/dtok.json"); json '["refresh_token"]' <"$T/dtok.json" >/dev/null
git -c http.extraHeader="Authorization: Bearer $DAT" ls-remote "$GIT_URL/demo.git" main

step "event log (never contains token values)"
cat "$T/events.jsonl" | cut -c1-160
for tok in "$AT1" "$RT1" "$AT2" "$RT2" "$CC" "$RT3" "$DAT"; do
  if grep -qF -- "$tok" "$T/events.jsonl" "$T/git-requests.jsonl"; then fail "token value leaked into a log"; fi
done

echo; echo "smoke: OK"
