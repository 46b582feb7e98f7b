/*
 * vblade-rs iPXE test boot program (written for this project; GNU as, 16-bit real mode).
 *
 * Layout on the AoE disk: LBA 0 is the boot sector that iPXE `sanboot`s; it checks that iPXE's
 * int 13h extensions are there and loads stage 2 from LBA 1..STAGE2_SECTORS (a multi-sector
 * read through AoE) to 0x7e00, right after itself, and jumps to it. Stage 2:
 *   1. AH=48h: the reported capacity must equal the expected one in the plan;
 *   2. runs the plan's operations, each on `count` sectors from `lba`:
 *        'R'  read (AH=42h) and compare with the host's pattern   (kind 0x00)
 *        'W'  write (AH=43h) the boot program's pattern            (kind 0x80)
 *        'V'  read back and compare with the boot program's pattern (kind 0x80)
 *   3. reports through QEMU's isa-debug-exit port 0xf4: exit status (value << 1) | 1,
 *      99 for a pass, 65 + 2 * step for a failure at `step`.
 * The plan (expected sector count, then up to PLAN_MAX_OPS operations of {op u8, count u8,
 * lba u32}, op 0 ends) sits at the end of stage 2 behind the magic "VBRSPLAN"; the host patches
 * it in (ipxe_test.py).
 *
 * Sector pattern (the host builds the same one, see ipxe_test.py):
 *   bytes 0..3 LBA (little endian), 4 kind, 5..7 zero, 8..15 "VBLADERS",
 *   byte i (16..511) = (LBA + i + kind) & 0xff.
 *
 * Every step prints a line through int 10h, which SeaBIOS mirrors to the serial port, so the
 * host log shows how far it got.
 */
        .code16
        .intel_syntax noprefix
        .text
        .globl _start

        .set STAGE2_SECTORS, 3
        .set PLAN_MAX_OPS, 24
        .set DRVPARM, 0x0600    /* AH=48h result buffer */
        .set DAP,     0x0640    /* disk address packet for the plan's operations */
        .set SCRATCH, 0x0800    /* one expected sector */
        .set BUFFER,  0x9000    /* transfer buffer: up to 56 sectors, below 0x10000 */
        .set BUFFER_MAX_SECTORS, (0x10000 - BUFFER) / 512
        .set DEBUG_EXIT_PORT, 0xf4
        .set EXIT_PASS, 0x31    /* QEMU exits with 99 */

/* ---------------------------------------------------------------- LBA 0: boot sector */
_start:
        cli
        xor     ax, ax
        mov     ds, ax
        mov     es, ax
        mov     ss, ax
        mov     sp, 0x7c00
        sti
        cld
        ljmp    0, offset start_cs0     /* some loaders jump to 07c0:0000 */
start_cs0:
        mov     [drive], dl
        mov     si, offset msg_boot
        call    puts
        mov     al, [drive]
        call    puthex8
        call    newline

        /* step 1: int 13h extensions with packet access */
        mov     byte ptr [step], 1
        mov     ah, 0x41
        mov     bx, 0x55aa
        call    int13
        cmp     bx, 0xaa55
        jne     fail
        test    cl, 1
        jz      fail

        /* step 2: load stage 2 and check that it is ours */
        inc     byte ptr [step]
        mov     si, offset stage2_dap
        mov     ah, 0x42
        call    int13
        cmp     dword ptr [stage2_magic], 0x32535256    /* "VRS2" */
        jne     fail
        jmp     stage2

/* Print "VBRS-FAIL step=<n> ah=<int 13h status>" and exit with 0x20 + step. */
fail:   call    newline                 /* the failed operation's line stays unfinished */
        mov     si, offset msg_fail
        call    puts
        mov     al, [step]
        call    puthex8
        mov     si, offset msg_ah
        call    puts
        mov     al, [status]
        call    puthex8
        call    newline
        mov     al, [step]
        add     al, 0x20
/* SeaBIOS's serial console sends the last characters from its timer interrupt: give it two
 * timer ticks (about 110 ms) and an empty line before QEMU goes away. */
exit:   push    ax
        call    newline
        sti                             /* int 13h may return with interrupts off */
        mov     bx, [0x46c]
        add     bx, 2
1:      cmp     bx, [0x46c]
        jne     1b
        pop     ax
        mov     dx, DEBUG_EXIT_PORT
        out     dx, al
halt:   hlt                             /* only reached without isa-debug-exit */
        jmp     halt

/* int 13h on our drive; a carry (error) fails the current step. */
int13:  mov     dl, [drive]
        int     0x13
        mov     [status], ah
        jc      fail
        ret

puts:   lodsb
        test    al, al
        jz      9f
        call    putc
        jmp     puts
9:      ret

newline:
        mov     al, 13
        call    putc
        mov     al, 10
putc:   pusha
        mov     ah, 0x0e
        mov     bx, 7
        int     0x10
        popa
        ret

puthex32:
        push    eax
        shr     eax, 16
        call    puthex16
        pop     eax
puthex16:
        push    ax
        mov     al, ah
        call    puthex8
        pop     ax
puthex8:
        push    ax
        shr     al, 4
        call    puthex4
        pop     ax
puthex4:
        push    ax
        and     al, 0x0f
        add     al, '0'
        cmp     al, '9'
        jbe     1f
        add     al, 'a' - '0' - 10
1:      call    putc
        pop     ax
        ret

stage2_dap:
        .byte   0x10, 0
        .word   STAGE2_SECTORS
        .word   stage2, 0
        .quad   1
msg_boot:   .asciz "VBRS-BOOT drive="
msg_fail:   .asciz "VBRS-FAIL step="
msg_ah:     .asciz " ah="
drive:      .byte 0
step:       .byte 0
status:     .byte 0

/* Partition table: the host writes one dummy entry whose CHS values make iPXE guess a
 * 2-head, 32-sector geometry; with none, iPXE assumes 255x63 and cannot load LBA 0 (by CHS)
 * from a disk smaller than one such cylinder (16065 sectors). */
        .org    0x1be
partition_table:
        .fill   64, 1, 0
        .byte   0x55, 0xaa

/* ---------------------------------------------------------------- LBA 1..: stage 2 */
stage2:
        mov     si, offset msg_stage2
        call    puts

        /* step 3: AH=48h answers */
        inc     byte ptr [step]
        mov     si, DRVPARM
        mov     word ptr [si], 0x1a
        mov     ah, 0x48
        call    int13
        mov     si, offset msg_cap
        call    puts
        mov     eax, [DRVPARM + 0x14]
        call    puthex32
        mov     eax, [DRVPARM + 0x10]
        call    puthex32
        mov     si, offset msg_bps
        call    puts
        mov     ax, [DRVPARM + 0x18]
        call    puthex16
        call    newline

        /* step 4: capacity and sector size are the export's */
        inc     byte ptr [step]
        mov     eax, [DRVPARM + 0x10]
        cmp     eax, [plan_sectors]
        jne     fail
        mov     eax, [DRVPARM + 0x14]
        cmp     eax, [plan_sectors + 4]
        jne     fail
        cmp     word ptr [DRVPARM + 0x18], 512
        jne     fail

        /* The plan, one line per operation: "VBRS-OP <op> <lba>+<count> ok" */
        mov     bp, offset plan_ops
next_op:
        mov     byte ptr [step], 5      /* step 5: the operation is well-formed */
        mov     al, [bp]
        test    al, al
        jz      pass
        mov     si, offset msg_op
        call    puts
        mov     al, [bp]
        call    putc
        mov     al, ' '
        call    putc
        mov     eax, [bp + 2]
        call    puthex32
        mov     al, '+'
        call    putc
        mov     al, [bp + 1]
        call    puthex8
        cmp     byte ptr [bp + 1], 0
        je      fail
        cmp     byte ptr [bp + 1], BUFFER_MAX_SECTORS
        ja      fail

        inc     byte ptr [step]         /* step 6: int 13h accepts the transfer */
        mov     si, DAP
        mov     word ptr [si], 0x10
        movzx   ax, byte ptr [bp + 1]
        mov     [si + 2], ax
        mov     word ptr [si + 4], BUFFER
        mov     word ptr [si + 6], 0
        mov     eax, [bp + 2]
        mov     [si + 8], eax
        mov     dword ptr [si + 12], 0

        mov     ah, 0x42
        cmp     byte ptr [bp], 'W'
        jne     do_io
        mov     di, BUFFER              /* W: build our pattern in the buffer */
        mov     eax, [bp + 2]
        movzx   cx, byte ptr [bp + 1]
fill:   push    cx
        mov     bl, 0x80
        call    make_sector
        inc     eax
        pop     cx
        loop    fill
        mov     si, DAP
        mov     ax, 0x4300              /* write, no verify */
do_io:  call    int13

        inc     byte ptr [step]         /* step 7: the whole count was transferred */
        mov     al, [bp + 1]
        cmp     [DAP + 2], al
        jne     fail
        cmp     byte ptr [bp], 'W'
        je      op_ok

        inc     byte ptr [step]         /* step 8: the data is what we expect */
        mov     bl, 0                   /* R: host pattern; V: ours */
        cmp     byte ptr [bp], 'R'
        je      1f
        mov     bl, 0x80
1:      mov     eax, [bp + 2]
        mov     dx, BUFFER
        movzx   cx, byte ptr [bp + 1]
check:  push    cx
        mov     di, SCRATCH
        call    make_sector
        mov     si, SCRATCH
        mov     di, dx
        mov     cx, 512
        repe cmpsb
        jne     fail
        mov     dx, di
        inc     eax
        pop     cx
        loop    check
op_ok:  mov     si, offset msg_ok
        call    puts
        add     bp, 6
        jmp     next_op

pass:   mov     si, offset msg_pass
        call    puts
        mov     al, EXIT_PASS
        jmp     exit

/* Expected sector for LBA eax and kind bl (0x00 host, 0x80 ours) at es:di; di += 512.
 * Keeps eax and bl. */
make_sector:
        push    eax
        stosd
        movzx   eax, bl
        stosd
        mov     si, offset pattern_magic
        movsd
        movsd
        pop     eax
        push    ax
        add     al, bl
        add     al, 16
        mov     cx, 512 - 16
2:      stosb
        inc     al
        loop    2b
        pop     ax
        ret

msg_stage2:    .asciz "VBRS-STAGE2\r\n"
msg_cap:       .asciz "VBRS-CAPACITY sectors=0x"
msg_bps:       .asciz " bytes/sector=0x"
msg_op:        .asciz "VBRS-OP "
msg_ok:        .asciz " ok\r\n"
msg_pass:      .asciz "VBRS-PASS\r\n"
pattern_magic: .ascii "VBLADERS"

/* The plan, at the end of stage 2; the host patches it. */
        .org    0x200 * (1 + STAGE2_SECTORS) - 4 - 8 - 8 - 6 * PLAN_MAX_OPS - 1
plan_magic:   .ascii "VBRSPLAN"
plan_sectors: .quad 0
plan_ops:     .fill 6 * PLAN_MAX_OPS + 1, 1, 0
stage2_magic: .ascii "VRS2"
