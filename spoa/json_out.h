/* SPDX-License-Identifier: Apache-2.0 */
/* json_out: builds one JSON text in a growing buffer, pure. The caller
 * writes the structure (keys, commas, brackets) through these calls; strings
 * are escaped. An allocation failure makes json_out_done return NULL. */
#ifndef CUTOVER_JSON_OUT_H
#define CUTOVER_JSON_OUT_H

#include <stdbool.h>
#include <stddef.h>

struct json_out {
	char *buf;
	size_t len, cap;
	bool failed;
	bool comma; /* a value was written at this level: the next needs ',' */
};

void json_out_open(struct json_out *j, char bracket);   /* '{' or '[' */
void json_out_close(struct json_out *j, char bracket);  /* '}' or ']' */
/* A key inside an object (the value follows with one of the calls below). */
void json_out_key(struct json_out *j, const char *key);
void json_out_str(struct json_out *j, const char *s);   /* NULL: null */
void json_out_num(struct json_out *j, double v);
void json_out_uint(struct json_out *j, unsigned long long v);
void json_out_bool(struct json_out *j, bool v);
/* The text, NUL-terminated (the caller frees it), or NULL. */
char *json_out_done(struct json_out *j, size_t *len);
/* The same text ending in a newline: one line of an HTTP answer. */
char *json_out_done_line(struct json_out *j, size_t *len);

#endif
