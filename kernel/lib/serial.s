# 16550 UART on COM1, polled: the kernel console.
.include "layout.inc"

.section .text
# serial_init - 115200 8N1, FIFOs on, UART interrupts off.  Clobbers rax, rdx.
.global serial_init
serial_init:
    mov dx, COM1 + 1
    xor eax, eax
    out dx, al                  # IER: no interrupts
    mov dx, COM1 + 3
    mov al, 0x80
    out dx, al                  # LCR: DLAB on
    mov dx, COM1 + 0
    mov al, 1
    out dx, al                  # divisor low: 115200 baud
    mov dx, COM1 + 1
    xor eax, eax
    out dx, al                  # divisor high
    mov dx, COM1 + 3
    mov al, 0x03
    out dx, al                  # LCR: 8N1, DLAB off
    mov dx, COM1 + 2
    mov al, 0xc7
    out dx, al                  # FCR: enable and clear FIFOs
    mov dx, COM1 + 4
    mov al, 0x03
    out dx, al                  # MCR: DTR, RTS
    ret

# serial_putc - write the byte in DIL, waiting for the transmitter.  Clobbers rax, rdx.
.global serial_putc
serial_putc:
    mov dx, COM1 + 5
.Lwait:
    in al, dx
    test al, 0x20               # LSR: transmit holding register empty
    jz .Lwait
    mov dx, COM1
    mov eax, edi
    out dx, al
    ret

# serial_write - write RSI bytes from RDI.  Clobbers rax, rdx, rdi, rsi, rcx.
.global serial_write
serial_write:
    mov rcx, rdi
.Lnext:
    test rsi, rsi
    jz .Ldone
    movzx edi, byte ptr [rcx]
    call serial_putc
    inc rcx
    dec rsi
    jmp .Lnext
.Ldone:
    ret
