# Sourced by the tests that need PostgreSQL (after lib.sh): runs a server of its own from a
# temporary folder, listening on a unix socket in that folder only, with a role `msrp` that
# owns a database `msrp`, both passwords random and made now. Sets:
#   store_url       postgresql:// URI of that database, as the role msrp (password inside)
#   pg_dir, pg_bin  the server's folder and PostgreSQL's programs
#   pg ARGS...      pg_ctl for this server;  pg_start  starts it (again);  pg_pid  its pid
# Debian's postgresql is installed when missing (as root; otherwise exit 77: skipped).
# initdb refuses to run as root, so as root the server runs as the `postgres` user (or
# `nobody`). The server is stopped, by its pid, and its folder removed at exit.
random_secret() { head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# ---------------------------------------------------------------------------------------------
section "PostgreSQL in a temporary folder"
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -z "$pg_bin" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "   postgresql is not installed and this is not root: skipped"
    exit 77
  fi
  echo "   installing postgresql"
  { DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql ||
    { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y \
      --no-install-recommends postgresql; }; } >"$scratch/apt.log" 2>&1 ||
    { echo "apt-get install postgresql failed:" && tail -5 "$scratch/apt.log"; exit 2; }
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi

# The server's own folder: data and socket, owned by whoever runs the server.
pg_dir=$(mktemp -d)
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
  pg_user=postgres
  id -u postgres >/dev/null 2>&1 || pg_user=nobody
  chown "$pg_user" "$pg_dir"
  as_pg=(runuser -u "$pg_user" --)
fi
chmod 700 "$pg_dir"

# pg_ctl ARGS...: as the server's user, for this server.
pg() {
  (cd / && "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" "$@")
}
pg_start() {
  pg -l "$pg_dir/server.log" -w -t 30 \
    -o "-c listen_addresses='' -k $pg_dir -c fsync=off" start >/dev/null
}
# The postmaster's pid, from its pid file (first line), while it runs.
pg_pid() { head -1 "$pg_dir/data/postmaster.pid" 2>/dev/null; }

pg_cleanup() {
  local server
  server=$(pg_pid)
  if [ -n "$server" ]; then
    kill -QUIT "$server" 2>/dev/null  # immediate shutdown, by its pid
    timeout 10 bash -c 'while kill -0 "$0" 2>/dev/null; do sleep 0.05; done' "$server"
  fi
  rm -rf "$pg_dir"
}
trap 'pg_cleanup; cleanup' EXIT

admin_password=$(random_secret)
(umask 077 && echo "$admin_password" >"$pg_dir/admin.password")
[ ${#as_pg[@]} -gt 0 ] && chown "$pg_user" "$pg_dir/admin.password"
(cd / && "${as_pg[@]}" "$pg_bin/initdb" -D "$pg_dir/data" -U postgres -A scram-sha-256 \
  --pwfile="$pg_dir/admin.password") >"$scratch/initdb.log" 2>&1
status=$?
check "initdb" test $status -eq 0
[ $status -eq 0 ] || { show "$scratch/initdb.log"; exit 1; }
pg_start
check "PostgreSQL starts on a unix socket in its folder" test -S "$pg_dir/.s.PGSQL.5432"
[ -S "$pg_dir/.s.PGSQL.5432" ] || { show "$pg_dir/server.log"; exit 1; }

# The relays' role and database, with a password made now.
relay_password=$(random_secret)
PGPASSWORD=$admin_password "$pg_bin/psql" -h "$pg_dir" -U postgres -d postgres -q \
  -v ON_ERROR_STOP=1 -c "CREATE ROLE msrp LOGIN PASSWORD '$relay_password'" \
  -c "CREATE DATABASE msrp OWNER msrp" >"$scratch/psql.log" 2>&1
status=$?
check "a role and a database for the relays" test $status -eq 0
[ $status -eq 0 ] || { show "$scratch/psql.log"; exit 1; }
store_url="postgresql://msrp:$relay_password@/msrp?host=$pg_dir"

