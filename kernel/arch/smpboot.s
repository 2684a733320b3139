# SMP bring-up on the boot CPU: the CPU table from ACPI, then each AP started in turn with
# INIT-SIPI-SIPI through the trampoline (kernel/arch/trampoline.s) until it reports in
# (cpu_online_mask) in ap_main (kernel/arch/smp.s); the banner; smp_expect=.
.include "layout.inc"

.set PIT_HZ, 1193182
.set PIT_MAX_US, 50000                  # one PIT one-shot: below 65536 counts (54.9 ms)
.set INIT_DELAY_US, 10000               # INIT, then 10 ms, then SIPI (Intel SDM 8.4.4.1)
.set SIPI_DELAY_US, 200                 # SIPI, 200 us, SIPI again
.set ICR_POLLS, 100000                  # how many reads of the ICR before it counts as stuck
.set BANNER_IDS_SIZE, NR_CPUS * 4 + 1   # " %u" per CPU (APIC IDs below 256), NUL

.section .text
# smp_boot - called once by the boot CPU, after the console and the tick are set up (so that
# the APs find the calibrated timer), with interrupts off.  Reads the MADT (acpi_init), starts
# the APs one at a time, names each that does not report in within AP_BOOT_TIMEOUT_MS, prints
# "smp: N CPUs up (APIC IDs ...)", and ends the run with failure when smp_expect= asks for more
# CPUs than came up.  Clobbers caller-saved registers.
.global smp_boot
smp_boot:
    push rbx
    push r12
    lock or qword ptr [rip + cpu_online_mask], 1
    call acpi_init
    cmp qword ptr [rip + nr_cpu_ids], 1
    jbe .Lbanner
    call trampoline_install
    test eax, eax
    jnz .Lbanner
    mov ebx, 1
.Lnext_cpu:
    cmp rbx, qword ptr [rip + nr_cpu_ids]
    jae .Lbanner
    mov rdi, rbx
    call smp_boot_cpu
    inc ebx
    jmp .Lnext_cpu
.Lbanner:
    call smp_banner
    lea rdi, [rip + .Lexpect_key]
    xor esi, esi                        # absent: nothing is expected
    call cmdline_number
    mov rbx, rax
    call num_online_cpus
    mov r12, rax
    cmp rbx, r12
    ja .Ltoo_few
    pop r12
    pop rbx
    ret
.Ltoo_few:
    lea rdi, [rip + .Ltoo_few_fmt]
    mov rsi, rbx
    mov rdx, r12
    call printk
    mov edi, EXIT_FAILURE
    call qemu_exit

# trampoline_install - copy the trampoline to TRAMPOLINE_PHYS and give it page tables: the
# low 2 MiB identity-mapped (for the instructions that turn paging on) and the kernel's higher
# half (boot_pml4's last entry).  EAX = 0, or 1 after a line saying why SMP cannot start.
# Clobbers caller-saved registers.
trampoline_install:
    mov rcx, offset __stop_trampoline
    sub rcx, offset __start_trampoline
    cmp rcx, PAGE_SIZE
    ja .Ltoo_big
    mov rax, qword ptr [rip + boot_info_phys]   # QEMU's Multiboot information: not there
    sub rax, TRAMPOLINE_PHYS
    cmp rax, PAGE_SIZE
    jb .Lmbi_in_the_way
    mov rax, KERNEL_VIRT_BASE
    mov rsi, offset __lma_start_trampoline
    add rsi, rax
    mov rdi, TRAMPOLINE_PHYS
    add rdi, rax
    rep movsb
    lea rdx, [rip + ap_pd]
    sub rdx, rax                        # physical
    mov qword ptr [rip + ap_pd], PTE_PRESENT | PTE_WRITE | PTE_PS
    lea rcx, [rip + ap_pdpt]
    or rdx, PTE_PRESENT | PTE_WRITE
    mov qword ptr [rcx], rdx
    sub rcx, rax
    or rcx, PTE_PRESENT | PTE_WRITE
    lea rdx, [rip + ap_pml4]
    mov qword ptr [rdx], rcx
    mov rdi, offset boot_pml4
    add rdi, rax
    mov rcx, qword ptr [rdi + (PT_ENTRIES - 1) * 8]
    mov qword ptr [rdx + (PT_ENTRIES - 1) * 8], rcx
    sub rdx, rax
    mov rdi, offset tramp_cr3
    add rdi, rax
    mov dword ptr [rdi], edx
    xor eax, eax
    ret
.Ltoo_big:
    lea rdi, [rip + .Ltoo_big_fmt]
    mov rsi, rcx
    jmp .Linstall_refused
.Lmbi_in_the_way:
    lea rdi, [rip + .Lmbi_fmt]
    mov rsi, qword ptr [rip + boot_info_phys]
.Linstall_refused:
    call printk
    mov eax, 1
    ret

# smp_boot_cpu - RDI = a logical CPU (1 .. nr_cpu_ids - 1): INIT, 10 ms, SIPI, 200 us, SIPI
# to its APIC ID, then wait up to AP_BOOT_TIMEOUT_MS for its bit in cpu_online_mask.  Names it
# on the console when it does not come.  Clobbers caller-saved registers.
smp_boot_cpu:
    push rbx
    push r12
    push r13
    mov rbx, rdi
    lea rax, [rip + cpu_apic_id]
    mov r12, qword ptr [rax + rbx * 8]
    mov qword ptr [rip + ap_boot_cpu], rbx
    mov rax, rbx
    imul rax, rax, KERNEL_STACK_SIZE
    lea rcx, [rip + ap_stacks - KERNEL_STACK_SIZE]
    add rax, rcx
    mov qword ptr [rip + ap_boot_stack], rax      # the top of its stack
    mov edi, r12d
    mov esi, APIC_DM_INIT | APIC_INT_LEVELTRIG | APIC_INT_ASSERT
    call smpboot_ipi
    mov edi, r12d
    mov esi, APIC_DM_INIT | APIC_INT_LEVELTRIG    # deassert (ignored by newer APICs)
    call smpboot_ipi
    mov edi, INIT_DELAY_US
    call pit_udelay
    mov r13d, 2                                   # two STARTUP IPIs
.Lsipi:
    mov edi, r12d
    mov esi, APIC_DM_STARTUP | SIPI_VECTOR
    call smpboot_ipi
    mov edi, SIPI_DELAY_US
    call pit_udelay
    dec r13d
    jnz .Lsipi
    mov r13d, AP_BOOT_TIMEOUT_MS
.Lwait_online:
    bt qword ptr [rip + cpu_online_mask], rbx
    jc .Lonline
    mov edi, 1000
    call pit_udelay
    dec r13d
    jnz .Lwait_online
    lea rdi, [rip + .Lno_show_fmt]
    mov rsi, rbx
    mov rdx, r12
    mov ecx, AP_BOOT_TIMEOUT_MS
    call printk
.Lonline:
    pop r13
    pop r12
    pop rbx
    ret

# smpboot_ipi - EDI = destination APIC ID, ESI = the ICR's low word: send it and wait until the
# APIC has delivered it (ICR delivery status clear), ICR_POLLS reads at most; says so if it
# never clears.  Clobbers caller-saved registers.
smpboot_ipi:
    mov rax, APIC_VIRT
    shl edi, 24
    mov dword ptr [rax + APIC_ICR_HIGH], edi
    mov dword ptr [rax + APIC_ICR_LOW], esi
    mov ecx, ICR_POLLS
.Lpoll_icr:
    test dword ptr [rax + APIC_ICR_LOW], APIC_ICR_BUSY
    jz .Lsent
    pause
    dec ecx
    jnz .Lpoll_icr
    lea rdi, [rip + .Lstuck_fmt]
    jmp printk
.Lsent:
    ret

# pit_udelay - wait EDI microseconds (at most PIT_MAX_US) on the PIT's channel 2, one-shot,
# polled (the APIC timer is the tick).  Clobbers rax, rcx, rdx.
pit_udelay:
    mov eax, edi
    imul rax, rax, PIT_HZ
    mov ecx, 1000000
    xor edx, edx
    div rcx
    inc eax                             # at least one count
    mov ecx, eax
    in al, 0x61
    and al, 0xfc                        # speaker off, gate low
    out 0x61, al
    mov al, 0xb0                        # channel 2, lobyte/hibyte, mode 0 (one-shot), binary
    out 0x43, al
    mov eax, ecx
    out 0x42, al
    mov al, ah
    out 0x42, al
    in al, 0x61
    or al, 1                            # gate high: the count starts
    out 0x61, al
.Lpit_wait:
    in al, 0x61
    test al, 0x20                       # OUT2: the count reached zero
    jz .Lpit_wait
    ret

# smp_banner - "smp: N CPUs up (APIC IDs A B ...)": the CPUs of cpu_online_mask.  Clobbers
# caller-saved registers.
smp_banner:
    push rbx
    push r12
    push r13
    lea r12, [rip + banner_ids]
    mov byte ptr [r12], 0
    xor ebx, ebx
    xor r13d, r13d                      # length so far
.Lbanner_cpu:
    cmp rbx, qword ptr [rip + nr_cpu_ids]
    jae .Lbanner_print
    bt qword ptr [rip + cpu_online_mask], rbx
    jnc .Lbanner_next
    lea rdi, [r12 + r13]
    mov esi, BANNER_IDS_SIZE
    sub esi, r13d
    lea rdx, [rip + .Lid_fmt]
    lea rax, [rip + cpu_apic_id]
    mov rcx, qword ptr [rax + rbx * 8]
    call snprintf
    add r13d, eax
.Lbanner_next:
    inc ebx
    jmp .Lbanner_cpu
.Lbanner_print:
    call num_online_cpus
    lea rdi, [rip + .Lbanner_fmt]
    mov rsi, rax
    mov rdx, r12
    call printk
    pop r13
    pop r12
    pop rbx
    ret

# ap_entry64 - an AP's first instruction in the higher half (from the trampoline): 64-bit,
# interrupts off, on the trampoline's page tables and GDT.  Switches to the kernel's tables
# and a GDT in the kernel image, checks that it is the AP smp_boot is starting (one that
# started too late, after its time was up, parks here without touching anything), and calls
# ap_main with its stack and logical CPU number.  Does not return.
.global ap_entry64
ap_entry64:
    mov rax, offset boot_pml4
    mov cr3, rax
    lgdt [rip + ap_gdt_descr]
    mov ax, KERNEL_DS
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov rax, APIC_VIRT
    mov eax, dword ptr [rax + APIC_ID]
    shr eax, 24
    mov rdi, qword ptr [rip + ap_boot_cpu]
    lea rcx, [rip + cpu_apic_id]
    cmp rax, qword ptr [rcx + rdi * 8]
    jne .Lstray
    mov rsp, qword ptr [rip + ap_boot_stack]
    xor ebp, ebp
    call ap_main
.Lstray:
    cli
    hlt
    jmp .Lstray

.section .rodata
.Lexpect_key:
    .asciz "smp_expect="
.Ltoo_few_fmt:
    .asciz "error: smp_expect=%u but %u CPUs came up\n"
.Ltoo_big_fmt:
    .asciz "smp: the trampoline (%u bytes) is larger than a page: one CPU\n"
.Lmbi_fmt:
    .asciz "smp: the Multiboot information at %x lies in the trampoline's page: one CPU\n"
.Lno_show_fmt:
    .asciz "smp: CPU %u (APIC ID %u) did not come up within %u ms; going on without it\n"
.Lstuck_fmt:
    .asciz "smp: the local APIC did not send an IPI (ICR busy)\n"
.Lid_fmt:
    .asciz " %u"
.Lbanner_fmt:
    .asciz "smp: %u CPUs up (APIC IDs%s)\n"

.section .data
.balign 16
# The GDT an AP runs on from ap_entry64 until ap_main loads its own: the boot GDT's entries.
ap_gdt:
    .quad 0
    .quad GDT_CODE32_DESC
    .quad GDT_CODE64_DESC
    .quad GDT_DATA_DESC
ap_gdt_end:
    .word 0, 0, 0
ap_gdt_descr:
    .word ap_gdt_end - ap_gdt - 1
    .quad ap_gdt

.section .bss
.balign 4096
# The trampoline's page tables (see trampoline_install).
ap_pml4:
    .zero PAGE_SIZE
ap_pdpt:
    .zero PAGE_SIZE
ap_pd:
    .zero PAGE_SIZE
# Each AP's boot stack: CPU n's is the n-th (CPU 0 runs on boot_stack).
ap_stacks:
    .zero (NR_CPUS - 1) * KERNEL_STACK_SIZE
.balign 8
# The AP being started, and the top of its stack: read by it in ap_entry64.
ap_boot_cpu:
    .zero 8
ap_boot_stack:
    .zero 8
banner_ids:
    .zero BANNER_IDS_SIZE
