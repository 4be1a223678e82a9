/* placeholder: being written */
#include "config.h"
typedef int aim_placeholder_pngdir;
