/* explain: the --check and --explain command-line modes, haproxy -c style. */
#ifndef CUTOVER_EXPLAIN_H
#define CUTOVER_EXPLAIN_H

#include <stdio.h>

/* Validates file; prints a short summary (phases, routes, backends) to out,
 * or file:line:column: reason to err. Returns the process exit status. */
int explain_check(const char *file, FILE *out, FILE *err);

/* Prints the decision for one request. phase is a number or name, or NULL
 * for the plan's current phase; all_phases prints one line per phase.
 * Returns the process exit status. */
int explain_request(const char *file, const char *method, const char *path,
		    const char *phase, int all_phases, FILE *out, FILE *err);

#endif
