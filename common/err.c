/* err: formatting helpers for struct err (see err.h). */
#include "err.h"

#include <stdio.h>
#include <string.h>

int err_set(struct err *e, const char *fmt, ...)
{
	va_list ap;

	if (e == NULL)
		return -1;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return -1;
}

int err_setc(struct err *e, int code, const char *fmt, ...)
{
	va_list ap;

	if (e == NULL)
		return -1;
	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return -1;
}

int err_prefix(struct err *e, const char *fmt, ...)
{
	char buf[2 * ERR_MSG_MAX + 2];
	va_list ap;
	int n;

	if (e == NULL)
		return -1;
	va_start(ap, fmt);
	n = vsnprintf(buf, ERR_MSG_MAX, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if (n >= ERR_MSG_MAX)
		n = ERR_MSG_MAX - 1;
	buf[n++] = ':';
	buf[n++] = ' ';
	memcpy(buf + n, e->msg, strnlen(e->msg, ERR_MSG_MAX - 1) + 1);
	memcpy(e->msg, buf, ERR_MSG_MAX - 1);
	e->msg[ERR_MSG_MAX - 1] = '\0';
	return -1;
}

void err_clear(struct err *e)
{
	if (e != NULL) {
		e->code = 0;
		e->msg[0] = '\0';
	}
}
