#!/bin/bash
# Prepare a QEMU source tree from the verified base tarball.
#
#   prepare-tree.sh rewind   -> build/src: a git repository holding the base
#                               as one commit (tag "base"), then one commit per
#                               patch of patches/series, plus our overlay files
#                               symlinked in at QEMU's own paths.
#   prepare-tree.sh vanilla  -> build/vanilla-src: the base, untouched.
#
# Re-running is cheap: the tree is only rebuilt when the base or the patches
# changed, and never when that would throw away a developer's work there.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/base.env"
. "$top/scripts/tree-stamp.sh"
mode=${1:-rewind}

log() { echo "prepare-tree: $*" >&2; }
die() { echo "prepare-tree: error: $*" >&2; exit 1; }

tarball=$("$top/scripts/fetch-base.sh")

unpack() { # dest
    local dest=$1 tmp
    tmp=$(mktemp -d "$top/build/unpack.XXXXXX")
    log "unpacking $(basename "$tarball") into ${dest#"$top"/}"
    tar --no-same-owner -C "$tmp" -xf "$tarball"
    rm -rf "$dest"
    mv "$tmp"/qemu-* "$dest"
    rmdir "$tmp"
}

series="$top/patches/series"
patches=()
while read -r p; do
    p=${p%%#*}
    p=$(echo "$p" | xargs)
    [ -n "$p" ] || continue
    [ -f "$top/patches/$p" ] || die "patches/series names $p, which does not exist"
    patches+=("$top/patches/$p")
done < <(cat "$series" 2>/dev/null)

if [ "$mode" = vanilla ]; then
    # The unmodified base, for side-by-side benchmarks. Only the patches
    # whose subject starts with "build:" are applied: without them the +ds
    # tarball does not configure at all, and none changes what QEMU does.
    dest="$top/build/vanilla-src"
    build_patches=()
    for p in "${patches[@]}"; do
        grep -q '^Subject: \[PATCH\] build:' "$p" && build_patches+=("$p")
    done
    stamp=$(tree_stamp "$tarball" "${build_patches[@]}")
    if [ "$(cat "$dest/.rewind-stamp" 2>/dev/null)" != "$stamp" ]; then
        unpack "$dest"
        for p in "${build_patches[@]}"; do
            log "vanilla: applying build fix $(basename "$p")"
            patch -s -d "$dest" -p1 < "$p" || die "$(basename "$p") does not apply"
        done
        echo "$stamp" > "$dest/.rewind-stamp"
    fi
    exit 0
fi
[ "$mode" = rewind ] || die "usage: prepare-tree.sh rewind|vanilla"

dest="$top/build/src"

stamp=$(tree_stamp "$tarball" "${patches[@]}")

git_q() { git -C "$dest" -c user.name="QEMU Rewind" -c user.email=rewind@localhost "$@"; }

rebuild=yes
if [ -f "$dest/.git/rewind-stamp" ]; then
    read -r old_stamp old_head < "$dest/.git/rewind-stamp"
    if [ "$old_stamp" = "$stamp" ]; then
        rebuild=no
    else
        # The patches changed (a pull, or a refresh). Do not lose local work.
        if [ -n "$(git_q status --porcelain --untracked-files=no)" ]; then
            die "build/src has uncommitted changes and patches/ changed; commit them" \
                "and run 'make refresh-patches', or discard them, then retry"
        fi
        if [ "$(git_q rev-parse HEAD)" != "$old_head" ] &&
           [ "$(cat "$dest/.git/rewind-refreshed" 2>/dev/null)" != "$(git_q rev-parse HEAD)" ]; then
            die "build/src has commits not exported to patches/; run 'make refresh-patches' first"
        fi
    fi
fi

if [ $rebuild = yes ]; then
    unpack "$dest"
    git_q init -q
    git_q add -A -f .
    git_q commit -q -m "base: QEMU $QEMU_BASE_VERSION ($(basename "$tarball"))"
    git_q tag base
    for p in "${patches[@]}"; do
        log "applying $(basename "$p")"
        git_q am -q --keep-cr "$p" ||
            die "patch $(basename "$p") does not apply to $(basename "$tarball")"
    done
    echo "$stamp $(git_q rev-parse HEAD)" > "$dest/.git/rewind-stamp"
fi

# Overlay: symlink each of our QEMU-side files into the tree. They are new
# files; an upstream file is changed only through a patch.
exclude="$dest/.git/info/exclude"
: > "$exclude.new"
# Drop symlinks of overlay files that were removed or renamed.
find "$dest" -type l -lname "$top/*" | while read -r link; do
    [ -e "$link" ] || rm -f "$link"
done
for d in $QEMU_OVERLAY_DIRS; do
    [ -d "$top/$d" ] || continue
    (cd "$top" && find "$d" -type f ! -name '*~' ! -name '.*') |
    while read -r f; do
        target="$dest/$f"
        if [ -e "$target" ] && [ ! -L "$target" ]; then
            die "overlay file $f would replace an upstream file; change it with a patch instead"
        fi
        mkdir -p "$(dirname "$target")"
        ln -sfn "$top/$f" "$target"
        echo "/$f" >> "$exclude.new"
    done
done
mv "$exclude.new" "$exclude"
echo "/.rewind-stamp" >> "$exclude"
