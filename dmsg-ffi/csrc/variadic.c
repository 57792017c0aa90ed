/*
 * The C-variadic functions of libdmsg, which stable Rust cannot define.
 * Each one formats its arguments here and hands the result to a plain
 * Rust function. Built by dmsg-ffi/build.rs into libdmsg.so and libdmsg.a.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

/* Rust (dmsg-ffi/src/mirror.rs): takes ownership of a malloc'd label. */
void dmsg_ffi_iocom_set_label(void *iocom, char *label);

/* The prototype the header declares, with the iocom as an opaque pointer. */
void dmsg_iocom_label(void *iocom, const char *ctl, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Sets iocom->label to the formatted string (malloc'd; the previous label
 * is freed). A NULL iocom or format, or a formatting error, changes
 * nothing.
 */
void
dmsg_iocom_label(void *iocom, const char *ctl, ...)
{
	va_list va;
	char *buf;
	int n;

	if (iocom == NULL || ctl == NULL)
		return;
	va_start(va, ctl);
	n = vsnprintf(NULL, 0, ctl, va);
	va_end(va);
	if (n < 0)
		return;
	buf = malloc((size_t)n + 1);
	if (buf == NULL)
		return;
	va_start(va, ctl);
	n = vsnprintf(buf, (size_t)n + 1, ctl, va);
	va_end(va);
	if (n < 0) {
		free(buf);
		return;
	}
	dmsg_ffi_iocom_set_label(iocom, buf);
}

/* Rust (dmsg-ffi/src/service.rs): sends text + NUL on the circuit. */
void dmsg_ffi_circuit_printf(void *circuit, const char *text);

/* The prototype the header declares, with the circuit as an opaque pointer. */
void dmsg_circuit_printf(void *circuit, const char *ctl, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Formats at most 1023 characters (longer output is cut, as the original
 * formats into 1024 bytes) and sends them with a NUL as a one-way
 * DBG_SHELL|REPLY on the circuit. A NULL circuit or format, or a
 * formatting error, sends nothing.
 */
void
dmsg_circuit_printf(void *circuit, const char *ctl, ...)
{
	va_list va;
	char buf[1024];

	if (circuit == NULL || ctl == NULL)
		return;
	va_start(va, ctl);
	if (vsnprintf(buf, sizeof(buf), ctl, va) < 0) {
		va_end(va);
		return;
	}
	va_end(va);
	dmsg_ffi_circuit_printf(circuit, buf);
}
