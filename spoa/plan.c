/* placeholder: replaced by its owner */
#include "plan.h"
struct plan *plan_load(const char *f, char *e, size_t n) { (void)f; (void)n; e[0] = 0; return NULL; }
