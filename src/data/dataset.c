/* placeholder */
#include "config.h"
typedef int aim_placeholder_dataset;
