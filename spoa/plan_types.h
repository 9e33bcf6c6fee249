/* SPDX-License-Identifier: Apache-2.0 */
/* plan_types: the layout of a plan, shared by plan_loader.c, which builds it
 * from YAML, and router.c, which compiles its routes into plan->root and
 * reads it per request; plan.c runs one then the other. Depends on nothing
 * above it.
 * Everything hangs off the plan's arena and is immutable once loaded. */
#ifndef CUTOVER_PLAN_TYPES_H
#define CUTOVER_PLAN_TYPES_H

#include "arena.h"
#include "plan.h"
#include "pattern.h"
#include "sha256.h"

#include <stdbool.h>
#include <stddef.h>

/* Limits of a plan; a plan beyond them is rejected. */
#define PLAN_MAX_FILE_SIZE ((size_t)1 << 20)
#define PLAN_MAX_BACKENDS 256
#define PLAN_MAX_ROUTES 4096
#define PLAN_MAX_PHASES 256
#define PLAN_MAX_NAME 64
#define PLAN_MAX_HOST 253
#define PLAN_MAX_DESCRIPTION 4096
#define PLAN_MAX_PHASE_NUMBER 1000000
#define PLAN_MAX_GATE_SECONDS 86400

struct template {
	const char *text;            /* as written in the plan */
	struct template_parsed parsed;
};

struct route {
	const char *name;
	unsigned methods;            /* METHOD_* bits (method.h) */
	const char *host;            /* NULL: any host */
	size_t host_len;
	const char *path;            /* the pattern as written */
	struct pattern pattern;      /* spans point into path */
	const struct plan_deprecation *deprecation; /* NULL: none */
	unsigned line, column;       /* where the route is defined */
};

enum action_kind { ACTION_BACKEND, ACTION_STATUS };

/* A read route's `read_your_writes:` block (docs/plan.md, "Read your
 * writes"): for `seconds` after its client's last write, when that write
 * went through one of the `after` routes to `written_to` (where those
 * routes go in the phase that declares the block), a read of this route
 * goes to `backend` (rewritten by tpl when not NULL) instead of the
 * action's backend. HAProxy keeps each client's last write: its time and
 * where it went (haproxy/haproxy.cfg, table ryw_writes). */
#define PLAN_MAX_RYW_SECONDS 600
#define PLAN_MAX_RYW_AFTER 16

struct read_your_writes {
	int nafter;
	int after[PLAN_MAX_RYW_AFTER]; /* route indexes */
	unsigned seconds;            /* 1 to PLAN_MAX_RYW_SECONDS */
	int backend;                 /* index into plan->backends */
	const struct template *tpl;  /* may be NULL: the path as the client sent it */
	int written_to;              /* index into plan->backends */
};

struct action {
	enum action_kind kind;
	int backend;                 /* ACTION_BACKEND: index into plan->backends */
	bool deprecated;
	unsigned status;             /* ACTION_STATUS: 404 or 410 */
	const struct template *tpl;  /* rewrite (backend) or link (410); may be NULL */
	/* Progressive shift: 1..99, the share of clients that take this action;
	 * the others take base, the route's last unsplit action before. 0: no
	 * split, every client takes it (base NULL). */
	unsigned percent;
	const struct action *base;
	const struct read_your_writes *ryw; /* ACTION_BACKEND only; NULL: none */
};

struct phase {
	unsigned number;
	const char *name;
	const char *description;     /* NULL when absent */
	const struct action **action; /* one per route, inherited ones included */
	bool one_way;
	int ngates;
	const struct plan_gate *gates;
};

/* The plan's `clients` block: who a client is (client_key.h). */
enum client_key_kind { CLIENT_KEY_NONE, CLIENT_KEY_HEADER, CLIENT_KEY_SRC };

#define PLAN_MAX_SALT 128
#define PLAN_MAX_TRACKED_CLIENTS 10000
#define PLAN_DEFAULT_TRACKED_CLIENTS 100

struct plan_clients {
	enum client_key_kind key;    /* NONE: the plan has no clients block */
	const char *header;          /* KEY_HEADER: its name as written */
	const char *salt;            /* "" when absent */
	unsigned track;              /* clients counted by name, the rest as other */
};

struct trie_node;

struct plan {
	struct arena arena;
	const char *file;
	int current;                 /* index of the phase decisions are made in */
	int desired;                 /* index of the file's `phase:` */
	int override_back_across;    /* phase index, or -1 */
	const char *override_reason;
	int nphases;
	struct phase *phases;
	int nroutes;
	struct route *routes;
	int nbackends;
	const char **backends;
	int default_backend;         /* -1: none */
	struct plan_clients clients;
	const bool *ryw_marks;       /* one per route: some read_your_writes block
	                                of the plan names it in `after`, so a write
	                                through it is marked; NULL: none is */
	const unsigned *ryw_ids;     /* with ryw_marks: one per backend, its
	                                ryw_backend_id(), made once at load
	                                (ryw_index_backends) */
	const struct trie_node *root; /* router_compile()'s; NULL until then */
	char hash[SHA256_HEX_SIZE];   /* of the file's bytes, set by plan_load */
};

#endif
