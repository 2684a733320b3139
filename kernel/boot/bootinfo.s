# The boot information every boot path hands the kernel proper (kernel/structs.py BOOT_INFO,
# MMAP_ENTRY).  The entry path fills it (physical addresses, written before or after paging as
# the path allows), start64 and what follows read it.
.include "layout.inc"

.section .bss
.balign 8
.global boot_info
boot_info:
    .zero BOOTINFO_SIZE
.global boot_mmap
boot_mmap:
    .zero MMAP_SIZE * MMAP_MAX
