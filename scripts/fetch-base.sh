#!/bin/bash
# Fetch the pinned QEMU base (Debian's +ds orig tarball) into build/base/,
# verify it, and print the path of the verified tarball on stdout.
#
# If the pinned Debian revision has left the archive, take the newest 10.0.x
# source that apt offers, say so loudly, and verify it against the checksum
# in its .dsc (apt has already checked the .dsc signature chain).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/base.env"
dest="$top/build/base"
mkdir -p "$dest"

log() { echo "fetch-base: $*" >&2; }
die() { echo "fetch-base: error: $*" >&2; exit 1; }

sha_ok() { # file expected-sha256
    [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]
}

if sha_ok "$dest/$QEMU_BASE_TARBALL" "$QEMU_BASE_SHA256"; then
    echo "$dest/$QEMU_BASE_TARBALL"
    exit 0
fi
# A fallback base fetched earlier (see below) is kept with its checksum.
for f in "$dest"/qemu_*.orig.tar.xz; do
    if [ -f "$f.sha256" ] && sha_ok "$f" "$(cat "$f.sha256")"; then
        log "WARNING: using the fallback base $(basename "$f"), not the pinned $QEMU_BASE_VERSION"
        echo "$f"
        exit 0
    fi
done

# Make sure apt knows source packages of the 10.0 series.
. "$top/scripts/apt-sources.sh"
rewind_apt_sources || die "apt has no deb-src entry carrying qemu $QEMU_BASE_SERIES.x"
srcinfo=$(apt-cache showsrc qemu 2>/dev/null || true)
grep -q "^Version: 1:$QEMU_BASE_SERIES\." <<<"$srcinfo" ||
    die "no qemu $QEMU_BASE_SERIES.x source in apt after adding $REWIND_APT_LIST"

versions=$(sed -n 's/^Version: //p' <<<"$srcinfo" | sort -u)
version=$QEMU_BASE_VERSION
sha=$QEMU_BASE_SHA256
tarball=$QEMU_BASE_TARBALL
if ! grep -qxF "$QEMU_BASE_VERSION" <<<"$versions"; then
    version=$(grep "^1:$QEMU_BASE_SERIES\." <<<"$versions" |
              sort -V | tail -n1)
    [ -n "$version" ] || die "no qemu $QEMU_BASE_SERIES.x in apt's sources"
    upstream=${version#1:}
    upstream=${upstream%-*}
    tarball="qemu_${upstream}.orig.tar.xz"
    sha=""
    cat >&2 <<EOW
************************************************************************
fetch-base: WARNING: the pinned base $QEMU_BASE_VERSION is no longer in
fetch-base: WARNING: Debian's archive. Falling back to $version.
fetch-base: WARNING: The build goes on if our patches still apply; update
fetch-base: WARNING: scripts/base.env once it is known to work.
************************************************************************
EOW
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log "downloading qemu=$version"
# _apt cannot write into a root-owned mktemp dir; that only costs a warning.
(cd "$work" && apt-get source -q --download-only "qemu=$version" >&2) ||
    die "apt-get source qemu=$version failed"
[ -f "$work/$tarball" ] || die "apt-get source did not produce $tarball"
if [ -z "$sha" ]; then
    dsc=$(ls "$work"/*.dsc)
    sha=$(awk -v f="$tarball" '/^Checksums-Sha256:/{s=1;next} /^[^ ]/{s=0}
                                s && $3==f {print $1}' "$dsc")
    [ -n "$sha" ] || die "no sha256 for $tarball in $dsc"
fi
sha_ok "$work/$tarball" "$sha" || die "sha256 mismatch for $tarball (expected $sha)"
mv "$work/$tarball" "$dest/$tarball"
[ "$tarball" = "$QEMU_BASE_TARBALL" ] || echo "$sha" > "$dest/$tarball.sha256"
log "verified $tarball (sha256 $sha)"
echo "$dest/$tarball"
