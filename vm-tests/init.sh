#!/bin/sh
# /init of the kms-edge test guest. It sets up the guest (filesystems, the
# virtio NIC, the address from the kernel command line) and then runs the
# commands the host types on the serial console, one line each, framing each
# command's output as
#   @@BEGIN <n>
#   ...output...
#   @@END <n> <exit status>
# so the host can drive scenarios and read the results. `poweroff -f` ends it.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /sys/fs/bpf /tmp /run /var/lib
mount -t bpf bpf /sys/fs/bpf
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run

# Parameters from the kernel command line: kms.addr=IP/LEN
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        kms.addr=*) ADDR="${arg#kms.addr=}" ;;
    esac
done

# The virtio stack, in dependency order, then the socket-diagnostics modules
# (a full system loads those on demand); a module built into this kernel is
# simply not in the initramfs.
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci failover net_failover virtio_net inet_diag tcp_diag; do
    [ -f "/lib/modules/$m.ko" ] && insmod "/lib/modules/$m.ko" 2>/dev/null
done
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do
    sleep 0.1
    i=$((i + 1))
done
ip link set lo up
ip link set eth0 up
ip addr add "$ADDR" dev eth0

stty -echo -onlcr 2>/dev/null
echo "@@READY $(uname -r)"
n=0
while read -r line; do
    n=$((n + 1))
    echo "@@BEGIN $n"
    sh -c "$line" 2>&1
    status=$?
    echo "@@END $n $status"
done
poweroff -f
