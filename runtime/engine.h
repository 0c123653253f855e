/* runtime/engine.h — internal entry points of the batching engine (the public API is in
 * include/lisa.h). */
#ifndef LISA_RUNTIME_ENGINE_H
#define LISA_RUNTIME_ENGINE_H

#include "lisa.h"
#include "models/lisa_model.h"
#include "runtime/engine_tp.h"

#ifdef __cplusplus
extern "C" {
#endif

/* lisa_engine_create with parity hooks called from every stage graph (tests). */
lisa_status lisa_engine_create_ex(lisa_model *m, const lisa_engine_params *p, const lisa_run_hooks *hooks,
                                  lisa_engine **out);

/* TP followers (runtime/engine_tp.h): an engine with the leader's sizes (the CREATE args) and no
 * requests or threads; the plan it receives into; running the received step's graph. */
lisa_status lisa_engine_tp_follower_create(lisa_model *m, const int32_t args[6], lisa_engine **out);
lisa_tp_plan *lisa_engine_tp_plan(lisa_engine *e);
lisa_status lisa_engine_tp_follower_step(lisa_engine *e);

#ifdef __cplusplus
}
#endif

#endif
