/* placeholder: replaced by its owner */
#include "router.h"
