# The legacy 8259 PICs: remapped away from the exception vectors (0x20-0x2f) and masked, so
# that enabling interrupts in a test never delivers a timer tick as vector 8 (#DF).
.section .text
# pic_mask_all - ICW1-4 with vector bases 0x20 and 0x28, then mask every line.
# Clobbers rax.
.global pic_mask_all
pic_mask_all:
    mov al, 0x11
    out 0x20, al
    out 0xa0, al
    mov al, 0x20
    out 0x21, al
    mov al, 0x28
    out 0xa1, al
    mov al, 4
    out 0x21, al
    mov al, 2
    out 0xa1, al
    mov al, 1
    out 0x21, al
    out 0xa1, al
    mov al, 0xff
    out 0x21, al
    out 0xa1, al
    ret
