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
