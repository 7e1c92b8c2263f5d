#!/bin/sh
# mkguest.sh OUTDIR
#
# Builds a tiny Linux guest for QEMU:
#   OUTDIR/bzImage        Debian's cloud kernel (linux-image-6.1.0-*-cloud-amd64)
#   OUTDIR/initramfs.gz   busybox-static, the virtio-net-pci modules and an /init
#
# The kernel package is fetched with "apt-get download" and unpacked with
# "dpkg-deb -x" into a temporary directory; nothing is installed.  Set
# KERNEL_DEB=/path/to/linux-image-...deb to use an already downloaded package.
#
# Kernel command line understood by /init:
#   guest_ip=ADDR/PREFIX   static address for eth0 (default 192.0.2.2/24)
#   guest_ping=ADDR        optional: ping ADDR once a second and print results
#   guest_echo=PORT        optional: a TCP echo server on PORT (busybox nc
#                          running cat), started before the ready line
#   guest_neigh=ADDR,MAC   optional: a permanent ARP entry (no ARP, and so
#                          no ARP retransmission timer, for ADDR)
#   guest_stream=PORT      optional: stream-rx (tests/guest/stream-rx.c, built
#                          here statically) verifies the UDP stream of
#                          tests/vhost-migrate.py on PORT
# Once eth0 is up, /init prints a line starting with "VHOST-GUEST-READY" on
# the console, then stays alive.
#
# Idempotent: does nothing when OUTDIR holds artifacts made by this version
# of the script and of stream-rx.c.  Needs: apt-get, dpkg-deb,
# busybox-static, cpio, gzip, modinfo, a C compiler and a static libc.

set -e

if test $# -ne 1; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
outdir=$1
me=$0
streamrx_src=$(dirname "$me")/stream-rx.c

die() {
    echo "mkguest.sh: $*" >&2
    exit 1
}

for tool in dpkg-deb cpio gzip modinfo sha256sum ${CC:-cc}; do
    command -v $tool >/dev/null 2>&1 || \
        PATH=$PATH:/sbin:/usr/sbin command -v $tool >/dev/null 2>&1 || \
        die "missing tool: $tool"
done
PATH=$PATH:/sbin:/usr/sbin

busybox=
for b in /bin/busybox /usr/bin/busybox; do
    if test -x $b && LC_ALL=C ldd $b 2>&1 | grep -q 'not a dynamic'; then
        busybox=$b
        break
    fi
done
test -n "$busybox" || die "a statically linked busybox is needed (apt-get install busybox-static)"

script_sum=$(cat "$me" "$streamrx_src" | sha256sum | cut -d' ' -f1)
if test -f "$outdir/bzImage" && test -f "$outdir/initramfs.gz" && \
   test -f "$outdir/stamp" && \
   test "$(sed -n 's/^script=//p' "$outdir/stamp")" = "$script_sum"; then
    echo "mkguest.sh: $outdir is up to date ($(sed -n 's/^kernel=//p' "$outdir/stamp"))"
    exit 0
fi

mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mkguest.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# 1. The kernel package.
if test -n "$KERNEL_DEB"; then
    test -f "$KERNEL_DEB" || die "KERNEL_DEB=$KERNEL_DEB does not exist"
    deb=$KERNEL_DEB
else
    pkg=$(apt-cache pkgnames linux-image-6.1.0- 2>/dev/null | \
          grep -E '^linux-image-6\.1\.0-[0-9]+-cloud-amd64$' | sort -V | tail -n 1)
    test -n "$pkg" || \
        die "no linux-image-6.1.0-*-cloud-amd64 known to apt (run apt-get update)"
    echo "mkguest.sh: downloading $pkg"
    sandbox=
    test "$(id -u)" = 0 && sandbox="-o APT::Sandbox::User=root"
    (cd "$tmp" && apt-get -q $sandbox download "$pkg") || \
        die "apt-get download $pkg failed"
    deb=$(ls "$tmp"/"$pkg"_*.deb)
fi
mkdir "$tmp/kernel"
dpkg-deb -x "$deb" "$tmp/kernel"
kver=$(ls "$tmp/kernel/lib/modules" | head -n 1)
test -n "$kver" || die "no modules in $deb"
test -f "$tmp/kernel/boot/vmlinuz-$kver" || die "no vmlinuz-$kver in $deb"
moddir=$tmp/kernel/lib/modules/$kver

# 2. The modules virtio-net-pci needs, with their dependencies, in load order.
find_module() {
    # Prints the file of module $1 (or nothing if it is built in).
    if grep -q "/$1\.ko\$" "$moddir/modules.builtin" 2>/dev/null; then
        return 0
    fi
    f=$(find "$moddir" -name "$1.ko" -o -name "$1.ko.xz" -o -name "$1.ko.zst" \
        | head -n 1)
    test -n "$f" || die "module $1 not found in $kver"
    echo "$f"
}
load_order=
add_module() {
    case " $load_order " in
        *" $1 "*) return 0 ;;
    esac
    f=$(find_module "$1")
    test -n "$f" || return 0
    for dep in $(modinfo -F depends "$f" | tr ',' ' '); do
        add_module "$dep"
    done
    load_order="$load_order $1"
}
for m in virtio_pci virtio_net; do
    add_module $m
done
# The ACPI power button, for "virsh reboot" and "virsh shutdown" (busybox
# acpid powers the guest off when it is pressed).
for m in button evdev; do
    add_module $m
done
echo "mkguest.sh: kernel $kver, modules:$load_order"

# 3. The initramfs.
root=$tmp/root
mkdir -p "$root/bin" "$root/sbin" "$root/usr/bin" "$root/usr/sbin" \
         "$root/proc" "$root/sys" "$root/dev" "$root/tmp" "$root/etc" \
         "$root/lib/modules"
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list-full); do
    test -e "$root/$applet" || ln -s /bin/busybox "$root/$applet"
done
for m in $load_order; do
    f=$(find_module $m)
    case $f in
        *.xz) xz -dc "$f" > "$root/lib/modules/$m.ko" ;;
        *.zst) zstd -qdc "$f" > "$root/lib/modules/$m.ko" ;;
        *) cp "$f" "$root/lib/modules/$m.ko" ;;
    esac
done
echo $load_order > "$root/etc/modules"
mkdir -p "$root/etc/acpi/PWRF"
printf '#!/bin/sh\necho "guest: ACPI power button: powering off" > /dev/console\nsync\npoweroff -f\n' \
    > "$root/etc/acpi/PWRF/00000080"
chmod 755 "$root/etc/acpi/PWRF/00000080"
${CC:-cc} -static -O2 -o "$root/bin/stream-rx" "$streamrx_src" || \
    die "cannot build stream-rx statically (a static libc: libc6-dev)"

cat > "$root/init" <<'EOF'
#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null

guest_ip=192.0.2.2/24
guest_ping=
guest_echo=
guest_neigh=
guest_stream=
for arg in $(cat /proc/cmdline); do
    case $arg in
        guest_ip=*) guest_ip=${arg#guest_ip=} ;;
        guest_ping=*) guest_ping=${arg#guest_ping=} ;;
        guest_echo=*) guest_echo=${arg#guest_echo=} ;;
        guest_neigh=*) guest_neigh=${arg#guest_neigh=} ;;
        guest_stream=*) guest_stream=${arg#guest_stream=} ;;
    esac
done

echo "guest: loading modules: $(cat /etc/modules)"
for m in $(cat /etc/modules); do
    insmod /lib/modules/$m.ko || echo "guest: insmod $m failed"
done

i=0
while ! test -e /sys/class/net/eth0; do
    i=$((i + 1))
    if test $i -gt 300; then
        echo "VHOST-GUEST-FAILED no eth0"
        ls /sys/class/net
        break
    fi
    sleep 0.1
done
acpid -c /etc/acpi -l /dev/null
ip link set lo up
ip link set eth0 up
ip addr add $guest_ip dev eth0
if test -n "$guest_neigh"; then
    arp -i eth0 -s ${guest_neigh%%,*} ${guest_neigh#*,}
fi
mac=$(cat /sys/class/net/eth0/address)
if test -n "$guest_echo"; then
    nc -ll -p $guest_echo -e /bin/cat &
    echo "guest: TCP echo server on port $guest_echo"
fi
if test -n "$guest_stream"; then
    stream-rx $guest_stream &
    sleep 0.2
fi
echo "VHOST-GUEST-READY ip=$guest_ip mac=$mac"

if test -n "$guest_ping"; then
    while :; do
        ping -c 1 -W 1 $guest_ping >/dev/null 2>&1 && r=ok || r=fail
        echo "guest: ping $guest_ping $r"
        sleep 1
    done
fi
while :; do
    sleep 3600
done
EOF
chmod 755 "$root/init"

(cd "$root" && find . | sort | cpio -o -H newc --quiet -R 0:0) | \
    gzip -9 > "$tmp/initramfs.gz"
cp "$tmp/kernel/boot/vmlinuz-$kver" "$tmp/bzImage"
mv "$tmp/bzImage" "$outdir/bzImage"
mv "$tmp/initramfs.gz" "$outdir/initramfs.gz"
printf 'script=%s\nkernel=%s\n' "$script_sum" "$kver" > "$outdir/stamp"
echo "mkguest.sh: wrote $outdir/bzImage and $outdir/initramfs.gz ($kver)"
