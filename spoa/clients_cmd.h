/* SPDX-License-Identifier: Apache-2.0 */
/* clients_cmd: `cutover-spoa --clients HOST:PORT...`, the clients still on
 * deprecated routes across agents: GET /clients.json from each agent's
 * metrics port (5 seconds each at most), merged (usage_list.h) and printed
 * most recent first. Exit status: 0 no deprecated-route request counted, 1
 * some were, 2 an agent did not answer (or not with /clients.json). */
#ifndef CUTOVER_CLIENTS_CMD_H
#define CUTOVER_CLIENTS_CMD_H

#include <stdio.h>

int clients_command(char *const *addrs, int n, FILE *out, FILE *err);

#endif
