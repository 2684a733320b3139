# Ending the VM through QEMU's isa-debug-exit device.
.include "layout.inc"

.section .text
# qemu_exit - write EDI to the debug-exit port: QEMU exits with status (EDI << 1) | 1.
# Does not return (halts if the device is missing).
.global qemu_exit
qemu_exit:
    mov eax, edi
    mov dx, DEBUG_EXIT_PORT
    out dx, eax
.Lstop:
    cli
    hlt
    jmp .Lstop
