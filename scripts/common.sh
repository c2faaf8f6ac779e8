# Shared by the scripts: system packages, .env, whether a database is configured, ports, and
# starting a private PostgreSQL.

# A one-line reason on stderr and exit 1 (run.sh says "make run:" instead of its file name).
die() { echo "$(basename "$0"): $*" >&2; exit 1; }

# Installs the Debian packages the build and the private cluster need, and any named as
# arguments (make test's browser), only those missing.
ensure_packages() {
    # iproute2: ss, which says who holds a port (run.sh and pg-cluster.sh check ports before starting).
    local wanted=(libpq-dev libssl-dev libcrypt-dev postgresql postgresql-client python3-venv iproute2 "$@") missing=()
    for package in "${wanted[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "installing ${missing[*]}" >&2
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

ensure_swift() {
    command -v swift >/dev/null 2>&1 && return 0
    [ -x /opt/swift/usr/bin/swift ] && export PATH="/opt/swift/usr/bin:$PATH" && return 0
    echo "swift not found: install Swift 6 (https://swift.org/install) and put it on PATH" >&2
    exit 1
}

# On first use, .env comes from .env.example with a fresh random JWT_SECRET.
ensure_env_file() {
    [ -f .env ] && return 0
    local secret
    secret=$(head -c 48 /dev/urandom | od -An -tx1 | tr -d ' \n')
    sed "s|^JWT_SECRET=.*|JWT_SECRET=$secret|" .env.example > .env
    chmod 600 .env
    echo "wrote .env from .env.example with a new random JWT_SECRET (the database lines are commented out: a private PostgreSQL serves until you set them)" >&2
}

# True when the environment or .env names a database (DATABASE_URL or the Node server's DB_*).
database_configured() {
    env | grep -qE '^(DATABASE_URL|DB_HOST|DB_PORT|DB_USER|DB_PASSWORD|DB_NAME)=.' && return 0
    [ -f "${ENV_FILE:-.env}" ] &&
        grep -qE '^[[:space:]]*(export[[:space:]]+)?(DATABASE_URL|DB_HOST|DB_PORT|DB_USER|DB_PASSWORD|DB_NAME)[[:space:]]*=' "${ENV_FILE:-.env}"
}

# A folder outside the checkout for what the tests set up once per machine (virtualenvs), so
# a fresh clone does not fetch and build them again: one folder per content of the files
# that define it (KEY_FILES), under /var/cache when writable, else the user's cache.
#   cache_dir NAME KEY_FILES...
cache_dir() {
    local name=$1 base=/var/cache/swift-chat-server
    shift
    [ -w /var/cache ] || base="${XDG_CACHE_HOME:-$HOME/.cache}/swift-chat-server"
    # The python that builds a venv is part of its identity: an upgraded python3 gets a new one.
    echo "$base/$name-$({ cat "$@"; python3 --version; } | sha256sum | cut -c1-12)"
}

# Runs "$@" to build DIR unless DIR/.complete says an earlier run finished it; one builder at
# a time (flock), and a half-built DIR is started over.
#   build_once DIR COMMAND...
build_once() {
    local dir=$1
    shift
    mkdir -p "$(dirname "$dir")"
    (
        flock 9
        [ -f "$dir/.complete" ] && exit 0
        rm -rf "$dir"
        "$@" && touch "$dir/.complete"
    ) 9>"$dir.lock"
}

# Who listens on TCP port $1, as "(by NAME, pid N)" ("(by a program of another user)" when ss
# may not say); nothing when the port is free. Any address counts: a listener on 0.0.0.0 or ::
# takes 127.0.0.1's port too.
port_user() {
    local lines
    if ! command -v ss >/dev/null 2>&1; then
        # No ss yet (iproute2 comes with ensure_packages): a bind that fails says the port is taken.
        python3 -c 'import socket, sys; socket.socket().bind(("0.0.0.0", int(sys.argv[1])))' "$1" 2>/dev/null ||
            echo "(by another program)"
        return 0
    fi
    lines=$(ss -Hltnp "sport = :$1" 2>/dev/null) || return 0
    [ -n "$lines" ] || return 0
    local who
    who=$(sed -n 's/.*users:(("\([^"]*\)",pid=\([0-9]*\).*/(by \1, pid \2)/p' <<< "$lines" | head -n 1)
    echo "${who:-(by a program of another user)}"
}

# PORT as the server will take it: from the environment when set there (even empty), else the
# last PORT= line of .env (or ENV_FILE), unquoted and without a trailing comment; 5001 when
# empty or absent.
server_port() {
    local value=""
    if [ -n "${PORT+set}" ]; then
        value=$PORT
    elif [ -f "${ENV_FILE:-.env}" ]; then
        value=$(sed -nE 's/^[[:space:]]*(export[[:space:]]+)?PORT[[:space:]]*[=:][[:space:]]*//p' "${ENV_FILE:-.env}" | tail -n 1 |
            sed -E "s/[[:space:]]+#.*$//; s/^([\"'\`])(.*)\1$/\2/; s/^[[:space:]]+|[[:space:]]+$//g")
    fi
    echo "${value:-5001}"
}

# A TCP port nobody listens on now, from the kernel.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_cluster DIR [PORT] [--throwaway]: pg-cluster.sh start, exporting the DATABASE_URL it
# prints, or a one-line reason and exit 1. (`export "$(pg-cluster.sh start …)"` carried on
# after a failure, exporting an empty name: set -e does not see a failing command
# substitution inside export's argument.) Descriptor 9 (run.sh's lock) is not handed on to
# PostgreSQL, which outlives the script.
start_cluster() {
    local line
    line=$(scripts/pg-cluster.sh start "$@" 9>&-) || die "the PostgreSQL cluster in $1 could not be started (see above)"
    [[ "$line" == DATABASE_URL=postgres://* ]] || die "pg-cluster.sh printed no DATABASE_URL for $1 (got '$line')"
    export "$line"
}
