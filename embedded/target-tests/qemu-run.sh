#!/bin/sh
# Cargo runner: qemu-run.sh DEFAULT_BOARD ELF. EMB_BOARD (also read by build.rs) overrides the
# board. Exit status = the guest's semihosting exit code (0 pass, 1 fail, 3 CPU fault, 101 panic);
# 124 if it hangs past EMB_TIMEOUT seconds (default 300). -icount shift=0: one virtual ns per guest
# instruction, so the guest's counters count instructions deterministically.
board=${EMB_BOARD:-$1}
shift
common="-nographic -semihosting-config enable=on,target=native -icount shift=0 $EMB_QEMU_EXTRA"
case "$board" in
  mps2-an385)   set -- qemu-system-arm -machine mps2-an385 $common -kernel "$@" ;;  # Cortex-M3
  mps2-an386)   set -- qemu-system-arm -machine mps2-an386 -cpu cortex-m4 $common -kernel "$@" ;;
  mps2-an500)   set -- qemu-system-arm -machine mps2-an500 -cpu cortex-m7 $common -kernel "$@" ;;
  mps2-an505)   set -- qemu-system-arm -machine mps2-an505 $common -kernel "$@" ;;  # Cortex-M33
  mps3-an547)   set -- qemu-system-arm -machine mps3-an547 $common -kernel "$@" ;;  # Cortex-M55
  microbit)     set -- qemu-system-arm -machine microbit $common -kernel "$@" ;;    # Cortex-M0
  riscv-virt)   set -- qemu-system-riscv32 -machine virt -bios none -nic none $common -kernel "$@" ;;
  # -nic none: the virt board's default NIC needs efi-virtio.rom (ipxe-qemu), and nothing here uses it.
  aarch64-virt) set -- qemu-system-aarch64 -machine virt -cpu cortex-a72 -nic none $common -kernel "$@" ;;
  *) echo "qemu-run.sh: unknown board '$board'" >&2; exit 2 ;;
esac
exec timeout "${EMB_TIMEOUT:-300}" "$@"
