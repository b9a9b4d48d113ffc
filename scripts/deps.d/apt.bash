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
