#!/usr/bin/env bash
# Benchmarks `keygate proxy` on this machine, in one run: throughput of a
# large HTTPS download (direct, through keygate, through mitmproxy, through
# an nginx TLS relay), added latency per keep-alive request, and resident
# memory idle and with many open connections. See bench/README.md.
#
# Environment knobs:
#   KEYGATE_BIN       use this keygate binary instead of building one
#   CARGO_TARGET_DIR  where to build (default: $HOME/.cache/keygate-target)
#   RUNS              measured downloads per way and origin (default 5, plus 1 warm-up)
#   SIZE              download size in bytes (default 209715200 = 200 MiB)
#   REQUESTS          keep-alive requests per latency series (default 200)
#   LAT_REPS          latency series per way (default 3)
#   CONNS             open connections for the memory figure (default 100)
#   MITM=0            skip mitmproxy
#   KEEP_TMP=1        keep the throwaway directory (processes are stopped anyway)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SUPPORT="$ROOT/tests/support"
RESULTS="$ROOT/bench/results"
RUNS=${RUNS:-5}
SIZE=${SIZE:-209715200}
REQUESTS=${REQUESTS:-200}
LAT_REPS=${LAT_REPS:-3}
CONNS=${CONNS:-100}
MITM=${MITM:-1}
CLIENT_SECRET=ci-secret-do-not-leak

# shellcheck source=bench/common.sh
. "$ROOT/bench/common.sh"

# ---------------------------------------------------------------- tools
for tool in curl python3 node npm git openssl ss; do
  command -v "$tool" >/dev/null || die "$tool is needed and not on PATH"
done
PYTHON=$(command -v python3)
if ! command -v nginx >/dev/null && ! [ -x /usr/sbin/nginx ]; then
  say "installing nginx"
  apt_install nginx || die "nginx is needed (Debian: apt-get install nginx); not root, so not installed"
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
MITM_SKIP=
if [ "$MITM" = 1 ]; then
  if ! command -v mitmdump >/dev/null; then
    say "installing mitmproxy"
    apt_install mitmproxy || MITM_SKIP="mitmproxy is not installed (Debian: apt-get install mitmproxy) and this is not root"
  fi
else
  MITM_SKIP="skipped (MITM=0)"
fi
[ -n "$MITM_SKIP" ] && say "mitmproxy rows: $MITM_SKIP"
if ! [ -d "$SUPPORT/oidc/node_modules" ]; then
  say "npm ci in tests/support/oidc"
  npm ci --prefix "$SUPPORT/oidc" --no-audit --no-fund >/dev/null
fi

# ---------------------------------------------------------------- keygate
find_keygate

# ---------------------------------------------------------------- sandbox
T=$(mktemp -d "${TMPDIR:-/tmp}/keygate-proxy-bench.XXXXXX")
PIDS=()        # long-running servers, stopped in reverse order on exit
CLIENT_PIDS=() # background curls of the memory test
cleanup() {
  local pid i
  for pid in "${CLIENT_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill "${PIDS[i]}" 2>/dev/null || true; done
  for pid in "${CLIENT_PIDS[@]}" "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  remove_tmp
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# nginx workers run as nobody when this runs as root: they must be able to
# reach the served file and their temp dirs (keys are read by the master).
chmod 0711 "$T"
mkdir -p "$T/certs" "$T/repos" "$T/bin" "$T/data" "$T/nginx/www" "$T/nginx/tmp" "$T/mitm"
install -d -m 0700 "$T/home" "$T/run" "$T/secret"
NGINX_USER_LINE=
if is_root; then
  chown -R nobody "$T/nginx/tmp"
  chmod 0755 "$T/nginx" "$T/nginx/www"
  NGINX_USER_LINE="user nobody nogroup;"
fi
# Everything started here sees only this environment (nothing like
# SSL_CERT_FILE, CURL_CA_BUNDLE or https_proxy from the caller).
BASE_ENV=(
  HOME="$T/home"
  PATH="$T/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
  LC_ALL=C
  XDG_DATA_HOME="$T/home/.local/share"
  XDG_CONFIG_HOME="$T/home/.config"
  XDG_RUNTIME_DIR="$T/run"
  GIT_CONFIG_NOSYSTEM=1
  GIT_CONFIG_GLOBAL="$T/gitconfig"
  GIT_TERMINAL_PROMPT=0
)
# (Never background `clean ...`: that forks a subshell, and $! would be the
# subshell, not the server. Background processes use `env -i` directly.)
clean() { env -i "${BASE_ENV[@]}" "$@"; }
# node and the pyenv python3 live outside the minimal PATH: link them in.
ln -s "$(command -v node)" "$T/bin/node"
ln -s "$PYTHON" "$T/bin/python3"
ln -s "$KEYGATE_BIN" "$T/bin/keygate"

free_ports() { # free_ports N: N distinct free loopback ports (bound together, then released)
  "$PYTHON" - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}
wait_port() { # wait_port PORT WHAT PID
  local i
  for ((i = 0; i < 200; i++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    kill -0 "$3" 2>/dev/null || die "$2 exited before listening (logs in $T)"
    sleep 0.05
  done
  die "$2 is not listening on $1 after 10 s"
}
wait_line() { # wait_line FILE N WHAT PID: until FILE has N lines
  local i
  for ((i = 0; i < 300; i++)); do
    [ -f "$1" ] && [ "$(wc -l <"$1")" -ge "$2" ] && return 0
    kill -0 "$4" 2>/dev/null || die "$3 exited early (logs in $T)"
    sleep 0.05
  done
  die "$3 printed nothing for 15 s"
}
json_get() { "$PYTHON" -c 'import json, sys; print(json.loads(open(sys.argv[1]).readline())[sys.argv[2]])' "$1" "$2"; }

# ---------------------------------------------------------------- servers
say "starting the OAuth server and the git server"
"$SUPPORT/mkcerts.sh" "$T/certs" >/dev/null
CA="$T/certs/ca.pem"
env -i "${BASE_ENV[@]}" ACCESS_TOKEN_TTL=7200 node "$SUPPORT/oidc/server.mjs" --dir "$T/certs" >"$T/oidc.json" 2>"$T/oidc.log" &
PIDS+=($!)
wait_line "$T/oidc.json" 1 "the OAuth server" "${PIDS[-1]}"
TOKEN_URL=$(json_get "$T/oidc.json" token_endpoint)
INTROSPECT=$(json_get "$T/oidc.json" introspection_endpoint)
clean "$SUPPORT/make_repo.sh" "$T/repos" demo >/dev/null
env -i "${BASE_ENV[@]}" python3 "$SUPPORT/git_server.py" --root "$T/repos" --dir "$T/certs" --introspect "$INTROSPECT" \
  >"$T/git.json" 2>"$T/git.log" &
PIDS+=($!)
wait_line "$T/git.json" 1 "the git server" "${PIDS[-1]}"
GIT_URL=$(json_get "$T/git.json" url)

read -r ORIGIN_PORT RELAY_GIT_PORT RELAY_NGX_PORT MITM_PORT <<<"$(free_ports 4)"
ORIGIN_URL="https://127.0.0.1:$ORIGIN_PORT"

# keygate's configuration, as the tests write it: client_credentials for
# both origins, the secret from the environment, the test CA trusted.
cat >"$T/gitconfig" <<EOF
[keygate "$GIT_URL"]
	clientId = keygate-ci
	grant = client_credentials
	tokenUrl = $TOKEN_URL
[keygate "$ORIGIN_URL"]
	clientId = keygate-ci
	grant = client_credentials
	tokenUrl = $TOKEN_URL
EOF
BASE_ENV+=(KEYGATE_STORE=file SSL_CERT_FILE="$CA")
kg() { clean KEYGATE_CLIENT_SECRET="$CLIENT_SECRET" "$KEYGATE_BIN" "$@"; }

# One token per origin, fetched and stored by keygate itself; the proxy
# then serves them from the store, and the direct/relay rows send the same.
GIT_TOKEN=$(kg token "$GIT_URL") || die "keygate token $GIT_URL failed"
NGX_TOKEN=$(kg token "$ORIGIN_URL") || die "keygate token $ORIGIN_URL failed"
printf 'Authorization: Bearer %s\n' "$GIT_TOKEN" >"$T/secret/git.hdr"
printf 'Authorization: Bearer %s\n' "$NGX_TOKEN" >"$T/secret/ngx.hdr"
NGX_BASIC=$(printf 'oauth2:%s' "$NGX_TOKEN" | base64 -w0)

say "writing a $SIZE-byte file for the nginx origin"
"$PYTHON" - "$T/nginx/www/big.bin" "$SIZE" <<'EOF'
import sys
pattern = bytes(range(256)) * 4096  # 1 MiB, the git server's 00..ff pattern
n = int(sys.argv[2])
with open(sys.argv[1], "wb") as f:
    while n > 0:
        f.write(pattern[:n]); n -= len(pattern)
EOF
chmod 0644 "$T/nginx/www/big.bin"

nginx_common() { # nginx_common NAME WORKERS
  cat <<EOF
$NGINX_USER_LINE
worker_processes $2;
pid $T/nginx/$1.pid;
error_log $T/nginx/$1-error.log warn;
events { worker_connections 4096; }
EOF
}
nginx_http_common() {
  cat <<EOF
  access_log off;
  client_body_temp_path $T/nginx/tmp/body;
  proxy_temp_path $T/nginx/tmp/proxy;
  fastcgi_temp_path $T/nginx/tmp/fastcgi;
  uwsgi_temp_path $T/nginx/tmp/uwsgi;
  scgi_temp_path $T/nginx/tmp/scgi;
  keepalive_requests 100000;
  map_hash_bucket_size 256;
  keepalive_timeout 120s;
  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_certificate $T/certs/server.pem;
  ssl_certificate_key $T/certs/server-key.pem;
EOF
}

# The nginx origin: a static file over TLS, no introspection; the token is
# checked against the one keygate holds (Bearer, or Basic oauth2:TOKEN as
# keygate sends it by default).
{
  nginx_common origin 1
  cat <<EOF
http {
$(nginx_http_common)
  map \$http_authorization \$token_ok {
    default 0;
    "Bearer $NGX_TOKEN" 1;
    "Basic $NGX_BASIC" 1;
  }
  server {
    listen 127.0.0.1:$ORIGIN_PORT ssl;
    if (\$token_ok = 0) { return 401 "token required\n"; }
    location = /small { default_type text/plain; return 200 "ok\n"; }
    location /big/ { alias $T/nginx/www/; default_type application/octet-stream; }
    location /slow/ { alias $T/nginx/www/; default_type application/octet-stream; limit_rate 32k; }
  }
}
EOF
} >"$T/nginx/origin.conf"

# The nginx relay: TLS in (a leaf from the test CA), TLS out (verified
# against the test CA), Authorization set, no buffering.
relay_server() { # relay_server LISTEN_PORT UPSTREAM_NAME TOKEN
  cat <<EOF
  server {
    listen 127.0.0.1:$1 ssl;
    location / {
      proxy_pass https://$2;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "Bearer $3";
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_ssl_verify on;
      proxy_ssl_trusted_certificate $CA;
      proxy_ssl_name localhost;
      proxy_ssl_session_reuse on;
    }
  }
EOF
}
{
  nginx_common relay auto
  cat <<EOF
http {
$(nginx_http_common)
  upstream git_origin { server 127.0.0.1:${GIT_URL##*:}; keepalive 32; }
  upstream nginx_origin { server 127.0.0.1:$ORIGIN_PORT; keepalive 32; }
$(relay_server "$RELAY_GIT_PORT" git_origin "$GIT_TOKEN")
$(relay_server "$RELAY_NGX_PORT" nginx_origin "$NGX_TOKEN")
}
EOF
} >"$T/nginx/relay.conf"
chmod 0600 "$T/nginx/origin.conf" "$T/nginx/relay.conf"

say "starting nginx (origin and relay)"
"$NGINX" -t -q -e "$T/nginx/check.log" -c "$T/nginx/origin.conf" -g 'daemon off;' 2>"$T/nginx/check.err" ||
  die "nginx origin config: $(cat "$T/nginx/check.err")"
"$NGINX" -e "$T/nginx/origin-error.log" -c "$T/nginx/origin.conf" -g 'daemon off;' 2>>"$T/nginx/origin-error.log" &
PIDS+=($!)
ORIGIN_NGINX_PID=$!
wait_port "$ORIGIN_PORT" "nginx (origin)" "$ORIGIN_NGINX_PID"
"$NGINX" -e "$T/nginx/relay-error.log" -c "$T/nginx/relay.conf" -g 'daemon off;' 2>>"$T/nginx/relay-error.log" &
PIDS+=($!)
RELAY_NGINX_PID=$!
wait_port "$RELAY_GIT_PORT" "nginx (relay)" "$RELAY_NGINX_PID"

if [ -z "$MITM_SKIP" ]; then
  say "starting mitmproxy"
  printf '%s\n%s\n' "127.0.0.1 ${GIT_URL##*:} Bearer $GIT_TOKEN" "127.0.0.1 $ORIGIN_PORT Bearer $NGX_TOKEN" \
    >"$T/secret/mitm-targets"
  cat >"$T/mitm/inject.py" <<EOF
# Sets Authorization for the configured host:port pairs, streams bodies.
TARGETS = {}
with open("$T/secret/mitm-targets") as f:
    for line in f:
        host, port, value = line.rstrip("\n").split(" ", 2)
        TARGETS[(host, int(port))] = value


def requestheaders(flow):
    value = TARGETS.get((flow.request.host, flow.request.port))
    if value is not None:
        flow.request.headers["Authorization"] = value
    flow.request.stream = True


def responseheaders(flow):
    flow.response.stream = True
EOF
  env -i "${BASE_ENV[@]}" mitmdump -q --listen-host 127.0.0.1 --listen-port "$MITM_PORT" \
    --set confdir="$T/mitm" --set ssl_verify_upstream_trusted_ca="$CA" \
    --set stream_large_bodies=1 -s "$T/mitm/inject.py" >"$T/mitm.log" 2>&1 &
  PIDS+=($!)
  MITM_PID=$!
  wait_port "$MITM_PORT" mitmproxy "$MITM_PID"
  MITM_CA="$T/mitm/mitmproxy-ca-cert.pem"
  [ -s "$MITM_CA" ] || die "mitmproxy wrote no CA at $MITM_CA"
fi

start_keygate() { # start_keygate NAME: sets KG_PID, KG_URL, KG_CA, KG_PORT
  env -i "${BASE_ENV[@]}" KEYGATE_CLIENT_SECRET="$CLIENT_SECRET" "$KEYGATE_BIN" proxy >"$T/$1.out" 2>"$T/$1.err" &
  PIDS+=($!)
  KG_PID=$!
  wait_line "$T/$1.out" 2 "keygate proxy" "$KG_PID"
  KG_URL=$(sed -n '1s/^proxy: //p' "$T/$1.out")
  KG_CA=$(sed -n '2s/^ca: //p' "$T/$1.out")
  [ -n "$KG_URL" ] && [ -s "$KG_CA" ] || die "unexpected keygate proxy output: $(head -2 "$T/$1.out")"
  KG_PORT=${KG_URL##*:}
  [ "$(readlink "/proc/$KG_PID/exe")" = "$KEYGATE_BIN" ] || die "pid $KG_PID is not keygate"
  # The password stays out of `ps`: curl reads the proxy URL from a file.
  printf 'proxy = "%s"\n' "$KG_URL" >"$T/secret/$1.curlrc"
}
say "starting keygate proxy"
start_keygate keygate
KG1_PID=$KG_PID KG1_CA=$KG_CA KG1_PORT=$KG_PORT

rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { # summed utime+stime of PIDS, in clock ticks
  local total=0 p s f
  for p in "$@"; do
    s=$(cut -d')' -f2- "/proc/$p/stat" 2>/dev/null) || continue
    read -r -a f <<<"$s" # f[0] is field 3 (state): utime is field 14, stime 15
    total=$((total + f[11] + f[12]))
  done
  echo "$total"
}
machine_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; } # all CPUs, busy
relay_pids() { # the process(es) doing the relaying for a way
  case $1 in
    keygate) echo "$KG1_PID" ;;
    mitmproxy) echo "$MITM_PID" ;;
    nginx) echo "$RELAY_NGINX_PID $(pgrep -P "$RELAY_NGINX_PID" | tr '\n' ' ')" ;;
  esac
}

# curl_way WAY ORIGIN: curl arguments and the URL prefix for one way.
curl_way() {
  local way=$1 origin=$2 hdr base relay_port
  if [ "$origin" = git ]; then
    hdr="$T/secret/git.hdr" base=$GIT_URL relay_port=$RELAY_GIT_PORT
  else
    hdr="$T/secret/ngx.hdr" base=$ORIGIN_URL relay_port=$RELAY_NGX_PORT
  fi
  case $way in
    direct) WAY_ARGS=(--cacert "$CA" -H "@$hdr") WAY_BASE=$base ;;
    keygate) WAY_ARGS=(-K "$T/secret/keygate.curlrc" --cacert "$KG1_CA") WAY_BASE=$base ;;
    mitmproxy) WAY_ARGS=(--proxy "http://127.0.0.1:$MITM_PORT" --cacert "$MITM_CA") WAY_BASE=$base ;;
    nginx) WAY_ARGS=(--cacert "$CA") WAY_BASE="https://127.0.0.1:$relay_port" ;;
  esac
}
big_path() { if [ "$1" = git ]; then echo "/big/$SIZE"; else echo /big/big.bin; fi; }

WAYS=(direct keygate nginx)
[ -z "$MITM_SKIP" ] && WAYS=(direct keygate mitmproxy nginx)
ORIGINS=(git nginx)

# ---------------------------------------------------------------- checks
say "checking every way answers with the token"
for origin in "${ORIGINS[@]}"; do
  for way in "${WAYS[@]}"; do
    curl_way "$way" "$origin"
    code=$(clean curl -sS --http1.1 -o /dev/null --max-time 20 -w '%{http_code}' "${WAY_ARGS[@]}" \
      "$WAY_BASE/$([ "$origin" = git ] && echo echo-auth || echo small)") || code="curl failed"
    [ "$code" = 200 ] || die "$way to the $origin origin answered $code"
  done
  curl_way direct "$origin"
  code=$(clean curl -sS -o /dev/null --max-time 20 -w '%{http_code}' --cacert "$CA" \
    "$WAY_BASE/$([ "$origin" = git ] && echo echo-auth || echo small)")
  [ "$code" = 401 ] || die "the $origin origin answered $code without a token (expected 401)"
done
KG_IDLE_AFTER_CHECKS=$(rss "$KG1_PID")

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
# Other processes using CPU over one second (ours excluded): they skew everything.
busy=$("$PYTHON" - "${PIDS[@]}" $(pgrep -P "$RELAY_NGINX_PID") $(pgrep -P "$ORIGIN_NGINX_PID") <<'EOF'
import os, sys, time
mine = set(sys.argv[1:]) | {str(os.getpid()), str(os.getppid())}
def ticks():
    out = {}
    for p in os.listdir("/proc"):
        try:
            comm, rest = open(f"/proc/{p}/stat").read().rsplit(")", 1)
            f = rest.split()
            out[p] = (comm.split("(", 1)[1], int(f[11]) + int(f[12]))
        except (OSError, ValueError, IndexError):
            pass
    return out
a = ticks(); time.sleep(1); b = ticks()
hz = os.sysconf("SC_CLK_TCK")
busy = [f"{b[p][0]}[{p}]({100 * (b[p][1] - a[p][1]) / hz:.0f}%)" for p in b
        if p in a and p not in mine and (b[p][1] - a[p][1]) / hz > 0.1]
print(" ".join(busy))
EOF
)
[ -n "$busy" ] && say "WARNING: other processes busy during the last second: $busy; the figures will be noisy"
export BUSY_BEFORE=$busy
say "load average before measuring: $LOAD_BEFORE"

# ---------------------------------------------------------------- 1. throughput
say "1. throughput: $SIZE bytes, $RUNS runs (+1 warm-up) per way and origin, round robin"
: >"$T/throughput.tsv"
TICK=$(getconf CLK_TCK)
for ((run = 0; run <= RUNS; run++)); do
  for origin in "${ORIGINS[@]}"; do
    for way in "${WAYS[@]}"; do
      curl_way "$way" "$origin"
      pids=$(relay_pids "$way")
      before=$(cpu_ticks $pids) mbefore=$(machine_ticks)
      out=$(clean curl -sS --http1.1 -o /dev/null --max-time 120 \
        -w '%{http_code} %{size_download} %{speed_download} %{time_total}' \
        "${WAY_ARGS[@]}" "$WAY_BASE$(big_path "$origin")") || die "$way/$origin download failed: $out"
      after=$(cpu_ticks $pids) mafter=$(machine_ticks)
      read -r code bytes speed secs <<<"$out"
      [ "$code" = 200 ] && [ "$bytes" = "$SIZE" ] || die "$way/$origin: status $code, $bytes bytes"
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$run" "$origin" "$way" "$speed" "$secs" \
        "$([ -n "$pids" ] && echo $((after - before)) || echo '')" $((mafter - mbefore)) >>"$T/throughput.tsv"
      awk -v r="$run" -v o="$origin" -v w="$way" -v s="$speed" \
        'BEGIN {printf "   run %d %-5s %-9s %7.0f MB/s\n", r, o, w, s / 1e6}' >&2
    done
  done
done
KG_AFTER_THROUGHPUT_RSS=$(rss "$KG1_PID")
KG_AFTER_THROUGHPUT_HWM=$(hwm "$KG1_PID")

# ---------------------------------------------------------------- 2. latency
say "2. latency: $REQUESTS sequential requests on one keep-alive connection, $LAT_REPS series per way"
: >"$T/latency.tsv"
for ((rep = 0; rep < LAT_REPS; rep++)); do
  for origin in nginx git; do
    path=/small
    [ "$origin" = git ] && path=/echo-auth
    for way in "${WAYS[@]}"; do
      curl_way "$way" "$origin"
      args=()
      for ((i = 0; i < REQUESTS; i++)); do args+=(-o /dev/null "$WAY_BASE$path"); done
      clean curl -sS --http1.1 --max-time 120 -w '%{http_code} %{num_connects} %{time_total}\n' \
        "${WAY_ARGS[@]}" "${args[@]}" >"$T/lat.out" || die "$way/$origin latency series failed"
      awk -v r="$rep" -v o="$origin" -v w="$way" '{print r "\t" o "\t" w "\t" NR "\t" $1 "\t" $2 "\t" $3}' \
        "$T/lat.out" >>"$T/latency.tsv"
    done
  done
done

# ---------------------------------------------------------------- 3. memory
say "3. memory: a fresh keygate proxy, idle, then $CONNS open connections"
start_keygate keygate-mem
KG2_PID=$KG_PID KG2_CA=$KG_CA KG2_PORT=$KG_PORT
sleep 0.5
MEM_IDLE=$(rss "$KG2_PID")
clean curl -sS --http1.1 -o /dev/null -K "$T/secret/keygate-mem.curlrc" --cacert "$KG2_CA" \
  -H 'Accept: */*' "$ORIGIN_URL/small" || die "first request through the second proxy failed"
MEM_WARM=$(rss "$KG2_PID")
for ((i = 0; i < CONNS; i++)); do
  env -i "${BASE_ENV[@]}" curl -sS --http1.1 -o /dev/null --max-time 90 -K "$T/secret/keygate-mem.curlrc" --cacert "$KG2_CA" \
    "$ORIGIN_URL/slow/big.bin" 2>/dev/null &
  CLIENT_PIDS+=($!)
done
kg_upstream() { # connections from keygate (PID) to the nginx origin
  ss -Htnp state established "( dport = :$ORIGIN_PORT )" | grep -c "pid=$1," || true
}
open=0
for ((i = 0; i < 300; i++)); do
  # client connections to the proxy, and its connections to the origin
  open=$(ss -Htn state established "( sport = :$KG2_PORT )" | wc -l)
  up=$(kg_upstream "$KG2_PID")
  [ "$open" -ge "$CONNS" ] && [ "$up" -ge "$CONNS" ] && break
  sleep 0.1
done
[ "$open" -ge "$CONNS" ] || die "only $open connections open to keygate after 30 s"
MEM_CONNS_MAX=0
for ((i = 0; i < 20; i++)); do # 2 s of transfers at 32 KB/s each
  r=$(rss "$KG2_PID")
  [ "$r" -gt "$MEM_CONNS_MAX" ] && MEM_CONNS_MAX=$r
  sleep 0.1
done
MEM_CONNS_OPEN=$(ss -Htn state established "( sport = :$KG2_PORT )" | wc -l)
MEM_CONNS_UP=$(kg_upstream "$KG2_PID")
MEM_CONNS_HWM=$(hwm "$KG2_PID")
MEM_THREADS=$(awk '/^Threads/ {print $2}' "/proc/$KG2_PID/status")
for pid in "${CLIENT_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
for pid in "${CLIENT_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
CLIENT_PIDS=()
sleep 1
MEM_AFTER=$(rss "$KG2_PID")

# ---------------------------------------------------------------- report
say "writing $RESULTS/proxy.md and proxy.json"
mkdir -p "$RESULTS"
MITMV=
[ -z "$MITM_SKIP" ] && MITMV=$(mitmdump --version 2>/dev/null | head -1)
export T RESULTS SIZE RUNS REQUESTS LAT_REPS CONNS MITM_SKIP KEYGATE_REV TICK LOAD_BEFORE
export KG_IDLE_AFTER_CHECKS KG_AFTER_THROUGHPUT_RSS KG_AFTER_THROUGHPUT_HWM
export MEM_IDLE MEM_WARM MEM_CONNS_MAX MEM_CONNS_HWM MEM_CONNS_OPEN MEM_CONNS_UP MEM_AFTER MEM_THREADS
KEYGATE_VERSION=$("$KEYGATE_BIN" --version) \
  CPU_MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo) \
  HOSTINFO="$(uname -srm), $(nproc) CPUs, $(awk '/^MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)" \
  CURLV=$(curl --version | head -1) NGINXV=$("$NGINX" -v 2>&1) MITMV=$MITMV \
  PYV=$("$PYTHON" --version) NODEV=$(node --version) OPENSSLV=$(openssl version) \
  "$PYTHON" - <<'EOF'
import datetime, json, os, statistics as st

env = os.environ
T, results = env["T"], env["RESULTS"]
size, runs, tick = int(env["SIZE"]), int(env["RUNS"]), int(env["TICK"])
mitm_skip = env.get("MITM_SKIP", "")
WAYS = ["direct", "keygate", "mitmproxy", "nginx"] if not mitm_skip else ["direct", "keygate", "nginx"]
LABEL = {"direct": "direct (curl + Authorization header)", "keygate": "keygate proxy",
         "mitmproxy": "mitmproxy (addon, streaming)", "nginx": "nginx TLS relay"}
ORIGIN = {"git": "tests/support/git_server.py `/big/N` (python ssl, introspects each request)",
          "nginx": "nginx static file over TLS (token compared in the config)"}

# ---- throughput
tp = {}
for line in open(f"{T}/throughput.tsv"):
    run, origin, way, speed, secs, ticks, mticks = line.rstrip("\n").split("\t")
    if int(run) == 0:
        continue  # warm-up
    d = tp.setdefault(origin, {}).setdefault(way, {"speeds": [], "cpu": [], "mcpu": [], "busy": []})
    d["speeds"].append(float(speed) / 1e6)
    d["mcpu"].append(int(mticks) / tick)
    d["busy"].append(int(mticks) / tick / float(secs))
    if ticks:
        d["cpu"].append(int(ticks) / tick)
through = {}
for origin, ways in tp.items():
    direct = st.median(ways["direct"]["speeds"])
    for way, d in ways.items():
        med = st.median(d["speeds"])
        through.setdefault(origin, {})[way] = {
            "median_MBps": round(med, 1), "min_MBps": round(min(d["speeds"]), 1),
            "max_MBps": round(max(d["speeds"]), 1), "runs_MBps": [round(x, 1) for x in d["speeds"]],
            "ratio_to_direct": round(med / direct, 3),
            "relay_cpu_s_per_GB": round(st.median(d["cpu"]) / (size / 1e9), 3) if d["cpu"] else None,
            "machine_cpu_s_per_GB": round(st.median(d["mcpu"]) / (size / 1e9), 3),
            "cores_busy": round(st.median(d["busy"]), 2),
        }
headline = max(through, key=lambda o: through[o]["direct"]["median_MBps"])

# ---- latency (ms); the first request of each series opens the connection
lat = {}
for line in open(f"{T}/latency.tsv"):
    rep, origin, way, n, code, connects, secs = line.split("\t")
    if code != "200":
        raise SystemExit(f"latency: {way}/{origin} answered {code}")
    d = lat.setdefault(origin, {}).setdefault(way, {"times": [], "series": {}, "reconnects": 0})
    if int(n) == 1:
        continue
    if int(connects) != 0:
        d["reconnects"] += 1
    ms = float(secs) * 1000
    d["times"].append(ms)
    d["series"].setdefault(rep, []).append(ms)
latency = {}
for origin, ways in lat.items():
    for way, d in ways.items():
        latency.setdefault(origin, {})[way] = {
            "mean_ms": round(st.mean(d["times"]), 3), "median_ms": round(st.median(d["times"]), 3),
            "p90_ms": round(st.quantiles(d["times"], n=10)[-1], 3),
            "series_medians_ms": [round(st.median(v), 3) for v in d["series"].values()],
            "requests": len(d["times"]), "reconnects": d["reconnects"],
        }
    for way in ways:
        if way != "direct":
            for k in ("mean", "median"):
                latency[origin][way][f"added_{k}_ms"] = round(
                    latency[origin][way][f"{k}_ms"] - latency[origin]["direct"][f"{k}_ms"], 3)

mib = lambda kib: round(int(kib) / 1024, 1)
memory = {
    "idle_MiB": mib(env["MEM_IDLE"]), "after_first_request_MiB": mib(env["MEM_WARM"]),
    "open_connections": int(env["MEM_CONNS_OPEN"]), "upstream_connections": int(env["MEM_CONNS_UP"]),
    "rss_with_connections_MiB": mib(env["MEM_CONNS_MAX"]), "hwm_MiB": mib(env["MEM_CONNS_HWM"]),
    "after_connections_closed_MiB": mib(env["MEM_AFTER"]), "threads": int(env["MEM_THREADS"]),
    "throughput_instance": {"rss_after_checks_MiB": mib(env["KG_IDLE_AFTER_CHECKS"]),
                            "rss_after_downloads_MiB": mib(env["KG_AFTER_THROUGHPUT_RSS"]),
                            "hwm_MiB": mib(env["KG_AFTER_THROUGHPUT_HWM"])},
}

h = through[headline]
kg_direct = h["keygate"]["ratio_to_direct"]
kg_nginx = round(h["keygate"]["median_MBps"] / h["nginx"]["median_MBps"], 3)
kg_mitm = round(h["keygate"]["median_MBps"] / h["mitmproxy"]["median_MBps"], 2) if "mitmproxy" in h else None
added = latency["nginx"]["keygate"]["added_median_ms"]
added_mean = latency["nginx"]["keygate"]["added_mean_ms"]
rss100 = memory["rss_with_connections_MiB"]
ok = lambda b: "met" if b else "**missed**"
targets = [
    ("keygate / direct", "≥ 0.55×", f"{kg_direct:.2f}×", ok(kg_direct >= 0.55)),
    ("keygate / nginx relay", "≈ 1× (level)", f"{kg_nginx:.2f}×", ok(kg_nginx >= 0.95)),
    ("keygate / mitmproxy", "≥ 2×", f"{kg_mitm:.1f}×" if kg_mitm else mitm_skip,
     ok(kg_mitm >= 2) if kg_mitm else "n/a"),
    ("added per keep-alive request (median; mean)", "≤ 0.5 ms",
     f"{added:.3f} ms; {added_mean:.3f} ms", ok(max(added, added_mean) <= 0.5)),
    (f"RSS with {memory['open_connections']} open connections", "≤ 20 MiB",
     f"{rss100} MiB (HWM {memory['hwm_MiB']})", ok(max(rss100, memory["hwm_MiB"]) <= 20)),
]

now = datetime.datetime.now().astimezone()
machine = {"host": env["HOSTINFO"], "cpu": env["CPU_MODEL"], "load_before": env["LOAD_BEFORE"],
           "other_busy_processes": env.get("BUSY_BEFORE") or "none"}
versions = {"keygate": f'{env["KEYGATE_VERSION"]} ({env["KEYGATE_REV"]})', "curl": env["CURLV"],
            "nginx": env["NGINXV"], "mitmproxy": env.get("MITMV") or mitm_skip, "python": env["PYV"],
            "node": env["NODEV"], "openssl": env["OPENSSLV"]}
doc = {"date": now.isoformat(timespec="seconds"), "machine": machine, "versions": versions,
       "size_bytes": size, "runs": runs, "requests": int(env["REQUESTS"]), "latency_series": int(env["LAT_REPS"]),
       "headline_origin": headline, "throughput": through, "latency": latency, "memory": memory,
       "targets": [dict(zip(["what", "target", "measured", "verdict"], t)) for t in targets]}
with open(f"{results}/proxy.json", "w") as f:
    json.dump(doc, f, indent=2)
    f.write("\n")

o = []
o.append("# keygate proxy benchmark\n")
o.append(f"{now:%Y-%m-%d %H:%M %Z}; {machine['host']}; {machine['cpu']}; "
         f"load average before measuring {machine['load_before']}; other busy processes: {machine['other_busy_processes']}.\n")
o.append("Versions: " + "; ".join(f"{k} {v}" for k, v in versions.items()) + ".\n")
o.append(f"Produced by `bench/proxy.sh` (see bench/README.md). Every figure comes from this one run. "
         f"Headline origin: **{headline}** ({ORIGIN[headline]}), chosen because it was the faster one direct.\n")
o.append("## Targets\n")
o.append("| what | target | measured | |\n| --- | --- | --- | --- |")
o += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in targets]
o.append("")
o.append(f"## 1. Throughput: one {size / 1e6:.0f} MB ({size / 2**20:.0f} MiB) HTTPS download, curl, HTTP/1.1\n")
o.append(f"Median of {runs} runs (after 1 warm-up), rows interleaved round robin. MB = 10^6 bytes. "
         "`relay CPU` is the CPU time of the relaying process(es) per GB moved (curl's and the origin's not counted); "
         "`all CPU` counts every process on the machine (client, relay, origin); `cores busy` is that CPU time over the "
         f"transfer's wall time (this machine has {os.cpu_count()}).\n")
for origin in sorted(through, key=lambda x: x != headline):
    t = through[origin]
    o.append(f"### origin: {origin}{' (headline)' if origin == headline else ''}: {ORIGIN[origin]}\n")
    o.append("| way | median MB/s | min–max | × direct | relay CPU s/GB | all CPU s/GB | cores busy |\n"
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for way in WAYS:
        r = t[way]
        cpu = f"{r['relay_cpu_s_per_GB']:.2f}" if r["relay_cpu_s_per_GB"] is not None else "–"
        o.append(f"| {LABEL[way]} | {r['median_MBps']:.0f} | {r['min_MBps']:.0f}–{r['max_MBps']:.0f} "
                 f"| {r['ratio_to_direct']:.2f} | {cpu} | {r['machine_cpu_s_per_GB']:.2f} | {r['cores_busy']:.2f} |")
    extra = f"keygate / nginx relay: {t['keygate']['median_MBps'] / t['nginx']['median_MBps']:.2f}×"
    if "mitmproxy" in t:
        extra += f"; keygate / mitmproxy: {t['keygate']['median_MBps'] / t['mitmproxy']['median_MBps']:.1f}×"
    o.append(f"\n{extra}.\n")
o.append(f"## 2. Latency per request on one keep-alive connection\n")
o.append(f"{env['REQUESTS']} sequential GETs on one connection (one curl command line), {env['LAT_REPS']} series per way; "
         "the first request of each series (connection, CONNECT, TLS) is left out. curl's `time_total` per transfer.\n")
for origin, path, what in (("nginx", "/small", "nginx origin, 3-byte body, no introspection (the headline)"),
                           ("git", "/echo-auth", "git server, which introspects every request at the OAuth server")):
    o.append(f"### `{path}` on the {what}\n")
    o.append("| way | mean ms | median ms | p90 ms | added (median) | added (mean) | series medians |\n"
             "| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for way in WAYS:
        r = latency[origin][way]
        add_m = f"{r['added_median_ms']:+.3f}" if "added_median_ms" in r else "–"
        add_a = f"{r['added_mean_ms']:+.3f}" if "added_mean_ms" in r else "–"
        o.append(f"| {LABEL[way]} | {r['mean_ms']:.3f} | {r['median_ms']:.3f} | {r['p90_ms']:.3f} | {add_m} | {add_a} "
                 f"| {', '.join(f'{x:.3f}' for x in r['series_medians_ms'])} |")
        if r["reconnects"]:
            o.append(f"\n(**{way}: {r['reconnects']} requests opened a new connection**)\n")
    o.append("")
m = memory
o.append("## 3. Resident memory of keygate proxy\n")
o.append(f"A second, fresh `keygate proxy` (so VmHWM covers only this part). `{m['open_connections']}` client connections "
         f"were open to it ({m['upstream_connections']} from it to the origin), each a curl downloading the nginx origin's "
         f"file throttled to 32 KB/s through it; RSS sampled every 0.1 s for 2 s. {m['threads']} threads.\n")
o.append("| state | MiB |\n| --- | ---: |")
o.append(f"| idle, just started | {m['idle_MiB']} |")
o.append(f"| after one request (leaf issued, token loaded) | {m['after_first_request_MiB']} |")
o.append(f"| {m['open_connections']} open connections (max VmRSS) | {m['rss_with_connections_MiB']} |")
o.append(f"| VmHWM (peak) | {m['hwm_MiB']} |")
o.append(f"| 1 s after those connections closed | {m['after_connections_closed_MiB']} |")
ti = m["throughput_instance"]
o.append(f"| throughput instance: after checks / after all downloads / VmHWM | "
         f"{ti['rss_after_checks_MiB']} / {ti['rss_after_downloads_MiB']} / {ti['hwm_MiB']} |")
o.append("")
with open(f"{results}/proxy.md", "w") as f:
    f.write("\n".join(o))
EOF
cat "$RESULTS/proxy.md"
