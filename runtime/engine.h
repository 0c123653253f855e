/* runtime/engine.h — internal entry points of the batching engine (the public API is in
 * include/lisa.h). */
#ifndef LISA_RUNTIME_ENGINE_H
#define LISA_RUNTIME_ENGINE_H

#include "lisa.h"
#include "models/lisa.h"

#ifdef __cplusplus
extern "C" {
#endif

/* lisa_engine_create with parity hooks called from every stage graph (tests). */
lisa_status lisa_engine_create_ex(lisa_model *m, const lisa_engine_params *p, const lisa_run_hooks *hooks,
                                  lisa_engine **out);

#ifdef __cplusplus
}
#endif

#endif
