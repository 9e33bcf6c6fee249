/* fallback_writer: the running agent keeps HAProxy's fallback map in step
 * with every plan it accepts (at start and on each accepted reload). Main
 * thread only. */
#ifndef CUTOVER_FALLBACK_WRITER_H
#define CUTOVER_FALLBACK_WRITER_H

#include <stdbool.h>

struct plan;

/* Where to write (--fallback-dir); NULL (the default) writes nothing. The
 * string must outlive the writer. */
void fallback_writer_set_dir(const char *dir);

/* HAProxy's admin socket (--haproxy-socket); NULL (the default): HAProxy
 * reads the map only when it starts. */
void fallback_writer_set_socket(const char *socket_path);

/* Writes the map for plan when a directory is set, then, when a socket is
 * set, installs it in HAProxy and warns of each plan backend HAProxy lacks;
 * logs the outcome. A failure keeps the previous map (the agent's plan still
 * serves); returns false when a step failed. */
bool fallback_writer_publish(const struct plan *plan);

#endif
