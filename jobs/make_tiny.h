/* jobs/make_tiny.h — `lisa make-tiny`: the entry point of models/tiny.h for the tool (which fills
 * a lisa_tiny_params from its options and prints the report). */
#ifndef LISA_JOBS_MAKE_TINY_H
#define LISA_JOBS_MAKE_TINY_H

#include "lisa.h"
#include "models/tiny.h"

#endif
