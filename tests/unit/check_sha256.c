/* SPDX-License-Identifier: Apache-2.0 */
/* Check tests for sha256.c: the FIPS 180-4 examples, the padding boundaries
 * (a tail of 55, 56, 63 and 64 bytes needs one or two final blocks) and a
 * million bytes. Inputs end at a guard page, so any over-read faults. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "guard.h"
#include "sha256.h"

struct vector {
	const char *text; /* NULL: `a` repeated len times */
	size_t len;
	const char *hex;
};

static const struct vector vectors[] = {
	{ "", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
	{ "abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
	{ "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
	  "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" },
	{ "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopq"
	  "klmnopqrlmnopqrsmnopqrstnopqrstu", 112,
	  "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1" },
	{ NULL, 55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318" },
	{ NULL, 56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a" },
	{ NULL, 63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34" },
	{ NULL, 64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb" },
	{ NULL, 119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb" },
	{ NULL, 120, "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c" },
};
#define NVECTORS (sizeof(vectors) / sizeof(vectors[0]))

START_TEST(known_vectors)
{
	const struct vector *v = &vectors[_i];
	uint8_t *in = guard_end() - v->len;
	char hex[SHA256_HEX_SIZE];

	if (v->text)
		memcpy(in, v->text, v->len);
	else
		memset(in, 'a', v->len);
	sha256_hex(in, v->len, hex);
	ck_assert_str_eq(hex, v->hex);
}
END_TEST

START_TEST(million_a)
{
	size_t len = 1000000;
	char *in = malloc(len), hex[SHA256_HEX_SIZE];

	ck_assert_ptr_nonnull(in);
	memset(in, 'a', len);
	sha256_hex(in, len, hex);
	ck_assert_str_eq(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
	free(in);
}
END_TEST

START_TEST(raw_digest_matches_hex)
{
	uint8_t d[SHA256_DIGEST_SIZE];

	sha256("abc", 3, d);
	ck_assert_uint_eq(d[0], 0xba);
	ck_assert_uint_eq(d[31], 0xad);
}
END_TEST

static Suite *sha256_suite(void)
{
	Suite *s = suite_create("sha256");
	TCase *tc = tcase_create("digest");

	tcase_add_loop_test(tc, known_vectors, 0, NVECTORS);
	tcase_add_test(tc, million_a);
	tcase_add_test(tc, raw_digest_matches_hex);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(sha256_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
