/* SPDX-License-Identifier: Apache-2.0 */
/* journal: the audit journal, an append-only file of one JSON object per
 * line. Each record is written with one write(2) on an O_APPEND descriptor
 * and fsync'd before journal_append returns, so a record the agent acted on
 * survives a crash, and records of concurrent agents never interleave. */
#ifndef CUTOVER_JOURNAL_H
#define CUTOVER_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>

struct journal;

/* Opens (creating, mode 0640) path for appending; NULL with why in err. */
struct journal *journal_open(const char *path, char *err, size_t errlen);

/* Appends line (a JSON object without its newline) and syncs. false when
 * it could not, after logging why. */
bool journal_append(struct journal *j, const char *line, size_t len);

void journal_close(struct journal *j);

#endif
