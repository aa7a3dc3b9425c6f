#!/usr/bin/env bash
# Runs CMD as root in a virtme-ng VM that boots a sched_ext kernel, with this
# tree shared at the same path, and exits with CMD's exit status.
#
#   usage: tests/vm/run.sh CMD [ARGS...]
#
# SCX_LLMOS_KERNEL  kernel image (vmlinuz, with its modules beside it). Unset:
#                   the newest of the kernel matrix (tests/vm/kernels.sh), or,
#                   with no matrix, the running kernel, as `vng -r` boots it.
# SCX_LLMOS_KVM=1   use KVM instead of TCG software emulation (only where KVM
#                   can boot the kernel; not on the CI machines).
# VM_OUT            host directory the guest may write (default target/vm-out);
#                   the guest kernel's console is saved there as console.log.
# VM_TCG_THREAD     single (default) or multi. Single-threaded TCG runs the
#                   vCPUs round-robin on one host thread, switching only when
#                   one idles or every 100 ms, so guest-timed latencies are
#                   coarse; multi-threaded TCG runs them in parallel but oopses
#                   after a few hundred attach/detach cycles: use it only for
#                   boots that attach a few times and measure timing.
# VM_QEMU_OPTS      more qemu options, e.g. a topology: "-smp 4,sockets=2,cores=2,threads=1"
#                   (with VM_CPUS=4) gives 2 LLCs of 2 CPUs (a later -smp wins).
# VM_VNG_OPTS       more vng options, e.g. NUMA nodes: "--numa 1G,cpus=0-1
#                   --numa 1G,cpus=2-3" (their sizes add up to VM_MEM).
# VM_CPUS (2)  VM_MEM (2G)  VM_TIMEOUT (seconds, 900)
set -euo pipefail

(($#)) || { echo "usage: $0 CMD [ARGS...]" >&2; exit 2; }
export PATH=/opt/vng/bin:/opt/virtiofsd/bin:$PATH
for tool in vng virtiofsd qemu-system-x86_64; do
  command -v "$tool" >/dev/null ||
    { echo "run.sh: $tool not found: run tests/vm/setup.sh first" >&2; exit 2; }
done

kernel=$("$(dirname "$0")/kernels.sh" | tail -n 1)
kernel_args=(-r)
if [[ -n $kernel ]]; then
  kernel_args=(-r "$kernel")
  echo "run.sh: booting $kernel" >&2
else
  echo "run.sh: no SCX_LLMOS_KERNEL and no kernel matrix: booting the running kernel ($(uname -r))" >&2
fi

accel=(--disable-kvm)
# QEMU before 8.0 computes the flags of an emulated cmpxchg16b from stale
# state, and guest kernels die of it at random (tests/vm/setup.sh installs a
# newer one; the portability test's cpu_keeps_flags check fails on it).
qemu_major=$(qemu-system-x86_64 --version | sed -n 's/^QEMU emulator version \([0-9]*\)\..*/\1/p')
if ((${qemu_major:-0} < 8)) && [[ ${SCX_LLMOS_KVM:-0} != 1 ]]; then
  echo "run.sh: warning: QEMU $qemu_major.x corrupts RFLAGS under TCG (fixed in 8.0); guests may crash" >&2
fi
qemu_opts="-accel tcg,thread=${VM_TCG_THREAD:-single} ${VM_QEMU_OPTS:-}"
if [[ ${SCX_LLMOS_KVM:-0} == 1 ]]; then
  accel=()
  qemu_opts="${VM_QEMU_OPTS:-}"
fi

VM_OUT=${VM_OUT:-$PWD/target/vm-out}
mkdir -p "$VM_OUT"
: >"$VM_OUT/console.log"
# A second console carries the guest kernel's log (oopses, sched_ext errors) to
# the host, so a crashed guest explains itself.
qemu_opts+=" -chardev file,id=klog,path=$VM_OUT/console.log"
qemu_opts+=" -device virtio-serial-pci,id=klogbus -device virtconsole,chardev=klog,bus=klogbus.0"
# Modules udev would load for a q35 machine; decompressing them under TCG costs
# seconds and nothing here needs them.
blacklist="modprobe.blacklist=kvm,kvm_amd,kvm_intel,ccp,ahci,libahci,libata,sr_mod,cdrom,sg,scsi_mod,psmouse,aesni_intel,i2c_i801,iTCO_wdt,intel_pmc_bxt,lpc_ich,pcspkr,serio_raw,evdev,qemu_fw_cfg,i6300esb,button"

# vng (qemu) reopens stdout and stderr with truncation, so both are piped,
# never left on a file the caller redirected; timeout guards
# against a hung guest hanging the caller for ever.
set +e
read -ra vng_opts <<<"${VM_VNG_OPTS:-}"
timeout "${VM_TIMEOUT:-900}" vng "${kernel_args[@]}" "${accel[@]}" "${vng_opts[@]}" \
  -p "${VM_CPUS:-2}" -m "${VM_MEM:-2G}" --rwdir="$VM_OUT" \
  -a "$blacklist console=hvc0 loglevel=6" --qemu-opts="$qemu_opts" -- "$@" 2>&1 | cat
status=${PIPESTATUS[0]}
set -e
if ((status == 124)); then
  echo "run.sh: the VM did not finish within ${VM_TIMEOUT:-900} s" >&2
elif ((status == 255)); then
  echo "run.sh: the VM failed (exit 255); guest console: $VM_OUT/console.log" >&2
  tail -n 40 "$VM_OUT/console.log" >&2 || true
fi
exit "$status"
