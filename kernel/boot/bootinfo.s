# The boot information every boot path hands the kernel proper (kernel/structs.py BOOT_INFO,
# MMAP_ENTRY).  The entry path fills it (physical addresses, written before or after paging as
# the path allows), start64 and what follows read it.  In .data, not .bss: start64 zeroes .bss
# after the entry path has written here.
.include "layout.inc"

.section .data
.balign 8
.global boot_info
boot_info:
    .zero BOOTINFO_SIZE
.global boot_mmap
boot_mmap:
    .zero MMAP_SIZE * MMAP_MAX
# A copy of the RSDP a loader handed over (boot_info.rsdp points here then): the loader's
# memory becomes the page pool's.
.global boot_rsdp
boot_rsdp:
    .zero RSDP_COPY_MAX
