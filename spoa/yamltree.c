/* SPDX-License-Identifier: Apache-2.0 */
/* yamltree: libyaml events folded into a bounded node tree. */
#include "yamltree.h"

#include "arena.h"

#include <stdio.h>
#include <string.h>
#include <yaml.h>

struct builder {
	struct arena *arena;
	const char *data;
	size_t len;
	struct ynode *stack[YTREE_MAX_DEPTH];
	int depth;
	size_t nodes;
	int documents;
	struct ynode *root;
	struct ytree_error *e;
};

static bool fail_at(struct builder *b, yaml_mark_t mark, const char *reason)
{
	b->e->line = (unsigned)mark.line + 1;
	b->e->column = (unsigned)mark.column + 1;
	snprintf(b->e->reason, sizeof(b->e->reason), "%s", reason);
	return false;
}

/* libyaml's reader errors carry only a byte offset. */
static yaml_mark_t mark_of_offset(const struct builder *b, size_t offset)
{
	yaml_mark_t m = { 0 };

	for (size_t i = 0; i < offset && i < b->len; i++) {
		if (b->data[i] == '\n') {
			m.line++;
			m.column = 0;
		} else {
			m.column++;
		}
	}
	return m;
}

static bool fail_parser(struct builder *b, const yaml_parser_t *p)
{
	char reason[sizeof(b->e->reason)];
	yaml_mark_t mark = p->problem_mark;

	if (p->error == YAML_READER_ERROR)
		mark = mark_of_offset(b, p->problem_offset);
	else if (p->error == YAML_MEMORY_ERROR)
		return fail_at(b, mark, "out of memory");
	snprintf(reason, sizeof(reason), "%s%s%s", p->problem ? p->problem : "invalid YAML",
		 p->context ? " " : "", p->context ? p->context : "");
	return fail_at(b, mark, reason);
}

static struct ynode *add_node(struct builder *b, enum ynode_kind kind, yaml_mark_t mark)
{
	struct ynode *n;

	if (++b->nodes > YTREE_MAX_NODES) {
		char reason[64];

		snprintf(reason, sizeof(reason), "more than %d YAML nodes", YTREE_MAX_NODES);
		fail_at(b, mark, reason);
		return NULL;
	}
	n = arena_alloc(b->arena, sizeof(*n));
	if (!n) {
		fail_at(b, mark, "out of memory");
		return NULL;
	}
	n->kind = kind;
	n->line = (unsigned)mark.line + 1;
	n->column = (unsigned)mark.column + 1;
	if (b->depth == 0) {
		b->root = n;
	} else {
		struct ynode *parent = b->stack[b->depth - 1];

		if (parent->last)
			parent->last->next = n;
		else
			parent->first = n;
		parent->last = n;
		parent->count++;
	}
	return n;
}

static bool refuse_decorations(struct builder *b, const yaml_event_t *ev,
			       const yaml_char_t *anchor, const yaml_char_t *tag)
{
	if (anchor)
		return fail_at(b, ev->start_mark, "anchors are not supported");
	if (tag)
		return fail_at(b, ev->start_mark, "tags are not supported");
	return true;
}

static bool on_event(struct builder *b, const yaml_event_t *ev)
{
	struct ynode *n;

	switch (ev->type) {
	case YAML_DOCUMENT_START_EVENT:
		if (++b->documents > 1)
			return fail_at(b, ev->start_mark, "only one YAML document is allowed");
		return true;
	case YAML_ALIAS_EVENT:
		return fail_at(b, ev->start_mark, "aliases are not supported");
	case YAML_SCALAR_EVENT:
		if (!refuse_decorations(b, ev, ev->data.scalar.anchor, ev->data.scalar.tag))
			return false;
		n = add_node(b, YNODE_SCALAR, ev->start_mark);
		if (!n)
			return false;
		n->len = ev->data.scalar.length;
		n->text = arena_strndup(b->arena, (const char *)ev->data.scalar.value, n->len);
		if (!n->text)
			return fail_at(b, ev->start_mark, "out of memory");
		n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
		return true;
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT:
		if (ev->type == YAML_SEQUENCE_START_EVENT
			    ? !refuse_decorations(b, ev, ev->data.sequence_start.anchor,
						  ev->data.sequence_start.tag)
			    : !refuse_decorations(b, ev, ev->data.mapping_start.anchor,
						  ev->data.mapping_start.tag))
			return false;
		if (b->depth == YTREE_MAX_DEPTH) {
			char reason[64];

			snprintf(reason, sizeof(reason), "nested deeper than %d levels",
				 YTREE_MAX_DEPTH);
			return fail_at(b, ev->start_mark, reason);
		}
		n = add_node(b, ev->type == YAML_SEQUENCE_START_EVENT ? YNODE_SEQUENCE
								      : YNODE_MAPPING,
			     ev->start_mark);
		if (!n)
			return false;
		b->stack[b->depth++] = n;
		return true;
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		b->depth--;
		return true;
	default:
		return true;
	}
}

bool ytree_parse(struct arena *a, const char *data, size_t len,
		 struct ynode **root, struct ytree_error *e)
{
	struct builder b = { .arena = a, .data = data, .len = len, .e = e };
	yaml_parser_t parser;
	bool ok = true, done = false;

	if (!yaml_parser_initialize(&parser)) {
		yaml_mark_t zero = { 0 };
		return fail_at(&b, zero, "out of memory");
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
	while (ok && !done) {
		yaml_event_t ev;

		if (!yaml_parser_parse(&parser, &ev)) {
			ok = fail_parser(&b, &parser);
			break;
		}
		ok = on_event(&b, &ev);
		done = ev.type == YAML_STREAM_END_EVENT;
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&parser);
	*root = ok ? b.root : NULL;
	return ok;
}
