# tests/interop/kamailio.sh: Kamailio's MSRP relay (Debian 12's kamailio 5.6, module msrp) run
# on loopback from a scratch directory, for the interop suite (kamailio_test.sh) and the
# benchmark comparison (scripts/bench-compare.sh). Source it after tests/net/lib.sh, whose
# $scratch, spawn and stop it uses. It defines:
#
#   kamailio_install          installs kamailio and kamailio-tls-modules when missing (root,
#                             Debian's apt; the packaged service never starts); sets `modules`
#   kamailio_prepare USER...  a self-signed certificate for 127.0.0.1, the TLS profile, and a
#                             random password per USER in $k/USER.password (0600), realm
#                             `realm`; also $k/wrong.password
#   start_kamailio            free ports, the configuration (kamailio.cfg.in filled in), Kamailio
#                             in the foreground as job `kamailio`; sets module_tcp, module_tls,
#                             tcp_port, tls_port
#   free_ports N              N free ports of 127.0.0.1 in `ports`
#
# KAMAILIO_DEBUG sets Kamailio's log level (default 2: every frame; -1: errors only);
# KAMAILIO_QUEUE_KB its write queues per connection (default: Kamailio's own) and KAMAILIO_SHM_MB
# its shared memory (default: Kamailio's 64 MB).
kamailio_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
k=$scratch/kamailio
realm=kamailio.test

kamailio_install() {
  local missing=() package
  for package in kamailio kamailio-tls-modules openssl; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' ||
      missing+=("$package")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "   installing ${missing[*]}"
    # The packaged service does not start here: no systemd, the sysv script has RUN_KAMAILIO=no
    # in /etc/default/kamailio, and the image's policy-rc.d says no.
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" \
      >"$scratch/apt.log" 2>&1 ||
      { apt-get update >>"$scratch/apt.log" 2>&1 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
          "${missing[@]}" >>"$scratch/apt.log" 2>&1; } ||
      { echo "apt-get install ${missing[*]} failed:" && tail -5 "$scratch/apt.log"; return 2; }
  fi
  modules=$(dirname "$(dpkg -L kamailio | grep '/msrp\.so$' | head -1)")
}

kamailio_prepare() {
  local user
  mkdir -p "$k/run"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=127.0.0.1" \
    -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
    -keyout "$k/key.pem" -out "$k/cert.pem" 2>"$scratch/openssl.err"
  cat >"$k/tls.cfg" <<EOF
[server:default]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
private_key = $k/key.pem
certificate = $k/cert.pem

# Kamailio connects to itself when both peers use it (kamailio_test.sh, finding 2).
[client:default]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
EOF
  passwords=""
  for user in "$@"; do
    head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$k/$user.password"
    passwords+=$(printf '\tif ($aU == "%s") $var(password) = "%s";' "$user" "$(cat "$k/$user.password")")$'\n'
  done
  echo wrong-password >"$k/wrong.password"
  chmod 600 "$k"/*.password  # msrp refuses a password file others can read
}

port_taken() {  # port_taken PORT: something accepts connections on 127.0.0.1:PORT
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
# free_ports N: N distinct ports nobody listens on, in `ports`; below Linux's range of ephemeral
# ports (32768 up), where the outgoing connections of whatever else runs here cannot hold them.
free_ports() {
  local port
  ports=()
  while [ ${#ports[@]} -lt "$1" ]; do
    port=$((10000 + RANDOM % 22768))
    [[ " ${ports[*]} " == *" $port "* ]] && continue
    port_taken "$port" || ports+=("$port")
  done
}

write_config() {
  local passwords_file=$k/passwords.txt
  printf '%s' "$passwords" >"$passwords_file"
  # Kamailio's default write queues (TCP 32 KiB, TLS 64 KiB per connection, 10 MiB in all),
  # or KAMAILIO_QUEUE_KB per connection and 16 times that in all.
  local queue=${KAMAILIO_QUEUE_KB:+$((KAMAILIO_QUEUE_KB * 1024))}
  sed -e "s|@DEBUG@|${KAMAILIO_DEBUG:-2}|g" -e "s|@MODULES@|$modules/|g" \
    -e "s|@CONN_WQ@|${queue:-32768}|g" -e "s|@CONN_CT_WQ@|${queue:-65536}|g" \
    -e "s|@TOTAL_WQ@|$((${queue:-655360} * 16))|g" \
    -e "s|@TLS_CFG@|$k/tls.cfg|g" -e "s|@REALM@|$realm|g" \
    -e "s|@MODULE_TCP@|$module_tcp|g" -e "s|@MODULE_TLS@|$module_tls|g" \
    -e "s|@TCP@|$tcp_port|g" -e "s|@TLS@|$tls_port|g" \
    -e "/@PASSWORDS@/{r $passwords_file" -e "d}" \
    "$kamailio_dir/kamailio.cfg.in" >"$k/kamailio.cfg"
  rm -f "$passwords_file"
}

# start_kamailio: picks free ports, writes the configuration and starts Kamailio in the
# foreground (-DD: no fork to the background, -E: log to stderr, in $scratch/kamailio.err);
# waits until all four listeners accept. Ports can be taken between the look and the bind:
# then it tries again, three times in all.
start_kamailio() {
  local try
  for try in 1 2 3; do
    free_ports 4
    module_tcp=${ports[0]} module_tls=${ports[1]} tcp_port=${ports[2]} tls_port=${ports[3]}
    write_config
    if ! kamailio -c -f "$k/kamailio.cfg" >"$scratch/kamailio-check.out" 2>&1; then
      echo "   the configuration does not parse:" && grep -E 'ERROR|CRITICAL' \
        "$scratch/kamailio-check.out" | head -5 | sed 's/^/   > /'
      return 1
    fi
    spawn kamailio 1800 kamailio -f "$k/kamailio.cfg" -DD -E -Y "$k/run" -w "$k" \
      ${KAMAILIO_SHM_MB:+-m "$KAMAILIO_SHM_MB"}
    if timeout 20 bash -c 'until (exec 3<>"/dev/tcp/127.0.0.1/$0" && exec 3<>"/dev/tcp/127.0.0.1/$1" &&
        exec 3<>"/dev/tcp/127.0.0.1/$2" && exec 3<>"/dev/tcp/127.0.0.1/$3") 2>/dev/null; do
        kill -0 "$4" 2>/dev/null || exit 1; sleep 0.1; done' \
        "$module_tcp" "$module_tls" "$tcp_port" "$tls_port" "${pid[kamailio]}"; then
      return 0
    fi
    echo "   Kamailio did not start (try $try):" && grep -E 'ERROR|CRITICAL' \
      "$scratch/kamailio.err" | tail -3 | sed 's/^/   > /'
    stop kamailio
  done
  return 1
}
