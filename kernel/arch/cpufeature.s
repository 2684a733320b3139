# CPU features the kernel turns on where the CPU has them: SMEP and SMAP (CR4), on every CPU.
.include "layout.inc"

.section .text
# cpu_features_init - CPUID leaf 7: set CR4.SMEP and CR4.SMAP when the CPU has them, and say so
# in smep_enabled / smap_enabled (every CPU of a machine has the same).  Clobbers rax, rbx,
# rcx, rdx.
.global cpu_features_init
cpu_features_init:
    xor eax, eax
    cpuid
    cmp eax, 7
    jb .Lno_leaf7
    mov eax, 7
    xor ecx, ecx
    cpuid
    mov rax, cr4
    test ebx, CPUID7_EBX_SMEP
    jz .Lno_smep
    or eax, CR4_SMEP
    mov byte ptr [rip + smep_enabled], 1
.Lno_smep:
    test ebx, CPUID7_EBX_SMAP
    jz .Lno_smap
    or eax, CR4_SMAP
    mov byte ptr [rip + smap_enabled], 1
.Lno_smap:
    mov cr4, rax
.Lno_leaf7:
    ret

.section .data
.global smap_enabled
smap_enabled:
    .byte 0
.global smep_enabled
smep_enabled:
    .byte 0
