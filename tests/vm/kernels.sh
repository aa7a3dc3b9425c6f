#!/usr/bin/env bash
# Prints the kernel images the VM tests boot, one path per line, oldest
# first: the newest is the last line.
#
# SCX_LLMOS_KERNEL      one image (vmlinuz, with its modules beside it): only it.
# SCX_LLMOS_KERNEL_DIR  else every */vmlinuz under this folder (default: the
#                       kernel matrix in ../shared/vm/kernel beside the clone).
# Prints nothing when neither exists: the tests then boot the running kernel
# (vng -r), as on a developer's own sched_ext machine.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [[ -n ${SCX_LLMOS_KERNEL:-} ]]; then
  [[ -f $SCX_LLMOS_KERNEL ]] ||
    { echo "kernels.sh: SCX_LLMOS_KERNEL=$SCX_LLMOS_KERNEL is not a file" >&2; exit 2; }
  realpath "$SCX_LLMOS_KERNEL"
  exit 0
fi
dir=${SCX_LLMOS_KERNEL_DIR:-$here/../../../shared/vm/kernel}
if [[ -n ${SCX_LLMOS_KERNEL_DIR:-} && ! -d $dir ]]; then
  echo "kernels.sh: SCX_LLMOS_KERNEL_DIR=$dir is not a folder" >&2
  exit 2
fi
[[ -d $dir ]] || exit 0
# Folders are named after the release (6.16.12+deb13-amd64): sort by version.
for image in "$dir"/*/vmlinuz; do
  [[ -f $image ]] && echo "$(basename "$(dirname "$image")") $(realpath "$image")"
done | sort -V -k1,1 | cut -d' ' -f2
