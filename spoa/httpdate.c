/* SPDX-License-Identifier: Apache-2.0 */
/* httpdate: plan dates to header values (contract in httpdate.h). */
#include "httpdate.h"

#include <stdio.h>

static bool leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned month_days(int y, unsigned m)
{
	static const unsigned days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	return m == 2 && leap(y) ? 29 : days[m - 1];
}

/* Days from 1970-01-01 to y-m-d (H. Hinnant's days_from_civil). */
int64_t httpdate_days_epoch(int y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	return (era * 146097 + (int64_t)doe - 719468) * 86400;
}

/* n digits at s, or -1. */
static int digits(const char *s, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

static bool refuse(char *why, size_t whylen, const char *reason)
{
	snprintf(why, whylen, "%s", reason);
	return false;
}

bool httpdate_parse(const char *s, size_t len, int64_t *epoch, char *why, size_t whylen)
{
	int y, m, d, hh = 0, mm = 0, ss = 0;

	if ((len != 10 && len != 20) || s[4] != '-' || s[7] != '-')
		return refuse(why, whylen, "a date is YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC)");
	y = digits(s, 4);
	m = digits(s + 5, 2);
	d = digits(s + 8, 2);
	if (len == 20) {
		if (s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[19] != 'Z')
			return refuse(why, whylen,
				      "a date is YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC)");
		hh = digits(s + 11, 2);
		mm = digits(s + 14, 2);
		ss = digits(s + 17, 2);
	}
	if (y < 0 || m < 0 || d < 0 || hh < 0 || mm < 0 || ss < 0)
		return refuse(why, whylen, "a date is YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC)");
	if (y < 1970)
		return refuse(why, whylen, "the year must be 1970 or later");
	if (m < 1 || m > 12 || d < 1 || (unsigned)d > month_days(y, (unsigned)m))
		return refuse(why, whylen, "no such day");
	if (hh > 23 || mm > 59 || ss > 59)
		return refuse(why, whylen, "no such time of day (00:00:00 to 23:59:59)");
	*epoch = httpdate_days_epoch(y, (unsigned)m, (unsigned)d) + hh * 3600 + mm * 60 + ss;
	return true;
}

void httpdate_sf(int64_t epoch, char out[HTTPDATE_SF_SIZE])
{
	snprintf(out, HTTPDATE_SF_SIZE, "@%lld", (long long)epoch);
}

/* y-m-d of a day count (H. Hinnant's civil_from_days), for days >= 0. */
static void civil(int64_t days, int *y, unsigned *m, unsigned *d)
{
	int64_t z = days + 719468;
	int64_t era = z / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;

	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int)(yoe + era * 400) + (*m <= 2);
}

void httpdate_imf(int64_t epoch, char out[HTTPDATE_IMF_SIZE])
{
	static const char wday[7][4] = { "Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed" };
	static const char mon[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	int64_t days = epoch / 86400, secs = epoch % 86400;
	int y;
	unsigned m, d;

	civil(days, &y, &m, &d);
	snprintf(out, HTTPDATE_IMF_SIZE, "%s, %02u %s %04d %02d:%02d:%02d GMT", wday[days % 7], d,
		 mon[m - 1], y, (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60));
}
