/* SPDX-License-Identifier: Apache-2.0 */
/* fallback_writer: the running agent keeps HAProxy's fallback map in step
 * with every plan it accepts (at start and on each accepted reload). Main
 * thread only. */
#ifndef CUTOVER_FALLBACK_WRITER_H
#define CUTOVER_FALLBACK_WRITER_H

#include <stdbool.h>

struct plan;

/* Where to write (--fallback-dir) and HAProxy's admin socket
 * (--haproxy-socket); either may be NULL: no file, or a HAProxy that reads
 * the map only when it starts. The strings must outlive the writer. */
void fallback_writer_configure(const char *dir, const char *socket_path);

/* Writes the map for plan when a directory is set, then, when a socket is
 * set, installs it in HAProxy and warns of each plan backend HAProxy lacks;
 * logs the outcome. A failure keeps the previous map (the agent's plan still
 * serves); returns false when a step failed. */
bool fallback_writer_publish(const struct plan *plan);

/* --write-fallback DIR --haproxy-socket PATH FILE: loads file and publishes
 * it once, for a HAProxy whose agents are all down. Returns the process exit
 * status. */
int fallback_writer_once(const char *dir, const char *socket_path, const char *file);

#endif
