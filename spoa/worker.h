/* SPDX-License-Identifier: Apache-2.0 */
/* worker: N threads, each with its own ev_loop and its own SO_REUSEPORT
 * listening socket on the same address; the kernel spreads connections over
 * them. The main thread only ever touches a worker through ev_async_send.
 * A process-wide cap on open connections pauses accepting when reached. */
#ifndef CUTOVER_WORKER_H
#define CUTOVER_WORKER_H

#include <stddef.h>
#include <sys/socket.h>

struct workers;

/* Binds n listening sockets on addr and starts n threads. Signals are blocked
 * in the worker threads, so the caller's loop receives them all. Call after
 * runtime_init. batch_wait_us: how long a worker busy with small batches lets
 * NOTIFYs gather (worker_state_init). Returns NULL with a reason in err on
 * failure. */
struct workers *workers_start(unsigned n, const struct sockaddr *addr, socklen_t addrlen,
			      unsigned max_connections, unsigned batch_wait_us, char *err,
			      size_t errlen);

/* Graceful stop: stop accepting, AGENT-DISCONNECT status 0 to every
 * connection, wait for them to flush (a few seconds at most), join every
 * thread, free everything. */
void workers_stop(struct workers *ws);

#endif
