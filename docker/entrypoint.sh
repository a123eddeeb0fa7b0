#!/bin/sh
# The image's entrypoint: runs `wheelmesh node` with the data in $WHEELMESH_DATA
# (/data) and the config $WHEELMESH_CONFIG (/etc/wheelmesh/node.json) when that
# file exists. Arguments starting with "-" are passed to `wheelmesh node`; a
# wheelmesh command (status, put, ls, keygen) runs that command; anything else
# is run as it is.
#
# For a cluster whose keys are made at first start (docker/compose.yml), set
# WHEELMESH_ENROL to a trusted keys file on a volume every node mounts: the
# node makes its key ($WHEELMESH_KEY, default $WHEELMESH_DATA/node.key, its
# public half beside it as node.key.pub) if it has none, adds the public key to
# that file once, and waits until the file lists $WHEELMESH_ENROL_WAIT keys
# (at most $WHEELMESH_ENROL_TIMEOUT seconds) before it starts. The config
# names the same file as cluster.trusted_keys and cluster.publishers.
set -eu

DATA=${WHEELMESH_DATA:-/data}
CONFIG=${WHEELMESH_CONFIG:-/etc/wheelmesh/node.json}

case "${1:-}" in
    node) shift ;;
    status|put|ls|keygen|--version|--help) exec wheelmesh "$@" ;;
    ""|-*) ;;
    *) exec "$@" ;;
esac

say() { echo "wheelmesh-entrypoint: $*" >&2; }

count_keys() {
    grep -cE '^[[:space:]]*[0-9a-fA-F]{64}[[:space:]]*$' "$1" 2>/dev/null || true
}

if [ -n "${WHEELMESH_ENROL:-}" ]; then
    key=${WHEELMESH_KEY:-$DATA/node.key}
    if [ ! -f "$key" ]; then
        wheelmesh keygen -o "$key" > "$key.pub.tmp"
        mv "$key.pub.tmp" "$key.pub"
        say "made key $key ($(cat "$key.pub"))"
    fi
    [ -s "$key.pub" ] || { say "$key has no $key.pub beside it: cannot enrol"; exit 1; }
    pub=$(cat "$key.pub")
    touch "$WHEELMESH_ENROL"
    # One short append with O_APPEND: nodes enrolling at once do not mix lines.
    grep -qix "$pub" "$WHEELMESH_ENROL" ||
        printf '# %s\n%s\n' "$(hostname)" "$pub" >> "$WHEELMESH_ENROL"
    want=${WHEELMESH_ENROL_WAIT:-1}
    left=${WHEELMESH_ENROL_TIMEOUT:-120}
    while [ "$(count_keys "$WHEELMESH_ENROL")" -lt "$want" ]; do
        if [ "$left" -le 0 ]; then
            say "only $(count_keys "$WHEELMESH_ENROL") of $want keys in $WHEELMESH_ENROL; starting anyway"
            break
        fi
        sleep 1
        left=$((left - 1))
    done
fi

if [ -f "$CONFIG" ]; then
    set -- -c "$CONFIG" "$@"
fi
exec wheelmesh node --data "$DATA" "$@"
