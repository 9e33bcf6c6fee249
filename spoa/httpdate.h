/* SPDX-License-Identifier: Apache-2.0 */
/* httpdate: the dates of a route's deprecation, from the plan's text to the
 * header values HAProxy sends. Pure: no I/O, no clock, no allocation.
 *
 * A plan writes a date as YYYY-MM-DD (00:00:00 UTC) or as the RFC 3339 UTC
 * form YYYY-MM-DDTHH:MM:SSZ, years 1970 to 9999, with no leap second. It
 * becomes seconds since the epoch, shown as an RFC 9745 Structured Field
 * Date ("@1796083200", the Deprecation header) or an RFC 9110 IMF-fixdate
 * ("Wed, 30 Jun 2027 00:00:00 GMT", the Sunset header of RFC 8594). */
#ifndef CUTOVER_HTTPDATE_H
#define CUTOVER_HTTPDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Room for each shown form, NUL included. */
#define HTTPDATE_SF_SIZE 16  /* "@" and at most 12 digits */
#define HTTPDATE_IMF_SIZE 30 /* always 29 characters */

/* Reads s[0..len) as a plan date into *epoch. Returns false, with a reason
 * in why (NUL-terminated), when it is not one of the two forms or names a
 * day or time that does not exist (2027-02-30, 24:00:00). */
bool httpdate_parse(const char *s, size_t len, int64_t *epoch, char *why, size_t whylen);

/* Seconds since the epoch of y-m-d 00:00:00 UTC (proleptic Gregorian). */
int64_t httpdate_days_epoch(int y, unsigned m, unsigned d);

/* The two forms of epoch (as httpdate_parse returns, so 1970 to 9999). */
void httpdate_sf(int64_t epoch, char out[HTTPDATE_SF_SIZE]);
void httpdate_imf(int64_t epoch, char out[HTTPDATE_IMF_SIZE]);

#endif
