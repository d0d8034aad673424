// train/io/device_move.c - see device_move.h
#include "device_move.h"

#include <stdlib.h>

#include "core/device.h"

void et_mover_init(et_device_mover *mv, et_device dev) { *mv = (et_device_mover){.dev = dev}; }

void et_mover_free(et_device_mover *mv) {
    for (int i = 0; i < mv->n; i++) et_release(mv->from[i]);
    free(mv->from);
    free(mv->to);
    *mv = (et_device_mover){.dev = mv->dev};
}

static bool on_dev(const et_tensor *t, et_device d) {
    return t->device.type == d.type && t->device.index == d.index;
}

void et_mover_tensor(et_device_mover *mv, et_tensor **slot) {
    et_tensor *t = *slot;
    if (!t || on_dev(t, mv->dev)) return;
    for (int i = 0; i < mv->n; i++)
        if (mv->from[i] == t) {  // already moved (a tied tensor): share the copy
            *slot = et_retain(mv->to[i]);
            et_release(t);
            return;
        }
    ET_ASSERT(!t->grad_fn, "et_mover_tensor: tensor %p is an op result, not a model tensor",
              (void *)t);
    et_tensor *c = et_to_device(t, mv->dev);
    c->requires_grad = t->requires_grad;
    if (mv->n == mv->cap) {
        mv->cap = mv->cap ? 2 * mv->cap : 256;
        mv->from = realloc(mv->from, sizeof(*mv->from) * (size_t)mv->cap);
        mv->to = realloc(mv->to, sizeof(*mv->to) * (size_t)mv->cap);
        ET_ASSERT(mv->from && mv->to, "out of host memory moving a model");
    }
    mv->from[mv->n] = t;  // the model's reference now belongs to the map
    mv->to[mv->n++] = c;
    mv->bytes_moved += et_nbytes(c);
    *slot = c;
}

void et_mover_linear(et_device_mover *mv, et_linear_layer *l) {
    et_mover_tensor(mv, &l->weight);
    et_mover_tensor(mv, &l->bias);
    et_mover_tensor(mv, &l->lora_a);
    et_mover_tensor(mv, &l->lora_b);
}

void et_mover_llama(et_device_mover *mv, et_llama *m) {
    if (!m) return;
    et_mover_tensor(mv, &m->embed_tokens);
    for (int64_t i = 0; i < m->cfg.num_hidden_layers; i++) {
        et_llama_layer *L = &m->layers[i];
        et_mover_tensor(mv, &L->input_norm);
        et_mover_tensor(mv, &L->post_norm);
        et_linear_layer *ls[7] = {&L->q_proj,    &L->k_proj,  &L->v_proj,   &L->o_proj,
                                  &L->gate_proj, &L->up_proj, &L->down_proj};
        for (int k = 0; k < 7; k++) et_mover_linear(mv, ls[k]);
    }
    et_mover_tensor(mv, &m->norm);
    et_mover_linear(mv, &m->lm_head);  // tied: the embed_tokens copy
    et_mover_tensor(mv, &m->inv_freq);
}

void et_mover_clip(et_device_mover *mv, et_clip_vision *m) {
    if (!m || !m->class_embedding) return;
    et_mover_tensor(mv, &m->class_embedding);
    et_mover_tensor(mv, &m->patch_weight);
    et_mover_tensor(mv, &m->pos_embedding);
    et_mover_tensor(mv, &m->pre_ln_w);
    et_mover_tensor(mv, &m->pre_ln_b);
    for (int64_t i = 0; i < m->cfg.num_layers; i++) {
        et_clip_layer *L = &m->layers[i];
        et_mover_tensor(mv, &L->ln1_w);
        et_mover_tensor(mv, &L->ln1_b);
        et_mover_tensor(mv, &L->ln2_w);
        et_mover_tensor(mv, &L->ln2_b);
        et_linear_layer *ls[6] = {&L->q, &L->k, &L->v, &L->o, &L->fc1, &L->fc2};
        for (int k = 0; k < 6; k++) et_mover_linear(mv, ls[k]);
    }
}

void et_mover_projector(et_device_mover *mv, et_projector *p) {
    if (!p) return;
    et_mover_linear(mv, &p->l1);
    et_mover_linear(mv, &p->l2);
}

void et_mover_face_prior(et_device_mover *mv, et_face_prior *fp) {
    if (!fp) return;
    if (fp->kind & ET_PRIOR_LANDMARK) et_mover_projector(mv, &fp->expert);
    if (!fp->net) return;
    for (int i = 0; i < fp->fim.n_params; i++) et_mover_tensor(mv, fp->fim.slots[i]);
    et_mover_projector(mv, &fp->fim_proj);
    for (int i = 0; i < fp->net->n_params; i++) {  // the frozen face network
        const char *name;
        int nd;
        const int64_t *shape;
        et_tensor **slot;
        et_face_net_slot(fp->net, i, &name, &nd, &shape, &slot);
        et_mover_tensor(mv, slot);
    }
}

static et_tensor *lookup(const et_device_mover *mv, et_tensor *t) {
    for (int i = 0; i < mv->n; i++)
        if (mv->from[i] == t) return mv->to[i];
    return t;
}

void et_mover_emo_model(et_device_mover *mv, et_emo_model *m) {
    et_mover_llama(mv, m->llm);
    if (m->mllm.vision) et_mover_clip(mv, m->mllm.vision);
    if (m->mllm.proj) et_mover_projector(mv, m->mllm.proj);
    et_mover_face_prior(mv, &m->prior);
    for (int g = 0; g < m->n_groups; g++)  // the groups borrow the tensors: point them anew
        for (int i = 0; i < m->groups[g].n; i++)
            m->groups[g].params[i] = lookup(mv, m->groups[g].params[i]);
}

et_status et_emo_model_to_device(et_emo_model *m, et_device dev, size_t *bytes) {
    if (bytes) *bytes = 0;
    if (dev.type != ET_CPU &&
        (!et_backend_get(dev.type) || dev.index < 0 || dev.index >= et_device_count(dev.type)))
        return et_err(ET_ERR_UNSUPPORTED,
                      "model to device %s:%d: no such device in this build or on this machine "
                      "(a CUDA build, -DEMOTUNE_CUDA=ON, on a machine with a GPU)",
                      dev.type == ET_CUDA ? "cuda" : "device", dev.index);
    et_device_mover mv;
    et_mover_init(&mv, dev);
    et_mover_emo_model(&mv, m);
    if (bytes) *bytes = mv.bytes_moved;
    et_mover_free(&mv);
    return NULL;
}
