#!/bin/sh
# Sets up everything on a fresh Debian 12 machine and runs the demo or the
# whole test suite:
#
#   ./run.sh demo     install dependencies, build, run the demo
#   ./run.sh check    install dependencies, build if needed, run all tests
#                     (then the tests of hostile guests and of the datapath
#                     again, against a switch built with sanitizers, in
#                     $BUILD_DIR-sanitizers)
#
# The build lands in $BUILD_DIR (default: _build in this directory).
# TESTSUITEFLAGS is passed on to the test suite (e.g. -j1, -k keyword, 3).
set -e

top=$(cd "$(dirname "$0")" && pwd)
build=${BUILD_DIR:-$top/_build}
what=${1:-}

case $what in
    demo|check) ;;
    *) echo "usage: $0 demo|check" >&2; exit 2 ;;
esac

# Debian packages: the build (OVS, DPDK), the test peers (testpmd, QEMU and
# what builds the tiny guest) and the tools the tests use.
packages="autoconf automake libtool make gcc clang libfuzzer-14-dev pkgconf
  patch python3
  libssl-dev libcap-ng-dev libnuma-dev dpdk-dev openvswitch-source
  qemu-system-x86 busybox-static cpio kmod iproute2 iputils-ping
  libvirt-daemon-system libvirt-clients
  util-linux procps ethtool python3-matplotlib
  debhelper dpkg-dev
  openvswitch-switch openvswitch-switch-dpdk ovn-central ovn-host"
missing=
for p in $packages; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null \
        | grep -q '^install ok installed$' || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "== installing:$missing"
    if [ "$(id -u)" != 0 ]; then
        echo "$0: run as root (apt-get install, and the tests need network namespaces)" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    # Debian's Open vSwitch and OVN packages are installed for their
    # binaries (the package and OVN tests start them with directories of
    # their own): their services must not start now.
    policy=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        policy=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' > $policy
        chmod 755 $policy
    fi
    rc=0
    apt-get update -q || rc=$?
    [ $rc != 0 ] || apt-get install -y -q --no-install-recommends $missing \
        || rc=$?
    [ -z "$policy" ] || rm -f $policy
    [ $rc = 0 ] || exit $rc
fi

# The QEMU test's guest kernel comes from Debian's archive (apt-get
# download): make sure apt knows it.
if [ "$what" = check ] && [ "$(id -u)" = 0 ] \
       && [ -z "$(apt-cache pkgnames linux-image-6.1.0- 2>/dev/null)" ]; then
    echo "== refreshing the package lists (guest kernel for the QEMU test)"
    apt-get update -q
fi

cd "$top"
if [ ! -x configure ] || [ configure.ac -nt configure ] \
       || [ Makefile.am -nt configure ]; then
    echo "== bootstrapping"
    autoreconf --install --force
fi
mkdir -p "$build"
cd "$build"
if [ ! -f Makefile ] || [ "$top/configure" -nt Makefile ]; then
    echo "== configuring in $build"
    "$top/configure"
fi
echo "== building (the first build of OVS takes several minutes)"
make -j"$(nproc)"

case $what in
    demo) exec make demo ;;
    check)
        make check TESTSUITEFLAGS="${TESTSUITEFLAGS:-}"
        # The whole suite also runs the tests of hostile guests and of the
        # datapath against a switch built with AddressSanitizer and
        # UndefinedBehaviorSanitizer, in a build of its own.
        if [ -z "${TESTSUITEFLAGS:-}" ] && [ "${VHOST_SANITIZERS:-yes}" = yes ]
        then
            sbuild=${SANITIZERS_BUILD_DIR:-$build-sanitizers}
            mkdir -p "$sbuild"
            cd "$sbuild"
            if [ ! -f Makefile ] || [ "$top/configure" -nt Makefile ]; then
                echo "== configuring in $sbuild (--enable-sanitizers)"
                "$top/configure" --enable-sanitizers
            fi
            echo "== building with sanitizers"
            make -j"$(nproc)"
            make check TESTSUITEFLAGS="-k hostile -k traffic"
        fi
        ;;
esac
