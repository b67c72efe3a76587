#include "classify/scoring.h"

#include <stdlib.h>

#include "nn/ops.h"

void score_top_k(const float *p, int n, int k, int *idx) {
    /* partial selection sort: k is small (a handful of labels on screen) */
    for (int i = 0; i < k; i++) {
        int best = -1;
        for (int j = 0; j < n; j++) {
            int taken = 0;
            for (int t = 0; t < i && !taken; t++) taken = idx[t] == j;
            if (!taken && (best < 0 || p[j] > p[best])) best = j;
        }
        idx[i] = best;
    }
}

clxp_status score_categories(const prompt_set *ps, const float *sims, float scale, float temperature, float *cat_scores,
                      int *best_cat) {
    for (int u = 0; u < ps->n_units; u++) {
        const prompt_unit *unit = &ps->units[u];
        const prompt_cat *first = &ps->cats[unit->first_cat], *last = &ps->cats[unit->first_cat + unit->n_cats - 1];
        int p0 = first->first_prompt, np = last->first_prompt + last->n_prompts - p0;
        float *logits = malloc((size_t)np * sizeof *logits);
        if (!logits) return CLXP_ERR_NOMEM;
        for (int j = 0; j < np; j++) logits[j] = scale * sims[p0 + j] / temperature;
        nn_softmax(logits, np);
        best_cat[u] = unit->first_cat;
        for (int c = unit->first_cat; c < unit->first_cat + unit->n_cats; c++) {
            const prompt_cat *cat = &ps->cats[c];
            float s = 0;
            for (int j = 0; j < cat->n_prompts; j++) s += logits[cat->first_prompt - p0 + j];
            cat_scores[c] = s;
            if (s > cat_scores[best_cat[u]]) best_cat[u] = c;
        }
        free(logits);
    }
    return CLXP_OK;
}
