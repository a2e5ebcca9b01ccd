#!/usr/bin/env bash
# Run tests under Debian's stock kernel, in a VM, for what this host's
# kernel cannot do.
#
# The machines this project is developed and tested on run a kernel built
# without XFS and ext4 quota support (CONFIG_XFS_QUOTA, CONFIG_QFMT_V2), so
# the quota-mode tests skip there. This boots Debian's own kernel
# (linux-image-amd64, which has both) under qemu, shares the host's root
# file system with it over 9p, gives it a scratch disk as /tmp, and runs a
# command in this checkout — by default the capacity tests (already built:
# npm run build). The VM is root with every capability, unlike a pod; the
# tests write into volumes as an unprivileged user anyway.
#
#   test/vm/run-in-debian-kernel.sh [shell command]
#
# Needs qemu-system-x86 and busybox-static (apt-get install
# --no-install-recommends); the kernel package is downloaded, not
# installed. Runs under TCG (software emulation, a few minutes); set
# CSI_LAB_VM_KVM=1 to use KVM where nested virtualisation works.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
vm=${CSI_LAB_VM_DIR:-/var/tmp/csi-lab-vm}
cmd=${1:-"node node_modules/.bin/mocha --no-config --timeout 1800000 dist/test/sanity/capacity-limit.test.js dist/test/sanity/volume-stats-own-usage.test.js dist/test/sanity/quota-volume.test.js dist/test/sanity/capacity-promises.test.js"}

for tool in qemu-system-x86_64 busybox; do
  command -v "$tool" >/dev/null || { echo "$tool is missing (apt-get install qemu-system-x86 busybox-static)" >&2; exit 2; }
done
mkdir -p "$vm"
cd "$vm"

# The kernel: Debian's current one for this release, unpacked here.
pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ { print $2; exit }')
kver=${pkg#linux-image-}
if [[ ! -f "k/boot/vmlinuz-$kver" ]]; then
  apt-get download "$pkg"
  dpkg -x "$pkg"_*.deb k
  busybox depmod -b "$vm/k" "$kver"
fi

# A small initramfs: busybox and what it takes to mount the host over 9p.
rm -rf initrd
mkdir -p initrd/bin initrd/sbin initrd/proc initrd/sys initrd/dev initrd/host "initrd/lib/modules/$kver"
cp "$(command -v busybox)" initrd/bin/busybox
mods="k/lib/modules/$kver"
grep -E '^kernel/(fs/9p/9p|net/9p/9pnet_virtio|drivers/virtio/virtio_pci|drivers/block/virtio_blk)\.ko:' "$mods/modules.dep" |
  tr -d ':' | tr ' ' '\n' | sort -u | while read -r ko; do
    mkdir -p "initrd/lib/modules/$kver/$(dirname "$ko")"
    cp "$mods/$ko" "initrd/lib/modules/$kver/$ko"
  done
cp "$mods/modules.dep" "$mods/modules.alias" "initrd/lib/modules/$kver/"
cat >initrd/init <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
/bin/busybox --install -s /sbin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in virtio_pci 9pnet_virtio 9p virtio_blk; do modprobe \$m; done
mount -t 9p -o trans=virtio,version=9p2000.L,msize=1048576,cache=loose host /host || poweroff -f
# Every module, for the kernel's own loading (which runs in this root) and ours.
mount --bind /host$vm/k/lib/modules/$kver /lib/modules/$kver
for m in loop xfs ext4 btrfs quota_v2 crc32c_generic; do modprobe \$m; done
mount -t proc proc /host/proc; mount -t sysfs sys /host/sys; mount -t devtmpfs dev /host/dev
mount -t tmpfs run /host/run
chroot /host mkfs.ext4 -q -F /dev/vda && mount -t ext4 /dev/vda /host/tmp
CMD=\$(cat /host$vm/cmd)
chroot /host /bin/sh -c "cd '$repo' && \$CMD"
echo "=== exit \$?"
sync; umount -l /host/tmp; sync
poweroff -f
EOF
chmod +x initrd/init
(cd initrd && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1 >../initrd.gz)
printf '%s\n' "$cmd" >cmd
rm -f disk.img
truncate -s 24G disk.img

accel=(-cpu max)
[[ "${CSI_LAB_VM_KVM:-}" == 1 ]] && accel=(-enable-kvm -cpu host)
qemu-system-x86_64 "${accel[@]}" -m 6144 -smp 2 -nographic -no-reboot -net none \
  -kernel "k/boot/vmlinuz-$kver" -initrd initrd.gz -append "console=ttyS0 quiet rdinit=/init" \
  -virtfs "local,path=/,mount_tag=host,security_model=passthrough,multidevs=remap,id=host" \
  -drive "file=disk.img,if=virtio,format=raw" | tee console.log
rm -f disk.img
status=$(sed -n 's/.*=== exit \([0-9]*\).*/\1/p' console.log | tail -n 1)
exit "${status:-1}"
