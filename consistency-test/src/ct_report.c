/* ct_report.c - PASS/FAIL lines; see ct_report.h. */
#include "ct_report.h"

#include <stdarg.h>

void ct_report_init(ct_report *r, FILE *out)
{
    r->out = out;
    r->passed = 0;
    r->failed = 0;
}

static void ct_vline(ct_report *r, const char *lead, const char *fmt, va_list ap)
{
    if (r->out == NULL)
        return;
    fputs(lead, r->out);
    vfprintf(r->out, fmt, ap);
    fputc('\n', r->out);
    fflush(r->out);
}

int ct_assert(ct_report *r, int ok, const char *fmt, ...)
{
    va_list ap;

    if (ok)
        r->passed++;
    else
        r->failed++;
    va_start(ap, fmt);
    ct_vline(r, ok ? "PASS " : "FAIL ", fmt, ap);
    va_end(ap);
    return ok;
}

void ct_detail(ct_report *r, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    ct_vline(r, "     ", fmt, ap);
    va_end(ap);
}

void ct_say(ct_report *r, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    ct_vline(r, "", fmt, ap);
    va_end(ap);
}

void ct_report_summary(const ct_report *r)
{
    if (r->out != NULL) {
        fprintf(r->out, "%d passed, %d failed\n", r->passed, r->failed);
        fflush(r->out);
    }
}
