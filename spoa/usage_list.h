/* SPDX-License-Identifier: Apache-2.0 */
/* usage_list: the clients still on deprecated routes across several agents,
 * from each agent's /clients.json (usage_page.h). Pure: no I/O.
 *
 * Each agent's answer is added as it came; the list sums a client's
 * requests over the agents and keeps its latest last request, sums the
 * others, and keeps the least quiet_seconds: the fleet has been quiet only
 * as long as its least quiet agent. */
#ifndef CUTOVER_USAGE_LIST_H
#define CUTOVER_USAGE_LIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client_usage.h"
#include "usage_page.h"

struct listed_client {
	char client[CLIENT_USAGE_LABEL_MAX]; /* as the agents show it */
	uint64_t requests;
	char last[USAGE_TIME_MAX];           /* "" when the agent gave none */
	unsigned agents;                     /* how many agents list it */
};

struct usage_list {
	struct listed_client *c;
	size_t n, cap;
	uint64_t requests, other;
	char other_last[USAGE_TIME_MAX];
	double quiet;                        /* the least of the agents' */
	unsigned agents;
	bool merged;
};

/* Adds one agent's /clients.json body. False, with why, when it is not
 * that shape (nothing added) or out of memory. */
bool usage_list_add(struct usage_list *l, const char *json, size_t len, char *why,
		    size_t whylen);

/* The list, most recent first, as text (malloc'd; NULL when out of memory):
 * CLIENT, REQUESTS, LAST REQUEST (UTC), AGENTS; then the others and the
 * quiet time. */
char *usage_list_text(struct usage_list *l, size_t *len);

void usage_list_free(struct usage_list *l);

#endif
