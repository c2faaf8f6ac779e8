# Shared by run.sh and test.sh: system packages, .env, and whether a database is configured.

# Installs the Debian packages the build and the private cluster need, only those missing.
ensure_packages() {
    local wanted=(libpq-dev libssl-dev libcrypt-dev postgresql postgresql-client python3-venv) missing=()
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
    echo "$base/$name-$(cat "$@" | sha256sum | cut -c1-12)"
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
