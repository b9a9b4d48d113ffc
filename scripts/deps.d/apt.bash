# Sourced by the scripts here (not run on its own: .ci/run runs *.sh only).
#
# apt_install PKG...: installs Debian packages without starting their
# services. A policy-rc.d answering 101 ("action forbidden") stops dpkg's
# maintainer scripts from starting nginx on :80, redis on :6379 or
# Prometheus on :9090; the tests and benchmarks start their own instances on
# free loopback ports. An existing policy is left as it is.
apt_install() {
    local policy=/usr/sbin/policy-rc.d created=0 status=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" || status=$?
    if [ "$created" = 1 ]; then rm -f "$policy"; fi
    return "$status"
}

# venv_install VENV REQUIREMENTS: a fresh venv at VENV with the pinned
# REQUIREMENTS installed. Debian's python3 needs python3-venv (ensurepip)
# to make a venv, so that comes first when it is missing.
venv_install() {
    if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
        apt_install python3-venv
    fi
    rm -rf "$1"
    python3 -m venv "$1"
    "$1/bin/python" -m pip install -q --disable-pip-version-check -r "$2"
}
