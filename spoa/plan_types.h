/* plan_types: the layout of a compiled plan, shared by plan.c, which builds
 * it, and router.c, which compiles its routes and reads it per request.
 * Everything hangs off the plan's arena and is immutable once loaded. */
#ifndef CUTOVER_PLAN_TYPES_H
#define CUTOVER_PLAN_TYPES_H

#include "arena.h"
#include "pattern.h"

#include <stdbool.h>

/* Limits of a plan; a plan beyond them is rejected. */
#define PLAN_MAX_FILE_SIZE ((size_t)1 << 20)
#define PLAN_MAX_BACKENDS 256
#define PLAN_MAX_ROUTES 4096
#define PLAN_MAX_PHASES 256
#define PLAN_MAX_NAME 64
#define PLAN_MAX_HOST 253
#define PLAN_MAX_DESCRIPTION 4096
#define PLAN_MAX_PHASE_NUMBER 1000000

/* HTTP methods as bits; METHOD_OTHER stands for every other token. */
enum {
	METHOD_GET = 1u << 0,
	METHOD_HEAD = 1u << 1,
	METHOD_POST = 1u << 2,
	METHOD_PUT = 1u << 3,
	METHOD_PATCH = 1u << 4,
	METHOD_DELETE = 1u << 5,
	METHOD_OPTIONS = 1u << 6,
	METHOD_TRACE = 1u << 7,
	METHOD_CONNECT = 1u << 8,
	METHOD_OTHER = 1u << 9,
	METHODS_ALL = (1u << 10) - 1,
	METHODS_READS = METHOD_GET | METHOD_HEAD,
	METHODS_WRITES = METHOD_POST | METHOD_PUT | METHOD_PATCH | METHOD_DELETE,
};

/* The bit of method[0..len): exact, case-sensitive token match. */
unsigned method_bit(const char *method, size_t len);

struct template {
	const char *text;            /* as written in the plan */
	struct template_parsed parsed;
};

struct route {
	const char *name;
	unsigned methods;
	const char *host;            /* NULL: any host */
	size_t host_len;
	const char *path;            /* the pattern as written */
	struct pattern pattern;      /* spans point into path */
	unsigned line, column;       /* where the route is defined */
};

enum action_kind { ACTION_BACKEND, ACTION_STATUS };

struct action {
	enum action_kind kind;
	int backend;                 /* ACTION_BACKEND: index into plan->backends */
	bool deprecated;
	unsigned status;             /* ACTION_STATUS: 404 or 410 */
	const struct template *tpl;  /* rewrite (backend) or link (410); may be NULL */
};

struct phase {
	unsigned number;
	const char *name;
	const char *description;     /* NULL when absent */
	const struct action **action; /* one per route, inherited ones included */
};

struct trie_node;

struct plan {
	struct arena arena;
	const char *file;
	int current;                 /* index of the phase in force */
	int nphases;
	struct phase *phases;
	int nroutes;
	struct route *routes;
	int nbackends;
	const char **backends;
	int default_backend;         /* -1: none */
	const struct trie_node *root;
};

/* Compiles plan->routes into plan->root (router.c). On failure returns
 * false with the index of the offending route and the reason. */
bool router_compile(struct plan *plan, int *bad_route, char *why, size_t whylen);

#endif
