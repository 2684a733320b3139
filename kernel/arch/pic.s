# The legacy 8259 PICs: remapped away from the exception vectors (PIC_MASTER_VECTOR,
# PIC_SLAVE_VECTOR) and masked, so that enabling interrupts in a test never delivers a timer
# tick as vector 8 (#DF).  The local APIC does the interrupt work (kernel/arch/apic.s).
.include "layout.inc"

.section .text
# pic_mask_all - ICW1-4 (vector bases, the cascade on PIC_CASCADE_LINE, 8086 mode), then mask
# every line of both chips.  Clobbers rax.
.global pic_mask_all
pic_mask_all:
    mov al, PIC_ICW1_INIT
    out PIC_MASTER_CMD, al
    out PIC_SLAVE_CMD, al
    mov al, PIC_MASTER_VECTOR           # ICW2: vector bases
    out PIC_MASTER_DATA, al
    mov al, PIC_SLAVE_VECTOR
    out PIC_SLAVE_DATA, al
    mov al, 1 << PIC_CASCADE_LINE       # ICW3: the master's line with the slave on it
    out PIC_MASTER_DATA, al
    mov al, PIC_CASCADE_LINE            # ICW3: the slave's identity, that line's number
    out PIC_SLAVE_DATA, al
    mov al, PIC_ICW4_8086
    out PIC_MASTER_DATA, al
    out PIC_SLAVE_DATA, al
    mov al, 0xff                        # OCW1: every line masked
    out PIC_MASTER_DATA, al
    out PIC_SLAVE_DATA, al
    ret
