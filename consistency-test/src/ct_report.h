/* ct_report.h - PASS/FAIL lines and the closing "N passed, N failed".
 *
 * Every check and every scenario assertion is one counted line, so the
 * closing counts are per assertion (scripts/run-tests adds them up). Lines
 * go to the report's stream (stdout, or /dev/null in unit tests that only
 * look at the counts). */
#ifndef CT_REPORT_H
#define CT_REPORT_H

#include <stdio.h>

#include "status.h"

#define CT_DETAIL_MAX 8   /* offenders listed under one failing line */

typedef struct ct_report {
    FILE *out;
    int passed;
    int failed;
} ct_report;

void ct_report_init(ct_report *r, FILE *out);

/* Counts one assertion and prints "PASS <what>" or "FAIL <what>"; returns ok. */
int ct_assert(ct_report *r, int ok, const char *fmt, ...) CG_PRINTF(3, 4);

/* An indented line under the last one (figures, offenders); not counted. */
void ct_detail(ct_report *r, const char *fmt, ...) CG_PRINTF(2, 3);

/* A heading or figure line; not counted. */
void ct_say(ct_report *r, const char *fmt, ...) CG_PRINTF(2, 3);

/* "N passed, N failed". */
void ct_report_summary(const ct_report *r);

#endif
