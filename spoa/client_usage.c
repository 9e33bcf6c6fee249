/* SPDX-License-Identifier: Apache-2.0 */
/* client_usage: a fixed table of entries shared with readers, and, private
 * to the writer, a hash index of keys (open addressing, linear probing,
 * backward-shift deletion) and a min-heap of entries by (requests, last
 * touch) that names the entry to evict. */
#include "client_usage.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define WORDS (CLIENT_KEY_MAX / 8)
#define READ_TRIES 64

struct entry {
	_Atomic uint32_t seq;        /* odd while the writer changes the entry */
	_Atomic uint32_t len;
	_Atomic uint64_t key[WORDS]; /* zero-padded */
	_Atomic uint64_t requests;   /* 0: never used */
	_Atomic int64_t last_ms;
};

struct client_usage {
	unsigned cap, n;
	struct entry *e;
	/* the writer's own */
	uint64_t *touch;  /* per entry: when it was last counted, in requests */
	uint32_t *heap;   /* entry numbers, (requests, touch) smallest first */
	uint32_t *pos;    /* entry -> its place in heap */
	int32_t *slot;    /* entry number, or -1 */
	size_t mask;      /* slots - 1 */
	uint64_t seed, ticks;
	/* shared */
	_Atomic uint64_t total;
	_Atomic int64_t other_last_ms;
	_Atomic uint64_t last_mono_ns;
};

static inline uint64_t ld(const _Atomic uint64_t *a)
{
	return atomic_load_explicit(a, memory_order_relaxed);
}

static inline void st(_Atomic uint64_t *a, uint64_t v)
{
	atomic_store_explicit(a, v, memory_order_relaxed);
}

struct client_usage *client_usage_new(unsigned cap, uint64_t seed)
{
	struct client_usage *u = calloc(1, sizeof(*u));
	size_t slots = 16;

	if (!u)
		return NULL;
	while (slots < 2 * (size_t)cap)
		slots *= 2;
	u->cap = cap;
	u->seed = seed;
	u->mask = slots - 1;
	u->e = calloc(cap ? cap : 1, sizeof(*u->e));
	u->touch = calloc(cap ? cap : 1, sizeof(*u->touch));
	u->heap = calloc(cap ? cap : 1, sizeof(*u->heap));
	u->pos = calloc(cap ? cap : 1, sizeof(*u->pos));
	u->slot = malloc(slots * sizeof(*u->slot));
	if (!u->e || !u->touch || !u->heap || !u->pos || !u->slot) {
		client_usage_free(u);
		return NULL;
	}
	memset(u->slot, 0xff, slots * sizeof(*u->slot));
	return u;
}

void client_usage_free(struct client_usage *u)
{
	if (!u)
		return;
	free(u->e);
	free(u->touch);
	free(u->heap);
	free(u->pos);
	free(u->slot);
	free(u);
}

unsigned client_usage_cap(const struct client_usage *u)
{
	return u->cap;
}

/* ---- the writer's index ---- */

static uint64_t hash(const struct client_usage *u, const uint64_t *w)
{
	uint64_t h = u->seed ^ 0x9e3779b97f4a7c15u;

	for (int i = 0; i < WORDS; i++) {
		h ^= w[i];
		h *= 0xff51afd7ed558ccdu;
		h ^= h >> 33;
	}
	h *= 0xc4ceb9fe1a85ec53u;
	return h ^ (h >> 33);
}

static bool same_key(const struct entry *e, const uint64_t *w, uint32_t len)
{
	if (atomic_load_explicit(&e->len, memory_order_relaxed) != len)
		return false;
	for (int i = 0; i < WORDS; i++)
		if (ld(&e->key[i]) != w[i])
			return false;
	return true;
}

static void entry_words(const struct entry *e, uint64_t *w)
{
	for (int i = 0; i < WORDS; i++)
		w[i] = ld(&e->key[i]);
}

/* The slot holding w's entry, or the empty slot where it would go. */
static size_t find_slot(const struct client_usage *u, const uint64_t *w, uint32_t len)
{
	size_t s = hash(u, w) & u->mask;

	while (u->slot[s] >= 0 && !same_key(&u->e[u->slot[s]], w, len))
		s = (s + 1) & u->mask;
	return s;
}

/* Empties slot s, moving back the entries of its run that hashed before it. */
static void slot_remove(struct client_usage *u, size_t s)
{
	size_t next = (s + 1) & u->mask;

	for (; u->slot[next] >= 0; next = (next + 1) & u->mask) {
		uint64_t w[WORDS];
		entry_words(&u->e[u->slot[next]], w);
		size_t home = hash(u, w) & u->mask;
		/* next may move to s when its home is not within (s, next]. */
		if (((next - home) & u->mask) >= ((next - s) & u->mask)) {
			u->slot[s] = u->slot[next];
			s = next;
		}
	}
	u->slot[s] = -1;
}

/* ---- the writer's heap ---- */

static bool before(const struct client_usage *u, uint32_t a, uint32_t b)
{
	uint64_t ra = ld(&u->e[a].requests), rb = ld(&u->e[b].requests);

	return ra < rb || (ra == rb && u->touch[a] < u->touch[b]);
}

static void heap_set(struct client_usage *u, size_t i, uint32_t entry)
{
	u->heap[i] = entry;
	u->pos[entry] = (uint32_t)i;
}

static void heap_up(struct client_usage *u, size_t i)
{
	uint32_t x = u->heap[i];

	while (i > 0 && before(u, x, u->heap[(i - 1) / 2])) {
		heap_set(u, i, u->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	heap_set(u, i, x);
}

static void heap_down(struct client_usage *u, size_t i)
{
	uint32_t x = u->heap[i];

	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= u->n)
			break;
		if (c + 1 < u->n && before(u, u->heap[c + 1], u->heap[c]))
			c++;
		if (!before(u, u->heap[c], x))
			break;
		heap_set(u, i, u->heap[c]);
		i = c;
	}
	heap_set(u, i, x);
}

/* ---- the writer ---- */

static void entry_begin(struct entry *e)
{
	uint32_t s = atomic_load_explicit(&e->seq, memory_order_relaxed);

	atomic_store_explicit(&e->seq, s + 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
}

static void entry_end(struct entry *e)
{
	uint32_t s = atomic_load_explicit(&e->seq, memory_order_relaxed);

	atomic_store_explicit(&e->seq, s + 1, memory_order_release);
}

static void note_other(struct client_usage *u, int64_t ms)
{
	if (ms > atomic_load_explicit(&u->other_last_ms, memory_order_relaxed))
		atomic_store_explicit(&u->other_last_ms, ms, memory_order_relaxed);
}

/* Puts key w into entry i (a new one, or the evicted one) with its counts. */
static void entry_fill(struct client_usage *u, uint32_t i, const uint64_t *w, uint32_t len,
		       uint64_t requests, int64_t last_ms)
{
	struct entry *e = &u->e[i];

	entry_begin(e);
	atomic_store_explicit(&e->len, len, memory_order_relaxed);
	for (int k = 0; k < WORDS; k++)
		st(&e->key[k], w[k]);
	st(&e->requests, requests);
	atomic_store_explicit(&e->last_ms, last_ms, memory_order_relaxed);
	entry_end(e);
}

/* Adds a key not in the table, evicting if it is full; returns its entry. */
static uint32_t insert(struct client_usage *u, size_t s, const uint64_t *w, uint32_t len,
		       uint64_t requests, int64_t last_ms)
{
	uint32_t i;

	if (u->n < u->cap) {
		i = u->n++;
		u->slot[s] = (int32_t)i;
		u->touch[i] = ++u->ticks;
		entry_fill(u, i, w, len, requests, last_ms);
		heap_set(u, u->n - 1, i);
		heap_up(u, u->n - 1);
		return i;
	}
	i = u->heap[0];
	note_other(u, atomic_load_explicit(&u->e[i].last_ms, memory_order_relaxed));
	uint64_t old[WORDS];
	entry_words(&u->e[i], old);
	slot_remove(u, find_slot(u, old, atomic_load_explicit(&u->e[i].len, memory_order_relaxed)));
	/* The slot found before the removal may have moved: look again. */
	s = find_slot(u, w, len);
	u->slot[s] = (int32_t)i;
	u->touch[i] = ++u->ticks;
	entry_fill(u, i, w, len, requests, last_ms);
	heap_down(u, 0);
	return i;
}

static void words_of(const char *key, size_t len, uint64_t *w)
{
	memset(w, 0, WORDS * sizeof(*w));
	memcpy(w, key, len);
}

void client_usage_count(struct client_usage *u, const char *key, size_t len, int64_t unix_ms,
			uint64_t mono_ns)
{
	uint64_t w[WORDS];

	/* The total first: a reader that sees the entry sees it counted. */
	st(&u->total, ld(&u->total) + 1);
	st(&u->last_mono_ns, mono_ns);
	if (len == 0 || u->cap == 0) {
		note_other(u, unix_ms);
		return;
	}
	if (len > CLIENT_KEY_MAX)
		len = CLIENT_KEY_MAX;
	words_of(key, len, w);
	size_t s = find_slot(u, w, (uint32_t)len);
	if (u->slot[s] < 0) {
		insert(u, s, w, (uint32_t)len, 1, unix_ms);
		return;
	}
	uint32_t i = (uint32_t)u->slot[s];
	struct entry *e = &u->e[i];
	entry_begin(e);
	st(&e->requests, ld(&e->requests) + 1);
	atomic_store_explicit(&e->last_ms, unix_ms, memory_order_relaxed);
	entry_end(e);
	u->touch[i] = ++u->ticks;
	heap_down(u, u->pos[i]);
}

/* ---- readers ---- */

/* Entry e into row; false when it is unused or kept changing. */
static bool read_entry(const struct entry *e, struct usage_row *row)
{
	for (int t = 0; t < READ_TRIES; t++) {
		uint32_t s1 = atomic_load_explicit(&e->seq, memory_order_acquire);
		if (s1 & 1)
			continue;
		uint64_t w[WORDS];
		uint32_t len = atomic_load_explicit(&e->len, memory_order_relaxed);
		entry_words(e, w);
		row->requests = ld(&e->requests);
		row->last_ms = atomic_load_explicit(&e->last_ms, memory_order_relaxed);
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&e->seq, memory_order_relaxed) != s1)
			continue;
		if (row->requests == 0 || len > CLIENT_KEY_MAX)
			return false;
		row->len = len;
		memcpy(row->key, w, len);
		row->key[len] = '\0';
		return true;
	}
	return false;
}

size_t client_usage_read(const struct client_usage *u, struct usage_row *rows,
			 struct usage_view *view)
{
	size_t n = 0;
	uint64_t in_rows = 0;

	for (unsigned i = 0; i < u->cap; i++) {
		if (read_entry(&u->e[i], &rows[n]))
			in_rows += rows[n++].requests;
	}
	/* After the entries (client_usage.h): the rows never exceed it. */
	atomic_thread_fence(memory_order_acquire);
	view->total = ld(&u->total);
	view->other = view->total >= in_rows ? view->total - in_rows : 0;
	view->other_last_ms = atomic_load_explicit(&u->other_last_ms, memory_order_relaxed);
	view->last_mono_ns = ld(&u->last_mono_ns);
	return n;
}

static int by_key(const void *a, const void *b)
{
	const struct usage_row *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->key, y->key, n);

	return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* Most requests first, then the most recent, then by key. */
static int by_rank(const void *a, const void *b)
{
	const struct usage_row *x = a, *y = b;

	if (x->requests != y->requests)
		return x->requests > y->requests ? -1 : 1;
	if (x->last_ms != y->last_ms)
		return x->last_ms > y->last_ms ? -1 : 1;
	return by_key(a, b);
}

size_t client_usage_merge(struct usage_row *rows, size_t n, size_t keep, struct usage_view *view)
{
	size_t m = 0;

	if (n > 1)
		qsort(rows, n, sizeof(*rows), by_key);
	for (size_t i = 0; i < n; i++) {
		if (m > 0 && by_key(&rows[m - 1], &rows[i]) == 0) {
			rows[m - 1].requests += rows[i].requests;
			if (rows[i].last_ms > rows[m - 1].last_ms)
				rows[m - 1].last_ms = rows[i].last_ms;
		} else {
			rows[m++] = rows[i];
		}
	}
	if (m > 1)
		qsort(rows, m, sizeof(*rows), by_rank);
	for (size_t i = keep; i < m; i++) {
		view->other += rows[i].requests;
		if (rows[i].last_ms > view->other_last_ms)
			view->other_last_ms = rows[i].last_ms;
	}
	return m < keep ? m : keep;
}

void client_usage_adopt(struct client_usage *dst, const struct client_usage *src)
{
	struct usage_row *rows = NULL;
	struct usage_view v;
	size_t n = 0;

	/* The writer's own table: nothing changes it meanwhile, so a read is
	 * exact. Out of memory, every entry counts as other. */
	if (src->cap && (rows = malloc(src->cap * sizeof(*rows))) != NULL) {
		n = client_usage_read(src, rows, &v);
	} else {
		v.total = ld(&src->total);
		v.other_last_ms = atomic_load_explicit(&src->other_last_ms, memory_order_relaxed);
		v.last_mono_ns = ld(&src->last_mono_ns);
		for (unsigned i = 0; i < src->n; i++) {
			int64_t ms = atomic_load_explicit(&src->e[i].last_ms, memory_order_relaxed);
			v.other_last_ms = ms > v.other_last_ms ? ms : v.other_last_ms;
		}
	}
	/* Oldest first among those kept, so that their order of eviction stays. */
	size_t kept = client_usage_merge(rows, n, dst->cap, &v);
	for (size_t i = kept; i-- > 0;) {
		uint64_t w[WORDS];
		words_of(rows[i].key, rows[i].len, w);
		insert(dst, find_slot(dst, w, (uint32_t)rows[i].len), w, (uint32_t)rows[i].len,
		       rows[i].requests, rows[i].last_ms);
	}
	free(rows);
	st(&dst->total, v.total);
	note_other(dst, v.other_last_ms);
	st(&dst->last_mono_ns, v.last_mono_ns);
}

void client_usage_label(const char *key, size_t len, char *out)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	if (len > CLIENT_KEY_MAX)
		len = CLIENT_KEY_MAX;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)key[i];
		if (c >= 0x20 && c <= 0x7e && c != '%') {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
}
