/* SPDX-License-Identifier: Apache-2.0 */
/* sha256: the SHA-256 digest (FIPS 180-4) of a byte string. Pure. Used to
 * name a plan by its content: two agents serving the same file report the
 * same hash. */
#ifndef CUTOVER_SHA256_H
#define CUTOVER_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_SIZE 32
#define SHA256_HEX_SIZE (2 * SHA256_DIGEST_SIZE + 1) /* with the NUL */

void sha256(const void *data, size_t len, uint8_t digest[SHA256_DIGEST_SIZE]);

/* The digest as 64 lowercase hex digits and a NUL. */
void sha256_hex(const void *data, size_t len, char hex[SHA256_HEX_SIZE]);

#endif
