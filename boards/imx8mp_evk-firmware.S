/*
 * What the i.MX 8M Plus EVK's firmware does for seL4, for QEMU's
 * imx8mp-evk, which runs none: every interrupt into Non-secure Group 1.
 *
 * On the board, TF-A puts every interrupt into Group 1 before U-Boot
 * starts the loader, and seL4 (which does it itself only on QEMU virt)
 * relies on it. QEMU's model resets every interrupt into Group 0, which a
 * GIC without security signals as FIQ, and seL4 takes IRQs only: no
 * interrupt would ever reach the kernel (the guests' virtual timer, the
 * console's input). The model's GIC has no security extensions, so these
 * registers are writable here, at EL2.
 *
 * QEMU starts CPU 0 here (QEMU_FIRMWARE_ADDR in boards/imx8mp_evk.mk),
 * with the loader image already in place at LOADER_ADDR, and this jumps
 * to it. Position independent: the constants are PC-relative literals.
 */
	.text
	.global _start
_start:
	mov	w2, #0xffffffff

	/* GICD_IGROUPR<n>, n = 1 .. GICD_TYPER.ITLinesNumber (SPIs; n = 0,
	 * the SGIs and PPIs, is each redistributor's). */
	ldr	x0, =0x38800000		/* GICD */
	ldr	w1, [x0, #0x4]		/* GICD_TYPER */
	and	w1, w1, #0x1f
	add	x4, x0, #0x80		/* GICD_IGROUPR0 */
	mov	x3, #1
1:	cmp	x3, x1
	b.hi	2f
	str	w2, [x4, x3, lsl #2]
	add	x3, x3, #1
	b	1b

	/* GICR_IGROUPR0 of every CPU's redistributor, until GICR_TYPER.Last. */
2:	ldr	x0, =0x38880000		/* CPU 0's RD_base */
3:	add	x4, x0, #0x10000	/* its SGI_base */
	str	w2, [x4, #0x80]		/* GICR_IGROUPR0 */
	ldr	x5, [x0, #0x8]		/* GICR_TYPER */
	add	x0, x0, #0x20000
	tbz	x5, #4, 3b

	ldr	x0, =LOADER_ADDR	/* --defsym, from the board table */
	br	x0
	.ltorg
