/* SPDX-License-Identifier: Apache-2.0 */
/* yamltree: a YAML document read with libyaml into a small tree of scalars,
 * sequences and mappings, each node with its 1-based line and column.
 * Refuses what a plan never needs: aliases, anchors, tags, several
 * documents, deep nesting, too many nodes. Pure: no I/O, no logging. */
#ifndef CUTOVER_YAMLTREE_H
#define CUTOVER_YAMLTREE_H

#include <stdbool.h>
#include <stddef.h>

struct arena;

enum ynode_kind { YNODE_SCALAR, YNODE_SEQUENCE, YNODE_MAPPING };

struct ynode {
	enum ynode_kind kind;
	unsigned line, column;     /* 1-based, where the node starts */
	const char *text;          /* scalar: NUL-terminated, may hold NULs */
	size_t len;
	bool plain;                /* scalar written without quotes */
	struct ynode *first, *last; /* children; a mapping alternates key, value */
	size_t count;              /* number of children */
	struct ynode *next;        /* next sibling */
};

#define YTREE_MAX_DEPTH 16
#define YTREE_MAX_NODES 100000

struct ytree_error {
	unsigned line, column;
	char reason[192];
};

/* Parses data[0..len) into nodes allocated from a. Returns true with *root
 * set (NULL for an empty document), or false with e filled in. */
bool ytree_parse(struct arena *a, const char *data, size_t len,
		 struct ynode **root, struct ytree_error *e);

#endif
