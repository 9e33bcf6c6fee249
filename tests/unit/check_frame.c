/* placeholder: replaced by its owner */
#include <check.h>
int main(void) { return 1; }
