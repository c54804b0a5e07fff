# What the tests run against, started for scripts/test and scripts/mutants: a disposable
# private PostgreSQL cluster (socket only, no TCP), the OpenID provider, clamd and an SMTP
# catcher (loopback); nginx is installed for the edge tests, which start their own. `start_test_services` installs what is missing, starts them, exports
# where they are, and stops them on exit whatever happens.

start_test_services() {
  ensure_postgres
  ensure_rust_tools
  ensure_oidc_provider
  ensure_clamd
  ensure_nginx
  ensure_mail_catcher
  command -v curl >/dev/null || apt_install curl

  # PostgreSQL must be able to reach its directories, so keep them under /tmp, not the checkout.
  TEST_WORK="$(mktemp -d /tmp/secondwind-test-pg.XXXXXX)"
  chmod 755 "$TEST_WORK"
  OIDC_PID=""
  CLAMD_PID=""
  MAIL_PID=""
  trap stop_test_services EXIT
  # Interrupted: stop everything and stop here (a loop in the caller must not go on without them).
  trap 'stop_test_services; exit 130' INT TERM

  say "starting a private PostgreSQL cluster for the tests ($PG_BIN)"
  pg_init "$TEST_WORK/data"
  pg_start "$TEST_WORK/data" "$TEST_WORK/sock" "$TEST_WORK/log/postgres.log" 5432 "" \
    fsync=off synchronous_commit=off full_page_writes=off max_connections=400
  export SECONDWIND_TEST_ADMIN_URL="postgres://postgres@localhost/postgres?host=$TEST_WORK/sock&port=5432"

  oidc_start "$TEST_WORK" "$(free_port 47000)" "http://localhost:5173/auth/callback"
  clamd_start "$TEST_WORK" "$(free_port 47300)"
  mail_start "$TEST_WORK/mail" "$(free_port 47400)" "$TEST_WORK/mail.log"
}

# Safe to run twice, and never fails: a service that already exited is not an error, and the
# exit status stays the tests' own.
stop_test_services() {
  local pid
  for pid in "$OIDC_PID" "$CLAMD_PID" "$MAIL_PID"; do
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
  done
  OIDC_PID="" CLAMD_PID="" MAIL_PID=""
  if [ -n "${TEST_WORK:-}" ] && [ -d "$TEST_WORK" ]; then
    pg_stop "$TEST_WORK/data" || true
    rm -rf "$TEST_WORK"
  fi
}
