// train/nn.c - see nn.h
#include "nn.h"

#include "../core/ops.h"

et_tensor *et_linear_layer_forward(et_linear_layer *l, et_tensor *x, et_rng_stream *rng) {
    et_tensor *y = et_linear(x, l->weight, l->bias);
    if (!l->lora_a || l->merged) return y;
    et_tensor *xin = x;
    if (rng && l->lora_dropout > 0) {
        xin = et_dropout(x, l->lora_dropout, rng->seed, rng->offset);
        rng->offset += (uint64_t)x->numel;
    } else {
        et_retain(xin);
    }
    et_tensor *h = et_linear(xin, l->lora_a, NULL);
    et_tensor *d = et_linear(h, l->lora_b, NULL);
    et_tensor *ds = et_scale(d, l->lora_scale);
    et_tensor *out = et_add(y, ds);
    et_release(xin), et_release(h), et_release(d), et_release(ds), et_release(y);
    return out;
}

void et_linear_layer_free(et_linear_layer *l) {
    et_release(l->weight), et_release(l->bias), et_release(l->lora_a), et_release(l->lora_b);
    l->weight = l->bias = l->lora_a = l->lora_b = NULL;
}
