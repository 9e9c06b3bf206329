# Sourced: the identity of a prepared tree, from the base tarball and patches.
tree_stamp() { # tarball patch...
    { basename "$1"; shift; cat "$@" /dev/null; } | sha256sum | cut -d' ' -f1
}
