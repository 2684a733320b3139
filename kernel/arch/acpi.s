# ACPI, as far as SMP needs it: the RSDP, the RSDT or XSDT, and the MADT's processor local
# APIC entries, which fill the CPU table (cpu_apic_id, nr_cpu_ids: kernel/arch/smp.s).
# Tables are read through the higher-half mapping of physical [0, KMAP_PHYS_END); a table
# beyond it is refused with a line saying so.
.include "layout.inc"

# The RSDP (ACPI 6.5 section 5.2.5): signature, checksum over the first 20 bytes, revision,
# RSDT address; from revision 2 a length, the XSDT address and a checksum over `length`.
.set RSDP_REVISION, 15
.set RSDP_RSDT, 16
.set RSDP_LENGTH, 20
.set RSDP_XSDT, 24
.set RSDP_V1_SIZE, 20
.set RSDP_V2_SIZE, 36
# Every system description table starts with this header (section 5.2.6).
.set SDT_SIGNATURE, 0
.set SDT_LENGTH, 4
.set SDT_HEADER_SIZE, 36
# The MADT (section 5.2.12): the header, the local APIC address and flags, then entries of
# {u8 type, u8 length, ...}; type 0 is a processor local APIC.
.set MADT_ENTRIES, 44
.set MADT_LOCAL_APIC, 0
.set MADT_LAPIC_APIC_ID, 3
.set MADT_LAPIC_FLAGS, 4
.set MADT_LAPIC_SIZE, 8
.set MADT_LAPIC_ENABLED, 1
.set SIG_APIC, 0x43495041               # "APIC" as a little-endian u32
# Where the RSDP may be (section 5.2.5.1): the first KiB of the EBDA, whose segment the BIOS
# data area holds at 0x40e, and the BIOS ROM area.
.set BDA_EBDA_SEGMENT, 0x40e
.set EBDA_SCAN_SIZE, 1024
.set BIOS_ROM_START, 0xe0000
.set BIOS_ROM_END, 0x100000
.set LOW_MEMORY_END, 0xa0000

.section .text
# acpi_init - fill the CPU table: CPU 0 is the boot CPU (its local APIC ID), then each enabled
# processor local APIC of the MADT in table order, up to NR_CPUS; one beyond that is named on
# the console and left parked.  Without a usable MADT (no RSDP, a bad checksum, a table out of
# reach) it says why in one line and the kernel runs on the boot CPU alone.  Clobbers
# caller-saved registers.
.global acpi_init
acpi_init:
    push rbx
    push r12
    push r13
    push r14
    push r15
    mov esi, APIC_ID
    call apic_read
    shr eax, 24
    mov qword ptr [rip + cpu_apic_id], rax
    mov qword ptr [rip + nr_cpu_ids], 1
    call acpi_find_madt                 # RAX = the MADT (mapped, checked) or 0
    test rax, rax
    jz .Linit_done
    mov rbx, rax
    mov r12d, dword ptr [rbx + SDT_LENGTH]
    add r12, rbx                        # the MADT's end
    lea r13, [rbx + MADT_ENTRIES]
    xor r15d, r15d                      # enabled local APICs seen
.Lentry:
    lea rax, [r13 + 2]
    cmp rax, r12
    ja .Lentries_done                   # no room for an entry header
    movzx r14d, byte ptr [r13 + 1]      # its length
    cmp r14d, 2
    jb .Lbad_entry
    lea rax, [r13 + r14]
    cmp rax, r12
    ja .Lbad_entry
    cmp byte ptr [r13], MADT_LOCAL_APIC
    jne .Lnext_entry
    cmp r14d, MADT_LAPIC_SIZE
    jb .Lbad_entry
    test dword ptr [r13 + MADT_LAPIC_FLAGS], MADT_LAPIC_ENABLED
    jz .Lnext_entry                     # disabled, or only online-capable: not started
    inc r15d
    movzx edi, byte ptr [r13 + MADT_LAPIC_APIC_ID]
    call acpi_add_cpu
.Lnext_entry:
    add r13, r14
    jmp .Lentry
.Lbad_entry:
    lea rdi, [rip + .Lbad_entry_fmt]
    mov rsi, r13
    sub rsi, rbx
    call printk
.Lentries_done:
    lea rdi, [rip + .Lmadt_fmt]
    mov rsi, rbx
    mov rax, KERNEL_VIRT_BASE
    sub rsi, rax
    mov edx, r15d
    call printk
.Linit_done:
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    ret

# acpi_add_cpu - EDI = the APIC ID of an enabled processor of the MADT: the next logical CPU,
# unless it is the boot CPU (already CPU 0) or NR_CPUS are taken (then it is named, parked).
# Clobbers caller-saved registers.
acpi_add_cpu:
    cmp rdi, qword ptr [rip + cpu_apic_id]
    je .Ladd_done
    mov rax, qword ptr [rip + nr_cpu_ids]
    cmp rax, NR_CPUS
    jae .Ladd_parked
    lea rcx, [rip + cpu_apic_id]
    mov qword ptr [rcx + rax * 8], rdi
    inc rax
    mov qword ptr [rip + nr_cpu_ids], rax
.Ladd_done:
    ret
.Ladd_parked:
    mov esi, edi
    lea rdi, [rip + .Lparked_fmt]
    mov edx, NR_CPUS
    jmp printk

# acpi_find_madt - the MADT through the RSDP and the XSDT (revision 2 or later, when it has
# one) or the RSDT.  RAX = its virtual address, every checksum checked, or 0 after a line that
# says why.  Clobbers caller-saved registers.
acpi_find_madt:
    push rbx
    push r12
    push r13
    push r14
    call acpi_find_rsdp
    test rax, rax
    jz .Lno_rsdp
    mov rbx, rax
    mov r13d, 4                         # RSDT: 32-bit entries
    mov r12d, dword ptr [rbx + RSDP_RSDT]
    cmp byte ptr [rbx + RSDP_REVISION], 2
    jb .Lroot
    mov edi, dword ptr [rbx + RSDP_LENGTH]
    cmp edi, RSDP_V2_SIZE
    jb .Lbad_rsdp
    mov rsi, rdi
    mov rdi, rbx
    call acpi_checksum
    test al, al
    jnz .Lbad_rsdp
    mov rax, qword ptr [rbx + RSDP_XSDT]
    test rax, rax
    jz .Lroot
    mov r12, rax
    mov r13d, 8                         # XSDT: 64-bit entries
.Lroot:
    mov rdi, r12
    call acpi_map_table                 # RAX = the root table, checked
    test rax, rax
    jz .Lmadt_fail
    mov rbx, rax
    mov r14d, dword ptr [rbx + SDT_LENGTH]
    add r14, rbx                        # its end
    add rbx, SDT_HEADER_SIZE            # its entries
.Lroot_entry:
    lea rax, [rbx + r13]
    cmp rax, r14
    ja .Lno_madt
    mov edi, dword ptr [rbx]
    cmp r13d, 8
    jne .Lroot_entry_read
    mov rdi, qword ptr [rbx]
.Lroot_entry_read:
    add rbx, r13
    mov r12, rdi
    mov esi, SDT_HEADER_SIZE
    call acpi_reach                     # the header first: is it the MADT?
    test rax, rax
    jz .Lmadt_fail
    cmp dword ptr [rax + SDT_SIGNATURE], SIG_APIC
    jne .Lroot_entry
    mov rdi, r12
    call acpi_map_table
    jmp .Lmadt_end
.Lno_rsdp:
    lea rdi, [rip + .Lno_rsdp_msg]
    call printk
    jmp .Lmadt_fail
.Lbad_rsdp:
    lea rdi, [rip + .Lbad_rsdp_fmt]
    mov rsi, rbx
    mov rax, KERNEL_VIRT_BASE
    sub rsi, rax
    call printk
    jmp .Lmadt_fail
.Lno_madt:
    lea rdi, [rip + .Lno_madt_msg]
    call printk
.Lmadt_fail:
    xor eax, eax
.Lmadt_end:
    pop r14
    pop r13
    pop r12
    pop rbx
    ret

# acpi_find_rsdp - RAX = the virtual address of a valid RSDP ("RSD PTR ", its first 20 bytes
# summing to 0): the one the boot path gave (boot_info.rsdp, when not 0 and valid), else the
# first on a 16-byte boundary in the EBDA's first KiB or in 0xe0000-0xfffff, else 0.
# Clobbers caller-saved registers.
acpi_find_rsdp:
    mov rdi, qword ptr [rip + boot_info + BOOTINFO_RSDP]
    test rdi, rdi
    jz .Lscan_bios
    mov rax, KERNEL_VIRT_BASE
    add rdi, rax
    push rdi
    mov esi, RSDP_V1_SIZE
    call acpi_checksum
    pop rdi
    mov rcx, qword ptr [rdi]
    cmp rcx, qword ptr [rip + .Lrsdp_signature]
    jne .Lscan_bios
    test al, al
    jnz .Lscan_bios
    mov rax, rdi
    ret
.Lscan_bios:
    mov rax, KERNEL_VIRT_BASE
    movzx edi, word ptr [rax + BDA_EBDA_SEGMENT]
    shl edi, 4
    test edi, edi
    jz .Lrom
    lea esi, [rdi + EBDA_SCAN_SIZE]
    cmp esi, LOW_MEMORY_END
    ja .Lrom
    call acpi_scan_rsdp
    test rax, rax
    jnz .Lfound
.Lrom:
    mov edi, BIOS_ROM_START
    mov esi, BIOS_ROM_END
    call acpi_scan_rsdp
.Lfound:
    ret

# acpi_scan_rsdp - EDI/ESI = physical start and end (below 1 MiB): RAX = the virtual address
# of the first valid RSDP there, on a 16-byte boundary, or 0.  Clobbers caller-saved registers.
acpi_scan_rsdp:
    push rbx
    push r12
    mov rax, KERNEL_VIRT_BASE
    lea rbx, [rdi + rax]
    lea r12, [rsi + rax]
.Lscan:
    cmp rbx, r12
    jae .Lscan_none
    mov rax, qword ptr [rbx]
    cmp rax, qword ptr [rip + .Lrsdp_signature]
    jne .Lscan_next
    mov rdi, rbx
    mov esi, RSDP_V1_SIZE
    call acpi_checksum
    test al, al
    jz .Lscan_hit
.Lscan_next:
    add rbx, 16
    jmp .Lscan
.Lscan_none:
    xor ebx, ebx
.Lscan_hit:
    mov rax, rbx
    pop r12
    pop rbx
    ret

# acpi_map_table - RDI = the physical address of a system description table: RAX = its
# virtual address once all of it is in reach and its bytes sum to 0, else 0 after a line that
# says why.  Clobbers caller-saved registers.
acpi_map_table:
    push rbx
    push r12
    mov r12, rdi
    mov esi, SDT_HEADER_SIZE
    call acpi_reach
    test rax, rax
    jz .Lmap_end
    mov esi, dword ptr [rax + SDT_LENGTH]
    cmp esi, SDT_HEADER_SIZE
    jb .Lmap_bad
    mov rdi, r12
    mov ebx, esi
    call acpi_reach
    test rax, rax
    jz .Lmap_end
    mov r12, rax
    mov rdi, rax
    mov esi, ebx
    call acpi_checksum
    test al, al
    jnz .Lmap_bad
    mov rax, r12
    jmp .Lmap_end
.Lmap_bad:
    mov rax, KERNEL_VIRT_BASE           # say which table, by its signature and address
    cmp r12, rax
    jae .Lmap_virt
    add r12, rax
.Lmap_virt:
    lea rdi, [rip + .Lbad_table_fmt]
    mov esi, dword ptr [r12 + SDT_SIGNATURE]
    mov qword ptr [rip + acpi_signature], rsi
    lea rsi, [rip + acpi_signature]
    mov rdx, r12
    sub rdx, rax
    call printk
    xor eax, eax
.Lmap_end:
    pop r12
    pop rbx
    ret

# acpi_reach - RDI = a physical address, ESI = a length: RAX = its virtual address when all
# of it lies below KMAP_PHYS_END (what the higher half maps), else 0 after a line that says
# so.  Clobbers caller-saved registers.
.global acpi_reach
acpi_reach:
    mov rax, KMAP_PHYS_END
    cmp rdi, rax
    jae .Lreach_far
    sub rax, rdi
    cmp rsi, rax
    ja .Lreach_far
    mov rax, KERNEL_VIRT_BASE
    add rax, rdi
    ret
.Lreach_far:
    mov rdx, rsi
    mov rsi, rdi
    lea rdi, [rip + .Lfar_fmt]
    mov rcx, KMAP_PHYS_END
    call printk
    xor eax, eax
    ret

# acpi_checksum - RDI = bytes, ESI = their count: AL = their sum modulo 256 (0 when valid).
# Clobbers rcx, rdx.
acpi_checksum:
    xor eax, eax
    mov ecx, esi
.Lsum:
    test rcx, rcx
    jz .Lsum_done
    add al, byte ptr [rdi + rcx - 1]
    dec rcx
    jmp .Lsum
.Lsum_done:
    ret

.section .rodata
.balign 8
.Lrsdp_signature:
    .ascii "RSD PTR "
.Lno_rsdp_msg:
    .asciz "acpi: no RSDP (EBDA, 0xe0000-0xfffff): one CPU\n"
.Lbad_rsdp_fmt:
    .asciz "acpi: the RSDP at %x fails its extended checksum: one CPU\n"
.Lbad_table_fmt:
    .asciz "acpi: the %s table at %x fails its checksum or length: one CPU\n"
.Lfar_fmt:
    .asciz "acpi: a table at %x (%u bytes) lies beyond the mapped %x bytes: one CPU\n"
.Lno_madt_msg:
    .asciz "acpi: no MADT (APIC) table: one CPU\n"
.Lbad_entry_fmt:
    .asciz "acpi: MADT entry at offset %u is malformed: the entries after it are ignored\n"
.Lmadt_fmt:
    .asciz "acpi: MADT at %x, %u enabled local APICs\n"
.Lparked_fmt:
    .asciz "smp: CPU with APIC ID %u left parked: the kernel runs at most %u CPUs (NR_CPUS)\n"

.section .bss
.balign 8
acpi_signature:                         # a table's signature, NUL-terminated, for a message
    .zero 8
