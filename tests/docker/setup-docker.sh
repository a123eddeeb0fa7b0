#!/usr/bin/env bash
# setup-docker.sh -- what the project's Docker tests and benchmark need on a
# Debian 12 machine without systemd and without any container registry:
#   * Debian's docker.io (dockerd 20.10 with BuildKit built in), docker-compose
#     v1 (1.29) and debootstrap from the Debian mirror (installed as root);
#   * dockerd answering: started by hand (setsid) when it is not running, or
#     through systemd where PID 1 is systemd;
#   * a local base image debian:12 (also tagged debian:12-slim, debian:bookworm,
#     debian:bookworm-slim) made with `debootstrap --variant=minbase` from the
#     machine's apt mirror and `docker import`ed (about 2 minutes, once).
#
# Idempotent: every step checks first. Progress goes to stderr; stdout gets
# exactly one line for the caller:
#   started PID   this run started dockerd (pid PID): the caller stops it
#   running PID   dockerd was running already (PID; 0 when unknown): leave it
# Exit status: 0 ready; 77 no engine can be had here (not root and something
# is missing; the reason on stderr); 1 the set-up failed.
#
# Adapted from the workplace's tools/setup-docker.sh, which the project cannot
# count on: CI clones the repository alone.
#
# Knobs (environment variables):
#   WORKDIR=/var/tmp/wheelmesh-docker  logs, lock file, temporary rootfs
#   SUITE=bookworm              Debian suite to debootstrap
#   MIRROR, SECURITY_MIRROR     default: read from the apt sources
#   BASE_TAGS="debian:12 debian:12-slim debian:bookworm debian:bookworm-slim"
#   EXTRA_PACKAGES=""           more Debian packages (the benchmark: docker-registry)
#   INCLUDE_HOST_CAS=1          copy /usr/local/share/ca-certificates/*.crt into
#                               the image (an egress proxy that intercepts TLS)
#   DOCKERD_WAIT=60             seconds to wait for dockerd to answer
set -euo pipefail

WORKDIR=${WORKDIR:-/var/tmp/wheelmesh-docker}
SUITE=${SUITE:-bookworm}
BASE_TAGS=${BASE_TAGS:-"debian:12 debian:12-slim debian:bookworm debian:bookworm-slim"}
EXTRA_PACKAGES=${EXTRA_PACKAGES:-}
INCLUDE_HOST_CAS=${INCLUDE_HOST_CAS:-1}
DOCKERD_WAIT=${DOCKERD_WAIT:-60}
DOCKER=/usr/bin/docker   # Debian's CLI: its built-in BuildKit client works with DOCKER_BUILDKIT=1
DOCKERD=/usr/sbin/dockerd
DOCKERD_PIDFILE=/var/run/docker.pid
LOG="$WORKDIR/dockerd.log"

T0=$(date +%s)
log() { printf '[setup-docker %s +%ss] %s\n' "$(date +%H:%M:%S)" "$(( $(date +%s) - T0 ))" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
skip() { log "no Docker engine here: $*"; exit 77; }

ROOT=0
[ "$(id -u)" = 0 ] && ROOT=1
have_systemd() { [ -d /run/systemd/system ]; }
docker_up() { [ -x "$DOCKER" ] && "$DOCKER" info >/dev/null 2>&1; }
pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
pid_is_dockerd() { [ -n "${1:-}" ] && [ -r "/proc/$1/comm" ] && [ "$(cat "/proc/$1/comm")" = dockerd ]; }

# Not root: usable only when everything is there already.
if [ "$ROOT" != 1 ]; then
    docker_up || skip "dockerd does not answer and starting it needs root"
    "$DOCKER" image inspect "${BASE_TAGS%% *}" >/dev/null 2>&1 ||
        skip "no ${BASE_TAGS%% *} image and making one needs root (debootstrap)"
    command -v docker-compose >/dev/null || skip "no docker-compose, and installing it needs root"
    echo "running 0"
    exit 0
fi

mkdir -p "$WORKDIR"
exec 9>"$WORKDIR/setup.lock"
flock -w 900 9 || die "another setup-docker.sh is running (lock $WORKDIR/setup.lock)"

# --- 1. packages
install_packages() {
    local want=(docker.io docker-compose debootstrap) missing=() p
    # shellcheck disable=SC2206
    want+=($EXTRA_PACKAGES)
    for p in "${want[@]}"; do pkg_installed "$p" || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing: ${missing[*]}"
    # Without systemd, keep the packages' init scripts from starting daemons
    # (dockerd, the registry) during installation: we start what we need.
    local tmp_policy=0 rc=0
    if ! have_systemd && [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        tmp_policy=1
    fi
    {
        apt-get update &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
    } >>"$WORKDIR/apt-install.log" 2>&1 || rc=$?
    [ "$tmp_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
    [ "$rc" = 0 ] || { tail -n 30 "$WORKDIR/apt-install.log" >&2; die "apt-get failed (rc=$rc), see $WORKDIR/apt-install.log"; }
    log "packages installed"
}

# --- 2. dockerd
DPID=0
start_dockerd() {
    if docker_up; then
        log "dockerd already answering"
    elif have_systemd; then
        log "starting docker.service with systemd"
        systemctl start docker.service
    else
        local pid=""
        [ -r "$DOCKERD_PIDFILE" ] && pid=$(cat "$DOCKERD_PIDFILE" 2>/dev/null || true)
        if pid_is_dockerd "$pid"; then
            log "dockerd (pid $pid) exists but does not answer yet; waiting for it"
        else
            [ -e "$DOCKERD_PIDFILE" ] && { log "removing stale $DOCKERD_PIDFILE"; rm -f "$DOCKERD_PIDFILE"; }
            log "starting $DOCKERD (log: $LOG)"
            # setsid: its own session, so it outlives this script; the fd
            # limit raised the way docker.service does (LimitNOFILE).
            (
                exec 9>&-
                ulimit -Hn 1048576 2>/dev/null || true
                ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
                exec setsid "$DOCKERD" --pidfile "$DOCKERD_PIDFILE"
            ) >>"$LOG" 2>&1 </dev/null &
            STARTED=1
        fi
    fi
    local i
    for ((i = 0; i < DOCKERD_WAIT * 2; i++)); do
        docker_up && break
        sleep 0.5
    done
    if ! docker_up; then
        tail -n 40 "$LOG" >&2 || true
        die "dockerd did not come up within ${DOCKERD_WAIT}s (log: $LOG)"
    fi
    if have_systemd; then
        DPID=$(systemctl show -p MainPID --value docker.service 2>/dev/null || echo 0)
    else
        DPID=$(cat "$DOCKERD_PIDFILE" 2>/dev/null || echo 0)
    fi
    log "dockerd up: pid $DPID, server $("$DOCKER" version --format '{{.Server.Version}}' 2>/dev/null)"
}

# --- 3. base image: debootstrap + docker import (no registry needed)
# First URI of an enabled "deb" source for exactly suite $1, from the apt configuration.
detect_mirror() {
    local suite=$1 f uri=""
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        uri=$(awk -v s="$suite" '
            BEGIN { RS = ""; FS = "\n" }
            {
                types = ""; uris = ""; suites = ""; enabled = "yes"
                for (i = 1; i <= NF; i++) {
                    line = $i
                    if (line ~ /^[ \t]*#/) continue
                    if (match(line, /^[A-Za-z-]+:/)) {
                        key = tolower(substr(line, 1, RLENGTH - 1)); val = substr(line, RLENGTH + 1)
                        gsub(/^[ \t]+|[ \t]+$/, "", val)
                        if (key == "types") types = val
                        else if (key == "uris") uris = val
                        else if (key == "suites") suites = val
                        else if (key == "enabled") enabled = tolower(val)
                    }
                }
                if (enabled == "no" || (" " types " ") !~ / deb /) next
                n = split(suites, a, /[ \t]+/)
                for (j = 1; j <= n; j++) if (a[j] == s) { split(uris, u, /[ \t]+/); print u[1]; exit }
            }' "$f")
        [ -n "$uri" ] && { echo "$uri"; return 0; }
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -r "$f" ] || continue
        uri=$(awk -v s="$suite" '
            $1 == "deb" {
                i = 2
                if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                if ($(i + 1) == s) { print $i; exit }
            }' "$f")
        [ -n "$uri" ] && { echo "$uri"; return 0; }
    done
    return 0
}

# Remove a directory tree without ever crossing into a mount point left behind by a
# failed debootstrap (it mounts proc/sys inside the target).
safe_rmtree() {
    local dir=$1 m
    [ -e "$dir" ] || return 0
    dir=$(readlink -f "$dir")
    case "$dir" in "$WORKDIR"/*) ;; *) die "refusing to remove $dir (outside $WORKDIR)";; esac
    for m in $(findmnt -rn -o TARGET | awk -v d="$dir" 'index($0, d "/") == 1' | sort -r); do
        log "unmounting leftover mount $m"
        umount -l "$m" || true
    done
    rm -rf --one-file-system "$dir"
}

customize_rootfs() {
    local R=$1 mirror=$2 secmirror=$3
    # apt sources in deb822 form, like the official image
    rm -f "$R/etc/apt/sources.list"
    mkdir -p "$R/etc/apt/sources.list.d"
    cat > "$R/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $secmirror
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    # same container-friendly apt/dpkg settings as the official debian images
    printf '#!/bin/sh\n\n# Do not start services during "apt-get install" in containers.\nexit 101\n' > "$R/usr/sbin/policy-rc.d"
    chmod 755 "$R/usr/sbin/policy-rc.d"
    cat > "$R/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    echo 'Acquire::Languages "none";' > "$R/etc/apt/apt.conf.d/docker-no-languages"
    echo 'Acquire::GzipIndexes "true";' > "$R/etc/apt/apt.conf.d/docker-gzip-indexes"
    echo 'APT::AutoRemove::SuggestsImportant "false";' > "$R/etc/apt/apt.conf.d/docker-autoremove-suggests"
    # carry over host apt settings that containers need to reach the same mirror
    local cvu="" hp="" hsp=""
    eval "$(apt-config shell cvu Acquire::Check-Valid-Until hp Acquire::http::Proxy hsp Acquire::https::Proxy)"
    {
        [ "$cvu" = false ] && echo 'Acquire::Check-Valid-Until "false";'
        [ -n "$hp" ] && echo "Acquire::http::Proxy \"$hp\";"
        [ -n "$hsp" ] && echo "Acquire::https::Proxy \"$hsp\";"
        true
    } > "$R/etc/apt/apt.conf.d/90host-settings"
    [ -s "$R/etc/apt/apt.conf.d/90host-settings" ] || rm -f "$R/etc/apt/apt.conf.d/90host-settings"
    # extra CAs of the host (e.g. a TLS-intercepting egress proxy); picked up by
    # update-ca-certificates when an image installs the ca-certificates package
    if [ "$INCLUDE_HOST_CAS" = 1 ] && compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
        mkdir -p "$R/usr/local/share/ca-certificates"
        cp /usr/local/share/ca-certificates/*.crt "$R/usr/local/share/ca-certificates/"
    fi
    # drop caches, logs and host-specific files
    rm -rf "$R"/var/lib/apt/lists/* "$R"/var/cache/apt/*.bin "$R"/var/cache/apt/archives/*.deb \
           "$R"/var/cache/apt/archives/partial/* "$R"/var/log/apt/* "$R"/tmp/* "$R"/var/tmp/* \
           "$R"/var/cache/debconf/*-old "$R"/var/lib/dpkg/*-old
    find "$R/var/log" -type f -name '*.log' -delete
    : > "$R/etc/resolv.conf"
    echo localhost > "$R/etc/hostname"
    : > "$R/etc/machine-id"
}

import_base_image() {
    local primary=${BASE_TAGS%% *} t
    if "$DOCKER" image inspect "$primary" >/dev/null 2>&1; then
        log "image $primary already present"
    else
        local mirror secmirror
        mirror=${MIRROR:-$(detect_mirror "$SUITE")}
        [ -n "$mirror" ] || die "no Debian mirror for $SUITE found in the apt sources; set MIRROR"
        secmirror=${SECURITY_MIRROR:-$(detect_mirror "$SUITE-security")}
        secmirror=${secmirror:-$mirror}
        local R="$WORKDIR/rootfs.new"
        safe_rmtree "$R"
        log "debootstrap --variant=minbase $SUITE from $mirror (log: $WORKDIR/debootstrap.log)"
        if ! debootstrap --variant=minbase "$SUITE" "$R" "$mirror" >"$WORKDIR/debootstrap.log" 2>&1; then
            tail -n 30 "$WORKDIR/debootstrap.log" >&2
            safe_rmtree "$R"
            die "debootstrap failed, see $WORKDIR/debootstrap.log"
        fi
        customize_rootfs "$R" "$mirror" "$secmirror"
        log "importing rootfs ($(du -sh "$R" | cut -f1)) as $primary"
        tar --numeric-owner --xattrs --xattrs-include='*' -C "$R" \
            --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -cf - . |
            "$DOCKER" import \
                --change 'CMD ["bash"]' \
                --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
                --change "LABEL org.local.source=\"debootstrap --variant=minbase $SUITE $mirror\"" \
                --message "debootstrap --variant=minbase $SUITE $mirror" \
                - "$primary" >/dev/null
        safe_rmtree "$R"
        for t in $BASE_TAGS; do [ "$t" = "$primary" ] || "$DOCKER" tag "$primary" "$t"; done
    fi
    for t in $BASE_TAGS; do
        "$DOCKER" image inspect "$t" >/dev/null 2>&1 || "$DOCKER" tag "$primary" "$t"
    done
}

STARTED=0
install_packages
start_dockerd
import_base_image
log "done: dockerd pid $DPID; images: $BASE_TAGS"
if [ "$STARTED" = 1 ]; then echo "started $DPID"; else echo "running $DPID"; fi
