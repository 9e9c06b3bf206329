# Sourced: make apt see what the build needs, when running as root.
#  - deb-src entries for the suites carrying the QEMU base (QEMU_BASE_SUITES);
#  - on Debian 12, binary packages from bookworm-backports (meson >= 1.5,
#    Catch2 v3).
# Everything is written to one file so it is easy to find and remove.
REWIND_APT_LIST=/etc/apt/sources.list.d/qemu-rewind.sources

rewind_apt_sources() {
    local codename want
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    want="Types: deb-src
URIs: http://deb.debian.org/debian
Suites: $QEMU_BASE_SUITES
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"
    if [ "$codename" = bookworm ]; then
        want="$want

Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"
    fi
    if [ "$(cat "$REWIND_APT_LIST" 2>/dev/null)" != "$want" ]; then
        if [ "$(id -u)" != 0 ]; then
            echo "apt needs these sources (run as root, or add them by hand to $REWIND_APT_LIST):" >&2
            echo "$want" >&2
            return 1
        fi
        echo "$want" > "$REWIND_APT_LIST"
        apt-get update -q >&2
    elif [ ! -d /var/lib/apt/lists ] || [ -z "$(ls /var/lib/apt/lists/*_source_Sources* 2>/dev/null)" ]; then
        [ "$(id -u)" = 0 ] && apt-get update -q >&2
    fi
    return 0
}
